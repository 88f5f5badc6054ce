"""Compiled CPU kernels (numba), imported lazily on first use.

Each kernel has a pure-numpy twin in the calling module with identical semantics; tests compare
them. When numba is missing (or ``MPISIM_DISABLE_NUMBA=1``), the numpy twins are used.
"""

import math

from numba import njit, prange
import numpy as np

__all__ = ["unit_moments", "weighted_unit_moment_sum", "assemble_columns", "fletcher64_update",
           "fletcher64_update_serial", "abs_deviation_sum", "brown_moments", "row_dots"]


@njit(cache=True, inline="always")
def _langevin_over_xi(xi):
    """L(ξ)/ξ for ξ >= 0, series below 0.1 (matches particles.langevin_over_xi)."""
    if xi < 0.1:
        x2 = xi * xi
        return 1 / 3 - x2 * (1 / 45 - x2 * (2 / 945 - x2 * (1 / 4725 - x2 * 2 / 93555)))
    return (1.0 / math.tanh(xi) - 1.0 / xi) / xi


@njit(parallel=True, cache=True, nogil=True)
def unit_moments(hd, offsets, betas, q, out):
    """out[p, :, t] = Σ_i q_i β_i f(β_i |h|) h with h = offsets[p] + hd[:, t].

    hd (3, V) T/µ0; offsets (P, 3) T/µ0; betas, q (Q,); out (P, 3, V) float32/float64.
    """
    P = offsets.shape[0]
    V = hd.shape[1]
    Q = betas.shape[0]
    for p in prange(P):
        ox = offsets[p, 0]
        oy = offsets[p, 1]
        oz = offsets[p, 2]
        for t in range(V):
            hx = ox + hd[0, t]
            hy = oy + hd[1, t]
            hz = oz + hd[2, t]
            h = math.sqrt(hx * hx + hy * hy + hz * hz)
            s = 0.0
            for i in range(Q):
                s += q[i] * betas[i] * _langevin_over_xi(betas[i] * h)
            out[p, 0, t] = s * hx
            out[p, 1, t] = s * hy
            out[p, 2, t] = s * hz


@njit(parallel=True, cache=True)
def weighted_unit_moment_sum(hd, offsets, weights, betas, q, out):
    """out[:, t] += Σ_p weights[p] · unit moment of voxel p at time t (parallel over time)."""
    P = offsets.shape[0]
    V = hd.shape[1]
    Q = betas.shape[0]
    for t in prange(V):
        ax = 0.0
        ay = 0.0
        az = 0.0
        for p in range(P):
            hx = offsets[p, 0] + hd[0, t]
            hy = offsets[p, 1] + hd[1, t]
            hz = offsets[p, 2] + hd[2, t]
            h = math.sqrt(hx * hx + hy * hy + hz * hz)
            s = 0.0
            for i in range(Q):
                s += q[i] * betas[i] * _langevin_over_xi(betas[i] * h)
            s *= weights[p]
            ax += s * hx
            ay += s * hy
            az += s * hz
        out[0, t] += ax
        out[1, t] += ay
        out[2, t] += az




@njit(parallel=True, cache=True, nogil=True)
def assemble_columns(spec, R, out, block):
    """out[l, k, p] = Σ_c R[l, c, k] · spec[p, c, k] (the response applied and the voxel axis moved
    last in one cache-blocked pass). spec (P, 3, K), R (C, 3, K), out (C, K, P) complex (``out``
    may be a column slice of a wider buffer)."""
    P, _, K = spec.shape
    C = R.shape[0]
    nb = (K + block - 1) // block
    for t in prange(C * nb):
        l = t // nb
        k0 = (t % nb) * block
        k1 = min(K, k0 + block)
        for p in range(P):
            for k in range(k0, k1):
                out[l, k, p] = R[l, 0, k] * spec[p, 0, k] + R[l, 1, k] * spec[p, 1, k] + R[l, 2, k] * spec[p, 2, k]


@njit(cache=True, nogil=True, inline="always")
def _fletcher64_row(state, words, finite, step, r):
    mod = np.uint64(0xFFFFFFFF)
    emask = np.uint32(0x7F800000) if step == 1 else np.uint32(0x7FF00000)
    W = words.shape[1]
    a = state[r, 0]
    b = state[r, 1]
    bad = False
    for s in range(0, W, 4096):
        e = min(W, s + 4096)
        for j in range(s, e):
            a += np.uint64(words[r, j])
            b += a
        for j in range(s + step - 1, e, step):
            if (words[r, j] & emask) == emask:
                bad = True
        a %= mod
        b %= mod
    state[r, 0] = a
    state[r, 1] = b
    if bad:
        finite[r] = False


@njit(parallel=True, cache=True, nogil=True)
def fletcher64_update(state, words, finite, step):
    """Fletcher-64 row checksums: add each row's uint32 ``words`` (M, W) to ``state`` (M, 2) uint64
    (a, b), in place, rows in parallel. Twin: :func:`mpisim.io.checksum.update_numpy`. In the same
    pass, ``finite[r]`` is cleared when row r holds a NaN or Inf: every ``step``-th word from word
    ``step − 1`` carries an IEEE exponent (float32 data: step 1, bits 23–30; float64: step 2, bits 20–30)."""
    for r in prange(words.shape[0]):
        _fletcher64_row(state, words, finite, step, r)


@njit(cache=True, nogil=True)
def fletcher64_update_serial(state, words, finite, step):
    """:func:`fletcher64_update` on one thread (for a thread that runs beside other parallel kernels)."""
    for r in range(words.shape[0]):
        _fletcher64_row(state, words, finite, step, r)


@njit(cache=True, nogil=True)
def abs_deviation_sum(block, mean, out):
    """out[l, k] += Σ_p |block[l, k, p] − mean[l, k]| (float64), for the calibration SNR (one thread:
    it runs on the build's I/O thread beside the parallel kernels)."""
    C, K, P = block.shape
    for t in range(C * K):
        l = t // K
        k = t % K
        m = mean[l, k]
        s = 0.0
        for p in range(P):
            d = block[l, k, p] - m
            s += math.sqrt(d.real * d.real + d.imag * d.imag)
        out[l, k] += s


@njit(cache=True, nogil=True, inline="always")
def _brown_rhs(c, xi0, xi1, xi2, lam, ptr, idx, val, rate, out):
    """out = −rate (Λ c + Σ_k ξ_k B_k c): the Galerkin Fokker–Planck equation of Brownian rotation
    (:class:`mpisim.fokker_planck.BrownSphere`), B_k stacked as one CSR of 3n rows."""
    n = c.shape[0]
    for i in range(n):
        s0 = 0.0
        for jj in range(ptr[i], ptr[i + 1]):
            s0 += val[jj] * c[idx[jj]]
        s1 = 0.0
        for jj in range(ptr[n + i], ptr[n + i + 1]):
            s1 += val[jj] * c[idx[jj]]
        s2 = 0.0
        for jj in range(ptr[2 * n + i], ptr[2 * n + i + 1]):
            s2 += val[jj] * c[idx[jj]]
        out[i] = -rate * (lam[i] * c[i] + xi0 * s0 + xi1 * s1 + xi2 * s2)


@njit(parallel=True, cache=True, nogil=True)
def brown_moments(hfine, offsets, beta, rate, lam, ptr, idx, val, mrow, substeps, preroll, max_periods, tol, rho,
                  out, periods):
    """Periodic mean moment of Brownian particles under the drive plus each voxel's offset field, by classical
    Runge–Kutta steps of the Galerkin Fokker–Planck equation; the numpy twin is
    :func:`mpisim.dynamics.brown_moments_numpy`.

    hfine (3, 2·substeps·V) T/µ0: the drive at every half step of one period; offsets (P, 3) T/µ0; beta: µ0 m /
    (k_B T) in 1/(T/µ0); rate = h / (2 τ_B), the step h = sample interval / ``substeps`` in units of 2τ_B (the
    steps are of unit length); lam (n,) l(l+1); ptr, idx, val: CSR of [B_x; B_y; B_z] (3n rows);
    mrow (3, n): ⟨m̂_k⟩ = mrow[k] · c; preroll: samples integrated before the recorded period; out (P, 3, V):
    ⟨m̂⟩ at the samples; periods (P,): the periods integrated until the state's distance to the periodic one —
    estimated as its change over a period over 1 − ``rho``, ``rho`` the contraction per period — is within ``tol``
    (relative, max norm; −1: not within ``max_periods``)."""
    P = offsets.shape[0]
    V = out.shape[2]
    n = lam.shape[0]
    H = 2 * substeps
    for p in prange(P):
        c = np.zeros(n)
        c[0] = 1.0 / math.sqrt(4.0 * math.pi)
        k1 = np.empty(n)
        k2 = np.empty(n)
        k3 = np.empty(n)
        k4 = np.empty(n)
        tmp = np.empty(n)
        start = np.empty(n)
        ox = offsets[p, 0]
        oy = offsets[p, 1]
        oz = offsets[p, 2]
        periods[p] = -1
        total = preroll + max_periods * V + 1           # + 1: the last period's end is checked too
        for step in range(total):
            s = (step - preroll) % V                    # the sample this step starts from (the pre-roll wraps)
            rec = step - preroll
            if rec >= 0 and s == 0:
                if rec > 0:
                    d = 0.0
                    nrm = 0.0
                    for i in range(n):
                        d = max(d, abs(c[i] - start[i]))
                        nrm = max(nrm, abs(c[i]))
                    # distance of the period's start from the periodic state: about d / (1 − ρ)
                    if d <= tol * nrm * (1.0 - rho):
                        periods[p] = rec // V
                        break
                for i in range(n):
                    start[i] = c[i]
            if rec >= 0:
                for k in range(3):
                    acc = 0.0
                    for i in range(n):
                        acc += mrow[k, i] * c[i]
                    out[p, k, s] = acc
            for sub in range(substeps):
                j = s * H + 2 * sub
                dt = 1.0
                a0 = beta * (hfine[0, j] + ox)
                a1 = beta * (hfine[1, j] + oy)
                a2 = beta * (hfine[2, j] + oz)
                jm = j + 1
                b0 = beta * (hfine[0, jm] + ox)
                b1 = beta * (hfine[1, jm] + oy)
                b2 = beta * (hfine[2, jm] + oz)
                je = (j + 2) % hfine.shape[1]
                e0 = beta * (hfine[0, je] + ox)
                e1 = beta * (hfine[1, je] + oy)
                e2 = beta * (hfine[2, je] + oz)
                _brown_rhs(c, a0, a1, a2, lam, ptr, idx, val, rate, k1)
                for i in range(n):
                    tmp[i] = c[i] + 0.5 * dt * k1[i]
                _brown_rhs(tmp, b0, b1, b2, lam, ptr, idx, val, rate, k2)
                for i in range(n):
                    tmp[i] = c[i] + 0.5 * dt * k2[i]
                _brown_rhs(tmp, b0, b1, b2, lam, ptr, idx, val, rate, k3)
                for i in range(n):
                    tmp[i] = c[i] + dt * k3[i]
                _brown_rhs(tmp, e0, e1, e2, lam, ptr, idx, val, rate, k4)
                for i in range(n):
                    c[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])


@njit(cache=True, fastmath=True, nogil=True, inline="always")
def _row_dot1(row, x):
    acc = np.float32(0)
    for i in range(row.shape[0]):
        acc += np.float32(row[i]) * x[i]
    return acc


@njit(cache=True, fastmath=True, nogil=True, inline="always")
def _row_dot4(row, x0, x1, x2, x3):
    a0 = a1 = a2 = a3 = np.float32(0)
    for i in range(row.shape[0]):
        q = np.float32(row[i])
        a0 += q * x0[i]
        a1 += q * x1[i]
        a2 += q * x2[i]
        a3 += q * x3[i]
    return a0, a1, a2, a3


@njit(cache=True, parallel=True, fastmath=True)
def row_dots(Q, xt, out):
    """out (F, R) float32 = xt (F, K) float32 · Qᵀ for Q (R, K) int16 or float32: the products of the live Tikhonov
    operator (:class:`~mpisim.reco.tikhonov.TikhonovOperator`; an int16 element converted as it is loaded), sums in
    float32 like the BLAS product they replace; rows in parallel, four right-hand sides per pass over a row. No BLAS
    call in a live session's loop: OpenBLAS's threads spin after each call and took the cores from these (a bruker-3d
    frame's two products 15.9–23.7 ms with BLAS for the second, 8.0–9.6 ms with this for both in three of four runs:
    ``benchmarks/bench_live_parts.py``). The numpy twin is
    :func:`mpisim.reco.tikhonov.row_dots_numpy`."""
    R = Q.shape[0]
    F = xt.shape[0]
    for j in prange(R):
        row = Q[j]
        f = 0
        while f < F:
            if F - f >= 4:
                out[f, j], out[f + 1, j], out[f + 2, j], out[f + 3, j] = _row_dot4(row, xt[f], xt[f + 1],
                                                                                     xt[f + 2], xt[f + 3])
                f += 4
            else:
                out[f, j] = _row_dot1(row, xt[f])
                f += 1
