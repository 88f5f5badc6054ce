"""The one exception type that means "the user asked for something invalid".

The command line turns an :class:`MPISimError` into a one-line message and exit status 2; any
other exception is a bug and keeps its traceback.
"""

import numpy as np

__all__ = ["MPISimError", "check_finite", "check_positive", "check_int", "printable"]


class MPISimError(ValueError):
    """A user mistake or unusable input: bad parameter, malformed file, impossible request.

    Its message is always one line (line breaks from array reprs and the like are folded).
    """

    def __str__(self):
        text = super().__str__()
        return " ".join(text.split()) if "\n" in text else text


def check_finite(name, value):
    """Raise :class:`MPISimError` if ``value`` (scalar or array) holds NaN or Inf."""

    arr = np.asarray(value)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise MPISimError(f"{name} must be finite, got {value if arr.ndim == 0 else 'an array with NaN/Inf'}")
    return value


def check_positive(name, value, allow_zero=False):
    """Raise :class:`MPISimError` unless ``value`` is a finite number > 0 (or >= 0)."""
    if isinstance(value, (bool, str)):
        raise MPISimError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MPISimError(f"{name} must be a number, got {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise MPISimError(f"{name} must be finite, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise MPISimError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def check_int(name, value, minimum=0, maximum=None):
    """Return ``value`` as an int; raise :class:`MPISimError` unless it is an integer in range."""
    try:
        ok = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise MPISimError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def printable(text, keep_newlines=True):
    """``text`` with control characters (terminal escape sequences among them, e.g. from names and
    descriptions inside a file) shown as ``\\xNN`` instead of acted on; newlines and tabs kept when
    ``keep_newlines``."""
    out = []
    for ch in str(text):
        o = ord(ch)
        if (o < 32 or 127 <= o < 160) and not (keep_newlines and ch in "\n\t"):
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)
