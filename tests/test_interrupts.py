"""SIGINT and SIGTERM at random moments of long commands (simulate, sysmat, reco, convert and the titrate
study) leave nothing behind (issue 13, item 1; the streamed outputs and the cache of issue 11)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mpisim
from mpisim import cache

MOMENTS = 30


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("interrupts")
    sc = mpisim.get_scanner("bruker-2d")
    mpisim.simulate(sc, mpisim.Tracer(), mpisim.get_phantom("shapes", sc),
                    mpisim.SimulationSettings.realistic(sc, frames=3, background_frames=4, seed=1), out=d / "in.mdf")
    from mpisim.cli import main

    assert main(["sysmat", "--grid", "25x25x1", "--cache-dir", str(d / "c0"), "--out", str(d / "sm-in.mdf")]) == 0
    return d


def commands(d):
    """name → (argv after 'mpisim', output path, cache folder or None)."""
    return {
        "simulate": (["simulate", "--scanner", "bruker-3d", "--phantom", "concentration", "--noise", "realistic",
                      "--frames", "30", "--out", str(d / "sim.mdf")], d / "sim.mdf", None),   # 2 blocks of frames
        "sysmat": (["sysmat", "--scanner", "bruker-3d", "--grid", "6x6x6", "--cache-dir", str(d / "c"),
                    "--out", str(d / "sm.mdf")], d / "sm.mdf", d / "c"),
        "reco": (["reco", str(d / "in.mdf"), "--sm", str(d / "sm-in.mdf"), "--out", str(d / "reco.mdf")],
                 d / "reco.mdf", None),
        "convert": (["convert", str(d / "in.mdf"), str(d / "conv.mdf"),
                     "--to", "frequency"], d / "conv.mdf", None),
        "titrate": (["titrate", "--cells", "1e3,1e4", "--seeds", "1", "--averages", "10", "--png",
                     str(d / "titrate.png")], d / "titrate.png", d / "ct"),       # a study: many simulations
    }


def ENV(d):
    return {**os.environ, "MPISIM_CACHE_DIR": str(d / "ct")}


def leftovers(d):
    return sorted(p.name for p in d.rglob(".*") if p.is_file())          # temporary names start with a dot


STATUS = ("system matrix served from cache: ", "built ", "cache entry of this system matrix was damaged",
          "waiting for another mpisim process")
"""Status lines of ``mpisim sysmat`` (stderr), printed as the work goes on."""


def _handlers_installed(pid):
    """Whether process ``pid`` catches SIGTERM yet (mpisim installs its handlers on its first line; before
    that the interpreter is still starting, where no program can turn a signal into a clean exit)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return None                                              # no /proc (or the process is gone)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def start(argv, env):
    """Start ``mpisim argv``; return (process, start of the command proper), once its handlers are in place."""
    p = subprocess.Popen([sys.executable, "-m", "mpisim", *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    t_end = time.monotonic() + 120                                 # a bound against a hang, not a speed claim
    while p.poll() is None and time.monotonic() < t_end:
        ready = _handlers_installed(p.pid)
        if ready is None:                                          # no /proc: allow for the interpreter's start
            time.sleep(0.5)
            break
        if ready:
            break
        time.sleep(0.005)
    return p, time.monotonic()


# the commands in two halves of about equal length, so that pytest-xdist can run them side by side
HALVES = {"simulate": 1, "convert": 1, "reco": 1, "sysmat": 2, "titrate": 2}


@pytest.mark.parametrize("half", [pytest.param(h, marks=pytest.mark.xdist_group(f"interrupts-{h}")) for h in (1, 2)])
def test_interrupts_at_random_moments_leave_nothing(work, half):
    """Each moment is a fraction of the command's own uninterrupted run time, measured first on this machine
    (from the moment its handlers are in place), so the moments fall across the whole run whatever the
    machine's speed or load. MOMENTS moments in all, half of them in each half of the commands."""
    import shutil

    rng = np.random.default_rng([11, half])
    cmds = {name: cmd for name, cmd in commands(work).items() if HALVES[name] == half}
    took = {}
    for name, (argv, out, cdir) in cmds.items():                 # reference runs: every command succeeds
        p, t0 = start(argv, ENV(work))
        _, err = p.communicate(timeout=300)
        took[name] = time.monotonic() - t0
        assert p.returncode == 0 and out.exists(), name + err
        os.chmod(out, 0o644)
        out.unlink()
        if cdir is not None:                                       # the moments below start from an empty cache
            shutil.rmtree(cdir, ignore_errors=True)
    seen = {"interrupted": 0, "finished": 0}
    for i in range(MOMENTS // 2):
        name = list(cmds)[i % len(cmds)]
        argv, out, cdir = cmds[name]
        sig = signal.SIGINT if rng.random() < 0.5 else signal.SIGTERM
        fraction = float(rng.uniform(0.0, 1.0))
        delay = fraction * took[name]
        p, t0 = start(argv, ENV(work))
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        p.send_signal(sig)
        _, err = p.communicate(timeout=300)
        where = f"{name} after {delay:.2f} s = {fraction:.2f} of its run ({sig.name})"
        assert "Traceback" not in err and "Exception ignored" not in err, where + "\n" + err
        if p.returncode == 0:                                   # finished before the signal took effect
            seen["finished"] += 1
            assert out.exists(), where
            # the machine got faster than when the reference run was timed (less load): the run just
            # finished gives the command's run time now, so the next moments fall within the run again
            took[name] = min(took[name], time.monotonic() - t0)
        else:
            seen["interrupted"] += 1
            assert p.returncode == (130 if sig == signal.SIGINT else 143), where + "\n" + err
            assert not out.exists(), where
            assert err.strip().splitlines()[-1].endswith("interrupted (" + ("Ctrl-C" if sig == signal.SIGINT
                                                                            else "SIGTERM") + "); no output written")
            # one line says what happened; before it only the status lines the command prints on its way
            # (a cache hit announced just before the signal arrived)
            assert all(ln.startswith(STATUS) for ln in err.strip().splitlines()[:-1]), where + "\n" + err
        assert leftovers(work) == [], where
        if cdir is not None and cdir.exists():                 # entries are complete or absent, never half-made
            for e in cdir.glob("sm-*.mdf"):
                with __import__("h5py").File(e, "r") as h:
                    key = h["_mpisim/cacheKey"][()].decode()
                assert cache.verify(e, key) is None, where
        if out.exists():
            os.chmod(out, 0o644)
            out.unlink()
    assert seen["interrupted"] >= MOMENTS // 4, seen
    for name, (argv, out, _) in cmds.items():                    # the next identical run succeeds
        r = subprocess.run([sys.executable, "-m", "mpisim", *argv], capture_output=True, text=True, env=ENV(work))
        assert r.returncode == 0 and out.exists(), name + r.stderr


def _kill_when_part_appears(argv, folder, env, timeout=60):
    """Start ``mpisim argv``, SIGKILL it as soon as a partial file shows up in ``folder``."""
    p = subprocess.Popen([sys.executable, "-m", "mpisim", *argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env)
    t_end = time.time() + timeout
    while time.time() < t_end and p.poll() is None:
        if list(folder.glob(".*.part")):
            time.sleep(0.2)
            break
        time.sleep(0.02)
    p.kill()
    p.wait()
    parts = sorted(folder.glob(".*.part"))
    for q in parts:                    # past the minute's grace a dead process's partial file gets
        old = time.time() - 120
        os.utime(q, (old, old))
    return parts


@pytest.mark.xdist_group("interrupts-2")
def test_sigkill_leftovers_are_listed_and_removed(tmp_path):
    """A SIGKILLed build or simulation leaves its partial file (nothing can prevent that); `cache list`
    shows the cache's, `cache clear` removes them, and the next run removes those of its own output
    (issue 13: stale *.part files). A fresh one of a dead process is left alone for a minute."""
    from mpisim.cli import main

    cdir, env = tmp_path / "c", {**os.environ, "MPISIM_CACHE_DIR": str(tmp_path / "c")}
    cdir.mkdir()
    sysmat = ["sysmat", "--scanner", "bruker-3d", "--grid", "9x9x9", "--cache-dir", str(cdir),
              "--out", str(tmp_path / "sm.mdf")]
    parts = _kill_when_part_appears(sysmat, cdir, env)
    assert parts, "the killed build left no partial file to test with"
    young = cdir / (parts[0].name.replace(".part", "-young.part"))
    young.write_bytes(b"x")                                        # same dead owner, but written just now
    from mpisim.io.atomic import stale_parts

    assert young not in stale_parts(cdir) and parts[0] in stale_parts(cdir)
    young.unlink()
    listed = subprocess.run([sys.executable, "-m", "mpisim", "cache", "list", "--cache-dir", str(cdir)],
                            capture_output=True, text=True).stdout
    assert parts[0].name in listed and "killed process" in listed
    assert main(["cache", "clear", "--cache-dir", str(cdir)]) == 0
    assert not list(cdir.glob(".*.part"))
    parts = _kill_when_part_appears(sysmat, cdir, env)              # and again: the next build removes it
    assert parts
    assert main([*sysmat, "--grid", "3x3x3", "--overwrite"]) == 0
    assert not list(cdir.glob(".*.part"))
    out = tmp_path / "sim.mdf"                                     # an output's partial file: its next run
    sim = ["simulate", "--scanner", "bruker-3d", "--phantom", "point", "--frames", "400", "--out", str(out)]
    parts = _kill_when_part_appears(sim, tmp_path, env)
    assert parts and not out.exists()
    assert main([*sim[:-4], "--frames", "1", "--out", str(out)]) == 0
    assert out.exists() and not list(tmp_path.glob(".*.part"))
