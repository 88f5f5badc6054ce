"""System matrices: simulated calibration on a grid, streamed into MDF calibration files.

A column of the system matrix is the simulated spectrum of a delta sample filling one voxel —
computed by the same forward model as :func:`mpisim.forward.simulate`
(:func:`~mpisim.forward.unit_moments` and :func:`~mpisim.forward.response`). The file layout is
the community's: ``/measurement/data`` complex (J, C, K, N + E) with the E background frames at
the end, ``isFourierTransformed = isFastFrameAxis = isFramePermutation = 1``, and ``/calibration``.
Stored values are the delta sample's signal (V, rfft-unnormalised) at ``/tracer/concentration``;
:class:`SystemMatrix` divides by that concentration so it maps mol Fe/L to spectra.
"""

import contextlib
from dataclasses import asdict, dataclass
import math
import os
import sys
import time

import numpy as np

from . import PHYSICS_VERSION, __version__
from . import backend as B
from . import cache as cache_mod
from . import cluster, tomlio
from .errors import MPISimError, check_int, check_positive
from .forward import (field_offsets, load_transfer_function, moment_per_concentration, receive_chain, response,
                      unit_moments)
from .grid import Grid
from .io import calibration as cal
from .io.atomic import atomic_path, check_free_space, check_output_path
from .io.mdf_write import write_acquisition, write_extension, write_flags, write_header, write_string, write_tracer
from .io.sm_file import open_system_matrix
from .measurement import in_band
from .progress import Progress
from .resources import check_memory
from .scanner import get_scanner

__all__ = ["CHUNK_ROWS", "COMPLEX", "STRIPE_BYTES", "CalibrationSettings", "assemble_columns_xp", "build_system_matrix",
           "cache_key", "compute_columns", "default_grid", "frequency_bins", "plan_stripes", "stream_stripes",
           "write_calibration_header", "write_calibration_metadata"]

COMPLEX = {"complex64": np.complex64, "complex128": np.complex128}


def default_grid(scanner, shape, fov=None, center=(0.0, 0.0, 0.0), margin=1.1):
    """Grid of ``shape`` over ``fov`` (m); default FOV = drive-field FOV × ``margin`` on driven
    axes (the OpenMPIData matrices oversample the drive FOV too) and 1 mm per voxel on undriven
    axes."""
    if fov is None:
        dfov = np.asarray(scanner.drive_fov)
        fov = tuple(float(f * margin) if f > 0 else 1e-3 * s for f, s in zip(dfov, shape))
    return Grid(tuple(shape), tuple(fov), tuple(center))


@dataclass(frozen=True)
class CalibrationSettings:
    """Parameters of a simulated calibration besides scanner, tracer and grid.

    delta_concentration : mol Fe/L of the delta sample filling a voxel.
    background_frames : E empty-scanner frames appended after the voxels (noise only).
    noise_density : V/√Hz of the noise used for background frames and the SNR (0: the scanner's).
    averages : averages per calibration position (noise σ/√averages).
    noisy : add that noise to every voxel column too (like a measured matrix).
    min_freq, max_freq : Hz, only bins in [min, max] are stored (frequencySelection); max 0 = all.
    feedthrough : apply the feed-through band-stop of the receiver to the matrix.
    transfer_function : path of a transfer-function file ("" = flat chain).
    dtype : "complex64" | "complex128". seed : noise seed.
    """

    delta_concentration: float = 0.1
    background_frames: int = 0
    noise_density: float = 0.0
    averages: int = 1
    noisy: bool = False
    min_freq: float = 0.0
    max_freq: float = 0.0
    feedthrough: bool = False
    transfer_function: str = ""
    dtype: str = "complex64"
    seed: int = 0

    def __post_init__(self):
        check_positive("delta concentration (mol/L)", self.delta_concentration)
        object.__setattr__(self, "background_frames", check_int("background frames", self.background_frames))
        object.__setattr__(self, "averages", check_int("averages", self.averages, 1))
        check_positive("noise density (V/√Hz)", self.noise_density, allow_zero=True)
        check_positive("min frequency (Hz)", self.min_freq, allow_zero=True)
        check_positive("max frequency (Hz)", self.max_freq, allow_zero=True)
        if self.max_freq and self.max_freq < self.min_freq:
            raise MPISimError("max frequency must be >= min frequency")
        if self.dtype not in COMPLEX:
            raise MPISimError(f"dtype must be complex64 or complex128, got {self.dtype!r}")

    def to_dict(self):
        return asdict(self)


def frequency_bins(scanner, settings):
    """0-based rfft bins stored for these settings."""
    bins = np.flatnonzero(in_band(scanner.frequencies, settings.min_freq, settings.max_freq))
    if bins.size == 0:
        raise MPISimError(f"no frequency bins between {settings.min_freq:g} and {settings.max_freq:g} Hz")
    return bins


def cache_key(scanner, tracer, grid, settings):
    """(key, the parameters it hashes) of a system matrix in the cache. The tracer's Gilbert damping is left out: only
    the Néel models of ``mpisim mps`` use it, and none of them is in the imaging forward model, so a matrix does not
    depend on it (a non-default damping would only miss the cache)."""
    tr = {k: v for k, v in tracer.to_dict().items() if k != "damping"}
    params = {"physics": PHYSICS_VERSION, "scanner": scanner.to_dict(), "tracer": tr,
              "grid": grid.to_dict(), "settings": settings.to_dict()}
    if settings.transfer_function:
        params["transfer_function_sha256"] = cache_mod.file_digest(settings.transfer_function)
    return cache_mod.make_key(params), params


def _noise_sigma_bin(scanner, settings):
    """Standard deviation of a complex rfft bin, E|z|² = V σ_t² (σ_t per time sample)."""
    nd = settings.noise_density or scanner.receiver.noise_density
    sigma_t = nd * math.sqrt(scanner.receiver.bandwidth) / math.sqrt(settings.averages)
    return sigma_t * math.sqrt(scanner.num_samples)


def compute_columns(scanner, tracer, positions, bins, response_kc, scale, xp=np, real_dtype=np.float64, out=None):
    """System-matrix columns for voxel centres ``positions`` (P, 3) → (C, K', P) complex.

    The same forward model as :func:`mpisim.forward.simulate`: unit moments → rfft → response.
    ``out``: a (C, K', P) numpy array (e.g. a column slice of a wider buffer) to fill instead.
    """
    um = unit_moments(scanner, tracer, field_offsets(scanner, positions), xp=xp, dtype=real_dtype)
    um = xp.asarray(um)
    spec = B.rfft(um, axis=-1, xp=xp)                               # (P, 3, K)
    cdtype = spec.dtype
    R = xp.asarray(response_kc * scale).astype(cdtype)              # (C, 3, K')
    if xp is np and B.numba_available():
        from .cpu_kernels import assemble_columns  # imports numba: loaded on first use

        sel = spec if bins.size == spec.shape[-1] else np.ascontiguousarray(spec[:, :, bins])
        if out is None:
            out = np.empty((R.shape[0], bins.size, sel.shape[0]), cdtype)
        assemble_columns(sel, R, out, 64)
        return out
    cols = assemble_columns_xp(spec[:, :, xp.asarray(bins)], R, xp)
    if out is not None:
        out[...] = B.to_numpy(cols)
        return out
    return cols


def assemble_columns_xp(spec, R, xp=np):
    """Array-module twin of :func:`mpisim.cpu_kernels.assemble_columns`: (P, 3, K') spectra and
    (C, 3, K') response → (C, K', P) columns."""
    specT = xp.ascontiguousarray(spec.transpose(1, 2, 0))            # (3, K', P)
    Rh = B.to_numpy(R)
    out = xp.zeros((R.shape[0],) + specT.shape[1:], spec.dtype)
    for l in range(R.shape[0]):
        for c in range(3):                                          # skip zero sensitivity components
            if np.any(Rh[l, c] != 0):
                out[l] += R[l, c][:, None] * specT[c]
    return out


def build_system_matrix(scanner, tracer, grid, settings=None, *, out=None, overwrite=False, backend="auto",
                        use_cache=True, cache_dir=None, chunk_voxels=None, progress=False, compression=None,
                        log=None, load=True, layout="rows", scheduler=None, workers=None):
    """Build (or fetch from the cache) the system matrix of ``scanner`` and ``tracer`` on ``grid``.

    Returns an on-disk :class:`SystemMatrix` of the cache entry or ``out`` (rows are read when a
    reconstruction uses them), or with ``load=False`` just that file's path.
    ``out``: also give the MDF calibration file there — a hard link to the cache entry (no copy;
    the entry is read-only, and so is the link), a copy only across file systems.
    ``log``: a callable for one-line status messages (default: stderr when ``progress``).
    Free disk space is checked for everything the build writes before it starts.
    ``scheduler`` (a Dask scheduler address) or ``workers`` (N > 0: a local Dask cluster of N
    processes): voxel blocks are computed on the Dask workers and streamed, in order, to this
    process, the file's single writer; the file is identical to a local build (same blocks, same
    noise draws, drawn here).
    """
    scanner = get_scanner(scanner)
    settings = settings or CalibrationSettings()
    say = log or ((lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None))
    if out is not None:
        check_output_path(out, overwrite)
    key, params = cache_key(scanner, tracer, grid, settings)
    if layout != "rows" or compression:
        params = {**params, "layout": "chunked", "compression": compression}
        key = cache_mod.make_key(params)
    nbytes = _file_bytes(scanner, grid, settings)
    if (scheduler or workers) and B.resolve(backend) == "cupy":
        raise MPISimError("--scheduler/--workers compute voxel blocks with numpy on the Dask workers; "
                          "drop --backend cupy (or build on this machine's GPU without Dask)")
    build = dict(scanner=scanner, tracer=tracer, grid=grid, settings=settings, key=key, params=params,
                 backend=backend, chunk_voxels=chunk_voxels, progress=progress, compression=compression,
                 layout=layout, dask=(scheduler, workers) if scheduler or workers else None)

    def build_into(target, overwrite_target):
        t0 = time.perf_counter()
        _write_system_matrix(target, overwrite=overwrite_target, **build)
        say(f"built {grid.size} voxel system matrix in {time.perf_counter() - t0:.1f} s")

    if not use_cache:
        if out is None:
            raise MPISimError("without the cache an output path is needed (--out)")
        check_free_space([(out, nbytes)], "the system matrix")
        build_into(out, overwrite)
        return open_system_matrix(out) if load else out
    cache_mod.ensure_dir(cache_dir)
    entry = cache_mod.CachedBuild(key, build_into, cache_dir, out, overwrite, nbytes, say)
    final = entry.fetch_or_build()
    if not load:
        return final
    return open_system_matrix(final, entry.on_damage)


def _file_bytes(scanner, grid, settings):
    """Bytes of the matrix in its file (the dataset; metadata are small)."""
    bins = frequency_bins(scanner, settings)       # Python integers: no size overflows on the way to the checks
    return (int(scanner.num_rx_channels) * int(bins.size) * (int(grid.size) + int(settings.background_frames))
            * int(np.dtype(COMPLEX[settings.dtype]).itemsize) + (4 << 20))


def _build_memory(scanner, grid):
    """Bytes a build holds besides its bounded stripes (STRIPE_BYTES, two at a time): voxel
    positions and per-voxel bookkeeping, ~64 B per voxel, and one period of the drive field."""
    return int(grid.size) * 64 + 2 * STRIPE_BYTES + int(scanner.num_samples) * 3 * 8 * 4


STRIPE_BYTES = 200 << 20
"""Bytes of one voxel stripe (C × K' rows × S voxels) of the build; two are in memory at a time."""


def plan_stripes(N, C, Kp, V, cdtype, rdtype, chunk_voxels=None, on_gpu=False):
    """(voxel blocks [(a, b)], stripe width in voxels) of an N-voxel build: blocks of ``chunk_voxels``
    (default: each block's time series near 64 MB on the CPU, 1 GB on a GPU), whole blocks per stripe,
    a stripe of C × Kp rows near :data:`STRIPE_BYTES`."""
    isz = np.dtype(cdtype).itemsize
    if chunk_voxels is None:
        budget = (1 << 30) if on_gpu else (64 << 20)
        chunk_voxels = int(max(1, min(N, budget // (3 * V * np.dtype(rdtype).itemsize))))
    per_block = max(1, STRIPE_BYTES // (C * Kp * isz * chunk_voxels))
    stripe = int(min(N, chunk_voxels * per_block))
    blocks = [(a, min(a + chunk_voxels, N)) for a in range(0, N, chunk_voxels)]
    return blocks, stripe


def _write_system_matrix(path, scanner, tracer, grid, settings, key, params, backend, chunk_voxels, progress,
                         compression, overwrite, layout="rows", dask=None):
    """Stream the matrix into ``path`` (atomically): voxel blocks of ``chunk_voxels`` are computed into
    a stripe buffer, full stripes go to the I/O thread (:class:`mpisim.io.calibration.StripeWriter`)
    while the next is computed. ``layout``: "rows" (contiguous rows, per-row checksums; the default,
    see :mod:`mpisim.io.calibration`) or "chunked" (HDF5 chunks of a few rows × one stripe, fletcher32,
    optional ``compression``; kept for the layout benchmark and ``--compression``)."""
    check_memory(_build_memory(scanner, grid), f"building a {grid.size}-voxel system matrix", hint="use a coarser grid")
    if compression:
        layout = "chunked"
    xp = B.xp_of(backend)
    cdtype = COMPLEX[settings.dtype]
    rdtype = np.float32 if cdtype == np.complex64 else np.float64
    bins = frequency_bins(scanner, settings)
    freqs = scanner.frequencies[bins]
    tf = load_transfer_function(settings.transfer_function)
    chain = receive_chain(scanner, freqs, tf, bandstop=settings.feedthrough)
    R = response(scanner, tracer, freqs, chain)
    scale = moment_per_concentration(tracer, grid.voxel_volume) * settings.delta_concentration
    C, Kp, N, E = scanner.num_rx_channels, bins.size, grid.size, int(settings.background_frames)
    blocks, stripe = plan_stripes(N, C, Kp, scanner.num_samples, cdtype, rdtype, chunk_voxels, on_gpu=xp is not np)
    positions = grid.positions()
    rng = np.random.default_rng(settings.seed)
    sig_bin = _noise_sigma_bin(scanner, settings)
    bg = None
    if E:
        bg = (_complex_noise(rng, (C, Kp, E), sig_bin) if sig_bin > 0 else np.zeros((C, Kp, E))).astype(cdtype)
    mean_bg = bg.mean(axis=-1) if bg is not None and E >= 2 else None
    bar = Progress(N, "sysmat", enabled=progress)
    remote = None
    if dask is not None:
        remote = _remote_columns(dask, scanner, tracer, positions, blocks, bins, R, scale, rdtype)

    def columns(a, b, view):
        """Columns of voxels a..b−1 (into ``view`` when computed here), with their noise when ``noisy``."""
        if remote is not None:
            cols = next(remote)
        else:
            cols = compute_columns(scanner, tracer, positions[a:b], bins, R, scale, xp=xp,
                                   real_dtype=rdtype, out=view if xp is np else None)
        if cols is not view:
            view[...] = B.to_numpy(cols)
        if settings.noisy and sig_bin > 0:
            view += _complex_noise(rng, view.shape, sig_bin).astype(cdtype)

    import h5py                                     # loaded when a matrix is written, not on import

    with contextlib.ExitStack() as stack, atomic_path(path, overwrite) as tmp:
        if remote is not None:
            stack.callback(remote.close)
        # created afresh ("x"), not truncated: on ext4 a file truncated to zero is flushed when closed
        # (auto_da_alloc), which made the build wait ~0.5 s per GB for the disk
        os.remove(tmp)
        with h5py.File(tmp, "x") as h:
            write_calibration_header(h, scanner, tracer, grid, settings, _AcqView(scanner, tf, freqs), N + E)
            sink = _open_sink(h, tmp, layout, (C, Kp, N + E), cdtype, N, mean_bg, stripe, compression)
            sums, sum_abs_fg = stream_stripes(sink, blocks, N, stripe, np.empty((C, Kp, stripe), cdtype),
                                              np.empty((C, Kp, stripe), cdtype), columns, bar, bg)
            snr, snr_method = _snr(sum_abs_fg / max(N, 1), bg, sig_bin)
            write_calibration_metadata(h, scanner, tracer, grid, settings, bins, positions, snr)
            extra = {"calibrationSettings": tomlio.dumps(settings.to_dict()), "snrMethod": snr_method,
                     "cacheKey": key, "cacheParams": cache_mod.canonical(params),
                     "cacheSummary": f"{scanner.name} {tracer.name} grid {'x'.join(map(str, grid.shape))} K={Kp} "
                                     f"{settings.dtype}",
                     "noiseSigmaBin": sig_bin, "physicsVersion": PHYSICS_VERSION, "layout": (
                         cal.LAYOUT if layout == "rows" else "chunked-fletcher32")}
            if sums is not None:
                extra["rowChecksum"] = sums
                extra["checksumMethod"] = cal.checksum.METHOD
            write_extension(h, scanner, tracer, extra=extra)
            h["_mpisim/complete"] = np.int8(1)
            cal.write_manifest(h)


def write_calibration_header(h, scanner, tracer, grid, settings, acquisition, num_frames):
    """Root, /study, /experiment, /scanner, /tracer (the delta sample) and /acquisition of a
    simulated calibration of ``num_frames`` frames (voxels and background)."""
    write_header(h, name="mpisim simulated calibration",
                 description=f"system matrix simulated by mpisim {__version__}",
                 scanner_meta={"facility": scanner.facility, "manufacturer": scanner.manufacturer,
                               "name": scanner.name, "operator": "mpisim", "topology": scanner.topology})
    write_tracer(h, tracer, settings.delta_concentration, grid.voxel_volume / 1e-3)
    write_acquisition(h, acquisition, num_frames, settings.averages)


def _open_sink(h, tmp, layout, shape, cdtype, num_voxels, mean_bg, stripe, compression):
    """The writer of ``/measurement/data`` (1, C, K', N + E): a :class:`~mpisim.io.calibration.StripeWriter`
    on a contiguous dataset ("rows"), or an :class:`_H5Sink` of fletcher32 chunks ("chunked")."""
    C, Kp, NE = shape
    if layout == "rows":
        offset = cal.create_row_dataset(h, (1,) + shape, cdtype)
        h.flush()
        return cal.StripeWriter(tmp, offset, shape, cdtype, num_voxels, mean_bg)
    ds = h.create_dataset("measurement/data", shape=(1,) + shape, dtype=cdtype, fletcher32=True,
                          chunks=(1, 1, int(min(Kp, CHUNK_ROWS)), stripe), compression=compression)
    return _H5Sink(ds, num_voxels, mean_bg, C, Kp)


def stream_stripes(sink, blocks, num_voxels, stripe, first, second, columns, bar, bg=None):
    """Fill voxel stripes block by block (``columns(a, b, view)`` writes the columns of voxels a..b−1
    into ``view``) in the two buffers ``first`` and ``second`` (C, K', stripe), hand each full stripe to
    ``sink`` while the next is filled, then the background frames ``bg`` (C, K', E) if any.
    Returns ``sink.close()``: (row checksums or None, Σ|column − background mean| per row)."""
    N = num_voxels
    buffers = [first, second]
    try:
        buf = buffers.pop()
        s0 = 0
        for a, b in blocks:
            view = buf[:, :, a - s0:b - s0]
            columns(a, b, view)
            bar.update(b - a)
            if b - s0 == stripe or b == N:
                sink.submit(buf if b - s0 == stripe else np.ascontiguousarray(buf[:, :, :b - s0]), s0)
                s0 = b
                buf = buffers.pop() if buffers else sink.free()
        if bg is not None:
            sink.submit(np.ascontiguousarray(bg), N)
        result = sink.close()
    except BaseException:
        sink.abort()
        raise
    bar.close()
    return result


def write_calibration_metadata(h, scanner, tracer, grid, settings, bins, positions, snr):
    """The flags, frequency selection, frame permutation and background marks of /measurement and
    the /calibration group (grid, delta-sample size, positions, SNR) of a simulated calibration."""
    N = grid.size
    NE = N + int(settings.background_frames)
    write_flags(h, isFourierTransformed=True, isFastFrameAxis=True, isFramePermutation=True,
                isFrequencySelection=True)
    h["measurement/frequencySelection"] = (bins + 1).astype(np.int64)
    h["measurement/framePermutation"] = np.arange(1, NE + 1, dtype=np.int64)
    h["measurement/isBackgroundFrame"] = (np.arange(NE) >= N).astype(np.int8)
    write_string(h, "calibration/method", "simulation")
    h["calibration/size"] = np.array(grid.shape, np.int64)
    h["calibration/fieldOfView"] = np.array(grid.fov)
    h["calibration/fieldOfViewCenter"] = np.array(grid.center)
    h["calibration/deltaSampleSize"] = grid.spacing
    write_string(h, "calibration/order", "xyz")
    h["calibration/positions"] = positions
    h["calibration/snr"] = snr[None]


def _remote_columns(dask, scanner, tracer, positions, blocks, bins, R, scale, rdtype):
    """Generator of the blocks' columns computed on Dask workers (:func:`mpisim.cluster.in_order_results`),
    in block order, at most a few blocks per worker in flight. ``close()`` cancels what is left and shuts down."""
    scheduler, workers = dask
    shared = {"scanner": scanner, "tracer": tracer, "bins": bins, "response_kc": R}
    calls = [{"positions": positions[a:b], "scale": scale, "real_dtype": rdtype} for a, b in blocks]
    return cluster.in_order_results(workers, scheduler, compute_columns, shared, calls, "voxel block",
                                    "; nothing was written")


CHUNK_ROWS = 8
"""Rows per HDF5 chunk of the "chunked" layout (the benchmark's alternative)."""


class _H5Sink:
    """The "chunked" layout's writer: whole chunks through h5py (fletcher32 per chunk), in the caller's thread."""

    def __init__(self, ds, snr_frames, mean_bg, C, K):
        self.ds, self.snr_frames = ds, snr_frames
        self.mean_bg = np.zeros((C, K), ds.dtype) if mean_bg is None else mean_bg.astype(ds.dtype)
        self.abs_sum = np.zeros((C, K))
        self._last = None

    def submit(self, block, a):
        w = block.shape[-1]
        nv = min(w, max(0, self.snr_frames - a))
        if nv:
            self.abs_sum += np.abs(block[:, :, :nv] - self.mean_bg[..., None]).sum(axis=-1)
        self.ds[0, :, :, a:a + w] = block
        self._last = block

    def free(self):
        return self._last

    def close(self):
        return None, self.abs_sum

    def abort(self):
        pass


class _AcqView:
    """Adapter giving :func:`mpisim.io.mdf_write.write_acquisition` what it needs from a scanner."""

    def __init__(self, scanner, tf, freqs):
        self.scanner = scanner
        self.bandwidth = scanner.receiver.bandwidth
        self.num_samples = scanner.num_samples
        self.drive_frequencies = scanner.drive_field.frequencies
        self.drive_strengths = np.array([c.amplitude for c in scanner.drive_field.channels])
        self.gradient = scanner.gradient
        self.num_rx_channels = scanner.num_rx_channels
        self.transfer_function = None if tf is None else tf.at(scanner.frequencies, scanner.num_rx_channels)


def _complex_noise(rng, shape, sigma):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * (sigma / math.sqrt(2))


def _snr(signal, bg, sig_bin):
    """SNR per channel and bin as MPIFiles computes it for measured matrices: ``signal`` is the
    mean absolute deviation of the voxel columns from the background mean; the noise is the mean
    absolute deviation of the background frames from their mean. Without >= 2 background frames
    the noise is the expected mean absolute value of the stated complex noise, σ·√π/2."""
    if bg is not None and bg.shape[-1] >= 2:
        noise = np.abs(bg - bg.mean(axis=-1, keepdims=True)).mean(axis=-1)
        method = "MPIFiles: mean |S_fg - mean(S_bg)| / mean |S_bg - mean(S_bg)| over background frames"
    else:
        noise = np.full(signal.shape, sig_bin * math.sqrt(math.pi) / 2)
        method = f"mean |S_fg| / (stated noise: E|z| of complex noise with sigma {sig_bin:.4g} per bin)"
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, signal / noise, np.inf)
    return np.nan_to_num(snr, posinf=1e12), method
