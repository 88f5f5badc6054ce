"""Step 2 of a reconstruction: solve the assembled problem for the image.

:func:`solve` configures a :class:`Solver` (Kaczmarz or CGNR on numpy/numba/cupy), chooses λ when asked
(:func:`choose_lambda`) and runs the sweeps until the :class:`StoppingRule` — the Kaczmarz
algorithm's ``done`` (:class:`mpisim.reco.kaczmarz.Alg`) — says the residual has reached the noise
level or stagnates.
"""

from dataclasses import dataclass, field

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from ..progress import Progress
from .cgnr import cgnr
from .kaczmarz import kaczmarz
from .kaczmarz_base import PlanarRows

__all__ = ["Solution", "Solver", "make_solver", "StoppingRule", "solve", "choose_lambda", "residual2", "apply", "LAMBDA_GRID"]


@dataclass(eq=False)
class Solution:
    """img : (N, F) concentrations; realisations_img : (N, R) the ride-along columns' solutions (the
    GPU's batched noise realisations) or None; sweeps done and why they stopped; λ (relative) and what
    choosing it found; the configured :class:`Solver` (the uncertainty step reuses it)."""

    img: np.ndarray
    ride_along: np.ndarray | None
    sweeps: int
    why: str
    lam: float
    solver: "Solver"
    lam_info: dict = field(default_factory=dict)


def solve(problem, params, backend="auto", impl="auto", progress=False, ride_along=None):
    """Solve ``problem`` (:class:`~mpisim.reco.assemble.Problem`) with ``params``
    (:class:`~mpisim.reconstruction.SolverParams`). ``ride_along`` (M, R): extra right-hand sides solved
    in the same batch through the same sweeps as the data (the stopping rule watches the data only)."""
    use = B.resolve(backend)
    b = problem.b
    solver = make_solver(problem, params, use, impl, progress)
    lam, lam_info = params.lam, {}
    if params.lam == "auto":
        if problem.noise2 is None:
            raise MPISimError("--lambda auto needs the noise level: the measurement has no background frames "
                              "and states no noise density; give --lambda a number")
        lam, lam_info = choose_lambda(solver, b.mean(axis=1), problem.noise2 / b.shape[1])   # the mean of F frames
    extra = None
    if ride_along is not None:
        both, sweeps, why = solver.solve(np.concatenate([b, ride_along], axis=1), lam, watch=b.shape[1])
        img, extra = both[:, :b.shape[1]], both[:, b.shape[1]:]
    else:
        img, sweeps, why = solver.solve(b, lam)
    return Solution(np.asarray(img), extra, sweeps, why, lam, solver, lam_info)


def make_solver(problem, params, use="numpy", impl="auto", progress=False):
    """The :class:`Solver` of ``problem`` with ``params`` (:class:`~mpisim.reconstruction.SolverParams`) on
    ``use`` ("numpy" or "cupy"). On the CPU with numba the
    problem's rows are turned into the compiled sweeps' planar layout first, in their own memory (the
    complex rows are gone afterwards: the problem holds the planar rows)."""
    if use == "numpy" and params.method == "kaczmarz" and impl in ("auto", "numba") and B.numba_available() \
            and not isinstance(problem.A, PlanarRows):
        problem.A = PlanarRows.from_complex(problem.A, in_place=True)
    return Solver(problem.A, params, problem.weights, use, impl, problem.noise2, progress,
                  problem.positive, problem.norms2)


class Solver:
    """One configured solver (Kaczmarz or CGNR, numpy/numba/cupy) with the stopping rule; solves any
    right-hand sides with a given λ and returns (c (N, F) numpy, sweeps done, why it stopped).
    ``params``: :class:`~mpisim.reconstruction.SolverParams`; ``w``: row weights or None; ``use``:
    "numpy" or "cupy"; ``noise2``: the noise level Σσ² of one frame, or None."""

    def __init__(self, A, params, w, use, impl, noise2, progress, positive, norms2=None):
        self.A, self.params, self.w, self.use, self.impl = A, params, w, use, impl
        self.norms2 = norms2
        self.positive = positive
        self.noise2, self.progress = noise2, progress
        self.last_residual_ratio = None
        self._dev = None

    def _device(self):
        if self._dev is None and self.use == "cupy":
            self._dev = (B.to_device(self.A, "cupy"), None if self.w is None else B.to_device(self.w, "cupy"))
        return self._dev

    def solve(self, b, lam, sweeps=None, quiet=False, watch=None, statistics=False, label="kaczmarz",
              image_rule=True, residual=True):
        """b (M, F). ``sweeps`` fixes the number of sweeps (no stopping rule); ``watch``: the stopping
        rule looks at the first ``watch`` columns only (the rest ride along). ``statistics``: the
        results only feed statistics (noise realisations): single precision where the CPU kernel
        has it, and the data's residual ratio is left alone. ``label``: of the progress bar.
        ``image_rule``: the stopping rule may also stop when the image stagnates (off: the residual's own
        convergence, which choosing λ compares). ``residual``: with fixed sweeps, compute the residual's ratio
        to the noise afterwards (a pass over the rows; a live reconstruction skips it)."""
        p = self.params
        auto = sweeps is None and p.iterations == "auto"
        n = sweeps or (p.max_iterations if auto else p.iterations)
        rule = StoppingRule(self.A, b[:, :watch] if watch else b, self.noise2, p.tolerance,
                            image=image_rule) if auto else None
        if p.method == "cgnr":
            A, w = (self._device() if self.use == "cupy" else (self.A, self.w))
            c = cgnr(A, B.to_device(b, self.use), n, lam, enforce_real=p.enforce_real,
                     enforce_positive=self.positive, row_weights=w)
            c = B.to_numpy(c).reshape(self.A.shape[1], -1)
            self._residual(b, c)
            return c, n, "fixed iterations" if sweeps or not auto else "max iterations (CGNR has no stopping rule)"
        kw = dict(enforce_real=p.enforce_real, enforce_positive=self.positive, order=p.order, seed=p.seed,
                  impl=self.impl, stop=rule, precision="single" if statistics else "double")
        if self.use == "cupy":
            A, w = self._device()
            c = kaczmarz(A, B.to_device(b, "cupy"), n, lam, row_weights=w, **kw)
        else:
            with Progress(n, label, enabled=self.progress and not quiet) as bar:
                c = kaczmarz(self.A, b, n, lam, row_weights=self.w, backend="numpy", row_norms2=self.norms2,
                             callback=lambda i, c: bar.update(), **kw)
                bar.finish()                   # a stopping rule may end the sweeps before n: the solve is complete
        c = B.to_numpy(c).reshape(self.A.shape[1], -1)
        if rule is not None:
            if rule.ratio is not None:
                self.last_residual_ratio = rule.ratio
            return c, rule.sweeps, rule.reason or f"max iterations ({n})"
        if not statistics and residual:
            self._residual(b, c)
        return c, n, "fixed iterations"

    def _residual(self, b, c):
        if self.noise2:
            self.last_residual_ratio = float(residual2(self.A, c, b).max() / self.noise2)


def apply(A, c):
    """A @ c in A's precision (A complex, or :class:`~mpisim.reco.kaczmarz_base.PlanarRows`): a real
    float64 iterate would make numpy promote the whole matrix to complex128, a copy of A on every call."""
    if isinstance(A, PlanarRows):
        return A.apply(c)
    return A @ np.asarray(c).astype(A.dtype, copy=False)


def residual2(A, c, b):
    """‖A c − b‖² per column of b (M, F) → (F,)."""
    r = apply(A, np.asarray(c).reshape(A.shape[1], -1)) - np.asarray(b).reshape(A.shape[0], -1)
    return np.sum(np.abs(r) ** 2, axis=0)


class StoppingRule:
    """Stopping rule for the sweeps, called after each sweep with the iterate c (N, F).

    Stops when, for every frame, the residual ‖A c − b‖² has reached the noise level Σσ_k²
    (Morozov's discrepancy principle, τ = 1), or has fallen by less than ``tolerance`` (relative)
    over the last ``window`` sweeps (stagnation: what is left is model error or noise the
    regularisation keeps out), or when the image itself has changed by less than ``tolerance``
    (‖c_k − c_{k−window}‖ / ‖c_k‖) over the last ``window`` sweeps: the amounts no longer move, even if
    the residual still creeps down by fitting model error (data with their background subtracted; the
    amounts :func:`mpisim.quant.quantify` reports are corrected through the same operator, whatever the
    sweep count). ``reason`` and ``sweeps`` tell what happened.
    """

    def __init__(self, A, b, noise2=None, tolerance=0.01, window=5, image=True):
        self.A, self.b, self.noise2 = A, np.asarray(b).reshape(A.shape[0], -1), noise2
        self.tolerance, self.window, self.image = tolerance, window, image
        self.history, self.reason, self.sweeps, self.ratio = [], None, 0, None
        self.images = []

    def _image_still(self, c):
        """Whether every frame's image moved by less than ``tolerance`` (relative) over ``window`` sweeps."""
        self.images.append(np.array(c, np.float64, copy=True))
        if len(self.images) <= self.window:
            return False
        old = self.images.pop(0)
        now = self.images[-1]
        change = np.linalg.norm(now - old, axis=0) / np.maximum(np.linalg.norm(now, axis=0), 1e-300)
        return bool(np.all(change < self.tolerance))

    def __call__(self, it, c):
        c = B.to_numpy(c[:, :self.b.shape[1]] if c.ndim == 2 else c)
        rr = residual2(self.A, c, self.b)
        self.history.append(rr)
        self.sweeps = it + 1
        if self.noise2:
            self.ratio = float(rr.max() / self.noise2)
            if np.all(rr <= self.noise2):
                self.reason = "discrepancy: residual reached the noise level"
                return True
        still = self.image and self._image_still(np.real(c).reshape(c.shape[0], -1))
        if len(self.history) > self.window:
            old = self.history[-1 - self.window]
            if np.all(old - rr < self.tolerance * rr):
                self.reason = f"stagnation: residual fell by < {self.tolerance:g} over {self.window} sweeps"
            elif still:
                self.reason = (f"image stagnation: the image changed by < {self.tolerance:g} (relative) over "
                               f"{self.window} sweeps")
            if self.reason:
                if self.ratio is not None:
                    self.reason += f" (residual/noise {self.ratio:.3g})"
                return True
        return False


LAMBDA_GRID = (1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4)
"""Relative λ values that ``--lambda auto`` tries, largest first."""


def choose_lambda(solver, b, noise2, grid=LAMBDA_GRID, floor_factor=2.0):
    """Relative λ by the generalised discrepancy principle, from the noise level Σσ_k².

    The misfit that no λ removes — model error, e.g. a calibration on a coarser grid than the
    object — is measured as the residual at the smallest λ of ``grid`` after ``max_iterations``
    sweeps (the floor). The target is the noise level when the floor lies below it (Morozov's
    discrepancy principle), else ``floor_factor`` × floor; the largest λ whose residual meets it is
    chosen. ``noise2`` is the noise level of ``b`` (for a mean of F frames, Σσ²/F). Returns (λ, info).
    """
    b = np.asarray(b).reshape(-1, 1)
    floor_c, _, _ = solver.solve(b, grid[-1], sweeps=solver.params.max_iterations, quiet=True)   # no early stop
    floor = float(residual2(solver.A, floor_c, b)[0])
    target = noise2 if floor <= noise2 else max(noise2, floor_factor * floor)
    chosen, tried = grid[-1], []
    for lam in grid[:-1]:
        c, _, _ = solver.solve(b, lam, quiet=True, image_rule=False)      # the residual's own convergence
        rr = float(residual2(solver.A, c, b)[0])
        tried.append([lam, rr / noise2])
        if rr <= target:
            chosen = lam
            break
    return chosen, {"lambda_target_over_noise": target / noise2, "lambda_floor_over_noise": floor / noise2,
                    "lambda_tried": [t[0] for t in tried], "lambda_residual_over_noise": [t[1] for t in tried]}


