"""Forward-model speed: voxel·samples per second for simulate(), numpy/numba path and cupy.

Usage: python benchmarks/bench_simulate.py [--sizes 19] [--backends numpy,cupy]
Prints a table; peak memory is the process's maximum resident set size (CPU).
"""

import argparse
import resource
import time

import numpy as np

import mpisim
from mpisim.backend import gpu_available
from mpisim.grid import Grid
from mpisim.phantoms import Phantom
from mpisim.forward import simulate


def bench(scanner, n, backend, repeat=2):
    fov = tuple(scanner.drive_fov * 1.1 + (scanner.drive_fov == 0) * 1e-3)
    grid = Grid((n, n, n), fov)
    ph = Phantom(grid, np.full(grid.shape, 0.01))
    simulate(scanner, mpisim.Tracer(), Phantom(Grid((2, 2, 2), fov), np.full((2, 2, 2), 0.01)), backend=backend)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        simulate(scanner, mpisim.Tracer(), ph, backend=backend)
        best = min(best, time.perf_counter() - t)
    return grid.size, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scanner", default="bruker-3d")
    ap.add_argument("--sizes", default="11,19")
    ap.add_argument("--backends", default="numpy" + (",cupy" if gpu_available() else ""))
    a = ap.parse_args()
    sc = mpisim.get_scanner(a.scanner)
    print(f"scanner {sc.name}: {sc.num_samples} samples/period, {sc.num_rx_channels} channels")
    print(f"{'backend':8} {'grid':>9} {'voxels':>8} {'time/s':>8} {'voxel·samples/s':>16} {'peak RSS/MB':>12}")
    for backend in a.backends.split(","):
        for n in (int(s) for s in a.sizes.split(",")):
            P, t = bench(sc, n, backend)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{backend:8} {f'{n}x{n}x{n}':>9} {P:8d} {t:8.2f} {P * sc.num_samples / t:16.3e} {rss:12.0f}")


if __name__ == "__main__":
    main()
