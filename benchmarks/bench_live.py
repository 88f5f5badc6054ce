"""Benchmark: live reconstruction of a guided injection at the scanner's frame rate (issue 24), on 2 CPU cores.

For bruker-3d (the README's 19³ matrix; one frame per image, the sequence's own 46.4 frames/s) and bruker-2d (a
41 × 41 matrix; blocks of 32 frames averaged into one image, 47.9 images/s of its 1532 frames/s), what the README
tells a user to run:

1. the preset guided injection simulated to a file (``mpisim simulate --phantom injection --noise realistic
   --background-frames 10``, 30 s: reflux from 12 s, a leak into the ventricle from 20 s), timed against the
   frames' acquisition time;
2. ``mpisim live`` once on that file, which prepares the session's Tikhonov operator and caches it;
3. the file played back at the sequence's pace as a scanner delivers it (``mpisim simulate --replay … --pace
   realtime``) while ``mpisim live`` follows it (``--report``), both running at once;
4. ``mpisim reco`` of the same frames (offline, its defaults, the same block averaging) for comparison, on 60 of
   the live images spread over the session.

It prints one row per scanner: images and frames per second sustained, latency from a frame written to its
image (median, 95th percentile; and from the frame first seen in the file by the session, its own share), frames dropped while the session was set up and after, the correlation of the
live images with the offline ones and the ratio of their iron in the target ROI (images whose target holds at
least 10 σ of its noise), the on-target fraction at the end against the truth, and how long after their onsets
the reflux and the leak were flagged.

    python benchmarks/bench_live.py [--scanners bruker-3d,bruker-2d] [--seconds 30] [--keep DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mpisim
from mpisim.injection import injection_preset
from mpisim.quant import iron_mass_map, parse_roi, roi_weights

OFFLINE_IMAGES = 60
"""Live images compared with the offline reconstruction (evenly spread over the session): a full offline
reconstruction of 1410 bruker-3d frames takes longer than the rest of the benchmark together."""

CASES = {
    "bruker-3d": {"sysmat": ["--grid", "19x19x19", "--fov", "0.038,0.038,0.019"], "average": 1,
                  "rois": ["target=sphere:-3.5,0,0,1.2", "track=cylinder:-3.5,1.2,0,-3.5,5,0,1",
                           "ventricle=sphere:-1.5,2,0,0.9"]},
    "bruker-2d": {"sysmat": ["--grid", "41x41x1"], "average": 32,
                  "rois": ["target=sphere:-3.5,0,0,1.2", "track=cylinder:-3.5,1.2,0,-3.5,5,0,0.6",
                           "ventricle=sphere:-1.5,2,0,0.9"]},
}
"""The matrices and ROIs: the target, the needle track above it (from the target ROI's edge along the needle) and
the ventricle, as a surgeon would draw them from the plan (:func:`mpisim.injection.injection_preset`)."""


def mpisim_cmd(*args, **kw):
    return subprocess.run([sys.executable, "-m", "mpisim", *map(str, args)], check=True, capture_output=True,
                          text=True, **kw)


def run_case(name, seconds, d):
    case = CASES[name]
    sc = mpisim.get_scanner(name)
    avg = case["average"]
    frames = int(round(seconds / sc.drive_field.cycle))
    frames -= frames % avg
    sm, inj, stream = d / "sm.mdf", d / "inj.mdf", d / "stream.mdf"
    mpisim_cmd("sysmat", "--scanner", name, *case["sysmat"], "--out", sm, "--overwrite")
    t0 = time.perf_counter()
    mpisim_cmd("simulate", "--scanner", name, "--phantom", "injection", "--noise", "realistic", "--background-frames",
               10, "--frames", frames, "--dtype", "float32", "--out", inj, "--overwrite")
    t_sim = time.perf_counter() - t0
    roi_args = [a for r in case["rois"] for a in ("--roi", r)] + ["--warn", "track", "--warn", "ventricle"]
    t0 = time.perf_counter()
    mpisim_cmd("live", inj, "--sm", sm, "--out", d / "prep.mdf", "--average", avg, "--overwrite", *roi_args)
    t_prep = time.perf_counter() - t0
    stream.unlink(missing_ok=True)
    writer = subprocess.Popen([sys.executable, "-m", "mpisim", "simulate", "--replay", str(inj), "--pace", "realtime",
                               "--out", str(stream)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    live = mpisim_cmd("live", stream, "--sm", sm, "--out", d / "live.mdf", "--report", d / "live.json", "--average",
                      avg, "--overwrite", *roi_args)
    replay = writer.communicate()[0]
    rep = json.loads((d / "live.json").read_text())
    blocks = [i["block"] for i in rep["images"]]
    some = blocks[::max(1, len(blocks) // OFFLINE_IMAGES)]
    sel = ",".join(str(f) for b in some for f in range(b * avg, (b + 1) * avg))
    mpisim_cmd("reco", stream, "--sm", sm, "--average", avg, "--frames", sel, "--out", d / "offline.mdf",
               "--uncertainty-samples", 0, "--overwrite")
    run = {"t_sim": t_sim, "frames": frames, "t_prep": t_prep, "replay": replay, "said": live.stdout, "some": some}
    (d / "run.json").write_text(json.dumps(run))
    return compare(name, sc, rep, d, t_sim, frames, t_prep, replay, live.stdout, some)


def reuse(name, d):
    """The row of a kept run (``--keep DIR --reuse``), recomputed from its files."""
    run = json.loads((d / "run.json").read_text())
    rep = json.loads((d / "live.json").read_text())
    return compare(name, mpisim.get_scanner(name), rep, d, run["t_sim"], run["frames"], run["t_prep"], run["replay"],
                   run["said"], run["some"])


def compare(name, sc, rep, d, t_sim, frames, t_prep, replay, said, some):
    import h5py

    live = mpisim.read_reconstruction(d / "live.mdf")
    off = mpisim.read_reconstruction(d / "offline.mdf")
    blocks = np.array([i["block"] for i in rep["images"]])
    target = parse_roi(CASES[name]["rois"][0])
    w = roi_weights(target, live.grid)[0][1]
    corr, ratio = [], []
    sig_t = rep["setup"]["roi_sigma_kg"][0] / float(iron_mass_map(1.0, live.grid.voxel_volume))
    index = {int(b): i for i, b in enumerate(blocks)}
    corr_all = []
    for o, b in zip(off.image, some):
        img = live.image[index[b]]
        corr_all.append(np.corrcoef(img, o)[0, 1])
        if w @ o > 10 * sig_t:                   # the target holds iron: the images show something
            ratio.append((w @ img) / (w @ o))
            corr.append(corr_all[-1])
    corr, ratio, corr_all = np.array(corr), np.array(ratio), np.array(corr_all)
    gaps = np.diff(blocks)
    avg = CASES[name]["average"]
    dropped_after = int(np.sum(gaps[1:] - 1) * avg) if len(gaps) > 1 else 0
    with h5py.File(d / "stream.mdf", "r") as f:
        truth = {k: f[f"_mpisim/series/{k}"][()] for k in f["_mpisim/series"]}
        nbg = int(np.count_nonzero(f["measurement/isBackgroundFrame"][()]))
    ft = rep["setup"]["frame_time_s"]
    inj = injection_preset(sc)
    delays = {}
    for roi, onset in (("track", inj.reflux_onset), ("ventricle", inj.leak_onset)):
        wdoc = rep["setup"]["warnings"].get(roi)
        delays[roi] = (wdoc["frame"] - nbg + 1) * ft - onset if wdoc else float("nan")
    last = rep["images"][-1]["frame"] - nbg
    ot_true = truth["target"][last] / truth["total"][last]
    ot = rep["on_target"]
    return {"scanner": name, "average": avg, "images_per_s": rep["images_per_second"],
            "frames_per_s": rep["frames_per_second"], "latency_median_ms": rep["latency_median_s"] * 1e3,
            "latency_p95_ms": rep["latency_p95_s"] * 1e3,
            "session_latency_median_ms": rep["session_latency_median_s"] * 1e3,
            "session_latency_p95_ms": rep["session_latency_p95_s"] * 1e3,
            "dropped_setup": rep["frames_dropped"] - dropped_after,
            "dropped_after": dropped_after, "setup_s": rep["setup"]["setup_seconds"], "prepare_s": t_prep,
            "corr_min": float(corr.min()), "corr_median": float(np.median(corr)),
            "corr_min_all": float(corr_all.min()),
            "target_ratio_median": float(np.median(ratio)) if len(ratio) else float("nan"),
            "target_ratio_worst": float(ratio[np.argmax(np.abs(ratio - 1))]) if len(ratio) else float("nan"),
            "target_images": int(len(ratio)), "compared_images": int(len(corr)), "on_target": ot["fraction"], "on_target_low": ot["low"],
            "on_target_high": ot["high"], "on_target_truth": float(ot_true), "reflux_delay_s": delays["track"],
            "leak_delay_s": delays["ventricle"], "simulate_s": t_sim, "acquisition_s": frames * ft,
            "sequence_frames_per_s": 1 / ft, "replay": replay.strip().splitlines()[-1], "live_said": said.strip()}


def table(rows):
    print(f"{'scanner':10} {'avg':>4} {'images/s':>8} {'frames/s':>9} {'seq fr/s':>8} {'lat med':>8} {'lat p95':>8} "
          f"{'(seen med':>9} {'p95)':>7} "
          f"{'drop set-up':>11} {'drop after':>10} {'corr min':>8} {'(all)':>6} {'target live/off':>15} {'on target':>17} "
          f"{'truth':>6} {'reflux':>7} {'leak':>6} {'sim/acq':>7}")
    for r in rows:
        print(f"{r['scanner']:10} {r['average']:4d} {r['images_per_s']:8.1f} {r['frames_per_s']:9.1f} "
              f"{r['sequence_frames_per_s']:8.1f} {r['latency_median_ms']:6.1f}ms {r['latency_p95_ms']:6.1f}ms "
              f"{r['session_latency_median_ms']:7.1f}ms {r['session_latency_p95_ms']:5.1f}ms "
              f"{r['dropped_setup']:11d} {r['dropped_after']:10d} {r['corr_min']:8.4f} {r['corr_min_all']:6.3f} "
              f"{r['target_ratio_median']:7.3f} ({r['target_ratio_worst']:.3f}) "
              f"{r['on_target']:6.1%} [{r['on_target_low']:.0%}–{r['on_target_high']:.0%}] {r['on_target_truth']:6.1%} "
              f"{r['reflux_delay_s']:+6.2f}s {r['leak_delay_s']:+5.2f}s {r['simulate_s'] / r['acquisition_s']:7.2f}")
    print("(avg: frames averaged per image; lat: frame written → image (seen: from the frame first seen in the file "
          "by the session, its own share); drop: frames skipped while the session was "
          "set up / after; corr min: lowest correlation of a live image with the offline one, images whose target holds "
          "≥ 10 σ (all: every image compared, the first ones noise alone); target live/off: median (worst) ratio of "
          "the target ROI's iron in those images; on target: the report's fraction "
          "[95 % interval, noise only] against the truth; reflux, leak: flagged this long after their onset; "
          "sim/acq: simulating the frames against acquiring them)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scanners", default="bruker-3d,bruker-2d")
    ap.add_argument("--seconds", type=float, default=30.5)
    ap.add_argument("--keep", default=None, help="keep the files in this folder")
    ap.add_argument("--reuse", action="store_true", help="with --keep: print the table of the kept runs again")
    a = ap.parse_args(argv)
    rows = []
    for name in a.scanners.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            d = Path(a.keep) / name if a.keep else Path(tmp)
            os.makedirs(d, exist_ok=True)
            rows.append(reuse(name, d) if a.reuse and (d / "run.json").exists() else run_case(name, a.seconds, d))
            print(json.dumps({k: v for k, v in rows[-1].items()}, indent=None), file=sys.stderr, flush=True)
    table(rows)


if __name__ == "__main__":
    main()
