"""The README's pipeline on a machine whose file cache is full (issue 22, item 6).

Usage:
    python benchmarks/check_full_page_cache.py [--dir DIR] [--fill-gb N] [--suite]

Steps, each printed with its figures:
1. the README's 19³ system matrix is built into an empty cache in DIR (4.4 GB written) and read back
   whole, and a filler file of N GB (default: the free memory plus 2 GB) is written and read back, so
   that free memory is near zero and the page cache holds most of the machine (``MemFree``,
   ``MemAvailable`` and ``Cached`` of /proc/meminfo are printed before and after);
2. the README's pipeline ("The pipeline by hand": simulate, sysmat, reco, quantify, info, plot, cache
   list) runs in DIR, each command timed, each exit status printed (all must be 0);
3. the memory guard still refuses a real over-allocation (1.5 × the machine's memory) in one line;
4. with ``--suite``, the test suite (the README's test command) runs next, on the same full cache.

The filler and DIR are removed at the end unless DIR was given.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from mpisim.resources import meminfo

README_PIPELINE = [
    ["simulate", "--scanner", "bruker-3d", "--phantom", "concentration", "--noise", "realistic",
     "--background-frames", "10", "--out", "meas.mdf"],
    ["sysmat", "--scanner", "bruker-3d", "--grid", "19x19x19", "--fov", "0.038,0.038,0.019", "--out", "sm.mdf"],
    ["reco", "meas.mdf", "--sm", "sm.mdf", "--out", "reco.mdf", "--png", "reco.png"],
    ["quantify", "reco.mdf", "--iron-per-cell", "10pg", "--roi", "chambers", "--png", "cells.png"],
    ["info", "meas.mdf", "sm.mdf", "reco.mdf"],
    ["plot", "sm.mdf"],
    ["cache", "list"],
]


def show(tag):
    m = meminfo()
    print(f"{tag:34s} MemFree {m['MemFree'] / 2**30:5.1f} GiB · MemAvailable {m['MemAvailable'] / 2**30:5.1f} GiB · "
          f"Cached {m['Cached'] / 2**30:5.1f} GiB", flush=True)
    return m


def read_back(path):
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def write_filler(path, nbytes):
    block = os.urandom(64 << 20)
    with open(path, "wb") as f:
        for _ in range(nbytes // len(block)):
            f.write(block)


def mpisim(args, cwd, env):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "mpisim", *args], cwd=cwd, env=env, capture_output=True, text=True)
    return r, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--fill-gb", type=float, default=None)
    ap.add_argument("--suite", action="store_true")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="fullcache-")
    os.makedirs(d, exist_ok=True)
    env = {**os.environ, "MPISIM_CACHE_DIR": os.path.join(d, "cache")}
    ok = True
    try:
        show("start")
        first = os.path.join(d, "first")                       # the 19³ matrix, written into the cache (the
        os.makedirs(first, exist_ok=True)                       # pipeline's own sysmat below is then a hit)
        r, t = mpisim(README_PIPELINE[1], first, env)
        print(f"sysmat 19³ (cold, into the cache): exit {r.returncode}, {t:.1f} s", flush=True)
        for root, _, names in os.walk(d):
            for n in names:
                if n.endswith(".mdf"):
                    read_back(os.path.join(root, n))
        show("after writing and reading the 19³")
        fill = int((a.fill_gb * 2**30) if a.fill_gb else meminfo()["MemFree"] + (2 << 30))
        write_filler(os.path.join(d, "filler.bin"), fill)
        read_back(os.path.join(d, "filler.bin"))
        before = show(f"after a {fill / 2**30:.1f} GiB filler, read back")
        for args in README_PIPELINE:
            r, t = mpisim(args, d, env)
            last = (r.stderr.strip().splitlines() or [""])[-1] if r.returncode else ""
            print(f"  mpisim {' '.join(args)[:70]:70s} exit {r.returncode}  {t:6.1f} s  {last[:120]}", flush=True)
            ok &= r.returncode == 0
        show("after the pipeline")
        from mpisim.errors import MPISimError
        from mpisim.resources import available_memory, check_memory

        print(f"guard: available_memory() = {available_memory() / 2**30:.1f} GiB (free pages alone: "
              f"{before['MemFree'] / 2**30:.1f} GiB)")
        try:
            check_memory(int(1.5 * meminfo()["MemTotal"]), "1.5 × this machine's memory")
            print("guard: an allocation of 1.5 × the machine's memory was NOT refused")
            ok = False
        except MPISimError as e:
            print(f"guard: refused: {e}")
        if a.suite:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               capture_output=True, text=True)
            tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
            print(f"test suite on the full cache: exit {r.returncode}, {time.perf_counter() - t0:.0f} s: {tail}")
            for line in r.stdout.splitlines():
                if line.startswith(("FAILED", "ERROR")):
                    print("  " + line)
            show("after the suite")
            ok &= r.returncode == 0
    finally:
        if a.dir is None:
            for root, dirs, files in os.walk(d):
                for x in dirs + files:
                    os.chmod(os.path.join(root, x), 0o755)
            shutil.rmtree(d, ignore_errors=True)
        else:
            try:
                os.unlink(os.path.join(d, "filler.bin"))
            except OSError:
                pass
    print("all passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
