"""Array backend selection: the only module in mpisim that imports cupy.

Every heavy computation takes ``backend="auto" | "numpy" | "cupy"``. ``"auto"`` picks cupy when
it imports and sees a GPU, numpy otherwise. Nothing here runs at ``import mpisim`` time: cupy is
imported on first use, and a broken cupy install only makes ``"auto"`` fall back to numpy.
"""

import functools
import os

import numpy as np

from .errors import MPISimError

__all__ = ["BACKENDS", "gpu_available", "resolve", "xp_of", "get_array_module", "to_device", "to_numpy",
           "SMALL_FFT_BYTES", "rfft", "irfft", "numba_available"]

BACKENDS = ("auto", "numpy", "cupy")


@functools.lru_cache(maxsize=1)
def _cupy():
    """Return the cupy module if it imports and a GPU is visible, else None."""
    if os.environ.get("MPISIM_DISABLE_GPU"):
        return None
    try:
        import cupy  # noqa: the one place cupy is imported

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, CUDA driver errors, ...
        return None


def gpu_available():
    """True when cupy imports and at least one CUDA device is visible."""
    return _cupy() is not None


def resolve(backend="auto"):
    """Turn a backend name into ``"numpy"`` or ``"cupy"`` (raising a clear error if impossible)."""
    if backend not in BACKENDS:
        raise MPISimError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "cupy" if gpu_available() else "numpy"
    if backend == "cupy" and not gpu_available():
        raise MPISimError("backend 'cupy' requested but cupy or a CUDA GPU is not available "
                          "(install with `pip install mpisim[gpu]`)")
    return backend


def xp_of(backend):
    """The array module (numpy or cupy) for a resolved or unresolved backend name."""
    return _cupy() if resolve(backend) == "cupy" else np


def get_array_module(x):
    """The array module of ``x``: cupy for cupy arrays, numpy otherwise."""
    cp = _cupy() if type(x).__module__.startswith("cupy") else None
    return cp if cp is not None else np


def to_device(x, backend):
    """Move ``x`` to the array module of ``backend`` (no copy when it is already there)."""
    xp = xp_of(backend)
    return xp.asarray(x)


def to_numpy(x):
    """Return ``x`` as a numpy array (copies from the GPU when needed)."""
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


SMALL_FFT_BYTES = 16 << 20
"""Below this input size the CPU FFTs use numpy (no scipy.fft import for a transform of a few ms: e.g.
the 13 MB of a 10-frame bruker-3d measurement); above it scipy.fft with all cores (the system-matrix
build's ~64 MB voxel blocks). ``benchmarks/bench_real_size.py`` times both commands."""


def rfft(x, axis=-1, xp=np):
    """Real FFT along ``axis``, unnormalised (numpy's convention), using all CPU cores."""
    if xp is np:
        if np.asarray(x).nbytes < SMALL_FFT_BYTES:
            return np.fft.rfft(x, axis=axis)
        import scipy.fft

        return scipy.fft.rfft(x, axis=axis, workers=-1)
    return xp.fft.rfft(x, axis=axis)


def irfft(x, n, axis=-1, xp=np):
    """Inverse of :func:`rfft` for ``n`` time samples."""
    if xp is np:
        if np.asarray(x).nbytes < SMALL_FFT_BYTES:
            return np.fft.irfft(x, n=n, axis=axis)
        import scipy.fft

        return scipy.fft.irfft(x, n=n, axis=axis, workers=-1)
    return xp.fft.irfft(x, n=n, axis=axis)


def numba_available():
    """True when numba imports (the compiled CPU paths use it; numpy is the fallback)."""
    if os.environ.get("MPISIM_DISABLE_NUMBA"):
        return False
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True
