"""The forward model: drive/selection fields → Langevin magnetisation → coil voltage → spectrum.

One code path serves both the measurement simulation (:func:`simulate`) and the system-matrix
builder (:mod:`mpisim.systemmatrix`): :func:`unit_moments` gives the per-voxel mean-moment time
series, :func:`response` turns a moment spectrum into receive-voltage spectra. A phantom's signal
is the concentration-weighted sum over voxels of exactly what a system-matrix column holds.

Conventions (see docs/conventions.md): H(r, t) = G r + H_D(t) in T/µ0; a voxel of iron
concentration c (mol Fe/L) and volume ΔV (m³) holds the moment
m(t) = c ΔV/(1 L) · M_Fe · κ · Σ_i q_i L(β_i|H|) Ĥ with κ the saturated moment per iron mass;
the coil voltage is u_l(t) = −s_l · dm/dt (s_l the coil sensitivity in T/A); spectra are the
unnormalised rfft of one period, û_k = Σ_t u(t) e^{−2πi k t / V}; relaxation multiplies the moment
spectrum by 1/(1 + i ω τ).
"""

from dataclasses import asdict, dataclass, replace
import math
import sys
import time

import numpy as np

from . import backend as B
from . import constants as C
from . import interrupt
from .dynamics import unit_moments_model
from .errors import MPISimError, check_int, check_positive
from .io import transfer_file
from .io.atomic import check_free_space, check_output_path
from .io.mdf_write import write_mdf
from .io.stream import StreamWriter, frame_time
from .measurement import Measurement
from .metadata import Provenance
from .particles import langevin_over_xi
from .progress import Progress
from .resources import check_memory, keep_heap_pages
from .scanner import get_scanner

__all__ = ["DTYPES", "FrameSource", "SeriesSource", "SimulationSettings", "simulate_series", "stream_frames", "STREAM_BLOCK_SECONDS", "background_signal", "feedthrough_spectrum", "field_offsets",
           "load_transfer_function", "moment_per_concentration", "receive_chain", "response", "simulate",
           "unit_moments", "unit_moments_xp"]

DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass(frozen=True)
class SimulationSettings:
    """Everything besides scanner, tracer and phantom that changes a simulated measurement.

    frames : foreground frames N_O. background_frames : empty-scanner frames E (stored first).
    averages : acquisitions averaged per frame (noise σ/√averages).
    noise_density : white noise in V/√Hz (0 = none). background_level : V, static scanner
    background harmonics (0 = none). feedthrough : add the drive feed-through and the band-stop
    filter. transfer_function : path of a transfer-function file ("" = flat).
    seed : noise seed (-1 = random). dtype : "float64" | "float32".
    """

    frames: int = 1
    background_frames: int = 0
    averages: int = 1
    noise_density: float = 0.0
    background_level: float = 0.0
    feedthrough: bool = False
    transfer_function: str = ""
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        for name in ("frames", "background_frames", "averages"):
            minimum = 0 if name == "background_frames" else 1
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum, 2 ** 31 - 1))
        check_positive("noise level (V/√Hz)", self.noise_density, allow_zero=True)
        check_positive("background level (V)", self.background_level, allow_zero=True)
        if self.dtype not in DTYPES:
            raise MPISimError(f"dtype must be float64 or float32, got {self.dtype!r}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def realistic(cls, scanner, **kw):
        """Settings with the scanner's documented noise, background and feed-through."""
        rx = scanner.receiver
        kw.setdefault("noise_density", rx.noise_density)
        kw.setdefault("background_level", rx.background_level)
        kw.setdefault("feedthrough", True)
        kw.setdefault("transfer_function", rx.transfer_function)
        return cls(**kw)


# --- the physics shared with the system-matrix builder ---------------------------------------------

def field_offsets(scanner, positions):
    """Selection field G r at ``positions`` (P, 3) m → (P, 3) in T/µ0."""
    return np.asarray(positions, dtype=float) @ scanner.gradient.T


def moment_per_concentration(tracer, voxel_volume):
    """Saturated moment (A·m²) of a voxel of ``voxel_volume`` (m³) at 1 mol Fe/L."""
    iron_mass = voxel_volume / C.LITRE * C.FE_MOLAR_MASS
    return iron_mass * tracer.moment_per_iron_mass


def unit_moments(scanner, tracer, offsets, xp=np, dtype=np.float64, weights=None):
    """Mean-moment time series per saturated moment, from the field offsets (P, 3) in T/µ0.

    Returns (P, 3, V) per voxel, or the ``weights``-weighted sum over voxels (3, V) when
    ``weights`` (P,) is given. Uses the compiled numba kernel on the CPU when available, the
    numpy/cupy twin :func:`unit_moments_xp` otherwise.
    """
    if tracer.model != "langevin":                 # Fokker–Planck or anisotropic equilibrium (CPU)
        return xp.asarray(unit_moments_model(scanner, tracer, B.to_numpy(offsets), dtype=dtype, weights=weights))
    hd = scanner.drive_waveform
    betas, q = tracer.betas_and_weights()
    if xp is np and B.numba_available():
        from . import cpu_kernels as K  # imports numba: loaded on first use

        off = np.ascontiguousarray(offsets, dtype=np.float64)
        if weights is None:
            out = np.empty((off.shape[0], 3, hd.shape[1]), dtype=dtype)
            K.unit_moments(hd, off, betas, q, out)
        else:
            out = np.zeros((3, hd.shape[1]), dtype=np.float64)
            K.weighted_unit_moment_sum(hd, off, np.ascontiguousarray(weights, dtype=np.float64), betas, q, out)
            out = out.astype(dtype, copy=False)
        return out
    return unit_moments_xp(hd, offsets, betas, q, xp=xp, dtype=dtype, weights=weights)


def unit_moments_xp(hd, offsets, betas, q, xp=np, dtype=np.float64, weights=None, block=16):
    """Array-module twin of the numba kernels (numpy or cupy), computed in voxel blocks."""
    hd = xp.asarray(hd, dtype=np.float64)
    offsets = xp.asarray(offsets, dtype=np.float64)
    P, V = offsets.shape[0], hd.shape[1]
    out = xp.zeros((3, V), np.float64) if weights is not None else xp.empty((P, 3, V), dtype)
    w = None if weights is None else xp.asarray(weights, dtype=np.float64)
    for a in range(0, P, block):
        h = offsets[a:a + block, :, None] + hd[None]              # (b, 3, V)
        hn = xp.sqrt(xp.sum(h * h, axis=1))                      # (b, V)
        s = 0.0
        for bi, qi in zip(betas, q):
            s = s + qi * bi * langevin_over_xi(bi * hn, xp=xp)
        if w is None:
            out[a:a + block] = (s[:, None, :] * h).astype(dtype, copy=False)
        else:
            out += xp.einsum("p,pcv->cv", w[a:a + block], s[:, None, :] * h)
    return out if w is None else out.astype(dtype, copy=False)


def receive_chain(scanner, frequencies, transfer_function=None, bandstop=False):
    """(C, K) complex factor of the analog chain: transfer function × feed-through band-stop."""
    f = np.asarray(frequencies, dtype=float)
    chain = np.ones((scanner.num_rx_channels, f.size), complex)
    if transfer_function is not None:
        chain *= transfer_function.at(f, scanner.num_rx_channels)
    if bandstop:
        rx = scanner.receiver
        for fd in scanner.drive_field.frequencies:
            chain[:, np.abs(f - fd) <= rx.bandstop_width / 2] *= rx.bandstop_attenuation
    return chain


def response(scanner, tracer, frequencies, chain=None):
    """(C, 3, K) complex: receive-voltage spectrum per unit moment spectrum (V per A·m²).

    R[l, c, k] = −s_{l,c} · 2πi f_k · 1/(1 + 2πi f_k τ) · chain[l, k]. The Nyquist bin of an even
    period is zeroed (the derivative of a real signal has no well-defined Nyquist component).
    """
    f = np.asarray(frequencies, dtype=float)
    d = 2j * np.pi * f * tracer.debye_factor(f)
    if scanner.num_samples % 2 == 0:
        d = np.where(np.isclose(f, scanner.receiver.bandwidth), 0.0, d)
    r = -scanner.receiver.sensitivities[:, :, None] * d[None, None, :]
    if chain is not None:
        r = r * chain[:, None, :]
    return r


def load_transfer_function(path):
    """The :class:`~mpisim.transfer.TransferFunction` of the file ``path``; None for "" (a flat chain)."""
    if not path:
        return None
    return transfer_file.load_transfer_function(path)


# --- measurement simulation ------------------------------------------------------------------------

def state_tracers(tracer, phantom):
    """{state: Tracer} for the phantom's tracer states: ``tracer`` in each state (:meth:`Tracer.in_state`), or
    a dict {state: Tracer} given as ``tracer`` (each state's own tracer, viscosity...). A one-state phantom
    uses ``tracer`` as it is."""
    if phantom.states is None:
        if isinstance(tracer, dict):
            raise MPISimError("tracers per state were given, but the phantom's iron is in no state "
                              "(build it with Phantom.mixed)")
        return {"mobile": tracer}
    if isinstance(tracer, dict):
        missing = [k for k in phantom.states if k not in tracer]
        if missing:
            raise MPISimError(f"no tracer given for state {missing[0]!r} of phantom {phantom.name!r}")
        return {k: tracer[k] for k in phantom.states}
    return {k: tracer.in_state(k) for k in phantom.states}


def simulate(scanner, tracer, phantom, settings=None, *, backend="auto", progress=False,
             chunk_voxels=4096, out=None, overwrite=False, block_frames=16, pace=None, **kw):
    """Simulate an MPI measurement of ``phantom`` (concentrations in mol Fe/L on its grid).

    Parameters
    ----------
    scanner : :class:`mpisim.scanner.Scanner` or preset name.
    tracer : :class:`mpisim.particles.Tracer`; for a phantom whose iron is in several states
        (:meth:`mpisim.phantoms.Phantom.mixed`: mobile, immobilised) it is put in each state
        (:meth:`~mpisim.particles.Tracer.in_state`), or give {state: Tracer}.
    phantom : :class:`mpisim.phantoms.Phantom` (grid + concentration in mol Fe/L).
    settings : :class:`SimulationSettings`; keyword arguments override its fields
        (``frames``, ``noise_density``, ...). Default: one ideal, noise-free frame.
    backend : "auto" | "numpy" | "cupy".
    out : write the measurement to this MDF file instead of returning its frames: frames are
        generated and written ``block_frames`` at a time, so memory does not grow with the number
        of frames (the file is the same as ``write_mdf(out, simulate(...))``).
    pace : with ``out``, write the file as a scanner records it (:func:`stream_frames`): frames appended in
        place at the sequence's pace × ``pace`` (1: real time; 2: twice as fast), readable at every moment
        (``mpisim live`` follows it). None: written whole under a temporary name, as fast as computed.

    Returns
    -------
    :class:`mpisim.measurement.Measurement` with time data (N, 1, C, V) in V, background frames
    first, and the scanner, tracer, phantom and settings attached. With ``out``: the same
    measurement's metadata, data a zero-size stand-in (``provenance.written_to`` = ``out``).
    """
    scanner = get_scanner(scanner)
    settings = settings or SimulationSettings()
    if kw:
        settings = SimulationSettings(**{**settings.to_dict(), **kw})
    _check_out(scanner, settings, out, overwrite, progress)
    source = FrameSource(scanner, tracer, phantom, settings, backend=backend, progress=progress,
                         chunk_voxels=chunk_voxels)
    return _deliver(source, scanner, out, overwrite, block_frames, pace)


def _check_out(scanner, settings, out, overwrite, progress):
    """Before any work: the output path is writable and its disk holds the frames."""
    if out is None:
        return
    check_output_path(out, overwrite)
    N = settings.background_frames + settings.frames
    nbytes = (int(N) * int(scanner.num_rx_channels) * int(scanner.num_samples)
              * int(np.dtype(DTYPES[settings.dtype]).itemsize))
    check_free_space([(out, nbytes)], "the simulated measurement")
    if progress and nbytes > 2 ** 30:
        print(f"{out}: {N} frames, {nbytes / 2**30:.1f} GiB to write", file=sys.stderr)


def _deliver(source, scanner, out, overwrite, block_frames, pace=None):
    """The measurement of a frame source: written to ``out`` block by block (its metadata returned; streamed
    at ``pace`` when given, :func:`stream_frames`), or made in memory."""
    if pace is not None and out is None:
        raise MPISimError("a pace needs an output file to stream the frames to")
    if out is not None:
        meas = source.measurement(np.empty((source.num_frames, 1, scanner.num_rx_channels, 0), source.dtype))
        if pace is not None:
            meas.provenance = replace(meas.provenance, stream=stream_frames(out, meas, source, pace, overwrite))
        else:
            write_mdf(out, meas, overwrite=overwrite, frames=source, block_frames=block_frames)
        meas.provenance = replace(meas.provenance, written_to=str(out))
        return meas
    check_memory(source.num_frames * scanner.num_rx_channels * scanner.num_samples * np.dtype(source.dtype).itemsize,
                 "the simulated measurement")
    return source.measurement(source.frames(0, source.num_frames))


STREAM_BLOCK_SECONDS = 0.02
"""Acquisition time a streamed block of frames spans at most (s): bruker-3d streams frame by frame (21.5 ms),
bruker-2d 30 frames at a time (0.65 ms each)."""


def stream_frames(out, meas, source, pace=1.0, overwrite=False):
    """Write the frames of ``source`` to ``out`` as a scanner records them (:class:`mpisim.io.stream.StreamWriter`):
    block by block of at most :data:`STREAM_BLOCK_SECONDS` of acquisition, each appended once the sequence
    (sped up ``pace`` times) has acquired it, so that a reader sees the frames arrive in time. A source slower
    than the sequence writes each block as soon as it is computed. Returns {"frames", "seconds", "behind_s"}:
    how far behind the sequence's clock the last block was written (0 when it kept pace)."""
    check_positive("pace (× real time)", pace)
    keep_heap_pages()                                  # a block's few MB each step: no page faults again each time
    ft = frame_time(meas)
    per = max(1, int(STREAM_BLOCK_SECONDS / ft))
    N = source.num_frames
    behind = 0.0
    with StreamWriter(out, meas, overwrite=overwrite, extension=getattr(source, "extension", None)) as w:
        t0 = time.monotonic()
        for a in range(0, N, per):
            b = min(N, a + per)
            block = source.frames(a, b)
            due = t0 + b * ft / pace
            now = time.monotonic()
            behind = max(0.0, now - due)                 # how late this block is (the last block's is reported)
            if now < due:
                time.sleep(due - now)
            if interrupt.pending() is not None:        # the frames streamed so far stay: a recording stopped
                raise interrupt.Interrupted(interrupt.pending(), f"{out} keeps the {w.num_frames} frame(s) streamed "
                                            f"(/_mpisim/stream/complete 0)")
            w.append(block, meas.is_background[a:b])
        seconds = time.monotonic() - t0
    return {"frames": N, "seconds": seconds, "behind_s": behind, "pace": pace, "frames_per_block": per}


class FrameSource:
    """The frames of a simulated measurement, made on demand and in order: the particle signal is
    computed once (one forward-model pass over the phantom's non-zero voxels), each frame adds the
    background, feed-through and its own noise draw (one seeded stream, frame after frame, so a
    measurement written in blocks equals one made whole)."""

    def __init__(self, scanner, tracer, phantom, settings, *, backend="auto", progress=False, chunk_voxels=4096):
        xp = B.xp_of(backend)
        self.scanner, self.tracer, self.phantom, self.settings = scanner, tracer, phantom, settings
        self.backend = B.resolve(backend)
        self.dtype = DTYPES[settings.dtype]
        V, freqs = scanner.num_samples, scanner.frequencies
        self.tf = load_transfer_function(settings.transfer_function)
        chain = receive_chain(scanner, freqs, self.tf, bandstop=settings.feedthrough)
        tracers = state_tracers(tracer, phantom)
        if isinstance(tracer, dict):                       # the file's /tracer: the mobile state's (or the first)
            self.tracer = tracers.get("mobile", next(iter(tracers.values())))
        parts = {k: phantom.grid.flatten(c) for k, c in phantom.state_concentrations().items()}
        bar = Progress(sum(int(np.count_nonzero(c)) for c in parts.values()), "simulate", enabled=progress)
        particle = 0
        for state, conc in parts.items():               # one forward-model pass per tracer state, summed
            t = tracers[state]
            nz = np.flatnonzero(conc)
            pos = phantom.grid.positions()[nz]
            weights = conc[nz] * moment_per_concentration(t, phantom.grid.voxel_volume)
            offsets = field_offsets(scanner, pos)
            moment = xp.zeros((3, V), np.float64)
            for a in range(0, len(nz), chunk_voxels):
                b = min(a + chunk_voxels, len(nz))
                moment += xp.asarray(unit_moments(scanner, t, offsets[a:b], xp=xp, weights=weights[a:b]))
                bar.update(b - a)
            moment_spec = B.to_numpy(B.rfft(moment, xp=xp))                   # (3, K) A·m²
            particle = particle + np.einsum("lck,ck->lk", response(scanner, t, freqs, chain), moment_spec)
        bar.close()
        empty = np.zeros_like(particle)
        if settings.feedthrough:
            empty += feedthrough_spectrum(scanner) * chain
        u_fg = B.irfft(particle + empty, V)                                    # (C, V)
        u_bg = B.irfft(empty, V)
        if settings.background_level > 0:
            bg = background_signal(scanner, settings.background_level)
            u_fg, u_bg = u_fg + bg, u_bg + bg
        self.u_fg, self.u_bg = u_fg, u_bg
        self._stream(scanner, settings)

    def _stream(self, scanner, settings):
        """Frame counts and the seeded noise stream (one draw per frame, frame after frame)."""
        self.num_background = settings.background_frames
        self.num_frames = settings.background_frames + settings.frames
        self.sigma = settings.noise_density * math.sqrt(scanner.receiver.bandwidth) / math.sqrt(settings.averages)
        self._rng = np.random.default_rng(None if settings.seed < 0 else settings.seed) if self.sigma > 0 else None
        self._next = 0

    def _clean(self, a, b):
        """Frames a..b−1 without noise, (b − a, 1, C, V)."""
        E = self.num_background
        C, V = self.u_fg.shape
        data = np.empty((b - a, 1, C, V), self.dtype)
        idx = np.arange(a, b)
        data[idx < E, 0] = self.u_bg
        data[idx >= E, 0] = self.u_fg
        return data

    def frames(self, a, b):
        """Frames a..b−1 as (b − a, 1, C, V); blocks must come in order (one noise stream)."""
        if a != self._next:
            raise MPISimError(f"frames must be made in order: asked for {a}, next is {self._next}")
        data = self._clean(a, b)
        if self._rng is not None:
            for n in range(b - a):
                data[n] += (self.sigma * self._rng.standard_normal(data.shape[1:])).astype(self.dtype)
        self._next = b
        return data

    def measurement(self, data):
        sc, st = self.scanner, self.settings
        return Measurement(
            data=data, is_background=np.arange(self.num_frames) < self.num_background,
            bandwidth=sc.receiver.bandwidth, num_samples=sc.num_samples,
            drive_frequencies=sc.drive_field.frequencies,
            drive_strengths=np.array([c.amplitude for c in sc.drive_field.channels]),
            gradient=sc.gradient,
            transfer_function=None if self.tf is None else self.tf.at(sc.frequencies, sc.num_rx_channels),
            num_averages=st.averages, scanner=sc, tracer=self.tracer,
            provenance=Provenance(is_simulation=True), phantom=self.phantom, settings=st)


def simulate_series(scanner, tracer, dynamic, grid, settings=None, *, out=None, overwrite=False, backend="auto",
                    progress=False, block_frames=16, chunk_voxels=256, pace=None):
    """Simulate a scan of a distribution that changes with time: ``dynamic.phantom(grid, t)`` gives the
    :class:`~mpisim.phantoms.Phantom` at time t (s; e.g. :class:`mpisim.injection.Injection`) on ``grid``, the
    region it can reach. Foreground frame n is taken at t = n × (drive cycle × averages) (background frames first,
    without the sample); settings, noise and output as :func:`simulate`. ``dynamic.amounts(t)``, when it exists,
    is recorded for every frame (``/_mpisim/series``: time and each amount, kg), beside the last frame's
    truth. The frames share the particle response: each voxel of ``grid`` is simulated once
    (:class:`SeriesSource`), a frame is a product of those responses with its concentrations. ``pace``: as
    :func:`simulate` (a stream a live reconstruction follows)."""
    scanner = get_scanner(scanner)
    settings = settings or SimulationSettings()
    _check_out(scanner, settings, out, overwrite, progress)
    source = SeriesSource(scanner, tracer, dynamic, grid, settings, backend=backend, progress=progress,
                          chunk_voxels=chunk_voxels)
    return _deliver(source, scanner, out, overwrite, block_frames, pace)


SERIES_STEP_S = 5e-3
"""A series whose frames come faster than this (bruker-2d: 0.65 ms) takes each frame's distribution as the linear
interpolation of those at the multiples of this step (s) around it: a bolus changes little in 5 ms, and the
distribution is computed 8 times less often (:class:`SeriesSource`)."""


class SeriesSource(FrameSource):
    """The frames of :func:`simulate_series`: the receive spectrum of every voxel of the region at 1 mol/L is
    computed once (the forward model, voxel by voxel), a frame is their sum weighted by that frame's
    concentrations (interpolated in time for frames under :data:`SERIES_STEP_S` apart), plus background,
    feed-through and its own noise draw (one seeded stream, as :class:`FrameSource`)."""

    def __init__(self, scanner, tracer, dynamic, grid, settings, *, backend="auto", progress=False, chunk_voxels=256):
        xp = B.xp_of(backend)
        self.scanner, self.tracer, self.settings, self.dynamic, self.grid = scanner, tracer, settings, dynamic, grid
        self.backend = B.resolve(backend)
        self.dtype = DTYPES[settings.dtype]
        V, freqs = scanner.num_samples, scanner.frequencies
        self.tf = load_transfer_function(settings.transfer_function)
        chain = receive_chain(scanner, freqs, self.tf, bandstop=settings.feedthrough)
        R = response(scanner, tracer, freqs, chain) * moment_per_concentration(tracer, grid.voxel_volume)
        pos = grid.positions()
        check_memory(pos.shape[0] * R.shape[0] * R.shape[2] * 8, "the region's voxel responses")
        self.cols = np.empty((R.shape[0], R.shape[2], pos.shape[0]), np.complex64)      # (C, K, P)
        bar = Progress(len(pos), "voxel responses", enabled=progress)
        for a in range(0, len(pos), chunk_voxels):
            b = min(a + chunk_voxels, len(pos))
            um = xp.asarray(unit_moments(scanner, tracer, field_offsets(scanner, pos[a:b]), xp=xp))
            spec = B.to_numpy(B.rfft(um, axis=-1, xp=xp))                          # (P, 3, K)
            self.cols[:, :, a:b] = np.einsum("lck,pck->lkp", R, spec)
            bar.update(b - a)
        bar.close()
        empty = np.zeros((R.shape[0], R.shape[2]), complex)
        if settings.feedthrough:
            empty += feedthrough_spectrum(scanner) * chain
        self.empty = empty
        self.u_bg = B.irfft(empty, V)
        self.bg = background_signal(scanner, settings.background_level) if settings.background_level > 0 else 0.0
        self.u_bg = self.u_bg + self.bg
        self._stream(scanner, settings)
        self.frame_time = scanner.drive_field.cycle * settings.averages
        self.times = np.arange(settings.frames) * self.frame_time
        self._steps = {}
        self.phantom = dynamic.phantom(grid, float(self.times[-1]) if len(self.times) else 0.0)
        self.extension = None
        if hasattr(dynamic, "amounts"):
            rows = [dynamic.amounts(float(t)) for t in self.times]
            self.extension = {"series/time": self.times.astype(float),
                              **{f"series/{k}": np.array([r[k] for r in rows], float) for k in (rows[0] if rows else {})}}

    def _clean(self, a, b):
        E, V = self.num_background, self.scanner.num_samples
        data = np.empty((b - a, 1, self.cols.shape[0], V), self.dtype)
        for n in range(a, b):
            if n < E:
                data[n - a, 0] = self.u_bg
                continue
            data[n - a, 0] = B.irfft(self._spectrum(float(self.times[n - E])) + self.empty, V) + self.bg
        return data

    def _spectrum(self, t):
        """The sample's receive spectrum (C, K) at time t: the distribution's own when frames are
        :data:`SERIES_STEP_S` apart or more, else interpolated linearly between its spectra at the steps around t
        (the signal is linear in the concentrations, so this is the spectrum of the interpolated distribution)."""
        if self.frame_time >= SERIES_STEP_S:
            return self._spectrum_at(t)
        k = int(np.floor(t / SERIES_STEP_S))
        f = t / SERIES_STEP_S - k
        if self._steps.get("k") != k:
            self._steps = {"k": k, "a": self._steps.get("b") if self._steps.get("k") == k - 1 else
                           self._spectrum_at(k * SERIES_STEP_S), "b": self._spectrum_at((k + 1) * SERIES_STEP_S)}
        return (1 - f) * self._steps["a"] + f * self._steps["b"]

    def _spectrum_at(self, t):
        conc = self.dynamic.phantom(self.grid, t).concentration_vector()
        nz = np.flatnonzero(conc)
        if 4 * nz.size < conc.size:                          # a few voxels: gather their responses
            return self.cols[:, :, nz] @ conc[nz].astype(np.complex64)
        return self.cols @ conc.astype(np.complex64)         # most of them: no gathered copy of the responses


def feedthrough_spectrum(scanner):
    """(C, K) spectrum of the direct drive-field pick-up: ``feedthrough_level`` V at each drive
    frequency, in every coil with a sensitivity component along the driven axis."""
    K, V = scanner.num_frequencies, scanner.num_samples
    out = np.zeros((scanner.num_rx_channels, K), complex)
    sens = scanner.receiver.sensitivities
    for ch in scanner.drive_field.channels:
        ax = "xyz".index(ch.axis)
        k = int(round(V * scanner.drive_field.base_frequency / ch.divider / scanner.receiver.sampling_rate))
        norm = sens[:, ax] / np.abs(sens).max()
        out[:, k] += scanner.receiver.feedthrough_level * norm * V / 2 * np.exp(1j * ch.phase)
    return out


def background_signal(scanner, level, seed=20240101):
    """(C, V) static background of the empty scanner: harmonics 1–5 of each drive frequency with
    amplitudes ``level``/n and fixed pseudo-random phases (the same every frame and every run)."""
    rng = np.random.default_rng(seed)
    V, t = scanner.num_samples, scanner.times
    out = np.zeros((scanner.num_rx_channels, V))
    for f in scanner.drive_field.frequencies:
        for n in range(1, 6):
            if n * f < scanner.receiver.bandwidth:
                ph = rng.uniform(0, 2 * np.pi, scanner.num_rx_channels)
                out += level / n * np.cos(2 * np.pi * n * f * t[None, :] + ph[:, None])
    return out
