# %% [markdown]
# # Lab 6 — Cell tracking: from iron to cells
#
# **Time:** about 35 minutes. **You will:** turn iron into cell numbers, find the detection limit of a
# scanner for labelled cells, and see why MPI counts of a graft overestimate the surviving cells.
#
# MPI measures **iron**. With $q$ kg of iron per labelled cell, $N = m_{\rm Fe}/q$. A typical label is
# 10 pg per cell. Two things break the simple rule in a living animal:
#
# - cells **die**, and microglia take up part of their iron, which stays at the graft and still reads
#   as cells;
# - cells **divide**, which splits the label between daughters: the total iron, and so the MPI signal,
#   does not change.

# %%
import numpy as np
import matplotlib.pyplot as plt

import mpisim
from mpisim.course import check
from mpisim.design import DesignSettings, figures_of_merit

iron_per_cell = 10e-15                                  # kg (10 pg)

# %% [markdown]
# ### Exercise 6.1
# A graft holds 2 µg of iron. How many labelled cells is that at 10 pg per cell?

# %% solution
cells = 2e-9 / iron_per_cell  # ANSWER (cells)

# %%
check("6.1", cells, iron_per_cell)

# %% [markdown]
# ## Detection limit
# The design tool estimates the smallest detectable amount at the centre of the field of view: Currie's
# detection limit $L_D = 3.29\,\sigma_0$ (false positives and false negatives 5 % each) of a matched filter
# over the receive spectrum, $\sigma_0$ its noise.
# Averaging $n$ drive cycles lowers the noise by $\sqrt n$.

# %%
for n in (1, 100, 10000):
    settings = DesignSettings(averages=n, iron_per_cell=iron_per_cell)
    f = figures_of_merit("bruker-2d", settings=settings)
    ms = n * f["repetition_time"].value * 1e3
    ng = f["detection_limit_iron"].value * 1e12
    print(f"{n:6d} averaged cycles ({ms:8.1f} ms): {ng:8.3g} ng = {f['detection_limit_cells'].value:8.3g} cells")

# %% [markdown]
# ### Exercise 6.2
# Without running the tool again: by what factor does the detection limit in cells change when you
# average 400 cycles instead of 100?

# %% solution
factor_400 = np.sqrt(100 / 400)  # ANSWER (new / old)

# %%
check("6.2", factor_400)

# %% [markdown]
# ## Explore: a graft over time
# `mpisim.studies.track` simulates MPI scans of a striatal graft (on `bruker-2d`) over days: cells die at
# a daily rate, microglia keep a fraction of their iron. The slider sets the death rate; the scans are
# reconstructed with mpisim's defaults, with their 95 % intervals.

# %%
from ipywidgets import FloatSlider

from mpisim.course import explore
from mpisim.studies import track

days = [0, 15, 30, 60]


def follow(death_rate=0.02, retention=0.5):
    res = track(days, cells=3e5, iron_per_cell=iron_per_cell, death_rate=death_rate,
                microglia_retention=retention)
    rows = res["rows"]
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot(days, [r["live_cells"] for r in rows], "o-", label="live cells (truth)")
    mpi = np.array([r["apparent_cells"] for r in rows])
    lo, hi = np.array([r["apparent_cells_95"] for r in rows]).T
    ax.errorbar(days, mpi, yerr=[mpi - lo, hi - mpi], fmt="s", capsize=3,
                label="MPI: iron / (iron per cell)")
    ax.set(xlabel="day", ylabel="cells", title=f"death {death_rate:.0%}/day, microglia keep {retention:.0%}")
    ax.legend()
    plt.show()


explore(follow, death_rate=FloatSlider(value=0.02, min=0, max=0.1, step=0.01),
        retention=FloatSlider(value=0.5, min=0, max=1, step=0.1))

# %% [markdown]
# ### Exercise 6.3
# With a death rate of 2 % per day and microglia keeping half of the dead cells' iron, what **apparent**
# cell number does a perfect MPI scan report on day 60 for a graft of $3\times10^5$ cells? (Iron in live
# cells: $N_0 q\,e^{-dt}$; iron in microglia: $r N_0 q (1 - e^{-dt})$.)

# %% solution
d, r_keep, N0, t = 0.02, 0.5, 3e5, 60
apparent_60 = N0 * np.exp(-d * t) + r_keep * N0 * (1 - np.exp(-d * t))  # ANSWER (cells)

# %%
check("6.3", apparent_60)

# %% [markdown]
# ## Challenge (optional)
# Add proliferation (`proliferation_rate=0.01` in `track`). Why does the MPI count not change, and what
# would you need to know to estimate the live cells from an MPI scan?
