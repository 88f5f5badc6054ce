"""When iron starts to arrive where it should not (a needle track, a ventricle) during a live session: a
change-point test on the amount an ROI reads, image after image (:class:`OnsetTest`).

Iron that starts to flow into an ROI at time τ at a steady rate adds a ramp to the ROI's amount from τ on:

    y(t) = a + b (t − τ) + c (t − τ)₊ + noise

where the line a + b (t − τ) is what the ROI read before (spill from a growing target drifts it slowly). The test
fits this model by weighted least squares to the images of the last :data:`HISTORY_S` seconds before τ and those
after it, for every τ on a grid (:data:`BIN_S`) from :data:`RAMP_MAX_S` to :data:`RAMP_MIN_S` before the newest
image, and takes the largest z = ĉ / σ(ĉ), the generalised likelihood-ratio statistic of a ramp that starts at
an unknown time (Basseville and Nikiforov, *Detection of Abrupt Changes*, 1993, ch. 2, for a change in slope).
σ(ĉ) comes from the noise of one image's amount (from the stream's background frames), raised to the scatter
the line leaves before τ when that is larger (iron that moves, a target whose shape changes); the background
subtracted from every image is one draw for all of them, a constant the intercept a takes. An ROI is flagged when
z exceeds :data:`ONSET_Z`.

A level rule alone (the amount above k σ of its noise) waits until the iron exceeds what the ROI reads from
spill; this test looks at the change instead, and needs only that the iron grows faster than the drift before it.
Its threshold and spill fraction were chosen on a randomized family of injections on bruker-3d
(``benchmarks/study_warnings.py``: onsets, rates, fractions, positions, with and without reflux and leak; its
``--retest`` figures for other settings), and checked on a bruker-2d family and the preset injection of
``benchmarks/bench_live.py``, neither used to choose them (bruker-2d: no false alarm in 32 ROIs, 18 of 18
arrivals flagged, 12 within 2 s).
"""

import numpy as np

__all__ = ["OnsetTest", "ONSET_Z", "BIN_S", "HISTORY_S", "HISTORY_MIN_S", "RAMP_MAX_S", "RAMP_MIN_S", "SPILL", "ramp_fits"]

ONSET_Z = 6.0
"""z of the ramp (:class:`OnsetTest`) above which an ROI is flagged. On the bruker-3d family (:data:`SPILL`) 5
already raised no false alarm and flagged two slow refluxes more; 6 keeps a margin for the many onsets and
moments a session tests."""
BIN_S = 0.1
"""Images are averaged in bins of this many seconds of acquisition; the test runs once per bin."""
HISTORY_S = 10.0
"""Seconds before a candidate onset that the line before it is fitted to (at most)."""
HISTORY_MIN_S = 2.0
"""Seconds of images needed before a candidate onset."""
RAMP_MAX_S = 8.0
"""Candidate onsets lie at most this long before the newest image."""
RAMP_MIN_S = 0.3
"""… and at least this long."""
KEPT_S = HISTORY_S + RAMP_MAX_S + 2 * BIN_S
"""Seconds of bins an :class:`OnsetTest` keeps (all its fits can use): its cost per bin stays flat over a session."""
SPILL = 0.3
"""A ramp is also more than this fraction of the largest change of slope, at the same onset, in any other followed
ROI (:class:`OnsetTest`). On the bruker-3d family of ``benchmarks/study_warnings.py`` (seed 2026, 16 injections;
``--table … --retest`` prints these ratios at the first z above 6) every arrival's ramp was at least 0.38 of the
largest other change (the target's, which slows as iron goes elsewhere), and the ramp that spill made in an ROI with
no iron arriving (a ventricle 0.1 mm from the track ROI on 2 mm voxels) 0.17 of it; on bruker-2d 0.36 and 0.04.
The margins are thin: ROIs drawn closer, or coarser voxels, can cross it."""


class OnsetTest:
    """The ramp test of the followed ROIs (module docstring), watching those in ``watch`` (indices). ``sigma``
    (k,) kg: noise σ of one image's amount in each ROI.

    :meth:`add` takes each image's time (s of acquisition) and the amounts (k,) kg of all followed ROIs, and
    returns {index: {"z", "onset_s" (the fitted τ), "rate_kg_per_s" (ĉ), "baseline_kg_per_s" (b)}} of the
    watched ROIs the test fires for (empty when none). Besides z, a ramp must be more than :data:`SPILL` of the
    largest change of slope at the same τ in any other followed ROI (iron arriving fast in one ROI shows in its
    neighbours' amounts by the shape mismatch of the spill correction, by far less than that). ``trace`` keeps
    (time, z) of every test run per watched ROI."""

    def __init__(self, sigma, watch):
        self.sigma, self.watch = np.asarray(sigma, float), list(watch)
        self.t, self.y, self.n = [], [], []          # bins: mean time, mean amounts (k,), images
        self._open = None                            # [bin index, Σt, Σy, n] of the bin being filled
        self.trace = {j: [] for j in self.watch}

    def add(self, t, y):
        y = np.asarray(y, float)
        if not (np.isfinite(t) and np.all(np.isfinite(y))):
            return {}                                # a damaged image does not enter the sums
        k = int(np.floor(t / BIN_S))
        hits = {}
        if self._open is not None and self._open[0] != k:
            _, st, sy, n = self._open
            self.t.append(st / n)
            self.y.append(sy / n)
            self.n.append(n)
            self._open = None
            keep = next(i for i, x in enumerate(self.t) if x > self.t[-1] - KEPT_S)
            if keep:                                 # only the last KEPT_S seconds are ever fitted
                del self.t[:keep], self.y[:keep], self.n[:keep]
            hits = self._test()
        if self._open is None:
            self._open = [k, 0.0, np.zeros(len(self.sigma)), 0]
        self._open[1] += t
        self._open[2] = self._open[2] + y
        self._open[3] += 1
        return hits

    def _test(self):
        t, Y, n = np.array(self.t), np.array(self.y), np.array(self.n, float)
        T = t[-1]
        if T - t[0] < HISTORY_MIN_S + RAMP_MIN_S:
            return {}
        taus = np.arange(T - RAMP_MAX_S, T - RAMP_MIN_S + 1e-9, BIN_S)
        z, c, b, ok = ramp_fits(t, Y, n, taus, self.sigma)
        hits = {}
        for j in self.watch:
            others = np.delete(np.abs(c), j, axis=1)
            fine = ok & (c[:, j] > SPILL * (others.max(axis=1) if others.shape[1] else 0.0))
            i = int(np.argmax(np.where(fine, z[:, j], -np.inf))) if fine.any() else None
            zj = float(z[i, j]) if i is not None else 0.0
            self.trace[j].append((float(T), zj))
            if zj > ONSET_Z:
                hits[j] = {"z": zj, "onset_s": float(taus[i]), "rate_kg_per_s": float(c[i, j]),
                           "baseline_kg_per_s": float(b[i, j])}
        return hits


def ramp_fits(t, Y, n, taus, sigma):
    """The ramp model fitted for every candidate onset τ in ``taus`` to every ROI's bins (t ascending, Y (bins, k)
    mean amounts, n images each; weighted least squares, weights n) → z, ĉ, b̂ (each (len(taus), k)) and ok
    (len(taus),): whether τ had enough before it (:data:`HISTORY_MIN_S`). Each fit uses the bins within
    :data:`HISTORY_S` before τ and all after it; σ(ĉ) from the ROI's noise ``sigma`` (k,), or the scatter about
    its line before τ when larger. All fits from prefix sums of the bins, with powers of t − τ expanded: O(1) per τ.
    """
    t, Y, w = np.asarray(t, float), np.asarray(Y, float), np.asarray(n, float)
    taus = np.asarray(taus, float)
    k = Y.shape[1]
    t0 = t[-1]                                        # sums in t − t0: small numbers near the newest bin
    u, U = t - t0, taus - t0

    def prefix(a):
        out = np.zeros((len(t) + 1,) + a.shape[1:])
        np.cumsum(a, axis=0, out=out[1:])
        return out

    Pw, Pt, Pt2 = prefix(w), prefix(w * u), prefix(w * u * u)
    Py, Pty, Py2 = prefix(w[:, None] * Y), prefix((w * u)[:, None] * Y), prefix(w[:, None] * Y * Y)
    Pc = prefix(np.ones_like(u))
    a = np.searchsorted(t, taus - HISTORY_S, side="right")       # first bin of the window
    m = np.searchsorted(t, taus, side="right")                   # first bin after τ
    N = len(t)

    def sums(lo, hi):
        """(Σw, Σw s, Σw s², Σw y, Σw s y, Σw y²) over bins lo..hi−1, s = t − τ."""
        sw, st, st2 = Pw[hi] - Pw[lo], Pt[hi] - Pt[lo], Pt2[hi] - Pt2[lo]
        sy, sty, sy2 = Py[hi] - Py[lo], Pty[hi] - Pty[lo], Py2[hi] - Py2[lo]
        s1 = st - U * sw
        s2 = st2 - 2 * U * st + U * U * sw
        return sw, s1, s2, sy, sty - U[:, None] * sy, sy2

    W0, W1, W2, Wy, Wsy, _ = sums(a, N)
    _, Q1, Q2, _, Qsy, _ = sums(m, N)                            # after τ: the ramp's column
    H0, H1, H2, Hy, Hsy, Hy2 = sums(a, m)                        # before τ: the line alone
    G = np.stack([np.stack([W0, W1, Q1], -1), np.stack([W1, W2, Q2], -1), np.stack([Q1, Q2, Q2], -1)], -2)
    rhs = np.stack([Wy, Wsy, Qsy], -2)                           # (τ, 3, k)
    count = Pc[m] - Pc[a]
    ok = (count >= 3) & (taus - t[np.minimum(a, N - 1)] >= HISTORY_MIN_S - BIN_S) & (m < N)
    G = np.where(ok[:, None, None], G, np.eye(3))
    Ginv = np.linalg.inv(G)
    beta = Ginv @ np.where(ok[:, None, None], rhs, 0.0)          # (τ, 3, k)
    Hd = np.where(ok, H0 * H2 - H1 * H1, 1.0)
    bh0 = (H2[:, None] * Hy - H1[:, None] * Hsy) / Hd[:, None]
    bh1 = (H0[:, None] * Hsy - H1[:, None] * Hy) / Hd[:, None]
    rss = np.maximum(Hy2 - bh0 * Hy - bh1 * Hsy, 0.0)
    s2 = np.maximum(np.asarray(sigma, float) ** 2, rss / np.maximum(count - 2, 1)[:, None])
    var_c = Ginv[:, 2, 2][:, None] * s2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(ok[:, None] & (var_c > 0), beta[:, 2] / np.sqrt(var_c), 0.0)
    return z, beta[:, 2], beta[:, 1], ok
