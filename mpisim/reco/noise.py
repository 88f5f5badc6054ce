"""The measurement's noise, as the reconstruction sees it: per-bin standard deviations, the frequency
band that the data leave usable, and noise realisations for uncertainties.

All spectra are period-averaged rfft spectra (N, C, K) on the full rfft axis of one period, in the
measurement's units (V, or V per unit transfer function after correction). A "bin σ" is the
standard deviation of one complex bin, E|z − E z|² = σ².
"""

from dataclasses import dataclass

import numpy as np

from ..errors import MPISimError

__all__ = ["SMOOTH_BINS", "NoiseLevel", "frame_variance_from_background", "stated_frame_sigma",
           "noise_level", "background_spectra", "contaminated_bins", "drive_line_bins",
           "bandstop_half_width", "complex_noise"]

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


def frame_variance_from_background(bg_spec, selected=None):
    """(C, K) variance of one frame's complex bins, from E ≥ 2 background frames (E, C, K): the
    sample variance per bin, smoothed by a running median over :data:`SMOOTH_BINS` bins (robust to
    single contaminated bins). A bin's sample variance of circular complex noise is σ² Γ(k)/k with
    k = E − 1, whose median is σ² · gamma.ppf(½, k)/k: the median is divided by that factor.
    ``selected`` (K,) bool: bins that hold data (a frequency-selected file's other bins are zeros and
    stay out of the median; they get NaN)."""
    from scipy.ndimage import median_filter
    from scipy.stats import gamma

    E = bg_spec.shape[0]
    d = bg_spec - bg_spec.mean(axis=0)
    var = (np.abs(d) ** 2).sum(axis=0) / (E - 1)
    k = E - 1
    unbias = k / float(gamma.ppf(0.5, k))
    if selected is None or np.all(selected):
        return median_filter(var, size=(1, SMOOTH_BINS), mode="nearest") * unbias
    out = np.full(var.shape, np.nan)
    out[:, selected] = median_filter(var[:, selected], size=(1, SMOOTH_BINS), mode="nearest") * unbias
    return out


def stated_frame_sigma(meas):
    """σ of one complex bin of one frame from the noise density that a simulated file states
    (``/_mpisim/settings``), or None: σ_bin = noise_density · √bandwidth · √V / √(averages · J)."""
    s = meas.settings
    nd = getattr(s, "noise_density", None) if s is not None else (meas.stated_settings or {}).get("noise_density")
    if not nd:
        return None
    periods = meas.data.shape[1]
    return float(nd) * np.sqrt(meas.bandwidth) * np.sqrt(meas.num_samples) / np.sqrt(
        max(meas.num_averages, 1) * periods)


def noise_level(meas, spec, params, background_spec=None, tf=None, background_scale=1.0, peak=None):
    """Noise of the frames the solver sees, or None when nothing tells it.

    From the measurement's background frames (or the separate empty measurement ``background_spec``)
    when there are at least 2; otherwise from the noise density a simulated file states. A
    background mean over E frames is subtracted from every frame and then ``params.average``
    frames are averaged: variance × (1/average + 1/E). ``background_scale``: a measurement frame's
    variance over a background frame's (the separate file's averages × periods over the
    measurement's; 1 for the measurement's own background frames). ``peak``: the largest |spectrum| of
    the data (default: of ``spec``), against which a noise level below round-off means noise-free data.
    """
    bg = background_spectra(meas, spec, background_spec)
    E = bg.shape[0]
    subtract = params.preprocessing.background != "none" and E > 0
    selected = None
    if meas.frequency_selection is not None:
        selected = np.zeros(spec.shape[-1], bool)
        selected[meas.frequency_selection] = True
    if E >= 2:
        var = frame_variance_from_background(bg, selected)
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
    with np.errstate(over="ignore"):     # absurd (fuzzed) data: an infinite scale just means "no noise level"
        own = float(np.max(np.abs(spec)).astype(np.float64)) if spec.size else 0.0
        scale = float(np.float64(own if peak is None else max(peak, own)) ** 2)
        if not float(np.nanmax(var, initial=0.0)) > 1e-20 * scale:
            return None                  # noise-free data (round-off only): no noise level
    bg_var = var
    var = var * (background_scale if E >= 2 else 1.0)
    frame = np.sqrt(var)
    # each frame minus one background mean over E frames, then blocks of `average` frames averaged
    var = var / params.preprocessing.average + (bg_var / E if subtract else 0.0)
    return NoiseLevel(np.sqrt(var), frame, src)


def background_spectra(meas, spec, background_spec=None):
    """(E, C, K) spectra of the empty-scanner frames: a separate empty measurement's when given, else
    the measurement's own background frames (E may be 0)."""
    return background_spec if background_spec is not None else spec[meas.background_frames]


def contaminated_bins(bg, sigma_level=5.0):
    """(C, K) bool: bins whose background the background frames ``bg`` (E, C, K) show to be unstable.

    The background frames (E ≥ 4) are split into their first and second half; a bin is contaminated
    when the two halves' means differ by more than ``sigma_level`` standard deviations of that
    difference under the frames' own noise, i.e. the empty scanner's signal drifts there (feed-through
    of recorded data near the drive lines, slowly warming electronics). A static background, however
    large, is removed by the subtraction and is not flagged; the decision does not depend on the
    sample. Without 4 background frames nothing is flagged.
    """
    if bg.shape[0] < 4:
        return np.zeros(bg.shape[1:], bool)
    h = bg.shape[0] // 2
    a, b = bg[:h], bg[h:]
    var = np.nan_to_num(frame_variance_from_background(bg))
    drift = np.abs(a.mean(axis=0) - b.mean(axis=0)) ** 2
    return drift > sigma_level**2 * var * (1.0 / a.shape[0] + 1.0 / b.shape[0])


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
