"""Option groups and parsers shared by the commands (defined once)."""

from pathlib import Path
import sys

from ..errors import MPISimError
from ..particles import TRACER_PRESETS, Tracer, default_tracer
from ..scanner import PRESETS, get_scanner, read_scanner_toml
from ..units import BY_UNIT, parse_diameter, parse_quantity

__all__ = ["float_or_si", "freq", "backend_arg", "tracer_from_args", "add_tracer_args", "scanner_from_arg",
           "int_list", "overwrite_arg"]


def float_or_si(text, name, unit=""):
    """Parse a number in ``unit`` (SI): bare ('25e-9') or with a suffix of that unit ('25nm' for m,
    '25kHz' for Hz, '5ms' for s, '80mT' for T; :data:`mpisim.units.BY_UNIT`); a suffix of another
    unit is refused."""
    units = BY_UNIT.get(unit, {})
    hint = f"a number in {unit}" + (f" or with one of {', '.join(units)}" if units else "") if unit else "a number"
    return parse_quantity(text, name, hint, units)


def freq(text, name):
    return float_or_si(text, name, "Hz")


def backend_arg(p):
    p.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"],
                   help="array backend: cupy on a GPU, numpy on the CPU (default: auto)")


def tracer_from_args(args):
    """The tracer the command line describes: ``--tracer`` (a preset) or a magnetite tracer of
    ``--tracer-diameter``, with the relaxation options, in ``--tracer-state``."""
    preset = getattr(args, "tracer", None)
    if preset is not None:
        if getattr(args, "tracer_diameter", None) is not None or getattr(args, "relaxation_time", None) is not None:
            raise MPISimError(f"--tracer {preset} sets its own core diameter and relaxation: leave out "
                              "--tracer-diameter and --relaxation-time")
        t = TRACER_PRESETS[preset]()
        if getattr(args, "size_sigma", None) is not None:
            t = t.with_(size_sigma=float(args.size_sigma))
    else:
        t = _magnetite(args)
    k, dh = getattr(args, "anisotropy", None), getattr(args, "hydrodynamic_diameter", None)
    if k is not None or dh is not None:
        change = {}
        if k is not None:
            change["anisotropy"] = float_or_si(k, "--anisotropy", "J/m³")
            if not 0 < change["anisotropy"] <= 1e6:
                raise MPISimError(f"--anisotropy must be an anisotropy constant K of 0-1e6 J/m³, got {k!r}")
        if dh is not None:
            change["hydrodynamic_diameter"] = parse_diameter(dh, "--hydrodynamic-diameter")
        t = t.with_(**change)                   # a --relaxation-time given too stays the Debye τ (as mps compares)
    model = getattr(args, "particle_model", None) or "langevin"
    if model != t.model:
        t = t.with_(model=model)
    state = getattr(args, "tracer_state", None) or "mobile"
    return t.in_state(state)


def _magnetite(args):
    d = parse_diameter(args.tracer_diameter if args.tracer_diameter is not None else "25e-9")
    kw = {}
    if getattr(args, "relaxation_time", None) is not None:
        kw["relaxation_time"] = float_or_si(args.relaxation_time, "--relaxation-time", "s")
        if not 0 <= kw["relaxation_time"] <= 1e-3:
            raise MPISimError(f"--relaxation-time must be 0-1 ms in s (e.g. 3e-6), got {args.relaxation_time!r}")
    if getattr(args, "size_sigma", None):
        kw["size_sigma"] = float(args.size_sigma)
    return default_tracer(d, **kw) if not kw else Tracer(core_diameter=d, name=f"magnetite-{d * 1e9:g}nm", **kw)


def add_tracer_args(p, model=True):
    """The tracer options; ``model``: also --model (the forward model's particle model; mps has its own)."""
    p.add_argument("--tracer-diameter", default=None, metavar="D",
                   help="median core diameter in m (25e-9, or 25nm; default 25 nm)")
    p.add_argument("--relaxation-time", default=None, metavar="TAU", help="Debye relaxation time in s (default: none, equilibrium Langevin)")
    p.add_argument("--size-sigma", default=None, type=float, metavar="S",
                   help="σ of a log-normal core-size distribution (default: monodisperse)")
    p.add_argument("--tracer", default=None, choices=list(TRACER_PRESETS),
                   help="a tracer preset: cell-label (25 nm core, Néel and Brown relaxation; "
                        "mpisim.particles.cell_label_tracer), resovist-like, perimag-like, synomag-like (multicore "
                        "and nanoflower tracers in the manner of the products; their docstrings give the sources "
                        "and say which values are assumed)")
    p.add_argument("--anisotropy", default=None, metavar="K",
                   help="effective anisotropy constant K in J/m³ (Néel relaxation τ_N = τ0 exp(K V / k_B T))")
    p.add_argument("--hydrodynamic-diameter", default=None, metavar="D",
                   help="hydrodynamic diameter (e.g. 30nm; Brown relaxation in water)")
    if model:
        p.add_argument("--model", dest="particle_model", default="langevin",
                       choices=["langevin", "brown", "anisotropic"],
                       help="particle model of the forward model: langevin (equilibrium, Debye factor of a "
                            "relaxation time; default), brown (Brownian rotation by Fokker-Planck; needs "
                            "--hydrodynamic-diameter), anisotropic (equilibrium with uniaxial anisotropy, random "
                            "easy axes; needs --anisotropy)")
    p.add_argument("--tracer-state", default="mobile", choices=["mobile", "immobilised"],
                   help="mobile (free, default) or immobilised (bound in cells: Brown relaxation blocked); "
                        "a system matrix per state makes a multi-contrast reconstruction (reco --sm A --sm B)")


def scanner_from_arg(value):
    """The scanner of ``--scanner``: a preset, or a TOML file validated key by key; names on stderr
    (stdout may carry JSON) the optional keys a TOML file left out and that take mpisim's defaults."""

    if value in PRESETS or not (str(value).endswith(".toml") or Path(value).exists()):
        return get_scanner(value)
    scanner, filled = read_scanner_toml(value)
    if filled:
        print(f"note: {value} leaves out {', '.join(filled)}: mpisim's defaults are used "
              f"(they are recorded in the output)", file=sys.stderr)
    return scanner


def int_list(text, name, one_based=False, limit=None):
    """'1,2,5-7' → (1, 2, 5, 6, 7). ``limit``: every value must be below it (checked on the range
    ends, before anything is expanded)."""
    if not text:
        return ()
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-"))
                if b < a:
                    raise MPISimError(f"{name}: range {part!r} runs backwards")
                if limit is not None and b - one_based >= limit:
                    raise MPISimError(f"{name}: {b} is beyond the last of {limit} (got {text!r})")
                if b - a >= 10_000_000:
                    raise MPISimError(f"{name}: range {part!r} is too long (10 million values at most)")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise MPISimError(f"{name} must be integers like 1,2 or 0-9, got {text!r}") from None
    if limit is not None and any(x - one_based >= limit for x in out):
        raise MPISimError(f"{name}: values must be below {limit + one_based}, got {text!r}")
    if one_based:
        if any(x < 1 for x in out):
            raise MPISimError(f"{name} are 1-based, got {text!r}")
        out = [x - 1 for x in out]
    return tuple(out)


def overwrite_arg(p):
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")
