"""``mpisim quantify``: iron and cells from a reconstruction."""

import json
import os
import warnings

from ..io.atomic import check_input_file, check_output_path
from ..errors import MPISimError
from ..io.frame_file import open_inputs
from ..io.nifti import MaskRoi, check_nifti_path, write_nifti
from ..io.reco_mdf import read_reconstruction
from ..plot import plot_cells, save_figure_atomic
from ..quant import cells_map, parse_fiducial, parse_roi, quantify
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
                   help="[name=]sphere:x,y,z,r | [name=]box:x0,x1,y0,y1,z0,z1 | [name=]cylinder:x0,y0,z0,x1,y1,z1,r "
                        "(axis between the two points, flat ends: a needle track) | all | chambers (the file's "
                        "phantom) | chambers:concentration (mm; repeatable; default all)")
    p.add_argument("--reference", default=None, help="ROI of a reference sample of known iron (calibration)")
    p.add_argument("--reference-iron", default=None, help="its iron mass with its unit, e.g. 5ug")
    p.add_argument("--frame", type=int, default=0, help="frame to quantify, 0-based (default 0)")
    p.add_argument("--estimator", choices=("auto", "gtm", "roi-sum"), default="auto",
                   help="gtm: ROI amounts corrected through the reconstruction's own resolution, intervals with "
                        "the correction's shape error (needs the measurement and system matrix); roi-sum: the image "
                        "summed over each ROI (depends on the ROI's size); auto (default): gtm when the files are "
                        "found, else roi-sum, said in the output")
    p.add_argument("--measurement", default=None,
                   help="the measurement the reconstruction was made from (default: the file it records, looked "
                        "up beside the reconstruction, then in the working directory)")
    p.add_argument("--sm", default=None, action="append",
                   help="its system matrix (default: the file the reconstruction records); a multi-contrast "
                        "reconstruction: one per contrast, in its order (repeat --sm)")
    p.add_argument("--fiducial", action="append", default=[],
                   help="NAME=SHAPE:...=AMOUNT[,sample=R]: a reference sample of known iron in the field of view, "
                        "e.g. ref1=sphere:10,0,0,3=5ug,sample=1 (an ROI of 3 mm around a reference sphere of 1 mm "
                        "radius; mm; the amount with its unit; sample=R lets the tracer correction anchor on it); two or more make a calibration line that every amount "
                        "is put through, its uncertainty in the intervals (repeatable)")
    p.add_argument("--tracer-correction", choices=("auto", "on", "off"), default="auto",
                   help="with fiducials: fit the sample's spectrum (signal scale, Debye relaxation) anchored by "
                        "their known iron and outline, and reconstruct again with it divided out (auto: whenever "
                        "fiducials with their sample=R and the gtm estimator are there; default auto)")
    p.add_argument("--roi-mask", action="append", default=[],
                   help="a NIfTI mask (.nii/.nii.gz) drawn on an exported image (3D Slicer, ITK-SNAP, Horos): "
                        "resampled to the grid with partial voxels weighted (repeatable)")
    p.add_argument("--nifti", default=None, help="also write the cell map (cells per voxel) as NIfTI (of the "
                   "reconstruction as given, scaled by the calibration; not of a tracer-corrected one)")
    p.add_argument("--png", default=None, help="write a cell-count map (as --nifti)")
    p.add_argument("--json", action="store_true", help="print JSON")
    overwrite_arg(p)
    p.set_defaults(func=run)


def _recorded(reco_path, recorded, given, what):
    """The file behind the reconstruction: ``given``, else the one it records, beside it or in the working
    directory; None when it cannot be found (the estimator falls back and says so)."""
    if given:
        return str(check_input_file(given))
    if not recorded or recorded.startswith("("):
        return None
    for cand in (os.path.join(os.path.dirname(os.path.abspath(reco_path)), recorded), recorded):
        if os.path.isfile(cand):
            return cand
    return None


def _inputs(args, reco):
    """measurement/system_matrix/empty/tf for quantify's gtm estimator, or {} for roi-sum."""
    if args.estimator == "roi-sum":
        return {}
    meas = _recorded(args.reconstruction, str(reco.info.get("measurement", "")), args.measurement, "measurement")
    if reco.contrasts:                    # one matrix per contrast, in the reconstruction's order
        given = list(args.sm or [])
        recorded = [str(x) for x in (reco.info.get("system_matrices") or [])]
        if given and len(given) != len(reco.contrasts):
            raise MPISimError(f"--sm: the reconstruction has {len(reco.contrasts)} contrasts "
                              f"({', '.join(reco.contrasts)}): give one system matrix each, in that order")
        sm = [_recorded(args.reconstruction, r, g, "sm") for r, g in
              zip(recorded or [""] * len(reco.contrasts), given or [None] * len(reco.contrasts))]
        sm = None if len(sm) != len(reco.contrasts) or any(x is None for x in sm) else sm
    else:
        if args.sm and len(args.sm) > 1:
            raise MPISimError("--sm was given several times, but the reconstruction has one contrast")
        sm = _recorded(args.reconstruction, str(reco.info.get("system_matrix", "")), (args.sm or [None])[0], "sm")
    if meas is None or sm is None or reco.params is None:
        if args.estimator == "gtm":
            raise MPISimError("--estimator gtm needs the measurement and the system matrix the reconstruction was "
                              "made from (--measurement, --sm)")
        return {}
    try:
        return open_inputs(meas, sm, reco.params)
    except MPISimError as e:
        if args.estimator == "gtm" or args.measurement or args.sm:   # files the user named: their error
            raise
        warnings.warn(f"the measurement and system matrix the reconstruction records cannot be used ({e})")
        return {}                       # auto: the image sum, and the output says why


def run(args):
    ipc = parse_iron_per_cell(args.iron_per_cell)
    for out in (args.png, args.nifti):
        if out:
            check_output_path(out, args.overwrite)
    check_nifti_path(args.nifti, "--nifti")
    reco = read_reconstruction(args.reconstruction)
    ref_iron = parse_mass(args.reference_iron, "--reference-iron", (1e-18, 1e-3)) if args.reference_iron else None
    rois = [parse_roi(r) for r in args.roi] + [MaskRoi(m) for m in args.roi_mask]
    fiducials = [parse_fiducial(f) for f in args.fiducial]
    reference = parse_roi(args.reference) if args.reference is not None else None
    inputs = _inputs(args, reco)
    result = quantify(reco, rois, ipc, args.frame, reference, ref_iron, estimator=args.estimator, fiducials=fiducials,
                      tracer_correction=args.tracer_correction, **inputs)
    results, extra = result.rois, result.as_dict()
    if args.png:
        save_figure_atomic(lambda p: plot_cells(reco, ipc, p, args.frame, extra["calibration_factor"]), args.png,
                           overwrite=args.overwrite)
    if args.nifti:
        write_nifti(args.nifti, cells_map(reco.volume(args.frame), reco.grid.voxel_volume, ipc) *
                    extra["calibration_factor"], reco.grid, unit="cells", overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"file": args.reconstruction, "frame": args.frame, "iron_per_cell_pg": ipc * 1e15,
                          **{k: v for k, v in extra.items() if k != "rois"}, "rois": extra["rois"]}, indent=1))
        return
    print(f"{args.reconstruction}, frame {args.frame}: iron per cell {ipc * 1e15:g} pg"
          + (f", calibrated by reference ×{extra['calibration_factor']:.4g}" if args.reference else ""))
    _table(results)
    print(f"estimator: {extra['estimator']} ({extra['why']})")
    cal = extra.get("calibration")
    if cal:
        print(f"calibration line from {len(cal['points'])} fiducials: measured = {cal['slope']:.4g} (± "
              f"{cal['slope_sigma']:.2g}) × known, scatter of the fiducials {cal['scatter']:.2g}; "
              + ", ".join(f"{p['fiducial']} {p['measured_ng']:.4g} ng measured for {p['known_ng']:.4g} ng"
                          for p in cal["points"]))
    print(f"({extra['interval']}; noise: {extra['noise_source']}, {extra['noise_samples']} realisations)")
    lds = [r for r in results if r.detection_limit == r.detection_limit]
    if lds:
        print("detection (Currie, image domain, α = β = 5 %, from the noise σ): "
              + "; ".join(f"{r.name}{f' ({r.contrast})' if r.contrast else ''} L_C {r.critical_level * 1e12:.3g} ng, "
                          f"L_D {r.detection_limit * 1e12:.3g} ng"
                          + ("" if r.iron > r.critical_level else " — NOT DETECTED") for r in lds[:8])
              + ("; ..." if len(lds) > 8 else ""))
    if any(r.truth is not None for r in results):
        print("(truth: the simulated phantom's iron inside each ROI, recorded in the file)")
    for w in result.warnings:
        print(f"warning: {w}")
    for out in (args.png, args.nifti):
        if out:
            print(f"wrote {out}")


def _table(results):
    """The per-ROI table: iron, σ, 95 % interval, cells; concentration for chambers, truth for simulations."""
    chambers = any(r.concentration is not None for r in results)
    truth = any(r.truth is not None for r in results)
    contrast = any(r.contrast for r in results)
    print((f"{'contrast':12} " if contrast else "") + f"{'ROI':18} {'voxels':>6} {'iron / ng':>11} {'noise σ':>9}  {'95 % interval / ng':>23} {'cells':>10} "
          f"{'noise σ':>9}" + (f"  {'mmol/L':>8}" if chambers else "") + (f"  {'truth / ng':>11}" if truth else ""))
    for r in results:
        ok = r.iron_low == r.iron_low
        iv = (f"{r.iron_low * 1e12:#.4g}".rstrip(".") + " .. " + f"{r.iron_high * 1e12:#.4g}".rstrip(".")) if ok \
            else "n/a"
        sg = f"{r.iron_sigma * 1e12:9.2g}" if r.iron_sigma == r.iron_sigma else f"{'n/a':>9}"
        cs = f"{r.cells_sigma:9.2g}" if r.cells_sigma == r.cells_sigma else f"{'n/a':>9}"
        conc = f"  {r.concentration * 1e3:8.3g}" if r.concentration is not None else ("" if not chambers else " " * 10)
        tr = f"  {r.truth * 1e12:11.4g}" if r.truth is not None else ""
        print((f"{r.contrast[:12]:12} " if contrast else "") + f"{r.name[:18]:18} {r.voxels:6d} {r.iron * 1e12:11.4g} {sg}  {iv:>23} {r.cells:10.4g} {cs}{conc}{tr}")
