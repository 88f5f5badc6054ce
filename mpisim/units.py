"""Numbers with unit suffixes, as typed on the command line ('25nm', '10pg', '80kHz', '50mmol/L'),
converted to SI (m, kg, Hz, mol/L)."""

import math

from .errors import MPISimError

__all__ = ["MASS", "SUFFIXES", "parse_quantity", "parse_mass", "IRON_PER_CELL_LIMITS", "parse_iron_per_cell",
           "format_mass", "MAGNETITE_IRON_MOL_PER_L", "parse_concentration", "parse_diameter"]

MASS = {"pg": 1e-15, "ng": 1e-12, "ug": 1e-9, "µg": 1e-9, "mg": 1e-6, "kg": 1.0, "g": 1e-3}
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


def parse_mass(text, name="iron per cell", limits=None):
    """'10pg', '5ng', '2.5ug' → kg (> 0). A unit is required: a bare number is refused, since
    '10' could mean 10 pg or 10 kg. ``limits`` = (lowest, highest) in kg refuses absurd values."""
    t = str(text).strip()
    try:
        float(t)
        bare = True
    except ValueError:
        bare = False
    if bare:
        raise MPISimError(f"{name} needs a unit: write e.g. {t}pg or {t}ng (pg, ng, ug, mg, g, kg), got {text!r}")
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


def parse_concentration(text, name="--concentration", positive=False):
    """Iron concentration in mol/L from '0.05', '50mmol/L' or '50mM'; refuses values above solid
    magnetite's 67 mol/L (usually mmol/L typed as mol/L), NaN and negative (or, with
    ``positive``, zero) ones."""
    v = parse_quantity(str(text).replace("mM", "mmol/L"), name, "a concentration in mol/L (0.05) or 50mmol/L")
    if not math.isfinite(v):
        raise MPISimError(f"{name} must be a finite number of mol/L, got {text!r} (NaN/Inf)")
    if v < 0 or (positive and v == 0):
        raise MPISimError(f"{name}: {'negative' if v < 0 else 'zero'} concentration {text!r}; it must be "
                          f"{'> 0' if positive else '>= 0'} mol/L")
    if v >= MAGNETITE_IRON_MOL_PER_L:
        raise MPISimError(f"{name} {text} mol/L exceeds the iron in solid magnetite (67 mol/L); for millimolar "
                          f"write {text}mmol/L")
    return v


def parse_diameter(text, name="--tracer-diameter"):
    """Core diameter in m from '25e-9', '25nm' or a bare '25' (read as nm); 1–200 nm."""
    d = parse_quantity(text, name, "a diameter in m (25e-9) or nm (25nm)")
    d = d * 1e-9 if 1e-6 < d < 1000 else d
    if not 1e-9 <= d <= 200e-9:
        raise MPISimError(f"{name} must be a core diameter of 1-200 nm (e.g. 25nm or 25e-9 m), got {text!r}")
    return d
