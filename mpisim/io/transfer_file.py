"""Transfer-function files: the thin loader between a file and :class:`mpisim.transfer.TransferFunction`.

Files understood:

* MDF files with ``/acquisition/receiver/transferFunction`` (C, K) complex on the file's own
  ``rfftfreq`` axis;
* transfer-function files with ``/transferFunction`` either complex (C, F) or float (C, F, 2)
  (MDF v1 style, real/imaginary in the last axis) and ``/frequencies`` (F) in Hz.

Files are opened read-only; a damaged or unsupported file is a one-line error naming it.
"""

import numpy as np

from ..errors import MPISimError
from ..transfer import TransferFunction
from .h5 import open_h5
from .mdf_read import guarded

__all__ = ["load_transfer_function"]


@guarded
def load_transfer_function(path):
    """Read a transfer function from an MDF or a transfer-function HDF5 file → :class:`TransferFunction`."""
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
            return TransferFunction(freqs, vals, str(path))
        if "transferFunction" in h and "frequencies" in h:
            vals = _complex(h["transferFunction"][()], path, "/transferFunction")
            freqs = np.asarray(h["frequencies"][()], dtype=float).ravel()
            if vals.ndim == 1:
                vals = vals[None]
            if vals.shape[-1] != freqs.size and vals.shape[0] == freqs.size:
                vals = vals.T
            return TransferFunction(freqs, vals, str(path))
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
