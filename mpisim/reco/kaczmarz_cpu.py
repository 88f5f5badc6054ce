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
once for all of them. One frame's sweep goes further: each pass over c serves two rows (the updates of a
pair and the dots of the next pair, the coupling a2·conj(a1) of a pair summed in the same pass:
:func:`_sweep_pairs`), so c is read and written once per two rows, and its voxels are split among the CPU threads,
which meet once per pair of rows (:func:`_sweep_threads`).
"""

import sys

from llvmlite import binding as llvm_binding, ir as llvm_ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
import numpy as np

__all__ = ["row_norms2", "to_planar", "apply_real", "sweep_single", "sweep_single_interleaved", "sweep_multi"]


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
def _row_alpha(br, bi, k, sr, si, v_r, v_i, inv_den, sqrt_lam):
    """Row k's step α = (b_k − a_k·c − √λ v_k) / (‖a_k‖² + λ), from v_k read before (no write)."""
    return (br[k] - sr - sqrt_lam * v_r) * inv_den[k], (bi[k] - si - sqrt_lam * v_i) * inv_den[k]


@njit(cache=True, fastmath=True, nogil=True)
def _row_step(br, bi, vr, vi, k, sr, si, inv_den, sqrt_lam):
    """Row k's step α (:func:`_row_alpha`) of a single-frame sweep; v_k += √λ α."""
    pr, pi = _row_alpha(br, bi, k, sr, si, vr[k], vi[k], inv_den, sqrt_lam)
    vr[k] += sqrt_lam * pr
    vi[k] += sqrt_lam * pi
    return pr, pi


@njit(cache=True)
def sweep_single(P, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, threads=1, couplings=None, known=False):
    """One sweep over ``order`` for a single right-hand side (c: (N,), v: (M,)); P (M, 2, N) planar; two rows per
    pass over c (:func:`_sweep_pairs`), the voxels split among ``threads`` CPU threads (:func:`_sweep_threads`).
    ``couplings`` (M // 2 + 1, 2): each pair's a2·conj(a1), written by a sweep (``known`` False) and read by a later
    one over the same order (``known`` True), whose passes then skip that sum."""
    g = np.empty((0, 2)) if couplings is None else couplings          # too small: found by the sweep
    _sweep_threads(P, np.empty((0, 0), P.dtype), True, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, threads, g,
                   known)


@njit(cache=True)
def sweep_single_interleaved(Af, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, threads=1, couplings=None,
                             known=False):
    """:func:`sweep_single` on the complex matrix as stored, Af (M, 2N) its float view (re, im interleaved): no
    planar copy, so a call on a complex matrix costs no pass over it before its sweeps (each row's parts are taken
    apart as the sweep reaches it)."""
    g = np.empty((0, 2)) if couplings is None else couplings
    _sweep_threads(np.empty((0, 2, 0), Af.dtype), Af, False, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi,
                   threads, g, known)


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


@njit(cache=True, fastmath=True, nogil=True, inline="always")
def _pair_step(u1r, u1i, u2r, u2i, b1r, b1i, b2r, b2i, xr, xi, p, s1r, s1i, s2r, s2i, gr, gi, coupling):
    """One element of :func:`_pair_pass`: x = c_j + conj(u1)·α1 + conj(u2)·α2 (the previous pair u), then the sums of
    the next pair b: b1·x, b2·x and (``coupling``) b2·conj(b1). Returns the sums and x."""
    xr += u1r * p[0] + u1i * p[1] + u2r * p[2] + u2i * p[3]
    xi += u1r * p[1] - u1i * p[0] + u2r * p[3] - u2i * p[2]
    if coupling:
        gr += b2r * b1r + b2i * b1i
        gi += b2i * b1r - b2r * b1i
    return (s1r + b1r * xr - b1i * xi, s1i + b1r * xi + b1i * xr, s2r + b2r * xr - b2i * xi,
            s2i + b2r * xi + b2i * xr, gr, gi, xr, xi)


@njit(cache=True, fastmath=True, nogil=True)
def _pair_pass(q1re, q1im, q2re, q2im, p, a1re, a1im, a2re, a2im, cr, ci, N, out, coupling):
    """One pass over c for two rows at once: c += conj(q1)·α1 + conj(q2)·α2 for the previous pair (p = α1r, α1i, α2r,
    α2i), then the dots a1·c and a2·c with the next pair and g = a2·conj(a1), their coupling: out = (s1r, s1i, s2r,
    s2i, gr, gi). Planar rows (real parts, imaginary parts)."""
    s1r = s1i = s2r = s2i = gr = gi = 0.0
    for j in range(N):
        s1r, s1i, s2r, s2i, gr, gi, cr[j], ci[j] = _pair_step(
            q1re[j], q1im[j], q2re[j], q2im[j], np.float64(a1re[j]), np.float64(a1im[j]), np.float64(a2re[j]),
            np.float64(a2im[j]), cr[j], ci[j], p, s1r, s1i, s2r, s2i, gr, gi, coupling)
    out[0], out[1], out[2], out[3], out[4], out[5] = s1r, s1i, s2r, s2i, gr, gi


@njit(cache=True, fastmath=True, nogil=True)
def _pair_pass_interleaved(q1, q2, p, a1, a2, cr, ci, N, out, coupling):
    """:func:`_pair_pass` on interleaved complex rows (re, im, re, im …: a complex matrix as stored)."""
    s1r = s1i = s2r = s2i = gr = gi = 0.0
    for j in range(N):
        s1r, s1i, s2r, s2i, gr, gi, cr[j], ci[j] = _pair_step(
            q1[2 * j], q1[2 * j + 1], q2[2 * j], q2[2 * j + 1], np.float64(a1[2 * j]), np.float64(a1[2 * j + 1]),
            np.float64(a2[2 * j]), np.float64(a2[2 * j + 1]), cr[j], ci[j], p, s1r, s1i, s2r, s2i, gr, gi, coupling)
    out[0], out[1], out[2], out[3], out[4], out[5] = s1r, s1i, s2r, s2i, gr, gi


@njit(cache=True, nogil=True)
def _part(P, Af, planar, k, j, imag):
    """Element j of row k, its real (``imag`` 0) or imaginary part (1), as float64."""
    if planar:
        return np.float64(P[k, imag, j])
    return np.float64(Af[k, 2 * j + imag])


# The threads of one frame's sweep meet once per pair of rows. Their counters are updated with LLVM's atomic
# instructions (numba has none for the CPU): an add, an acquire load and a compare-and-swap on an int64 element,
# and the C library's sched_yield for a wait that lasts.

def _item_pointer(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx])


@intrinsic
def _atomic_add(typingctx, arr, idx, val):
    """arr[idx] += val atomically (sequentially consistent); returns the old value."""
    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _item_pointer(context, builder, sig.args[0], args[0], args[1]), args[2],
                                  "seq_cst")
    return arr.dtype(arr, idx, arr.dtype), codegen


@intrinsic
def _atomic_load(typingctx, arr, idx):
    """arr[idx] read with acquire order: the writes another thread made before its atomic add are seen after it."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_pointer(context, builder, sig.args[0], args[0], args[1]), "acquire", 8)
    return arr.dtype(arr, idx), codegen


@intrinsic
def _atomic_cas(typingctx, arr, idx, expected, new):
    """arr[idx] = new if it holds ``expected`` (atomically); returns the value it held."""
    def codegen(context, builder, sig, args):
        res = builder.cmpxchg(_item_pointer(context, builder, sig.args[0], args[0], args[1]), args[2], args[3],
                              "seq_cst", "seq_cst")
        return builder.extract_value(res, 0)
    return arr.dtype(arr, idx, arr.dtype, arr.dtype), codegen


_PREFETCH = "llvm.prefetch.p0" if llvm_binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"
"""The prefetch intrinsic's name: its pointer argument's mangling, opaque from LLVM 15 on."""


@intrinsic
def _prefetch(typingctx, arr, idx):
    """A hint to bring arr[idx]'s cache line into every cache level (LLVM's prefetch: no fault, no result)."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        i8p, i32 = llvm_ir.IntType(8).as_pointer(), llvm_ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, llvm_ir.FunctionType(llvm_ir.VoidType(), [i8p, i32, i32, i32]), _PREFETCH)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.none(arr, idx), codegen


@njit(cache=True, nogil=True)
def _prefetch_pair(P, Af, planar, k1, k2, lo, hi):
    """Ask for the voxels lo..hi of rows k1 and k2 (the next pair) while the current pass computes, one hint per
    64-byte line: the pass then reads them from cache instead of starting four streams from memory."""
    if planar:
        for j in range(lo, hi, 16):
            _prefetch(P[k1, 0], j)
            _prefetch(P[k1, 1], j)
            _prefetch(P[k2, 0], j)
            _prefetch(P[k2, 1], j)
    else:
        for j in range(2 * lo, 2 * hi, 16):
            _prefetch(Af[k1], j)
            _prefetch(Af[k2], j)


@intrinsic
def _sched_yield(typingctx):
    """The C library's sched_yield(): lets a thread that shares this core run (a waiting thread's courtesy); on
    Windows, whose C library has none, nothing (the thread keeps polling)."""
    def codegen(context, builder, sig, args):
        if sys.platform == "win32":
            return llvm_ir.Constant(llvm_ir.IntType(32), 0)
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(llvm_ir.IntType(32), []),
                                            "sched_yield")
        return builder.call(fn, [])
    return types.int32(), codegen


SPIN_BEFORE_YIELD = 2000
"""Polls of a counter before a waiting thread starts yielding its core between polls."""

JOIN_POLLS = 100_000 if sys.platform != "win32" else 20_000_000
"""Polls (the later ones yielding; on Windows all spinning, hence more) the first thread of a sweep waits for the
others to start; past them it runs the sweep alone (``threads`` larger than the threads that run, e.g. numba's pool
busy or set to one)."""


@njit(cache=True, nogil=True)
def _wait_until(counter, idx, target, limit):
    """Poll counter[idx] until it reaches ``target`` (True) or ``limit`` polls have passed (False; no limit: 0)."""
    polls = 0
    while _atomic_load(counter, idx) < target:
        polls += 1
        if polls > SPIN_BEFORE_YIELD:
            _sched_yield()
        if limit > 0 and polls >= limit:
            return False
    return True


@njit(cache=True, fastmath=True, nogil=True)
def _sweep_pairs(P, Af, planar, br, bi, rows, n, p0, inv_den, sqrt_lam, cr, ci, vr, vi, lo, hi, t, T, part, done,
                 couplings, known):
    """One single-frame sweep over ``rows[:n]`` (rows with ``inv_den`` 0 already left out), two rows per pass over c
    (:func:`_pair_pass`): the dot of a pair's second row with c after the first row's update is a2·c + (a2·conj(a1))·α1,
    its coupling summed in the same pass, so the iterate is read and written once per two rows — the same arithmetic
    as row by row in another order (equal to rounding; the numpy twin :func:`~mpisim.reco.kaczmarz_base.sweep_numpy`).
    Rows of the planar P (M, 2, N), or of the interleaved Af (M, 2N) (``planar`` False; P then a stand-in). An odd
    count's first row has had its step taken by the caller (its α in ``p0``, its v updated; its update of c comes in
    the first pass).

    This call covers the voxels lo..hi as thread ``t`` of ``T``: after each pass it posts its partial sums in
    ``part`` (2, T, 6), counts itself in ``done`` and waits for the others, then every thread forms the same α from
    the sums in the same order; only thread 0 writes v (each thread reads the pair's v_k before it posts, so no
    thread reads a v_k that another has written). ``T`` 1: the whole sweep alone, no waiting. Each pair's coupling
    goes to ``couplings`` (thread 0), or is read from it when ``known`` (the passes then skip it)."""
    m_len = hi - lo
    p = p0.copy()
    out = np.zeros(6)
    s = np.zeros(6)
    q1 = q2 = rows[0]                               # (α 0 until a row has been through)
    idx = 0
    for m in range(n % 2, n, 2):
        k1 = rows[m]
        k2 = rows[m + 1]
        if m + 3 < n:
            _prefetch_pair(P, Af, planar, rows[m + 2], rows[m + 3], lo, hi)
        if planar:
            _pair_pass(P[q1, 0, lo:hi], P[q1, 1, lo:hi], P[q2, 0, lo:hi], P[q2, 1, lo:hi], p, P[k1, 0, lo:hi],
                       P[k1, 1, lo:hi], P[k2, 0, lo:hi], P[k2, 1, lo:hi], cr[lo:hi], ci[lo:hi], m_len, out, not known)
        else:
            _pair_pass_interleaved(Af[q1, 2 * lo:2 * hi], Af[q2, 2 * lo:2 * hi], p, Af[k1, 2 * lo:2 * hi],
                                   Af[k2, 2 * lo:2 * hi], cr[lo:hi], ci[lo:hi], m_len, out, not known)
        v1r, v1i, v2r, v2i = vr[k1], vi[k1], vr[k2], vi[k2]
        if T == 1:
            s[:] = out
        else:
            slot = idx % 2
            part[slot, t, :] = out
            _atomic_add(done, 0, 1)
            _wait_until(done, 0, T * (idx + 1), 0)
            s[:] = 0.0
            for u in range(T):
                s += part[slot, u]
        if known:
            s[4], s[5] = couplings[idx, 0], couplings[idx, 1]
        elif t == 0:
            couplings[idx, 0], couplings[idx, 1] = s[4], s[5]
        a1r, a1i = _row_alpha(br, bi, k1, s[0], s[1], v1r, v1i, inv_den, sqrt_lam)
        if k2 == k1:                                # a row twice in a row (an order of the caller's): v_k moved
            v2r, v2i = v1r + sqrt_lam * a1r, v1i + sqrt_lam * a1i
        a2r, a2i = _row_alpha(br, bi, k2, s[2] + s[4] * a1r - s[5] * a1i, s[3] + s[4] * a1i + s[5] * a1r, v2r, v2i,
                              inv_den, sqrt_lam)
        if t == 0:
            vr[k1], vi[k1] = v1r + sqrt_lam * a1r, v1i + sqrt_lam * a1i
            vr[k2], vi[k2] = v2r + sqrt_lam * a2r, v2i + sqrt_lam * a2i
        p[0], p[1], p[2], p[3] = a1r, a1i, a2r, a2i
        q1 = k1
        q2 = k2
        idx += 1
    for j in range(lo, hi):
        u1r = _part(P, Af, planar, q1, j, 0)
        u1i = _part(P, Af, planar, q1, j, 1)
        u2r = _part(P, Af, planar, q2, j, 0)
        u2i = _part(P, Af, planar, q2, j, 1)
        cr[j] += u1r * p[0] + u1i * p[1] + u2r * p[2] + u2i * p[3]
        ci[j] += u1r * p[1] - u1i * p[0] + u2r * p[3] - u2i * p[2]


@njit(cache=True, parallel=True)
def _sweep_threads(P, Af, planar, br, bi, order, inv_den, sqrt_lam, cr, ci, vr, vi, threads, couplings, known):
    """One single-frame sweep (:func:`_sweep_pairs`) with the voxels split among ``threads`` CPU threads that meet
    once per pair of rows (their partial dot products summed in a fixed order: the same image for the same number of
    threads that ran, equal to rounding across numbers). The first thread to start waits for the others
    (:data:`JOIN_POLLS`) and runs the sweep alone if they do not come, so the sweep never waits on a thread that numba
    does not run. An order that holds a row twice runs on one thread."""
    N = cr.shape[0]
    rows = np.empty(order.shape[0], np.int64)
    n = 0
    for kk in range(order.shape[0]):
        if inv_den[order[kk]] != 0.0:
            rows[n] = order[kk]
            n += 1
    if n == 0:
        return
    p = np.zeros(4)
    if n % 2 == 1:                                  # an odd count: the first row alone
        sr = 0.0
        si = 0.0
        for j in range(N):
            ar = _part(P, Af, planar, rows[0], j, 0)
            ai = _part(P, Af, planar, rows[0], j, 1)
            sr += ar * cr[j] - ai * ci[j]
            si += ar * ci[j] + ai * cr[j]
        p[0], p[1] = _row_step(br, bi, vr, vi, rows[0], sr, si, inv_den, sqrt_lam)
    if couplings.shape[0] < n // 2 + 1 or couplings.shape[1] != 2:     # not this order's: found again
        couplings = np.empty((n // 2 + 1, 2))
        known = False
    T = max(1, threads)
    seen = np.zeros(inv_den.shape[0], np.bool_)
    for m in range(n):                              # a row twice in the order: its v is read after it was written,
        if seen[rows[m]]:                           # which the threads do not wait for: one thread
            T = 1
            break
        seen[rows[m]] = True
    part = np.zeros((2, T, 6))
    done = np.zeros(8, np.int64)                    # [0] posted partial sums
    state = np.zeros(16, np.int64)                  # [0] threads started, [8] 0 deciding, 1 together, 2 alone
    if T == 1:
        _sweep_pairs(P, Af, planar, br, bi, rows, n, p, inv_den, sqrt_lam, cr, ci, vr, vi, 0, N, 0, 1, part, done,
                     couplings, known)
        return
    chunk = ((N + T - 1) // T + 7) // 8 * 8         # whole cache lines of the iterate per thread
    for t in prange(T):
        if _atomic_add(state, 0, 1) == 0:
            together = _wait_until(state, 0, T, JOIN_POLLS)
            _atomic_cas(state, 8, 0, 1 if together else 2)
            if not together:
                _sweep_pairs(P, Af, planar, br, bi, rows, n, p, inv_den, sqrt_lam, cr, ci, vr, vi, 0, N, 0, 1,
                             part, done, couplings, known)
        else:
            _wait_until(state, 8, 1, 0)
        if _atomic_load(state, 8) == 1:
            lo = min(N, t * chunk)
            _sweep_pairs(P, Af, planar, br, bi, rows, n, p, inv_den, sqrt_lam, cr, ci, vr, vi, lo,
                         min(N, lo + chunk), t, T, part, done, couplings, known)
