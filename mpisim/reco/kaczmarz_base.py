"""What every Kaczmarz implementation shares: the λ normalisation, the row orders, the per-sweep
projections, the planar row layout of the compiled CPU sweep and the numpy twin of a sweep.
Imported by the front door :mod:`mpisim.reco.kaczmarz` and by the implementations
(:mod:`~mpisim.reco.kaczmarz_cpu`, :mod:`~mpisim.reco.kaczmarz_gpu`, :mod:`~mpisim.reco.cgnr`);
it imports none of them (only the compiled kernels, lazily)."""

import numpy as np

from .. import backend as B
from ..errors import MPISimError, check_positive

__all__ = ["ORDERS", "PlanarRows", "squared_row_norms", "absolute_lambda", "row_orders", "project",
           "sweep_numpy"]

ORDERS = ("cyclic", "shuffle", "random")


class PlanarRows:
    """A complex matrix (M, N) held planar: ``planes`` (M, 2, N) float, row k's real parts in
    ``planes[k, 0]`` and its imaginary parts in ``planes[k, 1]``. The layout of the compiled CPU
    sweeps (:mod:`mpisim.reco.kaczmarz_cpu`): every load a contiguous vector. :meth:`from_complex`
    with ``in_place=True`` reorders a complex array the caller owns inside its own memory, so a
    reconstruction never holds its rows twice (the complex array must not be used afterwards)."""

    def __init__(self, planes):
        planes = np.asarray(planes)
        if planes.ndim != 3 or planes.shape[1] != 2 or planes.dtype not in (np.float32, np.float64):
            raise MPISimError(f"planar rows must be a float32/float64 (M, 2, N) array, got {planes.dtype} "
                              f"{planes.shape}")
        self.planes = np.ascontiguousarray(planes)

    @classmethod
    def from_complex(cls, A, in_place=False):
        """Planar rows of the complex (M, N) numpy array A: a copy, or, with ``in_place`` (A C-contiguous,
        writeable and numba there), A's own memory reordered."""
        A = np.asarray(A)
        if A.ndim != 2 or A.dtype.kind != "c":
            raise MPISimError(f"planar rows need a complex (M, N) matrix, got {A.dtype} {A.shape}")
        M, N = A.shape
        if in_place and A.flags.c_contiguous and A.flags.writeable and B.numba_available():
            from .kaczmarz_cpu import to_planar

            Af = A.view(A.real.dtype).reshape(M, 2 * N)
            to_planar(Af)
            return cls(Af.reshape(M, 2, N))
        planes = np.empty((M, 2, N), A.real.dtype)
        planes[:, 0] = A.real
        planes[:, 1] = A.imag
        return cls(planes)

    @property
    def shape(self):
        return (self.planes.shape[0], self.planes.shape[2])

    @property
    def dtype(self):
        return np.result_type(self.planes.dtype, np.complex64)

    @property
    def nbytes(self):
        return self.planes.nbytes

    def to_complex(self):
        """The (M, N) complex matrix (a copy)."""
        return self.planes[:, 0] + 1j * self.planes[:, 1].astype(self.dtype)

    def scaled(self, w):
        """Rows scaled by the real weights w (M,) (a copy)."""
        return PlanarRows(self.planes * np.asarray(w, self.planes.dtype)[:, None, None])

    def apply(self, c):
        """A c for c (N,) or (N, F), real or complex → complex (M,) or (M, F), in the matrix's precision
        (like the complex product it replaces; a real c costs half of it: one compiled pass,
        :func:`~mpisim.reco.kaczmarz_cpu.apply_real`, or two real BLAS products without numba)."""
        c = np.asarray(c)
        vec = c.ndim == 1
        c = c.reshape(self.shape[1], -1)
        if c.dtype.kind == "c":
            rr, ri = self._apply_real(c.real)
            ir, ii = self._apply_real(c.imag)
            out = (rr - ii) + 1j * (ri + ir)
        else:
            re, im = self._apply_real(c)
            out = re + 1j * im
        out = out.astype(self.dtype, copy=False)
        return out[:, 0] if vec else out

    def _apply_real(self, x):
        """(Re(A) x, Im(A) x) for real x (N, F)."""
        real = self.planes.dtype
        if B.numba_available():
            from .kaczmarz_cpu import apply_real

            M, F = self.shape[0], x.shape[1]
            out_r, out_i = np.empty((M, F), real), np.empty((M, F), real)
            apply_real(self.planes, np.ascontiguousarray(x.T, real), out_r, out_i)
            return out_r, out_i
        x = np.asarray(x, real)
        return self.planes[:, 0] @ x, self.planes[:, 1] @ x


def squared_row_norms(A):
    """Squared row norms (M,) in float64 of a numpy or cupy matrix (or :class:`PlanarRows`): one
    compiled pass on the CPU (no M × N temporary) when numba is there and A is a C-contiguous complex
    array."""
    if isinstance(A, PlanarRows):
        if B.numba_available():
            from .kaczmarz_cpu import row_norms2

            return row_norms2(A.planes.reshape(A.shape[0], -1))
        return np.sum(A.planes.astype(np.float64) ** 2, axis=(1, 2))
    xp = B.get_array_module(A)
    if xp is np and A.dtype.kind == "c" and A.flags.c_contiguous and B.numba_available():
        from .kaczmarz_cpu import row_norms2

        return row_norms2(A.view(A.real.dtype).reshape(A.shape[0], 2 * A.shape[1]))
    return xp.sum(A.real.astype(np.float64) ** 2 + A.imag.astype(np.float64) ** 2, axis=1)


def absolute_lambda(A, lam, relative=True, row_norms2=None):
    """λ used in the update: ``lam · ‖A‖_F² / N`` when relative, else ``lam`` (numpy or cupy A;
    pass the squared row norms when they are already known)."""
    check_positive("lambda", lam, allow_zero=True)
    if not relative:
        return float(lam)
    if row_norms2 is None:
        row_norms2 = squared_row_norms(A)
    return float(lam) * float(row_norms2.sum()) / A.shape[1]


def row_orders(M, iterations, order="cyclic", seed=0):
    """Row sequence of every sweep: list of int64 arrays."""
    if order not in ORDERS:
        raise MPISimError(f"row order must be one of {', '.join(ORDERS)}, got {order!r}")
    rng = np.random.default_rng(seed)
    if order == "cyclic":
        o = np.arange(M, dtype=np.int64)
        return [o] * iterations
    if order == "shuffle":
        o = rng.permutation(M).astype(np.int64)
        return [o] * iterations
    return [rng.permutation(M).astype(np.int64) for _ in range(iterations)]


def project(c, enforce_real, enforce_positive):
    """The per-sweep projections, in place, for numpy or cupy complex arrays."""
    if enforce_real:
        c.imag[...] = 0
    if enforce_positive:
        c.real[...] = c.real * (c.real > 0)


def sweep_numpy(A, b, order, inv_den, sqrt_lam, c, v):
    """numpy twin of the compiled/CUDA sweeps: one pass over ``order``; c (N, F), v (M, F) in place.

    Array-module generic: with cupy arrays it is the per-row GPU loop (a few launches and a host
    sync per row), the pattern of the reference tool. ``inv_den`` is a host (numpy) array.
    """
    for k in order:
        if inv_den[k] == 0:
            continue
        s = A[k]
        alpha = (b[k] - s @ c - sqrt_lam * v[k]) * inv_den[k]
        c += s.conj()[:, None] * alpha[None, :]
        v[k] += sqrt_lam * alpha
