"""Figures (matplotlib, Agg backend): axes in mm, concentrations in mmol/L."""


import numpy as np

from .errors import MPISimError

from .io.atomic import atomic_path
from .quant import cells_map

__all__ = ["image_panels", "show_volume", "plot_reconstruction", "save_figure_atomic", "plot_cells", "plot_live",
           "plot_measurement", "plot_system_matrix"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _extent(grid, a, b):
    (x0, x1), (y0, y1) = grid.extent(a), grid.extent(b)
    return [x0 * 1e3, x1 * 1e3, y0 * 1e3, y1 * 1e3]


def image_panels(grid, volume):
    """What to show for a (nx, ny, nz) volume: a profile for a 1D grid, one image for a 2D grid,
    maximum-intensity projections along z, y and x for a 3D grid. Returns
    [(title, data, extent or axis coordinates in mm, axis labels)]."""
    names = "xyz"
    dims = [i for i in range(3) if volume.shape[i] > 1] or [0]
    if len(dims) == 1:
        i = dims[0]
        return [(f"profile along {names[i]}", volume.reshape(-1), grid.axis(i) * 1e3, (names[i], ""))]
    if len(dims) == 2:
        a, b = dims
        other = ({0, 1, 2} - {a, b}).pop()
        return [(f"slice {names[other]} = {grid.center[other] * 1e3:g} mm", volume.squeeze(axis=other),
                 _extent(grid, a, b), (names[a], names[b]))]
    return [(f"MIP along {names[ax]}", volume.max(axis=ax), _extent(grid, a, b), (names[a], names[b]))
            for ax, (a, b) in ((2, (0, 1)), (1, (0, 2)), (0, (1, 2)))]


def show_volume(ax_list, grid, volume, unit_scale=1e3, unit="mmol/L", vmax=None, cmap="inferno", fig=None,
                title_prefix=""):
    """Draw :func:`image_panels` of ``volume`` × ``unit_scale`` into ``ax_list`` (colour bar in ``unit``)."""
    panels = image_panels(grid, volume)
    vmax = vmax if vmax is not None else max(float(np.max(volume)) * unit_scale, 1e-30)
    im = None
    for ax, (title, img, ext, (la, lb)) in zip(ax_list, panels):
        if img.ndim == 1:
            ax.plot(ext, img * unit_scale)
            ax.set_xlabel(f"{la} / mm")
            ax.set_ylabel(unit)
        else:
            im = ax.imshow(img.T * unit_scale, origin="lower", extent=ext, cmap=cmap, vmin=0, vmax=vmax,
                           interpolation="nearest", aspect="equal")
            ax.set_xlabel(f"{la} / mm")
            ax.set_ylabel(f"{lb} / mm")
        ax.set_title(f"{title_prefix}{title}", fontsize=9)
    if fig is not None and im is not None:
        fig.colorbar(im, ax=list(ax_list)[: len(panels)], label=unit, shrink=0.8)
    return im


def plot_reconstruction(reco, path, frame=0, title=None):
    """PNG of one reconstructed frame (slice or MIPs), colour bar in mmol/L (or the file's unit)."""
    plt = _plt()
    vol = reco.volume(frame)
    n = len(image_panels(reco.grid, vol))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1, 4), squeeze=False, layout="constrained")
    scale, unit = (1e3, "c / mmol/L") if reco.unit == "mol/L" else (1.0, reco.unit or "a.u.")
    show_volume(axes[0], reco.grid, vol, scale, unit, fig=fig)
    fig.suptitle(title or f"reconstruction, frame {frame}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_figure_atomic(fig_writer, path, overwrite=True):
    """Call ``fig_writer(tmp_path)`` and move the PNG into place atomically."""

    with atomic_path(path, overwrite, suffix=".part.png") as tmp:   # named and cleaned like every partial file
        fig_writer(tmp)
    return path


def plot_cells(reco, iron_per_cell, path, frame=0, scale=1.0):
    """PNG of labelled cells per voxel (iron / iron per cell) for one frame."""

    plt = _plt()
    vol = cells_map(reco.volume(frame) * scale, reco.grid.voxel_volume, iron_per_cell)
    n = len(image_panels(reco.grid, vol))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1, 4), squeeze=False, layout="constrained")
    show_volume(axes[0], reco.grid, vol, 1.0, "cells / voxel", cmap="viridis", fig=fig)
    fig.suptitle(f"labelled cells per voxel ({iron_per_cell * 1e15:g} pg Fe per cell), frame {frame}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_measurement(meas, path, frame=None):
    """Signal of one foreground frame (all channels) and its spectrum; ``frame``: 0-based among the
    foreground frames, as ``reco --frames`` counts (default the first; a file of background frames
    only: among all frames)."""
    plt = _plt()
    fg = meas.foreground_frames
    pool, what = (fg, "foreground frame(s)") if fg.size else (np.arange(meas.num_frames), "frame(s), all background")
    k = 0 if frame is None else int(frame)
    if not 0 <= k < pool.size:
        raise MPISimError(f"frame {frame} out of range: the measurement has {pool.size} {what} (0..{pool.size - 1})")
    f = int(pool[k])
    spec = np.abs(meas.spectra()[f, 0])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    if not meas.frequency_domain:
        t = np.arange(meas.num_samples) / meas.sampling_rate * 1e6
        for c in range(meas.num_rx_channels):
            a.plot(t, meas.data[f, 0, c] * 1e6, lw=0.7, label=f"channel {c + 1}")
        a.set_xlabel("t / µs")
        a.set_ylabel("u / µV")
        a.legend(fontsize=8)
    else:
        a.text(0.5, 0.5, "frequency-domain file", ha="center", transform=a.transAxes)
    a.set_title(f"frame {f} (period 1)")
    for c in range(meas.num_rx_channels):
        b.semilogy(meas.frequencies / 1e3, spec[c] + 1e-30, lw=0.6, label=f"channel {c + 1}")
    b.set_xlabel("f / kHz")
    b.set_ylabel("|û| (V, rfft)")
    b.set_title("spectrum")
    b.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_system_matrix(sm, path, count=8):
    """System-function images of the ``count`` strongest rows (by SNR, else by energy). An on-disk
    matrix reads only those rows (without an SNR: the lowest non-zero frequencies of channel 1)."""
    plt = _plt()
    if sm.snr is not None:
        score = sm.snr
    elif not sm.on_disk:
        score = np.linalg.norm(sm.data, axis=-1)
    else:
        score = np.broadcast_to(-sm.frequencies[None, :], (sm.num_rx_channels, sm.frequencies.size)).copy()
        score[1:] = -np.inf
    score = np.where(sm.frequencies[None, :] > 0, score, -np.inf)
    idx = np.argsort(score.ravel())[::-1][:count]
    ci, ki = np.unravel_index(idx, score.shape)
    order = np.lexsort((ki, ci))
    picked = np.empty((idx.size, sm.grid.size), complex)
    picked[order] = sm.rows(ci[order], ki[order])
    cols = min(4, len(idx))
    rows = -(-len(idx) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.1 * rows), squeeze=False, layout="constrained")
    g = sm.grid
    flat = [i for i in range(3) if g.shape[i] > 1][:2] or [0, 1]
    if len(flat) == 1:
        flat = [flat[0], (flat[0] + 1) % 3]
    for n, (ax, i) in enumerate(zip(axes.ravel(), idx)):
        c, k = np.unravel_index(i, score.shape)
        vol = g.unflatten(picked[n])
        img = np.abs(vol).max(axis=tuple(a for a in range(3) if a not in flat))
        ax.imshow(img.T, origin="lower", cmap="viridis", extent=_extent(g, flat[0], flat[1]), aspect="auto")
        ax.set_title(f"ch {c + 1}, {sm.frequencies[k] / 1e3:.1f} kHz", fontsize=8)
        ax.set_xlabel(f"{'xyz'[flat[0]]} / mm")
        ax.set_ylabel(f"{'xyz'[flat[1]]} / mm")
    for ax in axes.ravel()[len(idx):]:
        ax.axis("off")
    fig.suptitle("|system function| of the strongest rows", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_mps(results, path):
    """PNG of MPS results (:func:`mpisim.mps.mps`), one line per result: the dynamic M–H loop, the
    receive signal's harmonics (k ω |M_k|, relative to the strongest fundamental) and M(t)."""
    plt = _plt()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    top = max(r.signal[1] for r in results)
    for r in results:
        label = f"{r.model} (A3/A1 {r.ratio(3, 1):.3f})"
        a.plot(np.r_[r.field, r.field[:1]] * 1e3, np.r_[r.moment, r.moment[:1]], lw=1.2, label=label)   # closed loop
        k = np.arange(1, min(r.harmonics.size, 31))
        odd = k[k % 2 == 1]
        b.semilogy(odd, r.signal[odd] / top, "o-", ms=3, lw=0.8, label=r.model)
        c.plot(r.times * 1e6, r.moment, lw=1.2, label=r.model)
    r0 = results[0]
    a.set_xlabel("µ0H / mT")
    a.set_ylabel("M / (A·m² per kg Fe)")
    a.set_title(f"dynamic M–H loop, {r0.amplitude * 1e3:g} mT at {r0.frequency / 1e3:g} kHz", fontsize=10)
    a.legend(fontsize=8)
    b.set_xlabel("harmonic k (odd)")
    b.set_ylabel("signal k·ω·|M_k| (relative)")
    b.set_title("receive-coil spectrum", fontsize=10)
    b.legend(fontsize=8)
    c.set_xlabel("t / µs")
    c.set_ylabel("M / (A·m² per kg Fe)")
    c.set_title("one drive period", fontsize=10)
    fig.suptitle(f"MPS of {r0.tracer.name}", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_live(result, path):
    """PNG of a live session (:class:`mpisim.live.LiveResult`): its last image (slice or MIPs), each block's
    latency against the session's time, and each followed ROI's iron (corrected for spill between the ROIs) against
    time."""
    plt = _plt()
    grid = result.grid
    vol = grid.unflatten(result.images[-1])
    n = len(image_panels(grid, vol))
    fig, axes = plt.subplots(1, n + 2, figsize=(4.2 * (n + 2) + 1, 4), squeeze=False, layout="constrained")
    show_volume(axes[0][:n], grid, vol, 1e3, "c / mmol/L", fig=fig, title_prefix=f"block {result.blocks[-1]}: ")
    t = result.done - result.done[0]
    ax = axes[0][n]
    ax.plot(t, result.latency * 1e3, ".", ms=3)
    ax.set_xlabel("session time / s")
    ax.set_ylabel("latency / ms (frame written → image)")
    s = result.summary()
    ax.set_title(f"{s['frames_per_second']:.3g} frames/s, {s['frames_dropped']} dropped", fontsize=9)
    ax = axes[0][n + 1]
    for name, v in result.rois.items():
        ax.plot(t, v * 1e9, label=name)
    ax.set_xlabel("session time / s")
    ax.set_ylabel("iron in ROI / µg")
    if result.rois:
        ax.legend(fontsize=8)
    else:
        ax.set_title("no ROI given (--roi)", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
