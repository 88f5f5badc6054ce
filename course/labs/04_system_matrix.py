# %% [markdown]
# # Lab 4 — The system matrix
#
# **Time:** about 30 minutes. **You will:** build a system matrix, look at its rows as images (the
# Chebyshev patterns of a Lissajous sequence), and use the signal-to-noise ratio of each row to choose the
# frequencies a reconstruction uses.
#
# A system matrix $S$ maps voxel concentrations $c$ to the spectrum $u = S c$: column $j$ is the spectrum
# of a small sample in voxel $j$, row $k$ (one receive coil, one frequency) tells how much each voxel
# contributes to that frequency. For a 2D Lissajous sequence the x-coil row at the mixing frequency
# $m_x f_x + m_y f_y$ looks like
#
# $$S_{(m_x,m_y)}(x, y) \approx U_{m_x-1}(x/A_x)\,\sqrt{1-x^2/A_x^2}\;U_{m_y}(y/A_y)$$
#
# ($U_n$: Chebyshev polynomials of the second kind), blurred by the particles' point-spread function.
# Each row's SNR (measured on empty-scanner frames) says whether it carries information or noise.

# %%
import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

sc = mpisim.get_scanner("bruker-2d")
grid = default_grid(sc, (31, 31, 1))             # the matrix lab 5 reconstructs with (cached after this lab)
S = build_system_matrix(sc, mpisim.Tracer(), grid, CalibrationSettings(background_frames=10))
fx, fy = sc.drive_field.frequencies
df = sc.frequencies[1]
print(f"{S.num_rx_channels} coils × {len(S.frequencies)} frequencies × {S.grid.size} voxels")
print(f"f_x = {fx / 1e3:.3f} kHz, f_y = {fy / 1e3:.3f} kHz")


def row_image(channel, mx, my):
    """The system-matrix row of ``channel`` at the mixing frequency mx f_x + my f_y, as a 2D image."""
    k = int(np.argmin(np.abs(S.frequencies - (mx * fx + my * fy))))
    img = S.grid.unflatten(S.data[channel, k])[:, :, 0]
    return (img * np.exp(-1j * np.angle(img.flat[np.argmax(np.abs(img))]))).real, S.frequencies[k]


# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.3), layout="constrained")
for ax, (mx, my) in zip(axes, [(1, 0), (3, 0), (2, 1), (3, 2)]):
    img, f = row_image(0, mx, my)
    v = np.abs(img).max()
    ax.imshow(img.T, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_title(f"x coil, ({mx},{my}): {f / 1e3:.1f} kHz", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ### Exercise 4.1
# The mixing frequency (in Hz) of the order $(m_x, m_y) = (2, 1)$.

# %% solution
f21 = 2 * fx + fy  # ANSWER (Hz)

# %%
check("4.1", f21, sc)

# %% [markdown]
# ## Explore: mixing orders
# Count the zero crossings along x and y: $m_x - 1$ and $m_y$.

# %%
from ipywidgets import IntSlider

from mpisim.course import explore


def pattern(mx=3, my=2):
    img, f = row_image(0, mx, my)
    v = np.abs(img).max() or 1.0
    fig, ax = plt.subplots(figsize=(4, 4), layout="constrained")
    ax.imshow(img.T, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_title(f"x coil, order ({mx},{my}), {f / 1e3:.1f} kHz")
    ax.axis("off")
    plt.show()


explore(pattern, mx=IntSlider(value=3, min=1, max=8), my=IntSlider(value=2, min=0, max=8))

# %% [markdown]
# ### Exercise 4.2 — which rows see the centre?
# A small sample sits exactly at the centre of the field of view. Which rows of the **x coil** pick up its
# signal? Reason from the symmetry of the patterns above (the Langevin response is odd in $H_x$ and even in
# $H_y$), or from the formula: a row sees the centre when its pattern is not zero there. One letter:
#
# - `"a"`: only the orders with $m_x$ odd and $m_y$ even;
# - `"b"`: every order $(m_x, m_y)$;
# - `"c"`: only the pure harmonics of $f_x$ ($m_y = 0$);
# - `"d"`: only the orders with $m_x$ even.
#
# Check your reasoning with the slider: where is the centre of each pattern positive or negative, and
# where is it zero?

# %% solution
answer_42 = "a"  # ANSWER (a letter)

# %%
check("4.2", answer_42, S, sc)

# %% [markdown]
# ## SNR and frequency selection
# `S.snr` holds each row's SNR, shape (coils, frequencies). High orders fade into the noise: a
# reconstruction keeps the rows above a threshold (mpisim's `--snr-threshold`).

# %%
snr = S.snr
fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
ax.semilogy(S.frequencies / 1e3, snr[0], lw=0.6)
ax.axhline(5, color="k", lw=0.8)
ax.set(xlabel="f / kHz", ylabel="SNR (x coil)", title="row SNR of the x coil")
plt.show()

# %% [markdown]
# ### Exercise 4.3 — why drop rows?
# The plot shows that most rows sit below the line at SNR 5, and a reconstruction drops them. Why not use
# every row — more equations should not hurt? One letter:
#
# - `"a"`: in those rows the noise outweighs the particle signal; the solver would fit that noise too and
#   spread it over the image as speckle;
# - `"b"`: only to save memory and time — the image would be the same with them;
# - `"c"`: the band-stop filter has removed their frequencies anyway;
# - `"d"`: they belong to the y coil, which the x coil's reconstruction does not use.

# %% solution
answer_43 = "a"  # ANSWER (a letter)

# %%
check("4.3", answer_43)
print(f"for the record: {np.count_nonzero(snr >= 5)} of {snr.size} rows have SNR ≥ 5")

# %% [markdown]
# ## Challenge (optional)
# Rebuild the matrix for 30 nm cores (`mpisim.Tracer(core_diameter=30e-9)`). How does the number of rows
# above SNR 5 change, and why? (Lab 1: the PSF narrows, so higher orders keep their strength.)
