"""Step 3 of a reconstruction: the uncertainty — reconstructed noise realisations behind the error bars.

A linear reconstruction (no positivity, Kaczmarz) puts noise draws with the data's per-row σ through
the same sweeps as the data: on the GPU in the same batch (:func:`noise_draws` before the solve), on
the CPU afterwards with the sweep count the data took, in single precision (they only feed
statistics; twice as fast). A non-linear one gets a parametric bootstrap around the estimate.
``tests/test_slow_studies.py::test_coverage_of_95_percent_interval`` compares the σ they give with
the scan-to-scan spread.
"""

import zlib

import numpy as np

from .noise import complex_noise
from .solve import apply

__all__ = ["linear", "noise_draws", "realisations"]


def linear(problem, params):
    """Whether the noise realisations go through the data's sweeps (a linear reconstruction with a noise
    level and samples asked for)."""
    return bool(params.uncertainty.samples and problem.level is not None and not problem.positive
                and params.solver.method == "kaczmarz")


def noise_draws(problem, params):
    """(M, R) complex noise draws with the data's per-row σ (see :func:`_noise_draws`)."""
    return _noise_draws(problem.sigma, params, problem.b)


def realisations(problem, solution, params, draws=None):
    """The error-bar realisations and what they are: (R, N) float32 (linear), (F, R, N) float32
    (bootstrap deviations) or None, and a dict for the result's info."""
    level = problem.level
    out = None
    info = {"noise_source": "none"}
    if level is not None:
        info = {"noise_source": level.source, "noise_rms_per_row": float(np.sqrt(problem.noise2 / len(problem.sigma))),
                "residual_over_noise": solution.solver.last_residual_ratio}
    if linear(problem, params):
        if solution.ride_along is not None:
            out = solution.ride_along.T.astype(np.float32)
        else:
            out = solution.solver.solve(draws, solution.lam, sweeps=solution.sweeps, statistics=True,
                                        label="noise")[0].T.astype(np.float32)
    if params.uncertainty.samples:
        if level is None:
            info["uncertainty"] = ("none: no noise level (fewer than 2 background frames, or background frames "
                                   "without noise as in a noise-free simulation, and no stated noise density), so "
                                   "no error bars "
                                   "(record background frames, or pass --uncertainty-samples 0 to silence this)")
        elif out is not None:
            info["uncertainty"] = "linear: reconstructed noise realisations (noise only), through the data's sweeps"
        else:
            out = _bootstrap_realisations(solution.solver, problem.A, solution.img, noise_draws(problem, params),
                                          solution.lam, solution.sweeps)
            info["uncertainty"] = "bootstrap: reconstructions of S·c + noise around the estimate"
    return out, info


def _noise_draws(sigma, params, b):
    """(M, R) complex noise with the per-row σ of the data. Seeded by ``params.seed`` and a checksum of
    the data ``b``: the same file gives the same error bars, and different measurements get
    independent draws (one fixed set of draws would carry the same sampling error of σ into every
    measurement's interval)."""
    crc = zlib.crc32(np.ascontiguousarray(b).view(np.uint8).ravel())
    rng = np.random.default_rng([int(params.solver.seed), 7919, int(crc)])
    return complex_noise(rng, sigma, params.uncertainty.samples).T


def _bootstrap_realisations(solver, A, img, n, lam, sweeps):
    """Error-bar realisations of a non-linear reconstruction (positivity, or CGNR whose step sizes depend
    on the data): a parametric bootstrap per frame — reconstruct S ĉ + noise ``n`` (M, R) with the same λ
    and sweeps and keep the deviation from ĉ → (F, R, N) float32. (The linear default reconstructs the
    noise together with the data instead, in :func:`reconstruct`.)"""
    out = []
    for f in range(img.shape[1]):
        c, _, _ = solver.solve(apply(A, img[:, f])[:, None] + n, lam, sweeps=sweeps, quiet=True)
        out.append((c - img[:, [f]]).T)
    return np.stack(out).astype(np.float32)
