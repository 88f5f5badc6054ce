"""Calibration file layout: how fast each layout is written by voxel stripes and how fast the rows a
default reconstruction selects are read back — the measurement behind mpisim's choice
(:data:`mpisim.io.calibration.LAYOUT`: contiguous rows, frame axis fastest, a checksum per row).

Usage: python benchmarks/bench_sm_layout.py [--grid 13] [--dir DIR]

One bruker-3d matrix (full band, ``--grid``³ voxels, 10 background frames) is built with mpisim,
then written again in each layout by the build's access pattern (stripes of all rows × S voxels,
S from ``mpisim.systemmatrix.STRIPE_BYTES``); each file is then read, cold (its pages dropped from
the page cache with posix_fadvise after an fsync), for the rows with SNR ≥ 2 (the default
selection's size and scatter), in a fresh process: wall time, peak RSS and bytes the layout makes
the reader fetch. Layouts:

- rows+sum : contiguous (1, C, K', N), per-row Fletcher-64 (mpisim's files)
- rows     : the same read without checking the checksums (the price of the check)
- c8xS     : chunks of 8 rows × S voxels, fletcher32 (mpisim's ``--compression``/"chunked" layout)
- c8xS+lzf, c8xS+gzip : the same, compressed
- old      : chunks of ~2 MB (2545 rows × 103 voxels), fletcher32 (mpisim before issue 11)
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

READ = """
import os, sys, time, resource, numpy as np, h5py
from mpisim.io.mdf import read_rows
from mpisim.io import calibration
path, verify = sys.argv[1], sys.argv[2] == "1"
with h5py.File(path, "r") as h:
    snr = h["calibration/snr"][()][0]
    chunks = h["measurement/data"].chunks
    NE = h["measurement/data"].shape[-1]
c, k = np.nonzero(snr >= 2)
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
t = time.perf_counter()
if verify:
    A = read_rows(path, c, k)
else:
    with h5py.File(path, "r") as h:
        ds = h["measurement/data"]
        A = np.empty((c.size, NE), np.complex64)
        for ch in np.unique(c):
            s = np.flatnonzero(c == ch)
            calibration.read_row_runs(path, ds, int(ch), k[s], A[s[0]:s[-1] + 1], np.complex64)
dt = time.perf_counter() - t
if chunks is None:
    fetched = A.nbytes
else:
    kc = chunks[2]
    bands = sum(np.unique(k[c == ch] // kc).size for ch in np.unique(c))
    fetched = bands * kc * NE * 8
peak = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])   # own peak, not the parent's
print(f"{dt:.3f} {peak / 1024:.0f} {A.nbytes} {fetched} {c.size}")
"""


def write_variant(src, dst, chunks, compression, stripe):
    """Copy ``src``'s matrix into ``dst`` in the given layout, stripe by stripe (the build's order)."""
    import h5py

    from mpisim.io import calibration, checksum

    with h5py.File(src, "r") as hs, h5py.File(dst, "w") as hd:
        ds = hs["measurement/data"]
        _, C, K, NE = ds.shape
        for name in hs:                                   # every other dataset as it is (the reader needs them)
            if name != "measurement":
                hs.copy(hs[name], hd, name=name)
        for name in hs["measurement"]:
            if name != "data":
                hs.copy(hs["measurement"][name], hd.require_group("measurement"), name=name)
        if "_mpisim/rowChecksum" in hd:
            del hd["_mpisim/rowChecksum"]
        stripes = [ds[0, :, :, a:min(NE, a + stripe)] for a in range(0, NE, stripe)]   # source read untimed
        t = time.perf_counter()
        if chunks is None:
            off = calibration.create_row_dataset(hd, ds.shape, ds.dtype)
            hd.flush()
            w = calibration.StripeWriter(dst, off, (C, K, NE), ds.dtype, NE - 10)
            for i, s in enumerate(stripes):
                w.submit(np.ascontiguousarray(s), i * stripe)
                if i:
                    w.free()
            sums, _ = w.close()
            hd["_mpisim/rowChecksum"] = sums
        else:
            out = hd.create_dataset("measurement/data", shape=ds.shape, dtype=ds.dtype, chunks=chunks,
                                    fletcher32=True, compression=compression)
            for i, s in enumerate(stripes):
                out[0, :, :, i * stripe:i * stripe + s.shape[-1]] = s
        hd.flush()
        os.fsync(hd.id.get_vfd_handle())
        dt = time.perf_counter() - t
    del stripes
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=13)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    import mpisim
    from mpisim.systemmatrix import STRIPE_BYTES, CalibrationSettings, build_system_matrix, default_grid

    d = tempfile.mkdtemp(prefix="mpisim-layout-", dir=a.dir)
    sc = mpisim.get_scanner("bruker-3d")
    g = default_grid(sc, (a.grid,) * 3)
    src = os.path.join(d, "src.mdf")
    build_system_matrix(sc, mpisim.Tracer(), g, CalibrationSettings(background_frames=10), out=src,
                        use_cache=False, load=False)
    C, K = sc.num_rx_channels, sc.num_frequencies
    stripe = max(103, STRIPE_BYTES // (C * K * 8) // 103 * 103)
    variants = [("rows+sum", None, None), ("c8xS", (1, 1, 8, stripe), None), ("c8xS+lzf", (1, 1, 8, stripe), "lzf"),
                ("c8xS+gzip", (1, 1, 8, stripe), "gzip"), ("old", (1, 1, 2545, 103), None)]
    print(f"bruker-3d {a.grid}³, {C}×{K} rows × {g.size + 10} frames; stripes of {stripe} voxels")
    print(f"{'layout':10} {'write s':>8} {'file GB':>8} {'read s':>7} {'peak MB':>8} {'rows':>6} {'rows GB':>8} "
          f"{'fetched GB':>10}")
    for name, chunks, comp in variants:
        p = os.path.join(d, name + ".mdf")
        wt = write_variant(src, p, chunks, comp, stripe)
        size = os.path.getsize(p)
        for verify in ((True, False) if chunks is None else (True,)):
            r = subprocess.run([sys.executable, "-c", READ, p, "1" if verify else "0"], capture_output=True, text=True)
            if r.returncode:
                print(name, "read failed:", r.stderr.strip().splitlines()[-1:])
                continue
            rt, rss, nbytes, fetched, rows = r.stdout.split()
            label = name if verify else "rows"
            print(f"{label:10} {wt if verify else float('nan'):8.1f} {size / 1e9:8.2f} {float(rt):7.2f} {float(rss):8.0f} "
                  f"{int(rows):6d} {int(nbytes) / 1e9:8.2f} {int(fetched) / 1e9:10.2f}", flush=True)
        os.remove(p)
    os.remove(src)
    os.rmdir(d)


if __name__ == "__main__":
    main()
