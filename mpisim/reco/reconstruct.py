"""``reconstruct(measurement, system_matrix)``: preprocessing + Kaczmarz/CGNR → iron map (mol Fe/L)."""

from dataclasses import dataclass, field
import time

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from ..grid import Grid
from .noise import noise_level
from .kaczmarz_base import PlanarRows, squared_row_norms
from .preprocess import (MeasurementFrames, RecoParams, check_compatible, frame_rows, measurement_spectra,
                         row_weights, select_rows, selected_frames, usable_bins)


@dataclass(eq=False)
class Reconstruction:
    """image : (F, N) concentrations (``unit``, normally mol Fe/L), x-fastest voxels on ``grid``."""

    image: np.ndarray
    grid: Grid
    params: RecoParams
    unit: str = "mol/L"
    info: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    noise: np.ndarray | None = None
    """Reconstructed noise realisations, (R, N) (linear reconstruction: the same for every frame) or
    (F, R, N) (bootstrap deviations per frame), in ``unit``; None when there are no error bars."""

    def noise_for(self, frame=0):
        """(R, N) noise realisations for ``frame``, or None."""
        if self.noise is None:
            return None
        return self.noise if self.noise.ndim == 2 else (self.noise[frame] if frame < len(self.noise) else None)

    @property
    def num_frames(self):
        return self.image.shape[0]

    def volume(self, frame=0):
        """(nx, ny, nz) image of one frame."""
        return self.grid.unflatten(self.image[frame])

    @property
    def iron_mass(self):
        """Total iron per frame in kg (mol/L × voxel volume × molar mass)."""
        from ..constants import FE_MOLAR_MASS, LITRE

        if self.unit != "mol/L":
            raise MPISimError(f"reconstruction is in {self.unit!r}, not mol/L: iron mass unknown")
        return self.image.sum(axis=1) * self.grid.voxel_volume / LITRE * FE_MOLAR_MASS


def _load_meas(m):
    from ..io.mdf import read_mdf
    from ..measurement import Measurement

    return m if isinstance(m, Measurement) else read_mdf(m)


def _load_sm(s):
    from ..io.sm_file import load_system_matrix
    from ..operator import SystemMatrix

    return s if isinstance(s, SystemMatrix) else load_system_matrix(s)


def reconstruct(measurement, system_matrix, params=None, *, backend="auto", impl="auto", progress=False, **kw):
    """Reconstruct concentration images from a measurement and a system matrix.

    Parameters
    ----------
    measurement : :class:`~mpisim.measurement.Measurement` or MDF path (of a file, only the background
        frames and the frames reconstructed are read, a block at a time: memory does not grow with the
        acquisition's length).
    system_matrix : :class:`~mpisim.systemmatrix.SystemMatrix` or MDF calibration path.
    params : :class:`RecoParams`; keyword arguments override its fields.
    backend : "auto" | "numpy" | "cupy" for the solver.
    progress : show a progress bar over the sweeps (CPU Kaczmarz) on a terminal.

    Returns
    -------
    :class:`Reconstruction` with images (F, N) in mol Fe/L (the system matrix's unit). ``info``
    records what the automatic choices chose (band, λ, sweeps and why they stopped, the noise
    level and where it came from); ``noise`` holds the reconstructed noise realisations behind
    the error bars (see :func:`mpisim.quant.roi_total`).
    """
    params = params or RecoParams()
    if kw:
        params = RecoParams(**{**params.to_dict(), **kw})
    t0 = time.perf_counter()
    source = MeasurementFrames(measurement)         # a file's frames stay on disk until they are used
    meas = source.head
    sm = _load_sm(system_matrix)
    check_compatible(meas, sm)
    tf = None
    if params.transfer_function:
        from ..transfer import TransferFunction

        tf = TransferFunction.load(params.transfer_function).at(meas.all_frequencies, meas.num_channels)
    own_bg = source.read(meas.background_frames)    # the background frames: noise level, usable band, mean
    spec = measurement_spectra(own_bg, tf)          # (E, C, K)
    background = bg_spec = None
    if params.background not in ("auto", "none"):
        empty = _load_meas(params.background)
        check_compatible(empty, sm)
        bg_spec = measurement_spectra(empty, tf)
        background = bg_spec.mean(axis=0)
    elif params.background == "auto" and spec.shape[0]:
        background = spec[np.arange(spec.shape[0])].mean(axis=0)   # a C-ordered copy: the same sums as always
    selected = selected_frames(params, source.num_frames, meas.is_background)
    usable, band_info = usable_bins(own_bg, spec, params, bg_spec)
    ch, mask = select_rows(sm, params, meas.bandwidth, usable)
    # rows: (channel, bin) pairs in channel-major order; an on-disk matrix reads just these rows
    cidx, kidx = np.nonzero(mask)
    # the data at those rows, read (and checked) before the matrix rows: a damaged frame stops the command early
    b, peak = frame_rows(source, selected, (cidx, sm.bins[kidx]), background, tf, params.average)   # (rows, F)
    whiten_sm = params.weighting == "whitening" and sm.num_background_frames >= 2
    A, sm_bg = sm.rows(cidx, kidx, background=True) if whiten_sm else (sm.rows(cidx, kidx), None)
    zero_rows, norms2 = 0, None
    if sm.nonzero_rows is None:                                  # drop the all-zero rows just read
        norms2 = squared_row_norms(A)                            # (kept for λ and the solver: one pass over A)
        nz = norms2 > 0
        zero_rows = int((~nz).sum())
        if not nz.all():
            A, cidx, kidx, b, norms2 = _keep_rows(A, nz), cidx[nz], kidx[nz], b[nz], norms2[nz]
            sm_bg = None if sm_bg is None else sm_bg[nz]
            if not A.shape[0]:
                raise MPISimError(f"{sm.meta.get('source', 'system matrix')}: every selected row is zero")
    sm_tf = sm.meta.get("transfer_function")
    if sm_tf is not None:
        t = np.asarray(sm_tf)[cidx, sm.bins[kidx]]
        A = A / np.where(t == 0, 1, t)[:, None]
        norms2 = None                                            # other rows now
    bg_sub = background is not None
    scale = 1.0
    if bg_spec is not None:      # a separate empty measurement: frames may average differently
        scale = (max(empty.num_averages, 1) * empty.data.shape[1]) / (max(meas.num_averages, 1) * meas.data.shape[1])
    level = noise_level(own_bg, spec, params, bg_spec, meas.transfer_function if tf is None else tf, scale, peak)
    sigma = None if level is None else level.sigma[cidx, sm.bins[kidx]]
    spread = None
    if params.weighting == "whitening":
        if sm_bg is not None:
            spread = np.std(sm_bg, axis=-1)
        elif level is not None:
            spread = sigma
    w = row_weights(A, params, spread)
    if not sm.on_disk and not np.all(np.isfinite(A)):        # rows read from disk were checked on reading
        raise MPISimError(f"{sm.meta.get('source', 'system matrix')}: selected rows contain NaN or Inf")
    rows = A
    A = np.ascontiguousarray(A, dtype=np.result_type(A.dtype, np.complex64))     # complex (a real matrix too)
    if A is not rows or norms2 is None:
        norms2 = squared_row_norms(A)
    use = B.resolve(backend)
    noise2 = None if sigma is None else float(np.sum(sigma.astype(float) ** 2))
    if noise2 is not None and not noise2 > 0:        # noise-free data: no noise level to stop or choose λ by
        level = sigma = noise2 = None
    visibility = total_iron_visibility(A, norms2)
    positive = visibility < VISIBILITY_MIN if params.enforce_positive == "auto" else bool(params.enforce_positive)
    if use == "numpy" and params.solver == "kaczmarz" and impl in ("auto", "numba") and B.numba_available():
        A = PlanarRows.from_complex(A, in_place=True)    # the compiled sweeps' layout, in the rows' own memory
    solver = _Solver(A, params, w, use, impl, noise2, progress, positive, norms2)
    t1 = time.perf_counter()
    lam, lam_info = params.lam, {}
    if params.lam == "auto":
        if noise2 is None:
            raise MPISimError("--lambda auto needs the noise level: the measurement has no background frames "
                              "and states no noise density; give --lambda a number")
        lam, lam_info = choose_lambda(solver, b.mean(axis=1), noise2 / b.shape[1])   # the mean of F frames
    realisations = None
    if params.uncertainty_samples and level is not None and not positive and params.solver == "kaczmarz":
        # linear reconstruction: the noise realisations go through the same sweeps as the data (the stopping
        # rule watches the data only): on the GPU in one batched solve, on the CPU afterwards with the sweep
        # count the data took, in single precision (they only feed statistics; twice as fast).
        # tests/test_slow_studies.py::test_coverage_of_95_percent_interval compares the σ they give with the
        # scan-to-scan spread
        n = _noise_draws(sigma, params, b)
        if use == "cupy":
            both, sweeps, why = solver.solve(np.concatenate([b, n], axis=1), lam, watch=b.shape[1])
            img, realisations = both[:, :b.shape[1]], both[:, b.shape[1]:].T.astype(np.float32)
        else:
            img, sweeps, why = solver.solve(b, lam)
            realisations = solver.solve(n, lam, sweeps=sweeps, quiet=True, statistics=True)[0].T.astype(np.float32)
    else:
        img, sweeps, why = solver.solve(b, lam)
    img = np.asarray(img)
    noise_info = {"noise_source": "none"}
    if level is not None:
        noise_info = {"noise_source": level.source, "noise_rms_per_row": float(np.sqrt(noise2 / len(sigma))),
                      "residual_over_noise": solver.last_residual_ratio}
    if params.uncertainty_samples:
        if level is None:
            noise_info["uncertainty"] = ("none: no background frames and no stated noise density, so no error bars "
                                         "(record background frames, or pass --uncertainty-samples 0 to silence this)")
        elif realisations is not None:
            noise_info["uncertainty"] = ("linear: reconstructed noise realisations (noise only), through the data's "
                                         "sweeps")
        else:
            realisations = _bootstrap_realisations(solver, A, img, _noise_draws(sigma, params, b), lam, sweeps)
            noise_info["uncertainty"] = "bootstrap: reconstructions of S·c + noise around the estimate"
    t2 = time.perf_counter()
    info = {"rows": int(A.shape[0]), "zero_rows_dropped": zero_rows, "voxels": int(A.shape[1]), "frames": int(img.shape[1]),
            "background_subtracted": bool(bg_sub), "backend": use, "solve_seconds": t2 - t1,
            "total_seconds": t2 - t0, "channels": ch.tolist(),
            "rows_per_channel": [int((cidx == c).sum()) for c in range(sm.num_channels)],
            "lambda": float(lam), "lambda_rule": "auto" if params.lam == "auto" else "fixed", **lam_info,
            "sweeps": int(sweeps), "stopped_because": why, **band_info, **noise_info,
            "positivity": bool(positive), "positivity_rule": str(params.enforce_positive),
            "total_iron_visibility": visibility,
            "uncertainty_samples": 0 if realisations is None else int(realisations.shape[-2]),
            "measurement": meas.meta.get("source", "(in memory)"),
            "system_matrix": sm.meta.get("source", "(in memory)")}
    return Reconstruction(img.T, sm.grid, params, sm.unit, info, {"measurement": meas}, realisations)


def _keep_rows(A, keep):
    """A[keep] without a second copy of A: rows move up in place, a view of the first rows is returned."""
    idx = np.flatnonzero(keep)
    for j, i in enumerate(idx):
        if i != j:
            A[j] = A[i]
    return A[:idx.size]


VISIBILITY_MIN = 1.0
"""Below this total-iron visibility the rows cannot fix the total iron (``benchmarks/study_reco_defaults.py``
prints it: bruker-1d 0.16, bruker-2d 3.6, bruker-3d 8.8 with the default selection; 0.4–0.8 with the
reference tool's 80 kHz minimum frequency)."""


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


class _Solver:
    """One configured solver (Kaczmarz or CGNR, numpy/numba/cupy) with the stopping rule; solves any
    right-hand sides with a given λ and returns (c (N, F) numpy, sweeps done, why it stopped)."""

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

    def solve(self, b, lam, sweeps=None, quiet=False, watch=None, statistics=False):
        """b (M, F). ``sweeps`` fixes the number of sweeps (no stopping rule); ``watch``: the stopping
        rule looks at the first ``watch`` columns only (the rest ride along). ``statistics``: the
        results only feed statistics (noise realisations): single precision where the CPU kernel
        has it, and the data's residual ratio is left alone."""
        p = self.params
        auto = sweeps is None and p.iterations == "auto"
        n = sweeps or (p.max_iterations if auto else p.iterations)
        rule = StoppingRule(self.A, b[:, :watch] if watch else b, self.noise2, p.tolerance) if auto else None
        if p.solver == "cgnr":
            from .cgnr import cgnr

            A, w = (self._device() if self.use == "cupy" else (self.A, self.w))
            c = cgnr(A, B.to_device(b, self.use), n, lam, enforce_real=p.enforce_real,
                     enforce_positive=self.positive, row_weights=w)
            c = B.to_numpy(c).reshape(self.A.shape[1], -1)
            self._residual(b, c)
            return c, n, "fixed iterations" if sweeps or not auto else "max iterations (CGNR has no stopping rule)"
        from .kaczmarz import kaczmarz

        kw = dict(enforce_real=p.enforce_real, enforce_positive=self.positive, order=p.order, seed=p.seed,
                  impl=self.impl, stop=rule, precision="single" if statistics else "double")
        if self.use == "cupy":
            A, w = self._device()
            c = kaczmarz(A, B.to_device(b, "cupy"), n, lam, row_weights=w, **kw)
        else:
            from ..progress import Progress

            with Progress(n, "kaczmarz", enabled=self.progress and not quiet) as bar:
                c = kaczmarz(self.A, b, n, lam, row_weights=self.w, backend="numpy", row_norms2=self.norms2,
                             callback=lambda i, c: bar.update(), **kw)
        c = B.to_numpy(c).reshape(self.A.shape[1], -1)
        if rule is not None:
            if rule.ratio is not None:
                self.last_residual_ratio = rule.ratio
            return c, rule.sweeps, rule.reason or f"max iterations ({n})"
        if not statistics:
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
    (Morozov's discrepancy principle, τ = 1) or has fallen by less than ``tolerance`` (relative)
    over the last ``window`` sweeps (stagnation: what is left is model error or noise the
    regularisation keeps out). ``reason`` and ``sweeps`` tell what happened.
    """

    def __init__(self, A, b, noise2=None, tolerance=0.01, window=5):
        self.A, self.b, self.noise2 = A, np.asarray(b).reshape(A.shape[0], -1), noise2
        self.tolerance, self.window = tolerance, window
        self.history, self.reason, self.sweeps, self.ratio = [], None, 0, None

    def __call__(self, it, c):
        rr = residual2(self.A, B.to_numpy(c[:, :self.b.shape[1]] if c.ndim == 2 else c), self.b)
        self.history.append(rr)
        self.sweeps = it + 1
        if self.noise2:
            self.ratio = float(rr.max() / self.noise2)
            if np.all(rr <= self.noise2):
                self.reason = "discrepancy: residual reached the noise level"
                return True
        if len(self.history) > self.window:
            old = self.history[-1 - self.window]
            if np.all(old - rr < self.tolerance * rr):
                self.reason = f"stagnation: residual fell by < {self.tolerance:g} over {self.window} sweeps"
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
        c, _, _ = solver.solve(b, lam, quiet=True)
        rr = float(residual2(solver.A, c, b)[0])
        tried.append([lam, rr / noise2])
        if rr <= target:
            chosen = lam
            break
    return chosen, {"lambda_target_over_noise": target / noise2, "lambda_floor_over_noise": floor / noise2,
                    "lambda_tried": [t[0] for t in tried], "lambda_residual_over_noise": [t[1] for t in tried]}


def _noise_draws(sigma, params, b):
    """(M, R) complex noise with the per-row σ of the data. Seeded by ``params.seed`` and a checksum of
    the data ``b``: the same file gives the same error bars, and different measurements get
    independent draws (one fixed set of draws would carry the same sampling error of σ into every
    measurement's interval)."""
    import zlib

    from .noise import complex_noise

    crc = zlib.crc32(np.ascontiguousarray(b).view(np.uint8).ravel())
    rng = np.random.default_rng([int(params.seed), 7919, int(crc)])
    return complex_noise(rng, sigma, params.uncertainty_samples).T


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
