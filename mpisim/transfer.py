"""Receive-chain transfer functions: load from file and interpolate onto a frequency axis.

A transfer function a_{l}(f) (complex, per receive channel) maps the coil voltage spectrum to the
recorded spectrum: û_ADC(f) = a(f) û_coil(f). Files understood:

* MDF files with ``/acquisition/receiver/transferFunction`` (C, K) complex on the file's own
  ``rfftfreq`` axis;
* transfer-function files with ``/transferFunction`` either complex (C, F) or float (C, F, 2)
  (MDF v1 style, real/imaginary in the last axis) and ``/frequencies`` (F) in Hz.

Interpolation is linear in magnitude and unwrapped phase; outside the measured range the edge
value is held (and reported by :meth:`TransferFunction.coverage`).
"""

from dataclasses import dataclass

import numpy as np

from .errors import MPISimError


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
    def num_channels(self):
        return self.values.shape[0]

    def at(self, frequencies, num_channels=None):
        """Interpolate onto ``frequencies`` (Hz) → (C, K) complex."""
        f = np.asarray(frequencies, dtype=float)
        C = self.num_channels if num_channels is None else num_channels
        if self.num_channels not in (1, C):
            raise MPISimError(f"{self.source or 'transfer function'} has {self.num_channels} channels, "
                              f"the receiver has {C}")
        out = np.empty((self.num_channels, f.size), complex)
        for l, row in enumerate(self.values):
            mag = np.interp(f, self.frequencies, np.abs(row))
            ph = np.interp(f, self.frequencies, np.unwrap(np.angle(row)))
            out[l] = mag * np.exp(1j * ph)
        return np.broadcast_to(out, (C, f.size)).copy()

    def coverage(self, frequencies):
        """Fraction of ``frequencies`` inside the measured range."""
        f = np.asarray(frequencies)
        return float(np.mean((f >= self.frequencies[0]) & (f <= self.frequencies[-1])))

    @classmethod
    def load(cls, path):
        from .io.mdf import guarded

        return guarded(cls._load)(path)

    @classmethod
    def _load(cls, path):
        """Read a transfer function from an MDF or a transfer-function HDF5 file (read-only)."""
        from .io.h5 import open_h5

        with open_h5(path) as h:
            if "acquisition/receiver/transferFunction" in h:
                ds = h["acquisition/receiver/transferFunction"]
                vals = _complex(ds[()], path, "/acquisition/receiver/transferFunction")
                try:
                    bw = float(h["acquisition/receiver/bandwidth"][()])
                    V = int(h["acquisition/receiver/numSamplingPoints"][()])
                except KeyError as e:
                    raise MPISimError(f"{path}: transfer function without {e.args[0]}") from None
                freqs = np.fft.rfftfreq(V, 1 / (2 * bw))
                if vals.shape[-1] != freqs.size:
                    raise MPISimError(f"{path}: /acquisition/receiver/transferFunction has {vals.shape[-1]} "
                                      f"bins, expected {freqs.size}")
                return cls(freqs, vals, str(path))
            if "transferFunction" in h and "frequencies" in h:
                vals = _complex(h["transferFunction"][()], path, "/transferFunction")
                freqs = np.asarray(h["frequencies"][()], dtype=float).ravel()
                if vals.ndim == 1:
                    vals = vals[None]
                if vals.shape[-1] != freqs.size and vals.shape[0] == freqs.size:
                    vals = vals.T
                return cls(freqs, vals, str(path))
        raise MPISimError(f"{path}: no transfer function found (/transferFunction + /frequencies, or "
                          f"/acquisition/receiver/transferFunction)")


def _complex(a, path, name):
    """Accept complex arrays, compound r/i (h5py gives complex), or a trailing axis of 2."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        return a
    if a.dtype.names and {"r", "i"} <= set(a.dtype.names):
        return a["r"] + 1j * a["i"]
    if a.dtype.kind in "fiu" and a.ndim >= 1 and a.shape[-1] == 2:
        return a[..., 0] + 1j * a[..., 1]
    raise MPISimError(f"{path}: {name} must be complex (or real/imag in a last axis of 2), got "
                      f"{a.dtype} {a.shape}")
