"""System matrices: simulated calibration on a grid, streamed into MDF calibration files.

A column of the system matrix is the simulated spectrum of a delta sample filling one voxel —
computed by the same forward model as :func:`mpisim.forward.simulate`
(:func:`~mpisim.forward.unit_moments` and :func:`~mpisim.forward.response`). The file layout is
the community's: ``/measurement/data`` complex (J, C, K, N + E) with the E background frames at
the end, ``isFourierTransformed = isFastFrameAxis = isFramePermutation = 1``, and ``/calibration``.
Stored values are the delta sample's signal (V, rfft-unnormalised) at ``/tracer/concentration``;
:class:`SystemMatrix` divides by that concentration so it maps mol Fe/L to spectra.
"""

from dataclasses import dataclass
import math
import sys
import time

import numpy as np

from . import PHYSICS_VERSION, __version__
from . import backend as B
from . import cache as cache_mod
from .errors import MPISimError, check_int, check_positive
from .grid import Grid
from .forward import (field_offsets, load_transfer_function, moment_per_concentration, receive_chain,
                       response, unit_moments)

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
        from dataclasses import asdict

        return asdict(self)


def frequency_bins(scanner, settings):
    """0-based rfft bins stored for these settings."""
    from .measurement import in_band

    bins = np.flatnonzero(in_band(scanner.frequencies, settings.min_freq, settings.max_freq))
    if bins.size == 0:
        raise MPISimError(f"no frequency bins between {settings.min_freq:g} and {settings.max_freq:g} Hz")
    return bins


def cache_key(scanner, tracer, grid, settings):
    params = {"physics": PHYSICS_VERSION, "scanner": scanner.to_dict(), "tracer": tracer.to_dict(),
              "grid": grid.to_dict(), "settings": settings.to_dict()}
    if settings.transfer_function:
        params["transfer_function_sha256"] = cache_mod.file_digest(settings.transfer_function)
    return cache_mod.make_key(params), params


def _noise_sigma_bin(scanner, settings):
    """Standard deviation of a complex rfft bin, E|z|² = V σ_t² (σ_t per time sample)."""
    nd = settings.noise_density or scanner.receiver.noise_density
    sigma_t = nd * math.sqrt(scanner.receiver.bandwidth) / math.sqrt(settings.averages)
    return sigma_t * math.sqrt(scanner.num_samples)


def compute_columns(scanner, tracer, positions, bins, response_kc, scale, xp=np, real_dtype=np.float64):
    """System-matrix columns for voxel centres ``positions`` (P, 3) → (C, K', P) complex.

    The same forward model as :func:`mpisim.forward.simulate`: unit moments → rfft → response.
    """
    um = unit_moments(scanner, tracer, field_offsets(scanner, positions), xp=xp, dtype=real_dtype)
    um = xp.asarray(um)
    spec = B.rfft(um, axis=-1, xp=xp)                               # (P, 3, K)
    cdtype = spec.dtype
    R = xp.asarray(response_kc * scale).astype(cdtype)              # (C, 3, K')
    if xp is np and B.numba_available():
        from .cpu_kernels import assemble_columns

        sel = spec if bins.size == spec.shape[-1] else np.ascontiguousarray(spec[:, :, bins])
        out = np.empty((R.shape[0], bins.size, sel.shape[0]), cdtype)
        assemble_columns(sel, R, out, 64)
        return out
    return assemble_columns_xp(spec[:, :, xp.asarray(bins)], R, xp)


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
                        log=None, load=True):
    """Build (or fetch from the cache) the system matrix of ``scanner`` and ``tracer`` on ``grid``.

    Returns a :class:`SystemMatrix` read from the cache entry or ``out`` (or, with
    ``load=False``, just that file's path, so a huge matrix is never held in memory).
    ``out``: also write the MDF calibration file there (copied from the cache when cached).
    ``log``: a callable for one-line status messages (default: stderr when ``progress``).
    """
    from .scanner import get_scanner

    scanner = get_scanner(scanner)
    settings = settings or CalibrationSettings()
    say = log or ((lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None))
    if out is not None:
        from .io.atomic import check_output_path

        check_output_path(out, overwrite)
    key, params = cache_key(scanner, tracer, grid, settings)
    if use_cache:
        cache_mod.ensure_dir(cache_dir)
        entry = cache_mod.entry_path(key, cache_dir)
        if entry.exists():
            why = cache_mod.verify(entry, key)
            if why is None:
                say(f"system matrix served from cache: {entry}")
                if out is not None:
                    _copy_atomic(entry, out, overwrite)
                return load_system_matrix(out or entry) if load else (out or entry)
            say(f"cache entry {entry} is damaged ({why}); rebuilding")
            try:
                entry.unlink()
            except OSError:
                pass
        target = entry
    else:
        if out is None:
            raise MPISimError("without the cache an output path is needed (--out)")
        target = out
    t0 = time.perf_counter()
    _write_system_matrix(target, scanner, tracer, grid, settings, key, params, backend=backend,
                         chunk_voxels=chunk_voxels, progress=progress, compression=compression,
                         overwrite=overwrite or target != out)
    say(f"built {grid.size} voxel system matrix in {time.perf_counter() - t0:.1f} s")
    if use_cache and out is not None:
        _copy_atomic(target, out, overwrite)
    final = out if out is not None else target
    return load_system_matrix(final) if load else final


def _copy_atomic(src, dst, overwrite):
    import shutil

    from .io.atomic import atomic_path

    with atomic_path(dst, overwrite) as tmp:
        shutil.copyfile(src, tmp)


def _write_system_matrix(path, scanner, tracer, grid, settings, key, params, backend, chunk_voxels, progress,
                         compression, overwrite):
    import h5py

    from . import tomlio
    from .io import mdf
    from .io.atomic import atomic_path
    from .progress import Progress

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
    V = scanner.num_samples
    if chunk_voxels is None:   # keep each chunk's time series near 64 MB (CPU) / 1 GB (GPU)
        budget = (1 << 30) if xp is not np else (64 << 20)
        chunk_voxels = int(max(1, min(N, budget // (3 * V * np.dtype(rdtype).itemsize))))
    _check_disk(path, C * Kp * (N + E) * np.dtype(cdtype).itemsize)
    positions = grid.positions()
    rng = np.random.default_rng(settings.seed)
    sig_bin = _noise_sigma_bin(scanner, settings)
    hchunk = (1, 1, int(min(Kp, max(1, (1 << 21) // (8 * min(N + E, chunk_voxels))))), int(min(N + E, chunk_voxels)))
    bg = None
    if E:
        bg = (_complex_noise(rng, (C, Kp, E), sig_bin) if sig_bin > 0 else np.zeros((C, Kp, E))).astype(cdtype)
    mean_bg = bg.mean(axis=-1, keepdims=True) if bg is not None and E >= 2 else 0.0
    sum_abs_fg = np.zeros((C, Kp))
    bar = Progress(N, "sysmat", enabled=progress)
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as h:
            mdf._write_header(h, name="mpisim simulated calibration",
                              description=f"system matrix simulated by mpisim {__version__}",
                              scanner_meta={"facility": scanner.facility, "manufacturer": scanner.manufacturer,
                                            "name": scanner.name, "operator": "mpisim",
                                            "topology": scanner.topology})
            mdf._write_tracer(h, tracer, settings.delta_concentration, grid.voxel_volume / 1e-3)
            mdf._write_acquisition(h, _AcqView(scanner, tf, freqs), N + E, settings.averages)
            ds = h.create_dataset("measurement/data", shape=(1, C, Kp, N + E), dtype=cdtype, chunks=hchunk,
                                  fletcher32=True, compression=compression)
            for a in range(0, N, chunk_voxels):
                b = min(a + chunk_voxels, N)
                cols = compute_columns(scanner, tracer, positions[a:b], bins, R, scale, xp=xp, real_dtype=rdtype)
                cols = B.to_numpy(cols).astype(cdtype, copy=False)
                if settings.noisy and sig_bin > 0:
                    cols = cols + _complex_noise(rng, cols.shape, sig_bin).astype(cdtype)
                ds[0, :, :, a:b] = cols
                sum_abs_fg += np.abs(cols - mean_bg).sum(axis=-1)
                bar.update(b - a)
            bar.close()
            if E:
                ds[0, :, :, N:] = bg
            snr, snr_method = _snr(sum_abs_fg / max(N, 1), bg, sig_bin)
            mdf._write_flags(h, isFourierTransformed=True, isFastFrameAxis=True, isFramePermutation=True,
                             isFrequencySelection=True)
            h["measurement/frequencySelection"] = (bins + 1).astype(np.int64)
            h["measurement/framePermutation"] = np.arange(1, N + E + 1, dtype=np.int64)
            h["measurement/isBackgroundFrame"] = (np.arange(N + E) >= N).astype(np.int8)
            mdf._str(h, "calibration/method", "simulation")
            h["calibration/size"] = np.array(grid.shape, np.int64)
            h["calibration/fieldOfView"] = np.array(grid.fov)
            h["calibration/fieldOfViewCenter"] = np.array(grid.center)
            h["calibration/deltaSampleSize"] = grid.spacing
            mdf._str(h, "calibration/order", "xyz")
            h["calibration/positions"] = positions
            h["calibration/snr"] = snr[None]
            mdf._write_extension(h, scanner, tracer, extra={
                "calibrationSettings": tomlio.dumps(settings.to_dict()), "snrMethod": snr_method,
                "cacheKey": key, "cacheSummary": f"{scanner.name} {tracer.name} grid "
                                                f"{'x'.join(map(str, grid.shape))} K={Kp} {settings.dtype}",
                "noiseSigmaBin": sig_bin, "physicsVersion": PHYSICS_VERSION})
            h["_mpisim/complete"] = np.int8(1)


def _check_disk(path, nbytes):
    """Refuse to start a build whose output cannot fit on the target disk."""
    import os
    import shutil

    folder = os.path.dirname(os.path.abspath(path)) or "."
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if nbytes > free:
        raise MPISimError(f"{path}: the system matrix needs {nbytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB "
                          f"are free there; use --max-freq/--min-freq, a smaller grid or another folder")


class _AcqView:
    """Adapter giving ``mdf._write_acquisition`` what it needs from a scanner."""

    def __init__(self, scanner, tf, freqs):
        self.scanner = scanner
        self.bandwidth = scanner.receiver.bandwidth
        self.num_samples = scanner.num_samples
        self.drive_frequencies = scanner.drive_field.frequencies
        self.drive_strengths = np.array([c.amplitude for c in scanner.drive_field.channels])
        self.gradient = scanner.gradient
        self.num_channels = scanner.num_rx_channels
        self.transfer_function = None if tf is None else tf.at(scanner.frequencies, scanner.num_rx_channels)
        self.meta = {}


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


# --- loading and the operator ----------------------------------------------------------------------

class SystemMatrix:
    """The system matrix as an operator from concentrations (mol Fe/L, N voxels) to spectra.

    data : (C, K', N) complex (rows = channel × frequency bin, x-fastest voxel columns), scaled to
    1 mol Fe/L when the delta concentration is known. ``bins`` are the 0-based rfft bins of the
    rows, ``frequencies`` their Hz values; ``snr`` (C, K'); ``background`` (C, K', E) or None.
    """

    def __init__(self, data, bins, frequencies, grid, snr=None, background=None, meta=None, unit="mol/L"):
        self._nonzero_rows = None
        self.data, self.bins, self.frequencies = data, np.asarray(bins), np.asarray(frequencies)
        self.grid, self.snr, self.background = grid, snr, background
        self.meta, self.unit = meta or {}, unit

    @property
    def shape(self):
        C, K, N = self.data.shape
        return (C * K, N)

    @property
    def nonzero_rows(self):
        """(C, K') bool: rows with any non-zero entry (computed once; the data are not modified)."""
        if self._nonzero_rows is None:
            self._nonzero_rows = np.any(self.data != 0, axis=-1)
        return self._nonzero_rows

    @property
    def num_channels(self):
        return self.data.shape[0]

    @property
    def matrix(self):
        """(C·K', N) view of the data (rows × voxels)."""
        return self.data.reshape(self.shape)

    def forward(self, c):
        """Spectra of concentrations c (N,) or (N, F) → (C·K',) or (C·K', F)."""
        return self.matrix @ c

    def adjoint(self, u):
        """Aᴴ u for spectra u (C·K',) or (C·K', F) → (N,) or (N, F)."""
        return self.matrix.conj().T @ u

    def select(self, channels=None, bins=None):
        """A sub-matrix: ``channels`` (indices) and ``bins`` (positions within this matrix's rows)."""
        d = self.data
        ch = slice(None) if channels is None else channels
        b = slice(None) if bins is None else bins
        d = d[ch][:, b] if not isinstance(ch, slice) else d[:, b]
        snr = None if self.snr is None else (self.snr[ch][:, b] if not isinstance(ch, slice) else self.snr[:, b])
        bg = None if self.background is None else (self.background[ch][:, b] if not isinstance(ch, slice)
                                                   else self.background[:, b])
        return SystemMatrix(d, self.bins[b], self.frequencies[b], self.grid, snr, bg, self.meta, self.unit)


def _scaled(a, factor, owned):
    """a · factor, in place when the array is ours (avoids a second copy of a big matrix)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if owned and a.flags.writeable:
            a *= np.asarray(factor, dtype=a.real.dtype)
        else:
            a = a * np.asarray(factor, dtype=a.real.dtype)
    return a


def load_system_matrix(path, measurement=None):
    from .io.mdf import _guarded

    return _guarded(_load_system_matrix)(path, measurement)


def _load_system_matrix(path, measurement=None):
    """Read an MDF calibration file (ours or another tool's) into a :class:`SystemMatrix`."""
    from .io.mdf import read_mdf

    meas = read_mdf(path) if measurement is None else measurement
    cal = meas.meta.get("calibration")
    if cal is None:
        raise MPISimError(f"{path}: not a calibration file (no /calibration group)")
    if not meas.frequency_domain:
        from .backend import rfft

        spectra = rfft(meas.data, axis=-1)
    else:
        spectra = meas.data
    # (N, J, C, K) → (C, K, N): for fast-frame-axis files this undoes a moveaxis view (no copy)
    allf = np.moveaxis(spectra[:, 0], 0, -1)
    fg, bgi = meas.foreground_frames, meas.background_frames
    if fg.size and fg.size == meas.num_frames:
        data = allf
    elif fg.size and np.array_equal(fg, np.arange(fg.size)):
        data = allf[..., :fg.size]
    else:
        data = allf[..., fg]
    bg = allf[..., bgi] if bgi.size else None
    size = cal.get("size")
    if size is None or int(np.prod(size)) != data.shape[-1]:
        raise MPISimError(f"{path}: /calibration/size {None if size is None else np.ravel(size).tolist()} does not match "
                          f"{data.shape[-1]} foreground frames")
    fov = cal.get("fieldOfView", np.ones(3))
    center = cal.get("fieldOfViewCenter", np.zeros(3))
    grid = Grid(tuple(int(s) for s in np.ravel(size)), tuple(np.ravel(fov)), tuple(np.ravel(center)))
    conc = meas.meta.get("tracer_concentration")
    unit = "mol/L"
    if conc and conc > 0:
        data = _scaled(data, 1.0 / conc, owned=measurement is None)
        bg = None if bg is None else bg / np.asarray(conc, dtype=bg.real.dtype)
    else:
        unit = "delta-sample concentration"
    bins = np.arange(meas.num_samples // 2 + 1) if meas.frequency_selection is None else meas.frequency_selection
    snr = cal.get("snr")
    if snr is not None:
        snr = np.asarray(snr, float)
        snr = snr.reshape(-1, *snr.shape[-2:])[0]
        if snr.shape != data.shape[:2]:
            snr = None
    meta = dict(meas.meta)
    meta.update({"measurement": meas, "bandwidth": meas.bandwidth, "num_samples": meas.num_samples,
                 "drive_frequencies": meas.drive_frequencies, "gradient": meas.gradient,
                 "scanner": meas.scanner, "tracer": meas.tracer, "source": str(path),
                 "transfer_function": meas.transfer_function})
    return SystemMatrix(data, bins, meas.all_frequencies[bins], grid, snr, bg, meta, unit)
