# %% [markdown]
# # Lab 5 — Reconstruction: Kaczmarz, λ and the residual
#
# **Time:** about 40 minutes. **You will:** reconstruct a noisy measurement with the regularised Kaczmarz
# method, see how the regularisation λ and the number of sweeps trade noise against blur, and read what
# the residual tells.
#
# The reconstruction solves $\min_c \|S c - u\|^2 + \lambda \|c\|^2$ by sweeping over the rows $s_k$ of
# the system matrix (Kaczmarz, or ART): for each row,
#
# $$\alpha = \frac{u_k - s_k\cdot c - \sqrt\lambda\, v_k}{\|s_k\|^2 + \lambda},\qquad
#   c \leftarrow c + \alpha\, \overline{s_k},\qquad v_k \leftarrow v_k + \alpha\sqrt\lambda .$$
#
# mpisim's λ is relative to the mean squared row norm. By default it sweeps until the residual
# $\|S c - u\|^2$ reaches the noise level or stops falling, and records why it stopped.

# %%
import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check_choice, check_number
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

sc = mpisim.get_scanner("bruker-2d")
tracer = mpisim.Tracer()
phantom = mpisim.get_phantom("shapes", sc)
meas = mpisim.simulate(sc, tracer, phantom,
                       mpisim.SimulationSettings.realistic(sc, background_frames=10, noise_density=2e-8, seed=3))
S = build_system_matrix(sc, tracer, default_grid(sc, (31, 31, 1)), CalibrationSettings(background_frames=10))
print(f"phantom: {phantom.iron_mass * 1e9:.1f} µg of iron")

# %%
r = reconstruct(meas, S)                               # mpisim's defaults
info = r.info
print(f"λ = {info['lambda']:g}, {info['sweeps']} sweeps, stopped: {info['stopped_because']}")
print(f"residual / noise level: {info['residual_over_noise']:.3g}")
ext = [x * 1e3 for x in (-S.grid.fov[0] / 2, S.grid.fov[0] / 2, -S.grid.fov[1] / 2, S.grid.fov[1] / 2)]
fig, ax = plt.subplots(figsize=(4.5, 4), layout="constrained")
im = ax.imshow(r.volume()[:, :, 0].T * 1e3, origin="lower", cmap="inferno", extent=ext)
fig.colorbar(im, label="c / mmol/L")
ax.set(xlabel="x / mm", ylabel="y / mm", title="default reconstruction")
plt.show()

# %% [markdown]
# ### Exercise 5.1
# How much iron did the default reconstruction find, as a fraction of the phantom's? Use
# `r.iron_mass[0]` (kg, frame 0) and `phantom.iron_mass` (kg).

# %% solution
iron_ratio = r.iron_mass[0] / phantom.iron_mass  # ANSWER

# %%
check_number("exercise 5.1", iron_ratio, r.iron_mass[0] / phantom.iron_mass, rel=0.01,
             hint="reconstructed iron / true iron")

# %% [markdown]
# ## Explore: λ and the number of sweeps
# Small λ and many sweeps: sharp but noisy. Large λ: smooth, and the total iron drops.

# %%
from ipywidgets import FloatLogSlider, IntSlider

from mpisim.course import explore


def show(lam=1e-2, sweeps=10):
    rr = reconstruct(meas, S, lam=lam, iterations=sweeps, uncertainty_samples=0)
    fig, ax = plt.subplots(figsize=(4.5, 4), layout="constrained")
    ax.imshow(rr.volume()[:, :, 0].T * 1e3, origin="lower", cmap="inferno", extent=ext, vmin=0,
              vmax=phantom.concentration.max() * 1.3e3)
    ax.set(xlabel="x / mm", ylabel="y / mm",
           title=f"λ = {lam:.2g}, {sweeps} sweeps: iron {rr.iron_mass[0] / phantom.iron_mass:.2f}× true")
    plt.show()


explore(show, lam=FloatLogSlider(value=1e-2, base=10, min=-4, max=1), sweeps=IntSlider(value=10, min=1, max=60))

# %% [markdown]
# ### Exercise 5.2
# Reconstruct with a strong regularisation, `lam=1.0` (and `uncertainty_samples=0` to save time). What
# fraction of the true iron does it find?

# %% solution
strong = reconstruct(meas, S, lam=1.0, uncertainty_samples=0)
strong_ratio = strong.iron_mass[0] / phantom.iron_mass  # ANSWER

# %%
_ref = reconstruct(meas, S, lam=1.0, uncertainty_samples=0).iron_mass[0] / phantom.iron_mass
check_number("exercise 5.2", strong_ratio, _ref, rel=0.01)

# %% [markdown]
# ### Exercise 5.3
# Compared with the truth, a strongly regularised reconstruction's total iron is `"lower"`, `"higher"`
# or `"the same"`?

# %% solution
answer_53 = "lower"  # ANSWER

# %%
check_choice("exercise 5.3", answer_53, "lower" if _ref < 0.95 else "higher" if _ref > 1.05 else "the same",
             ["lower", "higher", "the same"])

# %% [markdown]
# ## What the residual tells
# The residual of the default reconstruction stays above the noise level (ratio > 1): what is left is
# signal the regularised solution does not explain — model error, or detail finer than the grid.
# Sweeping on would fit noise.

# %% [markdown]
# ## Challenge (optional)
# Reconstruct with `iterations=200, lam=1e-5` and compare the image and the total iron with the
# defaults. Why does mpisim stop by itself instead of running a fixed number of sweeps?
