"""Multi-contrast study (issue 23): do cell-bound (immobilised) and free (mobile) iron come apart, with the
defaults, on cases nobody tuned for?

A seeded randomized family, run as a user would (``mpisim.simulate`` with the scanner's realistic noise and
10 background frames, ``mpisim.reconstruct`` with one system matrix per tracer state, ``mpisim.quantify``
with its default estimator):

- scanners: ``bruker-2d`` (25 × 25 matrix) and ``bruker-3d`` (the README's 19³ matrix over 38 × 38 × 19 mm);
- tracer: :func:`mpisim.particles.cell_label_tracer` with, on bruker-2d, its anisotropy K drawn from
  3.5–5.5 kJ/m³ and its hydrodynamic diameter from 26–40 nm (on bruker-3d the preset: one 4.4 GB matrix per
  state); the matrices are made with the sample's tracer (no model error);
- objects: a graft (immobilised), a region of free tracer (mobile) and a mixed region (a fraction 0.2–0.8
  immobilised), spheres of 1.5–3 mm radius at random positions within ±35 % of the drive FOV, each holding
  iron log-uniform over a decade (2–20 mmol/L);
- ROIs: a ball of 2 × the object's radius around each (shrunk where needed to stay disjoint).

It prints, per state, recovered/true for the iron each object holds in that state (median, 5th, 95th
percentile, share within 15 %), the cross-talk (iron reported in the state an object does not hold, over the
object's iron) and the coverage of the 95 % intervals, for gtm (the default) and the image sum; for the
amounts at least 10 × their ROI's image-domain detection limit (Currie L_D, the gtm amount's) and for all.

    python benchmarks/study_multicontrast.py --cases 60 --out mc.jsonl      # about 6 min on 2 cores
    python benchmarks/study_multicontrast.py --table --out benchmarks/results/study_multicontrast_seed2026.jsonl.gz
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import mpisim
from mpisim.particles import cell_label_tracer
from mpisim.phantoms import Phantom, phantom_grid, supersampled_fill

SCANNERS = {"bruker-2d": 0.7, "bruker-3d": 0.3}
ROLES = (("graft", 1.0), ("free", 0.0), ("mixed", None))
"""Each object's name and the fraction of its iron that is immobilised (None: drawn)."""


def grid_of(name, sc):
    if name == "bruker-3d":
        return mpisim.Grid((19, 19, 19), (0.038, 0.038, 0.019))
    return mpisim.default_grid(sc, (25, 25, 1))


def draw_case(rng, index):
    names = list(SCANNERS)
    name = names[rng.choice(len(names), p=np.array(list(SCANNERS.values())) / sum(SCANNERS.values()))]
    sc = mpisim.get_scanner(name)
    dims = [i for i in range(3) if sc.drive_fov[i] > 0]
    tracer = {"anisotropy": 4.5e3, "hydrodynamic_diameter": 30e-9}
    if name != "bruker-3d":
        tracer = {"anisotropy": float(rng.uniform(3.5e3, 5.5e3)), "hydrodynamic_diameter": float(rng.uniform(26e-9, 40e-9))}
    objects = []
    for role, frac in ROLES:
        for _try in range(500):
            r = float(rng.uniform(1.5e-3, 3e-3))
            centre = np.zeros(3)
            for i in dims:
                centre[i] = rng.uniform(-0.35, 0.35) * sc.drive_fov[i]
            if all(np.linalg.norm(centre - o["centre"]) > 2.2 * (r + o["radius"]) for o in objects):
                objects.append({"role": role, "radius": r, "centre": centre,
                                "immobilised": float(rng.uniform(0.2, 0.8)) if frac is None else frac,
                                "concentration": float(np.exp(rng.uniform(np.log(2e-3), np.log(20e-3))))})
                break
        else:
            raise RuntimeError(f"case {index}: no room for the {role}")
    return {"index": index, "scanner": name, "tracer": tracer, "objects": objects, "seed": int(rng.integers(2 ** 31))}


def phantom_of(case, sc):
    dims = [i for i in range(3) if sc.drive_fov[i] > 0]
    grid = phantom_grid(sc, resolution=0.5e-3 if len(dims) == 3 else 0.25e-3)
    parts = {"immobilised": np.zeros(grid.shape), "mobile": np.zeros(grid.shape)}
    for o in case["objects"]:
        c, r = o["centre"], o["radius"]
        fill = supersampled_fill(grid, lambda X, Y, Z, c=c, r=r: sum(((X, Y, Z)[i] - c[i]) ** 2 for i in dims) <= r * r,
                                 3, (c - r - grid.spacing.max(), c + r + grid.spacing.max()))
        parts["immobilised"] += fill * o["concentration"] * o["immobilised"]
        parts["mobile"] += fill * o["concentration"] * (1 - o["immobilised"])
    return Phantom.mixed(grid, parts, f"multicontrast-{case['index']}")


_MATRICES = {}


def matrices(name, sc, tracer):
    key = (name, tuple(sorted(tracer.items())))
    if key not in _MATRICES:
        _MATRICES.clear()
        t = cell_label_tracer(**tracer)
        _MATRICES[key] = [mpisim.build_system_matrix(sc, t.in_state(s), grid_of(name, sc)) for s in ("immobilised", "mobile")]
    return _MATRICES[key]


def run_case(case):
    sc = mpisim.get_scanner(case["scanner"])
    S = matrices(case["scanner"], sc, case["tracer"])
    ph = phantom_of(case, sc)
    meas = mpisim.simulate(sc, cell_label_tracer(**case["tracer"]), ph,
                           mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=case["seed"]))
    t0 = time.perf_counter()
    reco = mpisim.reconstruct(meas, S)
    t_reco = time.perf_counter() - t0
    objs = case["objects"]
    f = 2.0
    for i, a in enumerate(objs):
        for b in objs[i + 1:]:
            f = min(f, 0.999 * np.linalg.norm(a["centre"] - b["centre"]) / (a["radius"] + b["radius"]))
    rois = [mpisim.Sphere(tuple(o["centre"]), f * o["radius"], o["role"]) for o in objs]
    t0 = time.perf_counter()
    gtm = mpisim.quantify(reco, rois, measurement=meas, system_matrix=S)
    t_quant = time.perf_counter() - t0
    plain = mpisim.quantify(reco, rois, estimator="roi-sum")
    per = {o["role"]: o for o in objs}
    rows = []
    for rg, rp in zip(gtm.rois, plain.rois):
        o = per[rg.name]
        total = sum(r.truth for r in gtm.rois if r.name == rg.name)
        rows.append({"case": case["index"], "scanner": case["scanner"], **case["tracer"], "object": rg.name,
                     "radius_mm": o["radius"] * 1e3, "immobilised_fraction": o["immobilised"], "state": rg.contrast,
                     "roi_factor": f, "truth": rg.truth, "object_truth": total,
                     "gtm": rg.iron, "gtm_low": rg.iron_low, "gtm_high": rg.iron_high, "gtm_ld": rg.detection_limit,
                     "sum": rp.iron, "sum_low": rp.iron_low, "sum_high": rp.iron_high,
                     "rows": reco.info["rows"], "sweeps": reco.info["sweeps"], "t_reco": t_reco, "t_quant": t_quant})
    return rows


def table(rows, out=None):
    def line(*a):
        print(*a, file=out or sys.stdout)

    cases = len({r["case"] for r in rows})
    line(f"{cases} cases, {len(rows)} (object, state) amounts; scanners: "
         + ", ".join(f"{n} {len({r['case'] for r in rows if r['scanner'] == n})}" for n in SCANNERS))
    strong = {(r["case"], r["object"]): r["gtm_ld"] for r in rows}
    for est, label in (("gtm", "gtm (default)"), ("sum", "roi-sum (image sum)")):
        line(f"\nestimator {label}")
        line(f"{'iron present in the state':44} {'n':>4} {'median':>7} {'p5':>7} {'p95':>7} {'|err|≤15%':>9} {'coverage':>9}")
        for cut, what in ((10, "≥ 10 L_D"), (0, "all")):
            for scanner in [None, *SCANNERS]:
                for state in ("immobilised", "mobile"):
                    sub = [r for r in rows if r["truth"] > 0.05 * r["object_truth"] and r["state"] == state
                           and scanner in (None, r["scanner"]) and r["truth"] >= cut * r["gtm_ld"]]
                    if not sub:
                        continue
                    q = np.array([r[est] / r["truth"] for r in sub])
                    cov = np.mean([r[f"{est}_low"] <= r["truth"] <= r[f"{est}_high"] for r in sub])
                    line(f"{(scanner or 'all') + ', ' + state + ', ' + what:44} {len(q):4d} {np.median(q):7.3f} "
                         f"{np.percentile(q, 5):7.3f} {np.percentile(q, 95):7.3f} {np.mean(np.abs(q - 1) <= 0.15):9.1%} "
                         f"{cov:9.1%}")
        for cut, what in ((10, "objects ≥ 10 L_D"), (0, "all objects")):
            for scanner in [None, *SCANNERS]:
                sub = [r for r in rows if r["truth"] == 0 and scanner in (None, r["scanner"])
                       and r["object_truth"] >= cut * strong[(r["case"], r["object"])]]
                if sub:
                    x = np.array([abs(r[est]) / r["object_truth"] for r in sub])
                    cov = np.mean([r[f"{est}_low"] <= 0 <= r[f"{est}_high"] for r in sub])
                    line(f"cross-talk, {scanner or 'all'}, {what} (n {len(x)}): iron reported in the state an object "
                         f"does not hold, over its iron: median {np.median(x):.1%}, 95th percentile "
                         f"{np.percentile(x, 95):.1%}, share ≤ 10 % {np.mean(x <= 0.10):.1%}; intervals holding 0: {cov:.1%}")
    for scanner in SCANNERS:
        t = [(r["t_reco"], r["t_quant"]) for r in rows if r["scanner"] == scanner]
        if t:
            t = np.array(t)
            line(f"time {scanner}: joint reco median {np.median(t[:, 0]):.2f} s, quantify {np.median(t[:, 1]):.2f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default="study_multicontrast.jsonl")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--scanners", default=",".join(SCANNERS))
    a = ap.parse_args(argv)
    if a.table:
        import gzip

        with (gzip.open(a.out, "rt") if a.out.endswith(".gz") else open(a.out)) as fh:
            table([json.loads(x) for x in fh if x.strip()])
        return
    rng = np.random.default_rng(a.seed)
    cases = [draw_case(rng, i) for i in range(a.cases)]
    cases = [c for c in cases if c["scanner"] in a.scanners.split(",")]
    cases.sort(key=lambda c: (c["scanner"], tuple(sorted(c["tracer"].items()))))
    rows, t0 = [], time.time()
    part = a.out + ".part"                                  # the finished file appears only when complete
    with open(part, "w") as fh:
        for n, case in enumerate(cases):
            new = run_case(case)
            for r in new:
                fh.write(json.dumps(r) + "\n")
            fh.flush()
            rows += new
            print(f"[{n + 1}/{len(cases)}] case {case['index']} {case['scanner']}: {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    os.replace(part, a.out)
    table(rows)


if __name__ == "__main__":
    main()
