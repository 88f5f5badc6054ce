"""Preprocessing for reconstruction: spectra, background, averaging, frequency selection, weights.

All frequency indices are 0-based rfft bins of one period (V samples, sampling rate 2·bandwidth).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import MPISimError
from ..measurement import in_band


@dataclass(frozen=True)
class RecoParams:
    """Every parameter of a reconstruction (written into the output file).

    Frequency selection: bins with min_freq ≤ f ≤ max_freq (Hz; max 0 = bandwidth), receive
    ``channels`` (0-based; empty = all), system-matrix SNR ≥ ``snr_threshold`` and, if
    ``top_k`` > 0, only the ``top_k`` rows of highest SNR. ``band``: "auto" also drops the bins that
    the data mark as unusable — the drive lines within the band-stop's reach and the bins whose
    background drifts between the background frames (:mod:`mpisim.reco.noise`); "all" keeps them. ``weighting``: "none", "row-norm" (1/‖s_k‖) or "whitening" (σ_min/σ_k from the
    background frames' spread). ``frames``: foreground frame indices (empty = all); ``average``:
    average blocks of this many frames into one. ``background``: "auto" (subtract the mean of the
    measurement's background frames when it has any), "none", or a path to an empty-scanner
    measurement. Solver: "kaczmarz" or "cgnr"; ``lam`` relative to ‖S‖_F²/N, or "auto" (generalised
    discrepancy principle, :func:`mpisim.reco.reconstruct.choose_lambda`). ``iterations``: sweeps
    (CG iterations), or "auto": stop when the residual reaches the noise level or has fallen by less
    than ``tolerance`` (relative) over the last 5 sweeps, at most ``max_iterations`` (CGNR has no
    stopping rule: "auto" runs ``max_iterations`` CG iterations).
    ``enforce_positive`` clips c < 0 after each sweep: prettier images, but it biases ROI totals
    upwards (noise and ringing are only kept where positive), so quantitative defaults leave it off.
    "auto" switches it on only when the selected rows cannot see the total iron (the response to a
    uniform image is below :data:`~mpisim.reco.reconstruct.VISIBILITY_MIN` of a typical one — a 1D
    sequence, whose fundamental is behind the band-stop): then positivity is the only prior that
    fixes the total.
    ``uncertainty_samples``: noise realisations reconstructed for the error bars (0 = none).

    The defaults were chosen by measurement (``benchmarks/study_reco_defaults.py``): on bruker-3d and
    bruker-2d they recover the concentration phantom chamber by chamber (docs: quantitation).
    """

    snr_threshold: float = 2.0
    min_freq: float = 0.0
    max_freq: float = 0.0
    band: str = "auto"
    channels: tuple = ()
    top_k: int = 0
    weighting: str = "none"
    frames: tuple = ()
    average: int = 1
    background: str = "auto"
    solver: str = "kaczmarz"
    iterations: int | str = "auto"
    max_iterations: int = 100
    tolerance: float = 0.01
    lam: float | str = 1e-2
    enforce_real: bool = True
    enforce_positive: bool | str = "auto"
    order: str = "cyclic"
    seed: int = 0
    transfer_function: str = ""
    uncertainty_samples: int = 16

    def __post_init__(self):
        from ..errors import check_int, check_positive
        from .noise import check_samples

        check_positive("SNR threshold", self.snr_threshold, allow_zero=True)
        check_positive("min frequency (Hz)", self.min_freq, allow_zero=True)
        check_positive("max frequency (Hz)", self.max_freq, allow_zero=True)
        if self.max_freq and self.max_freq < self.min_freq:
            raise MPISimError(f"max frequency {self.max_freq:g} Hz is below min frequency {self.min_freq:g} Hz")
        if self.lam != "auto":
            object.__setattr__(self, "lam", check_positive("lambda", self.lam, allow_zero=True))
        if self.enforce_positive not in (True, False, "auto"):
            raise MPISimError(f"enforce_positive must be true, false or auto, got {self.enforce_positive!r}")
        if self.band not in ("auto", "all"):
            raise MPISimError(f"band must be auto or all, got {self.band!r}")
        if self.weighting not in ("none", "row-norm", "whitening"):
            raise MPISimError(f"weighting must be none, row-norm or whitening, got {self.weighting!r}")
        if self.solver not in ("kaczmarz", "cgnr"):
            raise MPISimError(f"solver must be kaczmarz or cgnr, got {self.solver!r}")
        if self.iterations != "auto":
            object.__setattr__(self, "iterations", check_int("iterations", self.iterations, 1))
        for name in ("average", "top_k", "max_iterations"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 0 if name == "top_k" else 1))
        check_positive("tolerance", self.tolerance)
        object.__setattr__(self, "uncertainty_samples", check_samples(self.uncertainty_samples))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "frames", tuple(int(f) for f in self.frames))

    def to_dict(self):
        from dataclasses import asdict

        d = asdict(self)
        d["channels"], d["frames"] = list(self.channels), list(self.frames)
        return d

    @classmethod
    def from_dict(cls, d):
        """From :meth:`to_dict` output; fields this version does not know are ignored (older files)."""
        from dataclasses import fields

        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def check_compatible(meas, sm):
    """Raise a clear error when measurement and system matrix cannot be combined."""
    src = sm.meta.get("source", "system matrix")
    if meas.num_samples != sm.meta["num_samples"]:
        raise MPISimError(f"measurement has {meas.num_samples} samples per period, system matrix {src} has "
                          f"{sm.meta['num_samples']}: different sequences")
    if not np.isclose(meas.bandwidth, sm.meta["bandwidth"], rtol=1e-6):
        raise MPISimError(f"receiver bandwidth differs: measurement {meas.bandwidth:g} Hz, system matrix "
                          f"{sm.meta['bandwidth']:g} Hz")
    fm, fs = np.sort(meas.drive_frequencies), np.sort(sm.meta["drive_frequencies"])
    if fm.shape != fs.shape or not np.allclose(fm, fs, rtol=1e-6):
        raise MPISimError(f"drive frequencies differ: measurement {np.round(fm, 1).tolist()} Hz, system matrix "
                          f"{np.round(fs, 1).tolist()} Hz: different scanners or sequences")
    gm, gs = np.asarray(meas.gradient, float), np.asarray(sm.meta["gradient"], float)
    if np.all(np.isfinite(gm)) and np.all(np.isfinite(gs)) and np.any(gm) and np.any(gs) and \
            not np.allclose(gm, gs, rtol=1e-3, atol=1e-6):
        raise MPISimError(f"selection-field gradients differ: measurement diag {np.diag(gm).tolist()}, system "
                          f"matrix diag {np.diag(gs).tolist()} T/m/µ0")
    if meas.num_channels != sm.num_channels:
        raise MPISimError(f"measurement has {meas.num_channels} receive channels, system matrix {sm.num_channels}")


def measurement_spectra(meas, transfer_function=None):
    """(N, C, K_all) spectra of period-averaged frames, corrected for the transfer function the
    data contain (``meas.transfer_function``, or ``transfer_function`` (C, K) when given)."""
    spec = meas.full_spectra()
    if not np.all(np.isfinite(spec)):
        raise MPISimError(f"{meas.meta.get('source', 'measurement')}: data contain NaN or Inf")
    spec = spec.mean(axis=1)                                    # average periods → (N, C, K)
    tf = transfer_function if transfer_function is not None else meas.transfer_function
    if tf is not None:
        tf = np.asarray(tf)
        with np.errstate(divide="ignore", invalid="ignore"):
            spec = np.where(np.abs(tf) > 0, spec / np.where(tf == 0, 1, tf), 0)
    return spec


class MeasurementFrames:
    """A measurement's frames, read when they are needed: from an MDF file only the frames asked for, or
    from a :class:`~mpisim.measurement.Measurement` in memory. ``head`` is the measurement's metadata
    (for a file: a Measurement whose data are a zero-size stand-in, one per stored frame), so a
    reconstruction of a long acquisition holds its background frames and one block of frames at a
    time, never the whole measurement."""

    BLOCK_BYTES = 64 << 20
    """Budget of one block of frames: its time data and spectra (bytes)."""

    def __init__(self, measurement):
        from ..measurement import Measurement

        if isinstance(measurement, Measurement):
            self.head, self.path = measurement, None
        else:
            from ..io.mdf import read_calibration

            self.head, self.path = read_calibration(measurement), str(measurement)

    @property
    def num_frames(self):
        return self.head.num_frames

    def read(self, idx):
        """A Measurement holding the stored frames ``idx`` (increasing indices)."""
        idx = np.asarray(idx, np.int64)
        if self.path is not None:
            from ..io.mdf import read_mdf

            return read_mdf(self.path, frames=idx)
        from ..measurement import Measurement

        m = self.head
        return Measurement(**{**m.__dict__, "data": m.data[idx], "is_background": m.is_background[idx]})

    def frames_per_block(self, multiple=1):
        """Frames per block within :attr:`BLOCK_BYTES` (time data in float64 and complex spectra), a
        multiple of ``multiple`` (the frames averaged into one)."""
        h = self.head
        per_frame = h.data.shape[1] * h.num_channels * (h.num_samples // 2 + 1) * 16 * 3
        n = max(1, self.BLOCK_BYTES // max(per_frame, 1))
        return max(multiple, n // multiple * multiple)


def selected_frames(params, num_frames, is_background):
    """The stored frames to reconstruct (foreground ones unless ``params.frames`` names them), checked,
    cut to a whole number of ``params.average`` blocks."""
    frames = np.flatnonzero(~np.asarray(is_background)) if not params.frames else np.asarray(params.frames, np.int64)
    if frames.size == 0:
        raise MPISimError("the measurement has no foreground frames to reconstruct")
    if frames.min() < 0 or frames.max() >= num_frames:
        raise MPISimError(f"frame index out of range 0..{num_frames - 1}")
    a = params.average
    n = frames.size // a
    if n == 0:
        raise MPISimError(f"cannot average blocks of {a} frames: only {frames.size} selected")
    return frames[: n * a]


def frame_rows(source, frames, rows, background, transfer_function, average):
    """The data the solver sees: spectra of the stored ``frames`` at ``rows`` = (channels, bins) (M,),
    minus ``background`` (C, K) when given, blocks of ``average`` frames averaged → (M, F), and the
    largest |spectrum| among the frames read. Frames are read block by block from ``source``
    (:class:`MeasurementFrames`), so memory holds one block and the result, whatever the acquisition's
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

    ``params.band == "auto"``: drop the drive lines within the band-stop's reach
    (:func:`~mpisim.reco.noise.bandstop_half_width`) and the bins whose background the background
    frames show to drift (:func:`~mpisim.reco.noise.contaminated_bins`). "all": keep every bin (of
    those a frequency-selected file holds).
    """
    from .noise import background_spectra, bandstop_half_width, contaminated_bins, drive_line_bins

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
    """Choose system-matrix rows: returns (channel indices, mask (C, K') of kept bins).

    ``usable`` (C, K_all) bool, from :func:`usable_bins`, drops bins the data mark as unusable."""
    C = sm.num_channels
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
        src = sm.meta.get("source", "system matrix")
        if usable is not None and not (usable[:, sm.bins] & keep[None, :]).any():
            raise MPISimError(f"{src}: empty frequency selection: none of its {sm.bins.size} frequency bins in "
                              f"{params.min_freq:g}–{fmax:g} Hz is held by the measurement (frequency selections "
                              f"do not match)")
        raise MPISimError(f"{src}: empty frequency selection: no rows pass SNR ≥ {params.snr_threshold:g}, "
                          f"{params.min_freq:g}–{fmax:g} Hz, channels {ch.tolist()}; lower --snr-threshold")
    return ch, mask


def row_weights(A, params, bg_spread=None):
    """Row weights for the chosen rows (None for 'none')."""
    if params.weighting == "none":
        return None
    if params.weighting == "row-norm":
        n = np.linalg.norm(A, axis=1)
        return np.where(n > 0, 1.0 / np.where(n > 0, n, 1), 0.0)
    if bg_spread is None:
        raise MPISimError("whitening needs background frames (in the system matrix or the measurement)")
    s = np.asarray(bg_spread, float)
    pos = s[s > 0]
    if pos.size == 0:
        raise MPISimError("whitening: the background frames show no noise")
    return np.where(s > 0, pos.min() / np.where(s > 0, s, 1), 0.0)
