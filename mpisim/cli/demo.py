"""``mpisim demo``: the whole pipeline on a phantom, into its own folder."""

from ..demo import run_demo
from .common import backend_arg

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("demo", help="run the whole pipeline on a phantom (simulate, system matrix, reconstruct, "
                                    "quantify) and write MDF files and a figure",
                       description="End-to-end showcase on bruker-2d: a phantom with realistic noise, a cached "
                                   "system matrix, Kaczmarz reconstruction and iron/cell quantification.")
    p.add_argument("--out", default="mpisim-demo", help="output folder (default ./mpisim-demo)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output folder's files even if it holds other files too (a folder holding only "
                        "an earlier demo's files is replaced without it)")
    backend_arg(p)
    p.set_defaults(func=run)


def run(args):
    run_demo(args.out, overwrite=args.overwrite, backend=args.backend)
