"""Live reconstruction: follow a measurement while the scanner records it and reconstruct its frames as they
arrive (:func:`follow`; ``mpisim live MEAS --sm SM``).

The set-up is the offline reconstruction's own, on the first block of frames: the same frequency selection,
background (the stream's background frames, which come first), row weights, λ and stopping rule
(:func:`mpisim.reco.assemble.assemble`, :func:`mpisim.reco.solve.solve`). What it chose is then fixed — the
rows, the background spectrum, λ and the number of sweeps the rule stopped at — and every later block of
``average`` foreground frames is one right-hand side through the same configured solver, without the residual
pass after it. A block is reconstructed as soon as its last frame is in the file.

When blocks arrive faster than they are reconstructed, ``policy="batch"`` (the default) reconstructs all that are
in at once — one pass over the operator (or one set of sweeps) serves them all, so a session that falls behind
catches up instead of dropping frames (beyond :data:`BATCH_MAX` blocks the oldest are dropped); ``"latest"``
reconstructs the newest complete block and counts the ones it skipped as dropped; ``"all"`` queues every block,
one at a time (nothing dropped; the latency grows). The latency of a block is the time
from its last frame written (the stream's ``/_mpisim/stream/written``) to its image; a file that is not a stream
records no writing times, and its latencies read 0.
"""

import bisect
import contextlib
import hashlib
import os
import signal
import time
import zipfile
from dataclasses import dataclass, field, replace

import numpy as np

from . import backend as B
from . import cache, interrupt
from .alarms import ONSET_Z, OnsetTest
from .errors import MPISimError, check_positive
from .io.atomic import atomic_path
from .io.stream import StreamFrames, wait_for
from .quant import iron_mass_map, roi_weights
from .resources import NotEnoughMemory, check_memory, keep_heap_pages
from .reco.amounts import SHAPE_BIAS_FACTOR, check_disjoint
from .reco.assemble import VISIBILITY_MIN, assemble
from .reco.preprocess import frame_rows
from .reco.solve import apply, solve
from .reco.tikhonov import FILTER_FLOOR, TikhonovOperator
from .reconstruction import Reconstruction, RecoParams

__all__ = ["LiveSettings", "LiveResult", "follow", "POLICIES", "OPERATORS"]

POLICIES = ("batch", "latest", "all")
"""What to do when blocks pile up: reconstruct all of them at once (one pass of the operator or of the sweeps
serves them all; beyond :data:`BATCH_MAX` the oldest are dropped), reconstruct the newest and drop the others, or
queue them all, one at a time."""
BATCH_MAX = 16
"""The most blocks ``policy="batch"`` reconstructs at once."""
OPERATORS = ("auto", "tikhonov", "kaczmarz")
"""How a block becomes an image: the precomputed Tikhonov operator (:mod:`mpisim.reco.tikhonov`), the sweeps, or
auto (the operator for a linear reconstruction, else the sweeps)."""


@dataclass(frozen=True)
class LiveSettings:
    """average : foreground frames averaged into one image (a block). sweeps : Kaczmarz sweeps per block, or
    "auto" (as many as the stopping rule chose on the first block). policy : one of :data:`POLICIES`.
    operator : one of :data:`OPERATORS`. warn : names of followed ROIs to flag when iron starts to arrive there
    (needle track, ventricle: :mod:`mpisim.alarms`).
    poll : s between looks at the file when nothing is pending. idle_timeout : s without a new frame after
    which a stream not marked complete is taken as stopped. start_timeout : s to wait for the file and its
    first block."""

    average: int = 1
    sweeps: int | str = "auto"
    policy: str = "batch"
    operator: str = "auto"
    warn: tuple = ()
    poll: float = 0.002
    idle_timeout: float = 10.0
    start_timeout: float = 30.0

    def __post_init__(self):
        if not isinstance(self.average, (int, np.integer)) or self.average < 1:
            raise MPISimError(f"frames averaged per image must be an integer ≥ 1, got {self.average!r}")
        if self.sweeps != "auto" and (not isinstance(self.sweeps, (int, np.integer)) or self.sweeps < 1):
            raise MPISimError(f"sweeps per image must be 'auto' or an integer ≥ 1, got {self.sweeps!r}")
        if self.operator not in OPERATORS:
            raise MPISimError(f"operator must be one of {', '.join(OPERATORS)}, got {self.operator!r}")
        if self.policy not in POLICIES:
            raise MPISimError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        for name in ("poll", "idle_timeout", "start_timeout"):
            check_positive(name.replace("_", " ") + " (s)", getattr(self, name))


@dataclass(eq=False)
class LiveResult:
    """What a live session reconstructed and how it kept up.

    images : (B, N) mol Fe/L, one per reconstructed block; blocks : (B,) their block indices (block k holds
    foreground frames k·average … (k+1)·average − 1); frames : (B,) the stored index of each block's last
    frame; written, done : (B,) s since the epoch (frame written, image ready); seen : foreground frames seen;
    arrived : (B,) s since the epoch at which the session first saw each block's last frame in the file (None for a
    result made without it): ``arrived − written`` is the writer's and the file system's share of the latency,
    ``done − arrived`` the session's;
    dropped : foreground frames in blocks skipped (``policy="latest"``, or beyond ``BATCH_MAX``;
    ``info["frames_left"]``: those seen in no block reconstructed or skipped when the session ended); ended : why the session ended;
    rois : {name: (B,) kg} each followed ROI's iron per image (corrected for spill between ROIs, :class:`_Unmixing`)
    and "elsewhere" (the rest of the image's total); totals : (B,) kg, each image's total iron; info : what the
    set-up chose (rows, λ, operator, ROI noise σ, …), the warnings raised (``info["warnings"]``: ROI → the image
    that raised it) and what :meth:`summary` gives."""

    images: np.ndarray
    blocks: np.ndarray
    frames: np.ndarray
    written: np.ndarray
    done: np.ndarray
    seen: int
    dropped: int
    ended: str
    grid: object
    params: RecoParams
    head: object = None
    rois: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    totals: np.ndarray | None = None
    arrived: np.ndarray | None = None

    @property
    def latency(self):
        """(B,) s from each block's last frame written to its image."""
        return self.done - self.written

    def summary(self):
        """The session's figures: blocks, frames seen and dropped, sustained frames/s (frames that went into
        images, per second between the first image and the last), latency (median, 95th percentile, s) and why
        it ended."""
        lat = self.latency
        own = self.done - self.arrived if self.arrived is not None else np.zeros(0)
        span = float(self.done[-1] - self.done[0]) if len(self.done) > 1 else float("nan")
        ips = (len(self.blocks) - 1) / span if span > 0 else float("nan")
        return {"blocks": int(len(self.blocks)), "frames_seen": int(self.seen), "frames_dropped": int(self.dropped),
                "frames_per_second": float(ips * self.info.get("average", 1)), "images_per_second": float(ips),
                "latency_median_s": float(np.median(lat)) if len(lat) else float("nan"),
                "latency_p95_s": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
                "session_latency_median_s": float(np.median(own)) if len(own) else float("nan"),
                "session_latency_p95_s": float(np.percentile(own, 95)) if len(own) else float("nan"),
                "ended": self.ended}

    def public_info(self):
        """``info`` without the arrays kept for :meth:`on_target` (what the outputs record)."""
        return {k: v for k, v in self.info.items() if not k.startswith("_")}

    def on_target(self, target, images=None):
        """The share of the followed iron in ROI ``target``: its amount over the sum of every followed ROI's
        (the iron outside them is reported apart, as "elsewhere": an image's total carries the noise and the offsets
        of every voxel), averaged over the last ``images`` images (default: those of :data:`WARN_WINDOW_S`), with a
        95 % interval from the noise realisations of the background frames (noise only). Returns {"fraction",
        "low", "high", "target_kg", "followed_kg", "images"}, or None without ROIs."""
        names = [n for n in self.rois if n != "elsewhere"]
        if target not in names or not len(self.blocks):
            return None
        n = int(images or self.info.get("warn_window", 1))
        n = max(1, min(n, len(self.blocks)))
        amounts = np.array([np.mean(self.rois[k][-n:]) for k in names])
        j = names.index(target)
        T = float(amounts.sum())
        f = float(amounts[j] / T) if T > 0 else float("nan")
        dev = self.info.get("_noise")
        half = float("nan")
        if dev is not None and T > 0:
            d = dev[0] * np.sqrt(1.0 / n + self.info.get("roi_shared_noise", 0.0))   # (k, E) realisations of the mean
            fe = (amounts[j] + d[j]) / (T + d.sum(axis=0))
            half = 1.959964 * float(np.std(fe, ddof=1))
        return {"fraction": f, "low": f - half, "high": f + half, "target_kg": float(amounts[j]), "followed_kg": T,
                "images": n}

    def reconstruction(self):
        """The images as a :class:`~mpisim.reconstruction.Reconstruction` (one frame per block), with the
        session's figures in its info (``live_…``: :meth:`summary`, the blocks, the ROIs warned about)."""
        return Reconstruction(np.asarray(self.images), self.grid, self.params, "mol/L",
                              {**self.public_info(), **{f"live_{k}": v for k, v in self.summary().items()},
                               "live_blocks": self.blocks.tolist(),
                               "live_warnings": sorted(self.info.get("warnings", {}))},
                              None, self.head, getattr(self.head, "truth", None))


def follow(path, system_matrix, params=None, settings=None, *, rois=(), backend="auto", impl="auto", empty=None,
           tf=None, on_block=None):
    """Follow the measurement file ``path`` while it is written and reconstruct each block of frames with
    ``system_matrix`` (module docstring) → :class:`LiveResult`.

    params : :class:`~mpisim.reconstruction.RecoParams` of the set-up (the offline defaults when None; its
    ``preprocessing.average`` and ``frames`` are the session's own); settings : :class:`LiveSettings`; rois :
    disjoint ROI objects of :mod:`mpisim.quant` whose iron is followed (:class:`_Unmixing`); on_block :
    f(progress) after each image, progress a dict (images, frames seen and dropped, the latest image and its ROI
    amounts, the stream's time, the recent latency's median and 95th percentile, the recent images per second:
    :meth:`_Collector.progress`). The session ends when the stream is marked complete and every block is
    done, when no frame came for ``settings.idle_timeout`` s, or at Ctrl-C (with the command line's handlers),
    each said in ``ended``.
    """
    params = params or RecoParams()
    settings = settings or LiveSettings()
    avg = int(settings.average)
    keep_heap_pages()                                  # every frame's few MB: no page faults again at each frame
    wait_for(str(path), settings.start_timeout)
    with StreamFrames(path) as src:
        fg = _wait_first_block(src, avg, settings)
        t0 = time.perf_counter()
        ses = _Session(src, system_matrix, params, settings, backend, impl, empty, tf)
        unmix = _Unmixing(ses, rois, settings.warn) if rois else None
        ses.info["setup_seconds"] = time.perf_counter() - t0
        if unmix is not None:
            ses.info.update(unmix.info)
        out = _Collector(unmix, ses.per, int(fg[0]), src.frame_time)
        out.add(0, fg[avg - 1], src, ses.image0)
        out.arrivals.see(src.available)
        if on_block:
            on_block(out.progress(src, 0))
        nxt, dropped, last_new, seen = 1, 0, time.monotonic(), src.available
        ended = None
        while ended is None:
            if interrupt.pending() is not None:
                signum = interrupt.consume()
                ended = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"interrupted ({signal.Signals(signum).name})"
                break
            n = src.refresh()
            if n > seen:
                seen, last_new = n, time.monotonic()
                out.arrivals.see(n)
            fg = np.flatnonzero(~src.bg)
            ready = fg.size // avg
            if ready > nxt:
                ks = _next_blocks(settings.policy, nxt, ready)
                dropped += (ks[0] - nxt) * avg
                idx = fg[ks[0] * avg:(ks[-1] + 1) * avg]
                images = ses.image(frame_rows(src, idx, ses.rows, ses.problem.background, tf, avg)[0])
                images = images.reshape(images.shape[0], -1)
                for i, k in enumerate(ks):
                    out.add(k, fg[(k + 1) * avg - 1], src, images[:, i])
                nxt = ks[-1] + 1
                if on_block:
                    on_block(out.progress(src, dropped))
                continue
            if src.complete and src.refresh() == seen:
                ended = "the stream is complete" if src.streaming else "the file holds no more frames"
            elif time.monotonic() - last_new > settings.idle_timeout:
                ended = (f"no new frame for {settings.idle_timeout:g} s and the stream was not marked complete "
                         f"(stopped or truncated)")
            else:
                time.sleep(settings.poll)
        ses.info["frames_left"] = int(np.count_nonzero(~src.bg)) - nxt * avg   # in no block done or skipped
        return out.result(src, dropped, ended, ses)


def _next_blocks(policy, nxt, ready):
    """The blocks to reconstruct now (consecutive), the next one due being ``nxt`` and blocks up to ``ready`` − 1 in:
    ``latest`` the newest, ``all`` the next one, ``batch`` all that are in (the newest :data:`BATCH_MAX`)."""
    if policy == "latest":
        return [ready - 1]
    if policy == "all":
        return [nxt]
    return list(range(max(nxt, ready - BATCH_MAX), ready))


class _Session:
    """The set-up of a live session (module docstring): the problem of the first block, the operator or the
    fixed sweeps, and :meth:`image` for every later block's rows."""

    def __init__(self, src, sm, params, settings, backend, impl, empty, tf):
        avg = int(settings.average)
        self.params = replace(params, preprocessing=replace(params.preprocessing, average=avg,
                                                            frames=tuple(range(avg))))
        if settings.operator == "auto" and settings.sweeps != "auto":
            settings = replace(settings, operator="kaczmarz")     # sweeps asked for: the sweeps it is
        problem, self.op, pre = _cached_problem(src, sm, self.params, settings, empty, tf)
        cached = self.op is not None
        if problem is None:
            problem = assemble(src, sm, self.params, empty, tf)
        self.problem = problem
        use = B.resolve(backend)
        first = problem.b[:, 0].copy()
        solver_p = self.params.solver
        linear = not problem.positive and solver_p.method == "kaczmarz" and solver_p.enforce_real
        if settings.operator == "tikhonov" and not linear:
            raise MPISimError("the Tikhonov operator needs a linear reconstruction (no positivity constraint, real "
                              "images, Kaczmarz's λ); use --operator kaczmarz")
        sol, self.solver = None, None
        if self.op is None and settings.operator in ("auto", "tikhonov") and linear and solver_p.lam != "auto":
            self.op, cached = _tikhonov_or_sweeps(problem, sm, float(solver_p.lam), first, settings.operator, pre)
        self.sweeps, self.lam = None, float(solver_p.lam) if self.op is not None else None
        if self.op is None:
            sol = solve(problem, solver_p, use, impl)
            self.sweeps = int(sol.sweeps if settings.sweeps == "auto" else settings.sweeps)
            self.solver, self.lam = sol.solver, sol.lam
            if settings.operator in ("auto", "tikhonov") and linear:        # λ was chosen on the first block
                self.op, cached = _tikhonov_or_sweeps(replace(problem, A=self.solver.A), sm, float(self.lam), first,
                                                      settings.operator)
        self.rows = (problem.cidx, sm.bins[problem.kidx])
        self.A = self.solver.A if self.solver is not None else problem.A
        self.grid, self.src, self.tf = sm.grid, src, tf
        self.per = float(iron_mass_map(1.0, sm.grid.voxel_volume))
        self.info = {"rows": int(problem.cidx.size), "voxels": int(sm.grid.size), "lambda": float(self.lam),
                     "sweeps": self.sweeps, "average": avg, "policy": settings.policy, "backend": use,
                     "measurement": src.path, "system_matrix": sm.origin, "frame_time_s": src.frame_time}
        if self.op is not None:
            self.image0 = self.op(first)
            op = self.op
            self.info.update({"operator": "tikhonov", "operator_rank": op.rank, "operator_cached": cached,
                              "operator_truncation_error": op.truncation_error, "operator_bytes_per_image": op.nbytes,
                              "operator_storage": op.storage, "operator_quantization_error": op.quantization_error,
                              "operator_why": f"the Tikhonov solution (what the sweeps converge to) through a "
                                              f"truncated eigen-decomposition of the rows: rank {op.rank} of {op.size}, "
                                              f"its larger factor as {op.storage}, "
                                              f"{op.nbytes / 1e6:.0f} MB read per image"
                                              f"{' (from the cache)' if cached else ''}"})
            if sol is not None:
                k0 = sol.img[:, 0]
                self.info["against_kaczmarz_first_block"] = {
                    "correlation": float(np.corrcoef(self.image0, k0)[0, 1]) if np.std(k0) > 0 else float("nan"),
                    "total_ratio": float(self.image0.sum() / k0.sum()) if k0.sum() != 0 else float("nan")}
        else:
            self.image0 = sol.img[:, 0]
            self.info.update({"operator": "kaczmarz", "sweeps_rule": (
                f"the stopping rule on the first block ({sol.why})" if settings.sweeps == "auto" else "fixed"),
                "operator_why": f"{self.sweeps} Kaczmarz sweeps per image" +
                ("" if linear else " (a nonlinear reconstruction: positivity or complex images)")})

    def image(self, b):
        """The image (N,) of one block's rows b (M,) or (M, 1), or images (N, F) of (M, F)."""
        b = np.asarray(b)
        if self.op is not None:
            return self.op(b[:, 0] if b.ndim == 2 and b.shape[1] == 1 else b)
        x = self.solver.solve(b if b.ndim == 2 else b[:, None], self.lam, sweeps=self.sweeps, quiet=True,
                              residual=False)[0]
        return x[:, 0] if b.ndim == 1 or b.shape[1] == 1 else x


WARN_SIGMA = 5.0
"""Iron in the followed ROIs above this many σ of its noise starts the fits of its shape (:class:`_Unmixing`). The
level rule — an ROI's amount, averaged over the last :data:`WARN_WINDOW_S`, above this many σ of that mean's noise
and above its shape error (:data:`~mpisim.reco.amounts.SHAPE_BIAS_FACTOR` × the change of the amount between the
fitted shape and a uniform one) — is recorded (``info["_first_fired"]``) but no longer warns: on the randomized
injections of ``benchmarks/study_warnings.py`` spill from the target beside an ROI crossed it with no iron there;
the warnings come from the onset test (:mod:`mpisim.alarms`)."""
WARN_WINDOW_S = 0.5
"""Acquisition time (s) over which a flagged ROI's amount is averaged (at least one image)."""
SHAPE_REFRESH_S = 1.0
"""Acquisition time (s) between two fits of the iron's shape within the followed ROIs (:class:`_Unmixing`)."""
SHAPE_ITERATIONS = 200
"""Projected-gradient iterations of that fit."""


class _Unmixing:
    """The iron of disjoint ROIs in every image, corrected through the reconstruction's resolution (a geometric
    transfer matrix, as :mod:`mpisim.reco.amounts` does offline).

    R is the reconstruction's resolution operator on the voxels S of the ROIs (``R_SS``: the image within S of
    unit iron in each voxel of S; from the Tikhonov operator's eigen-decomposition, or one reconstruction per voxel
    with the sweeps). Every :data:`SHAPE_REFRESH_S` s of acquisition the shape of the iron within the ROIs is fitted
    to the mean of the images since the last fit (until the first fit, at every image), once some ROI holds iron
    above 5 σ of that mean's noise — ψ ≥ 0 on S minimising ‖R_SS ψ − x̄_S‖ (projected gradient) —
    and G_ij = w_i · R ψ_j (ψ_j: ψ within ROI j, unit total) is formed; an image's amounts are then G⁻¹ (W x)
    (voxel units; × iron per voxel → kg), a few dot products. Before the first fit with iron in it, ψ_j is uniform
    within ROI j. The noise σ of an amount comes from the stream's background frames through the same steps (each
    frame's deviation from their mean, / √average; a mean over n images has σ √(1/n + average/E), the subtracted
    background mean being one draw for all of them). What lies outside every ROI is reported as the
    image's total minus the ROIs' amounts ("elsewhere"); its spill into the ROIs is not corrected.
    ``warn``: ROI names to flag when iron starts to arrive there (:mod:`mpisim.alarms`)."""

    def __init__(self, ses, rois, warn=()):
        truth = getattr(ses.src.head, "truth", None)
        parts = [(n, w) for r in rois for n, w, _ in roi_weights(r, ses.grid, truth)]
        self.names = [n for n, _ in parts]
        W = np.array([w for _, w in parts])
        try:
            check_disjoint(W, self.names)
        except MPISimError as e:
            raise MPISimError(str(e).split(": the bias-corrected")[0] + ": the iron of followed ROIs is corrected for "
                              "what spills between them, which needs disjoint ROIs; draw them apart") from None
        for n in warn:
            if n not in self.names:
                raise MPISimError(f"--warn {n!r}: no ROI of that name (ROIs: {', '.join(self.names)})")
        self.S = np.flatnonzero(W.sum(axis=0) > 0)
        self.W, self.WS, self.warn, self.per = W, W[:, self.S], list(warn), ses.per
        self.R = self._resolution(ses)                              # (|S|, |S|)
        self.step = 1.0 / max(float(np.linalg.norm(self.R, 2)) ** 2, 1e-300)
        self._set_shapes(self.WS.copy())                            # uniform within each ROI until iron shows
        self.Ginv_uniform = self.Ginv
        self.shape_sigma = np.zeros(len(parts))
        src, pre = ses.src, ses.params.preprocessing
        image_time = max((src.frame_time or 1.0) * pre.average, 1e-9)
        self.window = max(1, int(round(WARN_WINDOW_S / image_time)))
        self.refresh = max(1, int(round(SHAPE_REFRESH_S / image_time)))
        bg = np.flatnonzero(src.bg[:src.available])
        self.sigma = np.full(len(parts), np.nan)
        self.sigma_fixed = np.full(len(parts), np.nan)                # σ of :meth:`fixed`, from the same frames
        self.dev = self.dev_total = self.devx = None
        self.shared = 0.0
        if bg.size >= 2:
            dev = frame_rows(src, bg, ses.rows, ses.problem.background, ses.tf, 1)[0]   # (M, E) deviations
            self.devx = ses.image(dev) / np.sqrt(pre.average)                     # (N, E) one image's noise
            self.dev_total = self.devx.sum(axis=0) * self.per
            # the background mean (E frames) subtracted from every image is one draw for all of them: a mean over
            # images keeps its variance, σ² × average / E
            self.shared = pre.average / bg.size
            self._noise()
            self.sigma_fixed = self.fixed(self.devx).std(axis=1, ddof=1)
        elif warn:
            raise MPISimError(f"--warn needs the noise of the ROIs' amounts, which comes from the stream's background "
                              f"frames: it has {bg.size} (at least 2 needed)")
        self.pending, self.fits = [], 0
        self.onset = OnsetTest(self.sigma_fixed, [self.names.index(n) for n in self.warn]) if self.warn else None
        self.info = {"rois": self.names, "roi_voxels": int(self.S.size), "warn_window": self.window,
                     "roi_method": f"transfer matrix through the reconstruction's resolution, the iron's shape in the "
                                   f"ROIs fitted (ψ ≥ 0) to the mean image every {self.refresh} image(s); σ from the "
                                   f"background frames", "warn": self.warn,
                     "warn_rule": f"a ramp starting in the ROI's amount (through uniform shapes, fixed for the session) "
                                  f"with z above {ONSET_Z:g}: iron starting to arrive (mpisim.alarms)"}

    def _resolution(self, ses):
        E = np.zeros((ses.grid.size, self.S.size))
        E[self.S, np.arange(self.S.size)] = 1.0
        if ses.op is not None:
            return ses.op.resolution(E, voxels=self.S)
        return np.asarray(ses.image(apply(ses.A, E)))[self.S]

    def _set_shapes(self, psi):
        """ψ (k, |S|) ≥ 0, each row ROI j's shape (normalised here) → G and its inverse."""
        tot = psi.sum(axis=1, keepdims=True)
        psi = np.where(tot > 0, psi / np.where(tot > 0, tot, 1.0), self.WS / self.WS.sum(axis=1, keepdims=True))
        self.G = self.WS @ (self.R @ psi.T)
        self.Ginv = np.linalg.inv(self.G)

    def _noise(self):
        if self.devx is not None:
            self.dev = self.amounts(self.devx)
            self.sigma = self.dev.std(axis=1, ddof=1)

    def sigma_of_mean(self, n):
        """(k,) noise σ (kg) of the ROIs' amounts averaged over n images (independent noise, and the subtracted
        background's, shared by all)."""
        return self.sigma * np.sqrt(1.0 / n + self.shared)

    def amounts(self, x):
        """(k,) or (k, F) kg of the image(s) x (N,) or (N, F)."""
        return self.Ginv @ (self.WS @ np.asarray(x)[self.S]) * self.per

    def fixed(self, x):
        """:meth:`amounts` through the uniform shapes, fixed for the session (no step when the shape is fitted
        again): what the onset tests (:mod:`mpisim.alarms`) follow."""
        return self.Ginv_uniform @ (self.WS @ np.asarray(x)[self.S]) * self.per

    def add(self, x):
        """An image has come: every :attr:`refresh` images the shape is fitted again to their mean."""
        self.pending.append(np.asarray(x)[self.S])
        if len(self.pending) >= self.refresh or self.fits == 0:
            xbar = np.mean(self.pending, axis=0)
            n = len(self.pending)
            self.pending = []
            sig = self.sigma_of_mean(n)
            if not np.all(np.isfinite(sig)) or np.any(self.Ginv_uniform @ (self.WS @ xbar) * self.per > WARN_SIGMA * sig):
                psi = np.clip(xbar, 0.0, None)
                for _ in range(SHAPE_ITERATIONS):            # projected gradient on ‖R ψ − x̄‖²
                    psi = np.clip(psi - self.step * (self.R.T @ (self.R @ psi - xbar)), 0.0, None)
                self._set_shapes(self.WS * psi[None, :])
                self._noise()
                fitted, uniform = self.Ginv @ (self.WS @ xbar), self.Ginv_uniform @ (self.WS @ xbar)
                self.shape_sigma = SHAPE_BIAS_FACTOR * np.abs(fitted - uniform) * self.per
                self.fits += 1

    @property
    def state(self):
        """What the output records of the correction as it ended."""
        return {"roi_sigma_kg": self.sigma.tolist(), "roi_shape_sigma_kg": self.shape_sigma.tolist(),
                "roi_transfer_condition": float(np.linalg.cond(self.G)),
                "roi_shape_fits": self.fits, "roi_shared_noise": self.shared,
                "_noise": None if self.dev is None else (self.dev, self.dev_total),
                "_onset_trace": {} if self.onset is None else {self.names[j]: tr for j, tr in self.onset.trace.items()},
                "_onset_bins": None if self.onset is None else (self.onset.t, self.onset.y, self.onset.n),
                "roi_sigma_fixed_kg": self.sigma_fixed.tolist()}


def _cached_problem(src, sm, params, settings, empty, tf):
    """(problem, operator, pre) of a session whose operator is in the cache: the problem assembled without reading
    the matrix rows (the selection, the first block's data, the background; the rows an on-disk matrix would drop
    as zero, and the rows' total-iron visibility that decides positivity, stored with the operator), so the set-up
    skips reading them — 343 MB for the README's bruker-3d rows, most of the set-up, during which the stream's
    frames go by unreconstructed. (None, None, pre) when it is not cached (pre: the problem without its rows, whose
    rows key the operator computed next), (None, None, None) when the session does not take this path (λ chosen by
    the sweeps, weighted rows, a nonlinear reconstruction or the sweeps asked for)."""
    sp = params.solver
    if not (settings.operator in ("auto", "tikhonov") and sp.lam != "auto" and sp.method == "kaczmarz" and
            sp.enforce_real and sp.enforce_positive in ("auto", False) and params.preprocessing.weighting == "none"):
        return None, None, None
    if _matrix_stat(sm) is None:                               # a matrix in memory: nothing cached
        return None, None, None
    pre = assemble(src, sm, params, empty, tf, matrix=False)
    loaded = _load_operator(_operator_path(pre, sm, float(sp.lam), before_drop=True), sm)
    if loaded is None or loaded[1] is None or loaded[1].shape != pre.cidx.shape or \
            2 * int(loaded[1].sum()) != loaded[0].Pt.shape[1]:
        return None, None, pre
    op, kept, visibility = loaded
    if sp.enforce_positive == "auto" and not visibility >= VISIBILITY_MIN:
        return None, None, pre
    return replace(pre, b=pre.b[kept], cidx=pre.cidx[kept], kidx=pre.kidx[kept], visibility=visibility,
                   positive=False), op, pre


def _tikhonov_or_sweeps(problem, sm, lam, check, operator, pre=None):
    """:func:`_tikhonov`, or (None, False) — the sweeps — when its memory is not there and the operator was only
    "auto"."""
    try:
        return _tikhonov(problem, sm, lam, check, pre)
    except NotEnoughMemory:
        if operator == "tikhonov":
            raise
        return None, False


def _tikhonov(problem, sm, lam, check, pre=None):
    """(:class:`~mpisim.reco.tikhonov.TikhonovOperator` of the problem's rows, whether it came from the cache).
    Operators of a matrix file are cached in mpisim's cache folder (``op-KEY.npz``, :func:`mpisim.cache.cache_dir`),
    keyed by the file (path, size, modification time), the rows, their weights and λ: the first session with a
    matrix computes it (50 s for the README's bruker-3d 19³ rows on 2 cores: ``benchmarks/bench_live.py``), the next
    ones read it. ``pre``: the problem before its rows were read (:func:`_cached_problem`): its rows key the entry,
    which also keeps which of them the problem kept and their visibility, so a later session finds it without
    reading the rows."""
    path = _operator_path(pre if pre is not None else problem, sm, lam, before_drop=pre is not None)
    loaded = _load_operator(path, sm)
    M, N = problem.A.shape
    if loaded is not None and loaded[0].Pt.shape[1] == 2 * M:
        return loaded[0], True
    # the Gram matrix and its eigenvectors (N × N float64, and a copy in eigh), P (2M × N at most) in float32 and
    # as int16, a block
    check_memory(3 * N * N * 8 + 2 * M * N * (4 + 2) + 2 * 2048 * N * 8, f"the live Tikhonov operator of {N} voxels",
                 hint="use --operator kaczmarz or a coarser grid")
    op = TikhonovOperator(problem.A, problem.weights, lam, check=check)
    extra = {}
    if pre is not None:
        n = int(max(pre.kidx.max(), problem.kidx.max())) + 1
        extra = {"kept": np.isin(pre.cidx.astype(np.int64) * n + pre.kidx, problem.cidx.astype(np.int64) * n +
                                 problem.kidx), "visibility": np.float64(problem.visibility)}
    if path is not None:
        with contextlib.suppress(OSError, MPISimError):
            cache.ensure_dir()
            with atomic_path(path, overwrite=True, record=False) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **op.arrays(), **extra)
    return op, False


def _load_operator(path, sm):
    """(operator, kept rows or None, visibility or NaN) of a cache entry, or None (no entry, one that cannot be read
    or one not of ``sm``'s voxels: computed again and replaced)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {k: z[k] for k in z.files}
        kept = parts.pop("kept", None)
        visibility = float(parts.pop("visibility", np.nan))
        op = TikhonovOperator.from_arrays(**parts)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, MPISimError):
        return None
    if op.size != sm.grid.size:
        return None
    return op, (None if kept is None else kept.astype(bool)), visibility


def _matrix_stat(sm):
    """os.stat of the matrix's file, or None (a matrix in memory, or of several files)."""
    try:
        return os.stat(sm.origin)
    except (OSError, TypeError, ValueError):
        return None


def _operator_path(problem, sm, lam, before_drop=False):
    """The cache file of a problem's Tikhonov operator, or None (a matrix in memory). ``before_drop``: the problem's
    rows are those selected before an on-disk matrix's zero rows are dropped (:func:`_cached_problem`)."""
    st = _matrix_stat(sm)
    if st is None:
        return None
    digest = hashlib.sha256()
    for a in (problem.cidx, np.asarray(sm.bins)[problem.kidx], np.asarray(sm.shape),
              problem.weights if problem.weights is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(a, np.float64).tobytes())
    key = cache.make_key({"live_operator": 2, "matrix": [os.path.realpath(sm.origin), st.st_size, st.st_mtime_ns,
                                                          st.st_ino], "rows": digest.hexdigest(), "lambda": lam,
                          "floor": FILTER_FLOOR, "voxels": int(sm.grid.size), "before_drop": bool(before_drop)})
    return cache.cache_dir() / f"op-{key}.npz"


def _wait_first_block(src, avg, settings):
    """The foreground frame indices once the first block is in (the background frames come first)."""
    end = time.monotonic() + settings.start_timeout
    while True:
        src.refresh()
        fg = np.flatnonzero(~src.bg)
        if fg.size >= avg:
            return fg
        if src.complete:
            raise MPISimError(f"{src.path}: the measurement holds {fg.size} foreground frame(s), fewer than the "
                              f"{avg} averaged into one image")
        if time.monotonic() > end:
            raise MPISimError(f"{src.path}: no block of {avg} foreground frame(s) within {settings.start_timeout:g} s")
        if interrupt.pending() is not None:
            interrupt.check()
        time.sleep(settings.poll)


class _Arrivals:
    """When the session first saw each stored frame in the file: the frame counts its looks found, with their times
    (s since the epoch)."""

    def __init__(self):
        self.counts, self.times = [], []

    def see(self, count):
        """A look found ``count`` stored frames (more than before)."""
        if not self.counts or count > self.counts[-1]:
            self.counts.append(int(count))
            self.times.append(time.time())

    def at(self, frame, default):
        """The time of the first look that found the stored frame ``frame`` (``default`` if none did)."""
        i = bisect.bisect_right(self.counts, int(frame))
        return self.times[i] if i < len(self.times) else default


class _Collector:
    """The images and times of a session as they come, each ROI's amount and the warnings raised."""

    def __init__(self, unmix, per, first=0, frame_time=None):
        self.unmix, self.per, self.first, self.frame_time = unmix, per, first, frame_time or float("nan")
        self.images, self.blocks, self.frames, self.written, self.done, self.arrived = [], [], [], [], [], []
        self.arrivals = _Arrivals()
        self.amounts, self.totals, self.warnings = [], [], {}
        self.first_fired = {}                          # ROI → {rule: the stored index of the frame it first fired at}

    def add(self, block, frame, src, image):
        now = time.time()
        w = src.written_at(int(frame))
        self.images.append(np.asarray(image, np.float64))
        self.blocks.append(int(block))
        self.frames.append(int(frame))
        self.written.append(now if w is None else w)
        self.done.append(now)
        self.arrived.append(self.arrivals.at(int(frame), now))
        self.totals.append(float(self.images[-1].sum() * self.per))
        u = self.unmix
        if u is not None:
            u.add(self.images[-1])                  # a shape fit, when one is due, comes first
            self.amounts.append(u.amounts(self.images[-1]))
            recent = np.array(self.amounts[-u.window:])
            t = (int(frame) - self.first + 1) * self.frame_time
            hits = u.onset.add(t, u.fixed(self.images[-1])) if u.onset is not None and np.isfinite(t) else {}
            for j, n in enumerate(u.names):
                if n not in u.warn:
                    continue
                onset = hits.get(j)                  # (the test goes on after a warning: its trace is recorded)
                # the level rule (the mean of WARN_WINDOW_S above 5 σ and the shape error) is recorded, not warned on:
                # spill from a target beside the ROI crosses it without any iron there (benchmarks/study_warnings.py)
                level = recent[:, j].mean() > max(WARN_SIGMA * u.sigma_of_mean(len(recent))[j], u.shape_sigma[j])
                for rule, fired in (("onset", onset is not None), ("level", level)):
                    if fired:
                        self.first_fired.setdefault(n, {}).setdefault(rule, int(frame))
                if onset is not None and n not in self.warnings:
                    self.warnings[n] = {"block": int(block), "frame": int(frame), "time": now,
                                        "amount_kg": float(recent[:, j].mean()), "rule": "onset",
                                        "onset_s": onset["onset_s"], "z": onset["z"],
                                        "rate_kg_per_s": onset["rate_kg_per_s"]}

    RECENT = 200
    """Images the progress's latency and rate figures look back on."""

    def progress(self, src, dropped):
        """The session so far, cheaply (a look at the last :data:`RECENT` images)."""
        lat = np.subtract(self.done[-self.RECENT:], self.written[-self.RECENT:])
        span = self.done[-1] - self.done[-self.RECENT:][0]
        u = self.unmix
        return {"images": len(self.blocks), "block": self.blocks[-1], "frames_seen": int(np.count_nonzero(~src.bg)),
                "frames_dropped": int(dropped), "latency_median_s": float(np.median(lat)),
                "latency_p95_s": float(np.percentile(lat, 95)),
                "images_per_second": (min(len(self.done), self.RECENT) - 1) / span if span > 0 else float("nan"),
                "image": self.images[-1], "total_kg": self.totals[-1], "frame": self.frames[-1],
                "stream_time": (self.frames[-1] - self.first + 1) * self.frame_time,
                "rois": {} if u is None else dict(zip(u.names, self.amounts[-1].tolist())),
                "roi_sigma": [] if u is None else u.sigma.tolist(), "window": 1 if u is None else u.window,
                "warnings": dict(self.warnings), "done": self.done[-1], "written": self.written[-1]}

    def result(self, src, dropped, ended, ses):
        u = self.unmix
        rois = {} if u is None else {n: np.array([a[j] for a in self.amounts]) for j, n in enumerate(u.names)}
        if u is not None:
            rois["elsewhere"] = np.array(self.totals) - sum(rois.values())
        return LiveResult(np.array(self.images), np.array(self.blocks), np.array(self.frames),
                          np.array(self.written), np.array(self.done), int(np.count_nonzero(~src.bg)), int(dropped),
                          ended, ses.grid, ses.params, src.head, rois,
                          {**ses.info, **({} if u is None else u.state), "warnings": dict(self.warnings),
                           "_first_fired": self.first_fired},
                          np.array(self.totals), np.array(self.arrived))
