"""Amounts that hold wherever the ROI is drawn, and a calibration line from fiducials (bruker-2d, 25 x 25 matrix).

Left: one disc of 1 mm radius and 3 µg of iron, realistic noise with 10 background frames, the defaults;
its iron read in balls of 1.2 to 6 times its radius — the image summed over the ROI (``roi-sum``) against
the default estimator (``gtm``: corrected through the reconstruction's own resolution), each with its 95 %
interval. Right: the sample's tracer has a 29 nm core, the system matrix's 25 nm (a model mismatch the
intervals cannot see); three fiducials of known iron make the calibration line that the sample's amount is
put through. The randomized study behind the defaults is ``benchmarks/study_quantitation.py``.
"""

import numpy as np

from _common import plt, save
import mpisim
from mpisim import constants as C
from mpisim.phantoms import Phantom, phantom_grid, supersampled_fill
from mpisim.quant import quantify, quantify_sets


def discs_phantom(sc, discs):
    grid = phantom_grid(sc, resolution=0.25e-3)
    conc = np.zeros(grid.shape)
    for x, y, r, iron in discs:
        f = supersampled_fill(grid, lambda X, Y, Z, x=x, y=y, r=r: (X - x) ** 2 + (Y - y) ** 2 <= r * r, 3)
        conc += f * iron / C.FE_MOLAR_MASS / (f.sum() * grid.voxel_volume / C.LITRE)
    return Phantom(grid, conc, "discs")


sc = mpisim.get_scanner("bruker-2d")
matrix_tracer = mpisim.Tracer(core_diameter=25e-9)
S = mpisim.build_system_matrix(sc, matrix_tracer, mpisim.default_grid(sc, (25, 25, 1)))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")

# --- the ROI-size curve ---------------------------------------------------------------------------------
x0, y0, r0, iron0 = 2e-3, -1.5e-3, 1e-3, 3e-9
meas = mpisim.simulate(sc, matrix_tracer, discs_phantom(sc, [(x0, y0, r0, iron0)]),
                       mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=3))
reco = mpisim.reconstruct(meas, S)
factors = np.array([1.2, 1.5, 2, 2.5, 3, 4, 5, 6])
sets = [[mpisim.Sphere((x0, y0, 0.0), f * r0, "disc")] for f in factors]
print(f"{'ROI radius / disc radius':>24} {'roi-sum / true':>15} {'gtm / true':>11}  {'gtm 95 % interval / true':>25}")
curves = {}
for label, kw in (("image sum (roi-sum)", {"estimator": "roi-sum"}),
                  ("default (gtm)", {"measurement": meas, "system_matrix": S})):
    res = quantify_sets(reco, sets, **kw)
    v = np.array([q[0].iron for q in res]) / iron0
    lo = np.array([q[0].iron_low for q in res]) / iron0
    hi = np.array([q[0].iron_high for q in res]) / iron0
    curves[label] = (v, lo, hi)
    ax1.errorbar(factors, v, [v - lo, hi - v], fmt="o-", capsize=3, label=label)
for f, a, b, lo, hi in zip(factors, curves["image sum (roi-sum)"][0], *curves["default (gtm)"]):
    print(f"{f:24.1f} {a:15.3f} {b:11.3f}  {lo:12.3f} .. {hi:.3f}")
ax1.axhline(1.0, color="k", lw=0.8, ls="--", label="truth")
ax1.set_xlabel("ROI radius / disc radius (disc: 1 mm radius; voxel 1.06 mm)")
ax1.set_ylabel("iron read / true iron")
ax1.set_title("the same disc, ROIs of every size (95 % intervals)", fontsize=9)
ax1.legend(fontsize=8)

# --- fiducials: a calibration line for a sample tracer the matrix does not know ------------------------------
sample = mpisim.Tracer(core_diameter=29e-9)
graft = (2e-3, -2e-3, 1e-3, 3e-9)
refs = [(-7e-3, 7e-3, 1e-3, 8e-9), (7e-3, 7e-3, 1e-3, 2e-9), (-7e-3, -7e-3, 1e-3, 5e-9)]
meas2 = mpisim.simulate(sc, sample, discs_phantom(sc, [graft] + refs),
                        mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=2))
reco2 = mpisim.reconstruct(meas2, S)
roi = mpisim.Sphere(graft[:2] + (0.0,), 2.5e-3, "graft")
# an ROI of 2.5 mm around each reference disc, and the disc itself (1 mm): the tracer correction's known content
fid = [mpisim.Fiducial(mpisim.Sphere((x, y, 0.0), 2.5e-3, f"ref {i + 1}"), m, mpisim.Sphere((x, y, 0.0), r, f"disc {i + 1}"))
       for i, (x, y, r, m) in enumerate(refs)]
raw = quantify(reco2, [roi], measurement=meas2, system_matrix=S)
cal = quantify(reco2, [roi], measurement=meas2, system_matrix=S, fiducials=fid)
c = cal.info["calibration"]
known = np.array([p["known_ng"] for p in c["points"]])
measured = np.array([p["measured_ng"] for p in c["points"]])
bars = np.array([[p["measured_ng"] - p["measured_95_ng"][0], p["measured_95_ng"][1] - p["measured_ng"]]
                 for p in c["points"]]).T
ax2.errorbar(known, measured, bars, fmt="s", capsize=3, label="fiducials (95 %)")
k = np.linspace(0, known.max() * 1.1, 10)
ax2.plot(k, c["slope"] * k, "C0-", lw=1, label=f"line: measured = {c['slope']:.3f} × known")
ax2.errorbar([graft[3] * 1e12], [raw[0].iron * 1e12], fmt="o", color="C3", label="graft, as read")
ax2.errorbar([graft[3] * 1e12], [cal[0].iron * 1e12], [[(cal[0].iron - cal[0].iron_low) * 1e12],
             [(cal[0].iron_high - cal[0].iron) * 1e12]], fmt="D", color="C2", capsize=3,
             label="graft, calibrated (95 %)")
ax2.plot(k, k, "k--", lw=0.8, label="measured = known")
ax2.set_xlabel("known iron / ng")
ax2.set_ylabel("iron read / ng")
ax2.set_title("sample tracer 29 nm, system matrix 25 nm: three fiducials", fontsize=9)
ax2.legend(fontsize=8)
print(f"graft: true {graft[3] * 1e12:.0f} ng, read {raw[0].iron * 1e12:.0f} ng without fiducials, "
      f"{cal[0].iron * 1e12:.0f} ng [{cal[0].iron_low * 1e12:.0f} .. {cal[0].iron_high * 1e12:.0f}] calibrated "
      f"(slope {c['slope']:.3f} ± {c['slope_sigma']:.3f}, scatter {c['scatter']:.3f}); "
      f"{cal.info.get('tracer_correction_summary', 'no tracer correction')}")
save(fig, "quantitation_rois.png")
