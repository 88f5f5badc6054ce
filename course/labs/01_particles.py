# %% [markdown]
# # Lab 1 — Particles: the Langevin curve and the resolution it allows
#
# **Time:** about 30 minutes. **You will:** plot the magnetisation curve of superparamagnetic iron-oxide
# cores, see why its steepness sets MPI's resolution, and compute the resolution of a tracer and scanner.
#
# A core of diameter $d$ carries the moment $m = M_s \pi d^3/6$. In a field $H$ its mean moment along the field
# follows the Langevin function
#
# $$\bar m = m\,L(\xi),\qquad L(\xi) = \coth\xi - \frac{1}{\xi},\qquad \xi = \frac{\mu_0 m H}{k_B T}.$$
#
# In a selection field $H = G x$ the particles at a distance $x$ from the field-free point respond with
# $L'(\beta G x)$, $\beta = \mu_0 m/(k_B T)$: the **point-spread function** (PSF). Its full width at half
# maximum is $\Delta\xi = 4.161$, so
#
# $$\Delta x = \frac{4.161\,k_B T}{\mu_0 m G}.$$
#
# mpisim gives fields in T/µ0 (a "field of 12 mT" is $\mu_0 H = 12$ mT) and gradients in T/m/µ0;
# `Tracer.beta` is $\beta$ in 1/(T/µ0).

# %%
import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check

tracer = mpisim.Tracer(core_diameter=25e-9, temperature=300.0)
print(f"moment m = {tracer.moment:.3g} A·m², beta = {tracer.beta:.4g} per T/µ0")

# %% [markdown]
# ## The Langevin curve
# The magnetisation saturates within a few mT. The steeper the curve, the narrower the region around the
# field-free point that still responds.

# %%
field = np.linspace(-20e-3, 20e-3, 801)                          # T/µ0
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
for d in (20e-9, 25e-9, 30e-9):
    tr = mpisim.Tracer(core_diameter=d, temperature=300.0)
    ax[0].plot(field * 1e3, mpisim.langevin(tr.beta * field), label=f"{d * 1e9:g} nm")
    ax[1].plot(field * 1e3, mpisim.langevin_derivative(tr.beta * field), label=f"{d * 1e9:g} nm")
ax[0].set(xlabel="µ0H / mT", ylabel="m̄ / m", title="Langevin curve L(βH)")
ax[1].set(xlabel="µ0H / mT", ylabel="L'(βH)", title="its derivative: the PSF in field units")
ax[0].legend()
plt.show()

# %% [markdown]
# ### Exercise 1.1
# Compute the resolution $\Delta x$ (in **m**) of the 25 nm tracer above in a gradient of
# $G = 2$ T/m/µ0. Use `tracer.beta`.

# %% solution
G = 2.0
fwhm = 4.161 / (tracer.beta * G)  # ANSWER (m)

# %%
check("1.1", fwhm, tracer)

# %% [markdown]
# ### Exercise 1.2
# By what factor does $\Delta x$ change when the core diameter **doubles** (same gradient)? Give the
# factor new/old as a number.

# %% solution
factor = 1 / 8  # ANSWER (new / old)

# %%
check("1.2", factor)

# %% [markdown]
# ## Explore: core size and gradient
# Move the sliders (in Jupyter): the PSF in space, $L'(\beta G x)$, narrows with both. Without a browser
# the function runs once with the default values.

# %%
from ipywidgets import FloatSlider

from mpisim.course import explore


def psf(core_nm=25.0, gradient=2.0):
    tr = mpisim.Tracer(core_diameter=core_nm * 1e-9, temperature=300.0)
    x = np.linspace(-10e-3, 10e-3, 801)
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.plot(x * 1e3, mpisim.langevin_derivative(tr.beta * gradient * x) / 3)
    ax.set(xlabel="x / mm", ylabel="PSF (normalised)",
           title=f"{core_nm:g} nm, G = {gradient:g} T/m/µ0: Δx = {4.161 / (tr.beta * gradient) * 1e3:.2f} mm")
    plt.show()


explore(psf, core_nm=FloatSlider(value=25, min=15, max=35, step=1),
        gradient=FloatSlider(value=2, min=0.5, max=6, step=0.5))

# %% [markdown]
# ### Exercise 1.3
# mpisim's design tool measures the FWHM from the simulated particle response instead of the formula.
# Run `mpisim.design.figures_of_merit("bruker-1d", tracer)` and read `["resolution_x"].value` (in m).
# The gradient along x of `bruker-1d` is 1 T/m/µ0. Store it in `measured`.

# %% solution
from mpisim.design import figures_of_merit

measured = figures_of_merit("bruker-1d", tracer)["resolution_x"].value  # ANSWER (m)

# %%
check("1.3", measured, tracer)

# %% [markdown]
# ## Challenge (optional)
# Real tracers have a distribution of core sizes. Compare `mpisim.Tracer(size_sigma=0.2)` with the
# monodisperse tracer: which cores dominate the signal, and why does the FWHM from
# `figures_of_merit` get *smaller*? (Hint: the signal is weighted by iron mass, $\propto d^3$.)
