"""Cell-tracking studies: detection-limit titration and longitudinal graft follow-up.

Both simulate realistic scans of a graft (a sphere of labelled cells at the FOV centre) on a
scanner preset, reconstruct them with a cached system matrix and quantify an ROI around the
graft. Iron per cell in kg; cell numbers are labelled-cell equivalents (iron / iron per cell).
"""

from dataclasses import dataclass, field

import numpy as np

import mpisim

from .errors import MPISimError, check_positive
from .phantoms import graft
from .plot import _plt
from .quant import roi_total, sphere_mask
from .reco import reconstruct
from .systemmatrix import CalibrationSettings, build_system_matrix, default_grid

__all__ = ["RECO", "StudySetup", "titrate", "plot_titration", "track", "TRACK_LIMITS", "plot_track"]

RECO = {}
"""Reconstruction settings of the studies: mpisim's defaults (:class:`~mpisim.reconstruction.RecoParams`)."""


@dataclass
class StudySetup:
    """Scanner, tracer and the reconstruction used by the studies."""

    scanner: str = "bruker-2d"
    core_diameter: float = 25e-9
    grid: tuple = (25, 25, 1)
    averages: int = 100
    background_frames: int = 10
    graft_radius: float = 1.0e-3
    roi_radius: float = 8.0e-3
    reco: dict = field(default_factory=lambda: dict(RECO))

    def prepare(self, backend="auto"):
        sc = mpisim.get_scanner(self.scanner)
        tr = mpisim.Tracer(core_diameter=self.core_diameter)
        S = build_system_matrix(sc, tr, default_grid(sc, self.grid), CalibrationSettings(background_frames=10),
                                backend=backend)
        return sc, tr, S

    def scan(self, sc, tr, S, cells, iron_per_cell, seed, backend="auto", full=False):
        """Iron (kg) reconstructed in the ROI around a graft of ``cells`` labelled cells; with
        ``full``, the :class:`~mpisim.quant.RoiResult` (with σ and 95 % interval)."""

        ph = graft(sc, cells=max(cells, 0.0), iron_per_cell=iron_per_cell, separation=1e-9,
                   graft_radius=self.graft_radius, unlabelled_cells=0)
        st = mpisim.SimulationSettings.realistic(sc, frames=1, background_frames=self.background_frames,
                                                 averages=self.averages, seed=seed)
        meas = mpisim.simulate(sc, tr, ph, st, backend=backend)
        r = reconstruct(meas, S, backend=backend, **self.reco)
        roi = sphere_mask(S.grid, (0.0, 0.0, 0.0), self.roi_radius)
        res = roi_total(r.image[0], S.grid, roi, iron_per_cell, r.noise_for(0), "graft")
        return res if full else res.iron


def titrate(cells, iron_per_cell=10e-15, seeds=3, blank_seeds=8, setup=None, backend="auto", progress=None):
    """Dilution series → detection limit.

    Criterion: a cell number is detected when the ROI iron exceeds mean + 3σ of the blank (0 cells)
    ROI iron in every noise seed; the detection limit is the smallest cell number from which on all
    larger ones are detected. Returns a dict with the table, the threshold and the limit.
    """
    check_positive("iron per cell (kg)", iron_per_cell)
    cells = np.asarray(sorted(float(c) for c in cells))
    if cells.size < 2 or np.any(cells <= 0):
        raise MPISimError("--cells needs at least two positive cell numbers")
    setup = setup or StudySetup()
    sc, tr, S = setup.prepare(backend)
    say = progress or (lambda m: None)
    blank = np.array([setup.scan(sc, tr, S, 0, iron_per_cell, 1000 + s, backend) for s in range(blank_seeds)])
    thr = blank.mean() + 3 * blank.std(ddof=1)
    rows = []
    for n in cells:
        res = [setup.scan(sc, tr, S, n, iron_per_cell, s, backend, full=True) for s in range(seeds)]
        vals = np.array([r.iron for r in res])
        det = bool(np.all(vals > thr))
        rows.append({"cells": n, "iron_true_ng": n * iron_per_cell * 1e12,
                     "iron_roi_ng": (vals * 1e12).tolist(),
                     "iron_95_ng": [[r.iron_low * 1e12, r.iron_high * 1e12] for r in res],
                     "cells_recovered": ((vals - blank.mean()) / iron_per_cell).tolist(), "detected": det})
        say(f"  {n:10.3g} cells: ROI iron {np.mean(vals) * 1e12:10.4g} ng (seed 0: 95 % interval "
            f"{res[0].iron_low * 1e12:.4g} .. {res[0].iron_high * 1e12:.4g} ng)  {'detected' if det else 'not detected'}")
    limit = None
    for i in range(len(rows)):
        if all(r["detected"] for r in rows[i:]):
            limit = rows[i]["cells"]
            break
    return {"scanner": setup.scanner, "core_diameter_m": setup.core_diameter, "averages": setup.averages,
            "iron_per_cell_pg": iron_per_cell * 1e15, "seeds": seeds, "blank_seeds": blank_seeds,
            "blank_iron_ng_mean": blank.mean() * 1e12, "blank_iron_ng_sd": blank.std(ddof=1) * 1e12,
            "threshold_ng": thr * 1e12, "detection_limit_cells": limit,
            "detection_limit_iron_ng": None if limit is None else limit * iron_per_cell * 1e12,
            "criterion": "ROI iron > mean + 3 SD of blank scans, in every noise seed, for this and all larger "
                         "cell numbers", "interval": "iron_95_ng: 95 % noise interval of each scan (noise only)",
            "rows": rows}


def plot_titration(result, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.6), layout="constrained")
    x = np.array([r["cells"] for r in result["rows"]])
    y = np.array([np.mean(r["cells_recovered"]) for r in result["rows"]])
    e = np.array([np.std(r["cells_recovered"]) for r in result["rows"]])
    ipc = result["iron_per_cell_pg"] * 1e-15
    det = np.array([r["detected"] for r in result["rows"]])
    ax.errorbar(x[det], np.maximum(y[det], 1), e[det], fmt="o", color="C0", label="detected")
    ax.errorbar(x[~det], np.maximum(y[~det], 1), e[~det], fmt="x", color="C3", label="not detected")
    ax.plot(x, x, "k--", lw=1, label="recovered = true")
    thr_cells = (result["threshold_ng"] - result["blank_iron_ng_mean"]) * 1e-12 / ipc
    ax.axhline(thr_cells, color="C1", lw=1, label="3 SD of blank")
    if result["detection_limit_cells"]:
        ax.axvline(result["detection_limit_cells"], color="C2", lw=1,
                   label=f"detection limit ≈ {result['detection_limit_cells']:.3g} cells")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("true labelled cells")
    ax.set_ylabel("recovered cells (ROI iron − blank) / iron per cell")
    ax.set_title(f"{result['scanner']}, {result['core_diameter_m'] * 1e9:g} nm, {result['iron_per_cell_pg']:g} pg/cell, "
                 f"{result['averages']} averages", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def track(days, cells=3e5, iron_per_cell=10e-15, death_rate=0.02, proliferation_rate=0.0, microglia_retention=0.5,
          seed=0, setup=None, backend="auto"):
    """Longitudinal follow-up of a graft.

    Model (per day): live cells L(t) = L0·e^{(p − d)t}; iron in live cells L0·q·e^{−dt}
    (division splits the label, so proliferation does not change it); a fraction ``retention``
    of the iron of dead cells stays in microglia at the graft, the rest is cleared. MPI sees
    iron_live + iron_microglia. Returns the per-day table.
    """
    for name, v in (("death rate", death_rate), ("proliferation rate", proliferation_rate)):
        check_positive(name, v, allow_zero=True)
    if not 0 <= microglia_retention <= 1:
        raise MPISimError(f"microglia retention must be in 0..1, got {microglia_retention}")
    setup = setup or StudySetup()
    sc, tr, S = setup.prepare(backend)
    rows = []
    for i, t in enumerate(days):
        live = cells * np.exp((proliferation_rate - death_rate) * t)
        iron_live = cells * iron_per_cell * np.exp(-death_rate * t)
        iron_mg = microglia_retention * cells * iron_per_cell * (1 - np.exp(-death_rate * t))
        total = iron_live + iron_mg
        res = setup.scan(sc, tr, S, total / iron_per_cell, iron_per_cell, seed + i, backend, full=True)
        measured = res.iron
        rows.append({"day": float(t), "live_cells": live, "iron_live_ng": iron_live * 1e12,
                     "iron_microglia_ng": iron_mg * 1e12, "iron_true_ng": total * 1e12,
                     "iron_measured_ng": measured * 1e12, "iron_measured_95_ng": [res.iron_low * 1e12,
                                                                                  res.iron_high * 1e12],
                     "apparent_cells": measured / iron_per_cell,
                     "apparent_cells_95": [res.iron_low / iron_per_cell, res.iron_high / iron_per_cell]})
    return {"rows": rows, "cells0": cells, "iron_per_cell_pg": iron_per_cell * 1e15, "death_rate": death_rate,
            "proliferation_rate": proliferation_rate, "microglia_retention": microglia_retention,
            "limits": TRACK_LIMITS}


TRACK_LIMITS = ("MPI measures iron, not cells: iron kept by microglia after cell death reads as cells, so "
                "apparent cell numbers overestimate survival; label dilution by division keeps the total iron, "
                "so proliferation is invisible; only with a known retention fraction can live cells be inferred.")


def plot_track(result, path):
    plt = _plt()
    r = result["rows"]
    d = [x["day"] for x in r]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    ax.plot(d, [x["live_cells"] for x in r], "k-", label="live cells (truth)")
    ax.plot(d, [x["iron_true_ng"] * 1e-12 / (result["iron_per_cell_pg"] * 1e-15) for x in r], "C1--",
            label="iron at graft / iron per cell (truth)")
    ax.plot(d, [x["apparent_cells"] for x in r], "C0o", label="MPI apparent cells (measured)")
    ax.set_xlabel("days after grafting")
    ax.set_ylabel("cells")
    ax.set_ylim(bottom=0)
    ax.set_title(f"death {result['death_rate']:g}/d, proliferation {result['proliferation_rate']:g}/d, "
                 f"microglia retention {result['microglia_retention']:g}", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
