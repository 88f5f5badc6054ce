"""``mpisim design`` (figures of merit of one scanner) and ``mpisim sweep`` (many designs, on Dask)."""

import json

from ..design import DesignSettings, as_dict, as_table, figures_of_merit
from ..errors import MPISimError
from ..io.atomic import atomic_path, check_output_path
from ..sweep import parse_vary
from ..sweep import run_sweep as sweep
from ..units import parse_iron_per_cell
from .common import add_tracer_args, float_or_si, scanner_from_arg, tracer_from_args

__all__ = ["add_parser", "run_design", "run_sweep"]


def _design_settings_args(p):
    p.add_argument("--averages", type=int, default=1, help="drive cycles averaged per frame (default 1)")
    p.add_argument("--iron-per-cell", default="10pg", help="iron per labelled cell, e.g. 10pg (default 10 pg)")
    p.add_argument("--body-radius", default="0.15",
                   help="radius in m of the body cylinder of the SAR estimate (default 0.15, an adult torso)")
    p.add_argument("--pns-limit", default="7e-3",
                   help="magnetostimulation threshold, peak drive field in T (default 7e-3; see docs/howto-design.md)")


def add_parser(sub):
    p = sub.add_parser("design", help="figures of merit of a scanner design: FOV, frame rate, resolution, "
                                      "detection limit, drive-field safety",
                       description="Figures of merit of a scanner (preset or TOML) and tracer, each with its unit "
                                   "and how it was obtained: field of view and trajectory coverage, repetition "
                                   "time and frame rate, PSF FWHM per driven axis beside the Langevin estimate, "
                                   "detection limit in iron and cells (data domain: Currie's L_D at alpha = beta = "
                                   "5 % of the matched filter, position known; a reconstruction's ROI does worse, "
                                   "see mpisim titrate), drive-field peak, dB/dt and SAR against published limits.")
    p.add_argument("scanner", help="scanner preset (bruker-1d, -2d, -3d) or scanner .toml file")
    add_tracer_args(p)
    _design_settings_args(p)
    p.add_argument("--json", action="store_true", help="print the figures as JSON (SI units, named keys)")
    p.add_argument("--out", default=None, help="also write the JSON to this file (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run_design)

    s = sub.add_parser("sweep", help="figures of merit over a grid of designs, on Dask (local cluster by default)",
                       description="Vary scanner, tracer or design fields over grids or lists and compute every "
                                   "design's figures of merit on Dask: a local cluster by default, --scheduler for "
                                   "an existing one. Rows stream to DIR/results.csv as designs finish; "
                                   "DIR/figures.png plots each figure against the varied parameters. Keys and "
                                   "values: see docs/howto-design.md.")
    s.add_argument("scanner", help="base scanner: preset or .toml file")
    s.add_argument("--vary", action="append", default=[], metavar="KEY=VALUES",
                   help="e.g. selection.gradient=1:7:7 or tracer.core_diameter=20e-9,25e-9 (repeatable; required)")
    s.add_argument("--out", required=True, help="output folder (results.csv, figures.png, sweep.json)")
    s.add_argument("--workers", type=int, default=None,
                   help="local Dask worker processes (default: one per CPU core; 0 = no Dask, in this process)")
    s.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786 "
                                                     "(default: start a local cluster)")
    s.add_argument("--resume", action="store_true", help="complete an interrupted sweep in --out")
    add_tracer_args(s)
    _design_settings_args(s)
    s.set_defaults(func=run_sweep)


def _settings(args):
    ipc = parse_iron_per_cell(args.iron_per_cell)
    return DesignSettings(averages=args.averages, iron_per_cell=ipc,
                          body_radius=float_or_si(args.body_radius, "--body-radius", "m"),
                          pns_limit=float_or_si(args.pns_limit, "--pns-limit", "T"))


def run_design(args):
    if args.out:
        check_output_path(args.out, args.overwrite)
    scanner = scanner_from_arg(args.scanner)
    tracer = tracer_from_args(args)
    figs = figures_of_merit(scanner, tracer, _settings(args))
    doc = {"scanner": scanner.name, "tracer": tracer.to_dict(), "figures": as_dict(figs)}
    if args.out:
        with atomic_path(args.out, args.overwrite) as tmp:
            with open(tmp, "w") as fh:
                json.dump(doc, fh, indent=1)
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    tau = tracer.effective_relaxation_time
    relax = (f"Brownian rotation by Fokker–Planck, τ_B {tracer.brown_time * 1e6:.3g} µs at zero field"
             if tracer.model == "brown" else f"Debye τ {tau * 1e6:.3g} µs" if tau else "no relaxation")
    print(f"scanner {scanner.name}: figures of merit; tracer {tracer.name} ({tracer.core_diameter * 1e9:g} nm cores, "
          f"particle model {tracer.model}, {relax})")
    print(as_table(figs))
    if any(f.key.startswith("resolution_") and f.value != f.value and not f.key.endswith("_langevin")
           for f in figs.values()):
        print("n/a resolution: the PSF does not fall to half its peak inside the field of view (strong relaxation "
              "smears it along the path); the Langevin estimate ignores relaxation")
    if args.out:
        print(f"wrote {args.out}")


def run_sweep(args):
    if args.workers is not None and args.workers < 0:
        raise MPISimError(f"--workers must be >= 0, got {args.workers}")
    vary = parse_vary(args.vary)
    scanner = scanner_from_arg(args.scanner)
    rows = sweep(scanner, vary, args.out, tracer=tracer_from_args(args), settings=_settings(args),
                 workers=args.workers, scheduler=args.scheduler, resume=args.resume)
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"wrote {args.out}/results.csv: {len(rows)} designs ({len(failed)} failed, reasons in its status column)")
    if len(rows) > len(failed):
        print(f"wrote {args.out}/figures.png")
    print(f"wrote {args.out}/sweep.json")
