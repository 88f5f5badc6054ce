"""Langevin magnetisation and its derivative (the MPI point-spread function) for three core sizes."""

import numpy as np

from _common import plt, save
from mpisim import Tracer
from mpisim.particles import LANGEVIN_DERIVATIVE_FWHM, langevin, langevin_derivative

H = np.linspace(-10e-3, 10e-3, 2001)            # field in T/µ0
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for d in (15e-9, 20e-9, 25e-9, 30e-9):
    t = Tracer(core_diameter=d)
    a.plot(H * 1e3, langevin(t.beta * H), label=f"d = {d * 1e9:g} nm")
    b.plot(H * 1e3, langevin_derivative(t.beta * H) * 3, label=f"FWHM {LANGEVIN_DERIVATIVE_FWHM / t.beta * 1e3:.2f} mT")
a.set_xlabel("µ0 H / mT")
a.set_ylabel("mean moment / saturation moment  L(ξ)")
a.set_title("Langevin magnetisation")
b.set_xlabel("µ0 H / mT")
b.set_ylabel("3 L′(ξ)  (normalised)")
b.set_title("derivative = point-spread function shape")
a.legend()
b.legend()
save(fig, "langevin.png")
