"""Resolution (FWHM of the PSF) against core diameter and gradient: Δx = 4.161 k_B T / (µ0 m G)."""

import numpy as np

from _common import plt, save
from mpisim import Tracer
from mpisim.particles import LANGEVIN_DERIVATIVE_FWHM

d = np.linspace(12e-9, 40e-9, 200)
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for G in (1.0, 2.0, 2.5, 5.0):
    fwhm = [LANGEVIN_DERIVATIVE_FWHM / (Tracer(core_diameter=x, temperature=300).beta * G) * 1e3 for x in d]
    ax.semilogy(d * 1e9, fwhm, label=f"G = {G:g} T/m/µ0")
ax.set_xlabel("core diameter / nm")
ax.set_ylabel("FWHM / mm")
ax.grid(True, which="both", lw=0.3)
ax.legend()
ax.set_title("MPI resolution (300 K, Ms = 0.6 T/µ0)")
save(fig, "resolution.png")
