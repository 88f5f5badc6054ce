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
image as if the sample's particles relaxed as the matrix's do. A different core size is *not* a factor per
frequency: it changes the width of the point-spread function, so each harmonic's spatial pattern, too (a
per-frequency tilt fitted to it explained the data better and made the amounts worse, and was dropped during
development: with it ``examples/12_quantitation_rois.py``'s graft, a 29 nm sample on a 25 nm matrix, read 0.84 ×
with its interval missing the truth; without it, as now, 0.95 ×, covered). The model
leaves it to the fiducials' calibration line (``mpisim.quant``), whose scatter stays in the intervals.
"""

from copy import copy
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import MPISimError
from .amounts import grow_mask, shape_image
from .solve import apply

__all__ = ["ITERATIONS", "TracerCorrection", "estimate", "transfer_function", "known_content"]

ITERATIONS = 12
"""Alternations of the content solve and the spectral fit (they stop earlier when h changes by < 0.1 %)."""


@dataclass(frozen=True)
class TracerCorrection:
    """h(f) = scale / (1 + i 2π f tau).

    scale : the sample's signal per iron over the matrix tracer's (1); tau : the Debye relaxation time in s
    that the sample has beyond the matrix's tracer.
    """

    scale: float = 1.0
    tau: float = 0.0

    def factor(self, frequencies):
        """The complex factor h at ``frequencies`` (Hz)."""
        f = np.asarray(frequencies, np.float64)
        return self.scale / (1.0 + 2j * np.pi * f * self.tau)

    def summary(self):
        """One line for the output: what the sample's spectrum differs by."""
        return (f"the sample's signal is ×{self.scale:.3g} the matrix tracer's, with a Debye relaxation time of "
                f"{self.tau * 1e6:.2f} µs beyond it")

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


def estimate(problem, frequencies, grid, known, near, image, noise=None, iterations=None):
    """Fit h (:class:`TracerCorrection`) to the data of ``problem`` (one frame).

    problem : the assembled :class:`~mpisim.reco.assemble.Problem`; frequencies : (M,) Hz of its rows;
    known : (N,) the fiducials' content (mol/L, :func:`known_content`), near : (N,) bool where the rest is
    not solved for; image : (N,) the linear reconstruction (the rest's support, as the shape's);
    noise : (R, N) its noise realisations or None. Returns the correction and a dict of what was done.
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
    p = np.array([0.0, 0.0])                                     # log s, τ (µs)
    h_old = _correction(p).factor(f)
    done = 0
    for done in range(1, int(iterations) + 1):
        sub = copy(problem)
        sub.b = (b / h_old - signal_known)[:, None]
        rest, _ = shape_image(sub, support, noise, grid)
        rest[near] = 0.0
        m = signal_known + _apply(A, rest)

        def resid(q, m=m):
            r = (b - _correction(q).factor(f) * m) / sigma
            return np.concatenate([r.real, r.imag])

        starts = [p, _log_scale(b, m, sigma)] + [np.array([p[0], t]) for t in TAU_STARTS]
        p = np.clip(min(starts, key=lambda q: float(np.sum(resid(q) ** 2))), LOWER, UPPER)
        try:
            p = least_squares(resid, p, bounds=(LOWER, UPPER), method="dogbox").x
        except ValueError as e:                  # non-finite residuals: nothing to fit
            raise MPISimError(f"the tracer correction's fit failed ({e})") from None
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


LOWER = np.array([-np.inf, 0.0])
UPPER = np.array([np.inf, 100.0])
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
