"""System-matrix build speed and memory: voxels/s and peak RSS, including the HDF5 write.

Usage: python benchmarks/bench_sysmat.py [--cases 2d-41,3d-19] [--backend numpy|cupy] [--max-freq HZ]
Each case runs in a fresh subprocess so its peak memory is its own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CASES = {"2d-41": ("bruker-2d", (41, 41, 1)), "3d-19": ("bruker-3d", (19, 19, 19)),
         "3d-37": ("bruker-3d", (37, 37, 37))}


def child(case, backend, out, max_freq=0.0):
    import mpisim
    from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

    name, shape = CASES[case]
    sc = mpisim.get_scanner(name)
    grid = default_grid(sc, shape)
    build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (2, 2, 1 if shape[2] == 1 else 2)),
                        use_cache=False, out=out + ".warm", backend=backend)
    os.remove(out + ".warm")
    t = time.perf_counter()
    st = CalibrationSettings(max_freq=max_freq)
    build_system_matrix(sc, mpisim.Tracer(), grid, st, use_cache=False, out=out, backend=backend, load=False)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nbins = int((sc.frequencies <= max_freq).sum()) if max_freq else sc.num_frequencies
    out_mb = sc.num_rx_channels * nbins * grid.size * 8 / 2**20
    print(json.dumps({"case": case, "voxels": grid.size, "seconds": dt, "voxels_per_s": grid.size / dt,
                      "peak_rss_mb": rss, "output_mb": out_mb, "file_mb": os.path.getsize(out) / 2**20}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="2d-41,3d-19")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-freq", type=float, default=0.0, help="store bins up to this frequency only (Hz)")
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.backend, a.out, a.max_freq)
    print(f"{'case':7} {'backend':7} {'voxels':>7} {'time/s':>7} {'voxels/s':>9} {'peak RSS/MB':>11} "
          f"{'matrix/MB':>9} {'file/MB':>8}")
    for case in a.cases.split(","):
        with tempfile.TemporaryDirectory(dir=os.environ.get("MPISIM_BENCH_DIR")) as d:
            r = subprocess.run([sys.executable, __file__, "--child", case, "--backend", a.backend,
                                "--max-freq", str(a.max_freq), "--out", os.path.join(d, "sm.mdf")],
                               capture_output=True, text=True)
            if r.returncode:
                print(case, "failed:", r.stderr.strip().splitlines()[-1:])
                continue
            j = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{case:7} {a.backend:7} {j['voxels']:7d} {j['seconds']:7.2f} {j['voxels_per_s']:9.0f} "
                  f"{j['peak_rss_mb']:11.0f} {j['output_mb']:9.0f} {j['file_mb']:8.0f}")


if __name__ == "__main__":
    main()
