"""Receive-chain transfer functions, interpolated onto a frequency axis.

A transfer function a_{l}(f) (complex, per receive channel) maps the coil voltage spectrum to the
recorded spectrum: û_ADC(f) = a(f) û_coil(f). Files holding one are read by
:func:`mpisim.io.transfer_file.load_transfer_function`.

Interpolation is linear in magnitude and unwrapped phase; outside the measured range the edge
value is held (and reported by :meth:`TransferFunction.coverage`).
"""

from dataclasses import dataclass

import numpy as np

from .errors import MPISimError

__all__ = ["TransferFunction"]


@dataclass(frozen=True, eq=False)
class TransferFunction:
    """frequencies : (F,) Hz, ascending. values : (C, F) complex."""

    frequencies: np.ndarray
    values: np.ndarray
    source: str = ""

    def __post_init__(self):
        f = np.asarray(self.frequencies, dtype=float)
        v = np.asarray(self.values)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != f.size:
            raise MPISimError(f"{self.source or 'transfer function'}: values shape {v.shape} does not match "
                              f"{f.size} frequencies")
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(v))):
            raise MPISimError(f"{self.source or 'transfer function'}: contains NaN/Inf")
        if f.size > 1 and np.any(np.diff(f) <= 0):
            order = np.argsort(f)
            f, v = f[order], v[:, order]
        object.__setattr__(self, "frequencies", f)
        object.__setattr__(self, "values", v.astype(complex))

    @property
    def num_rx_channels(self):
        return self.values.shape[0]

    def at(self, frequencies, num_rx_channels=None):
        """Interpolate onto ``frequencies`` (Hz) → (C, K) complex."""
        f = np.asarray(frequencies, dtype=float)
        C = self.num_rx_channels if num_rx_channels is None else num_rx_channels
        if self.num_rx_channels not in (1, C):
            raise MPISimError(f"{self.source or 'transfer function'} has {self.num_rx_channels} channels, "
                              f"the receiver has {C}")
        out = np.empty((self.num_rx_channels, f.size), complex)
        for l, row in enumerate(self.values):
            mag = np.interp(f, self.frequencies, np.abs(row))
            ph = np.interp(f, self.frequencies, np.unwrap(np.angle(row)))
            out[l] = mag * np.exp(1j * ph)
        return np.broadcast_to(out, (C, f.size)).copy()

    def coverage(self, frequencies):
        """Fraction of ``frequencies`` inside the measured range."""
        f = np.asarray(frequencies)
        return float(np.mean((f >= self.frequencies[0]) & (f <= self.frequencies[-1])))
