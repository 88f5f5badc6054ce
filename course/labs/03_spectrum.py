# %% [markdown]
# # Lab 3 — The receive chain and the spectrum
#
# **Time:** about 35 minutes. **You will:** simulate the voltage a point sample induces, find its
# harmonics, see why even harmonics appear only off-centre, and meet the feed-through band-stop and the
# noise floor.
#
# The coil voltage is $u(t) = -p\,\frac{dm}{dt}$, with $m$ the sample's total magnetic moment along the
# coil's axis (A·m²) and $p$ the coil sensitivity in T/A (the field per ampere at the coil centre), so that
# $u$ is in T·m²/s = V (the conventions page's signal row). The Langevin
# curve is odd, so a sample at the centre driven by $A\sin\omega t$ gives only **odd** harmonics
# $3f, 5f, \dots$ An offset field (a sample away from the centre) breaks the symmetry and even harmonics
# appear. On a 2D Lissajous sequence the signal sits at mixing frequencies $|m_x f_x + m_y f_y|$.
# The drive frequency itself is swamped by the direct feed-through of the drive coil: a band-stop
# filter removes it, and with it most of the particle signal at $f$.

# %%
import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check
from mpisim.phantoms import point

sc = mpisim.get_scanner("bruker-1d")
f_drive = sc.drive_field.frequencies[0]
k_f = int(round(f_drive / sc.frequencies[1]))                    # the bin of the drive frequency
print(f"drive frequency {f_drive / 1e3:.3f} kHz, {sc.num_samples} samples per period, "
      f"bins every {sc.frequencies[1] / 1e3:.3f} kHz")

# %%
meas = mpisim.simulate(sc, mpisim.Tracer(), point(sc, 0.1))       # 0.1 mol/L in a 1 mm voxel at the centre
u = meas.data[0, 0, 0]                                            # frame 0, period 0, x coil
spec = np.abs(meas.spectra()[0, 0, 0])
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
ax[0].plot(sc.times * 1e6, u * 1e6)
ax[0].set(xlabel="t / µs", ylabel="u / µV", title="x-coil voltage, one period")
ax[1].semilogy(sc.frequencies[1:] / f_drive, spec[1:] / spec.max() + 1e-12, "o", ms=3)
ax[1].set(xlabel="frequency / drive frequency", ylabel="|û| (normalised)", title="spectrum", ylim=(1e-9, 2))
plt.show()

# %% [markdown]
# ### Exercise 3.1
# At which frequency (Hz) is the strongest harmonic **above** the drive frequency? (Look at the
# spectrum: use `sc.frequencies` and `spec`, and skip the bins up to $f$.)

# %% solution
strongest = sc.frequencies[k_f + 1 + int(np.argmax(spec[k_f + 1:]))]  # ANSWER (Hz)

# %%
check("3.1", strongest, sc)

# %% [markdown]
# ## Explore: move the sample off-centre
# The slider shifts the point sample along x. Watch the even harmonics (2f, 4f) rise out of the floor.

# %%
from ipywidgets import FloatSlider

from mpisim.course import explore


def harmonics(offset_mm=2.0):
    m = mpisim.simulate(sc, mpisim.Tracer(), point(sc, 0.1, center=(offset_mm * 1e-3, 0, 0)))
    s = np.abs(m.spectra()[0, 0, 0])
    n = np.arange(1, 12)
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.bar(n, s[n * k_f] / s.max() + 1e-12, color=["C0" if k % 2 else "C3" for k in n])
    ax.set(yscale="log", ylim=(1e-8, 2), xlabel="harmonic n", ylabel="|û_n| (normalised)",
           title=f"sample at x = {offset_mm:g} mm (red: even harmonics)")
    plt.show()


explore(harmonics, offset_mm=FloatSlider(value=2, min=0, max=10, step=0.5))

# %% [markdown]
# ### Exercise 3.2
# A sample at the centre: which harmonics carry signal? Answer `"odd"`, `"even"` or `"all"`.

# %% solution
centre_harmonics = "odd"  # ANSWER

# %%
check("3.2", centre_harmonics)

# %% [markdown]
# ## Noise and the band-stop
# A realistic measurement adds white receive noise (`noise_density` in V/√Hz), the scanner's static
# background and the feed-through, which the band-stop removes. The noise floor decides which harmonics
# are usable.

# %%
settings = mpisim.SimulationSettings.realistic(sc, frames=1)
noisy = mpisim.simulate(sc, mpisim.Tracer(), point(sc, 0.1), settings)
ns = np.abs(noisy.spectra()[0, 0, 0])
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
ax.semilogy(sc.frequencies[1:] / f_drive, ns[1:], "o", ms=3, label="realistic")
ax.semilogy(sc.frequencies[1:] / f_drive, spec[1:], ".", ms=3, label="ideal")
ax.set(xlabel="frequency / drive frequency", ylabel="|û| / V", title="the same sample with noise")
ax.legend()
plt.show()

# %% [markdown]
# ### Exercise 3.3
# The white noise per time sample has $\sigma = $ `noise_density` $\sqrt{\text{bandwidth}}$. Compute it
# for `bruker-1d` in V (`sc.receiver.noise_density`, `sc.receiver.bandwidth`).

# %% solution
sigma = sc.receiver.noise_density * np.sqrt(sc.receiver.bandwidth)  # ANSWER (V)

# %%
check("3.3", sigma, sc)

# %% [markdown]
# ## Challenge (optional)
# Switch to `bruker-2d` and find the mixing frequency $2f_x + f_y$ in the x-coil spectrum of an
# off-centre sample. Which mixing orders does the x coil see for a sample on the x axis?
