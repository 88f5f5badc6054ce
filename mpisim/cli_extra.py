"""Sub-commands beyond simulate/info: sysmat, cache, reco (registered into :mod:`mpisim.cli`)."""

import json
import sys

from .cli import _add_tracer_args, _backend_arg, _float_or_si, _tracer_from_args, register
from .errors import MPISimError


def _freq(text, name):
    return _float_or_si(text, name, "Hz")


@register
def _sysmat(sub):
    p = sub.add_parser("sysmat", help="simulate a system matrix and write an MDF calibration file",
                       description="Simulate a system matrix (one forward-model spectrum per voxel of a delta "
                                   "sample) and write it as an MDF v2.1 calibration file. Results are cached by "
                                   "a hash of every parameter; a second identical request is served from the cache.")
    p.add_argument("--scanner", default="bruker-2d", help="preset or scanner .toml (default bruker-2d)")
    p.add_argument("--grid", required=True, metavar="NXxNYxNZ", help="voxels per axis, x fastest, e.g. 41x41x1")
    p.add_argument("--fov", default=None, metavar="X,Y,Z", help="field of view in m (default: drive FOV × 1.1)")
    p.add_argument("--center", default="0,0,0", metavar="X,Y,Z", help="FOV centre in m")
    _add_tracer_args(p)
    p.add_argument("--delta-concentration", default="0.1", help="delta-sample concentration in mol Fe/L (default 0.1)")
    p.add_argument("--background-frames", type=int, default=10, help="empty frames appended (default 10)")
    p.add_argument("--noise", default="realistic",
                   help="noise density in V/√Hz for background frames and SNR, or 'realistic' (preset's)")
    p.add_argument("--noisy", action="store_true", help="add the noise to every voxel column (like a measurement)")
    p.add_argument("--averages", type=int, default=1, help="averages per calibration position")
    p.add_argument("--min-freq", default="0", help="lowest stored frequency in Hz (default 0)")
    p.add_argument("--max-freq", default="0", help="highest stored frequency in Hz (default: bandwidth)")
    p.add_argument("--dtype", default="complex64", choices=["complex64", "complex128"])
    p.add_argument("--compression", default=None, choices=["gzip", "lzf"], help="HDF5 compression (default none)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $MPISIM_CACHE_DIR or ~/.cache/mpisim)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    _backend_arg(p)
    p.add_argument("--out", required=True, help="output MDF file")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_sysmat)


def cmd_sysmat(args):
    from .grid import parse_shape, parse_triple
    from .io.atomic import check_output_path
    from .scanner import get_scanner
    from .systemmatrix import CalibrationSettings, build_system_matrix, default_grid

    check_output_path(args.out, args.overwrite)
    scanner = get_scanner(args.scanner)
    shape = parse_shape(args.grid)
    fov = parse_triple(args.fov, "--fov") if args.fov else None
    grid = default_grid(scanner, shape, fov, parse_triple(args.center, "--center"))
    tracer = _tracer_from_args(args)
    nd = 0.0 if args.noise == "realistic" else _float_or_si(args.noise, "--noise", "V/√Hz")
    settings = CalibrationSettings(
        delta_concentration=_float_or_si(args.delta_concentration, "--delta-concentration", "mol/L"),
        background_frames=args.background_frames, noise_density=nd, averages=args.averages, noisy=args.noisy,
        min_freq=_freq(args.min_freq, "--min-freq"), max_freq=_freq(args.max_freq, "--max-freq"), dtype=args.dtype)
    build_system_matrix(scanner, tracer, grid, settings, out=args.out, overwrite=args.overwrite,
                        backend=args.backend, use_cache=not args.no_cache, cache_dir=args.cache_dir,
                        progress=True, compression=args.compression, load=False)
    from .io.mdf import read_header

    _, C, K, N = read_header(args.out)["data_shape"]
    N -= settings.background_frames
    print(f"wrote {args.out}: system matrix {C} channels × {K} frequencies × {N} voxels "
          f"(grid {'x'.join(map(str, grid.shape))}, FOV {', '.join(f'{f * 1e3:.3g}' for f in grid.fov)} mm, "
          f"{settings.background_frames} background frames)")


@register
def _cache(sub):
    p = sub.add_parser("cache", help="list or clear the system-matrix cache")
    p.add_argument("action", choices=["list", "clear", "path"])
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_cache)


def cmd_cache(args):
    from . import cache

    if args.action == "path":
        print(cache.cache_dir(args.cache_dir))
    elif args.action == "list":
        entries = cache.list_entries(args.cache_dir)
        if not entries:
            print(f"cache {cache.cache_dir(args.cache_dir)} is empty")
        for p, size, summary in entries:
            print(f"{size / 1e6:10.1f} MB  {p.name}  {summary}")
    else:
        n = cache.clear(args.cache_dir)
        print(f"removed {n} file(s) from {cache.cache_dir(args.cache_dir)}")


@register
def _reco(sub):
    p = sub.add_parser("reco", help="reconstruct an MDF measurement with a system matrix",
                       description="Reconstruct iron concentration images (mol Fe/L) with regularised Kaczmarz "
                                   "(ART) or CGNR. Every parameter is recorded in the output file.")
    p.add_argument("measurement", help="MDF measurement file")
    p.add_argument("--sm", required=True, help="MDF system-matrix (calibration) file")
    p.add_argument("--out", required=True, help="output MDF file with /reconstruction")
    p.add_argument("--png", default=None, help="also write a figure of the first frame")
    p.add_argument("--snr-threshold", default="2", help="keep rows with SNR ≥ T (default 2)")
    p.add_argument("--min-freq", default="80e3", help="lowest frequency in Hz (default 80 kHz)")
    p.add_argument("--max-freq", default="0", help="highest frequency in Hz (default: bandwidth)")
    p.add_argument("--channels", default="", help="receive channels, 1-based, e.g. 1,2 (default: all)")
    p.add_argument("--top-k", type=int, default=0, help="keep only the K rows of highest SNR")
    p.add_argument("--weighting", default="none", choices=["none", "row-norm", "whitening"])
    p.add_argument("--iterations", type=int, default=3, help="Kaczmarz sweeps / CG iterations (default 3)")
    p.add_argument("--lambda", dest="lam", default="1e-2", help="Tikhonov λ relative to ‖S‖²_F/N (default 1e-2)")
    p.add_argument("--solver", default="kaczmarz", choices=["kaczmarz", "cgnr"])
    p.add_argument("--frames", default="", help="foreground frames, 0-based: 0,3,5 or 0-9 (default: all)")
    p.add_argument("--average", type=int, default=1, help="average blocks of this many frames")
    p.add_argument("--background", default="auto",
                   help="'auto' (use the measurement's background frames), 'none', or an empty-scanner MDF file")
    p.add_argument("--no-positive", action="store_true", help="do not enforce c ≥ 0")
    p.add_argument("--order", default="cyclic", choices=["cyclic", "shuffle", "random"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transfer-function", default="", help="transfer-function file to correct the measurement with")
    _backend_arg(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_reco)


def _int_list(text, name, one_based=False):
    if not text:
        return ()
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise MPISimError(f"{name} must be integers like 1,2 or 0-9, got {text!r}") from None
    if one_based:
        if any(x < 1 for x in out):
            raise MPISimError(f"{name} are 1-based, got {text!r}")
        out = [x - 1 for x in out]
    return tuple(out)


def cmd_reco(args):
    import numpy as np

    from .io.atomic import check_output_path
    from .io.reco_mdf import write_reconstruction
    from .reco.preprocess import RecoParams
    from .reco.reconstruct import reconstruct

    check_output_path(args.out, args.overwrite)
    if args.png:
        check_output_path(args.png, args.overwrite)
    lam = _float_or_si(args.lam, "--lambda")
    if lam < 0:
        raise MPISimError(f"--lambda must be >= 0, got {args.lam}")
    params = RecoParams(
        snr_threshold=_float_or_si(args.snr_threshold, "--snr-threshold"), min_freq=_freq(args.min_freq, "--min-freq"),
        max_freq=_freq(args.max_freq, "--max-freq"), channels=_int_list(args.channels, "--channels", True),
        top_k=args.top_k, weighting=args.weighting, frames=_int_list(args.frames, "--frames"),
        average=args.average, background=args.background, solver=args.solver, iterations=args.iterations, lam=lam,
        enforce_positive=not args.no_positive, order=args.order, seed=args.seed,
        transfer_function=args.transfer_function)
    reco = reconstruct(args.measurement, args.sm, params, backend=args.backend)
    write_reconstruction(args.out, reco, overwrite=args.overwrite)
    if args.png:
        from .plot import plot_reconstruction, save_figure_atomic

        save_figure_atomic(lambda p: plot_reconstruction(reco, p), args.png, overwrite=args.overwrite)
    summary = {"out": args.out, "frames": reco.num_frames, "rows": reco.info["rows"], "voxels": reco.info["voxels"],
               "unit": reco.unit, "max": float(np.max(reco.image)),
               "solve_seconds": round(reco.info["solve_seconds"], 4)}
    if reco.unit == "mol/L":
        summary["iron_ug"] = [float(x) * 1e9 for x in reco.iron_mass]
    if args.json:
        print(json.dumps(summary))
    else:
        extra = f", total iron {summary['iron_ug'][0]:.4g} µg (frame 0)" if "iron_ug" in summary else ""
        print(f"wrote {args.out}: {reco.num_frames} frame(s), {reco.info['rows']} rows × {reco.info['voxels']} voxels, "
              f"max {summary['max'] * (1e3 if reco.unit == 'mol/L' else 1):.4g} "
              f"{'mmol/L' if reco.unit == 'mol/L' else reco.unit}{extra}; solved in {summary['solve_seconds']} s")


@register
def _demo(sub):
    p = sub.add_parser("demo", help="run the whole pipeline on a phantom (simulate, system matrix, reconstruct, "
                                    "quantify) and write MDF files and a figure",
                       description="End-to-end showcase on bruker-2d: a phantom with realistic noise, a cached "
                                   "system matrix, Kaczmarz reconstruction and iron/cell quantification.")
    p.add_argument("--out", default="mpisim-demo", help="output folder (default ./mpisim-demo)")
    p.add_argument("--overwrite", action="store_true", help="replace files from an earlier demo run")
    _backend_arg(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args):
    from .demo import run_demo

    run_demo(args.out, overwrite=args.overwrite, backend=args.backend)


@register
def _convert(sub):
    p = sub.add_parser("convert", help="convert an MDF measurement between time and frequency domain",
                       description="Write a copy of an MDF measurement as spectra (optionally only a frequency "
                                   "band, to shrink a large recording before reconstruction) or back as time "
                                   "samples. The input file is only read.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", default="frequency", choices=["frequency", "time"])
    p.add_argument("--min-freq", default="0", help="keep bins from this frequency in Hz")
    p.add_argument("--max-freq", default="0", help="keep bins up to this frequency in Hz (default: all)")
    p.add_argument("--complex64", action="store_true", help="store spectra in single precision")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args):
    from .io.atomic import check_output_path
    from .io.convert import convert

    check_output_path(args.output, args.overwrite)
    shape, nbins = convert(args.input, args.output, args.to, _freq(args.min_freq, "--min-freq"),
                           _freq(args.max_freq, "--max-freq"), args.overwrite,
                           "complex64" if args.complex64 else None)
    print(f"wrote {args.output}: {args.to}-domain data {tuple(shape)}" +
          (f", {nbins} frequency bins" if args.to == "frequency" else ""))
