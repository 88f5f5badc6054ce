"""Step 1 of a reconstruction: assemble the problem — frequency selection, background, weighting.

:func:`assemble` turns a frame source, a system-matrix operator and the parameters into a
:class:`Problem`: the selected rows A (M, N), the data b (M, F) at those rows, row weights, the
noise level per row and what was chosen on the way. It opens no file: the caller hands it the
measurement's frames, the empty-scanner measurement and the transfer function already loaded.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import MPISimError
from .kaczmarz_base import squared_row_norms
from .noise import NoiseLevel, noise_level
from .preprocess import (check_compatible, frame_rows, measurement_spectra, row_weights, select_rows,
                         selected_frames, usable_bins)

__all__ = ["Problem", "assemble", "total_iron_visibility", "VISIBILITY_MIN"]

VISIBILITY_MIN = 1.0
"""Below this total-iron visibility the rows cannot fix the total iron (``benchmarks/study_reco_defaults.py``
prints it: bruker-1d 0.16, bruker-2d 3.6, bruker-3d 8.8 with the default selection; 0.4–0.8 with the
reference tool's 80 kHz minimum frequency)."""


@dataclass(eq=False)
class Problem:
    """The linear problem A c ≈ b that the solver sees, and how it was assembled.

    A : (M, N) complex rows (channel-major (channel, bin) pairs; ``cidx``, ``kidx`` say which) in 1/(mol/L)
    of the spectra's unit; b : (M, F) data at those rows (background subtracted, blocks averaged);
    weights : (M,) row weights or None; norms2 : (M,) squared row norms of A; sigma : (M,) noise σ of
    one complex bin of b's rows, or None; noise2 : Σσ² or None; level : the
    :class:`~mpisim.reco.noise.NoiseLevel` or None; visibility : :func:`total_iron_visibility`;
    positive : whether the solver enforces c ≥ 0; info : what was chosen (recorded in the result);
    background : (C, K) the spectrum subtracted from every frame, or None (a live reconstruction subtracts it
    from the frames that arrive later, :mod:`mpisim.live`).
    """

    A: np.ndarray
    b: np.ndarray
    cidx: np.ndarray
    kidx: np.ndarray
    weights: np.ndarray | None
    norms2: np.ndarray
    sigma: np.ndarray | None
    noise2: float | None
    level: NoiseLevel | None
    visibility: float
    positive: bool
    info: dict = field(default_factory=dict)
    background: np.ndarray | None = None


def assemble(source, sm, params, empty=None, tf=None, matrix=True):
    """Assemble the problem of reconstructing the frames of ``source`` with ``sm``.

    source : a frame source (:class:`~mpisim.frames.MeasurementFrames` or
        :class:`~mpisim.io.frame_file.FileFrames`); sm : :class:`~mpisim.operator.SystemMatrix`;
    params : :class:`~mpisim.reconstruction.RecoParams`; empty : the empty-scanner
        :class:`~mpisim.measurement.Measurement` when ``params.preprocessing.background`` names one;
    tf : (C, K) complex correction of the data, the transfer function ``params.preprocessing.transfer_function``
        names (None: the one the data state).
    matrix : False: stop before the matrix rows are read (unweighted problems only) — a :class:`Problem` with the
        rows the selection chose (before an on-disk matrix's zero rows are dropped), the data b at them and the
        background, A, norms2, the noise level and ``positive`` None: what a live session whose operator is cached
        needs (:mod:`mpisim.live`).
    """
    pre, sel = params.preprocessing, params.selection
    meas = source.head
    check_compatible(meas, sm)
    if pre.transfer_function and tf is None:
        raise MPISimError(f"--transfer-function {pre.transfer_function}: the transfer function was not given "
                          f"(load it and pass it as tf=, or use mpisim.open_inputs)")
    own_bg = source.read(meas.background_frames)    # the background frames: noise level, usable band, mean
    spec = measurement_spectra(own_bg, tf)          # (E, C, K)
    background, bg_spec, scale = _background(pre, spec, empty, sm, meas, tf)
    selected = selected_frames(pre, source.num_frames, meas.is_background)
    usable, band_info = usable_bins(own_bg, spec, sel, bg_spec)
    ch, mask = select_rows(sm, sel, meas.bandwidth, usable)
    # rows: (channel, bin) pairs in channel-major order; an on-disk matrix reads just these rows
    cidx, kidx = np.nonzero(mask)
    # the data at those rows, read (and checked) before the matrix rows: a damaged frame stops the command early
    b, peak = frame_rows(source, selected, (cidx, sm.bins[kidx]), background, tf, pre.average)   # (rows, F)
    if not matrix:
        if pre.weighting != "none":
            raise MPISimError(f"a problem without its matrix rows has no {pre.weighting} weights")
        return Problem(None, b, cidx, kidx, None, None, None, None, None, float("nan"), None,
                       {"channels": ch.tolist(), **band_info}, background)
    whiten_sm = pre.weighting == "whitening" and sm.num_background_frames >= 2
    A, sm_bg = sm.rows(cidx, kidx, background=True) if whiten_sm else (sm.rows(cidx, kidx), None)
    A, cidx, kidx, b, sm_bg, norms2, zero_rows = _drop_zero_rows(sm, A, cidx, kidx, b, sm_bg)
    sm_tf = sm.transfer_function
    if sm_tf is not None:
        t = np.asarray(sm_tf)[cidx, sm.bins[kidx]]
        A = A / np.where(t == 0, 1, t)[:, None]
        norms2 = None                                            # other rows now
    level = noise_level(own_bg, spec, params, bg_spec, meas.transfer_function if tf is None else tf, scale, peak)
    sigma = None if level is None else level.sigma[cidx, sm.bins[kidx]]
    w = row_weights(A, pre.weighting, _spread(pre.weighting, sm_bg, level, sigma))
    if not sm.on_disk and not np.all(np.isfinite(A)):        # rows read from disk were checked on reading
        raise MPISimError(f"{sm.label}: selected rows contain NaN or Inf")
    rows = A
    A = np.ascontiguousarray(A, dtype=np.result_type(A.dtype, np.complex64))     # complex (a real matrix too)
    if A is not rows or norms2 is None:
        norms2 = squared_row_norms(A)
    noise2 = None if sigma is None else float(np.sum(sigma.astype(float) ** 2))
    if noise2 is not None and not noise2 > 0:        # noise-free data: no noise level to stop or choose λ by
        level = sigma = noise2 = None
    visibility = total_iron_visibility(A, norms2)
    rule = params.solver.enforce_positive
    positive = visibility < VISIBILITY_MIN if rule == "auto" else bool(rule)
    info = {"zero_rows_dropped": zero_rows, "background_subtracted": background is not None,
            "channels": ch.tolist(), "rows_per_channel": [int((cidx == c).sum()) for c in range(sm.num_rx_channels)],
            **band_info}
    return Problem(A, b, cidx, kidx, w, norms2, sigma, noise2, level, visibility, positive, info, background)


def _background(pre, spec, empty, sm, meas, tf):
    """The background (C, K) subtracted from every frame, the separate empty measurement's spectra
    (or None) and a frame's noise variance over that measurement's (its averages × periods)."""
    if pre.background not in ("auto", "none"):
        if empty is None:
            raise MPISimError(f"--background {pre.background}: the empty-scanner measurement was not given "
                              f"(load it and pass it as empty=)")
        check_compatible(empty, sm)
        bg_spec = measurement_spectra(empty, tf)
        scale = (max(empty.num_averages, 1) * empty.data.shape[1]) / (max(meas.num_averages, 1) * meas.data.shape[1])
        return bg_spec.mean(axis=0), bg_spec, scale
    if pre.background == "auto" and spec.shape[0]:
        return spec[np.arange(spec.shape[0])].mean(axis=0), None, 1.0   # a C-ordered copy: the same sums as always
    return None, None, 1.0


def _drop_zero_rows(sm, A, cidx, kidx, b, sm_bg):
    """Drop the all-zero rows just read from an on-disk matrix (an in-memory one left them out when
    selecting). Returns the rows, their indices, data, background rows, squared norms (kept for λ and
    the solver: one pass over A) and how many rows were dropped."""
    if sm.nonzero_rows is not None:
        return A, cidx, kidx, b, sm_bg, None, 0
    norms2 = squared_row_norms(A)
    nz = norms2 > 0
    zero_rows = int((~nz).sum())
    if not nz.all():
        A, cidx, kidx, b, norms2 = _keep_rows(A, nz), cidx[nz], kidx[nz], b[nz], norms2[nz]
        sm_bg = None if sm_bg is None else sm_bg[nz]
        if not A.shape[0]:
            raise MPISimError(f"{sm.label}: every selected row is zero")
    return A, cidx, kidx, b, sm_bg, norms2, zero_rows


def _spread(weighting, sm_bg, level, sigma):
    """The per-row noise spread that whitening weights by: the system matrix's background frames when it
    has them, else the data's noise level."""
    if weighting != "whitening":
        return None
    if sm_bg is not None:
        return np.std(sm_bg, axis=-1)
    return sigma if level is not None else None


def _keep_rows(A, keep):
    """A[keep] without a second copy of A: rows move up in place, a view of the first rows is returned."""
    idx = np.flatnonzero(keep)
    for j, i in enumerate(idx):
        if i != j:
            A[j] = A[i]
    return A[:idx.size]


def total_iron_visibility(A, norms2=None):
    """How well the rows A (M, N) see the total iron: ‖A 1‖/√N — the response to a uniform image of
    unit norm — over ‖A‖_F/√min(M, N), the response to a typical one. Harmonics above the
    fundamental integrate to almost zero over the field of view, so rows without the fundamental or
    low mixing frequencies give values ≪ 1."""
    N = A.shape[1]
    ones = np.full(N, 1.0 / np.sqrt(N), dtype=A.real.dtype)
    fro = float(np.sqrt(np.sum(norms2))) if norms2 is not None else float(np.linalg.norm(A))
    typical = fro / np.sqrt(min(A.shape))
    return float(np.linalg.norm(A @ ones)) / typical if typical > 0 else 0.0
