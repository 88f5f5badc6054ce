"""Quantitation study: do ROI amounts and their 95 % intervals hold on cases nobody tuned for?

A seeded randomized family of cases, run with the defaults a user gets (``mpisim.simulate`` with the
scanner's realistic noise and 10 background frames as the README's pipeline records them,
``mpisim.reconstruct`` with its defaults, ``mpisim.quantify`` with its default estimator):

- scanners: the presets ``bruker-2d`` and ``bruker-3d`` (19³ matrix over 38 × 38 × 19 mm, as the README)
  and two of a lab's own (``benchmarks/scanners/lab-strong-2d.toml``: 4 T/m, 20 mT;
  ``lab-weak-2d.toml``: 1.5 T/m, 10 mT); the system matrix is made with the sample's tracer (no model error);
- tracers 18–32 nm core (2D: even nm; bruker-3d: 18, 25, 32 nm, one 4.4 GB matrix each);
- 1–4 objects per case — spheres, cylinders (axis z), cubes — 0.5–4 mm across, at random positions
  within ±35 % of the drive FOV, iron log-uniform over three decades from about the data-domain detection
  limit (``mpisim.design.detection_limit``) upwards;
- ROIs: balls around each object of radius 1.2–4 × the object's circumradius (all of a case's ROIs at one
  drawn factor, shrunk where needed to stay disjoint), and each object alone at 1.5 × and 4 ×.
  The truth of an ROI is the objects' iron inside it, from their outlines (:func:`truth_in`).

It prints recovered/true per ROI (median, 5th, 95th percentile), the share within ±10 %, the change of the
amount between ROI radius 1.5 × and 4 ×, and the coverage of the 95 % intervals, for objects at least 10 ×
the image-domain detection limit of their ROI (Currie, L_D = 3.29 σ of the ROI amount's noise) and below,
for the default estimator (gtm) and the image sum (roi-sum); also by the ROI's surroundings (the only object of its
case; other objects, none brighter within two voxels of the ROI's edge; a brighter one that close:
:func:`surroundings`) and by whether ``quantify``'s crowding line names the ROI. ``--out`` streams one JSON line per ROI
(``--resume`` continues an interrupted run); ``--table`` reprints the table from such a file. The runs the docs
show are kept in ``benchmarks/results/`` (``examples/13_quantitation_study.py`` draws their figure).

    python benchmarks/study_quantitation.py --cases 300 --out study.jsonl      # about 31 min on 2 cores (2026-12-07)

``--mismatch`` runs the model-mismatch family (the sample's tracer differs from the matrix's; three fiducials in
every case); ``--mismatch --same-tracer`` the same cases with the sample's tracer the matrix's: what the family
allows without a mismatch, and how often the core fit moves a core that was right.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import mpisim
from mpisim import constants as C
from mpisim.design import detection_limit
from mpisim.phantoms import Phantom, phantom_grid, supersampled_fill

HERE = Path(__file__).resolve().parent
SCANNERS = {"bruker-2d": 0.30, "lab-strong-2d": 0.25, "lab-weak-2d": 0.30, "bruker-3d": 0.15}
CORES_3D = (18e-9, 25e-9, 32e-9)
CORES_2D = tuple(d * 1e-9 for d in range(18, 33, 2))
KINDS = ("sphere", "cylinder", "cube")
TRACER_CORRECTION = os.environ.get("MPISIM_STUDY_TRACER_CORRECTION", "auto")
"""The mismatch study's fiducial path: quantify's tracer correction (auto) or without it (off)."""


def scanner_of(name):
    return mpisim.get_scanner(str(HERE / "scanners" / f"{name}.toml") if name.startswith("lab-") else name)


def grid_of(name, sc):
    if name == "bruker-3d":
        return mpisim.Grid((19, 19, 19), (0.038, 0.038, 0.019))
    return mpisim.default_grid(sc, (25, 25, 1))


def circumradius(kind, size, dims):
    """Radius (m) of the smallest ball (over the driven axes) around an object of ``size`` across."""
    if kind == "cube":
        return size / 2 * np.sqrt(len(dims))
    if kind == "cylinder" and len(dims) == 3:
        return size / 2 * np.sqrt(2)                   # height = diameter
    return size / 2


def draw_case(rng, index, mismatch=False):
    """One case of the family: scanner, tracer, objects (kind, size m, centre m, iron kg), ROI factor. With
    ``mismatch``: the sample's tracer differs from the matrix's (core ± 3–5 nm; every other case also Debye
    relaxation of 1–3 µs) and three fiducials (2 mm spheres of known iron) are placed first."""
    names = list(SCANNERS)
    name = names[rng.choice(len(names), p=np.array(list(SCANNERS.values())) / sum(SCANNERS.values()))]
    sc = scanner_of(name)
    dims = [i for i in range(3) if sc.drive_fov[i] > 0]
    core = float(rng.choice(CORES_3D if name == "bruker-3d" else CORES_2D))
    ld = detection_limit(sc, mpisim.Tracer(core_diameter=core))
    objects = []
    sample = {}
    if mismatch:
        sample = {"core": core + float(rng.choice([-1, 1]) * rng.uniform(3e-9, 5e-9)),
                  "relaxation": float(rng.uniform(1e-6, 3e-6)) if index % 2 else None}
        for level in (2.5, 2.75, 3.0):
            for _try in range(200):
                centre = np.zeros(3)
                for i in dims:
                    centre[i] = rng.uniform(-0.35, 0.35) * sc.drive_fov[i]
                r = circumradius("sphere", 2e-3, dims)
                if all(np.linalg.norm(centre - o["centre"]) > 1.2 * (r + o["radius"]) + 0.5e-3 for o in objects):
                    objects.append({"kind": "sphere", "size": 2e-3, "centre": centre, "radius": r,
                                    "iron": ld * 10 ** level, "fiducial": True})
                    break
    for _ in range(int(rng.integers(1, 5))):
        for _try in range(100):
            kind = str(rng.choice(KINDS))
            size = float(np.exp(rng.uniform(np.log(0.5e-3), np.log(4e-3))))
            centre = np.zeros(3)
            for i in dims:
                centre[i] = rng.uniform(-0.35, 0.35) * sc.drive_fov[i]
            r = circumradius(kind, size, dims)
            if all(np.linalg.norm(centre - o["centre"]) > 1.2 * (r + o["radius"]) + 0.5e-3 for o in objects):
                iron = ld * 10 ** rng.uniform(0.5, 3.5)
                objects.append({"kind": kind, "size": size, "centre": centre, "radius": r, "iron": iron})
                break
    return {"index": index, "scanner": name, "core": core, "ld_data": ld, "objects": objects,
            "factor": float(rng.uniform(1.2, 4.0)), "seed": int(rng.integers(2 ** 31)), "sample": sample}


def inside_of(o, dims):
    """f(x, y, z) → bool (m): inside object ``o`` (a dict of :func:`draw_case`) on the driven axes ``dims``."""
    c, s, kind = o["centre"], o["size"], o["kind"]

    def inside(x, y, z):
        p = (x, y, z)
        if kind == "cube":
            out = True
            for i in dims:
                out = out & (np.abs(p[i] - c[i]) <= s / 2)
            return out
        if kind == "cylinder":
            r2 = sum((p[i] - c[i]) ** 2 for i in dims if i < 2)
            return (r2 <= s * s / 4) & ((np.abs(p[2] - c[2]) <= s / 2) if 2 in dims else True)
        return sum((p[i] - c[i]) ** 2 for i in dims) <= s * s / 4

    return inside


def phantom_of(case, sc):
    """The case's phantom on a fine grid (0.25 mm in 2D, 0.5 mm in 3D) and per-object fill fractions."""
    dims = [i for i in range(3) if sc.drive_fov[i] > 0]
    grid = phantom_grid(sc, resolution=0.5e-3 if len(dims) == 3 else 0.25e-3)
    conc = np.zeros(grid.shape)
    for o in case["objects"]:
        c = o["centre"]
        half = o["radius"] + grid.spacing.max()
        frac = supersampled_fill(grid, inside_of(o, dims), 3, (c - half, c + half))
        volume = frac.sum() * grid.voxel_volume
        if volume <= 0:
            raise RuntimeError(f"object {o} covers no voxel of the phantom grid")
        conc += frac * o["iron"] / C.FE_MOLAR_MASS / (volume / C.LITRE)
    return Phantom(grid, conc, f"study-{case['index']}")


TRUTH_POINTS = 48
"""Points per driven axis over each object's bounding box on which its share inside an ROI is integrated."""


def truth_in(case, sc, roi):
    """Iron (kg) inside an ROI ball: each object's iron × the share of its volume inside the ball, from the
    objects' own outlines (:data:`TRUTH_POINTS` per axis). The phantom's fine grid is not used: its partial
    voxels put iron up to half a voxel beyond an object's surface, and weighting them by the ROI's partial
    voxels loses up to 70 % of a 0.5 mm object's iron in an ROI 1.2 × its radius (the runs before this
    definition did so; ``--retruth`` recomputes a results file's truths)."""
    dims = [i for i in range(3) if sc.drive_fov[i] > 0]
    c, r = np.asarray(roi.center, float), float(roi.radius)
    total = 0.0
    for o in case["objects"]:
        h = o["radius"]
        axes = [o["centre"][i] + (np.arange(TRUTH_POINTS) + 0.5) / TRUTH_POINTS * 2 * h - h if i in dims
                else np.array([o["centre"][i]]) for i in range(3)]
        X, Y, Z = np.meshgrid(*axes, indexing="ij")
        obj = inside_of(o, dims)(X, Y, Z)
        ball = sum(((X, Y, Z)[i] - c[i]) ** 2 for i in dims) <= r * r
        total += o["iron"] * float(np.count_nonzero(obj & ball)) / max(int(np.count_nonzero(obj)), 1)
    return total


NEAR_VOXELS = 2.0
"""An ROI is crowded when an object with more iron than the ROI's truth has its surface within this many voxels of
the matrix grid (the largest driven spacing) of the ROI's edge."""


def surroundings(case, j, roi_radius, voxel):
    """Where object ``j``'s ROI (a ball of ``roi_radius`` m around it) lies: "alone" (the only object of the case),
    "crowded" (:data:`NEAR_VOXELS`; ``voxel`` m) or "others" (other objects, none brighter that close)."""
    objs = case["objects"]
    o = objs[j]
    if len(objs) == 1:
        return "alone"
    inside = sum(p["iron"] for p in objs if np.linalg.norm(p["centre"] - o["centre"]) <= roi_radius)
    near = [p for p in objs if p is not o and p["iron"] > inside and
            np.linalg.norm(p["centre"] - o["centre"]) - roi_radius - p["radius"] < NEAR_VOXELS * voxel]
    return "crowded" if near else "others"


def voxel_of(sc, name):
    """The largest spacing (m) of the study's matrix grid over the scanner's driven axes."""
    g = grid_of(name, sc)
    return float(max(g.spacing[i] for i in range(3) if g.shape[i] > 1))


def disjoint_factor(objects, factor):
    """The largest factor ≤ ``factor`` whose balls (factor × circumradius) do not overlap."""
    f = factor
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            d = np.linalg.norm(a["centre"] - b["centre"])
            f = min(f, 0.999 * d / (a["radius"] + b["radius"]))
    return f


_MATRICES = {}


def system_matrix(name, sc, core):
    key = (name, core)
    if key not in _MATRICES:
        _MATRICES.clear()                     # one open matrix at a time
        _MATRICES[key] = mpisim.build_system_matrix(sc, mpisim.Tracer(core_diameter=core), grid_of(name, sc))
    return _MATRICES[key]


def run_case(case):
    """Simulate, reconstruct and quantify one case with the defaults → one dict per ROI. A mismatch case
    (``case["sample"]``) simulates the sample with its own tracer and quantifies its objects' ROIs without
    and with the two fiducials (``cal``)."""
    sc = scanner_of(case["scanner"])
    S = system_matrix(case["scanner"], sc, case["core"])
    smp = case.get("sample") or {}
    sample = mpisim.Tracer(core_diameter=smp.get("core", case["core"]), relaxation_time=smp.get("relaxation"))
    ph = phantom_of(case, sc)
    settings = mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=case["seed"])
    meas = mpisim.simulate(sc, sample, ph, settings)
    t0 = time.perf_counter()
    reco = mpisim.reconstruct(meas, S)
    t_reco = time.perf_counter() - t0
    objs = case["objects"]
    f = disjoint_factor(objs, case["factor"])
    balls = lambda fac, sel: [mpisim.Sphere(tuple(o["centre"]), fac * o["radius"], f"o{j}") for j, o in sel]
    mine = [(j, o) for j, o in enumerate(objs) if not o.get("fiducial")]
    sets, roles = [balls(f, mine)], ["all"]
    if not smp:
        for j, o in mine:
            sets += [balls(1.5, [(j, o)]), balls(4.0, [(j, o)])]
            roles += ["r1.5", "r4"]
    t0 = time.perf_counter()
    gtm = mpisim.quant.quantify_sets(reco, sets, measurement=meas, system_matrix=S)
    t_quant = time.perf_counter() - t0
    plain = mpisim.quant.quantify_sets(reco, sets, estimator="roi-sum")
    cal = [None] * len(sets)
    if smp:
        fid = [mpisim.Fiducial(mpisim.Sphere(tuple(o["centre"]), f * o["radius"], f"fiducial{j}"), o["iron"],
                               mpisim.Sphere(tuple(o["centre"]), o["radius"], f"sample{j}"))
               for j, o in enumerate(objs) if o.get("fiducial")]
        t0 = time.perf_counter()
        try:
            cal = mpisim.quant.quantify_sets(reco, sets[:1], measurement=meas, system_matrix=S, fiducials=fid,
                                             tracer_correction=TRACER_CORRECTION)
        except mpisim.MPISimError as e:          # e.g. fiducials that read no iron: counted as failures
            cal = [str(e)]
        t_cal = time.perf_counter() - t0
    rows = []
    voxel = voxel_of(sc, case["scanner"])
    for rois, role, g, p, c in zip(sets, roles, gtm, plain, cal):
        for k, (roi, rg, rp) in enumerate(zip(rois, g.rois, p.rois)):
            j = int(roi.name[1:])
            row = {"case": case["index"], "scanner": case["scanner"], "core_nm": round(case["core"] * 1e9, 1),
                   "sample_core_nm": round(smp.get("core", case["core"]) * 1e9, 1),
                   "sample_relaxation_us": (smp.get("relaxation") or 0.0) * 1e6,
                   "objects": len(mine), "object": j, "kind": objs[j]["kind"],
                   "size_mm": objs[j]["size"] * 1e3, "role": role, "factor": roi.radius / objs[j]["radius"],
                   "roi_radius_voxels": roi.radius / float(np.max([S.grid.spacing[i] for i in range(3)
                                                                    if S.grid.shape[i] > 1])),
                   "truth": truth_in(case, sc, roi), "surroundings": surroundings(case, j, roi.radius, voxel),
                   "gtm": rg.iron, "gtm_noise": rg.iron_sigma,
                   "gtm_bias": rg.bias_sigma, "gtm_low": rg.iron_low, "gtm_high": rg.iron_high,
                   "sum": rp.iron, "sum_low": rp.iron_low, "sum_high": rp.iron_high,
                   "ld_data": case["ld_data"], "sweeps": reco.info["sweeps"],
                   "stopped": reco.info["stopped_because"], "rows": reco.info["rows"],
                   "warnings": len(g.warnings), "crowded_warned": roi.name in g.info.get("crowded", ()),
                   "t_reco": t_reco, "t_quant": t_quant}
            if isinstance(c, str):
                row.update({"cal": float("nan"), "cal_low": float("nan"), "cal_high": float("nan"),
                            "cal_slope": float("nan"), "cal_error": c})
            elif c is not None:
                rc = c.rois[k]
                row.update({"cal": rc.iron, "cal_low": rc.iron_low, "cal_high": rc.iron_high,
                            "cal_slope": c.info["calibration"]["slope"], "t_cal": t_cal,
                            "tracer_correction": c.info.get("tracer_correction"),
                            "tracer_correction_skipped": c.info.get("tracer_correction_skipped")})
            rows.append(row)
    return rows


def load(path):
    """The rows of a study's JSON-lines output (``.jsonl`` or ``.jsonl.gz``)."""
    import gzip

    with (gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)) as fh:
        return [json.loads(x) for x in fh if x.strip()]


def retruth(rows, seed, mismatch=False):
    """The rows with their truths (:func:`truth_in`) and surroundings (:func:`surroundings`) recomputed from the
    seeded cases (the same draw)."""
    rng = np.random.default_rng(seed)
    cases = [draw_case(rng, i, mismatch) for i in range(max(r["case"] for r in rows) + 1)]
    scanners = {n: scanner_of(n) for n in {r["scanner"] for r in rows}}
    out = []
    for r in rows:
        case = cases[r["case"]]
        o = case["objects"][r["object"]]
        if abs(o["size"] * 1e3 - r["size_mm"]) > 1e-9:
            raise SystemExit(f"case {r['case']} does not match the seed {seed}: wrong --seed or --mismatch")
        roi = mpisim.Sphere(tuple(o["centre"]), r["factor"] * o["radius"])
        sc = scanners[r["scanner"]]
        out.append({**r, "truth": truth_in(case, sc, roi),
                    "surroundings": surroundings(case, r["object"], roi.radius, voxel_of(sc, r["scanner"]))})
    return out


def _rewrite(path, rows):
    """Write the rows to ``path`` (gzip for .gz) through a temporary name."""
    import gzip

    tmp = f"{path}.tmp"
    with (gzip.open(tmp, "wt") if str(path).endswith(".gz") else open(tmp, "w")) as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def _pct(x, q):
    return float(np.percentile(x, q)) if len(x) else float("nan")


def table(rows, out=None):
    """The study's table from its rows (what the docs show)."""
    def line(*a):
        print(*a, file=out or sys.stdout)

    if not rows:
        line("no rows")
        return
    cases = len({r["case"] for r in rows})
    line(f"{cases} cases, {len(rows)} ROI amounts; scanners: "
         + ", ".join(f"{n} {len({r['case'] for r in rows if r['scanner'] == n})}" for n in SCANNERS))
    names = {"gtm": "gtm (default)", "sum": "roi-sum (image sum)", "cal": "gtm calibrated by three fiducials"}
    for est in [e for e in ("gtm", "cal", "sum") if e in rows[0]]:
        line(f"\nestimator {names[est]}")
        line(f"{'ROIs':44} {'n':>5} {'median':>7} {'p5':>7} {'p95':>7} {'|err|≤10%':>9} {'coverage':>9}")
        for label, sel in _groups(rows):
            sub = [r for r in sel if r["truth"] > 0 and est in r]
            ratio = np.array([r[est] / r["truth"] for r in sub])      # NaN (a failed calibration) counts as a miss
            cover = np.array([r[f"{est}_low"] <= r["truth"] <= r[f"{est}_high"] for r in sub])
            if not len(ratio):
                continue
            fin = ratio[np.isfinite(ratio)]
            if not len(fin):
                continue
            line(f"{label:44} {len(ratio):5d} {np.median(fin):7.3f} {_pct(fin, 5):7.3f} {_pct(fin, 95):7.3f} "
                 f"{np.mean(np.abs(ratio - 1) <= 0.10):9.1%} {np.mean(cover):9.1%}")
        change, resolved = [], []
        for (c, j) in sorted({(r["case"], r["object"]) for r in rows}):
            a = [r for r in rows if r["case"] == c and r["object"] == j and r["role"] in ("r1.5", "r4")]
            if len(a) == 2 and min(x["truth"] for x in a) > 0 and _strong(a[0]) and est in a[0]:
                a.sort(key=lambda r: r["role"])
                if abs(a[1]["truth"] / a[0]["truth"] - 1) > 0.02:
                    continue                    # a neighbour inside the 4× ball: the amount should change
                change.append(abs(a[1][est] / a[0][est] - 1) if a[0][est] else np.nan)
                resolved.append(a[0]["roi_radius_voxels"] >= 1.0)
        change, resolved = np.array(change), np.array(resolved, bool)
        for sel, what in ((np.ones(len(change), bool), "all objects"), (resolved, "1.5× ROI ≥ 1 voxel radius")):
            if sel.any():
                ch = change[sel]
                line(f"amount change, ROI radius 1.5× → 4× (isolated, ≥ 10 L_D; {what}, {len(ch)}): median {np.median(ch):.1%}, "
                     f"95th percentile {_pct(ch, 95):.1%}, share ≤ 5 % {np.mean(ch <= 0.05):.1%}")
    failed = {r["case"] for r in rows if r.get("cal_error")}
    if failed:
        line(f"\ncalibration refused in {len(failed)} case(s) (counted as misses above): "
             f"{next(r['cal_error'] for r in rows if r.get('cal_error'))}")
    fits = {r["case"]: (r["sample_relaxation_us"], r["tracer_correction"]["tau"] * 1e6) for r in rows
            if r.get("tracer_correction")}
    if fits:
        v = np.array(list(fits.values()))
        rel, flat = v[v[:, 0] > 0], v[v[:, 0] == 0]
        if len(rel):
            e = np.abs(rel[:, 1] / rel[:, 0] - 1)
            line(f"tracer correction: Debye τ of the {len(rel)} relaxing samples found within {np.median(e):.1%} "
                 f"(median; 90th percentile {_pct(e, 90):.1%})"
                 + (f"; the {len(flat)} others {_pct(flat[:, 1], 90):.3f} µs or less (90th percentile)" if len(flat) else ""))
    cores = {r["case"]: (r["sample_core_nm"], r["core_nm"], (r["tracer_correction"].get("core") or 0) * 1e9)
             for r in rows if r.get("tracer_correction")}
    if cores:
        v = np.array(list(cores.values()))
        fitted = v[:, 2] > 0
        e = np.abs(v[fitted, 2] - v[fitted, 0])
        line(f"tracer correction: the sample's core fitted in {fitted.sum()} of {len(v)} cases (a mismatch of "
             f"{_pct(np.abs(v[:, 0] - v[:, 1]), 0):.1f}–{_pct(np.abs(v[:, 0] - v[:, 1]), 100):.1f} nm), within "
             f"{np.median(e) if len(e) else float('nan'):.2f} nm (median; 90th percentile {_pct(e, 90):.2f} nm)")
    t = {}
    for r in rows:
        t.setdefault(r["case"], (r["t_reco"], r["t_quant"], r["scanner"], r.get("t_cal")))
    for n in SCANNERS:
        v = [x for x in t.values() if x[2] == n]
        if v:
            cal = [x[3] for x in v if x[3] is not None]
            line(f"time {n}: reco median {np.median([x[0] for x in v]):.2f} s, quantify (all ROI sets of a case) "
                 f"{np.median([x[1] for x in v]):.2f} s" + (f", with fiducials {np.median(cal):.2f} s" if cal else ""))


def plot(rows, path):
    """The study's figure: recovered/true against the ROI's radius in voxels (both estimators), and the
    coverage of the 95 % intervals per ROI-radius bin, for ROIs ≥ 10 L_D and near the limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    strong = [r for r in rows if _strong(r) and r["truth"] > 0]
    for est, label, m in (("sum", "image sum (roi-sum)", "."), ("gtm", "default (gtm)", "o")):
        a1.plot([r["roi_radius_voxels"] for r in strong], [r[est] / r["truth"] for r in strong], m, ms=3,
                alpha=0.5, label=label)
    a1.axhspan(0.9, 1.1, color="0.85", zorder=0, label="±10 %")
    a1.set_xscale("log")
    a1.set_ylim(0, 2)
    a1.set_xlabel("ROI radius / voxel size")
    a1.set_ylabel("recovered / true iron (ROIs ≥ 10 L_D)")
    a1.legend(fontsize=8)
    edges = [0, 1, 2, 4, np.inf]
    x = np.arange(len(edges) - 1)
    for k, (sel, label) in enumerate(((lambda r: _strong(r), "≥ 10 L_D"), (lambda r: not _strong(r), "< 10 L_D"))):
        for e, (est, name) in enumerate((("gtm", "gtm"), ("sum", "roi-sum"))):
            cov = []
            for lo, hi in zip(edges[:-1], edges[1:]):
                sub = [r for r in rows if sel(r) and lo <= r["roi_radius_voxels"] < hi]
                cov.append(np.mean([r[f"{est}_low"] <= r["truth"] <= r[f"{est}_high"] for r in sub]) if sub
                           else np.nan)
            a2.bar(x + 0.2 * (2 * k + e) - 0.3, cov, 0.2, label=f"{name}, {label}")
    a2.axhspan(0.90, 0.99, color="0.85", zorder=0, label="target 90–99 %")
    a2.set_xticks(x, ["< 1", "1–2", "2–4", "≥ 4"])
    a2.set_xlabel("ROI radius / voxel size")
    a2.set_ylabel("coverage of the 95 % intervals")
    a2.set_ylim(0, 1.05)
    a2.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _strong(r):
    return r["truth"] >= 10 * 3.29 * r["gtm_noise"]


def _groups(rows):
    strong = [r for r in rows if _strong(r)]
    weak = [r for r in rows if not _strong(r)]
    yield "all ROIs ≥ 10 L_D", strong
    for role, label in (("all", "  case ROIs (1.2–4×) ≥ 10 L_D"), ("r1.5", "  single ROI 1.5× ≥ 10 L_D"),
                        ("r4", "  single ROI 4× ≥ 10 L_D")):
        yield label, [r for r in strong if r["role"] == role]
    for n in SCANNERS:
        yield f"  {n} ≥ 10 L_D", [r for r in strong if r["scanner"] == n]
    if any(r.get("sample_relaxation_us") for r in rows):           # the mismatch study: by kind of mismatch
        for relax, what in ((False, "core only"), (True, "core + relaxation")):
            for lo, hi in ((0, 2), (2, np.inf)):
                yield (f"  {what}, ROI {'< 2' if lo == 0 else '≥ 2'} voxels ≥ 10 L_D",
                       [r for r in strong if bool(r.get("sample_relaxation_us")) == relax
                        and lo <= r.get("roi_radius_voxels", np.nan) < hi])
    if any("surroundings" in r for r in rows):
        for where, label in (("alone", "the only object"), ("others", "no brighter object ≤ 2 vx"),
                             ("crowded", "a brighter object ≤ 2 vx away")):
            for lo, hi in ((0, 1), (1, np.inf)):
                yield (f"  {label}, ROI {'< 1' if lo == 0 else '≥ 1'} vx",
                       [r for r in strong if r.get("surroundings") == where
                        and lo <= r.get("roi_radius_voxels", np.nan) < hi])
    if any("crowded_warned" in r for r in rows):
        yield "  ROI ≥ 1 vx, no crowding line in the output", [r for r in strong if not r.get("crowded_warned")
                                                            and r.get("roi_radius_voxels", np.nan) >= 1]
        yield "  ROI ≥ 1 vx named by the crowding line", [r for r in strong if r.get("crowded_warned")
                                                         and r.get("roi_radius_voxels", np.nan) >= 1]
    for lo, hi in ((0, 1), (1, 2), (2, 4), (4, np.inf)):
        yield (f"  ROI radius {lo}–{hi:g} voxels ≥ 10 L_D" if np.isfinite(hi) else f"  ROI radius ≥ {lo} voxels ≥ 10 L_D",
               [r for r in strong if lo <= r.get("roi_radius_voxels", np.nan) < hi])
    yield "all ROIs < 10 L_D (near the limit)", weak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default="study_quantitation.jsonl")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--png", default=None, help="also write the study's figure")
    ap.add_argument("--retruth", action="store_true",
                    help="recompute the truths and surroundings of --out (with --seed and --mismatch as it was run) "
                         "and rewrite it")
    ap.add_argument("--scanners", default=",".join(SCANNERS),
                    help="comma-separated subset of the family's scanners to run, or to show with --table "
                         "(default: all)")
    ap.add_argument("--mismatch", action="store_true",
                    help="the model-mismatch study: the sample's tracer differs from the matrix's (core ± 3–5 nm, "
                         "every other case Debye relaxation 1–3 µs), three fiducials of known iron in each case")
    ap.add_argument("--same-tracer", action="store_true",
                    help="with --mismatch: the same cases (fiducials included) with the sample's tracer the matrix's — "
                         "what the family allows without a mismatch, and how often the core fit changes a core that "
                         "was right")
    a = ap.parse_args(argv)
    rows = []
    if (a.resume or a.table or a.retruth) and os.path.exists(a.out):
        rows = load(a.out)
    if a.retruth and not rows:
        raise SystemExit(f"--retruth: no rows in {a.out}")
    if a.retruth:
        rows = retruth(rows, a.seed, a.mismatch)
        _rewrite(a.out, rows)
    keep = a.scanners.split(",")
    if a.table or a.retruth:
        shown = [r for r in rows if r["scanner"] in keep]          # --scanners: the table of those only
        table(shown)
        if a.png:
            plot(shown, a.png)
        return
    done = {r["case"] for r in rows}
    rng = np.random.default_rng(a.seed)
    cases = [draw_case(rng, i, a.mismatch) for i in range(a.cases)]
    if a.same_tracer:
        if not a.mismatch:
            raise SystemExit("--same-tracer goes with --mismatch")
        for c in cases:
            c["sample"] = {"core": c["core"], "relaxation": None}
    cases = [c for c in cases if c["scanner"] in keep]
    cases.sort(key=lambda c: (c["scanner"], c["core"]))      # one matrix open at a time
    t0 = time.time()
    with open(a.out, "a" if a.resume else "w") as fh:
        for n, case in enumerate(cases):
            if case["index"] in done:
                continue
            new = run_case(case)
            for r in new:
                fh.write(json.dumps(r) + "\n")
            fh.flush()
            rows += new
            print(f"[{n + 1}/{len(cases)}] case {case['index']} {case['scanner']} {case['core'] * 1e9:.0f} nm "
                  f"{len(case['objects'])} object(s): {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    table(rows)
    if a.png:
        plot(rows, a.png)


if __name__ == "__main__":
    main()
