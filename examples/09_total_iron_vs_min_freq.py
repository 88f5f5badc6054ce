"""Total iron against the lowest frequency used and the sweeps: above the fundamental the system functions
integrate to almost nothing over the FOV, so with positivity (the reference tool's habit) the total iron
rests on the lowest harmonics and on when the sweeps stop. mpisim's defaults (all usable bins, no
positivity, sweeps run to convergence) for comparison."""

from _common import plt, save
import mpisim
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

sc = mpisim.get_scanner("bruker-2d")
tr = mpisim.Tracer()
ph = mpisim.get_phantom("shapes", sc)
meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=1))
S = build_system_matrix(sc, tr, default_grid(sc, (25, 25, 1)), CalibrationSettings(background_frames=10))
sweeps = (3, 10, 30, 100)
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
print(f"{'min freq / kHz':>14} " + " ".join(f"{f'{n} sweeps':>10}" for n in sweeps))
for fmin in (30e3, 55e3, 80e3):
    ratios = [float(reconstruct(meas, S, min_freq=fmin, lam=1e-3, iterations=n, enforce_positive=True, band="all",
                                uncertainty_samples=0).iron_mass[0] / ph.iron_mass) for n in sweeps]
    print(f"{fmin / 1e3:14g} " + " ".join(f"{r:10.3f}" for r in ratios))
    ax.plot(sweeps, ratios, "o-", label=f"positivity, min frequency {fmin / 1e3:g} kHz")
ratios = [float(reconstruct(meas, S, iterations=n, uncertainty_samples=0).iron_mass[0] / ph.iron_mass) for n in sweeps]
auto = reconstruct(meas, S, uncertainty_samples=0)
print(f"{'defaults':>14} " + " ".join(f"{r:10.3f}" for r in ratios) +
      f"   (--iterations auto: {auto.info['sweeps']} sweeps, {auto.iron_mass[0] / ph.iron_mass:.3f})")
ax.plot(sweeps, ratios, "s-", color="k", label="mpisim defaults (band auto, λ 1e-2, no positivity)")
ax.axhline(1, color="k", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("Kaczmarz sweeps")
ax.set_ylabel("reconstructed / true total iron")
ax.set_title("shapes phantom, bruker-2d, realistic noise", fontsize=9)
ax.legend(fontsize=7)
save(fig, "total_iron_vs_min_freq.png")
