"""Streams and live reconstruction (issue 24): a measurement written while it is read, followed frame block by
frame block, each image against the offline reconstruction of the same frames."""

import json
import os
import re
import threading
import time

import numpy as np
import pytest

import mpisim
from mpisim.cli import main
from mpisim.errors import MPISimError
from mpisim.io.stream import StreamFrames, StreamWriter
from mpisim.live import LiveSettings, follow
from mpisim.reco.tikhonov import TikhonovOperator
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid


@pytest.fixture(scope="module")
def setup2d(tmp_path_factory):
    """bruker-2d, a 21 × 21 matrix on disk and 250 frames (10 background, then 240) of the shapes phantom."""
    d = tmp_path_factory.mktemp("live")
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    sm_path = d / "sm.mdf"
    build_system_matrix(sc, tr, default_grid(sc, (21, 21, 1)), CalibrationSettings(background_frames=10), out=sm_path)
    meas = mpisim.simulate(sc, tr, mpisim.get_phantom("shapes", sc),
                           mpisim.SimulationSettings.realistic(sc, frames=240, background_frames=10, seed=4))
    return d, sc, tr, mpisim.load_system_matrix(sm_path), meas


def _write(path, meas, per=8, delay=0.0, stop_after=None, complete=True):
    """Stream ``meas`` into ``path`` ``per`` frames at a time (optionally stopping early, unmarked)."""
    w = StreamWriter(path, meas, overwrite=True)
    n = meas.num_frames if stop_after is None else stop_after
    for a in range(0, n, per):
        b = min(n, a + per)
        w.append(meas.data[a:b], meas.is_background[a:b])
        time.sleep(delay)
    w.close(complete=complete)


def test_a_stream_is_a_valid_mdf_file_at_every_moment(setup2d, tmp_path):
    _, sc, _, _, meas = setup2d
    path = tmp_path / "s.mdf"
    w = StreamWriter(path, meas, overwrite=True)
    try:
        w.append(meas.data[:12], meas.is_background[:12])
        m = mpisim.read_mdf(path)                 # an ordinary reader, while the writer holds the file
        assert m.num_frames == 12 and m.is_background.sum() == 10
        np.testing.assert_array_equal(m.data, meas.data[:12])
        with StreamFrames(path) as src:
            assert src.available == 12 and src.streaming and not src.complete
            w.append(meas.data[12:20], meas.is_background[12:20])
            assert src.refresh() == 20
            np.testing.assert_array_equal(src.read(np.arange(14, 18)).data, meas.data[14:18])
            assert src.written_at(19) is not None and src.frame_time == pytest.approx(sc.drive_field.cycle)
    finally:
        w.close()
    with StreamFrames(path) as src:
        assert src.complete
    assert mpisim.read_mdf(path).num_frames == 20


def test_live_images_equal_the_offline_tikhonov_and_follow_kaczmarz(setup2d, tmp_path):
    """Each live image is the Tikhonov solution of its block (the operator against a direct solve of the normal
    equations) and correlates with the offline reconstruction (Kaczmarz, its stopping rule) of the same frames."""
    _, sc, tr, S, meas = setup2d
    path = tmp_path / "s.mdf"
    th = threading.Thread(target=_write, args=(path, meas), kwargs={"delay": 0.01})
    th.start()
    try:
        res = follow(path, S, settings=LiveSettings(average=10, policy="all"))
    finally:
        th.join()
    assert res.ended == "the stream is complete" and res.dropped == 0 and res.info["frames_left"] == 0
    assert len(res.blocks) == 24 and list(res.blocks) == list(range(24))
    assert np.all(res.latency >= 0)
    off = mpisim.reconstruct(meas, S, average=10)
    for k in (0, 11, 23):
        assert np.corrcoef(res.images[k], off.image[k])[0, 1] > 0.99
        assert res.images[k].sum() == pytest.approx(off.image[k].sum(), rel=0.05)
    # the operator against the normal equations, on this block's rows
    from mpisim.frames import as_frames
    from mpisim.reco.assemble import assemble

    pr = assemble(as_frames(meas), S, mpisim.RecoParams(preprocessing=mpisim.Preprocessing(average=10,
                                                                                               frames=tuple(range(10)))))
    A = np.concatenate([pr.A.real, pr.A.imag]).astype(float)
    lam = 1e-2 * float(np.sum(np.abs(pr.A) ** 2)) / A.shape[1]
    b = np.concatenate([pr.b[:, 0].real, pr.b[:, 0].imag])
    direct = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ b)
    assert np.linalg.norm(res.images[0] - direct) / np.linalg.norm(direct) < 0.01
    assert res.info["operator_truncation_error"] < 0.01


def test_the_operator_is_the_tikhonov_solution_and_round_trips():
    rng = np.random.default_rng(0)
    A = ((rng.standard_normal((60, 40)) + 1j * rng.standard_normal((60, 40))) * np.logspace(0, -2, 40)).astype(np.complex64)
    w = rng.uniform(0.5, 2.0, 60)
    b = rng.standard_normal(60) + 1j * rng.standard_normal(60)
    op = TikhonovOperator(A, w, 0.05, floor=1e-9, check=b, storage="float32")
    Ar = np.concatenate([A.real * w[:, None], A.imag * w[:, None]]).astype(float)
    lam = 0.05 * float(np.sum(np.abs(A) ** 2 * (w ** 2)[:, None])) / 40
    x = np.linalg.solve(Ar.T @ Ar + lam * np.eye(40), Ar.T @ np.concatenate([(b * w).real, (b * w).imag]))
    np.testing.assert_allclose(op(b), x, rtol=2e-5, atol=1e-6 * np.abs(x).max())
    assert op.quantization_error == 0
    again = TikhonovOperator.from_arrays(**op.arrays())
    np.testing.assert_array_equal(again(b), op(b))
    coarse = TikhonovOperator(A, w, 0.05, floor=0.5, check=b)
    assert coarse.rank < op.rank and 0 < coarse.truncation_error < 1
    # the default: P as 16-bit integers, one scale per component; the rounding's share of the error is recorded
    q = TikhonovOperator(A, w, 0.05, floor=1e-9, check=b)
    assert q.storage == "int16" and q.Pt.dtype == np.int16 and q.nbytes < op.nbytes
    err = np.linalg.norm(q(b) - x) / np.linalg.norm(x)
    assert err < 1e-3 and q.quantization_error == pytest.approx(err, rel=0.05)
    np.testing.assert_array_equal(TikhonovOperator.from_arrays(**q.arrays())(b), q(b))


def test_row_products_compiled_and_numpy_agree():
    """The compiled products of the live operator (mpisim.cpu_kernels.row_dots: four right-hand sides per pass, then
    the rest; int16 or float32 rows) against their numpy twin and a float64 product, for 1 to 6 right-hand sides."""
    pytest.importorskip("numba")
    from mpisim.cpu_kernels import row_dots
    from mpisim.reco.tikhonov import row_dots_numpy

    rng = np.random.default_rng(1)
    for Q in (rng.integers(-32767, 32768, (300, 517)).astype(np.int16),
              rng.standard_normal((300, 517)).astype(np.float32)):
        for F in range(1, 7):
            xt = rng.standard_normal((F, 517)).astype(np.float32)
            out = np.empty((F, 300), np.float32)
            row_dots(Q, xt, out)
            exact = xt.astype(np.float64) @ Q.T.astype(np.float64)
            scale = np.abs(exact).max()
            assert np.abs(out - exact).max() < 1e-5 * scale
            assert np.abs(row_dots_numpy(Q, xt) - exact).max() < 1e-5 * scale


def test_a_cached_operator_spares_reading_the_matrix_rows(setup2d, tmp_path, monkeypatch):
    """The first session computes the operator and caches it with the rows it kept; the next one finds it from the
    selection alone and never reads the matrix rows (a shorter set-up, fewer frames gone by), with the same images."""
    _, _, _, S, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    settings = LiveSettings(average=10, policy="all")
    first = follow(path, S, settings=settings)
    assert first.info["operator_cached"] is False
    again_sm = mpisim.load_system_matrix(S.origin)

    def no_rows(*a, **k):
        raise AssertionError("the matrix rows were read")

    monkeypatch.setattr(again_sm, "rows", no_rows)
    again = follow(path, again_sm, settings=settings)
    assert again.info["operator_cached"] is True and again.info["rows"] == first.info["rows"]
    np.testing.assert_array_equal(again.images, first.images)


def test_the_cached_entry_keeps_which_rows_were_dropped(setup2d, tmp_path):
    """Rows an on-disk matrix drops as zero after reading are known without reading it: the cache entry keeps which of
    the selected rows the problem kept (here every third one dropped by hand, as zero rows would be)."""
    from dataclasses import replace

    from mpisim.live import _cached_problem, _tikhonov
    from mpisim.reco.assemble import assemble
    from mpisim.reconstruction import RecoParams

    _, _, _, S, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    params = RecoParams()
    params = replace(params, preprocessing=replace(params.preprocessing, average=10, frames=tuple(range(10))))
    with StreamFrames(path) as src:
        pre = assemble(src, S, params, matrix=False)
        full = assemble(src, S, params)
        keep = np.arange(full.cidx.size) % 3 != 0
        sub = replace(full, A=full.A[keep], b=full.b[keep], cidx=full.cidx[keep], kidx=full.kidx[keep])
        op, cached = _tikhonov(sub, S, 1e-2, sub.b[:, 0], pre)
        assert not cached
        problem, again, _ = _cached_problem(src, S, params, LiveSettings(average=10), None, None)
    assert problem is not None and problem.A is None and not problem.positive
    np.testing.assert_array_equal(problem.cidx, sub.cidx)
    np.testing.assert_array_equal(problem.kidx, sub.kidx)
    np.testing.assert_array_equal(problem.b, sub.b)
    np.testing.assert_array_equal(again(problem.b[:, 0]), op(sub.b[:, 0]))


def test_blocks_that_pile_up_are_dropped_and_counted(setup2d, tmp_path):
    _, _, _, S, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)                       # every frame there before the session starts
    res = follow(path, S, settings=LiveSettings(average=10, policy="latest"))
    assert res.ended == "the file holds no more frames" or res.ended == "the stream is complete"
    assert list(res.blocks) == [0, 23] and res.dropped == 22 * 10


def test_blocks_that_pile_up_are_reconstructed_together(setup2d, tmp_path):
    """The default (batch): of the 23 blocks waiting after the first, the newest 16 are reconstructed in one pass
    and the 7 older ones dropped (BATCH_MAX), each image equal to its own block's reconstructed alone."""
    _, _, _, S, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    res = follow(path, S, settings=LiveSettings(average=10))
    assert res.info["policy"] == "batch"
    assert list(res.blocks) == [0] + list(range(8, 23 + 1)) and res.dropped == 7 * 10
    one = follow(path, S, settings=LiveSettings(average=10, policy="all"))
    np.testing.assert_allclose(res.images[1:], one.images[8:], rtol=1e-5, atol=1e-6 * np.abs(one.images).max())


def test_a_stream_that_stops_unmarked_ends_the_session_and_says_so(setup2d, tmp_path):
    _, _, _, S, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, stop_after=100, complete=False)
    res = follow(path, S, settings=LiveSettings(average=10, idle_timeout=0.3))
    assert "not marked complete" in res.ended and res.blocks[-1] == 8


def test_followed_rois_track_the_iron_and_warn(setup2d, tmp_path):
    """Two discs of iron, an ROI around each and one where there is none: the amounts (spill between the ROIs
    corrected) against each disc's iron, their scatter from image to image within the σ the background frames
    give, no warning (nothing arrives); the on-target fraction."""
    _, sc, tr, S, _ = setup2d
    grid = mpisim.phantoms.phantom_grid(sc, resolution=0.25e-3)
    fill = lambda c, r: mpisim.phantoms.supersampled_fill(
        grid, lambda X, Y, Z: (X - c[0]) ** 2 + (Y - c[1]) ** 2 <= r * r)
    ph = mpisim.Phantom(grid, 0.05 * fill((3e-3, 2e-3), 1e-3) + 0.02 * fill((-4e-3, -3e-3), 1.2e-3), "discs")
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, frames=200, background_frames=10, seed=5))
    path = tmp_path / "s.mdf"
    _write(path, meas, per=210)
    rois = [mpisim.Sphere((3e-3, 2e-3, 0.0), 2.5e-3, "a"), mpisim.Sphere((-4e-3, -3e-3, 0.0), 2.5e-3, "b"),
            mpisim.Sphere((-6e-3, 7e-3, 0.0), 2e-3, "empty")]
    res = follow(path, S, settings=LiveSettings(average=10, policy="all", warn=("a", "empty")), rois=rois)
    per = grid.voxel_volume / 1e-3 * 55.845e-3
    truth = {"a": 0.05 * fill((3e-3, 2e-3), 1e-3).sum() * per, "b": 0.02 * fill((-4e-3, -3e-3), 1.2e-3).sum() * per}
    sig = dict(zip(res.info["rois"], res.info["roi_sigma_kg"]))
    assert all(v > 0 for v in sig.values())
    for n in ("a", "b"):
        assert np.median(res.rois[n]) == pytest.approx(truth[n], rel=0.10)
        assert np.std(res.rois[n]) < 3 * sig[n]        # the background frames' σ is the images' scatter
    assert abs(np.median(res.rois["empty"])) < 5 * sig["empty"] + 0.03 * truth["a"]
    assert res.info["warnings"] == {}                 # iron there from the start is not iron arriving
    ot = res.on_target("a")
    share = truth["a"] / (truth["a"] + truth["b"])
    assert ot["low"] <= ot["fraction"] <= ot["high"] and ot["fraction"] == pytest.approx(share, abs=0.05)


class _Arrival:
    """A disc of iron that stays, and a second one that starts to fill at ``onset`` s at a steady rate."""

    def __init__(self, grid, onset):
        fill = lambda c, r: mpisim.phantoms.supersampled_fill(
            grid, lambda X, Y, Z: (X - c[0]) ** 2 + (Y - c[1]) ** 2 <= r * r)
        self.grid, self.onset = grid, onset
        self.a, self.b = 0.05 * fill((3e-3, 2e-3), 1e-3), 0.01 * fill((-4e-3, -3e-3), 1.2e-3)

    def phantom(self, grid, t):
        return mpisim.Phantom(grid, self.a + self.b * max(t - self.onset, 0.0), "arrival")


def test_warning_when_iron_starts_to_arrive(setup2d, tmp_path):
    """Iron that starts to flow into a watched ROI 3 s into the stream is flagged within 2 s, its onset estimated
    within 0.7 s; the ROI whose iron was there from the start and the empty one are not flagged."""
    _, sc, tr, S, _ = setup2d
    grid = mpisim.phantoms.phantom_grid(sc, resolution=0.5e-3)
    st = mpisim.SimulationSettings.realistic(sc, frames=240, background_frames=10, averages=50, seed=6)
    path = tmp_path / "s.mdf"
    mpisim.forward.simulate_series(sc, tr, _Arrival(grid, 3.0), grid, st, out=path)
    rois = [mpisim.Sphere((3e-3, 2e-3, 0.0), 2.5e-3, "a"), mpisim.Sphere((-4e-3, -3e-3, 0.0), 2.5e-3, "b"),
            mpisim.Sphere((-6e-3, 7e-3, 0.0), 2e-3, "empty")]
    res = follow(path, S, settings=LiveSettings(policy="all", warn=("a", "b", "empty")), rois=rois)
    w = res.info["warnings"]
    assert set(w) == {"b"}, w
    flagged = (w["b"]["frame"] - 10 + 1) * res.info["frame_time_s"]
    assert 3.0 < flagged < 5.0 and w["b"]["onset_s"] == pytest.approx(3.0, abs=0.7), w["b"]
    assert w["b"]["rule"] == "onset" and w["b"]["z"] > 6 and w["b"]["rate_kg_per_s"] > 0


def test_live_command_streams_and_reports(setup2d, tmp_path, capsys):
    d, _, _, _, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    out, rep, png = tmp_path / "live.mdf", tmp_path / "live.json", tmp_path / "live.png"
    assert main(["live", str(path), "--sm", str(d / "sm.mdf"), "--out", str(out), "--report", str(rep), "--png",
                 str(png), "--average", "10", "--policy", "all", "--roi", "dot=sphere:4,5,0,3",
                 "--roi", "ring=box:-12,-3,-6,6,-1,1", "--warn", "ring"]) == 0
    said = capsys.readouterr()
    assert "24 image(s) of 10 frame(s)" in said.out and "on target ('dot')" in said.out
    doc = json.loads(rep.read_text())
    assert doc["blocks"] == 24 and doc["frames_dropped"] == 0 and len(doc["images"]) == 24
    assert {"dot_kg", "ring_kg", "elsewhere_kg", "latency_s"} <= set(doc["images"][0])
    assert doc["setup"]["operator"] == "tikhonov" and 0 < doc["on_target"]["fraction"] < 1
    r = mpisim.read_reconstruction(out)
    assert r.num_frames == 24 and r.info["live_blocks"] == list(range(24)) and r.info["operator"] == "tikhonov"
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args,needle", [
    (["--average", "0"], "≥ 1"),
    (["--sweeps", "x"], "--sweeps"),
    (["--warn", "nope"], "--warn and --target name ROIs"),
    (["--roi", "a=sphere:0,0,0,3", "--target", "b"], "--target 'b'"),
    (["--roi", "a=sphere:0,0,0,3", "--roi", "b=sphere:1,0,0,3"], "overlap"),
    (["--start-timeout", "0"], "start timeout"),
])
def test_live_bad_input(setup2d, tmp_path, capsys, args, needle):
    d, _, _, _, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    out = tmp_path / "o.mdf"
    assert main(["live", str(path), "--sm", str(d / "sm.mdf"), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_live_refuses_a_matrix_of_another_scanner_and_a_missing_stream(setup2d, tmp_path, capsys):
    d, _, _, _, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    sc1 = mpisim.get_scanner("bruker-1d")
    other = tmp_path / "sm1.mdf"
    build_system_matrix(sc1, mpisim.Tracer(), default_grid(sc1, (15, 1, 1)), out=other)
    assert main(["live", str(path), "--sm", str(other), "--out", str(tmp_path / "o.mdf")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["live", str(tmp_path / "none.mdf"), "--sm", str(d / "sm.mdf"), "--out", str(tmp_path / "o.mdf"),
                 "--start-timeout", "0.2"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_replaced_or_shrunk_file_is_refused(setup2d, tmp_path):
    _, _, _, _, meas = setup2d
    path = tmp_path / "s.mdf"
    _write(path, meas, per=250)
    with StreamFrames(path) as src:
        os.replace(path, tmp_path / "moved.mdf")
        _write(path, meas, per=250)
        with pytest.raises(MPISimError, match="replaced"):
            src.refresh()


def test_simulate_pace_streams_in_time_and_replay_keeps_the_truth(tmp_path, capsys):
    cycle = mpisim.get_scanner("bruker-2d").drive_field.cycle
    out = tmp_path / "s.mdf"
    t0 = time.monotonic()
    assert main(["simulate", "--scanner", "bruker-2d", "--phantom", "point", "--frames", "600",
                 "--background-frames", "4", "--pace", "realtime", "--out", str(out)]) == 0
    assert time.monotonic() - t0 >= 604 * cycle
    assert "streamed 604 frame(s)" in capsys.readouterr().out
    with StreamFrames(out) as src:
        assert src.complete and src.available == 604
        w = np.array([src.written_at(i) for i in range(604)])
    assert np.all(np.diff(w) >= 0) and w[-1] - w[0] >= 0.9 * 600 * cycle     # frames written over time, not at once
    inj = tmp_path / "inj.mdf"
    assert main(["simulate", "--scanner", "bruker-2d", "--phantom", "injection", "--frames", "300",
                 "--background-frames", "4", "--out", str(inj)]) == 0
    rp = tmp_path / "r.mdf"
    assert main(["simulate", "--replay", str(inj), "--pace", "4x", "--out", str(rp)]) == 0
    import h5py

    with h5py.File(inj, "r") as a, h5py.File(rp, "r") as b:
        np.testing.assert_array_equal(a["measurement/data"][()], b["measurement/data"][()])
        np.testing.assert_array_equal(a["_mpisim/series/target"][()], b["_mpisim/series/target"][()])
        assert b["_mpisim/stream/complete"][()] == 1
    capsys.readouterr()
    assert main(["simulate", "--replay", str(inj), "--out", str(tmp_path / "x.mdf")]) == 2
    assert main(["simulate", "--pace", "fast", "--out", str(tmp_path / "y.mdf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--pace" in err[0] and "--pace" in err[1]


def test_ctrl_c_ends_a_live_session_with_its_outputs(setup2d, tmp_path):
    """A stream that goes on; SIGINT to ``mpisim live`` after a few images: exit 0, the outputs written, the report
    saying the session was interrupted."""
    import signal
    import subprocess
    import sys

    d, _, _, _, meas = setup2d
    path = tmp_path / "s.mdf"
    stop = threading.Event()

    def write():
        w = StreamWriter(path, meas, overwrite=True)
        a = 0
        while not stop.is_set():                   # the same frames again and again: a stream without end
            k = a % 250
            w.append(meas.data[k:k + 10] if k else meas.data[:10],
                     meas.is_background[k:k + 10] if k else meas.is_background[:10])
            a += 10
            time.sleep(0.02)
        w.close(complete=False)

    th = threading.Thread(target=write)
    th.start()
    rep = tmp_path / "r.json"
    errfile = tmp_path / "err.txt"
    try:
        time.sleep(0.5)
        with open(errfile, "w") as ef:
            p = subprocess.Popen([sys.executable, "-m", "mpisim", "live", str(path), "--sm", str(d / "sm.mdf"),
                                  "--out", str(tmp_path / "o.mdf"), "--report", str(rep), "--average", "10"],
                                 stdout=subprocess.DEVNULL, stderr=ef, text=True)
            # Ctrl-C once the session has made two images (its status line on stderr says so), not after a fixed
            # time: on a loaded machine the set-up alone can take longer
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and p.poll() is None:
                counts = [int(x) for x in re.findall(r"(\d+) images", errfile.read_text())]
                if counts and max(counts) >= 2:
                    break
                time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)
        err = errfile.read_text()
    finally:
        stop.set()
        th.join()
    assert p.returncode == 0, err
    doc = json.loads(rep.read_text())
    assert doc["ended"] == "interrupted (Ctrl-C)" and doc["blocks"] >= 2
    assert mpisim.read_reconstruction(tmp_path / "o.mdf").num_frames == doc["blocks"]
    assert "Traceback" not in err
