"""CGNR: conjugate gradients on the normal equations (AᴴA + λI) c = Aᴴ b, same λ as Kaczmarz."""

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from .kaczmarz_base import absolute_lambda

__all__ = ["cgnr"]


def cgnr(A, b, iterations=20, lam=0.0, *, relative_lambda=True, enforce_real=True, enforce_positive=True,
         row_weights=None, backend="auto", tol=0.0):
    """Solve min ‖A c − b‖² + λ‖c‖² by CG on the normal equations (numpy or cupy, by the array
    type of ``A`` or ``backend``). b: (M,) or (M, F). Projections (real part, c ≥ 0) are applied
    once at the end. λ relative to ‖A‖_F²/N unless ``relative_lambda=False``."""
    xp = B.get_array_module(A)
    if xp is np and B.resolve(backend) == "cupy":
        xp = B.xp_of("cupy")
    A = xp.asarray(A)
    if A.ndim != 2 or b.shape[0] != A.shape[0]:
        raise MPISimError(f"shapes do not match: A {A.shape}, b {b.shape}")
    single = b.ndim == 1
    B2 = xp.asarray(b).reshape(A.shape[0], -1).astype(np.complex128)
    if not bool(xp.all(xp.isfinite(B2))):
        raise MPISimError("measurement contains NaN or Inf in the selected rows")
    if row_weights is not None:
        w = xp.asarray(row_weights)
        A = A * w[:, None].astype(A.real.dtype)
        B2 = B2 * w[:, None]
    lam_abs = absolute_lambda(A, lam, relative_lambda)
    AH = A.conj().T
    x = xp.zeros((A.shape[1], B2.shape[1]), np.complex128)
    r = AH @ B2                                   # normal-equation residual (x = 0)
    p = r.copy()
    rr = xp.sum(xp.abs(r) ** 2, axis=0)
    rr0 = rr.copy()
    for _ in range(int(iterations)):
        Ap = AH @ (A @ p) + lam_abs * p
        denom = xp.sum(xp.conj(p) * Ap, axis=0).real
        alpha = xp.where(denom > 0, rr / xp.where(denom > 0, denom, 1), 0)
        x += alpha * p
        r -= alpha * Ap
        rr_new = xp.sum(xp.abs(r) ** 2, axis=0)
        if tol and bool(xp.all(rr_new <= tol**2 * rr0)):
            break
        beta = xp.where(rr > 0, rr_new / xp.where(rr > 0, rr, 1), 0)
        p = r + beta * p
        rr = rr_new
    if enforce_real:
        x = x.real.copy()
    if enforce_positive:
        if enforce_real:
            x[x < 0] = 0
        else:
            x.real[x.real < 0] = 0
    return x[:, 0] if single else x
