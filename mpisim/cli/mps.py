"""``mpisim mps``: a magnetic particle spectrometer's measurement of a tracer, simulated."""

import json

from ..errors import MPISimError
from ..io.atomic import check_output_path
from ..mps import MODELS, check_mps, mps
from ..plot import plot_mps, save_figure_atomic
from ..progress import Progress
from .common import add_tracer_args, float_or_si, tracer_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("mps", help="simulate a magnetic particle spectrometer: spectrum, harmonic ratios and the "
                                   "dynamic M-H loop of a tracer model",
                       description="A tracer in a homogeneous sinusoidal field (no gradient), as a magnetic particle "
                                   "spectrometer measures it: the receive signal's harmonics, A3/A1 and A5/A3, and "
                                   "the dynamic M-H loop, for one or several particle models (langevin: equilibrium; anisotropic: "
                                   "equilibrium with uniaxial anisotropy, random easy axes; "
                                   "debye: Langevin times one relaxation time; brown, neel, neel-aligned, neel-brown: "
                                   "Fokker-Planck: Brownian rotation, Néel rotation with precession and random easy "
                                   "axes, the same with the axes along the field, both mechanisms in one particle). "
                                   "--hydrodynamic-diameter is needed by brown and neel-brown, --anisotropy by the "
                                   "neel models.")
    add_tracer_args(p, model=False)
    p.add_argument("--viscosity", default="0.89e-3", help="carrier viscosity in Pa·s (default water, 0.89e-3)")
    p.add_argument("--tau0", default="1e-9",
                   help="Néel attempt time τ0 in s of the Néel-Arrhenius law τ_N = τ0 exp(KV/kT) that --model debye uses "
                        "(default 1e-9; the neel model computes the Néel time itself, from --damping)")
    p.add_argument("--damping", default=None,
                   help="Gilbert damping α of the Néel models (free-diffusion time (1+α²)µ/(2αγkT); default the "
                        "tracer's, 0.1)")
    p.add_argument("--amplitude", default="20mT", help="drive amplitude, peak, e.g. 20mT or 0.02 (T; default 20 mT)")
    p.add_argument("--frequency", default="25kHz", help="drive frequency, e.g. 25kHz (default 25 kHz)")
    p.add_argument("--model", action="append", choices=MODELS, default=None,
                   help="particle model (repeatable, to compare; default langevin)")
    p.add_argument("--png", default=None, help="write the figure here (M-H loop, spectrum, M(t))")
    p.add_argument("--json", action="store_true", help="print the results as JSON (SI units)")
    p.add_argument("--overwrite", action="store_true", help="replace --png if it exists")
    p.set_defaults(func=run)


def _tracer(args):
    base = tracer_from_args(args)
    kw = {"viscosity": float_or_si(args.viscosity, "--viscosity"), "tau0": float_or_si(args.tau0, "--tau0", "s")}
    try:
        return base.with_(**kw)
    except TypeError as e:
        raise MPISimError(str(e)) from None


def run(args):
    if args.png:
        check_output_path(args.png, args.overwrite)
    tracer = _tracer(args)
    amplitude = float_or_si(args.amplitude, "--amplitude", "T")
    frequency = float_or_si(args.frequency, "--frequency", "Hz")
    damping = tracer.damping if args.damping is None else float_or_si(args.damping, "--damping")
    for m in args.model or ["langevin"]:                  # every model checked before any is solved
        check_mps(tracer, amplitude, frequency, m, damping=damping)
    results = []
    for m in args.model or ["langevin"]:
        with Progress(len(tracer.size_quadrature()[0]), m) as bar:
            results.append(mps(tracer, amplitude, frequency, m, damping=damping,
                               progress=lambda done, total: bar.update(1)))
    if args.png:
        save_figure_atomic(lambda p: plot_mps(results, p), args.png, overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"results": [r.as_dict() for r in results]}, indent=1))
        return
    parts = [f"cores {tracer.core_diameter * 1e9:g} nm" + (f" (σ {tracer.size_sigma:g})" if tracer.size_sigma else "")]
    if tracer.hydrodynamic_diameter is not None:
        parts.append(f"hydrodynamic {tracer.hydrodynamic_diameter * 1e9:g} nm, η {tracer.viscosity:g} Pa·s")
    if tracer.anisotropy is not None:
        parts.append(f"K {tracer.anisotropy:g} J/m³" + (f", α {damping:g}" if any(m.startswith("neel") for m in args.model or ()) else ""))
    print(f"MPS of {tracer.name} ({'; '.join(parts)}): {amplitude * 1e3:g} mT (peak, µ0H) at {frequency / 1e3:g} kHz")
    print(f"{'model':12s} {'A3/A1':>8s} {'A5/A3':>8s} {'M peak / (A·m²/kg Fe)':>22s}")
    for r in results:
        print(f"{r.model:12s} {r.ratio(3, 1):8.4f} {r.ratio(5, 3):8.4f} {abs(r.moment).max():22.2f}")
    if args.png:
        print(f"wrote {args.png}")
