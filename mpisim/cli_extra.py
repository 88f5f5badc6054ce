"""Sub-commands beyond simulate/info: sysmat, cache, reco (registered into :mod:`mpisim.cli`)."""

import argparse
import json

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
    from .units import parse_concentration

    nd = 0.0 if args.noise == "realistic" else _float_or_si(args.noise, "--noise", "V/√Hz")
    if not 0 <= nd <= 1e-3:
        raise MPISimError(f"--noise is a noise density in V/√Hz (e.g. 2e-9) or 'realistic', got {args.noise!r}")
    settings = CalibrationSettings(
        delta_concentration=parse_concentration(args.delta_concentration, "--delta-concentration (delta concentration)",
                                                positive=True),
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
    p.add_argument("--snr-threshold", default="2", help="keep rows with system-matrix SNR ≥ T (default 2)")
    p.add_argument("--min-freq", default="0", help="lowest frequency in Hz, e.g. 30e3 or 30kHz (default 0)")
    p.add_argument("--max-freq", default="0", help="highest frequency in Hz (default: bandwidth)")
    p.add_argument("--band", default="auto", choices=["auto", "all"],
                   help="auto: also drop the drive lines within the band-stop and the bins whose background drifts "
                        "between the background frames; all: keep them (default auto)")
    p.add_argument("--channels", default="", help="receive channels, 1-based, e.g. 1,2 (default: all)")
    p.add_argument("--top-k", type=int, default=0, help="keep only the K rows of highest SNR (default 0: all)")
    p.add_argument("--weighting", default="none", choices=["none", "row-norm", "whitening"],
                   help="row weights: none, 1/row norm, or noise whitening from background frames (default none)")
    p.add_argument("--iterations", default="auto",
                   help="Kaczmarz sweeps / CG iterations (>= 1), or auto: stop when the residual reaches the noise "
                        "level or stagnates (default auto)")
    p.add_argument("--max-iterations", type=int, default=100, help="most sweeps for --iterations auto (default 100)")
    p.add_argument("--lambda", dest="lam", default="1e-2",
                   help="Tikhonov λ relative to ‖S‖²_F/N, or auto (generalised discrepancy principle from the noise "
                        "level; default 1e-2, chosen by measurement)")
    p.add_argument("--solver", default="kaczmarz", choices=["kaczmarz", "cgnr"], help="solver (default kaczmarz)")
    p.add_argument("--frames", default="", help="foreground frames, 0-based: 0,3,5 or 0-9 (default: all)")
    p.add_argument("--average", type=int, default=1, help="average blocks of this many frames (default 1)")
    p.add_argument("--background", default="auto",
                   help="'auto' (use the measurement's background frames), 'none', or an empty-scanner MDF file")
    p.add_argument("--positive", default="auto", choices=["auto", "on", "off"],
                   help="enforce c >= 0 after each sweep: cleaner images, but ROI totals are biased upwards; auto: "
                        "only when the selected rows cannot see the total iron, as on a 1D sequence (default auto)")
    p.add_argument("--no-positive", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--uncertainty-samples", type=int, default=16,
                   help="noise realisations reconstructed for error bars (0: none; default 16)")
    p.add_argument("--order", default="cyclic", choices=["cyclic", "shuffle", "random"],
                   help="row order of the Kaczmarz sweeps (default cyclic)")
    p.add_argument("--seed", type=int, default=0, help="seed of shuffled row orders and noise realisations (default 0)")
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
    lam = "auto" if str(args.lam).strip().lower() == "auto" else _float_or_si(args.lam, "--lambda")
    if lam != "auto" and lam < 0:
        raise MPISimError(f"--lambda must be >= 0 or auto, got {args.lam}")
    iterations = "auto"
    if str(args.iterations).strip().lower() != "auto":
        try:
            iterations = int(args.iterations)
        except ValueError:
            raise MPISimError(f"--iterations must be a whole number >= 1 or auto, got {args.iterations!r}") from None
        if iterations < 1:
            raise MPISimError(f"--iterations must be >= 1 (0 sweeps would give an all-zero image), got {iterations}")
    if args.max_iterations < 1:
        raise MPISimError(f"--max-iterations must be >= 1, got {args.max_iterations}")
    if args.uncertainty_samples < 0 or args.uncertainty_samples == 1:
        raise MPISimError(f"--uncertainty-samples must be 0 or >= 2, got {args.uncertainty_samples}")
    positive = {"auto": "auto", "on": True, "off": False}[args.positive]
    if args.no_positive:
        if args.positive == "on":
            raise MPISimError("--positive on and --no-positive contradict each other")
        positive = False
    params = RecoParams(
        snr_threshold=_float_or_si(args.snr_threshold, "--snr-threshold"), min_freq=_freq(args.min_freq, "--min-freq"),
        max_freq=_freq(args.max_freq, "--max-freq"), band=args.band, channels=_int_list(args.channels, "--channels", True),
        top_k=args.top_k, weighting=args.weighting, frames=_int_list(args.frames, "--frames"),
        average=args.average, background=args.background, solver=args.solver, iterations=iterations,
        max_iterations=args.max_iterations, lam=lam, enforce_positive=positive, order=args.order, seed=args.seed,
        transfer_function=args.transfer_function, uncertainty_samples=args.uncertainty_samples)
    reco = reconstruct(args.measurement, args.sm, params, backend=args.backend, progress=True)
    write_reconstruction(args.out, reco, overwrite=args.overwrite)
    if args.png:
        from .plot import plot_reconstruction, save_figure_atomic

        save_figure_atomic(lambda p: plot_reconstruction(reco, p), args.png, overwrite=args.overwrite)
    info = reco.info
    summary = {"out": args.out, "frames": reco.num_frames, "rows": info["rows"], "voxels": info["voxels"],
               "unit": reco.unit, "max": float(np.max(reco.image)), "lambda": info["lambda"],
               "lambda_rule": info["lambda_rule"], "sweeps": info["sweeps"], "stopped_because": info["stopped_because"],
               "noise_source": info.get("noise_source"), "uncertainty_samples": info.get("uncertainty_samples", 0),
               "solve_seconds": round(info["solve_seconds"], 4)}
    if args.png:
        summary["png"] = args.png
    if reco.unit == "mol/L":
        summary["iron_ug"] = [float(x) * 1e9 for x in reco.iron_mass]
    if args.json:
        print(json.dumps(summary))
        return
    extra = f", total iron {summary['iron_ug'][0]:.4g} µg (frame 0)" if "iron_ug" in summary else ""
    print(f"wrote {args.out}: {reco.num_frames} frame(s), {info['rows']} rows × {info['voxels']} voxels, "
          f"max {summary['max'] * (1e3 if reco.unit == 'mol/L' else 1):.4g} "
          f"{'mmol/L' if reco.unit == 'mol/L' else reco.unit}{extra}; solved in {summary['solve_seconds']:.3g} s")
    band = (f"band {info.get('band')}: {info.get('drive_line_bins', 0)} drive-line and {info.get('contaminated_bins', 0)} "
            f"contaminated bins dropped" if info.get("band") == "auto" else "band: all bins")
    print(f"  λ {info['lambda']:g} ({info['lambda_rule']}), {info['sweeps']} sweeps ({info['stopped_because']}); {band}")
    if info.get("total_iron_visibility", 1e9) < 1.0:
        print(f"  note: the selected rows barely see the total iron (visibility {info['total_iron_visibility']:.2g} < 1; "
              f"a 1D sequence's fundamental is behind the band-stop): totals rest on the positivity prior "
              f"({'on' if info['positivity'] else 'off'}), see docs/getting-started.md (bruker-1d)")
    print(f"  noise: {info.get('noise_source')}; error bars from {summary['uncertainty_samples']} reconstructed noise "
          f"realisations" if summary["uncertainty_samples"] else f"  no error bars: {info.get('uncertainty', 'disabled')}")
    if args.png:
        print(f"wrote {args.png}")


@register
def _demo(sub):
    p = sub.add_parser("demo", help="run the whole pipeline on a phantom (simulate, system matrix, reconstruct, "
                                    "quantify) and write MDF files and a figure",
                       description="End-to-end showcase on bruker-2d: a phantom with realistic noise, a cached "
                                   "system matrix, Kaczmarz reconstruction and iron/cell quantification.")
    p.add_argument("--out", default="mpisim-demo", help="output folder (default ./mpisim-demo)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output folder's files even if it holds other files too (a folder holding only "
                        "an earlier demo's files is replaced without it)")
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


@register
def _quantify(sub):
    p = sub.add_parser("quantify", help="iron and cell numbers from a reconstruction (ROIs, calibration, cell map)",
                       description="Quantify a reconstruction: iron mass per voxel and per ROI (ng Fe) with a 1σ "
                                   "noise uncertainty, and labelled-cell equivalents (iron / iron per cell). MPI "
                                   "measures iron: iron from dead cells kept by microglia still counts.")
    p.add_argument("reconstruction", help="MDF file with /reconstruction in mol/L")
    p.add_argument("--iron-per-cell", default="10pg",
                   help="iron per labelled cell with its unit, e.g. 10pg (0.001 pg - 1 ng; default 10pg)")
    p.add_argument("--roi", action="append", default=[],
                   help="[name=]sphere:x,y,z,r | [name=]box:x0,x1,y0,y1,z0,z1 | all | chambers (the file's phantom) | "
                        "chambers:concentration (mm; repeatable; default all)")
    p.add_argument("--reference", default=None, help="ROI of a reference sample of known iron (calibration)")
    p.add_argument("--reference-iron", default=None, help="its iron mass with its unit, e.g. 5ug")
    p.add_argument("--frame", type=int, default=0, help="frame to quantify, 0-based (default 0)")
    p.add_argument("--png", default=None, help="write a cell-count map")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_quantify)


def cmd_quantify(args):
    from .io.atomic import check_output_path
    from .io.reco_mdf import read_reconstruction
    from .quant import quantify
    from .units import parse_iron_per_cell, parse_mass

    ipc = parse_iron_per_cell(args.iron_per_cell)
    if args.png:
        check_output_path(args.png, args.overwrite)
    reco = read_reconstruction(args.reconstruction)
    ref_iron = parse_mass(args.reference_iron, "--reference-iron", (1e-18, 1e-3)) if args.reference_iron else None
    results, extra = quantify(reco, args.roi, ipc, args.frame, args.reference, ref_iron)
    if args.png:
        from .plot import plot_cells, save_figure_atomic

        save_figure_atomic(lambda p: plot_cells(reco, ipc, p, args.frame, extra["calibration_factor"]), args.png,
                           overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"file": args.reconstruction, "frame": args.frame, "iron_per_cell_pg": ipc * 1e15,
                          **extra, "rois": [r.as_dict() for r in results]}, indent=1))
        return
    print(f"{args.reconstruction}, frame {args.frame}: iron per cell {ipc * 1e15:g} pg"
          + (f", calibrated by reference ×{extra['calibration_factor']:.4g}" if args.reference else ""))
    chambers = any(r.concentration is not None for r in results)
    print(f"{'ROI':18} {'voxels':>6} {'iron / ng':>11} {'± 1σ':>9}  {'95 % interval / ng':>23} {'cells':>10} "
          f"{'± 1σ':>9}" + (f"  {'mmol/L':>8}" if chambers else ""))
    for r in results:
        ok = r.iron_sigma == r.iron_sigma
        iv = (f"{r.iron_low * 1e12:#.4g}".rstrip(".") + " .. " + f"{r.iron_high * 1e12:#.4g}".rstrip(".")) if ok \
            else "n/a"
        sg = f"{r.iron_sigma * 1e12:9.2g}" if ok else f"{'n/a':>9}"
        cs = f"{r.cells_sigma:9.2g}" if ok else f"{'n/a':>9}"
        conc = f"  {r.concentration * 1e3:8.3g}" if r.concentration is not None else ""
        print(f"{r.name[:18]:18} {r.voxels:6d} {r.iron * 1e12:11.4g} {sg}  {iv:>23} {r.cells:10.4g} {cs}{conc}")
    print(f"({extra['interval']}; noise: {extra['noise_source']}, {extra['noise_samples']} realisations)")
    if args.png:
        print(f"wrote {args.png}")


def _cells_list(text):
    import numpy as np

    t = str(text)
    try:
        if ".." in t:
            a, b = (float(x) for x in t.split(".."))
            if a <= 0 or b <= a:
                raise ValueError
            n = int(round(np.log10(b / a) * 2)) + 1
            return np.logspace(np.log10(a), np.log10(b), max(n, 2)).tolist()
        return [float(x) for x in t.split(",")]
    except ValueError:
        raise MPISimError(f"--cells must look like 1e2..1e6 or 100,1000,10000 (positive), got {text!r}") from None


@register
def _titrate(sub):
    p = sub.add_parser("titrate", help="detection limit: a dilution series of labelled cells, reconstructed",
                       description="Simulate grafts of increasing cell numbers with realistic noise and averaged "
                                   "frames, reconstruct, and report the smallest detectable cell number (ROI iron "
                                   "above mean + 3 SD of blank scans in every noise seed).")
    p.add_argument("--scanner", default="bruker-2d")
    p.add_argument("--cells", default="1e2..1e6", help="range a..b (half-decade steps) or a list")
    p.add_argument("--iron-per-cell", default="10pg",
                   help="iron per labelled cell with its unit, e.g. 10pg (0.001 pg - 1 ng; default 10pg)")
    p.add_argument("--tracer-diameter", default="25e-9")
    p.add_argument("--averages", type=int, default=100, help="averaged acquisitions per frame (default 100)")
    p.add_argument("--seeds", type=int, default=3, help="noise realisations per cell number")
    _study_output_args(p)
    p.set_defaults(func=cmd_titrate)


def _study_output_args(p):
    p.add_argument("--png", default=None, help="write the study's figure")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--overwrite", action="store_true")
    _backend_arg(p)


def _study_start(args):
    """Parse --iron-per-cell and check --png before a study runs."""
    from .io.atomic import check_output_path
    from .units import parse_iron_per_cell

    if args.png:
        check_output_path(args.png, args.overwrite)
    return parse_iron_per_cell(args.iron_per_cell)


def _study_finish(args, res, plot):
    """Write the figure; print JSON and return True when --json was asked for."""
    if args.png:
        from .plot import save_figure_atomic

        save_figure_atomic(lambda p: plot(res, p), args.png, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(res, indent=1))
    return args.json


def cmd_titrate(args):
    from .studies import StudySetup, plot_titration, titrate

    ipc = _study_start(args)
    if args.seeds < 1 or args.averages < 1:
        raise MPISimError("--seeds and --averages must be >= 1")
    from .units import parse_diameter

    setup = StudySetup(scanner=args.scanner, core_diameter=parse_diameter(args.tracer_diameter),
                       averages=args.averages)
    res = titrate(_cells_list(args.cells), ipc, args.seeds, setup=setup, backend=args.backend,
                  progress=None if args.json else print)
    if _study_finish(args, res, plot_titration):
        return
    lim = res["detection_limit_cells"]
    print(f"blank ROI iron {res['blank_iron_ng_mean']:.3g} ± {res['blank_iron_ng_sd']:.2g} ng; threshold "
          f"{res['threshold_ng']:.3g} ng")
    print(f"detection limit: {'none in range' if lim is None else f'{lim:.3g} cells ({lim * ipc * 1e12:.3g} ng Fe)'}"
          f" — criterion: {res['criterion']}")


@register
def _track(sub):
    p = sub.add_parser("track", help="longitudinal graft study: cell death, proliferation, microglial iron",
                       description="Simulate scans of a graft over time and report iron and apparent cells per "
                                   "time point next to the true live cells.")
    p.add_argument("--days", default="0,7,14,30,60,90,150", help="scan days")
    p.add_argument("--cells", default="3e5", help="grafted labelled cells")
    p.add_argument("--iron-per-cell", default="10pg",
                   help="iron per labelled cell with its unit, e.g. 10pg (0.001 pg - 1 ng; default 10pg)")
    p.add_argument("--death-rate", type=float, default=0.02, help="per day")
    p.add_argument("--proliferation-rate", type=float, default=0.0, help="per day")
    p.add_argument("--microglia-retention", type=float, default=0.5, help="fraction of dead cells' iron kept")
    p.add_argument("--scanner", default="bruker-2d")
    _study_output_args(p)
    p.set_defaults(func=cmd_track)


def cmd_track(args):
    from .studies import StudySetup, plot_track, track

    ipc = _study_start(args)
    try:
        days = [float(x) for x in args.days.split(",")]
        cells = float(args.cells)
    except ValueError:
        raise MPISimError("--days must be numbers like 0,7,14 and --cells a number") from None
    if any(d < 0 for d in days) or cells <= 0:
        raise MPISimError("--days must be >= 0 and --cells > 0")
    res = track(days, cells, ipc, args.death_rate, args.proliferation_rate, args.microglia_retention,
                setup=StudySetup(scanner=args.scanner), backend=args.backend)
    if _study_finish(args, res, plot_track):
        return
    print(f"{'day':>5} {'live cells':>11} {'iron true/ng':>13} {'iron MPI/ng':>12} {'95 % interval/ng':>20} "
          f"{'apparent cells':>15}")
    for r in res["rows"]:
        lo, hi = r["iron_measured_95_ng"]
        iv = f"{lo:.4g} .. {hi:.4g}" if lo == lo else "n/a"
        print(f"{r['day']:5g} {r['live_cells']:11.4g} {r['iron_true_ng']:13.4g} {r['iron_measured_ng']:12.4g} "
              f"{iv:>20} {r['apparent_cells']:15.4g}")
    print("95 % interval: measurement noise propagated through the reconstruction (not model or calibration error)")
    print(res["limits"])


@register
def _plot(sub):
    p = sub.add_parser("plot", help="a figure of any MDF file (measurement, system matrix or reconstruction)")
    p.add_argument("file")
    p.add_argument("--out", default=None, help="PNG path (default: FILE with .png)")
    p.add_argument("--frame", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args):
    from pathlib import Path

    from .io.atomic import check_output_path
    from .io.mdf import read_header
    from .plot import plot_measurement, plot_reconstruction, plot_system_matrix, save_figure_atomic

    out = args.out or str(Path(args.file).with_suffix(".png"))
    check_output_path(out, args.overwrite)
    info = read_header(args.file)
    if "reconstruction" in info:
        from .io.reco_mdf import read_reconstruction

        reco = read_reconstruction(args.file)
        save_figure_atomic(lambda p: plot_reconstruction(reco, p, args.frame or 0), out, overwrite=args.overwrite)
        kind = "reconstruction"
    elif "calibration" in info:
        from .systemmatrix import load_system_matrix

        sm = load_system_matrix(args.file)
        save_figure_atomic(lambda p: plot_system_matrix(sm, p), out, overwrite=args.overwrite)
        kind = "system matrix"
    elif "data_shape" in info:
        from .io.mdf import read_mdf

        meas = read_mdf(args.file)
        save_figure_atomic(lambda p: plot_measurement(meas, p, args.frame), out, overwrite=args.overwrite)
        kind = "measurement"
    else:
        raise MPISimError(f"{args.file}: nothing to plot (no measurement, calibration or reconstruction data)")
    print(f"wrote {out} ({kind})")
