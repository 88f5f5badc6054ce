"""The measurement's noise, as the reconstruction sees it: per-bin standard deviations, the frequency
band that the data leave usable, and noise realisations for uncertainties.

All spectra are period-averaged rfft spectra (N, C, K) on the full rfft axis of one period, in the
measurement's units (V, or V per unit transfer function after correction). A "bin σ" is the
standard deviation of one complex bin, E|z − E z|² = σ².
"""

from dataclasses import dataclass

import numpy as np

from ..errors import MPISimError

# |z|² of circular complex Gaussian noise is exponential: its median is ln 2 times its mean
_MEDIAN_TO_MEAN = 1.0 / np.log(2.0)
SMOOTH_BINS = 31
"""Bins in the running median that turns the background frames' per-bin variance into a noise level."""


@dataclass(frozen=True)
class NoiseLevel:
    """sigma : (C, K) standard deviation of one complex bin of a frame that the solver sees (after
    background subtraction and block averaging), in the spectra's units. ``source`` says where it
    came from; ``frame_sigma`` is the σ of a single raw frame (before subtraction/averaging)."""

    sigma: np.ndarray
    frame_sigma: np.ndarray
    source: str


def frame_variance_from_background(bg_spec):
    """(C, K) variance of one frame's complex bins, from E ≥ 2 background frames (E, C, K): the
    sample variance per bin, smoothed by a running median over :data:`SMOOTH_BINS` bins (robust to
    single contaminated bins; the median of an exponential variable is ln 2 × its mean)."""
    from scipy.ndimage import median_filter

    E = bg_spec.shape[0]
    d = bg_spec - bg_spec.mean(axis=0)
    var = (np.abs(d) ** 2).sum(axis=0) / (E - 1)
    return median_filter(var, size=(1, SMOOTH_BINS), mode="nearest") * _MEDIAN_TO_MEAN


def stated_frame_sigma(meas):
    """σ of one complex bin of one frame from the noise density that a simulated file states
    (``/_mpisim/settings``), or None: σ_bin = noise_density · √bandwidth · √V / √(averages · J)."""
    s = meas.meta.get("settings")
    nd = getattr(s, "noise_density", None) if s is not None else (meas.meta.get("stated_settings") or {}).get(
        "noise_density")
    if not nd:
        return None
    periods = meas.data.shape[1]
    return float(nd) * np.sqrt(meas.bandwidth) * np.sqrt(meas.num_samples) / np.sqrt(
        max(meas.num_averages, 1) * periods)


def noise_level(meas, spec, params, background_spec=None, tf=None):
    """Noise of the frames the solver sees, or None when nothing tells it.

    From the measurement's background frames (or the separate empty measurement ``background_spec``)
    when there are at least 2; otherwise from the noise density a simulated file states. A
    background mean over E frames is subtracted (variance × (1 + 1/E)); ``params.average`` frames
    are averaged (variance / average).
    """
    bg = background_spec
    if bg is None and meas.background_frames.size:
        bg = spec[meas.background_frames]
    E = 0 if bg is None else bg.shape[0]
    subtract = params.background != "none" and E > 0
    if E >= 2:
        var = frame_variance_from_background(bg)
        src = (f"{E} background frames{' (separate file)' if background_spec is not None else ''}: per-bin "
               f"variance, running median over {SMOOTH_BINS} bins")
    else:
        s = stated_frame_sigma(meas)
        if s is None:
            return None
        shape = spec.shape[1:]
        var = np.full(shape, s * s)
        if tf is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                var = np.where(np.abs(tf) > 0, var / np.abs(np.where(tf == 0, 1, tf)) ** 2, 0.0)
        src = "noise density stated in the file (no background frames)"
    frame = np.sqrt(var)
    var = var / params.average * (1.0 + (1.0 / E if subtract else 0.0))
    return NoiseLevel(np.sqrt(var), frame, src)


def contaminated_bins(meas, spec, fg_mean=None, ratio=10.0):
    """(C, K) bool: bins the background frames show to be dominated by the scanner, not the sample.

    A bin is contaminated when the background frames' mean exceeds ``ratio`` × the foreground's
    signal after subtraction (|mean bg| > ratio · |mean fg − mean bg|, with the signal floored at the
    noise level): there any drift of the background is larger than the particle signal, as at the
    drive-field feed-through of recorded data. Without background frames nothing is flagged.
    """
    bgi = meas.background_frames
    if bgi.size == 0:
        return np.zeros(spec.shape[1:], bool)
    bgm = spec[bgi].mean(axis=0)
    fg = spec[meas.foreground_frames].mean(axis=0) if fg_mean is None else fg_mean
    floor = np.sqrt(frame_variance_from_background(spec[bgi])) if bgi.size >= 2 else 0.0
    signal = np.maximum(np.abs(fg - bgm), floor)
    return np.abs(bgm) > ratio * signal


def drive_line_bins(frequencies, drive_frequencies, half_width):
    """(K,) bool: bins within ``half_width`` (Hz) of a drive frequency (the band-stop's reach)."""
    f = np.asarray(frequencies, float)
    out = np.zeros(f.shape, bool)
    for fd in np.atleast_1d(drive_frequencies):
        out |= np.abs(f - fd) <= half_width
    return out


def bandstop_half_width(meas):
    """Half width (Hz) of the feed-through band-stop around each drive line: from the scanner the
    file describes (mpisim files), else two frequency bins on either side plus 0.5 % of the drive
    frequency (recorded files say nothing about their band-stop; the background frames then mark
    what else is contaminated)."""
    sc = meas.scanner
    if sc is not None and getattr(sc.receiver, "bandstop_width", 0) > 0:
        return float(sc.receiver.bandstop_width) / 2
    df = 2 * meas.bandwidth / meas.num_samples
    return 2 * df + 0.005 * float(np.max(meas.drive_frequencies))


def complex_noise(rng, sigma, count):
    """``count`` realisations of circular complex Gaussian noise with per-entry σ (any shape) →
    (count, *sigma.shape)."""
    s = np.asarray(sigma, float) / np.sqrt(2.0)
    shape = (count,) + s.shape
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * s


def check_samples(n):
    from ..errors import check_int

    n = check_int("uncertainty samples", n, 0)
    if n == 1:
        raise MPISimError("uncertainty samples must be 0 (none) or >= 2 to estimate a spread")
    return n
