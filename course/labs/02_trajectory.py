# %% [markdown]
# # Lab 2 — The field-free point and its Lissajous trajectory
#
# **Time:** about 25 minutes. **You will:** compute where the field-free point (FFP) is, how far the drive
# field moves it (the field of view), how long one trajectory takes (the frame rate), and how densely
# a Lissajous path covers the field of view.
#
# The selection field $H_S(\mathbf r) = G\,\mathbf r$ vanishes at one point. A homogeneous drive field
# $H_D(t)$ shifts it to
#
# $$\mathbf r_{\rm FFP}(t) = -G^{-1} H_D(t),\qquad H_{D,l}(t) = A_l \sin(2\pi f_l t + \varphi_l).$$
#
# Along a driven axis with gradient $G_{ll}$ the FFP sweeps $\pm A_l/|G_{ll}|$: the field of view is
# $2A_l/|G_{ll}|$. The drive frequencies are $f_l = f_{\rm base}/N_l$ (dividers $N_l$); the path repeats
# after $T_R = \mathrm{lcm}(N_l)/f_{\rm base}$.

# %%
import math

import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check

sc = mpisim.get_scanner("bruker-2d")
for c in sc.drive_field.channels:
    print(f"channel {c.axis}: amplitude {c.amplitude * 1e3:g} mT, divider {c.divider}, "
          f"f = {sc.drive_field.base_frequency / c.divider / 1e3:.3f} kHz")
print("gradient (T/m/µ0):\n", sc.gradient)

# %%
r = sc.ffp() * 1e3                                   # (3, samples) in mm, one repetition
fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
ax.plot(r[0], r[1], lw=0.4)
ax.set(xlabel="x / mm", ylabel="y / mm", title=f"bruker-2d: {sc.num_samples} samples", aspect="equal")
plt.show()

# %% [markdown]
# ### Exercise 2.1
# The field of view along x in **m**: use the x channel's amplitude and $G_{xx}$.

# %% solution
fov_x = 2 * sc.drive_field.channels[0].amplitude / abs(sc.gradient[0, 0])  # ANSWER (m)

# %%
check("2.1", fov_x, sc)

# %% [markdown]
# ### Exercise 2.2
# The frame rate (full Lissajous repetitions per second) of `bruker-2d`, in 1/s. `math.lcm` helps.

# %% solution
dividers = [c.divider for c in sc.drive_field.channels]
frame_rate = sc.drive_field.base_frequency / math.lcm(*dividers)  # ANSWER (1/s)

# %%
check("2.2", frame_rate, sc)

# %% [markdown]
# ## Explore: dividers and coverage
# The closer the two dividers, the longer the path takes to repeat and the more densely it covers the
# field of view. The design tool measures the **coverage**: the largest distance from any point of the
# field of view to the path.

# %%
from ipywidgets import IntSlider

from mpisim.course import explore

from mpisim.design import figures_of_merit


def lissajous(divider_y=96):
    d = sc.to_dict()
    d["drive_field"]["channels"][1]["divider"] = divider_y
    s = mpisim.Scanner.from_dict(d)
    f = figures_of_merit(s)
    r = s.ffp() * 1e3
    fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
    ax.plot(r[0], r[1], lw=0.3)
    ax.set(aspect="equal", xlabel="x / mm", ylabel="y / mm",
           title=f"dividers 102/{divider_y}: {f['frame_rate'].value:.0f} frames/s,\n"
                 f"coverage {f['coverage'].value * 1e3:.2f} mm")
    plt.show()


explore(lissajous, divider_y=IntSlider(value=96, min=80, max=100, step=2))

# %% [markdown]
# ### Exercise 2.3 — predict, then look
# **Before you move the slider to 100:** which y divider draws the denser path (the smaller coverage),
# 96 or 100, and what does it cost? Think of how long the path takes to repeat with each pair of
# dividers. Answer with one letter:
#
# - `"a"`: 102/96 — its path repeats sooner, so the FFP retraces its lines more often and fills the gaps.
# - `"b"`: 102/100 — the path takes longer to repeat, so it lays down more distinct lines before it
#   closes: denser, but fewer frames per second.
# - `"c"`: 102/100 — its y frequency is higher, so the FFP moves faster and covers more, at no cost.
# - `"d"`: neither — the coverage depends only on the drive amplitudes and the gradient.
#
# Then move the slider and compare the two titles.

# %% solution
answer_23 = "b"  # ANSWER (a letter)

# %%
check("2.3", answer_23, sc)

# %% [markdown]
# ## Challenge (optional)
# `bruker-3d` adds a z channel (divider 99) and has $G_{zz} = 2$ T/m/µ0. Predict its field of view along z
# and its frame rate before you compute them, then check with `figures_of_merit("bruker-3d")`.
