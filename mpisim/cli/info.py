"""``mpisim info``: what an MDF file holds (metadata only)."""

from ..errors import printable
from ..io.mdf import format_info, read_header

__all__ = ["add_parser", "run"]


def add_parser(sub):
    i = sub.add_parser("info", help="summarise MDF files", description="Print scanner, sequence, shape and flags.")
    i.add_argument("files", nargs="+", help="MDF files")
    i.set_defaults(func=run)


def run(args):
    for i, path in enumerate(args.files):
        if i:
            print()
        print(printable(format_info(read_header(path))))   # names and descriptions come from the file
