"""System-function images of bruker-2d: Chebyshev patterns U_{mx-1}(x)·U_{my}(y) per mixing order."""

import numpy as np

from _common import plt, save
import mpisim
from mpisim.grid import Grid
from mpisim.systemmatrix import build_system_matrix

sc = mpisim.get_scanner("bruker-2d")
grid = Grid((40, 40, 1), (0.026, 0.026, 1e-3))
S = build_system_matrix(sc, mpisim.Tracer(core_diameter=30e-9), grid)
fx, fy = sc.drive_field.frequencies
df = sc.receiver.sampling_rate / sc.num_samples
orders = [(1, 0), (3, 0), (5, 0), (2, 1), (4, 1), (2, 3), (1, 2), (3, 2)]
fig, axes = plt.subplots(2, 4, figsize=(12, 6), layout="constrained")
ext = [-13, 13, -13, 13]
for ax, (mx, my) in zip(axes.ravel(), orders):
    k = int(round((mx * fx + my * fy) / df))
    img = grid.unflatten(S.data[0, k])[:, :, 0]
    img = (img * np.exp(-1j * np.angle(img.flat[np.argmax(np.abs(img))]))).real   # rotate to the real axis
    v = np.abs(img).max()
    ax.imshow(img.T, origin="lower", extent=ext, cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_title(f"x-coil, ({mx},{my}): {k * df / 1e3:.1f} kHz", fontsize=9)
    ax.set_xlabel("x / mm")
    ax.set_ylabel("y / mm")
save(fig, "system_function.png")
