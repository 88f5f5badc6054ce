"""Sweeps stop cleanly (issue 22, item 4): SIGINT or SIGTERM to a sweep, sent to the process or to its
process group (what Ctrl-C in a terminal does), closes the Dask cluster, keeps the finished rows, prints
one line and exits 130 / 143 within seconds; ``--resume`` then completes it to the same table as a run
that was never interrupted. A sweep stopped before its first design leaves nothing."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers through /proc")

from test_interrupts import _handlers_installed

SWEEP = ["sweep", "bruker-2d", "--vary", "selection.gradient=1:3:3"]


def _rows(folder):
    with open(folder / "results.csv", newline="") as fh:
        return sorted((dict(r) for r in csv.DictReader(fh)), key=lambda r: int(r["design"]))


def _sweep(out, *extra):
    r = subprocess.run([sys.executable, "-m", "mpisim", *SWEEP, "--out", str(out), *extra], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def _interrupted_run(out, sig, delay, group):
    """Start the sweep in a session of its own, send ``sig`` ``delay`` s after its handlers are in place
    (to the process, or to its whole process group); → (exit status, stderr, seconds from signal to exit)."""
    p = subprocess.Popen([sys.executable, "-m", "mpisim", *SWEEP, "--out", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    t_end = time.monotonic() + 60
    while p.poll() is None and not _handlers_installed(p.pid) and time.monotonic() < t_end:
        time.sleep(0.005)
    time.sleep(delay)
    sent = time.monotonic()
    try:
        os.killpg(p.pid, sig) if group else p.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        _, err = p.communicate(timeout=10)          # the bound: no hang over 10 s
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError(f"{sig.name} after {delay:.2f} s: still running 10 s later")
    took = time.monotonic() - sent
    t_end = time.monotonic() + 10                   # its Dask workers (sessions of their own) are gone too
    while _workers_of(p.pid) and time.monotonic() < t_end:
        time.sleep(0.1)
    assert not _workers_of(p.pid), f"{sig.name} after {delay:.2f} s: workers {_workers_of(p.pid)} still running"
    return p.returncode, err, took


def _workers_of(pid):
    """Processes started by the local cluster of mpisim process ``pid`` (they carry MPISIM_PARENT_PID)."""
    mark = f"MPISIM_PARENT_PID={pid}".encode()
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        found.append(int(d))
            except OSError:
                pass
    return found


def _check_moments(tmp_path, moments, seed):
    clean = tmp_path / "clean"
    t0 = time.monotonic()
    _sweep(clean)
    took = time.monotonic() - t0
    want = _rows(clean)
    rng = np.random.default_rng(seed)
    seen = {"finished": 0, "kept rows": 0, "nothing": 0}
    for i in range(moments):
        for sig in (signal.SIGINT, signal.SIGTERM):
            out = tmp_path / f"run-{i}-{sig.name}"
            delay = float(rng.uniform(0.0, 1.0)) * took
            group = bool(rng.random() < 0.5)
            rc, err, after = _interrupted_run(out, sig, delay, group)
            where = f"{sig.name} to the {'group' if group else 'process'} after {delay:.2f} s"
            lines = err.strip().splitlines()
            assert "Traceback" not in err and "Exception ignored" not in err, where + "\n" + err
            if rc == 0:                                    # finished before the signal took effect
                seen["finished"] += 1
            else:
                assert rc == (130 if sig == signal.SIGINT else 143), where + "\n" + err
                assert len(lines) == 1, where + "\n" + err
                assert lines[0].startswith("mpisim sweep: interrupted ("), where + "\n" + err
                if out.exists():                           # the finished rows are kept, and say so
                    seen["kept rows"] += 1
                    assert "keeps the" in lines[0] and "--resume" in lines[0], where + "\n" + err
                    _sweep(out, "--resume")
                else:                                      # stopped before its first design: nothing left
                    seen["nothing"] += 1
                    assert lines[0].endswith("no output written"), where + "\n" + err
                    _sweep(out)
            assert after < 10, where
            assert _rows(out) == want, where               # the same table as the clean run
    return seen


def test_sweep_stops_cleanly_at_a_few_moments(tmp_path):
    seen = _check_moments(tmp_path, 2, seed=22)
    assert seen["kept rows"] + seen["nothing"] >= 2, seen          # most of the 4 signals arrive mid-run


@pytest.mark.slow
def test_sweep_stops_cleanly_at_20_moments_per_signal(tmp_path):
    """The issue's measure: SIGINT and SIGTERM at 20 seeded moments each, across the clean run's length."""
    seen = _check_moments(tmp_path, 20, seed=2022)
    print(seen)
    assert seen["kept rows"] + seen["nothing"] >= 20, seen


def test_a_sweep_that_fails_before_its_first_design_leaves_nothing(tmp_path):
    out = tmp_path / "sw"
    r = subprocess.run([sys.executable, "-m", "mpisim", *SWEEP, "--out", str(out), "--scheduler",
                        "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot reach the Dask scheduler" in r.stderr
    assert not out.exists()
