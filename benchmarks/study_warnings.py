"""Study: how soon `mpisim live` flags reflux and leaks, and how often it flags what is not there, on a seeded
randomized family of guided injections (issue 24). The onset test's threshold and windows
(:mod:`mpisim.alarms`) were chosen on this family; the benchmark's preset injection (``bench_live.py``) is not in it.

Each case draws an injection around the preset's (:func:`mpisim.injection.injection_preset`): the target moved
up to 1 mm along each driven axis, the needle tilted up to 15°, an infusion rate of 1–4 µL/min of 0.5–1.5 µL, the
ventricle moved up to 0.5 mm; a reflux (3 cases in 4) from 3–9 s at 15–50 % of the infusion, a leak (1 in 2) from
3–9 s at 10–30 %. The scan is simulated with the scanner's realistic noise and 10 background frames over the
onset plus 7 s (16 s without one), then followed by ``mpisim live``'s session (every image: ``policy="all"``) with
the ROIs a surgeon would draw from the plan: the target (a 1.2 mm ball), the needle track beyond it (a cylinder
from 1.2 to 5 mm above the target) and the ventricle. For every flagged ROI the study records the delay after the
onset, which rule fired, and the largest z the onset test reached before the onset (or in the whole session
when there is none): a false alarm at a threshold is a z above it before the onset.

    python benchmarks/study_warnings.py [--scanners bruker-3d,bruker-2d] [--cases 16] [--seed 2026] [--out FILE]
    python benchmarks/study_warnings.py --table benchmarks/results/study_warnings_bruker-3d_seed2026.jsonl.gz --retest

Every case keeps the bins the onset test saw, so ``--retest`` gives the test's figures for other thresholds and
spill fractions without simulating again (how :data:`mpisim.alarms.ONSET_Z` and :data:`mpisim.alarms.SPILL` were
chosen). The kept bruker-3d run: ``benchmarks/results/study_warnings_bruker-3d_seed2026.jsonl.gz`` (its first 13
cases ran with an earlier spill fraction, 0.05, so its "warning" rows are that rule's; ``--retest`` recomputes all
16 with the current one); the bruker-2d run, 16 cases with the current settings, beside it
(``study_warnings_bruker-2d_seed2026.jsonl.gz``).
"""

import argparse
import gzip
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import mpisim
from mpisim import load_system_matrix
from mpisim.alarms import ONSET_Z
from mpisim.cli.common import add_tracer_args, tracer_from_args
from mpisim.forward import SimulationSettings, simulate_series
from mpisim.injection import injection_preset, region_grid
from mpisim.live import LiveSettings, follow
from mpisim.errors import MPISimError
from mpisim.quant import parse_roi, roi_weights
from mpisim.reco.amounts import check_disjoint

SCANNERS = {"bruker-3d": {"sysmat": ["--grid", "19x19x19", "--fov", "0.038,0.038,0.019"], "average": 1, "track_r": 1.0},
            "bruker-2d": {"sysmat": ["--grid", "41x41x1"], "average": 32, "track_r": 0.6}}
"""The matrices, block averaging and track ROI radii of ``bench_live.py``."""
AFTER_S = 7.0
"""Seconds simulated after the last onset."""
BACKGROUND = 10
"""Background frames before the injection (what the README's commands record)."""
THRESHOLDS = (4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 8.0)


def default_tracer():
    """The tracer ``mpisim simulate`` uses when none is named."""
    p = argparse.ArgumentParser()
    add_tracer_args(p)
    return tracer_from_args(p.parse_args([]))


def draw(rng, scanner):
    """One injection of the family and its ROIs (module docstring)."""
    base = injection_preset(scanner)
    driven = [f > 0 for f in scanner.drive_fov]
    shift = np.array([rng.uniform(-1e-3, 1e-3) if d else 0.0 for d in driven])
    target = np.array(base.target) + shift
    tilt = math.radians(rng.uniform(-15, 15))
    axis = np.array([math.sin(tilt), math.cos(tilt), 0.0])
    entry = target + 9e-3 * axis
    vshift = np.array([rng.uniform(-0.5e-3, 0.5e-3) if d else 0.0 for d in driven])
    ventricle = (*(np.array(base.ventricle[:3]) + shift + vshift), base.ventricle[3])
    reflux = rng.random() < 0.75
    leak = rng.random() < 0.5
    inj = replace(base, target=tuple(target), entry=tuple(entry), ventricle=tuple(ventricle),
                  rate=rng.uniform(1, 4) * 1e-9 / 60, volume=rng.uniform(0.5, 1.5) * 1e-9,
                  reflux_onset=rng.uniform(3, 9) if reflux else None, reflux_fraction=rng.uniform(0.15, 0.5),
                  leak_onset=rng.uniform(3, 9) if leak else None, leak_fraction=rng.uniform(0.1, 0.3))
    mm = 1e3
    a, b = target + 1.2e-3 * axis, target + 5e-3 * axis
    rois = [f"target=sphere:{target[0] * mm},{target[1] * mm},{target[2] * mm},1.2",
            "track=cylinder:" + ",".join(f"{v * mm:.4f}" for v in (*a, *b)) + f",{SCANNERS[scanner.name]['track_r']}",
            f"ventricle=sphere:{ventricle[0] * mm},{ventricle[1] * mm},{ventricle[2] * mm},0.9"]
    return inj, rois


def _disjoint(rois, grid):
    """Whether the ROIs share no voxel of the matrix's grid (what ``mpisim live`` needs)."""
    W = [w for r in rois for _, w, _ in roi_weights(parse_roi(r), grid)]
    try:
        check_disjoint(W, [str(i) for i in range(len(W))])
    except MPISimError:
        return False
    return True


def run_case(scanner, sm, inj, rois, seed, tmp):
    cfg = SCANNERS[scanner.name]
    onsets = [o for o in (inj.reflux_onset, inj.leak_onset) if o is not None]
    span = (max(onsets) if onsets else 9.0) + AFTER_S
    avg = cfg["average"]
    frames = int(span / scanner.drive_field.cycle) // avg * avg
    st = SimulationSettings.realistic(scanner, frames=frames, background_frames=BACKGROUND, dtype="float32",
                                       seed=seed)
    path = Path(tmp) / "inj.mdf"
    t0 = time.perf_counter()
    simulate_series(scanner, default_tracer(), inj, region_grid(scanner, inj), st, out=path, overwrite=True)
    t_sim = time.perf_counter() - t0
    res = follow(path, sm, settings=LiveSettings(average=avg, policy="all", warn=("track", "ventricle")),
                 rois=[parse_roi(r) for r in rois])
    ft = res.info["frame_time_s"]
    bt, by, bn = res.info["_onset_bins"]
    out = {"scanner": scanner.name, "seed": seed, "rois": rois, "simulate_s": t_sim, "span_s": span,
           "sigma_fixed_kg": res.info["roi_sigma_fixed_kg"], "roi_names": res.info["rois"],
           "bins": {"t": list(map(float, bt)), "y": [list(map(float, v)) for v in by], "n": list(map(float, bn))},
           "rate_ul_min": inj.rate * 60e9, "volume_ul": inj.volume * 1e9}
    for roi, onset, frac in (("track", inj.reflux_onset, inj.reflux_fraction),
                             ("ventricle", inj.leak_onset, inj.leak_fraction)):
        w = res.info["warnings"].get(roi)
        trace = np.array(res.info["_onset_trace"].get(roi) or [(0.0, -np.inf)])
        end = onset if onset is not None else np.inf
        before = trace[trace[:, 0] < end, 1]
        first = {}
        for z in THRESHOLDS:                           # the first time the onset test passes z, had it been the rule
            hit = np.flatnonzero(trace[:, 1] > z)
            first[str(z)] = float(trace[hit[0], 0]) if hit.size else None
        out[roi] = {"onset_s": onset, "fraction": frac if onset is not None else 0.0,
                    "rate_ng_s": (frac * inj.rate * inj.iron_density * 1e12) if onset is not None else 0.0,
                    "flagged_s": None if w is None else (w["frame"] - BACKGROUND + 1) * ft,
                    "rule": None if w is None else w["rule"],
                    "rules_first_s": {k: (f - BACKGROUND + 1) * ft
                                      for k, f in res.info["_first_fired"].get(roi, {}).items()},
                    "z_max_before": float(before.max()) if before.size else None, "first_above": first}
    return out


def _delays(rr, key):
    """(delays after the onset of the ROIs that have one, false alarms: fired before the onset or without one) of
    a rule's first firing (``key``: "onset", "level" or None for the warning, whichever came first)."""
    def first(r):
        return r["flagged_s"] if key is None else r.get("rules_first_s", {}).get(key)
    d = [first(r) - r["onset_s"] for r in rr if r["onset_s"] is not None and first(r) is not None
         and first(r) >= r["onset_s"]]
    false = sum(1 for r in rr if first(r) is not None and (r["onset_s"] is None or first(r) < r["onset_s"]))
    return d, false


def summary(rows):
    print(f"{'scanner':10} {'ROI':10} {'rule':8} {'ROIs':>5} {'onsets':>6} {'flagged':>8} {'delay median':>12} "
          f"{'delay max':>9} {'≤ 2 s':>6} {'false alarms':>12}")
    for sc in sorted({r["scanner"] for r in rows}):
        for roi in ("track", "ventricle", "both"):
            rr = [r[k] for r in rows if r["scanner"] == sc for k in (("track", "ventricle") if roi == "both" else (roi,))]
            pos = [r for r in rr if r["onset_s"] is not None]
            for rule in ("warning", "onset", "level"):
                d, fa = _delays(rr, None if rule == "warning" else rule)
                print(f"{sc:10} {roi:10} {rule:8} {len(rr):5d} {len(pos):6d} {len(d):8d} "
                      f"{np.median(d) if d else float('nan'):11.2f}s {max(d) if d else float('nan'):8.2f}s "
                      f"{sum(x <= 2 for x in d):6d} {fa:12d}")
    print("(warning: the first of the two rules, what `mpisim live` raises; onset: the ramp test, mpisim.alarms; level: "
          "the amount above 5 σ of its noise and its shape error; false alarms: fired before the onset, or with none)")
    print(f"\nthe onset test at other thresholds (now {ONSET_Z:g}): ROIs whose z passed it before their onset or without "
          "one (false) / ROIs with an onset flagged within 2 s / median delay")
    for sc in sorted({r["scanner"] for r in rows}):
        rr = [r[roi] for r in rows if r["scanner"] == sc for roi in ("track", "ventricle")]
        pos = [r for r in rr if r["onset_s"] is not None]
        print(f"{sc}:  largest z before an onset or without one: "
              f"{max(r['z_max_before'] for r in rr if r['z_max_before'] is not None):.2f}")
        for z in THRESHOLDS:
            k = str(z)
            false = sum(1 for r in rr if r["z_max_before"] is not None and r["z_max_before"] > z)
            d = [r["first_above"][k] - r["onset_s"] for r in pos
                 if r["first_above"][k] is not None and r["first_above"][k] >= r["onset_s"]]
            print(f"  z {z:g}: {false}/{len(rr)} false, {sum(x <= 2 for x in d)}/{len(pos)} ≤ 2 s, "
                  f"{len(d)}/{len(pos)} flagged, median {np.median(d) if d else float('nan'):.2f} s")


def _fits(row):
    """Every test the session ran: [(T, τ (m,), z (m, k), ĉ (m, k), ok (m,)) …] from the row's bins."""
    import mpisim.alarms as A

    b = row["bins"]
    t, Y, n = np.array(b["t"]), np.array(b["y"]), np.array(b["n"])
    sigma = np.array(row["sigma_fixed_kg"])
    out = []
    for i in range(len(t)):
        T = t[i]
        if T - t[0] < A.HISTORY_MIN_S + A.RAMP_MIN_S:
            continue
        taus = np.arange(T - A.RAMP_MAX_S, T - A.RAMP_MIN_S + 1e-9, A.BIN_S)
        z, c, _, ok = A.ramp_fits(t[:i + 1], Y[:i + 1], n[:i + 1], taus, sigma)
        out.append((T, taus, z, c, ok))
    return out


def _first(fits, j, z_crit, spill):
    """When the test with threshold ``z_crit`` and spill fraction ``spill`` first fires for ROI j (None: never)."""
    for T, _, z, c, ok in fits:
        others = np.delete(np.abs(c), j, axis=1)
        fire = ok & (z[:, j] > z_crit) & (c[:, j] > spill * (others.max(axis=1) if others.shape[1] else 0.0))
        if fire.any():
            return T
    return None


def retest(rows, spills=(0.05, 0.1, 0.2, 0.3), zs=(4.0, 5.0, 6.0, 7.0, 8.0)):
    """The onset test's figures on the kept sessions for other settings (the bins each session recorded)."""
    import mpisim.alarms as A

    print(f"the onset test on the kept sessions, by its threshold z and spill fraction (now z {A.ONSET_Z:g}, "
          f"spill {A.SPILL:g}): false alarms (ROIs flagged before an onset or without one) / ROIs with an onset "
          "flagged / within 2 s / median and largest delay")
    for sc in sorted({r["scanner"] for r in rows}):
        mine = [r for r in rows if r["scanner"] == sc]
        fits = [_fits(r) for r in mine]
        for spill in spills:
            for z in zs:
                false, d, pos = 0, [], 0
                for r, f in zip(mine, fits):
                    for roi in ("track", "ventricle"):
                        onset = r[roi]["onset_s"]
                        hit = _first(f, r["roi_names"].index(roi), z, spill)
                        pos += onset is not None
                        if hit is not None and (onset is None or hit < onset):
                            false += 1
                        elif hit is not None:
                            d.append(hit - onset)
                print(f"{sc:10} spill {spill:4.2f} z {z:3.1f}: {false:2d} false / {len(d):2d} of {pos} flagged / "
                      f"{sum(x <= 2 for x in d):2d} ≤ 2 s / median {np.median(d) if d else float('nan'):.2f} s, "
                      f"max {max(d) if d else float('nan'):.2f} s")
        ratios(mine, fits)


def ratios(rows, fits, z_crit=6.0):
    """What the spill fraction separates: each ROI's ramp over the largest other change at the same τ, when its z
    first passes ``z_crit`` with no spill guard — before an onset or without one (spill), and after it (arrivals)."""
    spill, real = [], []
    for r, f in zip(rows, fits):
        for roi in ("track", "ventricle"):
            j, onset = r["roi_names"].index(roi), r[roi]["onset_s"]
            for T, _, z, c, ok in f:
                fire = ok & (z[:, j] > z_crit) & (c[:, j] > 0)
                if fire.any():
                    i = int(np.argmax(np.where(fire, z[:, j], -np.inf)))
                    ratio = c[i, j] / np.delete(np.abs(c[i]), j).max()
                    (spill if onset is None or T < onset else real).append(ratio)
                    break
    print(f"  ramp / largest other change at the first z > {z_crit:g}: ROIs without an arriving iron "
          f"{sorted(round(float(x), 2) for x in spill)}; with one, smallest {min(real) if real else float('nan'):.2f} "
          f"(of {len(real)})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scanners", default="bruker-3d,bruker-2d")
    ap.add_argument("--cases", type=int, default=16, help="cases per scanner")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--first", type=int, default=0, help="run cases from this index on (the earlier ones drawn and "
                    "skipped: appends to a run that stopped)")
    ap.add_argument("--out", default=None, help="JSON lines of every case (default: none)")
    ap.add_argument("--sm-dir", default=str(Path.home() / ".cache" / "mpisim" / "study-warnings"),
                    help="where the matrices are built once and kept")
    ap.add_argument("--table", default=None, help="print the summary of a saved --out file and stop")
    ap.add_argument("--retest", action="store_true", help="with --table: the onset test's figures for other "
                    "thresholds and spill fractions, from the sessions' kept bins")
    a = ap.parse_args(argv)
    if a.table:
        opener = gzip.open if a.table.endswith(".gz") else open
        with opener(a.table, "rt") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        summary(rows)
        if a.retest:
            print()
            retest([r for r in rows if "bins" in r])
        return
    rows = []
    for name in a.scanners.split(","):
        scanner = mpisim.get_scanner(name)
        cfg = SCANNERS[name]
        smp = Path(a.sm_dir) / f"{name}.mdf"          # kept: the live operator is cached per matrix file
        if not smp.exists():
            smp.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "mpisim", "sysmat", "--scanner", name, *cfg["sysmat"], "--out",
                            str(smp)], check=True, capture_output=True)
        sm = load_system_matrix(smp)
        with tempfile.TemporaryDirectory(prefix="study-warn-") as tmp:
            rng = np.random.default_rng([a.seed, list(SCANNERS).index(name)])
            for i in range(a.cases):
                inj, rois = draw(rng, scanner)
                while not _disjoint(rois, sm.grid):          # a surgeon draws them apart: draw again
                    inj, rois = draw(rng, scanner)
                if i < a.first:
                    continue
                row = run_case(scanner, sm, inj, rois, a.seed * 1000 + i, tmp)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                if a.out:
                    with open(a.out, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
    summary(rows)


if __name__ == "__main__":
    main()
