"""``mpisim quantify``: iron and cells from a reconstruction."""

import json

from ..io.atomic import check_output_path
from ..io.reco_mdf import read_reconstruction
from ..plot import plot_cells, save_figure_atomic
from ..quant import parse_roi, quantify
from ..units import parse_iron_per_cell, parse_mass
from .common import overwrite_arg

__all__ = ["add_parser", "run"]


def add_parser(sub):
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
    overwrite_arg(p)
    p.set_defaults(func=run)


def run(args):
    ipc = parse_iron_per_cell(args.iron_per_cell)
    if args.png:
        check_output_path(args.png, args.overwrite)
    reco = read_reconstruction(args.reconstruction)
    ref_iron = parse_mass(args.reference_iron, "--reference-iron", (1e-18, 1e-3)) if args.reference_iron else None
    rois = [parse_roi(r) for r in args.roi]
    reference = parse_roi(args.reference) if args.reference is not None else None
    result = quantify(reco, rois, ipc, args.frame, reference, ref_iron)
    results, extra = result.rois, result.as_dict()
    if args.png:
        save_figure_atomic(lambda p: plot_cells(reco, ipc, p, args.frame, extra["calibration_factor"]), args.png,
                           overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"file": args.reconstruction, "frame": args.frame, "iron_per_cell_pg": ipc * 1e15,
                          **{k: v for k, v in extra.items() if k != "rois"}, "rois": extra["rois"]}, indent=1))
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
