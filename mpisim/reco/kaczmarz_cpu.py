"""Compiled (numba) Kaczmarz sweeps on the CPU. Imported lazily; the numpy twin is
:func:`mpisim.reco.kaczmarz.sweep_numpy`.

The matrix comes planar, ``P`` (M, 2, N) float: row k's real parts in ``P[k, 0]``, its imaginary
parts in ``P[k, 1]`` (:class:`~mpisim.reco.kaczmarz_base.PlanarRows`), so every load is a contiguous
vector; with the interleaved complex layout the single-precision sweep spends a third of its time
taking the parts apart (``benchmarks/bench_kaczmarz.py`` prints both). The iterate c and the auxiliary
v come as separate real/imaginary arrays, float64 (images) or float32 (statistics only: noise
realisations); the iterate's type sets the arithmetic, α is float64 either way. The update with row
k and the dot product with the next row are fused into one pass over c (same arithmetic, half the
traffic), and for many frames each pass serves two or three frames, so a matrix element is loaded
once for all of them.
"""

from numba import njit, prange
import numpy as np

__all__ = ["row_norms2", "to_planar", "apply_real", "sweep_single", "sweep_multi"]


@njit(cache=True, parallel=True, fastmath=True)
def row_norms2(Af):
    """Squared row norms (float64) of the complex matrix behind the float view ``Af`` (M, 2N), with
    the parts interleaved or planar (the same sum, in another order: they may differ in the last bit)."""
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


@njit(cache=True, parallel=True)
def to_planar(Af):
    """(M, 2N) float view of a complex matrix → its planar layout, in place: row k becomes its N real
    parts followed by its N imaginary parts (a copy of the row being reordered as scratch)."""
    M = Af.shape[0]
    N = Af.shape[1] // 2
    for k in prange(M):
        tmp = Af[k].copy()
        row = Af[k]
        for j in range(N):
            row[j] = tmp[2 * j]
            row[N + j] = tmp[2 * j + 1]


@njit(cache=True, parallel=True, fastmath=True)
def apply_real(P, xt, out_r, out_i):
    """A x for real x: ``out_r`` (M, F) = Re(A) x, ``out_i`` = Im(A) x, from the planar P (M, 2, N)
    and xt (F, N) = xᵀ in P's precision (sums in it too, like the complex BLAS product it replaces,
    at half its work: x has no imaginary part). Four frames per pass over a row."""
    M = P.shape[0]
    F, N = xt.shape
    zero = xt.dtype.type(0)
    for k in prange(M):
        re = P[k, 0]
        im = P[k, 1]
        f = 0
        while f < F:
            if F - f >= 4:
                x0, x1, x2, x3 = xt[f], xt[f + 1], xt[f + 2], xt[f + 3]
                r0 = i0 = r1 = i1 = r2 = i2 = r3 = i3 = zero
                for j in range(N):
                    a = re[j]
                    b = im[j]
                    r0 += a * x0[j]
                    i0 += b * x0[j]
                    r1 += a * x1[j]
                    i1 += b * x1[j]
                    r2 += a * x2[j]
                    i2 += b * x2[j]
                    r3 += a * x3[j]
                    i3 += b * x3[j]
                out_r[k, f], out_i[k, f], out_r[k, f + 1], out_i[k, f + 1] = r0, i0, r1, i1
                out_r[k, f + 2], out_i[k, f + 2], out_r[k, f + 3], out_i[k, f + 3] = r2, i2, r3, i3
                f += 4
            else:
                x0 = xt[f]
                r0 = i0 = zero
                for j in range(N):
                    r0 += re[j] * x0[j]
                    i0 += im[j] * x0[j]
                out_r[k, f], out_i[k, f] = r0, i0
                f += 1


@njit(cache=True, fastmath=True, nogil=True)
def _dot_update(qre, qim, pr, pi, are, aim, cr, ci, N, zero):
    """c += conj(q)·(pr + i pi) for the previous row q, then return a · c for the row a (fused, one
    pass; rows as planar parts). Arithmetic in the type of ``zero`` and c (float64, or float32 for
    the single-precision path)."""
    sr = zero
    si = zero
    for j in range(N):
        qr = qre[j]
        qi = qim[j]
        xr = cr[j] + qr * pr + qi * pi
        xi = ci[j] + qr * pi - qi * pr
        cr[j] = xr
        ci[j] = xi
        ar = are[j]
        ai = aim[j]
        sr += ar * xr - ai * xi
        si += ar * xi + ai * xr
    return sr, si


@njit(cache=True, fastmath=True, nogil=True)
def _dot_update2(qre, qim, p, are, aim, c0r, c0i, c1r, c1i, N, zero):
    """:func:`_dot_update` for two frames at once (p = (pr0, pi0, pr1, pi1)): each matrix element is
    loaded once for both, which makes the pass compute-bound instead of load-bound
    (``benchmarks/bench_kaczmarz.py`` prints the cost per frame)."""
    s0r = zero
    s0i = zero
    s1r = zero
    s1i = zero
    for j in range(N):
        qr = qre[j]
        qi = qim[j]
        ar = are[j]
        ai = aim[j]
        xr = c0r[j] + qr * p[0] + qi * p[1]
        xi = c0i[j] + qr * p[1] - qi * p[0]
        c0r[j] = xr
        c0i[j] = xi
        s0r += ar * xr - ai * xi
        s0i += ar * xi + ai * xr
        yr = c1r[j] + qr * p[2] + qi * p[3]
        yi = c1i[j] + qr * p[3] - qi * p[2]
        c1r[j] = yr
        c1i[j] = yi
        s1r += ar * yr - ai * yi
        s1i += ar * yi + ai * yr
    return s0r, s0i, s1r, s1i


@njit(cache=True, fastmath=True, nogil=True)
def _dot_update3(qre, qim, p, are, aim, c0r, c0i, c1r, c1i, c2r, c2i, N, zero):
    """:func:`_dot_update2` for three frames (p = (pr0, pi0, pr1, pi1, pr2, pi2))."""
    s0r = zero
    s0i = zero
    s1r = zero
    s1i = zero
    s2r = zero
    s2i = zero
    for j in range(N):
        qr = qre[j]
        qi = qim[j]
        ar = are[j]
        ai = aim[j]
        xr = c0r[j] + qr * p[0] + qi * p[1]
        xi = c0i[j] + qr * p[1] - qi * p[0]
        c0r[j] = xr
        c0i[j] = xi
        s0r += ar * xr - ai * xi
        s0i += ar * xi + ai * xr
        yr = c1r[j] + qr * p[2] + qi * p[3]
        yi = c1i[j] + qr * p[3] - qi * p[2]
        c1r[j] = yr
        c1i[j] = yi
        s1r += ar * yr - ai * yi
        s1i += ar * yi + ai * yr
        zr = c2r[j] + qr * p[4] + qi * p[5]
        zi = c2i[j] + qr * p[5] - qi * p[4]
        c2r[j] = zr
        c2i[j] = zi
        s2r += ar * zr - ai * zi
        s2i += ar * zi + ai * zr
    return s0r, s0i, s1r, s1i, s2r, s2i


@njit(cache=True, fastmath=True, nogil=True)
def _last_update(P, prev, pr, pi, cr, ci, N):
    """c += conj(row prev)·(pr + i pi): the update of the sweep's last row (not fused with a dot)."""
    qre = P[prev, 0]
    qim = P[prev, 1]
    for j in range(N):
        qr = qre[j]
        qi = qim[j]
        cr[j] += qr * pr + qi * pi
        ci[j] += qr * pi - qi * pr


@njit(cache=True, fastmath=True, nogil=True)
def _row_step(br, bi, vr, vi, k, sr, si, inv_den, sqrt_lam):
    """Row k's step α = (b_k − a_k·c − √λ v_k) / (‖a_k‖² + λ) of a single-frame sweep; v_k += √λ α."""
    pr = (br[k] - sr - sqrt_lam * vr[k]) * inv_den[k]
    pi = (bi[k] - si - sqrt_lam * vi[k]) * inv_den[k]
    vr[k] += sqrt_lam * pr
    vi[k] += sqrt_lam * pi
    return pr, pi


@njit(cache=True, fastmath=True)
def sweep_single(P, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi):
    """One sweep over ``order`` for a single right-hand side (c: (N,), v: (M,)); P (M, 2, N) planar."""
    N = cr.shape[0]
    prev = -1
    pr = 0.0
    pi = 0.0
    for kk in range(order.shape[0]):
        k = order[kk]
        if inv_den[k] == 0.0:
            continue
        are = P[k, 0]
        aim = P[k, 1]
        sr = 0.0
        si = 0.0
        if prev < 0:
            for j in range(N):
                ar = np.float64(are[j])
                ai = np.float64(aim[j])
                sr += ar * cr[j] - ai * ci[j]
                si += ar * ci[j] + ai * cr[j]
        else:
            sr, si = _dot_update(P[prev, 0], P[prev, 1], pr, pi, are, aim, cr, ci, N, 0.0)
        pr, pi = _row_step(br, bi, vr, vi, k, sr, si, inv_den, sqrt_lam)
        prev = k
    if prev >= 0:
        _last_update(P, prev, pr, pi, cr, ci, N)


@njit(cache=True, fastmath=True, nogil=True)
def _dot_update_interleaved(q, pr, pi, a, cr, ci, N):
    """:func:`_dot_update` on interleaved complex rows (re, im, re, im …: a complex matrix as stored)."""
    sr = 0.0
    si = 0.0
    for j in range(N):
        qr = q[2 * j]
        qi = q[2 * j + 1]
        xr = cr[j] + qr * pr + qi * pi
        xi = ci[j] + qr * pi - qi * pr
        cr[j] = xr
        ci[j] = xi
        ar = a[2 * j]
        ai = a[2 * j + 1]
        sr += ar * xr - ai * xi
        si += ar * xi + ai * xr
    return sr, si


@njit(cache=True, fastmath=True)
def sweep_single_interleaved(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi):
    """:func:`sweep_single` on the complex matrix as stored, Af (M, 2N) its float view (re, im interleaved): no
    planar copy, so a call on a complex matrix costs no pass over it before its sweeps."""
    N = cr.shape[0]
    prev = -1
    pr = 0.0
    pi = 0.0
    for kk in range(order.shape[0]):
        k = order[kk]
        if inv_den[k] == 0.0:
            continue
        a = Af[k]
        sr = 0.0
        si = 0.0
        if prev < 0:
            for j in range(N):
                ar = np.float64(a[2 * j])
                ai = np.float64(a[2 * j + 1])
                sr += ar * cr[j] - ai * ci[j]
                si += ar * ci[j] + ai * cr[j]
        else:
            sr, si = _dot_update_interleaved(Af[prev], pr, pi, a, cr, ci, N)
        pr, pi = _row_step(br, bi, vr, vi, k, sr, si, inv_den, sqrt_lam)
        prev = k
    if prev >= 0:
        q = Af[prev]
        for j in range(N):
            cr[j] += q[2 * j] * pr + q[2 * j + 1] * pi
            ci[j] += q[2 * j] * pi - q[2 * j + 1] * pr


@njit(cache=True, fastmath=True, nogil=True)
def _alpha(br, bi, vr, vi, f, k, sr, si, inv_den, sqrt_lam, pr, pi, g):
    """Row k's step for frame f (α in float64 whatever the iterate's precision): v_k += √λ α,
    and α kept in (pr[g], pi[g]) for the fused update with the next row."""
    a_r = (np.float64(br[f, k]) - sr - sqrt_lam * vr[f, k]) * inv_den[k]
    a_i = (np.float64(bi[f, k]) - si - sqrt_lam * vi[f, k]) * inv_den[k]
    vr[f, k] += sqrt_lam * a_r
    vi[f, k] += sqrt_lam * a_i
    pr[g] = a_r
    pi[g] = a_i


@njit(cache=True, fastmath=True, nogil=True)
def _sweep_group(P, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, f0, f1):
    """Frames f0..f1 (c: (F, N), v: (F, M)): each row is applied to every frame of the group while
    it is in cache, three (or two) frames per pass over the row, with the fused update/dot of
    :func:`sweep_single`. The iterate's dtype (float64, or float32 for statistics) sets the
    arithmetic; α is float64 either way."""
    N = cr.shape[1]
    G = f1 - f0
    zero = cr.dtype.type(0)
    pr = np.zeros(G, cr.dtype)
    pi = np.zeros(G, cr.dtype)
    p = np.zeros(6, cr.dtype)
    prev = -1
    for kk in range(order.shape[0]):
        k = order[kk]
        if inv_den[k] == 0.0:
            continue
        are = P[k, 0]
        aim = P[k, 1]
        q = prev if prev >= 0 else k
        qre = P[q, 0]
        qim = P[q, 1]
        g = 0
        while g < G:
            f = f0 + g
            left = G - g
            if left == 1:
                sr, si = _dot_update(qre, qim, pr[g], pi[g], are, aim, cr[f], ci[f], N, zero)
                _alpha(br, bi, vr, vi, f, k, sr, si, inv_den, sqrt_lam, pr, pi, g)
                g += 1
            elif left == 2 or left == 4:
                p[0], p[1], p[2], p[3] = pr[g], pi[g], pr[g + 1], pi[g + 1]
                s0r, s0i, s1r, s1i = _dot_update2(qre, qim, p, are, aim, cr[f], ci[f], cr[f + 1], ci[f + 1], N, zero)
                _alpha(br, bi, vr, vi, f, k, s0r, s0i, inv_den, sqrt_lam, pr, pi, g)
                _alpha(br, bi, vr, vi, f + 1, k, s1r, s1i, inv_den, sqrt_lam, pr, pi, g + 1)
                g += 2
            else:
                p[0], p[1], p[2], p[3], p[4], p[5] = pr[g], pi[g], pr[g + 1], pi[g + 1], pr[g + 2], pi[g + 2]
                s0r, s0i, s1r, s1i, s2r, s2i = _dot_update3(qre, qim, p, are, aim, cr[f], ci[f], cr[f + 1],
                                                            ci[f + 1], cr[f + 2], ci[f + 2], N, zero)
                _alpha(br, bi, vr, vi, f, k, s0r, s0i, inv_den, sqrt_lam, pr, pi, g)
                _alpha(br, bi, vr, vi, f + 1, k, s1r, s1i, inv_den, sqrt_lam, pr, pi, g + 1)
                _alpha(br, bi, vr, vi, f + 2, k, s2r, s2i, inv_den, sqrt_lam, pr, pi, g + 2)
                g += 3
        prev = k
    if prev >= 0:
        for g in range(G):
            _last_update(P, prev, pr[g], pi[g], cr[f0 + g], ci[f0 + g], N)


@njit(cache=True, parallel=True)
def sweep_multi(P, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, groups):
    """One sweep for F right-hand sides, frames as rows: b (F, M), c (F, N), v (F, M); P (M, 2, N)
    planar. The frames are split into ``groups`` that run in parallel on the CPU cores. With float32
    b, c and v (and a complex64 matrix) the same sweep runs in single precision, for right-hand
    sides whose results are statistics (the noise realisations behind error bars)."""
    F = cr.shape[0]
    size = (F + groups - 1) // groups
    for g in prange(groups):
        f0 = g * size
        f1 = min(F, f0 + size)
        if f1 > f0:
            _sweep_group(P, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, f0, f1)
