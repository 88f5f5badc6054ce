"""Preprocessing for reconstruction: spectra, background, averaging, frequency selection, weights.

Every step takes the parameter group it needs (:mod:`mpisim.reconstruction`). All frequency indices are
0-based rfft bins of one period (V samples, sampling rate 2·bandwidth).
"""

import numpy as np

from ..errors import MPISimError
from ..operator import check_compatible
from ..measurement import in_band
from .noise import background_spectra, bandstop_half_width, contaminated_bins, drive_line_bins

__all__ = ["check_compatible", "measurement_spectra", "selected_frames", "frame_rows", "usable_bins", "select_rows",
           "row_weights"]


def measurement_spectra(meas, transfer_function=None):
    """(N, C, K_all) spectra of period-averaged frames, corrected for the transfer function the
    data contain (``meas.transfer_function``, or ``transfer_function`` (C, K) when given)."""
    spec = meas.full_spectra()
    if not np.all(np.isfinite(spec)):
        raise MPISimError(f"{meas.source if meas.source != '(in memory)' else 'measurement'}: data contain NaN or Inf")
    # average periods → (N, C, K); one period is its own mean (the same values, without a pass over the spectra)
    spec = spec[:, 0] if spec.shape[1] == 1 else spec.mean(axis=1)
    if np.shares_memory(spec, meas.data):                       # never the caller's own array
        spec = spec.copy()
    tf = transfer_function if transfer_function is not None else meas.transfer_function
    if tf is not None:
        tf = np.asarray(tf)
        with np.errstate(divide="ignore", invalid="ignore"):
            spec = np.where(np.abs(tf) > 0, spec / np.where(tf == 0, 1, tf), 0)
    return spec


def selected_frames(params, num_frames, is_background):
    """The stored frames to reconstruct: the foreground ones, or those ``params.frames`` names — indices
    among the foreground frames, 0-based, as ``reco --frames`` says (background frames are stored among them
    and are never reconstructed as data) — cut to a whole number of ``params.average`` blocks.
    ``params``: :class:`~mpisim.reconstruction.Preprocessing`."""
    foreground = np.flatnonzero(~np.asarray(is_background, bool))[:num_frames]
    if foreground.size == 0:
        raise MPISimError("the measurement has no foreground frames to reconstruct")
    frames = foreground
    if params.frames:
        idx = np.asarray(params.frames, np.int64)
        if idx.min() < 0 or idx.max() >= foreground.size:
            raise MPISimError(f"frame index out of range: the measurement has {foreground.size} foreground frame(s) "
                              f"(0..{foreground.size - 1}; --frames counts foreground frames, not the background ones)")
        frames = foreground[idx]
    a = params.average
    n = frames.size // a
    if n == 0:
        raise MPISimError(f"cannot average blocks of {a} frames: only {frames.size} selected")
    return frames[: n * a]


def frame_rows(source, frames, rows, background, transfer_function, average):
    """The data the solver sees: spectra of the stored ``frames`` at ``rows`` = (channels, bins) (M,),
    minus ``background`` (C, K) when given, blocks of ``average`` frames averaged → (M, F), and the
    largest |spectrum| among the frames read. Frames are read block by block from ``source``
    (:class:`~mpisim.frames.MeasurementFrames`), so memory holds one block and the result, whatever the acquisition's
    length."""
    cidx, bins = rows
    per = source.frames_per_block(average)
    out, peak = None, 0.0
    for s in range(0, frames.size, per):
        idx = frames[s:s + per]
        uniq, inv = np.unique(idx, return_inverse=True)
        spec = measurement_spectra(source.read(uniq), transfer_function)
        with np.errstate(over="ignore"):
            peak = max(peak, float(np.max(np.abs(spec)).astype(np.float64)) if spec.size else 0.0)
        x = spec[inv]
        if background is not None:
            x = x - background
        if average > 1:                  # on whole spectra, as the rows alone would sum in another order
            x = x.reshape(-1, average, *x.shape[1:]).mean(axis=1)
        x = x[:, cidx, bins]
        if out is None:
            out = np.empty((cidx.size, frames.size // average), x.dtype)
        out[:, s // average:s // average + x.shape[0]] = x.T
    return out, peak


def usable_bins(meas, spec, params, background_spec=None):
    """(C, K_all) bool mask of bins the data leave usable, and a dict saying what was dropped.

    ``params`` (:class:`~mpisim.reconstruction.FrequencySelection`): ``band == "auto"``: drop the drive
    lines within the band-stop's reach (:func:`~mpisim.reco.noise.bandstop_half_width`) and the bins whose
    background the background frames show to drift (:func:`~mpisim.reco.noise.contaminated_bins`). "all":
    keep every bin (of those a frequency-selected file holds).
    """
    C, K = spec.shape[1:]
    held = np.ones(K, bool)
    if meas.frequency_selection is not None:       # bins a frequency-selected file does not hold
        held[:] = False
        held[meas.frequency_selection] = True
    if params.band == "all":
        return np.broadcast_to(held, (C, K)).copy(), {"band": "all bins"}
    hw = bandstop_half_width(meas)
    lines = drive_line_bins(meas.all_frequencies, meas.drive_frequencies, hw)
    dirty = contaminated_bins(background_spectra(meas, spec, background_spec))
    ok = ~lines[None, :] & ~dirty & held[None, :]
    return ok, {"band": "auto", "drive_line_half_width_hz": float(hw), "drive_line_bins": int(lines.sum()),
                "contaminated_bins": int((dirty & ~lines[None, :]).sum())}


def select_rows(sm, params, bandwidth, usable=None):
    """Choose system-matrix rows: returns (channel indices, mask (C, K') of kept bins). ``params``:
    :class:`~mpisim.reconstruction.FrequencySelection`.

    ``usable`` (C, K_all) bool, from :func:`usable_bins`, drops bins the data mark as unusable."""
    C = sm.num_rx_channels
    ch = np.arange(C) if not params.channels else np.asarray(params.channels)
    if ch.size and (ch.min() < 0 or ch.max() >= C):
        raise MPISimError(f"receive channel out of range: got {list(params.channels)}, the data have {C} (0-based)")
    f = sm.frequencies
    fmax = params.max_freq or bandwidth
    keep = in_band(f, params.min_freq, fmax)
    mask = np.zeros((C, f.size), bool)
    mask[ch] = keep[None, :]
    if sm.nonzero_rows is not None:          # on-disk matrices: zero rows are dropped once read
        mask &= sm.nonzero_rows
    if usable is not None:
        mask &= usable[:, sm.bins]
    if sm.snr is not None and params.snr_threshold > 0:
        mask &= sm.snr >= params.snr_threshold
    if params.top_k and mask.sum() > params.top_k:
        if sm.snr is None:
            raise MPISimError("top-K selection needs the system matrix's SNR (/calibration/snr)")
        s = np.where(mask, sm.snr, -np.inf).ravel()
        idx = np.argpartition(-s, params.top_k - 1)[: params.top_k]
        m2 = np.zeros(mask.size, bool)
        m2[idx] = True
        mask &= m2.reshape(mask.shape)
    if not mask.any():
        src = sm.label
        if usable is not None and not (usable[:, sm.bins] & keep[None, :]).any():
            raise MPISimError(f"{src}: empty frequency selection: none of its {sm.bins.size} frequency bins in "
                              f"{params.min_freq:g}–{fmax:g} Hz is held by the measurement (frequency selections "
                              f"do not match)")
        raise MPISimError(f"{src}: empty frequency selection: no rows pass SNR ≥ {params.snr_threshold:g}, "
                          f"{params.min_freq:g}–{fmax:g} Hz, channels {ch.tolist()}; lower --snr-threshold")
    return ch, mask


def row_weights(A, weighting, bg_spread=None):
    """Row weights for the chosen rows (None for 'none'); ``weighting``: "none", "row-norm" or "whitening"."""
    if weighting == "none":
        return None
    if weighting == "row-norm":
        n = np.linalg.norm(A, axis=1)
        return np.where(n > 0, 1.0 / np.where(n > 0, n, 1), 0.0)
    if bg_spread is None:
        raise MPISimError("whitening needs background frames (in the system matrix or the measurement)")
    s = np.asarray(bg_spread, float)
    pos = s[s > 0]
    if pos.size == 0:
        raise MPISimError("whitening: the background frames show no noise")
    return np.where(s > 0, pos.min() / np.where(s > 0, s, 1), 0.0)
