"""``mpisim convert``: MDF measurements between time and frequency domain."""

from ..io.atomic import check_output_path
from ..io.convert import convert
from .common import freq, overwrite_arg

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("convert", help="convert an MDF measurement between time and frequency domain",
                       description="Write a copy of an MDF measurement as spectra (optionally only a frequency "
                                   "band, to shrink a large recording before reconstruction) or back as time "
                                   "samples. The input file is only read.")
    p.add_argument("input", help="MDF measurement file (only read)")
    p.add_argument("output", help="MDF file to write")
    p.add_argument("--to", default="frequency", choices=["frequency", "time"],
                   help="spectra or time samples (default frequency)")
    p.add_argument("--min-freq", default="0", help="keep bins from this frequency in Hz (default 0)")
    p.add_argument("--max-freq", default="0", help="keep bins up to this frequency in Hz (default: all)")
    p.add_argument("--complex64", action="store_true", help="store spectra in single precision")
    overwrite_arg(p)
    p.set_defaults(func=run)


def run(args):
    check_output_path(args.output, args.overwrite)
    shape, nbins = convert(args.input, args.output, args.to, freq(args.min_freq, "--min-freq"),
                           freq(args.max_freq, "--max-freq"), args.overwrite,
                           "complex64" if args.complex64 else None)
    print(f"wrote {args.output}: {args.to}-domain data {tuple(shape)}" +
          (f", {nbins} frequency bins" if args.to == "frequency" else ""))
