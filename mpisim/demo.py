"""``mpisim demo``: the whole pipeline on a CPU in well under a minute.

simulate a phantom with realistic noise on ``bruker-2d`` → build (or load from the cache) a
system matrix → reconstruct → quantify iron and cells → MDF files and one figure.
"""

import time
from pathlib import Path

import numpy as np

DEMO_CELLS_IRON = 10e-15   # kg Fe per labelled cell (10 pg, typical for MSCs / NSCs)
DEMO_RECO = dict(min_freq=30e3, lam=1e-3, iterations=100, snr_threshold=2.0)


def run_demo(out="mpisim-demo", overwrite=False, backend="auto", say=print):
    import mpisim
    from .io.mdf import write_mdf
    from .io.reco_mdf import write_reconstruction
    from .reco import reconstruct
    from .systemmatrix import CalibrationSettings, build_system_matrix, default_grid

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{k}.mdf" for k in ("measurement", "systemmatrix", "reconstruction")}
    paths["figure"] = out / "demo.png"
    from .io.atomic import check_output_path

    for p in paths.values():
        check_output_path(p, overwrite)
    t0 = time.perf_counter()
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    ph = mpisim.get_phantom("shapes", sc)
    settings = mpisim.SimulationSettings.realistic(sc, frames=1, background_frames=10, seed=1)
    say(f"[1/4] simulating {sc.name}: phantom {ph.name!r} ({ph.iron_mass * 1e9:.1f} µg Fe), "
        f"25 nm magnetite, noise {settings.noise_density * 1e9:g} nV/√Hz, 10 background frames")
    meas = mpisim.simulate(sc, tr, ph, settings, backend=backend)
    write_mdf(paths["measurement"], meas, overwrite=overwrite)
    t1 = time.perf_counter()
    grid = default_grid(sc, (25, 25, 1))
    say(f"[2/4] system matrix on a {'x'.join(map(str, grid.shape))} grid over "
        f"{grid.fov[0] * 1e3:.1f} x {grid.fov[1] * 1e3:.1f} mm (cached after the first run)")
    S = build_system_matrix(sc, tr, grid, CalibrationSettings(background_frames=10), out=paths["systemmatrix"],
                            overwrite=overwrite, backend=backend, log=lambda m: say("      " + m))
    t2 = time.perf_counter()
    say(f"[3/4] reconstructing: Kaczmarz, {DEMO_RECO['iterations']} sweeps, λ = {DEMO_RECO['lam']:g}, "
        f"{DEMO_RECO['min_freq'] / 1e3:g} kHz – 1.25 MHz, SNR ≥ {DEMO_RECO['snr_threshold']:g}")
    reco = reconstruct(meas, S, backend=backend, **DEMO_RECO)
    write_reconstruction(paths["reconstruction"], reco, overwrite=overwrite)
    t3 = time.perf_counter()
    iron_true = ph.iron_mass
    iron_reco = float(reco.iron_mass[0])
    cells_true, cells_reco = iron_true / DEMO_CELLS_IRON, iron_reco / DEMO_CELLS_IRON
    say(f"[4/4] quantification ({DEMO_CELLS_IRON / 1e-15:g} pg Fe per labelled cell):")
    say(f"      iron   true {iron_true * 1e9:9.2f} µg   reconstructed {iron_reco * 1e9:9.2f} µg   "
        f"({100 * (iron_reco / iron_true - 1):+.1f} %)")
    say(f"      cells  true {cells_true:9.3g}      reconstructed {cells_reco:9.3g}")
    _figure(paths["figure"], ph, reco, overwrite)
    say(f"wrote {', '.join(str(p) for p in paths.values())}")
    say(f"time: simulate {t1 - t0:.1f} s, system matrix {t2 - t1:.1f} s, reconstruct {t3 - t2:.1f} s, "
        f"total {time.perf_counter() - t0:.1f} s")
    return {"iron_true": iron_true, "iron_reco": iron_reco, "paths": paths, "reco": reco}


def _figure(path, ph, reco, overwrite):
    """truth | reconstruction (shared mmol/L scale) | labelled cells per voxel."""
    from .plot import _plt, save_figure_atomic, show_volume
    from .quant import cells_map

    plt = _plt()

    def draw(p):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
        vmax = max(ph.concentration.max(), reco.image.max()) * 1e3
        show_volume([axes[0]], ph.grid, ph.concentration, vmax=vmax, title_prefix="truth: ")
        im = show_volume([axes[1]], reco.grid, reco.volume(0), vmax=vmax, title_prefix="reconstruction: ")
        fig.colorbar(im, ax=axes[:2], label="c / mmol/L", shrink=0.85)
        axes[0].set_xlim(*(np.array(reco.grid.extent(0)) * 1e3))   # same field of view as the reconstruction
        axes[0].set_ylim(*(np.array(reco.grid.extent(1)) * 1e3))
        cells = cells_map(reco.volume(0), reco.grid.voxel_volume, DEMO_CELLS_IRON)
        show_volume([axes[2]], reco.grid, cells, 1.0, "cells / voxel", cmap="viridis", fig=fig,
                    title_prefix=f"cells ({DEMO_CELLS_IRON / 1e-15:g} pg Fe/cell): ")
        fig.savefig(p, dpi=100)
        plt.close(fig)

    save_figure_atomic(draw, path, overwrite=overwrite)
