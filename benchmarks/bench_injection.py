"""Benchmark: simulating a guided injection frame by frame (issue 24, first part) against its acquisition time.

For the preset injection (mpisim.injection.injection_preset) on bruker-2d (frames of 100 averaged cycles) and
bruker-3d (one cycle a frame, 46.4 frames/s, the sequence's own rate), the time to make the voxel responses of the
region the injection reaches (once) and then each frame (a product of those responses with the frame's
concentrations, noise added), against the frames' acquisition time; the target of issue 24 is at most 10 × the
acquisition time. No file is written (the frames are made in memory, as ``simulate --phantom injection`` makes them
before writing).

    python benchmarks/bench_injection.py [--frames 200]
"""

import argparse
import time

import numpy as np

import mpisim
from mpisim.forward import SeriesSource
from mpisim.injection import injection_preset, region_grid


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200)
    a = ap.parse_args(argv)
    print(f"{'scanner':10} {'region voxels':>13} {'responses s':>11} {'frames':>7} {'s/frame':>9} "
          f"{'acq. s/frame':>12} {'sim/acq':>8}")
    for name, averages in (("bruker-2d", 100), ("bruker-3d", 1)):
        sc = mpisim.get_scanner(name)
        inj = injection_preset(sc)
        grid = region_grid(sc, inj)
        st = mpisim.SimulationSettings.realistic(sc, frames=a.frames, background_frames=2, averages=averages, seed=0)
        t0 = time.perf_counter()
        src = SeriesSource(sc, mpisim.Tracer(), inj, grid, st)
        t_resp = time.perf_counter() - t0
        # frames spread over the whole infusion: a frame at its time, every k-th of the acquisition
        k = max(1, int(inj.duration / (sc.drive_field.cycle * averages) / a.frames))
        src.times = np.arange(a.frames) * sc.drive_field.cycle * averages * k
        t0 = time.perf_counter()
        for f in range(0, src.num_frames, 16):
            src.frames(f, min(f + 16, src.num_frames))
        per = (time.perf_counter() - t0) / src.num_frames
        acq = sc.drive_field.cycle * averages
        print(f"{name:10} {grid.size:13d} {t_resp:11.2f} {src.num_frames:7d} {per:9.4f} {acq:12.4f} {per / acq:8.2f}")


if __name__ == "__main__":
    main()
