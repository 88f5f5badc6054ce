"""Small helpers shared by tests (independent of mpisim's internals where it matters)."""

import numpy as np


def ncc(a, b):
    """Normalised correlation |<a, b>| / (|a| |b|) (complex-safe, ignores a global phase)."""
    a, b = np.ravel(a), np.ravel(b)
    return abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b))


def fwhm(x, y):
    """Full width at half maximum of a single peak sampled at ascending x (linear interpolation)."""
    i = int(np.argmax(y))
    half = y[i] / 2
    left = np.flatnonzero(y[:i] < half)[-1]
    right = i + np.flatnonzero(y[i:] < half)[0]
    xl = np.interp(half, [y[left], y[left + 1]], [x[left], x[left + 1]])
    xr = np.interp(half, [y[right], y[right - 1]], [x[right], x[right - 1]])
    return xr - xl
