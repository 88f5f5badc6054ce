"""Hostile HDF5 files through every command that reads them (issue 22, items 1 and 7).

Each construction of :mod:`hostile_factory` is applied to a measurement, a system matrix and a
reconstruction written by mpisim, and each resulting file goes through every command that reads that
kind of file, in a process of its own under a 1 GiB address-space cap (``resource.setrlimit``) and a
10 s time limit. Each run must exit 2 with one line naming the file and what was refused, leave no
output, leave the input unchanged, and put no byte of any other file (the "secret" that external
storage points at) into anything it writes; the peak resident memory of each run is measured too."""

import hashlib
import os
import resource
import subprocess
import sys
import threading
import time

import pytest

import hostile_factory as hf
from mpisim.cli import main

CAP = 1 << 30
"""Address space each run may use (bytes)."""

PEAK_BOUND = 512 << 20
"""Peak resident memory each run must stay under (a refusal reads only metadata; the interpreter with
numpy, h5py and matplotlib takes about 180 MiB)."""

LIMIT_S = 10.0
"""Wall-clock seconds each run may take."""


def _cap():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run_capped(args, cwd):
    """``mpisim args`` under the cap → (exit status or None when killed at 3 × the limit, stderr, seconds,
    peak resident memory in bytes, from the kernel's accounting of that one process: ``wait4``)."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "mpisim", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, preexec_fn=_cap)
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()))
    reader.start()
    status = usage = None
    while status is None:
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status, usage = st, ru
        elif time.monotonic() - t0 > 3 * LIMIT_S:
            p.kill()
        else:
            time.sleep(0.01)
    took = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)          # reaped here, not by Popen
    reader.join()
    return p.returncode, err[0].decode(errors="replace"), took, usage.ru_maxrss * 1024


def write_base_files(d, grid="12x12x1"):
    """A measurement (m.mdf), its system matrix (s.mdf) and a reconstruction (r.mdf) written by mpisim in ``d``."""
    cwd = os.getcwd()
    os.chdir(d)
    try:
        assert main(["simulate", "--scanner", "bruker-2d", "--phantom", "shapes", "--background-frames", "2",
                     "--out", "m.mdf"]) == 0
        assert main(["sysmat", "--scanner", "bruker-2d", "--grid", grid, "--out", "s.mdf"]) == 0
        assert main(["reco", "m.mdf", "--sm", "s.mdf", "--out", "r.mdf", "--iterations", "2"]) == 0
    finally:
        os.chdir(cwd)
    return d


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_base_files(tmp_path_factory.mktemp("hostile-h5"))


def commands(x, role):
    """Every command that reads a file of this role (m: measurement, s: system matrix, r: reconstruction),
    with ``x`` in that place."""
    if role == "m":
        return [["info", x], ["plot", x, "--out", "o.png"], ["convert", x, "o.mdf"],
                ["reco", x, "--sm", "s.mdf", "--out", "o.mdf"],
                ["reco", "m.mdf", "--sm", "s.mdf", "--transfer-function", x, "--out", "o.mdf"],
                ["simulate", "--transfer-function", x, "--out", "o.mdf"],
                ["quantify", "r.mdf", "--measurement", x, "--sm", "s.mdf"]]
    if role == "s":
        return [["info", x], ["plot", x, "--out", "o.png"], ["reco", "m.mdf", "--sm", x, "--out", "o.mdf"],
                ["quantify", "r.mdf", "--sm", x, "--measurement", "m.mdf"]]
    return [["info", x], ["plot", x, "--out", "o.png"], ["quantify", x, "--png", "o.png"]]


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", hf.KINDS)
def test_hostile_files_through_every_command(base, tmp_path, kind):
    for name in ("m.mdf", "s.mdf", "r.mdf"):
        (tmp_path / name).write_bytes((base / name).read_bytes())
    secret = tmp_path / "secret.bin"
    made = {role: hf.make(kind, tmp_path / f"{role}.mdf", tmp_path / f"{kind}-{role}.mdf", secret)
            for role in "msr"}
    before = {p.name: _digest(p) for p in tmp_path.iterdir() if p.is_file()}
    worst = (0.0, 0)
    for role, path in made.items():
        for args in commands(path.name, role):
            rc, err, took, peak = run_capped(args, tmp_path)
            where = f"{kind}: mpisim {' '.join(args)}"
            lines = err.strip().splitlines()
            assert rc == 2, f"{where}: exit {rc}\n{err[-2000:]}"
            assert len(lines) == 1 and path.name in lines[0] and "Traceback" not in err, f"{where}\n{err[-2000:]}"
            assert ": refused: " in lines[0] and hf.REFUSAL[kind] in lines[0], f"{where}\n{lines[0]}"
            assert took < LIMIT_S, f"{where}: {took:.1f} s"
            worst = (max(worst[0], took), max(worst[1], peak))
            after = {p.name: p for p in tmp_path.iterdir() if p.is_file()}
            assert set(after) == set(before), f"{where}: left {sorted(set(after) - set(before))}"
            assert all(_digest(after[n]) == d for n, d in before.items()), f"{where}: an input changed"
    if secret.exists():                                  # no byte run of the secret in any file but itself
        for p in tmp_path.iterdir():
            if p != secret and p.is_file():
                assert hf.SECRET_MARKER not in p.read_bytes(), p
    assert worst[1] < PEAK_BOUND, worst        # far below the cap: refused before anything large is read
    print(f"{kind}: slowest run {worst[0]:.2f} s, largest peak resident memory {worst[1] / 2**20:.0f} MiB")


def test_the_inflation_bounds_hold_on_zeros(tmp_path):
    """Zeros are every compressor's best case: deflate (level 9) and LZF stay below the worst inflation
    io/h5 assumes for them (:data:`mpisim.io.h5.INFLATION`), and deflate reaches most of its 1032:1."""
    import h5py
    import numpy as np

    from mpisim.io import h5 as H

    with h5py.File(tmp_path / "z.h5", "w") as f:
        for name, kw in (("gzip", {"compression": "gzip", "compression_opts": 9}), ("lzf", {"compression": "lzf"})):
            f.create_dataset(name, data=np.zeros(1 << 21), chunks=(1 << 17,), **kw)
        gz = f["gzip"].nbytes / f["gzip"].id.get_storage_size()
        lzf = f["lzf"].nbytes / f["lzf"].id.get_storage_size()
    assert 900 < gz < H.INFLATION[1]
    assert lzf < H.INFLATION[32000]
