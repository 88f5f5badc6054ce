"""Scanner design studies (issue 12): figures of merit against physics, sweeps serially and on Dask
(a local cluster, and a real scheduler and workers started as separate processes), sysmat on Dask."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import mpisim
from mpisim import design as D
from mpisim.cli import main
from mpisim.errors import MPISimError
from mpisim.particles import Tracer
from mpisim.scanner import Scanner


def scanner_1d(G):
    """bruker-1d with gradient G (T/m/µ0) along its driven x axis."""
    d = mpisim.get_scanner("bruker-1d").to_dict()
    d["selection_field"]["gradient"] = [[-G, 0, 0], [0, -G, 0], [0, 0, 2 * G]]
    return Scanner.from_dict(d)


@pytest.mark.parametrize("G", [1.0, 2.0, 3.0, 4.0, 5.0])
@pytest.mark.parametrize("d", [20e-9, 25e-9, 30e-9])
def test_psf_fwhm_matches_langevin_estimate(G, d):
    """PHYSICS.md §5: Δx = 4.161 k_B T/(µ0 m G); e.g. 25 nm at G = 2 → 2.21 mm at 300 K."""
    tr = Tracer(core_diameter=d, temperature=300.0)
    f = D.figures_of_merit(scanner_1d(G), tr)
    ms = tr.ms / mpisim.constants.MU0                                   # A/m; G in T/m/µ0, so m·G in J/m
    langevin = 24.97 * mpisim.constants.K_B * 300.0 / (math.pi * ms * d ** 3 * G)
    assert f["resolution_x_langevin"].value == pytest.approx(langevin, rel=1e-3)
    assert f["resolution_x"].value == pytest.approx(langevin, rel=0.10)
    if (d, G) == (25e-9, 2.0):
        assert f["resolution_x"].value == pytest.approx(2.21e-3, rel=0.01)


def test_relaxation_widens_the_psf():
    sc = mpisim.get_scanner("bruker-1d")
    w0 = D.psf_fwhm(sc, Tracer(), 0)
    w1 = D.psf_fwhm(sc, Tracer(relaxation_time=1e-6), 0)
    assert w1 > 1.2 * w0


@pytest.mark.parametrize("name", ["bruker-1d", "bruker-2d", "bruker-3d"])
def test_fov_and_frame_rate_are_exact(name):
    sc = mpisim.get_scanner(name)
    f = D.figures_of_merit(sc)
    for c in sc.drive_field.channels:
        i = "xyz".index(c.axis)
        assert f[f"fov_{c.axis}"].value == pytest.approx(2 * c.amplitude / abs(sc.gradient[i, i]), rel=1e-12)
    lcm = math.lcm(*[c.divider for c in sc.drive_field.channels])
    assert f["frame_rate"].value == pytest.approx(sc.drive_field.base_frequency / lcm, rel=1e-12)
    assert f["repetition_time"].value == pytest.approx(lcm / sc.drive_field.base_frequency, rel=1e-12)
    assert f["coverage"].value < 0.1 * max(f[f"fov_{c.axis}"].value for c in sc.drive_field.channels)


def test_detection_limit_scales_with_noise_and_averages():
    sc = mpisim.get_scanner("bruker-2d")
    base = D.detection_limit(sc, Tracer())
    d = sc.to_dict()
    d["receiver"]["noise_density"] *= 3
    assert D.detection_limit(Scanner.from_dict(d), Tracer()) == pytest.approx(3 * base, rel=0.10)
    assert D.detection_limit(sc, Tracer(), D.DesignSettings(averages=16)) == pytest.approx(base / 4, rel=0.10)
    f = D.figures_of_merit(sc, Tracer(), D.DesignSettings(iron_per_cell=20e-15))
    assert f["detection_limit_cells"].value == pytest.approx(base / 20e-15, rel=1e-9)


def test_detection_limit_is_currie_ld_of_the_matched_filter():
    """The definition changed from matched-filter SNR 5 (Rose) to Currie's L_D = (z₀.₉₅ + z₀.₉₅) σ₀ = 3.29 σ₀
    (mpisim.detection): bruker-3d's 4.678 ng at SNR 5 (one cycle, 25 nm) becomes 4.678 × 3.29/5 = 3.078 ng."""
    sc = mpisim.get_scanner("bruker-3d")
    z = 1.6448536269514722
    assert D.detection_limit(sc, Tracer()) == pytest.approx(4.678025e-12 * 2 * z / 5, rel=1e-5)
    f = D.figures_of_merit(sc, Tracer(), D.DesignSettings(alpha=0.01))["detection_limit_iron"]
    assert f.value == pytest.approx(4.678025e-12 * (2.3263479 + z) / 5, rel=1e-5)
    assert "Currie L_D at α = 0.01, β = 0.05" in f.method and "position known" in f.method
    with pytest.raises(MPISimError, match="alpha"):
        D.DesignSettings(alpha=0.7)


def test_safety_figures():
    sc = mpisim.get_scanner("bruker-1d")
    f = D.figures_of_merit(sc, settings=D.DesignSettings(body_radius=0.1))
    fd = 2.5e6 / 102
    assert f["drive_peak"].value == pytest.approx(0.012, rel=1e-6)
    assert f["drive_slew"].value == pytest.approx(2 * math.pi * fd * 0.012, rel=1e-6)
    assert f["sar"].value == pytest.approx(0.5 * (2 * math.pi * fd * 0.012) ** 2 * 0.1 ** 2 / 16e3, rel=1e-9)
    assert f["pns_ratio"].value == pytest.approx(0.012 / D.PNS_PEAK_FIELD)


def test_design_command(tmp_path, capsys):
    assert main(["design", "bruker-2d", "--json", "--out", str(tmp_path / "d.json")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["figures"]["frame_rate"]["unit"] == "1/s" and doc["figures"]["fov_x"]["value"] == pytest.approx(0.024)
    assert json.loads((tmp_path / "d.json").read_text()) == doc
    assert main(["design", "bruker-1d"]) == 0
    out = capsys.readouterr().out
    assert "resolution x (PSF FWHM)" in out and "mm" in out


VARY = ["--vary", "selection.gradient=1:4:4", "--vary", "tracer.core_diameter=20e-9,25e-9,30e-9",
        "--vary", "design.averages=1,4"]                              # 24 designs


def rows(path):
    with open(path, newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: int(r["design"]))


def test_sweep_serial_and_local_cluster_identical_and_resume(tmp_path, capsys):
    assert main(["sweep", "bruker-1d", *VARY, "--workers", "0", "--out", str(tmp_path / "serial")]) == 0
    assert main(["sweep", "bruker-1d", *VARY, "--workers", "2", "--out", str(tmp_path / "dask")]) == 0
    a, b = rows(tmp_path / "serial/results.csv"), rows(tmp_path / "dask/results.csv")
    assert len(a) == 24 and a == b and all(r["status"] == "ok" for r in a)
    assert (tmp_path / "dask/figures.png").stat().st_size > 10_000
    # an interrupted sweep: keep 10 rows, resume evaluates the 14 others
    res = tmp_path / "serial/results.csv"
    lines = res.read_text().splitlines()
    res.write_text("\n".join(lines[:11]) + "\n")
    assert main(["sweep", "bruker-1d", *VARY, "--workers", "0", "--out", str(tmp_path / "serial"), "--resume"]) == 0
    assert rows(res) == a
    assert main(["sweep", "bruker-1d", *VARY, "--workers", "0", "--out", str(tmp_path / "serial")]) == 2
    assert "--resume" in capsys.readouterr().err


def test_sweep_bad_input(tmp_path, capsys, monkeypatch):
    for vary, needle in (("scanner.receiver.colour=1,2", "no such field"), ("selection.gradient=1:5:0", "at least one value"),
                         ("tracer.core_diameter=", "no values"), ("nonsense=1", "unknown field"),
                         ("tracer.core_diameter=a,b", "a:b:n")):
        assert main(["sweep", "bruker-1d", "--vary", vary, "--workers", "0", "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, (vary, err)
    # designs that are not physical are recorded as failed; the rest finish
    assert main(["sweep", "bruker-1d", "--vary", "selection.gradient=0,2", "--vary", "drive.amplitude=-0.01,0.01",
                 "--workers", "0", "--out", str(tmp_path / "y")]) == 0
    r = rows(tmp_path / "y/results.csv")
    assert [x["status"] == "ok" for x in r] == [False, False, False, True]
    assert "gradient" in r[0]["status"] and "amplitude" in r[2]["status"]
    import distributed

    real_client = distributed.Client                 # mpisim gives a scheduler 10 s; nothing listens here
    monkeypatch.setattr(distributed, "Client", lambda *a, **kw: real_client(*a, **{**kw, "timeout": "1s"}))
    assert main(["sweep", "bruker-1d", "--vary", "selection.gradient=1,2", "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(tmp_path / "z")]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_real_scheduler_and_workers(tmp_path, capsys):
    """A `dask scheduler` and workers as separate processes on localhost: a sweep and a sysmat against
    them equal the local results; a worker killed in the middle of a sweep loses or duplicates no design."""
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file)], log)]
    try:
        t_end = time.time() + 60
        while not sched_file.exists() and time.time() < t_end:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(_start(["distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
                                 "--no-dashboard"], log))
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        assert main(["sweep", "bruker-1d", *VARY, "--scheduler", address, "--out", str(tmp_path / "remote")]) == 0
        assert main(["sweep", "bruker-1d", *VARY, "--workers", "0", "--out", str(tmp_path / "local")]) == 0
        assert rows(tmp_path / "remote/results.csv") == rows(tmp_path / "local/results.csv")
        # sysmat on the cluster == local build
        for extra, name in ((["--scheduler", address], "remote.mdf"), ([], "local.mdf")):
            assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "15x15x1", "--no-cache", *extra,
                         "--out", str(tmp_path / name)]) == 0
        with h5py.File(tmp_path / "remote.mdf") as a, h5py.File(tmp_path / "local.mdf") as b:
            assert np.array_equal(a["measurement/data"][()], b["measurement/data"][()])
            assert np.array_equal(a["_mpisim/rowChecksum"][()], b["_mpisim/rowChecksum"][()])
        # a worker killed mid-sweep: slow designs (3D coverage) so that the kill lands in the middle
        out = tmp_path / "killed"
        sweep = subprocess.Popen([sys.executable, "-m", "mpisim", "sweep", "bruker-3d", "--vary",
                                  "selection.gradient=1:4:30", "--scheduler", address, "--out", str(out)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t_end = time.time() + 60
        while time.time() < t_end and (not (out / "results.csv").exists()
                                       or len((out / "results.csv").read_text().splitlines()) < 3):
            time.sleep(0.05)
        os.killpg(procs[1].pid, signal.SIGKILL)
        done_at_kill = len((out / "results.csv").read_text().splitlines()) - 1
        _, err = sweep.communicate(timeout=180)
        assert sweep.returncode == 0, err
        assert done_at_kill < 30                                   # the kill landed in the middle
        ids = [int(r["design"]) for r in rows(out / "results.csv")]
        assert sorted(ids) == list(range(30)), ids
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_sweep_keeps_finished_designs_and_resumes(tmp_path, sig):
    out = tmp_path / "s"
    argv = [sys.executable, "-m", "mpisim", "sweep", "bruker-3d", "--vary", "selection.gradient=1:4:40",
            "--workers", "0", "--out", str(out)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_end = time.time() + 60
    while time.time() < t_end and (not (out / "results.csv").exists()
                                   or len((out / "results.csv").read_text().splitlines()) < 4):
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err and "--resume" in err.strip().splitlines()[-1], err
    kept = rows(out / "results.csv")
    assert 3 <= len(kept) < 40
    r = subprocess.run(argv + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ids = [int(x["design"]) for x in rows(out / "results.csv")]
    assert sorted(ids) == list(range(40))
    assert [x for x in rows(out / "results.csv") if int(x["design"]) < len(kept)][:3] == kept[:3]


@pytest.mark.parametrize("name", ["bruker-1d", "bruker-2d", "bruker-3d"])
def test_figure_keys_and_frame_rate_with_averages(name):
    f = D.figures_of_merit(name, settings=D.DesignSettings(averages=10))
    assert list(f) == D.figure_keys(name)
    assert f["frame_rate"].value == pytest.approx(1 / (10 * f["repetition_time"].value), rel=1e-12)


def test_sweep_output_must_be_a_folder_and_bounded(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["sweep", "bruker-1d", "--vary", "selection.gradient=1,2", "--workers", "0",
                 "--out", str(tmp_path / "file")]) == 2
    assert "must be a folder" in capsys.readouterr().err
    assert main(["sweep", "bruker-1d", "--vary", "selection.gradient=1:2:2000", "--vary",
                 "tracer.core_diameter=20e-9:30e-9:1000", "--out", str(tmp_path / "big")]) == 2
    assert "at most" in capsys.readouterr().err and not (tmp_path / "big").exists()
