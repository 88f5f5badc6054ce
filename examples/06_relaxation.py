"""Debye relaxation: harmonics damped and delayed by 1/(1 + i n ω τ); the x-space PSF blurs."""

import numpy as np

from _common import plt, save
import mpisim
from mpisim.phantoms import point

sc = mpisim.get_scanner("bruker-1d")
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
for tau in (0.0, 1e-6, 3e-6, 10e-6):
    m = mpisim.simulate(sc, mpisim.Tracer(relaxation_time=tau), point(sc, 0.1))
    u = m.data[0, 0, 0]
    a.plot(sc.times * 1e6, u * 1e6, label=f"τ = {tau * 1e6:g} µs")
    s = np.abs(m.spectra()[0, 0, 0])
    b.semilogy(np.arange(1, 30, 2), s[1:30:2], "o-", ms=3, label=f"τ = {tau * 1e6:g} µs")
a.set_xlabel("t / µs")
a.set_ylabel("u_x / µV")
a.set_title("signal lags and broadens with relaxation")
b.set_xlabel("harmonic n")
b.set_ylabel("|û_n| / (V, rfft)")
b.set_title("higher harmonics are damped")
a.legend()
b.legend()
save(fig, "relaxation.png")
