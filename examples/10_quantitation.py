"""Chamber-by-chamber quantitation with the defaults against the reference tool's defaults.

bruker-2d with the 2D chamber raster and bruker-3d with the OpenMPIData concentration phantom as built
(11 x 11 x 13 matrix up to 400 kHz, so that the docs build stays quick; the 19 x 19 x 19 full-band case is
the slow study `tests/test_slow_studies.py::test_3d_concentration_defaults_full_size`). Realistic noise,
10 background frames. Each chamber is read with its chamber ROI; error bars are the 95 % intervals (for the
defaults: noise and the bias-correction's shape error; for the reference settings: noise only).
"""

import numpy as np

from _common import plt, save
import mpisim
from mpisim.quant import quantify
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

MPIRECO = dict(min_freq=80e3, lam=1e-2, iterations=3, enforce_positive=True, band="all")
cases = [("bruker-2d", "concentration-2d", (25, 25, 1), None, CalibrationSettings(background_frames=10)),
         ("bruker-3d", "concentration", (11, 11, 13), (0.033, 0.033, 0.0195),
          CalibrationSettings(background_frames=10, max_freq=400e3))]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
print(f"{'scanner':10} {'settings':28} {'worst chamber':>14} {'intercept mmol/L':>17} {'total iron':>11}")
for ax, (name, phantom, shape, fov, cal) in zip(axes, cases):
    sc = mpisim.get_scanner(name)
    tr = mpisim.Tracer()
    ph = mpisim.get_phantom(phantom, sc, resolution=0.5e-3) if name == "bruker-3d" else mpisim.get_phantom(phantom, sc)
    S = build_system_matrix(sc, tr, default_grid(sc, shape, fov), cal)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=3))
    true = np.array([c["concentration"] for c in ph.meta["chambers"]]) * 1e3
    for label, kw, style in (("mpisim defaults", {}, "o"), ("80 kHz, 3 sweeps, positivity", MPIRECO, "x")):
        r = reconstruct(meas, S, **kw)
        # the chambers of the simulated phantom; with the measurement and the matrix, the default estimator
        # (gtm) where the reconstruction is linear, the image sum for the positivity-constrained one
        res = quantify(r, [mpisim.Chambers()], 10e-15, measurement=meas, system_matrix=S)
        est = np.array([x.concentration for x in res]) * 1e3
        lo = np.array([x.iron_low / x.iron * x.concentration if x.iron_sigma == x.iron_sigma else np.nan
                       for x in res]) * 1e3
        err = np.where(np.isfinite(lo), est - lo, 0)
        ax.errorbar(true, est, err, fmt=style, label=label, capsize=2)
        icpt = np.polyfit(true, est, 1)[1]
        print(f"{name:10} {label:28} {np.abs(est / true - 1).max() * 100:13.1f}% {icpt:17.2f} "
              f"{r.iron_mass[0] / ph.iron_mass:11.3f}")
    ax.plot([0, 110], [0, 110], "k--", lw=0.8, label="recovered = true")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("true chamber concentration / mmol/L")
    ax.set_ylabel("recovered / mmol/L (chamber ROI)")
    ax.set_title(f"{name}, {phantom} phantom, matrix {'x'.join(map(str, shape))}", fontsize=9)
    ax.legend(fontsize=8)
save(fig, "quantitation_chambers.png")
