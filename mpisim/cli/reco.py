"""``mpisim reco``: reconstruct a measurement with a system matrix."""

import argparse
import json

import numpy as np

from ..errors import MPISimError
from ..io.atomic import check_output_path
from ..io.frame_file import open_inputs
from ..io.nifti import check_nifti_path, write_nifti
from ..io.reco_mdf import write_reconstruction
from ..plot import plot_reconstruction, save_figure_atomic
from ..reco.reconstruct import reconstruct
from ..reconstruction import RecoParams
from .common import backend_arg, float_or_si, freq, int_list, overwrite_arg

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("reco", help="reconstruct an MDF measurement with a system matrix",
                       description="Reconstruct iron concentration images (mol Fe/L) with regularised Kaczmarz "
                                   "(ART) or CGNR. Every parameter is recorded in the output file.")
    p.add_argument("measurement", help="MDF measurement file")
    p.add_argument("--sm", required=True, action="append",
                   help="MDF system-matrix (calibration) file; repeat it for a multi-contrast reconstruction "
                        "(one matrix per tracer state, e.g. --sm bound.mdf --sm free.mdf: one image per contrast)")
    p.add_argument("--out", required=True, help="output MDF file with /reconstruction")
    p.add_argument("--png", default=None, help="also write a figure of the first frame")
    p.add_argument("--nifti", default=None,
                   help="also write the first frame as NIfTI (.nii/.nii.gz, mol Fe/L, scanner-frame affine in mm) for "
                        "3D Slicer, ITK-SNAP or Horos, where labs draw ROIs (give them back with quantify --roi-mask)")
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
                   help="auto: subtract the mean of the measurement's background frames; none; or an empty-scanner "
                        "MDF file (default auto)")
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
    backend_arg(p)
    overwrite_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args):
    check_output_path(args.out, args.overwrite)
    for out in (args.png, args.nifti):
        if out:
            check_output_path(out, args.overwrite)
    check_nifti_path(args.nifti, "--nifti")
    lam = "auto" if str(args.lam).strip().lower() == "auto" else float_or_si(args.lam, "--lambda")
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
        snr_threshold=float_or_si(args.snr_threshold, "--snr-threshold"), min_freq=freq(args.min_freq, "--min-freq"),
        max_freq=freq(args.max_freq, "--max-freq"), band=args.band, channels=int_list(args.channels, "--channels", True),
        top_k=args.top_k, weighting=args.weighting, frames=int_list(args.frames, "--frames"),
        average=args.average, background=args.background, solver=args.solver, iterations=iterations,
        max_iterations=args.max_iterations, lam=lam, enforce_positive=positive, order=args.order, seed=args.seed,
        transfer_function=args.transfer_function, uncertainty_samples=args.uncertainty_samples)
    reco = reconstruct(params=params, backend=args.backend, progress=True, **open_inputs(args.measurement, args.sm, params))
    write_reconstruction(args.out, reco, overwrite=args.overwrite)
    if args.png:
        save_figure_atomic(lambda p: plot_reconstruction(reco, p), args.png, overwrite=args.overwrite)
    if args.nifti:
        write_nifti(args.nifti, reco, overwrite=args.overwrite)
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
        if reco.contrasts:
            summary["contrasts"] = {c: [float(x) * 1e9 for x in reco.contrast(c).iron_mass] for c in reco.contrasts}
    if args.json:
        print(json.dumps(summary))
        return
    extra = f", total iron {summary['iron_ug'][0]:.4g} µg (frame 0)" if "iron_ug" in summary else ""
    grid_text = f"{info['voxels']} voxels" + (f" × {len(reco.contrasts)} contrasts" if reco.contrasts else "")
    print(f"wrote {args.out}: {reco.num_frames} frame(s), {info['rows']} rows × {grid_text}, "
          f"max {summary['max'] * (1e3 if reco.unit == 'mol/L' else 1):.4g} "
          f"{'mmol/L' if reco.unit == 'mol/L' else reco.unit}{extra}; solved in {summary['solve_seconds']:.3g} s")
    if "contrasts" in summary:
        print("  contrasts (frame 0): " + ", ".join(f"{c} {v[0]:.4g} µg" for c, v in summary["contrasts"].items())
              + " (the image, the NIfTI and the figure show their sum; quantify reports each)")
    band = (f"band {info.get('band')}: {info.get('drive_line_bins', 0)} drive-line and {info.get('contaminated_bins', 0)} "
            f"contaminated bins dropped" if info.get("band") == "auto" else "band: all bins")
    print(f"  λ {info['lambda']:g} ({info['lambda_rule']}), {info['sweeps']} sweeps ({info['stopped_because']}); {band}")
    if info.get("total_iron_visibility", 1e9) < 1.0:
        print(f"  note: the selected rows barely see the total iron (visibility {info['total_iron_visibility']:.2g} < 1; "
              f"a 1D sequence's fundamental is behind the band-stop): totals rest on the positivity prior "
              f"({'on' if info['positivity'] else 'off'}), see docs/getting-started.md (bruker-1d)")
    print(f"  noise: {info.get('noise_source')}; error bars from {summary['uncertainty_samples']} reconstructed noise "
          f"realisations" if summary["uncertainty_samples"] else f"  no error bars: {info.get('uncertainty', 'disabled')}")
    for out in (args.png, args.nifti):
        if out:
            print(f"wrote {out}")
