"""Cell-tracking studies: detection-limit titration and longitudinal graft follow-up.

Both simulate realistic scans of a graft (a sphere of labelled cells at the FOV centre) on a
scanner preset, reconstruct them with a cached system matrix on a grid that covers every driven
axis of the scanner (:func:`study_grid_shape`) and quantify an ROI around the graft. The detection
limit is Currie's L_D in the image domain (:mod:`mpisim.detection`), beside the data-domain L_D of
``mpisim design``. Iron per cell in kg; cell numbers are labelled-cell equivalents (iron / iron per cell).
"""

from dataclasses import dataclass, field

import numpy as np

import mpisim

from .design import DesignSettings
from .detection import data_domain_limit, expected_ratio, image_domain_limit, rows_limit
from .errors import MPISimError, check_positive
from .particles import cell_label_tracer
from .phantoms import Phantom, graft
from .plot import _plt
from .quant import Sphere, quantify
from .reco import reconstruct
from .reconstruction import RecoParams
from .systemmatrix import CalibrationSettings, build_system_matrix, default_grid

__all__ = ["RECO", "GRID_PLANAR", "GRID_VOLUME", "study_grid_shape", "StudySetup", "titrate", "plot_titration", "track", "track_states", "TRACK_LIMITS", "TRACK_CONTRAST_LIMITS",
           "plot_track"]

RECO = {}
"""Reconstruction settings of the studies: mpisim's defaults (:class:`~mpisim.reconstruction.RecoParams`)."""


GRID_PLANAR = 25
"""Voxels per driven axis of the studies' grid on a 1D or 2D sequence (25 × 25 × 1 on bruker-2d)."""

GRID_VOLUME = 19
"""Voxels per axis of the studies' grid on a sequence that drives all three axes (19³ on bruker-3d)."""


def study_grid_shape(scanner):
    """The studies' default grid shape for ``scanner``: :data:`GRID_VOLUME` voxels on every axis when all
    three are driven, else :data:`GRID_PLANAR` on each driven axis and 1 on the others (a 3D sequence
    is never imaged as one thick layer). It spans the drive FOV × 1.1 (:func:`~mpisim.systemmatrix.default_grid`)."""
    driven = set(mpisim.get_scanner(scanner).driven_axes)
    n = GRID_VOLUME if len(driven) == 3 else GRID_PLANAR
    return tuple(n if i in driven else 1 for i in range(3))


@dataclass
class StudySetup:
    """Scanner, tracer and the reconstruction used by the studies. ``grid``: the system matrix's shape;
    None = :func:`study_grid_shape` of the scanner (every driven axis resolved). Lengths in m."""

    scanner: str = "bruker-2d"
    core_diameter: float = 25e-9
    grid: tuple | None = None
    averages: int = 100
    background_frames: int = 10
    graft_radius: float = 1.0e-3
    roi_radius: float = 8.0e-3
    reco: dict = field(default_factory=lambda: dict(RECO))

    def grid_for(self, sc):
        """The :class:`~mpisim.grid.Grid` of the studies' system matrix on scanner ``sc``."""
        return default_grid(sc, tuple(self.grid) if self.grid is not None else study_grid_shape(sc))

    def prepare(self, backend="auto"):
        sc = mpisim.get_scanner(self.scanner)
        tr = mpisim.Tracer(core_diameter=self.core_diameter)
        S = build_system_matrix(sc, tr, self.grid_for(sc), CalibrationSettings(background_frames=10),
                                backend=backend)
        return sc, tr, S

    def measure(self, sc, tr, cells, iron_per_cell, seed, backend="auto"):
        """A realistic scan (:class:`~mpisim.measurement.Measurement`) of a graft of ``cells`` labelled cells."""
        ph = graft(sc, cells=max(cells, 0.0), iron_per_cell=iron_per_cell, separation=1e-9,
                   graft_radius=self.graft_radius, unlabelled_cells=0)
        st = mpisim.SimulationSettings.realistic(sc, frames=1, background_frames=self.background_frames,
                                                 averages=self.averages, seed=seed)
        return mpisim.simulate(sc, tr, ph, st, backend=backend)

    def scan(self, sc, tr, S, cells, iron_per_cell, seed, backend="auto", full=False, measurement=None):
        """Iron (kg) reconstructed in the ROI around a graft of ``cells`` labelled cells; with
        ``full``, the :class:`~mpisim.quant.RoiResult` (with σ and 95 % interval). ``measurement``: the
        scan :meth:`measure` gives for these cells and seed, when the caller has it already."""

        meas = measurement if measurement is not None else self.measure(sc, tr, cells, iron_per_cell, seed, backend)
        r = reconstruct(meas, S, backend=backend, **self.reco)
        res = quantify(r, [Sphere((0.0, 0.0, 0.0), self.roi_radius, "graft")], iron_per_cell, measurement=meas,
                       system_matrix=S, backend=backend)[0]        # the default estimator, as quantify gives it
        return res if full else res.iron


def titrate(cells, iron_per_cell=10e-15, seeds=3, blank_seeds=8, setup=None, backend="auto", progress=None):
    """Dilution series → detection limit, by Currie's definition in the image domain (:mod:`mpisim.detection`).

    ``blank_seeds`` blank scans (no cells) give σ₀ of the ROI iron: L_C and L_D (α = β = 5 %, Student t
    with blank_seeds − 1 degrees of freedom) of the net ROI iron (ROI iron − mean of the blanks), beside
    their prediction from the reconstructed noise realisations and the data-domain L_D of ``mpisim design``
    (matched filter, position known) with the expected ratio image/data ≥ 1 and where it comes from. The
    old table stays as information: a cell number is "detected" when the ROI iron exceeds mean + 3 SD
    of the blanks in every seed, and ``detection_limit_cells`` is the smallest from which on all larger
    ones are. Returns a dict (ng, cells; the grid used in mm).
    """
    check_positive("iron per cell (kg)", iron_per_cell)
    cells = np.asarray(sorted(float(c) for c in cells))
    if cells.size < 2 or np.any(cells <= 0):
        raise MPISimError("--cells needs at least two positive cell numbers")
    if blank_seeds < 2:
        raise MPISimError("--blank-seeds must be >= 2 (a standard deviation needs two blank scans)")
    setup = setup or StudySetup()
    sc, tr, S = setup.prepare(backend)
    say = progress or (lambda m: None)
    first = setup.measure(sc, tr, 0, iron_per_cell, 1000, backend)   # the first blank, also for the rows' limit
    blanks = [setup.scan(sc, tr, S, 0, iron_per_cell, 1000 + s, backend, full=True,
                         measurement=first if s == 0 else None) for s in range(blank_seeds)]
    blank = np.array([r.iron for r in blanks])
    lim = _currie_limits(setup, sc, tr, S, blanks, first, backend)
    thr = blank.mean() + 3 * blank.std(ddof=1)
    lc = lim["image"]["L_C_ng"] * 1e-12
    rows = []
    for n in cells:
        res = [setup.scan(sc, tr, S, n, iron_per_cell, s, backend, full=True) for s in range(seeds)]
        vals = np.array([r.iron for r in res])
        det = bool(np.all(vals > thr))
        rows.append({"cells": n, "iron_true_ng": n * iron_per_cell * 1e12,
                     "iron_roi_ng": (vals * 1e12).tolist(),
                     "iron_95_ng": [[r.iron_low * 1e12, r.iron_high * 1e12] for r in res],
                     "cells_recovered": ((vals - blank.mean()) / iron_per_cell).tolist(), "detected": det,
                     "above_L_C": [bool(v - blank.mean() > lc) for v in vals]})
        say(f"  {n:10.3g} cells: ROI iron {np.mean(vals) * 1e12:10.4g} ng (seed 0: 95 % interval "
            f"{res[0].iron_low * 1e12:.4g} .. {res[0].iron_high * 1e12:.4g} ng)  above L_C in "
            f"{sum(rows[-1]['above_L_C'])}/{seeds} seeds; {'detected' if det else 'not detected'} in every seed")
    limit = next((rows[i]["cells"] for i in range(len(rows)) if all(r["detected"] for r in rows[i:])), None)
    top = rows[-1]
    lim["recovery"] = float((np.mean(top["iron_roi_ng"]) - blank.mean() * 1e12) / top["iron_true_ng"])
    g = S.grid
    return {"scanner": setup.scanner, "core_diameter_m": setup.core_diameter, "averages": setup.averages,
            "iron_per_cell_pg": iron_per_cell * 1e15, "seeds": seeds, "blank_seeds": blank_seeds,
            "grid": {"shape": list(g.shape), "fov_mm": [float(f) * 1e3 for f in g.fov],
                     "voxel_mm": [float(v) * 1e3 for v in g.spacing]},
            "roi": f"sphere r = {setup.roi_radius * 1e3:g} mm at the centre",
            "blank_iron_ng_mean": blank.mean() * 1e12, "blank_iron_ng_sd": blank.std(ddof=1) * 1e12,
            "L_C_ng": lim["image"]["L_C_ng"], "L_D_ng": lim["image"]["L_D_ng"],
            "L_D_cells": lim["image"]["L_D_ng"] * 1e-12 / iron_per_cell, "L_D_data_ng": lim["data"]["L_D_ng"],
            "limits": lim, "threshold_ng": thr * 1e12, "detection_limit_cells": limit,
            "detection_limit_iron_ng": None if limit is None else limit * iron_per_cell * 1e12,
            "criterion": "information, not the detection limit (that is L_D): ROI iron > mean + 3 SD of blank "
                         "scans, in every noise seed, for this and all larger cell numbers",
            "interval": "iron_95_ng: 95 % noise interval of each scan (noise only)", "rows": rows}


def _currie_limits(setup, sc, tr, S, blanks, first_blank, backend):
    """Currie's limits of a titration (:mod:`mpisim.detection`): image domain measured from the blank
    scans' spread and predicted from their noise realisations, data domain as ``mpisim design`` gives it
    and over the rows the reconstruction uses, and the ratios. A dict in ng."""
    params = RecoParams().replace(**setup.reco)
    iron = [r.iron for r in blanks]
    measured = image_domain_limit(iron)
    sig = np.array([r.iron_sigma for r in blanks])
    predicted = (image_domain_limit(iron, realisation_sigma=sig, samples=params.uncertainty.samples)
                 if np.all(np.isfinite(sig)) and params.uncertainty.samples >= 2 else None)
    data = data_domain_limit(sc, tr, DesignSettings(averages=setup.averages))
    rows = rows_limit(first_blank, S, params)
    out = {"image": measured.as_dict(), "image_predicted": None if predicted is None else predicted.as_dict(),
           "data": data.as_dict(), "data_rows": rows.as_dict(),
           "expected": "image-domain σ₀ / data-domain σ₀ >= 1: a reconstruction cannot beat the matched filter "
                       "that knows the position; the ROI amount over many voxels makes it much larger"}
    if predicted is not None:
        out["ratios"] = expected_ratio(data, rows, predicted, measured)
    return out


def plot_titration(result, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.6), layout="constrained")
    x = np.array([r["cells"] for r in result["rows"]])
    y = np.array([np.mean(r["cells_recovered"]) for r in result["rows"]])
    e = np.array([np.std(r["cells_recovered"]) for r in result["rows"]])
    ipc = result["iron_per_cell_pg"] * 1e-15
    det = np.array([r["detected"] for r in result["rows"]])
    ax.errorbar(x[det], np.maximum(y[det], 1), e[det], fmt="o", color="C0", label="> mean + 3 SD of blanks, every seed")
    ax.errorbar(x[~det], np.maximum(y[~det], 1), e[~det], fmt="x", color="C3", label="not in every seed")
    ax.plot(x, x, "k--", lw=1, label="recovered = true")
    ax.axhline(result["L_C_ng"] * 1e-12 / ipc, color="C1", lw=1, label="critical level L_C (Currie, blanks)")
    ax.axvline(result["L_D_cells"], color="C2", lw=1.5,
               label=f"detection limit L_D ≈ {result['L_D_cells']:.3g} cells (image domain)")
    ax.axvline(result["L_D_data_ng"] * 1e-12 / ipc, color="C7", lw=1, ls=":",
               label=f"L_D data domain (design) ≈ {result['L_D_data_ng'] * 1e-12 / ipc:.3g} cells")
    if result["detection_limit_cells"]:
        ax.axvline(result["detection_limit_cells"], color="C4", lw=1, ls="--",
                   label=f"> mean + 3 SD in every seed from {result['detection_limit_cells']:.3g} cells")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("true labelled cells")
    ax.set_ylabel("recovered cells (ROI iron − blank) / iron per cell")
    shape = "×".join(str(n) for n in result["grid"]["shape"])
    ax.set_title(f"{result['scanner']} ({shape} grid), {result['core_diameter_m'] * 1e9:g} nm, "
                 f"{result['iron_per_cell_pg']:g} pg/cell, {result['averages']} averages", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def track(days, cells=3e5, iron_per_cell=10e-15, death_rate=0.02, proliferation_rate=0.0, microglia_retention=0.5,
          seed=0, setup=None, backend="auto", multi_contrast=False, free_clearance=0.1):
    """Longitudinal follow-up of a graft.

    Model (per day): live cells L(t) = L0·e^{(p − d)t}; iron in live cells L0·q·e^{−dt}
    (division splits the label, so proliferation does not change it); a fraction ``retention``
    of the iron of dead cells stays in microglia at the graft, the rest is cleared. MPI sees
    iron_live + iron_microglia. Returns the per-day table.

    ``multi_contrast``: the graft's iron is in two states (:func:`track_states`) — in cells (live cells and
    microglia: immobilised) and released by dead cells, free in the tissue (mobile) until it is cleared at
    ``free_clearance`` per day — scanned with the cell-labelling tracer (:func:`~mpisim.particles.cell_label_tracer`)
    and reconstructed with one system matrix per state; each row adds the bound and free iron found and the
    viable-cell estimate from the bound contrast (bound iron / iron per cell), an upper bound of the viable
    cells (microglial iron is bound too; equal to them when ``microglia_retention`` is 0).
    """
    for name, v in (("death rate", death_rate), ("proliferation rate", proliferation_rate),
                    ("free-iron clearance rate", free_clearance)):
        check_positive(name, v, allow_zero=True)
    if not 0 <= microglia_retention <= 1:
        raise MPISimError(f"microglia retention must be in 0..1, got {microglia_retention}")
    setup = setup or StudySetup()
    if multi_contrast:
        return _track_contrasts(days, cells, iron_per_cell, death_rate, proliferation_rate, microglia_retention,
                                free_clearance, seed, setup, backend)
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


def track_states(t, iron0, death_rate, microglia_retention, free_clearance):
    """Iron (kg) at the graft ``t`` days after grafting ``iron0`` kg in labelled cells, by state: (in live cells,
    in microglia, free). Dying cells (rate d per day) release their iron; a fraction ρ = ``microglia_retention``
    is taken up by microglia at once (bound), the rest is free and cleared at k = ``free_clearance`` per day:
    F(t) = (1 − ρ) d I0 (e^{−dt} − e^{−kt}) / (k − d) (d I0 t e^{−dt} (1 − ρ) when k = d)."""
    d, k, rho = death_rate, free_clearance, microglia_retention
    live = iron0 * np.exp(-d * t)
    microglia = rho * iron0 * (1 - np.exp(-d * t))
    if abs(k - d) > 1e-12:
        free = (1 - rho) * d * iron0 * (np.exp(-d * t) - np.exp(-k * t)) / (k - d)
    else:
        free = (1 - rho) * d * iron0 * t * np.exp(-d * t)
    return float(live), float(microglia), float(free)


def _track_contrasts(days, cells, ipc, death_rate, proliferation_rate, retention, clearance, seed, setup, backend):
    """:func:`track` with two contrasts: bound (live cells, microglia) and free iron, reconstructed jointly."""
    sc = mpisim.get_scanner(setup.scanner)
    tr = cell_label_tracer()
    grid = setup.grid_for(sc)
    S = [build_system_matrix(sc, tr.in_state(st), grid, CalibrationSettings(background_frames=10), backend=backend)
         for st in ("immobilised", "mobile")]
    rows = []
    for i, t in enumerate(days):
        live_iron, mg_iron, free_iron = track_states(t, cells * ipc, death_rate, retention, clearance)
        bound = live_iron + mg_iron
        ph = graft(sc, cells=(bound + free_iron) / ipc, iron_per_cell=ipc, separation=1e-9,
                   graft_radius=setup.graft_radius, unlabelled_cells=0)
        total = bound + free_iron
        mixed = Phantom.mixed(ph.grid, {"immobilised": ph.concentration * (bound / total if total else 0.0),
                                        "mobile": ph.concentration * (free_iron / total if total else 0.0)}, "graft")
        st = mpisim.SimulationSettings.realistic(sc, frames=1, background_frames=setup.background_frames,
                                                 averages=setup.averages, seed=seed + i)
        meas = mpisim.simulate(sc, tr, mixed, st, backend=backend)
        reco = reconstruct(meas, S, backend=backend, **setup.reco)
        q = quantify(reco, [Sphere((0.0, 0.0, 0.0), setup.roi_radius, "graft")], ipc, measurement=meas,
                     system_matrix=S, backend=backend)
        got = {r.contrast: r for r in q}
        b, f = got["immobilised"], got["mobile"]
        live = cells * np.exp((proliferation_rate - death_rate) * t)
        rows.append({"day": float(t), "live_cells": live, "iron_live_ng": live_iron * 1e12,
                     "iron_microglia_ng": mg_iron * 1e12, "iron_free_ng": free_iron * 1e12,
                     "iron_true_ng": total * 1e12, "iron_measured_ng": (b.iron + f.iron) * 1e12,
                     "iron_measured_95_ng": [float("nan")] * 2,
                     "bound_true_ng": bound * 1e12, "bound_ng": b.iron * 1e12, "bound_95_ng": [b.iron_low * 1e12, b.iron_high * 1e12],
                     "free_ng": f.iron * 1e12, "free_95_ng": [f.iron_low * 1e12, f.iron_high * 1e12],
                     "apparent_cells": (b.iron + f.iron) / ipc, "apparent_cells_95": [float("nan")] * 2,
                     "viable_cells": b.iron / ipc, "viable_cells_95": [b.iron_low / ipc, b.iron_high / ipc]})
    return {"rows": rows, "cells0": cells, "iron_per_cell_pg": ipc * 1e15, "death_rate": death_rate,
            "proliferation_rate": proliferation_rate, "microglia_retention": retention, "free_clearance": clearance,
            "multi_contrast": True, "tracer": tr.to_dict(), "limits": TRACK_CONTRAST_LIMITS}


TRACK_CONTRAST_LIMITS = ("Multi-contrast MPI tells iron held by cells (immobilised: Brown rotation blocked) from free "
                         "iron (mobile), not live graft cells from microglia: iron that microglia took up from dead "
                         "cells is bound too, so the viable-cell estimate (bound iron / iron per cell) is an upper "
                         "bound, equal to the viable cells only when microglia keep none; division keeps the total "
                         "label, so proliferation stays invisible.")


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
    if result.get("multi_contrast"):
        v = np.array([x["viable_cells"] for x in r])
        lo, hi = (np.array([x["viable_cells_95"][j] for x in r]) for j in (0, 1))
        ax.errorbar(d, v, yerr=[v - lo, hi - v], fmt="C2s", capsize=3,
                    label="viable-cell estimate: bound contrast (95 %)")
    ax.set_xlabel("days after grafting")
    ax.set_ylabel("cells")
    ax.set_ylim(bottom=0)
    ax.set_title(f"death {result['death_rate']:g}/d, proliferation {result['proliferation_rate']:g}/d, "
                 f"microglia retention {result['microglia_retention']:g}", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
