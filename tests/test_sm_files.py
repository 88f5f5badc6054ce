"""System matrices on disk: rows read on demand from any layout, checksums, the cache's links,
verification, lock and free-space check, streamed measurements (issue 11)."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import mdf_factory as F
import mpisim
from mpisim import cache, resources
from mpisim.cli import main
from mpisim.io import checksum
from mpisim.io.calibration import DamagedRows
from mpisim.io.mdf import read_mdf
from mpisim.io import sm_file
from mpisim.io.sm_file import load_system_matrix
from mpisim.operator import SystemMatrix
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid


@pytest.fixture(scope="module")
def ref_sm(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    F.write_mpifiles_sm(d / "fast.mdf")
    return d, load_system_matrix(d / "fast.mdf").data


@pytest.mark.parametrize("layout", ["chunked", "slow", "time"])
def test_rows_from_every_layout(ref_sm, tmp_path, layout):
    """Selected rows read from chunked, slow-frame-axis and time-domain files equal the contiguous
    fast-axis file's (OpenMPIData layout), in any requested order."""
    d, whole = ref_sm
    F.write_mpifiles_sm(tmp_path / "x.mdf", layout=layout)
    S = load_system_matrix(tmp_path / "x.mdf")
    assert S.on_disk and S.nonzero_rows is None
    rng = np.random.default_rng(3)
    c, k = rng.integers(0, 2, 40), rng.integers(0, 817, 40)
    tol = 2e-3 if layout == "time" else 0           # float32 time samples → rfft
    A = S.rows(c, k)
    np.testing.assert_allclose(A, whole[c, k], rtol=0, atol=tol * np.abs(whole).max())
    A2, bg = S.rows(np.sort(c), np.zeros(40, int) + 5, background=True)
    assert A2.shape == (40, 169) and bg.shape == (40, 6)


def test_frequency_selected_rows(ref_sm, tmp_path):
    d, whole = ref_sm
    sel = np.arange(20, 600, 2)
    F.write_mpifiles_sm(tmp_path / "fs.mdf", freq_select=sel)
    S = load_system_matrix(tmp_path / "fs.mdf")
    np.testing.assert_array_equal(S.bins, sel)
    np.testing.assert_array_equal(S.rows([0, 1], [3, 7]), whole[[0, 1], sel[[3, 7]]])


def test_reconstruction_reads_only_the_selected_rows(tmp_path, monkeypatch):
    """An on-disk matrix is never read whole by reco, and gives the in-memory image exactly."""
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    S = build_system_matrix(sc, tr, default_grid(sc, (15, 15, 1)), CalibrationSettings(background_frames=6),
                            out=tmp_path / "s.mdf", use_cache=False)
    meas = mpisim.simulate(sc, tr, mpisim.get_phantom("shapes", sc),
                           mpisim.SimulationSettings.realistic(sc, frames=2, background_frames=4, seed=2))
    whole = SystemMatrix(S.data, S.bins, S.frequencies, S.grid, S.snr, S.background, S.acquisition, S.unit)
    ref = mpisim.reconstruct(meas, whole)
    disk = load_system_matrix(tmp_path / "s.mdf")
    read = []
    monkeypatch.setattr(SystemMatrix, "data", property(lambda self: pytest.fail("whole matrix read")))
    orig = sm_file.read_rows

    def counting(path, c, k, bins=None):
        read.append(len(c))
        return orig(path, c, k, bins)
    monkeypatch.setattr(sm_file, "read_rows", counting)
    r = mpisim.reconstruct(meas, disk)
    np.testing.assert_array_equal(r.image, ref.image)
    assert read == [r.info["rows"] + r.info["zero_rows_dropped"]] and r.info["rows"] < 0.5 * disk.shape[0]


def test_checksum_twins():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((7, 3001)) + 1j * rng.standard_normal((7, 3001))).astype(np.complex64)
    s1, s2 = checksum.new_state((7,)), checksum.new_state((7,))
    for lo, hi in ((0, 5), (5, 1000), (1000, 3001)):          # built up piece by piece, in frame order
        checksum.update(s1, a[:, lo:hi])
    checksum.update_numpy(s2, a)
    np.testing.assert_array_equal(s1, s2)
    b = a.copy()
    b[3, 1234] += np.float32(1e-6)
    assert (checksum.of_rows(b) != checksum.of_rows(a)).tolist() == [False] * 3 + [True] + [False] * 3


def test_layouts_hold_the_same_matrix(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    g = default_grid(sc, (9, 7, 1))
    st = CalibrationSettings(background_frames=3, noise_density=1e-9)
    A = build_system_matrix(sc, mpisim.Tracer(), g, st, out=tmp_path / "a.mdf", use_cache=False, chunk_voxels=5)
    B = build_system_matrix(sc, mpisim.Tracer(), g, st, out=tmp_path / "b.mdf", use_cache=False, layout="chunked")
    np.testing.assert_array_equal(A.data, B.data)
    np.testing.assert_array_equal(A.background, B.background)
    np.testing.assert_allclose(A.snr, B.snr, rtol=1e-6)
    with h5py.File(tmp_path / "a.mdf", "r") as h:
        assert h["measurement/data"].chunks is None and h["_mpisim/rowChecksum"].shape == (3, 817)


def _damage(path, at, n, dataset="measurement/data"):
    with h5py.File(path, "r") as h:
        off = h[dataset].id.get_offset()
    mode = os.stat(path).st_mode
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(off + at)
        old = f.read(n)
        f.seek(off + at)
        f.write(bytes(b ^ 0x5A for b in old))
    os.chmod(path, mode)


@pytest.fixture
def small(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    m = tmp_path / "m.mdf"
    sm = tmp_path / "sm.mdf"
    mpisim.simulate(sc, mpisim.Tracer(), mpisim.get_phantom("shapes", sc),
                    mpisim.SimulationSettings.realistic(sc, background_frames=4, seed=1), out=m)
    assert main(["sysmat", "--grid", "12x12x1", "--no-cache", "--out", str(sm)]) == 0
    return tmp_path, m, sm


def test_damaged_row_is_a_one_line_error(small, capsys):
    d, m, sm = small
    capsys.readouterr()
    with h5py.File(sm, "r") as h:                      # the strongest row near the 3rd harmonic (always used)
        k = 40 + int(np.argmax(h["calibration/snr"][0, 0, 40:60]))
        NE = h["measurement/data"].shape[-1]
    _damage(sm, 8 * (k * NE + 3), 8)
    assert main(["reco", str(m), "--sm", str(sm), "--out", str(d / "r.mdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(sm) in err and "channel 0, frequency bin" in err
    assert "fails its checksum" in err and not (d / "r.mdf").exists()


def test_truncated_calibration_and_empty_selection(small, capsys):
    d, m, sm = small
    with open(sm, "rb") as f:
        head = f.read(os.path.getsize(sm) // 2)
    (d / "cut.mdf").write_bytes(head)
    capsys.readouterr()
    assert main(["reco", str(m), "--sm", str(d / "cut.mdf"), "--out", str(d / "r.mdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cut.mdf" in err
    assert main(["reco", str(m), "--sm", str(sm), "--out", str(d / "r.mdf"), "--snr-threshold", "1e9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty frequency selection" in err and str(sm) in err
    assert not (d / "r.mdf").exists()


def test_frequency_selections_that_do_not_match(tmp_path, capsys):
    F.write_mpifiles_sm(tmp_path / "fs.mdf", freq_select=np.arange(400, 600))
    F.write_mpifiles_meas(tmp_path / "m.mdf")
    assert main(["convert", str(tmp_path / "m.mdf"), str(tmp_path / "mf.mdf"), "--to", "frequency",
                 "--max-freq", "300e3"]) == 0
    capsys.readouterr()
    assert main(["reco", str(tmp_path / "mf.mdf"), "--sm", str(tmp_path / "fs.mdf"),
                 "--out", str(tmp_path / "r.mdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "fs.mdf" in err and "do not match" in err and len(err.splitlines()) == 1


def test_cache_hit_is_a_link_and_entries_are_checked(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    g = default_grid(sc, (15, 15, 1))
    cd = tmp_path / "c"
    msgs = []
    build_system_matrix(sc, tr, g, cache_dir=cd, out=tmp_path / "a.mdf", load=False, log=msgs.append)
    build_system_matrix(sc, tr, g, cache_dir=cd, out=tmp_path / "b.mdf", load=False, log=msgs.append)
    entry = cache.entry_path(cache.make_key(_params(sc, tr, g)), cd)
    assert os.path.samefile(entry, tmp_path / "a.mdf") and os.path.samefile(entry, tmp_path / "b.mdf")
    assert os.stat(entry).st_nlink == 3 and "linked to" in msgs[-1]
    # one flipped byte in any other dataset, or the content of another key, is found at the hit
    for dataset in ("tracer/concentration", "calibration/snr", "_mpisim/rowChecksum"):
        _damage(entry, 0, 1, dataset)
        assert cache.verify(entry, cache.make_key(_params(sc, tr, g))) == f"/{dataset} does not match its checksum"
        _damage(entry, 0, 1, dataset)                   # flip back
    assert cache.verify(entry, cache.make_key(_params(sc, tr, g))) is None
    g13 = default_grid(sc, (13, 13, 1))
    other = build_system_matrix(sc, tr, g13, cache_dir=cd, load=False)
    os.chmod(entry, 0o644)
    os.replace(other, entry)                            # a 13×13 matrix under the 15×15 key
    msgs.clear()
    S = build_system_matrix(sc, tr, g, cache_dir=cd, log=msgs.append)
    assert "damaged (key mismatch)" in " ".join(msgs) and "built" in msgs[-1] and S.grid.shape == (15, 15, 1)


def _params(sc, tr, grid, **kw):
    from mpisim.systemmatrix import cache_key

    return cache_key(sc, tr, grid, CalibrationSettings(**kw))[1]


def test_output_on_another_file_system_is_registered(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "same_device", lambda a, b: False)
    sc = mpisim.get_scanner("bruker-2d")
    g = default_grid(sc, (8, 8, 1))
    cd = tmp_path / "c"
    msgs = []
    build_system_matrix(sc, mpisim.Tracer(), g, cache_dir=cd, out=tmp_path / "a.mdf", load=False, log=msgs.append)
    assert list(cd.glob("sm-*.mdf")) == [] and len(list(cd.glob("sm-*.ref"))) == 1
    S = build_system_matrix(sc, mpisim.Tracer(), g, cache_dir=cd, log=msgs.append)
    assert "served from cache" in msgs[-1] and os.path.samefile(S.origin, tmp_path / "a.mdf")


BUILD = """
import sys, mpisim
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid
sc = mpisim.get_scanner("bruker-2d")
build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (41, 41, 1)), CalibrationSettings(), cache_dir=sys.argv[1],
                    out=sys.argv[2], log=lambda m: print(m, flush=True), load=False)
"""


def test_concurrent_builds_build_once(tmp_path):
    """Four processes want the same entry while another holds its build lock: all wait, then exactly one
    builds and three are served its entry. The lock is let go once every process has said it waits (no
    fixed sleep: the processes may start slowly on a busy machine)."""
    from mpisim.systemmatrix import cache_key

    sc = mpisim.get_scanner("bruker-2d")
    key = cache_key(sc, mpisim.Tracer(), default_grid(sc, (41, 41, 1)), CalibrationSettings())[0]
    cd = tmp_path / "c"
    cache.ensure_dir(cd)
    with cache.lock(key, cd):
        procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(cd), str(tmp_path / f"o{i}.mdf")],
                                  stdout=subprocess.PIPE, text=True) for i in range(4)]
        heads = []
        for p in procs:                          # each blocks on the lock after saying so (or ends early)
            head = ""
            while "waiting for another mpisim process" not in head:
                line = p.stdout.readline()
                if not line:
                    break
                head += line
            heads.append(head)
    outs = [h + p.communicate()[0] for h, p in zip(heads, procs)]
    assert [p.returncode for p in procs] == [0] * 4
    assert sum("waiting for another mpisim process" in o for o in outs) == 4
    assert sum("built" in o for o in outs) == 1 and sum("served from cache" in o for o in outs) == 3
    assert len({os.stat(tmp_path / f"o{i}.mdf").st_ino for i in range(4)}) == 1


def test_disk_space_is_checked_before_work(tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    U = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: U(1 << 30, (1 << 30) - (20 << 20), 20 << 20))
    cd = tmp_path / "c"
    assert main(["sysmat", "--scanner", "bruker-3d", "--grid", "9x9x9", "--cache-dir", str(cd),
                 "--out", str(tmp_path / "s.mdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "GiB" in err and "free" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.mdf").exists() and not list(cd.glob("*.mdf")) and not list(cd.glob(".*part"))
    assert main(["simulate", "--scanner", "bruker-3d", "--frames", "200", "--out", str(tmp_path / "m.mdf")]) == 2
    assert "free" in capsys.readouterr().err and not list(tmp_path.glob("m.mdf*")) and not list(tmp_path.glob(".m*"))


def test_streamed_simulation_equals_in_memory(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    st = mpisim.SimulationSettings.realistic(sc, frames=7, background_frames=3, seed=4)
    ph = mpisim.get_phantom("shapes", sc)
    m = mpisim.simulate(sc, mpisim.Tracer(), ph, st)
    h = mpisim.simulate(sc, mpisim.Tracer(), ph, st, out=tmp_path / "s.mdf", block_frames=4)
    assert h.data.size == 0 and h.provenance.written_to == str(tmp_path / "s.mdf")
    f = read_mdf(tmp_path / "s.mdf")
    np.testing.assert_array_equal(f.data, m.data)
    np.testing.assert_array_equal(f.is_background, m.is_background)
    assert (os.stat(tmp_path / "s.mdf").st_mode & 0o777) == 0o666 & ~_umask()


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


def test_damaged_rows_raise_named_error(tmp_path):
    F.write_mpifiles_sm(tmp_path / "x.mdf", layout="chunked")
    with h5py.File(tmp_path / "x.mdf", "r") as h:
        info = h["measurement/data"].id.get_chunk_info(0)
    raw = bytearray((tmp_path / "x.mdf").read_bytes())
    raw[info.byte_offset:info.byte_offset + info.size] = b"\xff" * info.size     # NaNs in the first chunk
    (tmp_path / "x.mdf").write_bytes(bytes(raw))
    S = load_system_matrix(tmp_path / "x.mdf")
    with pytest.raises(DamagedRows, match=r"x\.mdf: /measurement/data row \(channel 0, frequency bin 1\) contains NaN"):
        S.rows([0, 1], [1, 1])
    S.rows([1], [100])                                   # other rows are fine


def test_damaged_cached_matrix_used_by_reco_is_dropped_and_rebuilt(tmp_path, capsys, monkeypatch):
    """`reco --sm` on a link to a cache entry whose rows fail their checksum: one-line error, the entry
    leaves the cache, and the next `mpisim sysmat` builds it again."""
    sc = mpisim.get_scanner("bruker-2d")
    m, sm, cd = tmp_path / "m.mdf", tmp_path / "sm.mdf", tmp_path / "c"
    monkeypatch.setenv("MPISIM_CACHE_DIR", str(cd))
    mpisim.simulate(sc, mpisim.Tracer(), mpisim.get_phantom("shapes", sc),
                    mpisim.SimulationSettings.realistic(sc, background_frames=4, seed=1), out=m)
    args = ["sysmat", "--grid", "12x12x1", "--out", str(sm)]
    assert main(args) == 0
    with h5py.File(sm, "r") as h:
        k = 40 + int(np.argmax(h["calibration/snr"][0, 0, 40:60]))
        NE = h["measurement/data"].shape[-1]
    _damage(sm, 8 * (k * NE + 5), 4)
    capsys.readouterr()
    assert main(["reco", str(m), "--sm", str(sm), "--out", str(tmp_path / "r.mdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fails its checksum" in err and "removed from the cache" in err
    assert list(cd.glob("sm-*.mdf")) == []
    assert main(args + ["--overwrite"]) == 0 and "built" in capsys.readouterr().err
    assert main(["reco", str(m), "--sm", str(sm), "--out", str(tmp_path / "r.mdf")]) == 0


def test_chunk_failing_its_fletcher32_is_named(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (6, 6, 1)), out=tmp_path / "c.mdf",
                            use_cache=False, layout="chunked")
    with h5py.File(tmp_path / "c.mdf", "r") as h:
        info = h["measurement/data"].id.get_chunk_info(3)
    raw = bytearray((tmp_path / "c.mdf").read_bytes())
    raw[info.byte_offset + 20] ^= 0xFF
    (tmp_path / "c.mdf").write_bytes(bytes(raw))
    with pytest.raises(DamagedRows, match=r"c\.mdf: /measurement/data rows of channel 0, bin positions 24–31 "
                                          r"cannot be read"):
        S.rows([0], [25])


def test_selection_too_big_for_memory_is_refused(small, monkeypatch, capsys):
    d, m, sm = small
    monkeypatch.setattr(resources, "available_memory", lambda: 64 << 10)      # 64 KiB available
    capsys.readouterr()
    assert main(["reco", str(m), "--sm", str(sm), "--out", str(d / "r.mdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "selected rows" in err and "--top-k" in err and str(sm) in err


def test_write_error_on_the_last_stripe_is_reported_not_hung(tmp_path, monkeypatch):
    """A failing write (disk full) on the I/O thread ends the build with a one-line error and no file."""
    import errno

    import mpisim.io.calibration as cal
    import mpisim.systemmatrix as smod
    from mpisim.errors import MPISimError

    monkeypatch.setattr(smod, "STRIPE_BYTES", 1 << 20)
    calls = {"n": 0}
    real = os.pwrite

    def pwrite(fd, data, off):
        calls["n"] += 1
        if calls["n"] > 3 * 817 * 3:                       # fails on the 4th stripe (the last one here)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, off)
    monkeypatch.setattr(cal.os, "pwrite", pwrite)
    sc = mpisim.get_scanner("bruker-2d")
    with pytest.raises(MPISimError, match="disk full"):
        build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (20, 10, 1)), CalibrationSettings(background_frames=3),
                            out=tmp_path / "s.mdf", use_cache=False, chunk_voxels=50)
    assert list(tmp_path.iterdir()) == []


def test_damaged_registered_file_is_rebuilt_and_read(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "same_device", lambda a, b: False)
    sc = mpisim.get_scanner("bruker-2d")
    g = default_grid(sc, (8, 8, 1))
    cd = tmp_path / "c"
    good = build_system_matrix(sc, mpisim.Tracer(), g, cache_dir=cd, out=tmp_path / "a.mdf").rows([0], [3])
    S = build_system_matrix(sc, mpisim.Tracer(), g, cache_dir=cd)
    assert os.path.samefile(S.origin, tmp_path / "a.mdf")
    with h5py.File(tmp_path / "a.mdf", "r") as h:
        NE = h["measurement/data"].shape[-1]
    _damage(tmp_path / "a.mdf", 8 * 3 * NE, 8)
    np.testing.assert_array_equal(S.rows([0], [3]), good)


def test_row_size_of_complex128_matrices(tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (4, 4, 1)), CalibrationSettings(dtype="complex128"),
                            out=tmp_path / "s.mdf", use_cache=False)
    assert S.row_source.itemsize == 16 and S.rows([0], [3]).dtype == np.complex128


def test_build_with_numbas_fallback_threading_layer(tmp_path):
    """The I/O thread's kernels are serial: the build runs under numba's non-thread-safe workqueue layer."""
    code = ("import mpisim, mpisim.systemmatrix as s\n"
            "s.STRIPE_BYTES = 1 << 20\n"
            "sc = mpisim.get_scanner('bruker-2d')\n"
            "s.build_system_matrix(sc, mpisim.Tracer(), s.default_grid(sc, (20, 10, 1)), out=r'%s', use_cache=False,"
            " chunk_voxels=20, load=False)\n" % (tmp_path / "s.mdf"))
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}   # threads, whatever the suite's
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]


def test_compound_in_i_r_order_is_not_read_raw(tmp_path):
    F.write_mpifiles_sm(tmp_path / "a.mdf")
    with h5py.File(tmp_path / "a.mdf", "r") as h:
        d = h["measurement/data"][()]
    ir = np.dtype([("i", "<f4"), ("r", "<f4")])
    swapped = np.empty(d.shape, ir)
    swapped["r"], swapped["i"] = d.real, d.imag
    import shutil

    shutil.copy(tmp_path / "a.mdf", tmp_path / "b.mdf")
    with h5py.File(tmp_path / "b.mdf", "r+") as h:
        del h["measurement/data"]
        h["measurement/data"] = swapped
    np.testing.assert_array_equal(load_system_matrix(tmp_path / "b.mdf").rows([1, 0], [7, 9]),
                                  load_system_matrix(tmp_path / "a.mdf").rows([1, 0], [7, 9]))
