"""Reconstruction against Kaczmarz sweeps and λ: early stopping and Tikhonov trade noise for blur."""


from _common import plt, save
import mpisim
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

sc = mpisim.get_scanner("bruker-2d")
tr = mpisim.Tracer()
ph = mpisim.get_phantom("shapes", sc)
meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, noise_density=2e-8))
S = build_system_matrix(sc, tr, default_grid(sc, (31, 31, 1)), CalibrationSettings(background_frames=10))
fig, axes = plt.subplots(3, 3, figsize=(10.5, 9.5), layout="constrained")
vmax = ph.concentration.max() * 1e3 * 1.2
for i, lam in enumerate((1e-4, 1e-2, 1.0)):
    for j, it in enumerate((1, 5, 50)):
        r = reconstruct(meas, S, lam=lam, iterations=it, uncertainty_samples=0)
        ax = axes[i, j]
        im = ax.imshow(r.volume()[:, :, 0].T * 1e3, origin="lower", cmap="inferno", vmin=0, vmax=vmax,
                       extent=[-14.3, 14.3, -14.3, 14.3])
        ax.set_title(f"λ = {lam:g}, {it} sweeps, iron {r.iron_mass[0] / ph.iron_mass:.2f}× true", fontsize=9)
        ax.set_xlabel("x / mm")
        ax.set_ylabel("y / mm")
fig.colorbar(im, ax=axes, label="c / mmol/L", shrink=0.6)
save(fig, "reconstruction_lambda_iterations.png")
