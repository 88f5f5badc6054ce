import h5py
import os

import numpy as np
import pytest
from scipy.special import eval_chebyu

import mpisim
from mpisim import cache
from mpisim.forward import simulate
from mpisim.grid import Grid
from mpisim.phantoms import Phantom
from mpisim.io.sm_file import load_system_matrix
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

from helpers import ncc


@pytest.fixture(scope="module")
def sm1d(tmp_path_factory):
    sc = mpisim.get_scanner("bruker-1d")
    grid = Grid((120, 1, 1), (0.024, 1e-3, 1e-3))
    return grid, build_system_matrix(sc, mpisim.Tracer(core_diameter=50e-9), grid, use_cache=False,
                                     out=tmp_path_factory.mktemp("sm") / "sm1d.mdf",
                                     settings=CalibrationSettings(dtype="complex128"))


def test_1d_rows_follow_chebyshev(sm1d):
    grid, S = sm1d
    x = grid.axis(0)
    A = 0.012
    for n in range(2, 9):
        ref = eval_chebyu(n - 1, x / A) * np.sqrt(np.clip(1 - (x / A) ** 2, 0, 1))
        assert ncc(S.data[0, n], ref) >= 0.98, n


def test_2d_tensor_product_structure(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    grid = Grid((48, 48, 1), (0.024, 0.024, 1e-3))
    S = build_system_matrix(sc, mpisim.Tracer(core_diameter=40e-9), grid, use_cache=False, out=tmp_path / "s.mdf")
    fx, fy = sc.drive_field.frequencies
    x = grid.axis(0)[:, None] / 0.012
    y = grid.axis(1)[None, :] / 0.012
    for mx, my in ((1, 0), (2, 1), (3, 0)):
        k = int(round((mx * fx + my * fy) / (sc.receiver.sampling_rate / sc.num_samples)))
        img = grid.unflatten(S.data[0, k])[:, :, 0]
        ref = eval_chebyu(mx - 1, x) * np.sqrt(np.clip(1 - x**2, 0, 1)) * eval_chebyu(my, y)
        assert ncc(img, ref) >= 0.9, (mx, my, ncc(img, ref))


def test_column_equals_simulate_of_delta_sample(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    grid = default_grid(sc, (7, 6, 1))
    st = CalibrationSettings(delta_concentration=0.2, dtype="complex128")
    S = build_system_matrix(sc, tr, grid, st, out=tmp_path / "s.mdf", use_cache=False)
    for v in (0, 17, 41):
        c = np.zeros(grid.size)
        c[v] = 0.2
        meas = simulate(sc, tr, Phantom(grid, grid.unflatten(c)))
        spec = meas.spectra()[0, 0]                                    # (C, K)
        col = S.data[:, :, v] * 0.2                                    # back to delta-sample signal
        np.testing.assert_allclose(col, spec[:, S.bins], rtol=0, atol=1e-9 * np.abs(spec).max())


def test_operator_dot_test_and_views(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (9, 9, 1)), out=tmp_path / "s.mdf", use_cache=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(S.shape[1]) + 1j * rng.standard_normal(S.shape[1])
    y = rng.standard_normal(S.shape[0]) + 1j * rng.standard_normal(S.shape[0])
    lhs = np.vdot(y, S.forward(x))
    rhs = np.vdot(S.adjoint(y), x)
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)
    sub = S.select(bins=slice(10, 200))
    assert np.shares_memory(sub.data, S.data)
    assert sub.frequencies[0] == S.frequencies[10]


def test_cache_hit_miss_and_corruption(tmp_path, capsys):
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    grid = default_grid(sc, (8, 8, 1))
    cd = tmp_path / "cache"
    msgs = []
    S1 = build_system_matrix(sc, tr, grid, cache_dir=cd, log=msgs.append)
    assert "built" in msgs[-1]
    S2 = build_system_matrix(sc, tr, grid, cache_dir=cd, log=msgs.append)
    assert "served from cache" in msgs[-1]
    np.testing.assert_array_equal(S1.data, S2.data)
    # any parameter change is a new entry
    build_system_matrix(sc, tr.with_(core_diameter=26e-9), grid, cache_dir=cd, log=msgs.append)
    assert "built" in msgs[-1]
    build_system_matrix(sc, tr, grid, CalibrationSettings(delta_concentration=0.2), cache_dir=cd, log=msgs.append)
    assert "built" in msgs[-1]
    build_system_matrix(sc, tr, Grid(grid.shape, grid.fov, (0.001, 0, 0)), cache_dir=cd, log=msgs.append)
    assert "built" in msgs[-1]
    assert len(cache.list_entries(cd)) == 4
    # corrupt the first entry: flip bytes inside the matrix. The hit does not read the matrix; the
    # rows fail their checksum when read, and the entry is rebuilt before they are used
    entry = cache.entry_path(cache.make_key(_params(sc, tr, grid)), cd)
    assert entry.exists() and not os.access(entry, os.W_OK) or os.geteuid() == 0
    assert (entry.stat().st_mode & 0o777) == 0o444
    _damage(entry, 100, 40)
    S3 = build_system_matrix(sc, tr, grid, cache_dir=cd, log=msgs.append)
    assert "served from cache" in msgs[-1]
    np.testing.assert_array_equal(S3.data, S1.data)
    assert any("fails its checksum" in m for m in msgs[-4:]) and "built" in msgs[-1]
    # truncated entry: found by the (metadata-only) hit check
    os.chmod(entry, 0o644)
    entry.write_bytes(entry.read_bytes()[:5000])
    build_system_matrix(sc, tr, grid, cache_dir=cd, log=msgs.append)
    assert any("damaged" in m for m in msgs[-2:]) and "built" in msgs[-1]
    assert cache.clear(cd) == 4


def _damage(path, at, n, dataset="measurement/data"):
    """Overwrite n bytes at byte ``at`` of a dataset's raw storage (a read-only cache entry too)."""
    with h5py.File(path, "r") as h:
        off = h[dataset].id.get_offset()
    mode = path.stat().st_mode
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(off + at)
        old = f.read(n)
        f.seek(off + at)
        f.write(bytes(b ^ 0xA5 for b in old))
    os.chmod(path, mode)


def _params(sc, tr, grid):
    from mpisim.systemmatrix import cache_key

    return cache_key(sc, tr, grid, CalibrationSettings())[1]


def test_file_layout_with_plain_h5py_and_info(tmp_path, capsys):
    from mpisim.cli import main

    out = tmp_path / "sm.mdf"
    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "6x5x1", "--background-frames", "4",
                 "--cache-dir", str(tmp_path / "c"), "--out", str(out)]) == 0
    with h5py.File(out, "r") as h:
        d = h["measurement/data"]
        assert d.shape == (1, 3, 817, 34) and d.dtype == np.complex64
        assert d.dtype.names is None or set(d.dtype.names) == {"r", "i"}
        for flag in ("isFourierTransformed", "isFastFrameAxis", "isFramePermutation"):
            assert h[f"measurement/{flag}"][()] == 1
        assert h["measurement/isBackgroundFrame"][()].tolist() == [0] * 30 + [1] * 4
        assert h["calibration/method"][()] == b"simulation"
        assert h["calibration/size"][()].tolist() == [6, 5, 1]
        assert h["calibration/snr"].shape == (1, 3, 817)
        assert h["calibration/order"][()] == b"xyz"
        assert h["calibration/deltaSampleSize"].shape == (3,)
        assert h["tracer/concentration"][0] == pytest.approx(0.1)
    assert main(["info", str(out)]) == 0
    assert "calibration: method simulation, grid 6x5x1" in capsys.readouterr().out
    S = load_system_matrix(out)
    assert S.data.shape == (3, 817, 30) and S.background.shape == (3, 817, 4)


def test_snr_mpifiles_style_against_background(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    st = CalibrationSettings(background_frames=50, noise_density=2e-9)
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (10, 10, 1)), st, out=tmp_path / "s.mdf",
                            use_cache=False)
    # analytic expectation with the stated noise: E|z| = σ√π/2
    sig = np.abs(S.data * 0.1).mean(axis=-1)
    sigma = 2e-9 * np.sqrt(sc.receiver.bandwidth) * np.sqrt(sc.num_samples)
    expected = sig / (sigma * np.sqrt(np.pi) / 2)
    strong = expected > 20
    assert np.median(S.snr[strong] / expected[strong]) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("args,needle", [
    (["--grid", "0x4x1"], "grid sizes must be positive"),
    (["--grid", "4x4"], "three sizes"),
    (["--grid", "4x4x1", "--fov", "0.02,-0.02,0.001"], "fov must be positive"),
    (["--grid", "4x4x1", "--fov", "38,38,1"], "--fov 38,38,1 m: beyond 1 m"),          # mm typed for m: before any work
    (["--grid", "4x4x1", "--delta-concentration=-1mol/L"], "negative concentration"),
    (["--grid", "4x4x1", "--delta-concentration", "100"], "needs a unit"),
])
def test_sysmat_bad_input(tmp_path, capsys, args, needle):
    from mpisim.cli import main

    out = tmp_path / "sm.mdf"
    assert main(["sysmat", *args, "--cache-dir", str(tmp_path / "c"), "--out", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_unusable_cache_folder(tmp_path, capsys):
    from mpisim.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    out = tmp_path / "o.mdf"
    assert main(["sysmat", "--grid", "3x3x1", "--cache-dir", str(blocker / "c"), "--out", str(out)]) == 2
    assert "cache folder" in capsys.readouterr().err
    assert not out.exists()


def test_column_assembly_kernel_matches_numpy_twin():
    from mpisim.cpu_kernels import assemble_columns
    from mpisim.systemmatrix import assemble_columns_xp

    rng = np.random.default_rng(1)
    spec = (rng.standard_normal((37, 3, 150)) + 1j * rng.standard_normal((37, 3, 150))).astype(np.complex64)
    R = (rng.standard_normal((3, 3, 150)) + 1j * rng.standard_normal((3, 3, 150))).astype(np.complex64)
    R[0, 1:] = 0          # diagonal coil for channel 1, zero response for one component of channel 3
    R[2, 0] = 0
    out = np.empty((3, 150, 37), np.complex64)
    assemble_columns(spec, R, out, 16)
    np.testing.assert_allclose(out, assemble_columns_xp(spec, R), rtol=1e-5, atol=1e-5)


def test_system_matrix_operator_passes_the_dot_test(tmp_path):
    """⟨A x, y⟩ = ⟨x, Aᴴ y⟩ for the operator (on disk and in memory); a wrong adjoint fails the same check."""
    from mpisim.operator import SystemMatrix, dot_test

    sc = mpisim.get_scanner("bruker-2d")
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (8, 8, 1)), CalibrationSettings(),
                            out=tmp_path / "s.mdf", use_cache=False)
    assert S.shape == (S.num_rx_channels * S.bins.size, 64)
    assert dot_test(S) < 1e-6                                   # complex64 rows
    assert dot_test(S, frames=3) < 1e-6
    mem = SystemMatrix(S.data.astype(np.complex128), S.bins, S.frequencies, S.grid, S.snr, None, S.acquisition)
    assert dot_test(mem) < 1e-13

    class Transposed(SystemMatrix):                             # Aᵀ instead of Aᴴ: not the adjoint
        def adjoint(self, u):
            return self.matrix.T @ u

    wrong = Transposed(mem.data, S.bins, S.frequencies, S.grid, S.snr, None, S.acquisition)
    assert dot_test(wrong) > 1e-2


def test_cache_key_ignores_the_gilbert_damping_only():
    """The Gilbert damping (used by the Néel models of `mpisim mps`, none of which images) does not change a matrix's
    cache key; the core diameter does."""
    from mpisim.systemmatrix import cache_key

    sc = mpisim.get_scanner("bruker-2d")
    grid = default_grid(sc, (5, 5, 1))
    key = lambda tr: cache_key(sc, tr, grid, CalibrationSettings())[0]
    assert key(mpisim.Tracer(damping=0.3)) == key(mpisim.Tracer())
    assert key(mpisim.Tracer(core_diameter=24e-9)) != key(mpisim.Tracer())
