"""Field-free-point trajectories of the three Bruker presets (1D line, 2D and 3D Lissajous)."""


from _common import plt, save
import mpisim

fig = plt.figure(figsize=(12, 3.8), layout="constrained")
for i, name in enumerate(("bruker-1d", "bruker-2d", "bruker-3d")):
    sc = mpisim.get_scanner(name)
    r = sc.ffp() * 1e3                                   # mm
    if name == "bruker-3d":
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        ax.plot(*r[:, : sc.num_samples // 12], lw=0.5)          # the first 1/12 of the 21.5 ms cycle
        ax.set_zlabel("z / mm")
    else:
        ax = fig.add_subplot(1, 3, i + 1)
        t = sc.times * 1e6
        if name == "bruker-1d":
            ax.plot(t, r[0])
            ax.set_xlabel("t / µs")
            ax.set_ylabel("x_FFP / mm")
        else:
            ax.plot(r[0], r[1], lw=0.5)
            ax.set_aspect("equal")
    if name != "bruker-1d":
        ax.set_xlabel("x / mm")
        ax.set_ylabel("y / mm")
    ax.set_title(f"{name}: {sc.num_samples} samples, {sc.drive_field.cycle * 1e3:.4g} ms"
                 + ("\n(first 1/12 shown)" if name == "bruker-3d" else ""), fontsize=9)
save(fig, "trajectories.png")
