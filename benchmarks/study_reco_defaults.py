"""Study behind the reconstruction defaults: chamber-by-chamber quantitation on every preset.

For each preset a concentration phantom is simulated with realistic noise and 10 background frames,
a system matrix is built (cached), and the measurement is reconstructed with several settings:

- ``mpireco``: the reference tool's defaults (80 kHz minimum frequency, λ 1e-2, 3 sweeps, positivity)
- ``tuned``:   what the demo used to need (30 kHz, λ 1e-3, 100 sweeps, positivity)
- ``default``: mpisim's defaults (no options)
- ``auto-λ``:  the defaults with ``lam="auto"`` (generalised discrepancy principle)
- ``positive``: the defaults with positivity

Each chamber is quantified with its chamber ROI (:func:`mpisim.quant.chamber_rois`); the table shows
the worst chamber error, the line through the chambers (slope, intercept), the total iron and the
rows' total-iron visibility (:func:`mpisim.reco.assemble.total_iron_visibility`, which switches
positivity on below 1). A second table reads a 1 mm striatal graft (bruker-2d, defaults) in spheres
of growing radius: without positivity a compact source rings, so the ROI must hold the ring.

    python3 benchmarks/study_reco_defaults.py            # bruker-1d, bruker-2d, bruker-3d 19x19x19 (minutes)
    python3 benchmarks/study_reco_defaults.py --quick    # bruker-3d on 11x11x13 up to 400 kHz
"""

import argparse
import time

import numpy as np

import mpisim
from mpisim.phantoms import _cube_phantom, concentration_2d_chambers
from mpisim.quant import quantify
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

SETTINGS = {
    "mpireco": dict(min_freq=80e3, lam=1e-2, iterations=3, enforce_positive=True, band="all"),
    "tuned": dict(min_freq=30e3, lam=1e-3, iterations=100, enforce_positive=True, band="all"),
    "default": {},
    "auto-λ": dict(lam="auto"),
    "positive": dict(enforce_positive=True),
}


def row_phantom(sc):
    """bruker-1d: three 2 mm chambers along x at 100, 29.6 and 5.85 mmol/L (x = −6, 0, +6 mm)."""
    ch = [dict(c) for c in concentration_2d_chambers()][:3]
    for c, x, k in zip(ch, (-6e-3, 0.0, 6e-3), (0, 3, 7)):
        c["center"] = [x, 0.0, 0.0]
        c["concentration"] = mpisim.phantoms.CONCENTRATION_PHANTOM_MMOL[k] * 1e-3
    return _cube_phantom(sc, ch, "row-1d", 0.25e-3, "mpisim 1D chamber row")


CASES = {
    "bruker-1d": (lambda sc: row_phantom(sc), (41, 1, 1), None),
    "bruker-2d": (lambda sc: mpisim.get_phantom("concentration-2d", sc), (25, 25, 1), None),
    "bruker-3d": (lambda sc: mpisim.get_phantom("concentration", sc), (19, 19, 19), (0.038, 0.038, 0.019)),
}


def run_case(name, quick=False):
    make, shape, fov = CASES[name]
    sc = mpisim.get_scanner(name)
    tr = mpisim.Tracer()
    ph = make(sc)
    cal = CalibrationSettings(background_frames=10)
    if quick and name == "bruker-3d":
        shape, fov, cal = (11, 11, 13), (0.033, 0.033, 0.0195), CalibrationSettings(background_frames=10,
                                                                                   max_freq=400e3)
    if name == "bruker-1d":
        fov = (sc.drive_fov[0] * 1.1, 1e-3, 1e-3)
    S = build_system_matrix(sc, tr, default_grid(sc, shape, fov), cal)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=1))
    rows = []
    for label, kw in SETTINGS.items():
        t = time.perf_counter()
        r = reconstruct(meas, S, uncertainty_samples=0, **kw)
        dt = time.perf_counter() - t
        res = quantify(r, [mpisim.Chambers()], 10e-15)
        est = np.array([x.concentration for x in res])
        true = np.array([c["concentration"] for c in ph.meta["chambers"]])
        slope, icpt = np.polyfit(true, est, 1)
        err = (est / true - 1) * 100
        rows.append((name, label, r.info["rows"], f"{r.info['lambda']:g}", r.info["sweeps"],
                     f"{np.abs(err).max():.1f}", f"{slope:.3f}", f"{icpt * 1e3:+.2f}",
                     f"{r.iron_mass[0] / ph.iron_mass:.3f}", f"{r.info['total_iron_visibility']:.2f}", f"{dt:.1f}"))
        print(" | ".join(str(x) for x in rows[-1]), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="bruker-3d on a small matrix")
    ap.add_argument("--presets", default=",".join(CASES), help="comma-separated presets")
    args = ap.parse_args()
    head = ("preset", "settings", "rows", "λ", "sweeps", "worst chamber %", "slope", "intercept mmol/L",
            "total iron / true", "visibility", "seconds")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for name in args.presets.split(","):
        run_case(name.strip(), args.quick)
    graft_roi_radius()


def graft_roi_radius(radii=(2e-3, 3.2e-3, 5e-3, 8e-3)):
    """ROI iron / true iron for a 3e5-cell graft (bruker-2d, noise-free, defaults) against the ROI radius."""
    from mpisim.phantoms import graft
    from mpisim.quant import roi_total, sphere_mask

    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    S = build_system_matrix(sc, tr, default_grid(sc, (25, 25, 1)), CalibrationSettings(background_frames=10))
    ph = graft(sc, cells=3e5, iron_per_cell=10e-15)
    x, y, _ = ph.meta["labelled_center"]
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings(background_frames=10, seed=1))
    r = reconstruct(meas, S, uncertainty_samples=0)
    print("\nROI radius / mm | graft ROI iron / true (bruker-2d, 1 mm graft, defaults)\n--- | ---")
    for rad in radii:
        iron = roi_total(r.image[0], S.grid, sphere_mask(S.grid, (x, y, 0.0), rad), 10e-15).iron
        print(f"{rad * 1e3:g} | {iron / ph.iron_mass:.3f}")


if __name__ == "__main__":
    main()
