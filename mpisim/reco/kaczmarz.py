"""Regularised Kaczmarz (ART) with the MPI field's semantics (PHYSICS.md §6).

Solves min ‖A c − b‖² + λ‖c‖² through the extended system [A, √λ I][c; v] = b:

    c = 0, v = 0
    each sweep, for each row k with ‖a_k‖ > 0 in the chosen order:
        α   = (b_k − a_k·c − √λ v_k) / (‖a_k‖² + λ)        (a_k·c: plain, non-conjugated)
        c  += α conj(a_k);  v_k += α √λ
    after each sweep: c = Re(c) (enforce_real), c[c < 0] = 0 (enforce_positive)

λ is relative by default: λ = lam · ‖A‖_F² / N. Implementations: ``numba`` (compiled CPU sweep, on
the rows held planar: :class:`~mpisim.reco.kaczmarz_base.PlanarRows`),
``numpy`` (the reference/fallback: numpy per row), ``cuda`` (fused CUDA kernels in
``kernels/kaczmarz.cu``, one launch per sweep) and ``cupy-loop`` (a per-row cupy loop, the way the
reference tool's GPU path works; for comparison only).

This module is the one front door: :func:`kaczmarz` picks the implementation; the implementations
share :mod:`mpisim.reco.kaczmarz_base` (λ normalisation, row orders, projections, the planar row
layout, the numpy sweep) and never import this module back.
"""

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from .kaczmarz_base import (ORDERS, PlanarRows, absolute_lambda, project, row_orders,  # noqa: F401
                            squared_row_norms, sweep_numpy)  # (the front door)

IMPLS = ("auto", "numba", "numpy", "cuda", "cupy-loop")


def kaczmarz(A, b, iterations=3, lam=0.0, *, relative_lambda=True, enforce_real=True, enforce_positive=True,
             order="cyclic", seed=0, row_weights=None, backend="auto", impl="auto", groups=None, callback=None,
             stop=None, precision="double", row_norms2=None):
    """Regularised Kaczmarz for a dense complex matrix.

    Parameters
    ----------
    A : (M, N) complex array (numpy or cupy): rows = frequency × channel, columns = voxels; or
        :class:`~mpisim.reco.kaczmarz_base.PlanarRows` (compiled CPU path only). The compiled CPU
        path works on planar rows: a complex A is copied into them (pass ``PlanarRows.from_complex(A,
        in_place=True)`` for a matrix you own to avoid the copy, as :func:`~mpisim.reco.reconstruct` does).
    b : (M,) or (M, F) complex: one or F right-hand sides (frames), solved together.
    iterations : sweeps over all rows.
    lam : Tikhonov λ, relative to ‖A‖_F²/N unless ``relative_lambda=False``.
    enforce_real, enforce_positive : projections after each sweep.
    order : "cyclic" | "shuffle" (one seeded permutation for all sweeps) | "random" (a new seeded
        permutation every sweep).
    row_weights : (M,) weights w_k; rows and b are scaled by w_k.
    backend, impl : see module docstring; "auto" = cuda on cupy arrays/backend, numba on the CPU
        when available, numpy otherwise.
    groups : CPU threads used for many frames (default: all numba threads).
    callback : f(sweep, c) after each sweep (numpy/numba implementations).
    stop : f(sweep, c) → bool after each sweep (every implementation; c (N, F) after the
        projections, on the solver's device): True ends the iteration there (a stopping rule).
    precision : "double" (iterate and sums in float64: images) or "single" (float32 iterate, compiled
        CPU path with a complex64 matrix only, twice as fast; for right-hand sides whose results are
        statistics, e.g. noise realisations: deviations ~1e-4 of the double result).
    row_norms2 : (M,) float64 squared row norms of A (unweighted; numpy), when the caller knows them
        already (one pass over A saved); ignored with ``row_weights``.

    Returns
    -------
    c : (N,) or (N, F), real when ``enforce_real`` else complex; same array module as used.
    """
    if impl not in IMPLS:
        raise MPISimError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if int(iterations) != iterations or iterations < 0:
        raise MPISimError(f"iterations must be a non-negative integer, got {iterations!r}")
    if isinstance(A, PlanarRows):
        if impl not in ("auto", "numba") or not B.numba_available() or B.resolve(backend) == "cupy":
            raise MPISimError("planar rows serve the compiled CPU sweep only (impl 'numba', numba installed)")
        return _kaczmarz_planar(A, b, iterations, lam, relative_lambda, enforce_real, enforce_positive, order,
                                seed, row_weights, groups, callback, stop, precision, row_norms2)
    xp = B.get_array_module(A)
    use_gpu = impl in ("cuda", "cupy-loop") or (impl == "auto" and (xp is not np or B.resolve(backend) == "cupy"))
    if use_gpu:
        xp = B.xp_of("cupy")
    if A.ndim != 2:
        raise MPISimError(f"A must be a 2-D matrix (rows × voxels), got shape {A.shape}")
    single = b.ndim == 1
    if b.shape[0] != A.shape[0] or b.ndim not in (1, 2):
        raise MPISimError(f"b must have shape ({A.shape[0]},) or ({A.shape[0]}, F), got {b.shape}")
    if not bool(xp.all(xp.isfinite(xp.asarray(b)))):
        raise MPISimError("measurement contains NaN or Inf in the selected rows")
    A = orig = xp.asarray(A)
    if A.dtype.kind != "c":
        A = A.astype(np.complex128 if A.dtype == np.float64 else np.complex64)
    b2 = xp.asarray(b).reshape(A.shape[0], -1).astype(np.complex128)
    if row_weights is not None:
        w = xp.asarray(row_weights, dtype=A.real.dtype)
        A = A * w[:, None]
        b2 = b2 * w[:, None]
    norms2 = _norms(A, row_norms2, row_weights)
    if not use_gpu and not (impl == "numpy" or (impl == "auto" and not B.numba_available())):
        P = PlanarRows.from_complex(A, in_place=A is not orig)        # the weighted copy is ours to reorder
        return _kaczmarz_planar(P, b2[:, 0] if single else b2, iterations, lam, relative_lambda, enforce_real,
                                enforce_positive, order, seed, None, groups, callback, stop, precision, norms2)
    lam_abs = absolute_lambda(A, lam, relative_lambda, norms2)
    inv_den = xp.where(norms2 > 0, 1.0 / (norms2 + lam_abs), 0.0)
    orders = row_orders(A.shape[0], int(iterations), order, seed)
    if use_gpu:
        from . import kaczmarz_gpu

        c = kaczmarz_gpu.solve(A, b2, orders, inv_den, lam_abs, enforce_real, enforce_positive,
                               loop=(impl == "cupy-loop"), stop=stop)
    else:
        c = _solve_numpy(A, b2, orders, inv_den, lam_abs, enforce_real, enforce_positive, callback, stop)
    return c[:, 0] if single else c


def _norms(A, row_norms2, row_weights):
    """Squared row norms: the caller's (unweighted, numpy) when given, else computed; checked finite."""
    xp = np if isinstance(A, PlanarRows) else B.get_array_module(A)
    if xp is np and row_norms2 is not None and row_weights is None and len(row_norms2) == A.shape[0]:
        norms2 = np.asarray(row_norms2, np.float64)
    else:
        norms2 = squared_row_norms(A)
    if not bool(xp.all(xp.isfinite(norms2))):
        raise MPISimError("the system matrix holds values so large that their squares overflow (damaged file?)")
    return norms2


def _kaczmarz_planar(P, b, iterations, lam, relative_lambda, enforce_real, enforce_positive, order, seed,
                     row_weights, groups, callback, stop, precision, row_norms2):
    """The compiled CPU path on planar rows P (:class:`PlanarRows`)."""
    single = np.ndim(b) == 1
    if np.shape(b)[0] != P.shape[0] or np.ndim(b) not in (1, 2):
        raise MPISimError(f"b must have shape ({P.shape[0]},) or ({P.shape[0]}, F), got {np.shape(b)}")
    b2 = np.asarray(b).reshape(P.shape[0], -1).astype(np.complex128)
    if not np.all(np.isfinite(b2)):
        raise MPISimError("measurement contains NaN or Inf in the selected rows")
    if row_weights is not None:
        w = np.asarray(row_weights, dtype=P.planes.dtype)
        P = P.scaled(w)
        b2 = b2 * w[:, None]
    norms2 = _norms(P, row_norms2, row_weights)
    lam_abs = absolute_lambda(P, lam, relative_lambda, norms2)
    inv_den = np.where(norms2 > 0, 1.0 / (norms2 + lam_abs), 0.0)
    orders = row_orders(P.shape[0], int(iterations), order, seed)
    single_precision = precision == "single" and P.planes.dtype == np.float32
    c = _solve_numba(P.planes, b2, orders, inv_den, lam_abs, enforce_real, enforce_positive, callback, groups, stop,
                     np.float32 if single_precision else np.float64)
    return c[:, 0] if single else c


def _solve_numpy(A, b, orders, inv_den, lam, er, ep, callback, stop=None):
    M, N = A.shape
    c = np.zeros((N, b.shape[1]), np.complex128)
    v = np.zeros((M, b.shape[1]), np.complex128)
    sq = np.sqrt(lam)
    for it, order in enumerate(orders):
        sweep_numpy(A, b, order, inv_den, sq, c, v)
        project(c, er, ep)
        if callback:
            callback(it, c.real if er else c)
        if stop is not None and stop(it, c.real if er else c):
            break
    return c.real.copy() if er else c


def _solve_numba(P, b, orders, inv_den, lam, er, ep, callback, groups, stop=None, real=np.float64):
    """Compiled sweeps on the planar rows P (M, 2, N)."""
    import numba

    from . import kaczmarz_cpu as K

    M, N = P.shape[0], P.shape[2]
    F = b.shape[1]
    br, bi = np.ascontiguousarray(b.real.T, real), np.ascontiguousarray(b.imag.T, real)      # (F, M)
    cr, ci = np.zeros((F, N), real), np.zeros((F, N), real)
    vr, vi = np.zeros((F, M), real), np.zeros((F, M), real)
    sq = float(np.sqrt(lam))
    inv = np.ascontiguousarray(inv_den, dtype=np.float64)
    groups = int(groups or numba.get_num_threads())
    for it, order in enumerate(orders):
        if F == 1 and real is np.float64:
            K.sweep_single(P, br[0], bi[0], order, inv, sq, cr[0], ci[0], vr[0], vi[0])
        else:
            K.sweep_multi(P, br, bi, order, inv, sq, cr, ci, vr, vi, min(groups, F))
        if er:
            ci[...] = 0
        if ep:
            np.maximum(cr, 0, out=cr)
        if callback:
            callback(it, cr.T if er else (cr + 1j * ci).T)
        if stop is not None and stop(it, cr.T if er else (cr + 1j * ci).T):
            break
    return np.ascontiguousarray(cr.T) if er else (cr + 1j * ci).T


def tikhonov_direct(A, b, lam_abs):
    """Direct solution (AᴴA + λI)⁻¹ Aᴴ b (the fixed point of unprojected Kaczmarz)."""
    A = np.asarray(A, np.complex128)
    N = A.shape[1]
    return np.linalg.solve(A.conj().T @ A + lam_abs * np.eye(N), A.conj().T @ b)
