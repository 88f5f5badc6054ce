# %% [markdown]
# # Lab 7 — Relaxation: particles that lag behind the field
#
# **Time:** about 35 minutes. **You will:** see a particle's magnetisation lag the drive (an open M–H
# loop), find how relaxation weakens the high harmonics, compare one fixed relaxation time (Debye) with the
# Fokker–Planck equation of Brownian rotation, and use the difference between bound and free particles to
# tell cell-held iron from released iron.
#
# A particle's moment turns towards the field in two ways: the whole particle rotates in the liquid
# (**Brown**, $\tau_B = 3\eta V_h / k_BT$) or the moment flips inside the fixed core over an anisotropy
# barrier (**Néel**, $\tau_N = \tau_0\,e^{KV_c/k_BT}$). The faster wins: $1/\tau = 1/\tau_N + 1/\tau_B$.
# The simplest model multiplies the equilibrium (Langevin) spectrum by the **Debye factor**
# $1/(1 + i\omega\tau)$ at every frequency $\omega$. It is exact only for weak fields: a strong field speeds
# Brownian rotation up, which the Fokker–Planck equation for the distribution of orientations captures.

# %%
import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check
from mpisim.mps import mps

tracer = mpisim.Tracer(core_diameter=25e-9, hydrodynamic_diameter=40e-9)   # Brownian: τ_B from its size
print(f"τ_B = {tracer.brown_time * 1e6:.1f} µs")

# %% [markdown]
# ## The lagging loop
# `mpisim.mps` simulates a magnetic particle spectrometer: a homogeneous field $H_0\sin\omega t$, no
# gradient. The slider sets the drive amplitude; compare the equilibrium (Langevin) loop with Brownian
# particles by Fokker–Planck.

# %%
from ipywidgets import FloatSlider

from mpisim.course import explore


def loops(amplitude_mT=20.0):
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    for model in ("langevin", "brown"):
        r = mps(tracer, amplitude_mT * 1e-3, 25e3, model)
        ax.plot(r.field * 1e3, r.moment, label=model)
    ax.set(xlabel="µ0H / mT", ylabel="⟨m⟩ / m_s", title=f"25 kHz, {amplitude_mT:.0f} mT")
    ax.legend()
    plt.show()


explore(loops, amplitude_mT=FloatSlider(value=20, min=2, max=30, step=1))

# %% [markdown]
# ### Exercise 7.1
# At small drive amplitudes the Fokker–Planck Brown response is the Debye one. What is $\omega\tau_B$ of
# this tracer at 25 kHz? (Use `tracer.brown_time`.)

# %% solution
omega_tau = 2 * np.pi * 25e3 * tracer.brown_time  # ANSWER (dimensionless)

# %%
check("7.1", omega_tau, tracer)

# %% [markdown]
# ### Exercise 7.2
# With one relaxation time, the $k$-th harmonic is multiplied by $|1/(1 + ik\omega\tau)|$. By what factor does
# the Debye model weaken the **5th** harmonic of this tracer at 25 kHz?

# %% solution
debye_5 = 1 / abs(1 + 5j * 2 * np.pi * 25e3 * tracer.brown_time)  # ANSWER (ratio)

# %%
check("7.2", debye_5, tracer)

# %% [markdown]
# ## Debye against Fokker–Planck
# The ratio of the 3rd to the 1st harmonic, $A_3/A_1$, is a spectrometer's standard figure. Here it is for
# both models over the drive amplitude.

# %%
amps = np.linspace(4e-3, 28e-3, 7)
ratios = {m: [mps(tracer, a, 25e3, m).ratio(3, 1) for a in amps] for m in ("debye", "brown")}
fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
for m, style in (("debye", "s--"), ("brown", "o-")):
    ax.plot(amps * 1e3, ratios[m], style, label=m)
ax.set(xlabel="drive amplitude / mT", ylabel="A3/A1", title="25 kHz")
ax.legend()
plt.show()

# %% [markdown]
# ### Exercise 7.3
# Which model says a **stronger** drive helps the 3rd harmonic of this tracer more — `debye` or `brown`?
# (Think of Yoshida and Enpuku: a strong field makes the Brownian rotation faster.)

# %% solution
stronger_helps_more = "brown"  # ANSWER (debye or brown)

# %%
check("7.3", stronger_helps_more)

# %% [markdown]
# ## Bound or free: multi-contrast
# Inside a cell a particle cannot rotate: Brown relaxation is **blocked** and only Néel relaxation is left.
# `Tracer.in_state("immobilised")` makes that tracer. The two states' spectra differ, so a reconstruction
# with one system matrix per state tells them apart (`mpisim reco --sm bound.mdf --sm free.mdf`).

# %%
from mpisim.particles import cell_label_tracer

label = cell_label_tracer()
bound = label.in_state("immobilised")
for t in (label, bound):
    print(f"{t.state:12s} τ = {t.effective_relaxation_time * 1e6:5.2f} µs")
f = np.array([25e3 * k for k in (1, 3, 5, 7, 9)])
print("Debye factor |1/(1+iωτ)| at harmonics 1, 3, 5, 7, 9:")
for t in (label, bound):
    print(f"{t.state:12s}", np.round(np.abs(t.debye_factor(f)), 3))

# %% [markdown]
# ### Exercise 7.4
# What is the relaxation time of the **bound** state of `label`, in seconds? (Only Néel relaxation remains:
# $\tau_N = \tau_0 e^{KV_c/k_BT}$; the tracer knows it as `label.neel_time`.)

# %% solution
tau_bound = label.neel_time  # ANSWER (s)

# %%
check("7.4", tau_bound, label)

# %% [markdown]
# ## Challenge (optional)
# Simulate the `viability` phantom on `bruker-2d` with `label` (`mpisim.get_phantom("viability", scanner)`),
# build a system matrix per state, reconstruct with both and quantify three ROIs: how much of the free iron
# shows up in the bound image, and how much in the amounts `quantify` corrects?
