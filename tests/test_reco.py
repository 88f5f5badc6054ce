import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import mpisim
from mpisim.errors import MPISimError
from mpisim.reco.kaczmarz import absolute_lambda, kaczmarz, tikhonov_direct
from mpisim.reco.cgnr import cgnr


def reference_kaczmarz(A, b, iterations, lam_abs, enforce_real=True, enforce_positive=True, order=None):
    """A plain per-row loop of PHYSICS.md §6, written independently of mpisim."""
    M, N = A.shape
    c = np.zeros(N, complex)
    v = np.zeros(M, complex)
    sq = np.sqrt(lam_abs)
    order = range(M) if order is None else order
    for _ in range(iterations):
        for k in order:
            s = A[k]
            nrm = np.sum(np.abs(s) ** 2)
            if nrm == 0:
                continue
            alpha = (b[k] - np.sum(s * c) - sq * v[k]) / (nrm + lam_abs)
            c = c + alpha * np.conj(s)
            v[k] = v[k] + alpha * sq
        if enforce_real:
            c = c.real.astype(complex)
        if enforce_positive:
            c = np.where(c.real < 0, 0, c)
    return c.real if enforce_real else c


def problem(M=80, N=40, seed=0, dtype=np.complex128):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((M, N)) + 1j * rng.standard_normal((M, N))).astype(dtype)
    A[5] = 0  # a zero row must be skipped
    x = rng.random(N) * (rng.random(N) < 0.5)
    b = A @ x + 0.05 * (rng.standard_normal(M) + 1j * rng.standard_normal(M))
    return A, b, x


@pytest.mark.parametrize("impl", ["numpy", "numba"])
def test_converges_to_direct_tikhonov(impl):
    A, b, _ = problem()
    lam = 0.05
    direct = tikhonov_direct(A, b, absolute_lambda(A, lam))
    c = kaczmarz(A, b, iterations=3000, lam=lam, enforce_real=False, enforce_positive=False, impl=impl)
    assert np.abs(c - direct).max() < 1e-8 * np.abs(direct).max()
    # early stopping is part of the regularisation: after 2 sweeps it is still clearly away
    c2 = kaczmarz(A, b, iterations=2, lam=lam, enforce_real=False, enforce_positive=False, impl=impl)
    assert np.linalg.norm(c2 - direct) > 0.05 * np.linalg.norm(direct)


@pytest.mark.parametrize("impl", ["numpy", "numba"])
@pytest.mark.parametrize("dtype,tol", [(np.complex128, 1e-12), (np.complex64, 2e-5)])
def test_projected_equals_reference_loop(impl, dtype, tol):
    A, b, _ = problem(dtype=dtype)
    lam = 0.1
    ref = reference_kaczmarz(A.astype(np.complex128), b, 5, absolute_lambda(A.astype(np.complex128), lam))
    c = kaczmarz(A, b, iterations=5, lam=lam, impl=impl)
    assert c.dtype == np.float64 and np.all(c >= 0)
    assert np.abs(c - ref).max() <= tol * np.abs(ref).max()


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_planar_rows_are_the_same_matrix(dtype, monkeypatch):
    """Planar rows (the compiled sweep's layout) made by copy and in place hold the same matrix, apply
    it like the complex product (real and complex iterates, compiled and numpy), and the sweep on them
    equals the sweep on the complex array it came from bit for bit, leaving the caller's array alone."""
    from mpisim import backend
    from mpisim.reco.kaczmarz import PlanarRows, squared_row_norms
    from mpisim.reco.solve import apply, residual2

    A, b, _ = problem(M=61, N=37, dtype=dtype)
    keep = A.copy()
    P = PlanarRows.from_complex(A)
    assert P.shape == A.shape and P.dtype == dtype
    np.testing.assert_array_equal(P.planes[:, 0], A.real)
    np.testing.assert_array_equal(P.planes[:, 1], A.imag)
    np.testing.assert_array_equal(P.to_complex(), A)
    own = A.copy()
    Q = PlanarRows.from_complex(own, in_place=True)
    assert np.shares_memory(Q.planes, own)
    np.testing.assert_array_equal(Q.planes, P.planes)
    np.testing.assert_allclose(squared_row_norms(P), squared_row_norms(A), rtol=1e-12)   # summation order
    rng = np.random.default_rng(3)
    tol = 1e-5 if dtype == np.complex64 else 1e-12
    for c in (rng.random((37, 6)), rng.random(37), rng.random((37, 3)) + 1j * rng.random((37, 3))):
        ref = A.astype(np.complex128) @ c
        for numba_there in (True, False):
            monkeypatch.setattr(backend, "numba_available", lambda v=numba_there: v)
            got = apply(P, c)
            assert got.shape == ref.shape and got.dtype == dtype
            assert np.abs(got - ref).max() <= tol * np.abs(ref).max()
        monkeypatch.undo()
    c = rng.random((37, 2))
    bb = np.stack([b, 2 * b], axis=1)
    np.testing.assert_allclose(residual2(P, c, bb), residual2(A, c, bb), rtol=10 * tol)
    norms2 = squared_row_norms(A)
    for kw in ({}, {"row_weights": rng.random(61) + 0.5}, {"enforce_real": False, "enforce_positive": False}):
        got = kaczmarz(P, bb, iterations=3, lam=0.1, row_norms2=norms2, **kw)
        if "row_weights" not in kw:    # the same norms: the same sweep as the complex input's, bit for bit
            np.testing.assert_array_equal(got, kaczmarz(A, bb, iterations=3, lam=0.1, **kw))
        ref = kaczmarz(A, bb, iterations=3, lam=0.1, impl="numpy", **kw)
        assert np.abs(got - ref).max() <= 100 * tol * np.abs(ref).max()
    np.testing.assert_array_equal(A, keep)                     # the complex input was copied, not reordered
    with pytest.raises(MPISimError, match="compiled CPU sweep only"):
        kaczmarz(P, b, iterations=1, impl="numpy")
    with pytest.raises(MPISimError, match="complex"):
        PlanarRows.from_complex(A.real)


def test_shuffled_order_and_many_frames():
    A, b, _ = problem()
    lam = 0.1
    order = np.random.default_rng(7).permutation(A.shape[0])
    ref = reference_kaczmarz(A, b, 4, absolute_lambda(A, lam), order=order)
    c = kaczmarz(A, b, iterations=4, lam=lam, order="shuffle", seed=7)
    assert np.abs(c - ref).max() < 1e-12 * np.abs(ref).max()
    B = np.stack([b, 2 * b, 0.5j * b, b.conj()], axis=1)
    many = kaczmarz(A, B, iterations=4, lam=lam, impl="numba", groups=2)
    for f in range(4):
        single = kaczmarz(A, B[:, f], iterations=4, lam=lam, impl="numpy")
        assert np.abs(many[:, f] - single).max() < 1e-12 * max(np.abs(single).max(), 1)
    r1 = kaczmarz(A, b, iterations=3, lam=lam, order="random", seed=1)
    r2 = kaczmarz(A, b, iterations=3, lam=lam, order="random", seed=1)
    np.testing.assert_array_equal(r1, r2)


@pytest.mark.parametrize("dtype,tol", [(np.complex128, 1e-12), (np.complex64, 1e-5)])
def test_compiled_frame_groups_match_the_numpy_twin(dtype, tol):
    """Seven frames in one group run the 3-, 3- and 1-frame passes, in two groups the 2- and 1-frame ones;
    in single precision (noise realisations) the same sweep in float32. Each frame equals its own numpy
    sweep (the independent twin)."""
    A, b, _ = problem(M=90, N=53, dtype=dtype)
    rng = np.random.default_rng(11)
    B = b[:, None] * (rng.standard_normal(7) + 1j * rng.standard_normal(7))[None, :]
    ref = np.stack([kaczmarz(A, B[:, f], iterations=3, lam=0.1, impl="numpy", enforce_positive=False)
                    for f in range(7)], axis=1)
    scale = np.abs(ref).max()
    for groups in (1, 2):
        got = kaczmarz(A, B, iterations=3, lam=0.1, impl="numba", groups=groups, enforce_positive=False)
        assert np.abs(got - ref).max() <= tol * scale
    single = kaczmarz(A, B, iterations=3, lam=0.1, impl="numba", groups=1, enforce_positive=False, precision="single")
    assert np.abs(single - ref).max() <= (tol if dtype == np.complex128 else 1e-4) * scale


def test_cgnr_matches_direct_and_kaczmarz_limit():
    A, b, _ = problem()
    lam = 0.05
    direct = tikhonov_direct(A, b, absolute_lambda(A, lam))
    c = cgnr(A, b, iterations=200, lam=lam, enforce_real=False, enforce_positive=False)
    assert np.abs(c - direct).max() < 1e-8 * np.abs(direct).max()


def test_bad_solver_input():
    A, b, _ = problem()
    with pytest.raises(MPISimError, match="lambda"):
        kaczmarz(A, b, lam=-1)
    bad = b.copy()
    bad[3] = np.nan
    with pytest.raises(MPISimError, match="NaN"):
        kaczmarz(A, bad)
    with pytest.raises(MPISimError, match="shape"):
        kaczmarz(A, b[:-1])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    d = tmp_path_factory.mktemp("reco")
    S = build_system_matrix(sc, tr, default_grid(sc, (25, 25, 1)), CalibrationSettings(background_frames=10),
                            out=d / "sm.mdf", use_cache=False)
    ph = mpisim.get_phantom("shapes", sc)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, frames=2, background_frames=10, seed=3))
    mpisim.write_mdf(d / "meas.mdf", meas)
    return sc, tr, S, ph, meas, d


def truth_on_grid(ph, grid, sub=6):
    """Box-average of the fine phantom over each reconstruction voxel."""
    from scipy.interpolate import RegularGridInterpolator

    f = RegularGridInterpolator((ph.grid.axis(0), ph.grid.axis(1)), ph.concentration[:, :, 0],
                                bounds_error=False, fill_value=0)
    X, Y = np.meshgrid(grid.axis(0), grid.axis(1), indexing="ij")
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    return sum(f(np.stack([X + ox * grid.spacing[0], Y + oy * grid.spacing[1]], -1))
               for ox in offs for oy in offs) / sub**2


def test_end_to_end_2d_recovers_phantom(scene):
    from mpisim.reco import reconstruct

    sc, tr, S, ph, meas, d = scene
    reco = reconstruct(meas, S)                      # the defaults
    truth = truth_on_grid(ph, S.grid)
    img = reco.volume(0)[:, :, 0]
    corr = np.sum(img * truth) / (np.linalg.norm(img) * np.linalg.norm(truth))
    assert corr >= 0.9
    assert reco.iron_mass[0] == pytest.approx(ph.iron_mass, rel=0.10)
    assert reco.info["background_subtracted"]


def test_reco_cli_writes_parameters_and_png(scene, capsys):
    import h5py

    from mpisim import tomlio
    from mpisim.cli import main
    from mpisim.io.reco_mdf import read_reconstruction

    sc, tr, S, ph, meas, d = scene
    out, png = d / "r.mdf", d / "r.png"
    assert main(["reco", str(d / "meas.mdf"), "--sm", str(d / "sm.mdf"), "--out", str(out), "--png", str(png),
                 "--iterations", "20", "--lambda", "1e-3", "--min-freq", "30e3", "--channels", "1,2"]) == 0
    assert png.stat().st_size > 10_000
    with h5py.File(out, "r") as h:
        assert h["reconstruction/data"].shape == (2, 625, 1)
        assert h["reconstruction/size"][()].tolist() == [25, 25, 1]
        params = tomlio.loads(h["_mpisim/recoParams"][()].decode())
        assert params["solver"]["iterations"] == 20 and params["selection"]["channels"] == [0, 1] \
                and params["selection"]["min_freq"] == 30e3            # recorded by stage
        assert h["_mpisim/unit"][()] == b"mol/L"
    r = read_reconstruction(out)
    assert r.image.shape == (2, 625) and r.params.solver.lam == 1e-3


@pytest.mark.parametrize("extra,needle", [
    (["--snr-threshold", "1e12"], "empty frequency selection"),
    (["--lambda", "-1"], "lambda"),
    (["--channels", "7"], "receive channel out of range"),
    (["--frames", "40"], "frame index out of range"),
])
def test_reco_bad_input(scene, tmp_path, capsys, extra, needle):
    from mpisim.cli import main

    sc, tr, S, ph, meas, d = scene
    out = tmp_path / "r.mdf"
    assert main(["reco", str(d / "meas.mdf"), "--sm", str(d / "sm.mdf"), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_reco_refuses_mismatched_scanner(scene, tmp_path, capsys):
    from mpisim.cli import main

    sc, tr, S, ph, meas, d = scene
    m1 = tmp_path / "m1.mdf"
    assert main(["simulate", "--scanner", "bruker-1d", "--out", str(m1)]) == 0
    assert main(["reco", str(m1), "--sm", str(d / "sm.mdf"), "--out", str(tmp_path / "r.mdf")]) == 2
    assert "samples per period" in capsys.readouterr().err


def test_nan_measurement_is_refused(scene, tmp_path):
    from mpisim.reco import reconstruct

    sc, tr, S, ph, meas, d = scene
    bad = mpisim.Measurement(**{**meas.__dict__, "data": meas.data.copy()})
    bad.data[11, 0, 0, 5] = np.nan
    with pytest.raises(MPISimError, match="NaN"):
        reconstruct(bad, S)


def test_gpu_kaczmarz_matches_numpy_twin(gpu):
    A, b, _ = problem(M=300, N=2000, dtype=np.complex64)
    B = np.stack([b, 0.5 * b, 1j * b, b.conj(), 2 * b], axis=1)
    for rhs in (b, B):
        ref = kaczmarz(A, rhs, iterations=3, lam=0.1, impl="numpy")
        for impl in ("cuda", "cupy-loop"):
            got = gpu.asnumpy(kaczmarz(gpu.asarray(A), gpu.asarray(rhs), iterations=3, lam=0.1, impl=impl))
            assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max(), impl


def test_gpu_cgnr_and_reconstruct(gpu, scene):
    from mpisim.reco import reconstruct

    A, b, _ = problem()
    ref = cgnr(A, b, iterations=30, lam=0.05)
    got = gpu.asnumpy(cgnr(gpu.asarray(A), gpu.asarray(b), iterations=30, lam=0.05))
    assert np.abs(got - ref).max() < 1e-9 * np.abs(ref).max()
    sc, tr, S, ph, meas, d = scene
    cpu = reconstruct(meas, S, min_freq=30e3, lam=1e-3, iterations=10, backend="numpy")
    gpu_r = reconstruct(meas, S, min_freq=30e3, lam=1e-3, iterations=10, backend="cupy")
    assert np.abs(cpu.image - gpu_r.image).max() <= 1e-4 * cpu.image.max()
    # the defaults: stopping rule between sweeps and noise realisations, on the GPU as on the CPU
    cpu = reconstruct(meas, S, backend="numpy")
    gpu_r = reconstruct(meas, S, backend="cupy")
    assert abs(cpu.info["sweeps"] - gpu_r.info["sweeps"]) <= 1
    assert np.abs(cpu.image - gpu_r.image).max() <= 1e-3 * cpu.image.max()
    assert gpu_r.noise.shape == cpu.noise.shape
    assert np.std(gpu_r.noise.sum(axis=1)) == pytest.approx(np.std(cpu.noise.sum(axis=1)), rel=1e-2)


def test_pipeline_without_numba_matches(tmp_path):
    """The pure-numpy fallback (no numba) gives the same simulation and reconstruction."""
    import subprocess
    import sys

    code = """
import numpy as np, mpisim
from mpisim.systemmatrix import build_system_matrix, default_grid
sc = mpisim.get_scanner('bruker-2d'); tr = mpisim.Tracer()
ph = mpisim.get_phantom('shapes', sc)
m = mpisim.simulate(sc, tr, ph, noise_density=2e-9, background_frames=2)
S = build_system_matrix(sc, tr, default_grid(sc, (12, 12, 1)), use_cache=False, out=r'OUT', overwrite=True)
r = mpisim.reconstruct(m, S, iterations=5, min_freq=30e3)
np.save(r'OUT.npy', np.concatenate([m.data.ravel()[:5000], r.image.ravel()]))
"""
    outs = []
    for flag in ("0", "1"):
        out = tmp_path / f"sm{flag}.mdf"
        env = {**__import__("os").environ, "MPISIM_DISABLE_NUMBA": "1" if flag == "1" else ""}
        r = subprocess.run([sys.executable, "-c", code.replace("OUT", str(out))], env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr[-1500:]
        outs.append(np.load(str(out) + ".npy"))
    assert np.abs(outs[0] - outs[1]).max() <= 1e-5 * np.abs(outs[0]).max()


def test_reconstruct_leaves_an_in_memory_matrix_alone(scene):
    """reconstruct reorders the rows it reads into the planar layout in place: an in-memory matrix must come
    out unchanged; the compiled path (planar rows, with row weights) equals the numpy twin's image; a
    real-valued matrix is taken as complex."""
    from mpisim.reco import reconstruct
    from mpisim.operator import SystemMatrix

    sc, tr, S, ph, meas, d = scene
    mem = SystemMatrix(np.array(S.data), S.bins, S.frequencies, S.grid, S.snr, S.background, S.acquisition, S.unit)
    keep = mem.data.copy()
    kw = dict(min_freq=30e3, iterations=15, uncertainty_samples=0)
    for weighting in ("none", "row-norm"):
        fast = reconstruct(meas, mem, weighting=weighting, **kw)
        twin = reconstruct(meas, mem, weighting=weighting, impl="numpy", **kw)
        assert np.abs(fast.image - twin.image).max() <= 1e-9 * np.abs(twin.image).max()
    np.testing.assert_array_equal(mem.data, keep)
    real = [SystemMatrix(keep.real.astype(t), S.bins, S.frequencies, S.grid, S.snr, None, S.acquisition, S.unit)
            for t in (np.float64, np.complex128)]
    a, b = (reconstruct(meas, m, **kw) for m in real)
    np.testing.assert_array_equal(a.image, b.image)
    assert np.all(np.isfinite(a.image)) and np.abs(a.image).max() > 0


def test_frames_are_read_block_by_block_and_only_when_used(scene, tmp_path, monkeypatch):
    """reconstruct reads a file's background frames and the frames it reconstructs, nothing else, a block
    at a time; the data it solves for equal the spectra of the whole measurement, background-subtracted
    and block-averaged (the computation written out here), and the image equals the in-memory one."""
    from mpisim.io import mdf_read
    from mpisim.reco import reconstruct
    from mpisim.frames import MeasurementFrames
    from mpisim.io.frame_file import FileFrames
    from mpisim.reco.preprocess import frame_rows, measurement_spectra, selected_frames

    sc, tr, S, ph, _, d = scene
    long = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, frames=30, background_frames=4, seed=5))
    path = tmp_path / "long.mdf"
    mpisim.write_mdf(path, long)
    read = []
    orig = mdf_read.DataLayout.read_frames

    def counted(self, frames=slice(None)):
        a = orig(self, frames)
        read.append(a.shape[0])
        return a

    monkeypatch.setattr(mdf_read.DataLayout, "read_frames", counted)
    kw = dict(min_freq=30e3, iterations=10, uncertainty_samples=0)
    r = reconstruct(mpisim.open_measurement(path), S, frames=(7, 3), **kw)
    assert sum(read) == 4 + 2 and r.num_frames == 2                  # 4 background frames + the 2 asked for
    whole = reconstruct(long, S, frames=(7, 3), **kw)
    np.testing.assert_array_equal(r.image, whole.image)
    monkeypatch.setattr(MeasurementFrames, "BLOCK_BYTES", 1)          # one block per `average` frames
    spec = measurement_spectra(long)
    rows = (np.array([0, 1, 2, 1]), np.array([40, 41, 100, 7]))
    for average in (1, 3):
        p = mpisim.RecoParams(average=average)
        sel = selected_frames(p.preprocessing, long.num_frames, long.is_background)
        bgmean = spec[long.background_frames].mean(axis=0)
        x = spec[sel] - bgmean
        x = x.reshape(-1, average, *x.shape[1:]).mean(axis=1)
        read.clear()
        b, peak = frame_rows(FileFrames(path), sel, rows, bgmean, None, average)
        np.testing.assert_array_equal(b, x[:, rows[0], rows[1]].T)
        assert peak == np.abs(spec[sel]).max() and max(read) == average
    blocked = reconstruct(mpisim.open_measurement(path), S, average=3, **kw)
    monkeypatch.undo()
    np.testing.assert_array_equal(blocked.image, reconstruct(long, S, average=3, **kw).image)


def test_frame_reads_check_their_input_and_name_the_stored_frame(scene, tmp_path, monkeypatch):
    """read_mdf(frames=...) takes increasing integer indices; a calibration whose numFrames counts only its
    foreground frames (as MPIFiles writes them) still reads; a NaN in a frame being reconstructed is
    reported with the stored frame's index, before any system-matrix row is read."""
    import shutil

    import h5py

    from mpisim.io.mdf import read_mdf
    from mpisim.reco import reconstruct
    from mpisim.operator import SystemMatrix

    sc, tr, S, ph, meas, d = scene
    path = tmp_path / "m.mdf"
    mpisim.write_mdf(path, meas)
    with pytest.raises(MPISimError, match="integer"):
        read_mdf(path, frames=[0.5, 1.7])
    with pytest.raises(MPISimError, match="increasing"):
        read_mdf(path, frames=[3, 1])
    cal = tmp_path / "cal.mdf"
    shutil.copyfile(d / "sm.mdf", cal)
    with h5py.File(cal, "r+") as h:
        n = int((~h["measurement/isBackgroundFrame"][()].astype(bool)).sum())
        del h["acquisition/numFrames"]
        h["acquisition/numFrames"] = np.int64(n)
    assert read_mdf(cal, frames=[0, n]).is_background.tolist() == [False, True]
    k = int(meas.foreground_frames[-1])
    with h5py.File(path, "r+") as h:
        h["measurement/data"][k, 0, 1, 5] = np.nan
    monkeypatch.setattr(SystemMatrix, "rows", lambda *a, **kw: pytest.fail("matrix rows read before the data"))
    with pytest.raises(MPISimError, match=rf"NaN or Inf \(first at index \({k}, 0, 1, 5\)"):
        # --frames counts foreground frames: the last of them is stored at index k
        reconstruct(mpisim.open_measurement(path), S, frames=(len(meas.foreground_frames) - 1,))


def test_top_k_whitening_and_separate_background(scene, tmp_path):
    from mpisim.reco import reconstruct

    sc, tr, S, ph, meas, d = scene
    r = reconstruct(meas, S, top_k=150, snr_threshold=0, min_freq=30e3)
    assert r.info["rows"] == 150
    # the kept rows are the 150 of highest SNR within the band
    band = (S.frequencies >= 30e3)[None, :] & np.any(S.data != 0, axis=-1)
    best = np.sort(np.where(band, S.snr, -np.inf).ravel())[::-1][:150]
    assert best[-1] > np.min(S.snr[band])
    w = reconstruct(meas, S, weighting="whitening", min_freq=30e3, lam=1e-3, iterations=50)
    assert np.all(np.isfinite(w.image)) and w.iron_mass[0] == pytest.approx(ph.iron_mass, rel=0.2)
    # background from a separate empty-scanner measurement instead of the background frames
    empty = mpisim.simulate(sc, tr, mpisim.Phantom(ph.grid, np.zeros(ph.grid.shape)),
                            mpisim.SimulationSettings.realistic(sc, frames=5, seed=9))
    mpisim.write_mdf(tmp_path / "empty.mdf", empty)
    fg_only = mpisim.Measurement(**{**meas.__dict__, "data": meas.data[10:], "is_background": meas.is_background[10:]})
    a = reconstruct(fg_only, S, background=str(tmp_path / "empty.mdf"), empty=mpisim.read_mdf(tmp_path / "empty.mdf"),
                    min_freq=30e3, lam=1e-3, iterations=50)
    b = reconstruct(meas, S, min_freq=30e3, lam=1e-3, iterations=50)
    assert a.info["background_subtracted"]
    assert np.corrcoef(a.image[0], b.image[0])[0, 1] > 0.99
    none = reconstruct(fg_only, S, min_freq=30e3, lam=1e-3, iterations=50)
    assert not none.info["background_subtracted"]


def test_stopping_rule_and_lambda_auto_are_recorded(scene, tmp_path):
    """--iterations auto stops at the discrepancy when noise dominates, at stagnation otherwise; --lambda
    auto picks the largest λ of its grid whose residual meets max(noise, 2 × floor); both are written."""
    from mpisim.io.reco_mdf import read_reconstruction, write_reconstruction
    from mpisim.reco import reconstruct
    from mpisim.reco.solve import LAMBDA_GRID

    sc, tr, S, ph, meas, d = scene
    r = reconstruct(meas, S, lam="auto")
    i = r.info
    assert i["lambda"] in LAMBDA_GRID and i["lambda_rule"] == "auto"
    assert i["lambda_residual_over_noise"][-1] <= i["lambda_target_over_noise"]
    assert all(x > i["lambda_target_over_noise"] for x in i["lambda_residual_over_noise"][:-1])
    write_reconstruction(tmp_path / "r.mdf", r)
    back = read_reconstruction(tmp_path / "r.mdf")
    assert back.info["lambda"] == i["lambda"] and back.info["sweeps"] == i["sweeps"]
    assert back.params.solver.lam == "auto" and back.params.solver.iterations == "auto"
    np.testing.assert_allclose(back.noise, r.noise, rtol=1e-6)
    # a faint object in strong noise: the residual reaches the noise level long before stagnation
    faint = mpisim.simulate(sc, tr, ph.scaled(1e-3), mpisim.SimulationSettings.realistic(sc, background_frames=10,
                                                                                         seed=8))
    rf = reconstruct(faint, S, uncertainty_samples=0)
    assert rf.info["stopped_because"].startswith("discrepancy") and rf.info["sweeps"] < 50
    assert rf.info["residual_over_noise"] <= 1.0


def test_stopping_rule_stops_with_and_without_background_frames():
    """Issue 21: the same frames recorded with 10 background frames (subtracted) and without: the default
    reconstruction stops by its rule, not at the sweep cap, after a similar number of sweeps (the image has
    stopped changing; the residual alone still creeps down on background-subtracted data)."""
    import mpisim

    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    S = mpisim.build_system_matrix(sc, tr, mpisim.default_grid(sc, (25, 25, 1)))
    ph = mpisim.get_phantom("shapes", sc)
    sweeps = {}
    for bg in (10, 0):
        meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, frames=3, background_frames=bg,
                                                                                  seed=4))
        r = mpisim.reconstruct(meas, S, uncertainty_samples=0)
        assert not r.info["stopped_because"].startswith("max iterations"), r.info["stopped_because"]
        sweeps[bg] = r.info["sweeps"]
    assert sweeps[10] <= 1.5 * sweeps[0], sweeps


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_one_frame_sweeps_on_the_matrix_as_stored_equal_the_planar_and_numpy_sweeps(dtype):
    """A single frame with few sweeps reads the complex matrix as stored (no planar copy): the same iterate as
    the sweep on planar rows and the numpy twin, with the projections and a stopping rule."""
    import importlib

    Kz = importlib.import_module("mpisim.reco.kaczmarz")

    rng = np.random.default_rng(11)
    A = (rng.standard_normal((80, 45)) + 1j * rng.standard_normal((80, 45))).astype(dtype)
    b = A @ (rng.random(45) + 0j)
    tol = 1e-5 if dtype == np.complex64 else 1e-12
    for kw in ({}, {"enforce_real": False, "enforce_positive": False}, {"order": "random", "seed": 3}):
        fast = kaczmarz(A, b, iterations=4, lam=0.05, **kw)                      # < PLANAR_AFTER: as stored
        planar = kaczmarz(Kz.PlanarRows.from_complex(A), b, iterations=4, lam=0.05, **kw)
        ref = kaczmarz(A, b, iterations=4, lam=0.05, impl="numpy", **kw)
        assert np.abs(fast - planar).max() <= tol * np.abs(ref).max()
        assert np.abs(fast - ref).max() <= 100 * tol * np.abs(ref).max()
    seen = []
    kaczmarz(A, b, iterations=Kz.PLANAR_AFTER - 1, lam=0.05, stop=lambda it, c: seen.append(it) or it == 2)
    assert seen == [0, 1, 2]


def test_one_frame_sweeps_two_rows_per_pass_equal_the_row_by_row_twin():
    """The single-frame compiled sweeps take two rows per pass over the iterate (the pair's coupling a2·conj(a1)
    summed in the first sweep's passes, then reused): with an odd number of rows, zero rows among them and any order
    (rows twice in a row too), planar and as stored, on 1–3 threads (as many as numba runs), the iterate and the auxiliary v equal the row-by-row
    numpy twin to rounding."""
    numba = pytest.importorskip("numba")
    from mpisim.reco import kaczmarz_cpu as K
    from mpisim.reco.kaczmarz_base import sweep_numpy

    rng = np.random.default_rng(5)
    for M, N, dtype in ((41, 30, np.complex64), (40, 33, np.complex128), (1, 7, np.complex64), (2, 7, np.complex64),
                        (3, 7, np.complex64)):           # no row; one; two (the middle one zero)
        A = (rng.standard_normal((M, N)) + 1j * rng.standard_normal((M, N))).astype(dtype)
        A[M // 3 if M != 3 else 1] = 0
        P = np.ascontiguousarray(np.stack([A.real, A.imag], axis=1))
        Af = A.view(A.real.dtype).reshape(M, 2 * N)
        b = A @ rng.random(N).astype(dtype)
        norms = K.row_norms2(Af)
        inv = np.where(norms > 0, 1.0 / (norms + 0.01), 0.0)
        for order in (np.arange(M), rng.permutation(M), np.repeat(rng.permutation(M), 2)):   # rows twice in a row
            c, v = np.zeros((N, 1), complex), np.zeros((M, 1), complex)
            for _ in range(3):
                sweep_numpy(A.astype(complex), b.astype(complex)[:, None], order, inv, 0.1, c, v)
            for (sweep, R), threads in itertools.product(((K.sweep_single, P), (K.sweep_single_interleaved, Af)),
                                                         (1, 2, 3)[:numba.get_num_threads()]):
                cr, ci, vr, vi = np.zeros(N), np.zeros(N), np.zeros(M), np.zeros(M)
                g = np.full((M // 2 + 1, 2), np.nan)            # the pairs' couplings: the first sweep's, then reused
                for it in range(3):
                    sweep(R, b.real.astype(float), b.imag.astype(float), order, inv, 0.1, cr, ci, vr, vi, threads, g,
                          it > 0)
                np.testing.assert_allclose(cr + 1j * ci, c[:, 0], rtol=0, atol=1e-12 * np.abs(c).max())
                np.testing.assert_allclose(vr + 1j * vi, v[:, 0], rtol=0, atol=1e-12 * np.abs(v).max())


def test_one_frame_sweep_split_among_threads_runs_alone_when_they_do_not_start():
    """One frame's sweep split among threads that meet once per pair of rows: asked for more threads than numba
    runs (here one), the first thread waits for the others, then sweeps alone; the image equals the one-thread
    sweep's."""
    numba = pytest.importorskip("numba")
    from mpisim.reco import kaczmarz_cpu as K

    rng = np.random.default_rng(8)
    M, N = 30, 3000
    A = (rng.standard_normal((M, N)) + 1j * rng.standard_normal((M, N))).astype(np.complex64)
    P = np.ascontiguousarray(np.stack([A.real, A.imag], axis=1))
    b = A @ rng.random(N).astype(np.complex64)
    inv = 1.0 / (K.row_norms2(A.view(np.float32).reshape(M, 2 * N)) + 0.01)

    def sweeps(threads):
        st = [np.zeros(N), np.zeros(N), np.zeros(M), np.zeros(M)]
        for _ in range(2):
            K.sweep_single(P, b.real.astype(float), b.imag.astype(float), np.arange(M), inv, 0.1, *st, threads)
        return st[0] + 1j * st[1]

    one = sweeps(1)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        alone = sweeps(2)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(alone, one)


THREADED_SWEEP = """
import numpy as np, numba
from mpisim.reco import kaczmarz_cpu as K
from mpisim.reco.kaczmarz import kaczmarz, sweep_threads
from mpisim.reco.kaczmarz_base import sweep_numpy
import sys
T, N = int(sys.argv[1]), int(sys.argv[2])
assert numba.get_num_threads() == T
rng = np.random.default_rng(9)
M = 41
A = (rng.standard_normal((M, N)) + 1j * rng.standard_normal((M, N))).astype(np.complex64)
A[7] = 0
b = A @ rng.random(N).astype(np.complex64)
P = np.ascontiguousarray(np.stack([A.real, A.imag], axis=1))
Af = A.view(np.float32).reshape(M, 2 * N)
n2 = K.row_norms2(Af)
inv = np.where(n2 > 0, 1.0 / (n2 + 0.01), 0.0)
order = rng.permutation(M)
c, v = np.zeros((N, 1), complex), np.zeros((M, 1), complex)
for _ in range(3):
    sweep_numpy(A.astype(complex), b.astype(complex)[:, None], order, inv, 0.1, c, v)
worst, split = 0.0, True
for sweep, R in ((K.sweep_single, P), (K.sweep_single_interleaved, Af)):
    out = {}
    for threads in (1, T):
        st = [np.zeros(N), np.zeros(N), np.zeros(M), np.zeros(M)]
        g = np.empty((M // 2 + 1, 2))
        for it in range(3):
            sweep(R, b.real.astype(float), b.imag.astype(float), order, inv, 0.1, *st, threads, g, it > 0)
        out[threads] = st[0] + 1j * st[1]
        worst = max(worst, np.abs(out[threads] - c[:, 0]).max() / np.abs(c).max())
    split &= not np.array_equal(out[1], out[T])
x = kaczmarz(A, b, 5, 1e-2)
y = kaczmarz(A, b, 5, 1e-2, impl="numpy")
print(worst, split, sweep_threads(N), np.abs(x - y).max() / np.abs(y).max())
"""


@pytest.mark.parametrize("threads,N", [(2, 2500), (3, 30)])
def test_one_frame_sweep_on_threads_equals_the_numpy_twin(threads, N):
    """With two (three) numba threads (a process of its own: the suite's workers run numba on one), one frame's sweep
    split among them equals the row-by-row numpy twin to rounding, planar and as stored, over three sweeps of a
    shuffled order that reuse the pairs' couplings — and differs from the one-thread sweep in the last bits (the
    threads' sums are added in another order, so the split did happen); three threads over 30 voxels leave the last
    one none. ``kaczmarz()`` takes both threads for 2500 voxels (one for 30) and equals the numpy implementation."""
    pytest.importorskip("numba")
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", THREADED_SWEEP, str(threads), str(N)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    worst, split, used, reco = out.stdout.split()
    assert float(worst) < 1e-12 and split == "True" and used == ("2" if N >= 2048 else "1") and float(reco) < 1e-5