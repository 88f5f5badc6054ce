"""The onset test of a live session's warnings (:mod:`mpisim.alarms`) on series whose answer is known: a ramp
hidden in white noise on a drifting baseline is found about when its z reaches the threshold, and its onset with
it; a drifting baseline alone, or a curving one, raises nothing."""

import numpy as np
import pytest

from mpisim.alarms import BIN_S, HISTORY_MIN_S, HISTORY_S, ONSET_Z, OnsetTest, ramp_fits


def run(series, sigma, rate=46.4, watch=(0,)):
    """Feed (t, y(t)) at ``rate`` images/s (y: one ROI's amount, or all ROIs'); the first firing's (time, result)
    or None."""
    test = OnsetTest(np.atleast_1d(sigma), watch)
    for t, y in series(np.arange(1, int(30 * rate)) / rate):
        hits = test.add(t, np.atleast_1d(y))
        if hits:
            return t, hits, test
    return None, None, test


def ramp_series(seed, onset, slope, drift=0.3, sigma=1.0):
    rng = np.random.default_rng(seed)

    def series(t):
        y = 5.0 + drift * t + slope * np.maximum(t - onset, 0.0) + sigma * rng.standard_normal(t.size)
        return zip(t, y)
    return series


def expected_delay(slope, sigma, rate):
    """The time after the onset at which a ramp's z, with the line before it known, reaches ONSET_Z: the least-
    squares slope over L seconds of images at ``rate``/s has σ = σ_image √(12 / (rate L³))."""
    return (ONSET_Z ** 2 * 12 * sigma ** 2 / (rate * slope ** 2)) ** (1 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_ramp_is_found_soon_after_its_onset(seed):
    onset, slope, sigma = 12.0, 6.0, 10.0          # ng/s and ng: the preset reflux on bruker-3d's track ROI
    t, hits, _ = run(ramp_series(seed, onset, slope, sigma=sigma), sigma)
    assert t is not None
    hit = hits[0]
    ideal = expected_delay(slope, sigma, 46.4)      # ≈ 2.2 s; the line before fitted too: later
    assert ideal * 0.6 < t - onset < ideal * 1.8, (t - onset, ideal)
    assert abs(hit["onset_s"] - onset) < 1.5          # the onset of a ramp only just found: ± a second
    assert hit["rate_kg_per_s"] == pytest.approx(slope, rel=0.5)
    assert hit["z"] > ONSET_Z


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_no_alarm_without_a_change(seed):
    """A drifting baseline (spill from a growing target) in white noise: the largest z of the whole session stays
    below the threshold."""
    _, hit, test = run(ramp_series(seed, np.inf, 0.0, drift=2.0, sigma=10.0), 10.0)
    assert hit is None
    assert max(z for _, z in test.trace[0]) < ONSET_Z


def test_a_slow_curve_is_not_taken_for_an_onset():
    """A baseline that bends slowly (a target's spill growing as √t while it diffuses) over more than the
    history: the line fitted to the last HISTORY_S seconds follows it."""
    rng = np.random.default_rng(7)
    series = lambda t: zip(t, 40 * np.sqrt(t) + 10 * rng.standard_normal(t.size))
    _, hit, _ = run(series, 10.0)
    assert hit is None, hit


def test_noise_beyond_the_background_is_taken_from_the_data():
    """When the images scatter more than the background frames said (σ given 1, true 10), the test takes the
    scatter about the line: no alarm on noise alone."""
    _, hit, _ = run(ramp_series(8, np.inf, 0.0, sigma=10.0), 1.0)
    assert hit is None


def test_spill_from_a_neighbour_filling_fast_is_not_an_onset():
    """ROI 1 fills at 1000 σ per second from 12 s; ROI 0 reads 0.1 % of it (what a spill correction leaves) —
    hundreds of σ of its own noise, but under SPILL of the neighbour's change: not flagged; ROI 1 is, at once."""
    rng = np.random.default_rng(9)

    def series(t):
        fill = 1000.0 * np.maximum(t - 12.0, 0.0)
        return zip(t, np.stack([1e-3 * fill, fill], 1) + rng.standard_normal((t.size, 2)))
    t, hits, test = run(series, np.ones(2), watch=(0, 1))
    assert set(hits) == {1} and t - 12.0 < 0.5
    assert max(z for _, z in test.trace[0]) < ONSET_Z      # hundreds of σ, but held by the spill guard


def test_a_long_session_keeps_only_what_it_fits():
    """Over 10 minutes of images the test keeps KEPT_S seconds of bins (its cost per bin stays flat), and a
    damaged image (NaN) is left out instead of spoiling the sums: a ramp after both is still found."""
    from mpisim.alarms import KEPT_S

    rng = np.random.default_rng(10)
    test = OnsetTest(np.ones(1), (0,))
    fired = None
    for t in np.arange(1, 600 * 20) / 20:
        y = 2.0 * max(t - 590.0, 0.0) + rng.standard_normal()
        hits = test.add(t, [np.nan] if abs(t - 300) < 1e-9 else [y])
        if hits and fired is None:
            fired = t
        assert test.t[-1] - test.t[0] <= KEPT_S + BIN_S if test.t else True
    assert fired is not None and 590 < fired < 593


def test_prefix_sum_fits_equal_least_squares_per_onset():
    """The fits of every candidate onset from prefix sums (ramp_fits) against a weighted least-squares solve per
    onset (numpy lstsq on the bins of its window), with the scatter before τ and the validity rule."""
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 20, 200))
    n = rng.integers(1, 6, 200).astype(float)
    Y = np.stack([1e-10 * (1 + 0.1 * t), 3e-11 * np.maximum(t - 14, 0)], 1) + 1e-11 * rng.standard_normal((200, 2))
    sigma = np.array([1e-11, 2e-11])
    taus = np.arange(0.5, t[-1] - 0.3, 0.1)                # the first ones without enough before them
    z, c, b, ok = ramp_fits(t, Y, n, taus, sigma)
    checked = 0
    for i, tau in enumerate(taus):
        sel, pre = t > tau - HISTORY_S, (t > tau - HISTORY_S) & (t <= tau)
        if pre.sum() < 3 or tau - t[pre][0] < HISTORY_MIN_S - BIN_S:
            assert not ok[i]
            continue
        assert ok[i]
        s, sw = t[sel] - tau, np.sqrt(n[sel])[:, None]
        X = np.stack([np.ones_like(s), s, np.maximum(s, 0)], 1) * sw
        beta = np.linalg.lstsq(X, Y[sel] * sw, rcond=None)[0]
        h = s <= 0
        r = Y[sel][h] * sw[h] - X[h, :2] @ np.linalg.lstsq(X[h, :2], Y[sel][h] * sw[h], rcond=None)[0]
        s2 = np.maximum(sigma ** 2, (r * r).sum(0) / (h.sum() - 2))
        np.testing.assert_allclose(c[i], beta[2], rtol=1e-8)
        np.testing.assert_allclose(b[i], beta[1], rtol=1e-8)
        np.testing.assert_allclose(z[i], beta[2] / np.sqrt(np.linalg.inv(X.T @ X)[2, 2] * s2), rtol=1e-8)
        checked += 1
    assert checked > 80 and not ok.all()
