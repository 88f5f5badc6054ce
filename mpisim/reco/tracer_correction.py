"""The sample's tracer is not the system matrix's: a spectral correction estimated from the data, anchored by
reference samples (fiducials) of known iron and geometry.

A tracer whose particles relax (Debye time τ: bound to cells, in a viscous matrix) or whose cores differ from
the calibration tracer's changes every harmonic of the signal. For relaxation the change is exactly one
complex factor per frequency, the same for every voxel: the signal's spectrum is multiplied by
1/(1 + i 2π f τ) (PHYSICS.md, Debye model). So the data of the sample are modelled as

    b_k ≈ h(f_k) (A c)_k,   h(f) = s / (1 + i 2π f τ),

with A the matrix's rows and c the content: the fiducials' known content (their iron spread over their
geometry) plus the rest, unknown and ≥ 0. :func:`estimate` alternates a non-negative solve of the rest
(:func:`mpisim.reco.amounts.shape_image` on b / h minus the fiducials' signal) with a noise-weighted
least-squares fit of (s, τ). The fiducials anchor it: their content is known, so s cannot be traded for
the amounts.

Dividing the data by h (a transfer function, :func:`transfer_function`) and reconstructing again gives an
image as if the sample's particles relaxed as the matrix's do.

A different core size is *not* a factor per frequency: it changes the width of the point-spread function, so
each harmonic's spatial pattern, too (a per-frequency tilt fitted to it explained the data better and made the
amounts worse, and was dropped during development). Where the system matrix is the forward model's (made by
mpisim: it records its scanner and tracer, and the model reproduces its rows), :func:`fit_core` fits the
sample's core diameter as well: for each candidate core the rows the reconstruction uses are computed by the
same forward model (:class:`ModelRows`: the model's row for that core, times the complex factor that maps the
model's row for the matrix's own core onto the stored row — the receive chain, the delta sample), (s, τ) are
fitted as above, and the core whose data misfit is least wins where it beats the matrix's own core by more than
chance (a likelihood-ratio test). The frame is then reconstructed and quantified with those rows. A measured
matrix (no forward model) keeps (s, τ); the fiducials' calibration line (``mpisim.quant``) takes what is left,
its scatter in the intervals.
"""

from copy import copy
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import MPISimError
from ..forward import moment_per_concentration, response
from ..operator import SystemMatrix
from ..resources import check_memory
from ..systemmatrix import compute_columns
from .amounts import grow_mask, shape_image, shape_support
from .solve import apply

__all__ = ["ITERATIONS", "CORE_SPAN", "CORE_STEP", "MODEL_MISFIT_MAX", "TracerCorrection", "ModelRows", "estimate",
           "fit_core", "model_matrix", "model_rows", "transfer_function", "known_content"]

ITERATIONS = 12
"""Alternations of the content solve and the spectral fit (they stop earlier when h changes by < 0.1 %)."""


@dataclass(frozen=True)
class TracerCorrection:
    """h(f) = scale / (1 + i 2π f tau).

    scale : the sample's signal per iron over the matrix tracer's (1); tau : the Debye relaxation time in s
    that the sample has beyond the matrix's tracer; core : the sample's core diameter in m where it was fitted
    (:func:`fit_core`; the rows are then the forward model's for it), None where the matrix's tracer's is kept;
    matrix_core : the matrix tracer's core diameter in m (None: not known).
    """

    scale: float = 1.0
    tau: float = 0.0
    core: float | None = None
    matrix_core: float | None = None

    def factor(self, frequencies):
        """The complex factor h at ``frequencies`` (Hz)."""
        f = np.asarray(frequencies, np.float64)
        return self.scale / (1.0 + 2j * np.pi * f * self.tau)

    def summary(self):
        """One line for the output: what the sample's spectrum differs by."""
        line = (f"the sample's signal is ×{self.scale:.3g} the matrix tracer's, with a Debye relaxation time of "
                f"{self.tau * 1e6:.2f} µs beyond it")
        if self.core is not None:
            line = (f"the sample's core fitted to {self.core * 1e9:.1f} nm (the matrix's tracer "
                    f"{self.matrix_core * 1e9:.1f} nm; rows of the forward model for it); its"
                    + line[len("the sample's"):])
        elif self.matrix_core is not None:
            line += f"; the matrix tracer's {self.matrix_core * 1e9:.1f} nm core explains the data best"
        return line

    def to_dict(self):
        return asdict(self)


def known_content(grid, fiducials, iron_per_voxel):
    """(N,) the fiducials' content (mol/L per voxel) and (N,) bool their neighbourhood (one voxel around).

    fiducials : (weights (N,), iron kg) pairs, the weights the partial-voxel volume fractions of each reference
    sample's geometry; iron_per_voxel : kg per (mol/L · voxel)."""
    content = np.zeros(grid.size)
    near = np.zeros(grid.size, bool)
    for w, iron in fiducials:
        w = np.asarray(w, np.float64)
        if not w.sum() > 0:
            raise MPISimError("a fiducial covers no voxel of the reconstruction")
        content += w * (iron / iron_per_voxel) / w.sum()
        near |= grow_mask(w > 0, grid)
    return content, near


def estimate(problem, frequencies, grid, known, near, image, noise=None, iterations=None, start=None):
    """Fit h (:class:`TracerCorrection`) to the data of ``problem`` (one frame).

    problem : the assembled :class:`~mpisim.reco.assemble.Problem`; frequencies : (M,) Hz of its rows;
    known : (N,) the fiducials' content (mol/L, :func:`known_content`), near : (N,) bool where the rest is
    not solved for; image : (N,) the linear reconstruction (the rest's support, as the shape's);
    noise : (R, N) its noise realisations or None; start : the :class:`TracerCorrection` the alternation starts
    from (default: none, s = 1, τ = 0). Returns the correction and a dict of what was done.
    """
    from scipy.optimize import least_squares

    iterations = max(int(ITERATIONS if iterations is None else iterations), 1)
    A = problem.A
    b = (problem.b[:, 0] if problem.b.ndim == 2 else problem.b).astype(np.complex128)
    f = np.asarray(frequencies, np.float64)
    if problem.sigma is None or not np.all(np.asarray(problem.sigma) > 0):
        raise MPISimError("the data carry no noise level (background frames or a stated noise density): the "
                          "tracer correction weighs the data by it")
    sigma = problem.sigma.astype(np.float64)
    signal_known = _apply(A, known)
    if not np.any(np.abs(signal_known) > 3 * sigma):
        raise MPISimError("the fiducials' signal is below the noise: they cannot anchor a tracer correction "
                          "(more iron in the reference samples, or --tracer-correction off)")
    support = np.where(near, 0.0, np.asarray(image, np.float64))
    p = np.array([0.0, 0.0]) if start is None else \
        np.clip([np.log(start.scale), start.tau * 1e6], LOWER, UPPER)    # log s, τ (µs)
    h_old = _correction(p).factor(f)
    done = 0
    for done in range(1, int(iterations) + 1):
        sub = copy(problem)
        sub.b = (b / h_old - signal_known)[:, None]
        rest, _ = shape_image(sub, support, noise, grid)
        rest[near] = 0.0
        signal_rest = _apply(A, rest)

        def resid(q, sr=signal_rest):
            r = (b - _correction(q).factor(f) * (signal_known + np.exp(q[2]) * sr)) / sigma
            return np.concatenate([r.real, r.imag])

        q0 = np.append(p, 0.0)                   # the rest's scale β (log) is fitted with s and τ, then kept in it
        ls = _log_scale(b, signal_known + signal_rest, sigma)
        starts = [q0, np.append(ls, 0.0)] + [np.array([p[0], t, 0.0]) for t in TAU_STARTS]
        q = np.clip(min(starts, key=lambda x: float(np.sum(resid(x) ** 2))), LOWER3, UPPER3)
        try:
            q = least_squares(resid, q, bounds=(LOWER3, UPPER3), method="dogbox").x
        except ValueError as e:                  # non-finite residuals: nothing to fit
            raise MPISimError(f"the tracer correction's fit failed ({e})") from None
        p = q[:2]
        m = signal_known + np.exp(q[2]) * signal_rest
        h = _correction(p).factor(f)
        change = float(np.max(np.abs(h / h_old - 1)))
        h_old = h
        if change < 1e-3:
            break
    corr = _correction(p)
    chi2 = float(np.mean(np.abs((b - h_old * m) / sigma) ** 2))
    return corr, {"tracer_correction": corr.to_dict(), "tracer_correction_iterations": done,
                  "tracer_correction_chi2": chi2}


def _log_scale(b, m, sigma):
    """(log s, 0): the start that the noise-weighted mean of log|b / m| gives."""
    good = np.abs(m) > 3 * sigma
    if not good.any():
        return np.zeros(2)
    w = np.abs(m[good]) / sigma[good]
    return np.array([float(np.sum(w * np.log(np.abs(b[good] / m[good]))) / np.sum(w)), 0.0])


LOWER = np.array([np.log(1e-4), 0.0])
UPPER = np.array([np.log(1e4), 100.0])
"""Bounds of (log s, τ in µs): a sample whose signal per iron is 10⁴ times off the matrix's is not this one's."""
LOWER3, UPPER3 = np.append(LOWER, np.log(1e-4)), np.append(UPPER, np.log(1e4))
"""The same with the rest's scale β (log), fitted beside s and τ in each alternation: s and the rest's content
trade against each other (the rest solved on b / h scales with 1 / s) and only the fiducials pull s to its value,
so without β the alternation crept towards it over many steps."""
TAU_STARTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Debye τ (µs) the fit may start from (the best of them and the last estimate): the data's misfit is not
convex in τ."""


def _correction(p):
    return TracerCorrection(float(np.exp(p[0])), float(p[1]) * 1e-6)


def _apply(A, x):
    """A x for a complex (M, N) array or the planar rows of the CPU kernel."""
    return np.asarray(apply(A, np.asarray(x, np.float64)[:, None]))[:, 0].astype(np.complex128)


def transfer_function(correction, frequencies, bins, base, channels, num_bins):
    """(C, K) the transfer function that divides the data by h at the matrix's ``bins`` (frequencies Hz) on
    top of ``base`` (the data's own, (C, K) or None)."""
    tf = np.ones((channels, num_bins), np.complex128) if base is None else np.array(base, np.complex128)
    tf[:, np.asarray(bins)] *= correction.factor(np.asarray(frequencies))[None, :]
    return tf


CORE_SPAN = 10e-9
"""The core search of :func:`fit_core`: the matrix tracer's core diameter ± this (m), never below
:data:`CORE_MIN` (the issue's mismatches are ± 3–5 nm; a different tracer altogether is outside what fiducials
should be asked to fix)."""
CORE_STEP = 2e-9
"""The search walks downhill from the matrix's core in steps of this (m), both ways (then :data:`CORE_REFINE`)."""
CORE_MIN = 5e-9
MODEL_MISFIT_MAX = 0.05
"""The forward model must reproduce the stored rows (one complex factor per row) to this relative Frobenius
misfit before its rows stand in for them (mpisim's own matrix: within 1e-5, ``tests/test_quant_gtm.py``)."""
FACTOR_VOXELS = 512
""":class:`ModelRows` fits each row's factor model → stored on this many voxels spread evenly over the grid (the
model for the matrix's own tracer over every voxel was a second pass of the forward model as costly as the rows
themselves)."""
CORE_REFINE = 1e-9
"""The best step of the search is refined by full fits of :func:`estimate` at it and ± this (m): the vertex of the
parabola through their χ², within ± this."""
SEARCH_ITERATIONS = 4
"""Alternations of :func:`estimate` that score each candidate core of the search, started from the full fit with
the matrix's core (its τ is found there already). A profile objective without alternation (s and the rest in one
non-negative solve, noise-weighted) was tried and dropped during development (on ``examples/12``'s graft it
preferred ever larger cores); its code is not kept."""
CHI2_SIGNIFICANT = 9.0
"""The fitted core replaces the matrix's where it lowers −2 log L (= 2 Σ|r/σ|², complex Gaussian noise; divided by
the best fit's χ² per row where that exceeds 1, so that model error is not taken for evidence) by more than this
(3 σ for one parameter); otherwise the matrix's own core explains the data as well."""


def model_rows(scanner, tracer, grid, cidx, bins, columns=None, block=512):
    """(M, P) complex rows of the forward model (:func:`mpisim.systemmatrix.compute_columns`: voxel centres, the
    tracer's moment per mol Fe/L, no receive chain) for (channel ``cidx[i]``, rfft bin ``bins[i]``), at the voxels
    ``columns`` of ``grid`` (default: all), computed a block of voxels at a time."""
    cols = np.arange(grid.size) if columns is None else np.asarray(columns, np.int64)
    ub, inv = np.unique(np.asarray(bins), return_inverse=True)
    check_memory(16 * len(cidx) * (cols.size + 2 * min(block, cols.size)), f"the forward model's {len(cidx)} rows")
    R = response(scanner, tracer, scanner.frequencies[ub])
    scale = moment_per_concentration(tracer, grid.voxel_volume)
    pos = grid.positions()[cols]
    out = np.empty((len(cidx), cols.size), np.complex128)
    for a in range(0, cols.size, block):
        c = compute_columns(scanner, tracer, pos[a:a + block], ub, R, scale)
        out[:, a:a + block] = c[np.asarray(cidx), inv]
    return out


def _row_factors(stored, model, what):
    """(M,) the complex factor per row that maps ``model`` onto ``stored`` (least squares); refused with ``what``
    (what it means) where the relative Frobenius misfit left exceeds :data:`MODEL_MISFIT_MAX`."""
    stored = np.asarray(stored, np.complex128)
    den = np.einsum("ij,ij->i", model, model.conj()).real
    alpha = np.einsum("ij,ij->i", stored, model.conj()) / np.where(den > 0, den, 1.0)
    alpha[den <= 0] = 0.0
    norm = float(np.linalg.norm(stored))
    misfit = float(np.linalg.norm(stored - alpha[:, None] * model)) / norm if norm > 0 else 0.0
    if misfit > MODEL_MISFIT_MAX:
        raise MPISimError(f"the forward model does not reproduce the system matrix's rows (misfit {misfit:.1%} > "
                          f"{MODEL_MISFIT_MAX:.0%}): {what}")
    return alpha


def _model_of(sm):
    """(scanner, tracer) of the forward model behind ``sm``, or a reason why it has none."""
    acq = sm.acquisition
    scanner, tracer = getattr(acq, "scanner", None), getattr(acq, "tracer", None)
    if scanner is None or tracer is None:
        return None, "the system matrix does not record the scanner and tracer it was made with (measured?)"
    return (scanner, tracer), ""


class ModelRows:
    """The row source of :func:`model_matrix`: the forward model's rows for ``tracer``, each times the complex
    factor that maps the model's row for the matrix's own tracer onto the stored row; background rows are the
    stored matrix's."""

    itemsize = 16

    def __init__(self, sm, tracer):
        model, why = _model_of(sm)
        if model is None:
            raise MPISimError(why)
        self.sm, self.tracer = sm, tracer
        self.scanner, self.base = model
        self._last = None              # (key, rows, background): a reconstruction and its problem read the same rows

    @property
    def num_rx_channels(self):
        return self.sm.num_rx_channels

    @property
    def num_background(self):
        return self.sm.num_background_frames

    def read(self, cidx, kidx, bins, background=False):
        key = (np.asarray(cidx).tobytes(), np.asarray(kidx).tobytes(), np.asarray(bins).tobytes())
        if self._last is not None and self._last[0] == key:          # a copy: the reader may edit its rows in place
            return self._last[1].copy(), (self._last[2] if background else None)
        check_memory(4 * 16 * len(cidx) * self.sm.grid.size, f"the forward model's {len(cidx)} rows beside the stored "
                     f"ones")
        stored, bg = self.sm.rows(cidx, kidx, background=True)
        b = np.asarray(bins)[np.asarray(kidx)]
        n = self.sm.grid.size                       # the factors from voxels spread over the grid: one row needs one
        cols = np.unique(np.linspace(0, n - 1, min(n, FACTOR_VOXELS)).astype(np.int64))
        alpha = _row_factors(stored[:, cols], model_rows(self.scanner, self.base, self.sm.grid, cidx, b, cols),
                             f"{self.sm.label}'s tracer cannot be changed")
        dtype = np.result_type(stored.dtype, np.complex64)
        del stored
        A = (alpha[:, None] * model_rows(self.scanner, self.tracer, self.sm.grid, cidx, b)).astype(dtype)
        self._last = (key, A.copy(), bg)
        return A, (bg if background else None)


def model_matrix(sm, tracer):
    """A :class:`~mpisim.operator.SystemMatrix` like ``sm`` (grid, bins, SNR, acquisition) whose rows are the
    forward model's for ``tracer`` (:class:`ModelRows`), computed when a reconstruction reads them."""
    acq = copy(sm.acquisition)
    acq.tracer = tracer
    return SystemMatrix(None, sm.bins, sm.frequencies, sm.grid, sm.snr, None, acq, sm.unit,
                        origin=f"{sm.label} (forward-model rows, core {tracer.core_diameter * 1e9:.2f} nm)",
                        row_source=ModelRows(sm, tracer))


def fit_core(problem, sm, frequencies, grid, known, near, image, noise=None):
    """Fit the sample's core diameter with (s, τ) where ``sm`` is the forward model's (:func:`_model_of`).

    The problem's rows are replaced by the model's for a candidate core (:class:`ModelRows`' factors, on the voxels
    the fit reads: the fiducials, their neighbourhood and the support of the rest's shape). The search walks
    downhill from the matrix's core (:data:`CORE_STEP`, within ± :data:`CORE_SPAN`), each candidate scored by
    :data:`SEARCH_ITERATIONS` alternations of :func:`estimate` started from its full fit with the matrix's core;
    full fits at the best step and ± :data:`CORE_REFINE` refine it (a parabola's vertex), and the refined core is
    fitted in full and compared with the matrix's own. Returns (correction, info, tracer), or (correction, info,
    None) with the matrix's own core's fit where that core explains the data as well (:data:`CHI2_SIGNIFICANT`).
    """
    model, why = _model_of(sm)
    if model is None:
        raise MPISimError(why)
    scanner, base = model
    d0 = float(base.core_diameter)
    if not isinstance(problem.A, np.ndarray):
        raise MPISimError("the problem's rows are not an array (the CPU kernel's planar layout): the core is not fitted")
    support = shape_support(np.where(near, 0.0, np.asarray(image, np.float64)), noise, grid) & ~near
    cols = np.flatnonzero(support | near | (np.asarray(known) > 0))
    bins = np.asarray(sm.bins)[problem.kidx]
    own_rows = model_rows(scanner, base, grid, problem.cidx, bins, cols)
    alpha = _row_factors(problem.A[:, cols], own_rows, "the sample's core is not fitted")
    work = np.zeros(problem.A.shape, np.result_type(problem.A.dtype, np.complex64))
    fits = {}

    def fit(d, full=True):
        """(χ², correction, info) of :func:`estimate` with the model's rows for core d (filled into ``work`` at
        ``cols``, the only columns it reads): in full from s = 1, τ = 0, or (``full=False``, the search's score)
        :data:`SEARCH_ITERATIONS` alternations from the full fit with the matrix's core."""
        key = (round(float(d) * 1e12), full)                     # pm
        if key not in fits:
            rows = own_rows if key[0] == round(d0 * 1e12) else \
                model_rows(scanner, replace(base, core_diameter=float(d)), grid, problem.cidx, bins, cols)
            work[:, cols] = alpha[:, None] * rows
            corr, info = estimate(replace(problem, A=work), frequencies, grid, known, near, image, noise,
                                  iterations=None if full else SEARCH_ITERATIONS, start=None if full else own)
            fits[key] = (info["tracer_correction_chi2"], corr, info)
        return fits[key]

    own = fit(d0)[1]

    lo, hi = max(CORE_MIN, d0 - CORE_SPAN), d0 + CORE_SPAN
    if getattr(base, "hydrodynamic_diameter", None):         # a core no larger than the particle
        hi = min(hi, float(base.hydrodynamic_diameter))
    search = {0: fit(d0, False)[0]}                             # steps from the matrix's core → χ²
    for sign in (-1, 1):                                      # downhill, both ways
        k = sign
        while lo - 1e-12 <= d0 + k * CORE_STEP <= hi + 1e-12:
            search[k] = fit(d0 + k * CORE_STEP, False)[0]
            if search[k] >= search[k - sign]:
                break
            k += sign
    steps = sorted(search)
    scan = d0 + np.array(steps, float) * CORE_STEP
    chi = np.array([search[k] for k in steps])
    best = float(scan[int(np.argmin(chi))])
    h = CORE_REFINE                                           # refined by full fits: a parabola through three
    near3 = [max(best - h, lo), best, min(best + h, hi)]
    y = np.array([fit(d)[0] for d in near3])
    den = y[0] - 2 * y[1] + y[2]
    if near3[0] < best < near3[2] and den > 0:
        best = float(np.clip(best + h * (y[0] - y[2]) / (2 * den), max(best - h, lo), min(best + h, hi)))
    best = min(near3 + [best], key=lambda d: fit(d)[0])       # the vertex only where its full fit is the best
    chi_own, own_corr, own_info = fit(d0)
    chi_best, corr, info = fit(best)
    # −2 log L falls by 2 M Δχ² (χ²: mean |r/σ|² per row); divided by the best χ², the misfit the model leaves
    # beyond the noise (model error: the voxel-centred model of continuous objects) does not count as evidence
    gain = 2.0 * problem.A.shape[0] * (chi_own - chi_best) / max(chi_best, 1.0)
    at_bound = bool(best <= lo + 1e-12 or best >= hi - 1e-12)
    scanned = {"tracer_core_scan_nm": [round(float(d) * 1e9, 2) for d in scan],
               "tracer_core_scan_chi2": [float(c) for c in chi], "tracer_core_gain": float(gain),
               "tracer_core_evaluations": len(fits), "tracer_core_at_bound": at_bound}
    if not gain > CHI2_SIGNIFICANT:
        own_corr = replace(own_corr, matrix_core=d0)
        return own_corr, {**own_info, **scanned, "tracer_correction": own_corr.to_dict()}, None
    corr = replace(corr, core=float(best), matrix_core=d0)
    return corr, {**info, **scanned, "tracer_correction": corr.to_dict()}, replace(base, core_diameter=float(best))

