"""Receive signal and spectrum of a point sample: odd harmonics on 1D, mixing frequencies on 2D."""

import numpy as np

from _common import plt, save
import mpisim
from mpisim.phantoms import point

fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), layout="constrained")
for row, name in enumerate(("bruker-1d", "bruker-2d")):
    sc = mpisim.get_scanner(name)
    m = mpisim.simulate(sc, mpisim.Tracer(), point(sc, 0.1, center=(0.5e-3, 0.8e-3, 0)))
    u = m.data[0, 0, 0]
    spec = np.abs(m.spectra()[0, 0, 0])
    axes[row, 0].plot(sc.times * 1e6, u * 1e6)
    axes[row, 0].set_xlabel("t / µs")
    axes[row, 0].set_ylabel("u_x / µV")
    axes[row, 0].set_title(f"{name}: x-coil voltage of a point sample")
    f = sc.frequencies / 1e3
    if row == 0:   # 1D: only the harmonics carry signal; show them as points
        axes[row, 1].semilogy(f[1:], spec[1:] / spec.max() + 1e-12, "o", ms=3)
    else:
        axes[row, 1].semilogy(f, spec / spec.max() + 1e-12, lw=0.6)
    axes[row, 1].set_xlim(0, 1250)
    axes[row, 1].set_ylim(1e-7, 2)
    axes[row, 1].set_xlabel("f / kHz")
    axes[row, 1].set_ylabel("|û_x| (normalised)")
    axes[row, 1].set_title("spectrum: harmonics" + (" and mixing frequencies" if row else " of 24.5 kHz"))
save(fig, "signal_spectrum.png")
