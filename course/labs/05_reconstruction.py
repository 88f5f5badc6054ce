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
from mpisim.course import check
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

sc = mpisim.get_scanner("bruker-2d")
tracer = mpisim.Tracer()
phantom = mpisim.get_phantom("shapes", sc)
meas = mpisim.simulate(sc, tracer, phantom,
                       mpisim.SimulationSettings.realistic(sc, background_frames=10, noise_density=2e-8, seed=3))
S = build_system_matrix(sc, tracer, default_grid(sc, (31, 31, 1)),    # lab 4's matrix, from the cache
                        CalibrationSettings(background_frames=10))
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
# ### Exercise 5.1 — what the residual tells
# Read the two lines the default reconstruction printed: why it stopped, and its residual
# $\|S c - u\|^2$ over the noise level (what the residual of the true image would be). What do they
# tell? One letter:
#
# - `"a"`: the residual is well above the noise level: part of the data is signal that the regularised
#   solution does not explain (model error, or detail finer than the grid); sweeping on would start to fit
#   noise rather than that detail;
# - `"b"`: the residual is well below the noise level: the reconstruction has fitted part of the noise (too
#   many sweeps, or too small a λ);
# - `"c"`: the residual is at the noise level (within 10 %): the image explains the data as well as the
#   noise allows, and sweeping on could only fit noise.

# %% solution
answer_51 = "a"  # ANSWER (a letter)

# %%
check("5.1", answer_51, r)
print(f"for the record: the default reconstruction found {r.iron_mass[0] / phantom.iron_mass:.2f}× the true iron")

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
# ### Exercise 5.2 — predict, then move the slider
# **Before you move the λ slider:** what happens to the total iron when λ grows from the default $10^{-2}$
# to 1, and why? One letter:
#
# - `"a"`: it falls: the penalty $\lambda\|c\|^2$ pulls every voxel towards zero, a bias and not only a
#   smoothing;
# - `"b"`: it stays: regularisation only smooths the image, and smoothing keeps the total;
# - `"c"`: it rises: a smoother image has fewer negative voxels cancelling the positive ones.
#
# Then set λ = 1 with the slider (or run `reconstruct(meas, S, lam=1.0, uncertainty_samples=0)`) and read
# the iron in the title. The check reconstructs with λ = 1 itself.

# %% solution
answer_52 = "a"  # ANSWER (a letter)

# %%
check("5.2", answer_52, meas, S, r)

# %% [markdown]
# ### Exercise 5.3 — why no positivity?
# Concentrations cannot be negative, yet the default image has negative voxels around the shapes.
# Yet mpisim's default reconstruction has no positivity constraint. Why? One letter:
#
# - `"a"`: forcing negative voxels to zero keeps the positive noise and drops the negative, so the total
#   iron in a region would be biased upwards;
# - `"b"`: a positivity constraint makes the Kaczmarz method diverge;
# - `"c"`: negative concentrations are physical: they stand for diamagnetic tissue.

# %% solution
answer_53 = "a"  # ANSWER (a letter)

# %%
check("5.3", answer_53)
print(f"for the record: the smallest voxel of the default image is {r.volume().min() * 1e3:.3g} mmol/L")

# %% [markdown]
# ## What the residual tells
# A residual at the noise level is what the true image would leave: the data are explained as well as the
# noise allows. Well above it, what is left is signal the regularised solution does not explain — model
# error, or detail finer than the grid; well below it, the solution has started to fit the noise.

# %% [markdown]
# ## Challenge (optional)
# Reconstruct with `iterations=200, lam=1e-5` and compare the image and the total iron with the
# defaults. Why does mpisim stop by itself instead of running a fixed number of sweeps?
