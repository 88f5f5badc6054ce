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
from .kaczmarz_base import (ORDERS, PlanarRows, absolute_lambda, project, row_orders,  # noqa: F401; (the front door)
                            squared_row_norms, sweep_numpy)
from .kaczmarz_gpu import solve as solve_gpu

__all__ = ["kaczmarz", "Alg", "run", "NumpyKaczmarz", "PlanarKaczmarz", "tikhonov_direct", "IMPLS"]

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
    groups : CPU threads (default: all numba threads), sharing many frames or one frame's voxels (:func:`sweep_threads`).
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
    compiled = not use_gpu and not (impl == "numpy" or (impl == "auto" and not B.numba_available()))
    if compiled and b2.shape[1] == 1 and int(iterations) < PLANAR_AFTER and A.flags.c_contiguous:
        return _kaczmarz_as_stored(A, b2, norms2, iterations, lam, relative_lambda, enforce_real, enforce_positive,
                                   order, seed, stop, callback, groups)[:, 0 if single else slice(None)]
    if compiled:
        P = PlanarRows.from_complex(A, in_place=A is not orig)        # the weighted copy is ours to reorder
        return _kaczmarz_planar(P, b2[:, 0] if single else b2, iterations, lam, relative_lambda, enforce_real,
                                enforce_positive, order, seed, None, groups, callback, stop, precision, norms2)
    lam_abs = absolute_lambda(A, lam, relative_lambda, norms2)
    inv_den = xp.where(norms2 > 0, 1.0 / (norms2 + lam_abs), 0.0)
    orders = row_orders(A.shape[0], int(iterations), order, seed)
    if use_gpu:
        c = solve_gpu(A, b2, orders, inv_den, lam_abs, enforce_real, enforce_positive,
                               loop=(impl == "cupy-loop"), stop=stop)
    else:
        c = run(NumpyKaczmarz(A, b2, orders, inv_den, lam_abs, enforce_real, enforce_positive, stop), callback)
    return c[:, 0] if single else c


def _kaczmarz_as_stored(A, b2, norms2, iterations, lam, relative_lambda, er, ep, order, seed, stop, callback, groups):
    """One frame, few sweeps: the compiled sweeps read the complex matrix as stored (no planar copy, which costs
    more than it saves below :data:`PLANAR_AFTER` sweeps)."""
    lam_abs = absolute_lambda(A, lam, relative_lambda, norms2)
    inv_den = np.where(norms2 > 0, 1.0 / (norms2 + lam_abs), 0.0)
    orders = row_orders(A.shape[0], int(iterations), order, seed)
    return run(InterleavedKaczmarz(A, b2, orders, inv_den, lam_abs, er, ep, stop, groups), callback)


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
    alg = PlanarKaczmarz(P.planes, b2, orders, inv_den, lam_abs, enforce_real, enforce_positive, groups, stop,
                         np.float32 if single_precision else np.float64)
    c = run(alg, callback)
    return c[:, 0] if single else c


class Alg:
    """An iterative algorithm apart from its driver (SigPy's ``Alg``): :meth:`update` runs one sweep,
    :meth:`done` says whether to stop — after ``iterations`` sweeps or when the stopping rule ``stop``
    (f(sweep, c) → bool, evaluated once per sweep) says so; :func:`run` is the driver."""

    def __init__(self, iterations, stop=None):
        self.iterations, self.stop = int(iterations), stop
        self.sweeps = 0
        self._stopped, self._checked = False, 0

    def done(self):
        if self.stop is not None and self.sweeps > self._checked:
            self._checked = self.sweeps
            self._stopped = bool(self.stop(self.sweeps - 1, self.image()))
        return self._stopped or self.sweeps >= self.iterations

    def update(self):
        self._sweep(self.sweeps)
        self.sweeps += 1

    def image(self):
        """The iterate c (N, F) after the last sweep's projections, on the algorithm's device."""
        raise NotImplementedError

    def _sweep(self, it):
        raise NotImplementedError


def run(alg, callback=None):
    """Drive ``alg`` until :meth:`Alg.done`; ``callback(sweep, c)`` after each sweep."""
    while not alg.done():
        alg.update()
        if callback:
            callback(alg.sweeps - 1, alg.image())
    return alg.result()


class NumpyKaczmarz(Alg):
    """Kaczmarz sweeps in numpy (the reference implementation; one row at a time)."""

    def __init__(self, A, b, orders, inv_den, lam, er, ep, stop=None):
        super().__init__(len(orders), stop)
        M, N = A.shape
        self.A, self.b, self.orders, self.inv_den = A, b, orders, inv_den
        self.er, self.ep, self.sq = er, ep, np.sqrt(lam)
        self.c = np.zeros((N, b.shape[1]), np.complex128)
        self.v = np.zeros((M, b.shape[1]), np.complex128)

    def _sweep(self, it):
        sweep_numpy(self.A, self.b, self.orders[it], self.inv_den, self.sq, self.c, self.v)
        project(self.c, self.er, self.ep)

    def image(self):
        return self.c.real if self.er else self.c

    def result(self):
        return self.c.real.copy() if self.er else self.c


class PlanarKaczmarz(Alg):
    """Compiled Kaczmarz sweeps (numba) on the planar rows P (M, 2, N); ``real`` the iterate's precision."""

    def __init__(self, P, b, orders, inv_den, lam, er, ep, groups, stop=None, real=np.float64):
        import numba  # heavy optional libraries: loaded when a compiled sweep runs

        from . import kaczmarz_cpu

        super().__init__(len(orders), stop)
        self.K = kaczmarz_cpu
        M, N = P.shape[0], P.shape[2]
        F = b.shape[1]
        self.P, self.orders, self.er, self.ep = P, orders, er, ep
        self.br, self.bi = np.ascontiguousarray(b.real.T, real), np.ascontiguousarray(b.imag.T, real)   # (F, M)
        self.cr, self.ci = np.zeros((F, N), real), np.zeros((F, N), real)
        self.vr, self.vi = np.zeros((F, M), real), np.zeros((F, M), real)
        self.sq = float(np.sqrt(lam))
        self.inv = np.ascontiguousarray(inv_den, dtype=np.float64)
        self.groups = int(groups or numba.get_num_threads())
        self.single = F == 1 and real is np.float64
        if self.single:
            self.threads, self.couplings = sweep_threads(N, groups), pair_couplings(M)

    def _sweep(self, it):
        if self.single:
            self.K.sweep_single(self.P, self.br[0], self.bi[0], self.orders[it], self.inv, self.sq, self.cr[0],
                                self.ci[0], self.vr[0], self.vi[0], self.threads, self.couplings,
                                same_order(self.orders, it))
        else:
            self.K.sweep_multi(self.P, self.br, self.bi, self.orders[it], self.inv, self.sq, self.cr, self.ci, self.vr,
                          self.vi, min(self.groups, self.br.shape[0]))
        if self.er:
            self.ci[...] = 0
        if self.ep:
            np.maximum(self.cr, 0, out=self.cr)

    def image(self):
        return self.cr.T if self.er else (self.cr + 1j * self.ci).T

    def result(self):
        return np.ascontiguousarray(self.cr.T) if self.er else (self.cr + 1j * self.ci).T


VOXELS_PER_THREAD = 1024
"""Fewest voxels a thread of one frame's compiled sweep takes: the threads meet once per pair of rows (about 0.1 µs
on two cores), so a thread's share of a pass must be long against that."""


def sweep_threads(N, groups=None):
    """Threads for one frame's compiled sweep over N voxels: numba's threads (or ``groups``, at most numba's), at
    most one per :data:`VOXELS_PER_THREAD` voxels."""
    import numba

    n = numba.get_num_threads()
    return max(1, min(int(groups or n), n, N // VOXELS_PER_THREAD))


def pair_couplings(M):
    """Room for each pair's coupling a2·conj(a1) over M rows: the first sweep of an order writes it, the next sweeps
    over the same order read it (:func:`same_order`)."""
    return np.empty((M // 2 + 1, 2))


def same_order(orders, it):
    """Whether sweep ``it`` runs over the very order of the sweep before (cyclic, shuffle: the same array)."""
    return it > 0 and orders[it] is orders[it - 1]


PLANAR_AFTER = 16
"""From this many sweeps on, one frame's compiled sweeps run on a planar copy of a complex matrix (its sweep about a
pass of A·x faster, the copy costing about 16: 2000 × 19³ complex64 rows, ``benchmarks/bench_kaczmarz.py`` prints
both); below it they read the matrix as stored, and a call costs one pass (the row norms) before its sweeps."""


class InterleavedKaczmarz(Alg):
    """Compiled Kaczmarz sweeps (numba) of one frame on a complex matrix as stored (re, im interleaved)."""

    def __init__(self, A, b, orders, inv_den, lam, er, ep, stop=None, groups=None):
        from . import kaczmarz_cpu   # heavy optional libraries: loaded when a compiled sweep runs

        super().__init__(len(orders), stop)
        self.K = kaczmarz_cpu
        M, N = A.shape
        self.Af = A.view(np.float32 if A.dtype == np.complex64 else np.float64).reshape(M, 2 * N)
        self.orders, self.er, self.ep = orders, er, ep
        self.br, self.bi = np.ascontiguousarray(b[:, 0].real), np.ascontiguousarray(b[:, 0].imag)
        self.cr, self.ci = np.zeros(N), np.zeros(N)
        self.vr, self.vi = np.zeros(M), np.zeros(M)
        self.sq = float(np.sqrt(lam))
        self.inv = np.ascontiguousarray(inv_den, dtype=np.float64)
        self.threads, self.couplings = sweep_threads(N, groups), pair_couplings(M)

    def _sweep(self, it):
        self.K.sweep_single_interleaved(self.Af, self.br, self.bi, self.orders[it], self.inv, self.sq, self.cr,
                                        self.ci, self.vr, self.vi, self.threads, self.couplings,
                                        same_order(self.orders, it))
        if self.er:
            self.ci[...] = 0
        if self.ep:
            np.maximum(self.cr, 0, out=self.cr)

    def image(self):
        return (self.cr if self.er else self.cr + 1j * self.ci)[:, None]

    def result(self):
        return self.image().copy()


def tikhonov_direct(A, b, lam_abs):
    """Direct solution (AᴴA + λI)⁻¹ Aᴴ b (the fixed point of unprojected Kaczmarz)."""
    A = np.asarray(A, np.complex128)
    N = A.shape[1]
    return np.linalg.solve(A.conj().T @ A + lam_abs * np.eye(N), A.conj().T @ b)
