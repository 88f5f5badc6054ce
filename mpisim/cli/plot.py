"""``mpisim plot``: a figure of any MDF file."""

from pathlib import Path

from ..errors import MPISimError
from ..io.atomic import check_output_path
from ..io.mdf import read_header, read_mdf
from ..io.reco_mdf import read_reconstruction
from ..io.sm_file import load_system_matrix
from ..plot import plot_measurement, plot_reconstruction, plot_system_matrix, save_figure_atomic
from .common import overwrite_arg

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("plot", help="a figure of any MDF file (measurement, system matrix or reconstruction)",
                       description="Draw an MDF file: a measurement's signal and spectrum, the system-function "
                                   "images of a calibration's strongest rows (only those rows are read), or a "
                                   "reconstruction's slices. The input is only read.")
    p.add_argument("file", help="MDF file (measurement, calibration or reconstruction)")
    p.add_argument("--out", default=None, help="PNG path (default: FILE with .png; FILE.plot.png if that is FILE)")
    p.add_argument("--frame", type=int, default=None,
                   help="frame to draw, 0-based among the foreground frames as reco --frames counts (default: the first)")
    overwrite_arg(p)
    p.set_defaults(func=run)


def run(args):
    info = read_header(args.file)                 # the input first: a clear error if it is not MDF
    out = args.out or str(Path(args.file).with_suffix(".png"))
    if Path(out).resolve() == Path(args.file).resolve():
        if args.out:
            raise MPISimError(f"{args.out}: --out is the input file; choose another name")
        out = str(Path(args.file).with_suffix(".plot.png"))
    check_output_path(out, args.overwrite)
    if "reconstruction" in info:
        reco = read_reconstruction(args.file)
        save_figure_atomic(lambda p: plot_reconstruction(reco, p, args.frame or 0), out, overwrite=args.overwrite)
        kind = "reconstruction"
    elif "calibration" in info:
        sm = load_system_matrix(args.file)
        save_figure_atomic(lambda p: plot_system_matrix(sm, p), out, overwrite=args.overwrite)
        kind = "system matrix"
    elif "data_shape" in info:
        meas = read_mdf(args.file)
        save_figure_atomic(lambda p: plot_measurement(meas, p, args.frame), out, overwrite=args.overwrite)
        kind = "measurement"
    else:
        raise MPISimError(f"{args.file}: nothing to plot (no measurement, calibration or reconstruction data)")
    print(f"wrote {out} ({kind})")
