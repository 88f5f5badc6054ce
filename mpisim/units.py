"""Numbers with unit suffixes, as typed on the command line ('25nm', '10pg', '80kHz', '50mmol/L'),
converted to SI (m, kg, Hz, mol/L)."""

import math

from .errors import MPISimError

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


def parse_mass(text, name="iron per cell"):
    """'10pg', '5ng', '2.5ug', '1e-14' (kg) → kg (> 0)."""
    v = parse_quantity(text, name, "a mass like 10pg or 5ng", MASS)
    if not v > 0 or not math.isfinite(v):
        raise MPISimError(f"{name} must be > 0, got {text!r}")
    return v


def parse_diameter(text, name="--tracer-diameter"):
    """Core diameter in m from '25e-9', '25nm' or a bare '25' (read as nm)."""
    d = parse_quantity(text, name, "a diameter in m (25e-9) or nm (25nm)")
    return d * 1e-9 if 1e-6 < d < 1000 else d
