"""``mpisim titrate`` and ``mpisim track``: detection-limit and longitudinal graft studies."""

import json

import numpy as np

from ..errors import MPISimError
from ..io.atomic import check_output_path
from ..plot import save_figure_atomic
from ..studies import StudySetup, plot_titration, plot_track, titrate, track
from ..units import parse_diameter, parse_iron_per_cell
from .common import backend_arg, overwrite_arg

__all__ = ["add_titrate", "run_titrate", "titration_summary", "add_track", "run_track", "add_parser"]


def add_titrate(sub):
    p = sub.add_parser("titrate", help="detection limit: a dilution series of labelled cells, reconstructed",
                       description="Simulate blank scans and grafts of increasing cell numbers with realistic noise "
                                   "and averaged frames, reconstruct them on a grid that covers every driven axis "
                                   "(19x19x19 on a 3D sequence, 25x25x1 on a 2D one), and report the detection "
                                   "limit by Currie's definition in the image domain (L_C, L_D of the ROI iron, "
                                   "alpha = beta = 5 %, from the blank scans) beside the data-domain L_D of "
                                   "mpisim design (matched filter, position known) and the expected ratio.")
    p.add_argument("--scanner", default="bruker-2d", help="preset or scanner .toml (default bruker-2d)")
    p.add_argument("--cells", default="1e2..1e6", help="range a..b (half-decade steps) or a list (default 1e2..1e6)")
    p.add_argument("--iron-per-cell", default="10pg",
                   help="iron per labelled cell with its unit, e.g. 10pg (0.001 pg - 1 ng; default 10pg)")
    p.add_argument("--tracer-diameter", default="25e-9", help="median core diameter in m, or 25nm (default 25 nm)")
    p.add_argument("--averages", type=int, default=100, help="averaged acquisitions per frame (default 100)")
    p.add_argument("--seeds", type=int, default=3, help="noise realisations per cell number (default 3)")
    p.add_argument("--blank-seeds", type=int, default=8,
                   help="blank scans (no cells) that give the blank's sigma, >= 2 (default 8)")
    _study_output_args(p)
    p.set_defaults(func=run_titrate)


def run_titrate(args):
    ipc = _study_start(args)
    if args.seeds < 1 or args.averages < 1 or args.blank_seeds < 2:
        raise MPISimError("--seeds and --averages must be >= 1, --blank-seeds >= 2")

    setup = StudySetup(scanner=args.scanner, core_diameter=parse_diameter(args.tracer_diameter),
                       averages=args.averages)
    res = titrate(_cells_list(args.cells), ipc, args.seeds, args.blank_seeds, setup=setup, backend=args.backend,
                  progress=None if args.json else print)
    if _study_finish(args, res, plot_titration):
        return
    for line in titration_summary(res, ipc):
        print(line)


def titration_summary(res, ipc):
    """The lines ``mpisim titrate`` prints after the table: grid, Currie's limits, the data domain and the ratio."""
    g, lim = res["grid"], res["limits"]
    im = lim["image"]
    out = [f"grid {'x'.join(str(n) for n in g['shape'])} over {' x '.join(f'{f:.3g}' for f in g['fov_mm'])} mm "
           f"(voxel {' x '.join(f'{v:.3g}' for v in g['voxel_mm'])} mm); ROI {res['roi']}",
           f"blank ROI iron {res['blank_iron_ng_mean']:.3g} ± {res['blank_iron_ng_sd']:.2g} ng "
           f"({res['blank_seeds']} blank scans)",
           f"detection limit (image domain, Currie, alpha = beta = {im['alpha']:g}): L_C {im['L_C_ng']:.3g} ng, "
           f"L_D {im['L_D_ng']:.3g} ng Fe = {im['L_D_ng'] * 1e-12 / ipc:.3g} cells (net ROI iron; recovery of the "
           f"largest graft {lim['recovery']:.3g})",
           f"  sigma0 {im['sigma0_ng']:.3g} ng, {im['method']}"]
    if lim.get("image_predicted"):
        r = lim["ratios"]
        out.append(f"  predicted from the noise propagated through the reconstruction: L_D "
                   f"{lim['image_predicted']['L_D_ng']:.3g} ng (measured / predicted {r['measured_over_predicted']:.3g})")
    out.append(f"data domain (mpisim design: matched filter on the raw spectra, position known): L_D "
               f"{lim['data']['L_D_ng']:.3g} ng Fe; over the rows the reconstruction uses {lim['data_rows']['L_D_ng']:.3g} ng")
    if lim.get("ratios"):
        r = lim["ratios"]
        out.append(f"image / data (sigma0): expected {r['expected_sigma_ratio']:.3g} = rows x{r['rows_over_data']:.3g} "
                   f"· reconstruction and ROI sum x{r['reconstruction_over_rows']:.3g}; measured "
                   f"{r['measured_sigma_ratio']:.3g} (L_D: expected {r['expected_LD_ratio']:.3g}, measured "
                   f"{r['measured_LD_ratio']:.3g}); expected >= 1")
    every = res["detection_limit_cells"]
    out.append(f"every-seed table (information): {'none in range' if every is None else f'{every:.3g} cells'} — "
               f"{res['criterion']}")
    return out


def add_track(sub):
    p = sub.add_parser("track", help="longitudinal graft study: cell death, proliferation, microglial iron",
                       description="Simulate scans of a graft over time and report iron and apparent cells per "
                                   "time point next to the true live cells.")
    p.add_argument("--days", default="0,7,14,30,60,90,150", help="scan days (default 0,7,14,30,60,90,150)")
    p.add_argument("--cells", default="3e5", help="grafted labelled cells (default 3e5)")
    p.add_argument("--iron-per-cell", default="10pg",
                   help="iron per labelled cell with its unit, e.g. 10pg (0.001 pg - 1 ng; default 10pg)")
    p.add_argument("--death-rate", type=float, default=0.02, help="fraction of cells dying per day (default 0.02)")
    p.add_argument("--proliferation-rate", type=float, default=0.0,
                   help="fraction of live cells dividing per day (default 0)")
    p.add_argument("--microglia-retention", type=float, default=0.5, help="fraction of dead cells' iron kept by microglia (default 0.5)")
    p.add_argument("--scanner", default="bruker-2d", help="preset or scanner .toml (default bruker-2d)")
    p.add_argument("--multi-contrast", action="store_true",
                   help="scan with the cell-labelling tracer and one system matrix per state: iron held by cells "
                        "(immobilised) apart from iron released by dead cells (free), and a viable-cell estimate "
                        "from the bound contrast")
    p.add_argument("--free-clearance", type=float, default=0.1,
                   help="with --multi-contrast: fraction of the free iron cleared from the graft per day (default 0.1)")
    _study_output_args(p)
    p.set_defaults(func=run_track)


def run_track(args):
    ipc = _study_start(args)
    try:
        days = [float(x) for x in args.days.split(",")]
        cells = float(args.cells)
    except ValueError:
        raise MPISimError("--days must be numbers like 0,7,14 and --cells a number") from None
    if any(d < 0 for d in days) or cells <= 0:
        raise MPISimError("--days must be >= 0 and --cells > 0")
    res = track(days, cells, ipc, args.death_rate, args.proliferation_rate, args.microglia_retention,
                setup=StudySetup(scanner=args.scanner), backend=args.backend, multi_contrast=args.multi_contrast,
                free_clearance=args.free_clearance)
    if _study_finish(args, res, plot_track):
        return
    if res.get("multi_contrast"):
        print(f"{'day':>5} {'live cells':>11} {'bound true/ng':>14} {'bound MPI/ng':>13} {'free true/ng':>13} "
              f"{'free MPI/ng':>12} {'viable cells (95 %)':>30}")
        for r in res["rows"]:
            lo, hi = r["viable_cells_95"]
            iv = f"{r['viable_cells']:.4g} ({lo:.4g} .. {hi:.4g})"
            print(f"{r['day']:5g} {r['live_cells']:11.4g} {r['bound_true_ng']:14.4g} {r['bound_ng']:13.4g} "
                  f"{r['iron_free_ng']:13.4g} {r['free_ng']:12.4g} {iv:>30}")
        print("95 % interval: the noise propagated through the joint reconstruction and the correction's shape error")
        print(res["limits"])
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


def _cells_list(text):
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


def _study_output_args(p):
    p.add_argument("--png", default=None, help="write the study's figure")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    overwrite_arg(p)
    backend_arg(p)


def _study_start(args):
    """Parse --iron-per-cell and check --png before a study runs."""

    if args.png:
        check_output_path(args.png, args.overwrite)
    return parse_iron_per_cell(args.iron_per_cell)


def _study_finish(args, res, plot):
    """Write the figure; print JSON and return True when --json was asked for."""
    if args.png:
        save_figure_atomic(lambda p: plot(res, p), args.png, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(res, indent=1))
    return args.json


def add_parser(sub):
    add_titrate(sub)
    add_track(sub)
