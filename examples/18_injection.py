"""A guided injection simulated frame by frame (docs/howto-cells.md, "Simulate a guided injection"): the preset
(1 µL of labelled cells at 2 µL/min into the left striatum, reflux up the needle from 12 s, a leak into the
ventricle from 20 s) on bruker-2d, frames of 100 averaged cycles (65 ms) with realistic noise, reconstructed
offline with mpisim's defaults; the iron in the target, on the track and in the ventricle against time: the truth
of every frame beside the image summed over three ROIs and, every 20th frame, quantify's bias-corrected amounts."""

import numpy as np

from _common import plt, save
import mpisim
from mpisim.forward import simulate_series
from mpisim.injection import injection_preset, region_grid

sc = mpisim.get_scanner("bruker-2d")
inj = injection_preset(sc)
frames = 460                                        # 30 s at 65 ms a frame
st = mpisim.SimulationSettings.realistic(sc, frames=frames, background_frames=10, averages=100, seed=1)
meas = simulate_series(sc, mpisim.Tracer(), inj, region_grid(sc, inj), st)
S = mpisim.build_system_matrix(sc, mpisim.Tracer(), mpisim.default_grid(sc, (25, 25, 1)))
reco = mpisim.reconstruct(meas, S)
t = np.arange(frames) * sc.drive_field.cycle * 100
truth = {k: np.array([inj.amounts(x)[k] for x in t]) for k in ("target", "track", "ventricle")}
rois = {"target": mpisim.Sphere(inj.target, 1.2e-3, "target"),           # disjoint, as the gtm needs
        "track": mpisim.Box((inj.target[0] - 0.7e-3, inj.target[1] + 1.5e-3, -1e-3),
                            (inj.target[0] + 0.7e-3, inj.target[1] + 6.0e-3, 1e-3), "track"),
        "ventricle": mpisim.Sphere(inj.ventricle[:3], 1.2e-3, "ventricle")}
seen = {k: np.array([mpisim.quantify(reco, [r], frame=f, estimator="roi-sum")[0].iron for f in range(frames)])
        for k, r in rois.items()}
every = np.arange(0, frames, 20)                    # the bias-corrected amounts (gtm), every 20th frame
gtm = np.array([[x.iron for x in mpisim.quantify(reco, list(rois.values()), frame=int(f), measurement=meas,
                                                  system_matrix=S)] for f in every])
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
for i, k in enumerate(rois):
    ax.plot(t, truth[k] * 1e9, f"C{i}-", label=f"{k}: truth")
    ax.plot(t, seen[k] * 1e9, f"C{i}.", ms=1.5, alpha=0.3, label=f"{k}: image sum in its ROI")
    ax.plot(t[every], gtm[:, i] * 1e9, f"C{i}o", ms=4, mfc="none", label=f"{k}: quantify (gtm)")
ax.set(xlabel="time since the infusion started / s", ylabel="iron / µg", title="bruker-2d, 65 ms frames",
       ylim=(-0.3, 1.1))                            # the first frames' gtm amounts (nearly no iron) fall outside
ax.legend(fontsize=7)
im = reco.volume(frames - 1)[:, :, 0].T * 1e3
g = reco.grid
ext = [1e3 * (g.center[0] - g.fov[0] / 2), 1e3 * (g.center[0] + g.fov[0] / 2),
       1e3 * (g.center[1] - g.fov[1] / 2), 1e3 * (g.center[1] + g.fov[1] / 2)]
h = bx.imshow(im, origin="lower", extent=ext, cmap="magma")
bx.plot([1e3 * inj.target[0], 1e3 * inj.entry[0]], [1e3 * inj.target[1], 1e3 * inj.entry[1]], "c--", lw=1,
        label="needle")
bx.set(xlabel="x / mm", ylabel="y / mm", title=f"reconstruction at {t[-1]:.1f} s / mmol/L")
bx.legend(fontsize=7)
fig.colorbar(h, ax=bx, shrink=0.8)
save(fig, "injection.png")
last = every[-1]
print(f"at {t[last]:.1f} s: " + ", ".join(f"{k} truth {truth[k][last] * 1e9:.3f} µg, image sum {seen[k][last] * 1e9:.3f} "
                                       f"µg, gtm {gtm[-1, i] * 1e9:.3f} µg" for i, k in enumerate(rois)))
