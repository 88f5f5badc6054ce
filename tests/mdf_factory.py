"""Build MDF files with plain h5py, the way MPIFiles.jl lays them out, from an independent
small forward model (not mpisim's). Used by the interchange and robustness tests."""

import numpy as np

MU0 = 4e-7 * np.pi
BASE, DIVIDERS, BW = 2.5e6, (102, 96), 1.25e6
V = 1632
G = np.diag([-1.0, -1.0, 2.0])
A_DRIVE = 0.012


def langevin(x):
    x = np.asarray(x, float)
    small = np.abs(x) < 1e-3
    xs = np.where(small, 1.0, x)
    return np.where(small, x / 3 - x**3 / 45, 1 / np.tanh(xs) - 1 / xs)


def signals(positions, beta=900.0):
    """Independent model: voltage spectra (C=2, K, P) of unit point samples, by finite differences
    in time (periodic central difference), homogeneous x and y coils."""
    t = np.arange(V) / (2 * BW)
    hd = np.zeros((3, V))
    for i, d in enumerate(DIVIDERS):
        hd[i] = A_DRIVE * np.cos(2 * np.pi * BASE / d * t)
    out = np.empty((2, V // 2 + 1, len(positions)), complex)
    for p, r in enumerate(positions):
        h = (G @ r)[:, None] + hd
        n = np.sqrt((h**2).sum(0))
        m = langevin(beta * n) * h / np.where(n > 0, n, 1)
        u = -(np.roll(m, -1, axis=1) - np.roll(m, 1, axis=1)) * BW   # −dm/dt, dt = 1/(2 BW)
        out[:, :, p] = np.fft.rfft(u[:2], axis=1)
    return out


def grid_positions(n, fov=0.026):
    ax = -fov / 2 + (np.arange(n) + 0.5) * fov / n
    X, Y = np.meshgrid(ax, ax, indexing="ij")
    return np.stack([X.ravel(order="F"), Y.ravel(order="F"), np.zeros(n * n)], 1), ax


def _s(h, name, value, vlen=True):
    import h5py

    if vlen:
        h.create_dataset(name, data=value, dtype=h5py.string_dtype())
    else:
        h[name] = np.bytes_(value)


def write_common(h, version="2.1.0", num_frames=1, num_channels=2, gradient_shape=(1, 1, 3, 3),
                 divider_layout="DF", scalar_strings=False, old_names=False):
    _s(h, "version", version)
    _s(h, "uuid", "b6b3c1a4-4c1e-4c8e-9a55-1b1c2d3e4f50", vlen=False)
    _s(h, "time", "2024-01-01T00:00:00.000")
    for g in ("study", "experiment"):
        _s(h, f"{g}/name", "test", vlen=False)
        _s(h, f"{g}/description", "")
        _s(h, f"{g}/uuid", "b6b3c1a4-4c1e-4c8e-9a55-1b1c2d3e4f51")
        h[f"{g}/number"] = np.int64(1)
    _s(h, "experiment/subject", "phantom")
    h["experiment/isSimulation"] = np.int8(0)
    for k, v in (("facility", "lab"), ("manufacturer", "Bruker"), ("name", "Preclinical MPI"),
                 ("operator", "test"), ("topology", "FFP")):
        _s(h, f"scanner/{k}", v)
    if scalar_strings:
        _s(h, "tracer/name", "Perimag")
        h["tracer/concentration"] = 0.1
    else:
        h["tracer/name"] = np.array([b"Perimag"])
        h["tracer/concentration"] = np.array([0.1])
    _s(h, "tracer/solute", "Fe")
    g = G
    if gradient_shape == (3,):
        h["acquisition/gradient"] = np.diag(g)
    elif gradient_shape == (1, 3):
        h["acquisition/gradient"] = np.diag(g)[None]
    elif gradient_shape == (1, 3, 3):
        h["acquisition/gradient"] = g[None]
    else:
        h["acquisition/gradient"] = g[None, None]
    h["acquisition/numAverages"] = np.int64(1)
    h["acquisition/numFrames"] = np.int64(num_frames)
    h["acquisition/numPeriods" if old_names else "acquisition/numPeriodsPerFrame"] = np.int64(1)
    _s(h, "acquisition/startTime", "2024-01-01T00:00:00.000")
    df = "acquisition/drivefield/"
    h[df + "baseFrequency"] = BASE
    h[df + "cycle"] = V / (2 * BW)
    div = np.array([[DIVIDERS[0]], [DIVIDERS[1]]], np.int64)
    h[df + "divider"] = div if divider_layout == "DF" else div.T
    h[df + "numChannels"] = np.int64(2)
    h[df + "phase"] = np.full((1, 2, 1), np.pi / 2)
    h[df + "strength"] = np.full((1, 2, 1), A_DRIVE)
    if scalar_strings:
        _s(h, df + "waveform", "sine")
    else:
        h[df + "waveform"] = np.array([[b"sine"], [b"sine"]])
    rx = "acquisition/receiver/"
    h[rx + "bandwidth"] = BW
    h[rx + "numChannels"] = np.int64(num_channels)
    h[rx + "numSamplingPoints"] = np.int64(V)
    _s(h, rx + "unit", "V")


def flags(h, old_names=False, **on):
    names = ["isBackgroundCorrected", "isFourierTransformed", "isFramePermutation", "isFrequencySelection",
             "isSparsityTransformed", "isSpectralLeakageCorrected", "isTransferFunctionCorrected"]
    names.append("isTransposed" if old_names else "isFastFrameAxis")
    for n in names:
        key = "isFastFrameAxis" if n == "isTransposed" else n
        h[f"measurement/{n}"] = np.int8(bool(on.get(key, False)))


def write_mpifiles_sm(path, n=13, n_bg=6, seed=0, v1_complex=False, freq_select=None, layout="fast"):
    """Calibration (1, C, K, N) complex64, background frames at the end, a frame permutation.

    ``layout``: "fast" (frame axis fastest, contiguous: the OpenMPIData files), "chunked" (the same,
    HDF5 chunks of 5 rows × 40 frames), "slow" ((N, 1, C, K), frame axis slowest) or "time"
    ((N, 1, C, V) float32 time samples, not Fourier transformed)."""
    import h5py

    pos, ax = grid_positions(n)
    S = signals(pos) * 0.1                                 # delta sample at 0.1 mol/L
    rng = np.random.default_rng(seed)
    noise = 1e-3 * np.abs(S).max()
    bg = noise * (rng.standard_normal(S.shape[:2] + (n_bg,)) + 1j * rng.standard_normal(S.shape[:2] + (n_bg,)))
    data = np.concatenate([S, bg], axis=-1)[None]          # (1, C, K, N)
    K = data.shape[2]
    bins = np.arange(K) if freq_select is None else np.asarray(freq_select)
    data = data[:, :, bins]
    N = data.shape[-1]
    with h5py.File(path, "w") as h:
        write_common(h, num_frames=N)
        if v1_complex:
            h["measurement/data"] = np.stack([data.real, data.imag], -1).astype(np.float32)
        elif layout == "chunked":
            h.create_dataset("measurement/data", data=data.astype(np.complex64), chunks=(1, 1, 5, 40))
        elif layout == "slow":
            h["measurement/data"] = np.moveaxis(data, -1, 0)[:, :, :, :].astype(np.complex64)   # (N, 1, C, K)
        elif layout == "time":
            h["measurement/data"] = np.fft.irfft(np.moveaxis(data, -1, 0), n=V, axis=-1).astype(np.float32)
        else:
            h["measurement/data"] = data.astype(np.complex64)
        flags(h, isFourierTransformed=layout != "time", isFastFrameAxis=layout in ("fast", "chunked"),
              isFramePermutation=True, isFrequencySelection=freq_select is not None)
        meander = np.arange(n * n).reshape(n, n)
        meander[1::2] = meander[1::2, ::-1]
        h["measurement/framePermutation"] = np.concatenate([meander.ravel(), np.arange(n * n, N)]) + 1
        h["measurement/isBackgroundFrame"] = (np.arange(N) >= n * n).astype(np.int8)
        if freq_select is not None:
            h["measurement/frequencySelection"] = bins.astype(np.int64) + 1
        _s(h, "calibration/method", "robot")
        h["calibration/size"] = np.array([n, n, 1], np.int64)
        h["calibration/fieldOfView"] = np.array([0.026, 0.026, 0.001])
        h["calibration/fieldOfViewCenter"] = np.zeros(3)
        h["calibration/deltaSampleSize"] = np.array([0.002, 0.002, 0.001])
        snr = np.abs(S).mean(-1) / noise
        h["calibration/snr"] = snr[None][:, :, bins]
    return pos, ax


def phantom_truth(n=13):
    pos, ax = grid_positions(n)
    c = np.zeros(n * n)
    x, y = pos[:, 0], pos[:, 1]
    c[np.hypot(x + 0.004, y - 0.003) < 0.003] = 0.05
    c[(np.abs(x - 0.005) < 0.0025) & (np.abs(y + 0.004) < 0.004)] = 0.03
    return c


def write_mpifiles_meas(path, n=13, frames=3, n_bg=4, seed=1, fast_axis=False, old_names=False,
                        gradient_shape=(1, 1, 3, 3), divider_layout="DF", scalar_strings=False, bg_position="first"):
    """Measurement (N, 1, C, V) int16 with dataConversionFactor, background frames first."""
    import h5py

    pos, _ = grid_positions(n)
    c = phantom_truth(n)
    spec = signals(pos) @ c                                # (C, K)
    u = np.fft.irfft(spec, n=V, axis=-1)
    rng = np.random.default_rng(seed)
    bgsig = 0.02 * np.abs(u).max() * np.cos(2 * np.pi * BASE / DIVIDERS[0] * np.arange(V) / (2 * BW))
    noise = 2e-3 * np.abs(u).max()
    N = frames + n_bg
    is_bg = np.zeros(N, bool)
    if bg_position == "first":
        is_bg[:n_bg] = True
    else:
        is_bg[rng.choice(N, n_bg, replace=False)] = True
    volts = np.empty((N, 1, 2, V))
    for f in range(N):
        volts[f, 0] = (0 if is_bg[f] else u) + bgsig + noise * rng.standard_normal((2, V))
    a = np.abs(volts).max() / 30000
    b = 0.1 * a
    raw = np.round((volts - b) / a).astype(np.int16)
    with h5py.File(path, "w") as h:
        write_common(h, num_frames=N, gradient_shape=gradient_shape, divider_layout=divider_layout,
                     scalar_strings=scalar_strings, old_names=old_names, version="2.0" if old_names else "2.1.0")
        if fast_axis:
            h["measurement/data"] = np.moveaxis(raw, 0, -1)
        else:
            h["measurement/data"] = raw
        flags(h, old_names=old_names, isFastFrameAxis=fast_axis)
        h["measurement/isBackgroundFrame"] = is_bg.astype(np.int8)
        h["acquisition/receiver/dataConversionFactor"] = np.tile([a, b], (2, 1))
    return c, volts
