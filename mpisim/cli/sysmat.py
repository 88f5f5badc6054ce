"""``mpisim sysmat``: simulate a system matrix into an MDF calibration file (cached)."""

from ..errors import MPISimError
from ..grid import parse_shape, parse_triple
from ..io.atomic import check_output_path
from ..io.mdf import read_header
from ..systemmatrix import CalibrationSettings, build_system_matrix, default_grid
from ..units import parse_concentration
from .common import add_tracer_args, backend_arg, float_or_si, freq, overwrite_arg, scanner_from_arg, tracer_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("sysmat", help="simulate a system matrix and write an MDF calibration file",
                       description="Simulate a system matrix (one forward-model spectrum per voxel of a delta "
                                   "sample) and write it as an MDF v2.1 calibration file. Results are cached by "
                                   "a hash of every parameter; a second identical request is served from the cache.")
    p.add_argument("--scanner", default="bruker-2d", help="preset or scanner .toml (default bruker-2d)")
    p.add_argument("--grid", required=True, metavar="NXxNYxNZ", help="voxels per axis, x fastest, e.g. 41x41x1")
    p.add_argument("--fov", default=None, metavar="X,Y,Z", help="field of view in m (default: drive FOV × 1.1)")
    p.add_argument("--center", default="0,0,0", metavar="X,Y,Z", help="FOV centre in m (default 0,0,0)")
    add_tracer_args(p)
    p.add_argument("--delta-concentration", default="100mmol/L",
                   help="delta-sample concentration with its unit, e.g. 100mmol/L or 0.1mol/L (default 100 mmol/L)")
    p.add_argument("--background-frames", type=int, default=10, help="empty frames appended (default 10)")
    p.add_argument("--noise", default="realistic",
                   help="noise density in V/√Hz for background frames and SNR, or 'realistic': the preset's "
                        "(default realistic)")
    p.add_argument("--noisy", action="store_true", help="add the noise to every voxel column (like a measurement)")
    p.add_argument("--averages", type=int, default=1, help="averages per calibration position (default 1)")
    p.add_argument("--min-freq", default="0", help="lowest stored frequency in Hz (default 0)")
    p.add_argument("--max-freq", default="0", help="highest stored frequency in Hz (default: bandwidth)")
    p.add_argument("--dtype", default="complex64", choices=["complex64", "complex128"],
                   help="precision of the stored matrix (default complex64)")
    p.add_argument("--compression", default=None, choices=["gzip", "lzf"], help="HDF5 compression (default none)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $MPISIM_CACHE_DIR or ~/.cache/mpisim)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    backend_arg(p)
    p.add_argument("--scheduler", default=None,
                   help="compute voxel blocks on a running Dask scheduler, e.g. tcp://host:8786 (default: here)")
    p.add_argument("--workers", type=int, default=None,
                   help="compute voxel blocks on a local Dask cluster of this many processes (default: here)")
    p.add_argument("--out", required=True, help="output MDF file")
    overwrite_arg(p)
    p.set_defaults(func=run)


def run(args):
    check_output_path(args.out, args.overwrite)
    if args.workers is not None and args.workers < 1:
        raise MPISimError(f"--workers must be >= 1, got {args.workers}")
    scanner = scanner_from_arg(args.scanner)
    shape = parse_shape(args.grid)
    fov = parse_triple(args.fov, "--fov", positive=True) if args.fov else None
    grid = default_grid(scanner, shape, fov, parse_triple(args.center, "--center"))
    tracer = tracer_from_args(args)

    nd = 0.0 if args.noise == "realistic" else float_or_si(args.noise, "--noise", "V/√Hz")
    if not 0 <= nd <= 1e-3:
        raise MPISimError(f"--noise is a noise density in V/√Hz (e.g. 2e-9) or 'realistic', got {args.noise!r}")
    settings = CalibrationSettings(
        delta_concentration=parse_concentration(args.delta_concentration, "--delta-concentration (delta concentration)",
                                                positive=True),
        background_frames=args.background_frames, noise_density=nd, averages=args.averages, noisy=args.noisy,
        min_freq=freq(args.min_freq, "--min-freq"), max_freq=freq(args.max_freq, "--max-freq"), dtype=args.dtype)
    build_system_matrix(scanner, tracer, grid, settings, out=args.out, overwrite=args.overwrite,
                        backend=args.backend, use_cache=not args.no_cache, cache_dir=args.cache_dir,
                        progress=True, compression=args.compression, load=False, scheduler=args.scheduler,
                        workers=args.workers)

    _, C, K, N = read_header(args.out)["data_shape"]
    N -= settings.background_frames
    print(f"wrote {args.out}: system matrix {C} channels × {K} frequencies × {N} voxels "
          f"(grid {'x'.join(map(str, grid.shape))}, FOV {', '.join(f'{f * 1e3:.3g}' for f in grid.fov)} mm, "
          f"{settings.background_frames} background frames)")
