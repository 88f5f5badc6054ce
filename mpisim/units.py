"""Numbers with unit suffixes, as typed on the command line ('25nm', '10pg', '80kHz', '50mmol/L'),
converted to SI (m, kg, Hz, mol/L)."""

import math

from .errors import MPISimError

__all__ = ["MASS", "SUFFIXES", "parse_quantity", "parse_mass", "IRON_PER_CELL_LIMITS", "parse_iron_per_cell",
           "format_mass", "MAGNETITE_IRON_MOL_PER_L", "CONCENTRATION", "parse_concentration", "parse_diameter"]

MASS = {"pg": 1e-15, "ng": 1e-12, "ug": 1e-9, "µg": 1e-9, "mg": 1e-6, "kg": 1.0, "g": 1e-3}
BY_UNIT = {"m": {"nm": 1e-9, "um": 1e-6, "µm": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0},
           "Hz": {"hz": 1.0, "khz": 1e3, "mhz": 1e6},
           "s": {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0},
           "T": {"ut": 1e-6, "µt": 1e-6, "mt": 1e-3, "t": 1.0}}
"""Suffixes an option of each SI unit accepts (an option in another unit, or without one, accepts a bare
number only): '--body-radius 10kHz' is refused, not read as 10 km."""

SUFFIXES = {"nm": 1e-9, "um": 1e-6, "µm": 1e-6, "mm": 1e-3, "m": 1.0, "khz": 1e3, "mhz": 1e6, "hz": 1.0,
            "mmol/l": 1e-3, "mol/l": 1.0, "mm/l": 1e-3, **MASS}


def parse_quantity(text, name, hint="", units=SUFFIXES):
    """'25e-9', '25nm', '10pg' → float in SI units; ``units`` maps lower-case suffixes to factors."""
    t = str(text).strip()
    low = t.lower()
    for suf in sorted(units, key=len, reverse=True):
        if low.endswith(suf) and t[: -len(suf)].strip():
            try:
                return float(t[: -len(suf)]) * units[suf]
            except ValueError:
                break
    try:
        return float(t)
    except ValueError:
        raise MPISimError(f"{name} must be {hint or 'a number'}, got {text!r}") from None


def _refuse_bare(t, name, examples):
    """A bare number where an amount needs its unit: a one-line error with ``examples``."""
    try:
        float(t)
    except ValueError:
        return
    raise MPISimError(f"{name} needs a unit: write e.g. {examples}, got {t!r}")


def parse_mass(text, name="iron per cell", limits=None):
    """'10pg', '5ng', '2.5ug' → kg (> 0). A unit is required: a bare number is refused, since
    '10' could mean 10 pg or 10 kg. ``limits`` = (lowest, highest) in kg refuses absurd values."""
    t = str(text).strip()
    _refuse_bare(t, name, f"{t}pg or {t}ng (pg, ng, ug, mg, g, kg)")
    v = parse_quantity(t, name, "a mass with a unit like 10pg or 5ng", MASS)
    if not v > 0 or not math.isfinite(v):
        raise MPISimError(f"{name} must be > 0, got {text!r}")
    if limits is not None and not limits[0] <= v <= limits[1]:
        raise MPISimError(f"{name} {text} is outside the plausible range {format_mass(limits[0])} to "
                          f"{format_mass(limits[1])}")
    return v


IRON_PER_CELL_LIMITS = (1e-18, 1e-12)
"""Plausible iron per labelled cell in kg: 0.001 pg to 1 ng (labelled cells carry about 1–30 pg)."""


def parse_iron_per_cell(text, name="--iron-per-cell"):
    """Iron per labelled cell in kg, with a unit ('10pg'), within :data:`IRON_PER_CELL_LIMITS`."""
    return parse_mass(text, name, IRON_PER_CELL_LIMITS)


def format_mass(kg):
    """A mass in kg as text with a sensible unit: 1e-14 → '10 pg'."""
    for unit, f in (("kg", 1.0), ("g", 1e-3), ("mg", 1e-6), ("µg", 1e-9), ("ng", 1e-12), ("pg", 1e-15)):
        if abs(kg) >= f:
            return f"{kg / f:.4g} {unit}"
    return f"{kg / 1e-15:.3g} pg"


MAGNETITE_IRON_MOL_PER_L = 67.0
"""Iron concentration of solid magnetite (5.17 g/cm³ × 0.7236 / 55.845 g/mol ≈ 67 mol/L): no sample exceeds it."""


CONCENTRATION = {"mol/l": 1.0, "mmol/l": 1e-3, "umol/l": 1e-6, "µmol/l": 1e-6}
"""Concentration suffixes (lower case) → mol/L: '50mmol/L', '50mM', '0.05M', '0.05mol/L'."""


def parse_concentration(text, name="--concentration", positive=False):
    """Iron concentration in mol/L from '50mmol/L', '50mM', '0.05mol/L' or '0.05M'. A unit is required,
    as for every amount on the command line: a bare '50' could mean 50 mmol/L or 50 mol/L. Refuses
    values above solid magnetite's 67 mol/L, NaN and negative (or, with ``positive``, zero) ones."""
    t = str(text).strip()
    _refuse_bare(t, name, f"{t}mmol/L or {t}mol/L (mol/L, mmol/L, µmol/L, M, mM)")
    for molar, written in (("mM", "mmol/L"), ("µM", "µmol/L"), ("uM", "µmol/L"), ("M", "mol/L")):
        if t.endswith(molar) and not t.lower().endswith("mol/l"):        # molar: case matters (m is milli)
            t = t[: -len(molar)] + written
            break
    v = parse_quantity(t, name, "a concentration with its unit, e.g. 50mmol/L or 0.05mol/L", CONCENTRATION)
    if not math.isfinite(v):
        raise MPISimError(f"{name} must be a finite concentration, got {text!r} (NaN/Inf)")
    if v < 0 or (positive and v == 0):
        raise MPISimError(f"{name}: {'negative' if v < 0 else 'zero'} concentration {text!r}; it must be "
                          f"{'> 0' if positive else '>= 0'} mol/L")
    if v >= MAGNETITE_IRON_MOL_PER_L:
        raise MPISimError(f"{name} {text} exceeds the iron in solid magnetite (67 mol/L)")
    return v


def parse_diameter(text, name="--tracer-diameter"):
    """Core diameter in m from '25e-9', '25nm' or a bare '25' (read as nm); 1–200 nm."""
    d = parse_quantity(text, name, "a diameter in m (25e-9) or nm (25nm)")
    d = d * 1e-9 if 1e-6 < d < 1000 else d
    if not 1e-9 <= d <= 200e-9:
        raise MPISimError(f"{name} must be a core diameter of 1-200 nm (e.g. 25nm or 25e-9 m), got {text!r}")
    return d
