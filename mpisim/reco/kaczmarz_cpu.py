"""Compiled (numba) Kaczmarz sweeps on the CPU. Imported lazily; the numpy twin is
:func:`mpisim.reco.kaczmarz.sweep_numpy`.

The matrix is passed as a float view of a complex array, (M, 2N) with real and imaginary parts
interleaved; the iterate c and the auxiliary v as separate real/imaginary float64 arrays.
Accumulations are in float64 whatever the matrix precision. The update with row k and the dot
product with the next row are fused into one pass over c (same arithmetic, half the traffic).
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True, fastmath=True)
def row_norms2(Af):
    """Squared row norms (float64) of the complex matrix behind the float view ``Af``."""
    M = Af.shape[0]
    out = np.empty(M)
    for k in prange(M):
        s = 0.0
        row = Af[k]
        for j in range(row.shape[0]):
            x = np.float64(row[j])
            s += x * x
        out[k] = s
    return out


@njit(cache=True, fastmath=True)
def _dot_update(prow, pr, pi, row, cr, ci, N):
    """c += conj(prow)·(pr + i pi), then return row · c (fused, one pass)."""
    sr = 0.0
    si = 0.0
    for j in range(N):
        qr = np.float64(prow[2 * j])
        qi = np.float64(prow[2 * j + 1])
        xr = cr[j] + qr * pr + qi * pi
        xi = ci[j] + qr * pi - qi * pr
        cr[j] = xr
        ci[j] = xi
        ar = np.float64(row[2 * j])
        ai = np.float64(row[2 * j + 1])
        sr += ar * xr - ai * xi
        si += ar * xi + ai * xr
    return sr, si


@njit(cache=True, fastmath=True)
def sweep_single(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi):
    """One sweep over ``order`` for a single right-hand side (c: (N,), v: (M,))."""
    N = cr.shape[0]
    prev = -1
    pr = 0.0
    pi = 0.0
    for kk in range(order.shape[0]):
        k = order[kk]
        if inv_den[k] == 0.0:
            continue
        row = Af[k]
        sr = 0.0
        si = 0.0
        if prev < 0:
            for j in range(N):
                ar = np.float64(row[2 * j])
                ai = np.float64(row[2 * j + 1])
                sr += ar * cr[j] - ai * ci[j]
                si += ar * ci[j] + ai * cr[j]
        else:
            sr, si = _dot_update(Af[prev], pr, pi, row, cr, ci, N)
        pr = (br[k] - sr - sqrt_lam * vr[k]) * inv_den[k]
        pi = (bi[k] - si - sqrt_lam * vi[k]) * inv_den[k]
        vr[k] += sqrt_lam * pr
        vi[k] += sqrt_lam * pi
        prev = k
    if prev >= 0:
        prow = Af[prev]
        for j in range(N):
            qr = np.float64(prow[2 * j])
            qi = np.float64(prow[2 * j + 1])
            cr[j] += qr * pr + qi * pi
            ci[j] += qr * pi - qi * pr


@njit(cache=True, fastmath=True)
def _sweep_group(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, f0, f1):
    """Frames f0..f1 (c: (F, N), v: (F, M)): each row is applied to every frame of the group
    while it is in cache, with the fused update/dot of :func:`sweep_single`."""
    N = cr.shape[1]
    G = f1 - f0
    pr = np.zeros(G)
    pi = np.zeros(G)
    prev = -1
    for kk in range(order.shape[0]):
        k = order[kk]
        if inv_den[k] == 0.0:
            continue
        row = Af[k]
        prow = Af[prev] if prev >= 0 else row
        for g in range(G):
            f = f0 + g
            sr, si = _dot_update(prow, pr[g], pi[g], row, cr[f], ci[f], N)
            a_r = (br[f, k] - sr - sqrt_lam * vr[f, k]) * inv_den[k]
            a_i = (bi[f, k] - si - sqrt_lam * vi[f, k]) * inv_den[k]
            vr[f, k] += sqrt_lam * a_r
            vi[f, k] += sqrt_lam * a_i
            pr[g] = a_r
            pi[g] = a_i
        prev = k
    if prev >= 0:
        prow = Af[prev]
        for g in range(G):
            f = f0 + g
            for j in range(N):
                qr = np.float64(prow[2 * j])
                qi = np.float64(prow[2 * j + 1])
                cr[f, j] += qr * pr[g] + qi * pi[g]
                ci[f, j] += qr * pi[g] - qi * pr[g]


@njit(cache=True, parallel=True)
def sweep_multi(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, groups):
    """One sweep for F right-hand sides, frames as rows: b (F, M), c (F, N), v (F, M).
    The frames are split into ``groups`` that run in parallel on the CPU cores."""
    F = cr.shape[0]
    size = (F + groups - 1) // groups
    for g in prange(groups):
        f0 = g * size
        f1 = min(F, f0 + size)
        if f1 > f0:
            _sweep_group(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, f0, f1)


@njit(cache=True, fastmath=True, nogil=True)
def _dot_update32(prow, pr, pi, row, cr, ci, N):
    """Single-precision twin of :func:`_dot_update` (twice the SIMD width)."""
    sr = np.float32(0.0)
    si = np.float32(0.0)
    for j in range(N):
        qr = prow[2 * j]
        qi = prow[2 * j + 1]
        xr = cr[j] + qr * pr + qi * pi
        xi = ci[j] + qr * pi - qi * pr
        cr[j] = xr
        ci[j] = xi
        ar = row[2 * j]
        ai = row[2 * j + 1]
        sr += ar * xr - ai * xi
        si += ar * xi + ai * xr
    return sr, si


@njit(cache=True, fastmath=True, nogil=True)
def _sweep_group32(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, f0, f1):
    """:func:`_sweep_group` in single precision (c, v, b float32; α in float64)."""
    N = cr.shape[1]
    G = f1 - f0
    pr = np.zeros(G, np.float32)
    pi = np.zeros(G, np.float32)
    prev = -1
    for kk in range(order.shape[0]):
        k = order[kk]
        if inv_den[k] == 0.0:
            continue
        row = Af[k]
        prow = Af[prev] if prev >= 0 else row
        for g in range(G):
            f = f0 + g
            sr, si = _dot_update32(prow, pr[g], pi[g], row, cr[f], ci[f], N)
            a_r = (np.float64(br[f, k]) - sr - sqrt_lam * vr[f, k]) * inv_den[k]
            a_i = (np.float64(bi[f, k]) - si - sqrt_lam * vi[f, k]) * inv_den[k]
            vr[f, k] += np.float32(sqrt_lam * a_r)
            vi[f, k] += np.float32(sqrt_lam * a_i)
            pr[g] = a_r
            pi[g] = a_i
        prev = k
    if prev >= 0:
        prow = Af[prev]
        for g in range(G):
            f = f0 + g
            for j in range(N):
                qr = prow[2 * j]
                qi = prow[2 * j + 1]
                cr[f, j] += qr * pr[g] + qi * pi[g]
                ci[f, j] += qr * pi[g] - qi * pr[g]


@njit(cache=True, parallel=True)
def sweep_multi32(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, groups):
    """:func:`sweep_multi` in single precision, for right-hand sides whose results are statistics
    (the noise realisations behind error bars): a float32 matrix only."""
    F = cr.shape[0]
    size = (F + groups - 1) // groups
    for g in prange(groups):
        f0 = g * size
        f1 = min(F, f0 + size)
        if f1 > f0:
            _sweep_group32(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, f0, f1)
