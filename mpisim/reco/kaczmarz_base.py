"""What every Kaczmarz implementation shares: the λ normalisation, the row orders, the per-sweep
projections and the numpy twin of a sweep. Imported by the front door :mod:`mpisim.reco.kaczmarz`
and by the implementations (:mod:`~mpisim.reco.kaczmarz_cpu`, :mod:`~mpisim.reco.kaczmarz_gpu`,
:mod:`~mpisim.reco.cgnr`); it imports none of them."""

import numpy as np

from .. import backend as B
from ..errors import MPISimError, check_positive

ORDERS = ("cyclic", "shuffle", "random")


def squared_row_norms(A):
    """Squared row norms (M,) in float64 of a numpy or cupy matrix: one compiled pass on the CPU
    (no M × N temporary) when numba is there and A is a C-contiguous complex array."""
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
