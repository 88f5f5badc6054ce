"""Quantification: iron mass and cell numbers from reconstructed concentrations.

Units: concentrations in mol Fe/L, iron masses in kg (reported in ng or µg), iron per cell in kg
(1 pg = 1e-15 kg). Cells = iron mass / iron per cell — a count of labelled-cell equivalents: iron
from dead cells taken up by microglia still counts (MPI sees iron, not viability).
"""

from dataclasses import dataclass

import numpy as np

from . import constants as C
from .errors import MPISimError, check_positive


def iron_mass_map(concentration, voxel_volume):
    """Iron mass per voxel in kg from concentrations in mol Fe/L and the voxel volume in m³."""
    return np.asarray(concentration) * voxel_volume / C.LITRE * C.FE_MOLAR_MASS


def cells_map(concentration, voxel_volume, iron_per_cell):
    """Labelled cells per voxel: iron mass / ``iron_per_cell`` (kg)."""
    check_positive("iron per cell (kg)", iron_per_cell)
    return iron_mass_map(concentration, voxel_volume) / iron_per_cell


INTERVAL_COVERS = ("the 95 % interval covers the measurement noise propagated through the reconstruction actually "
                   "used (reconstructed noise realisations); it does not cover model or calibration error "
                   "(system-matrix accuracy, tracer differences between calibration and sample, iron per cell)")


@dataclass(frozen=True)
class RoiResult:
    """Totals inside an ROI: iron in kg with its noise standard deviation and 95 % interval, cells
    (iron / iron per cell) likewise. σ and the interval are NaN when the reconstruction carries no
    noise realisations."""

    name: str
    voxels: int
    iron: float
    iron_sigma: float
    iron_low: float
    iron_high: float
    cells: float
    cells_sigma: float
    volume: float = 0.0
    concentration: float | None = None
    iron_per_cell: float = 1.0

    def as_dict(self):
        """JSON-ready dict (ng, cells, mmol/L); quantities without error bars are null."""
        def num(v):
            return None if v != v else float(v)

        d = {"roi": self.name, "voxels": self.voxels, "iron_ng": num(self.iron * 1e12),
             "iron_sigma_ng": num(self.iron_sigma * 1e12),
             "iron_95_ng": [num(self.iron_low * 1e12), num(self.iron_high * 1e12)],
             "cells": num(self.cells), "cells_sigma": num(self.cells_sigma),
             "cells_95": [num(self.iron_low / self.iron_per_cell), num(self.iron_high / self.iron_per_cell)]}
        if self.concentration is not None:
            d["concentration_mmol_per_l"] = num(self.concentration * 1e3)
        return d


def t_quantile(samples, level=0.95):
    """Two-sided Student-t factor for an interval from ``samples`` realisations (σ estimated from them)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, samples - 1))


def roi_total(image, grid, mask, iron_per_cell, realisations=None, name="roi", chamber_volume=None):
    """Iron and cells in ``mask`` ((nx, ny, nz) bool or flat) of a (N,) image in mol/L.

    ``realisations`` (R, N): reconstructed noise realisations (or bootstrap deviations) of the
    same reconstruction: σ is the standard deviation of their ROI totals and the 95 % interval
    iron ± t₀.₉₇₅,R−1 σ (Student t, since σ is estimated from R samples). It depends on this ROI
    alone, not on which other ROIs are asked for. ``chamber_volume`` (m³): also report the mean
    concentration of a sample of that volume (iron / volume).
    """
    m = np.asarray(mask, bool).ravel(order="F") if np.ndim(mask) == 3 else np.asarray(mask, bool)
    if m.size != grid.size:
        raise MPISimError(f"ROI {name!r} has {m.size} voxels, the image {grid.size}")
    n = int(m.sum())
    if n == 0:
        raise MPISimError(f"ROI {name!r} contains no voxel of the grid")
    per = grid.voxel_volume / C.LITRE * C.FE_MOLAR_MASS
    iron = float(np.asarray(image)[m].sum() * per)
    sig = lo = hi = float("nan")
    if realisations is not None and len(realisations) >= 2:
        totals = np.asarray(realisations, float)[:, m].sum(axis=1) * per
        sig = float(np.std(totals, ddof=1))
        k = t_quantile(len(totals))
        lo, hi = iron - k * sig, iron + k * sig
    conc = None
    if chamber_volume:
        conc = iron / C.FE_MOLAR_MASS / (chamber_volume / C.LITRE)
    return RoiResult(name, n, iron, sig, lo, hi, iron / iron_per_cell, sig / iron_per_cell, n * grid.voxel_volume,
                     conc, iron_per_cell)


def sphere_mask(grid, center, radius):
    """(N,) mask of voxel centres within ``radius`` (m) of ``center`` (m); axes with a single
    voxel (the slab of a 2D grid) are ignored."""
    pos = grid.positions()
    d2 = sum((pos[:, i] - center[i]) ** 2 for i in range(3) if grid.shape[i] > 1)
    return np.asarray(d2 <= radius**2, bool)


def chamber_rois(grid, chambers):
    """One ROI per phantom chamber: the voxels nearer to that chamber's centre than to any other
    (axes scaled by the chambers' spacing, so each ROI is the chamber's cell of the layout), cut
    at the mirror of the nearest neighbour on the outer side. Returns [(label, mask, volume m³)]."""
    pos = grid.positions()
    ctr = np.array([ch["center"] for ch in chambers])
    half = np.zeros(3)
    for i in range(3):                       # half the smallest non-zero spacing between chambers per axis
        d = np.abs(ctr[:, None, i] - ctr[None, :, i])
        d = d[d > 1e-9]
        half[i] = d.min() / 2 if d.size and grid.shape[i] > 1 else np.inf
    out = []
    for ch, c in zip(chambers, ctr):
        m = np.ones(grid.size, bool)
        for i in range(3):
            if np.isfinite(half[i]):
                m &= np.abs(pos[:, i] - c[i]) <= half[i] + 1e-12
        if not m.any():
            raise MPISimError(f"{ch['label']} at {np.round(c * 1e3, 2).tolist()} mm covers no voxel of the grid")
        out.append((ch["label"], m, ch.get("volume")))
    return out


def phantom_chambers(spec, grid, truth=None):
    """Chambers named by an ROI spec: ``chambers`` (those of the phantom recorded in the file) or
    ``chambers:NAME`` (the documented chambers of phantom NAME: concentration, concentration-2d)."""
    from . import phantoms as P

    _, _, name = str(spec).partition(":")
    name = name.strip()
    if not name:
        ch = (truth or {}).get("chambers")
        if not ch:
            raise MPISimError("ROI 'chambers': the file records no phantom chambers; use chambers:concentration "
                              "(OpenMPIData) or chambers:concentration-2d")
        return ch
    table = {"concentration": P.concentration_chambers, "concentration-2d": P.concentration_2d_chambers}
    if name not in table:
        raise MPISimError(f"ROI {spec!r}: phantoms with chambers are {', '.join(table)}")
    return table[name]()


def parse_roi(spec, grid):
    """ROI from text → (name, (N,) bool mask). Lengths in mm:

    ``[name=]sphere:x,y,z,r`` · ``[name=]box:x0,x1,y0,y1,z0,z1`` · ``[name=]all``.
    In a 2D grid (one voxel along an axis) that axis is ignored for spheres.
    """
    text = str(spec).strip()
    name, _, body = text.rpartition("=") if "=" in text else ("", "", text)
    kind, _, args = body.partition(":")
    kind = kind.strip().lower()
    pos = grid.positions()
    name = name or body
    if kind == "all":
        return name, np.ones(grid.size, bool)
    try:
        vals = [float(v) * 1e-3 for v in args.split(",")]
    except ValueError:
        raise MPISimError(f"ROI {spec!r}: values must be numbers in mm") from None
    if kind == "sphere":
        if len(vals) != 4 or vals[3] <= 0:
            raise MPISimError(f"ROI {spec!r}: sphere needs x,y,z,r in mm with r > 0")
        mask = sphere_mask(grid, vals[:3], vals[3])
    elif kind == "box":
        if len(vals) != 6 or any(vals[2 * i] > vals[2 * i + 1] for i in range(3)):
            raise MPISimError(f"ROI {spec!r}: box needs x0,x1,y0,y1,z0,z1 in mm with x0 <= x1 ...")
        mask = np.ones(grid.size, bool)
        for i in range(3):
            if grid.shape[i] > 1:
                mask &= (pos[:, i] >= vals[2 * i]) & (pos[:, i] <= vals[2 * i + 1])
    else:
        raise MPISimError(f"ROI {spec!r}: kind must be sphere, box, all or chambers")
    if not mask.any():
        lo = [f"{grid.extent(i)[0] * 1e3:.3g}..{grid.extent(i)[1] * 1e3:.3g}" for i in range(3)]
        raise MPISimError(f"ROI {spec!r} covers no voxel of the grid (x, y, z in mm: {', '.join(lo)})")
    return name, mask


def quantify(reco, rois, iron_per_cell, frame=0, reference=None, reference_iron=None):
    """ROI totals of one reconstructed frame, each with its noise σ and 95 % interval.

    rois : list of ROI specs (see :func:`parse_roi`; ``chambers`` / ``chambers:NAME`` expand to one
    ROI per phantom chamber, reported with its mean concentration). reference, reference_iron : an
    ROI spec and its known iron (kg) — all results are scaled by known/measured (calibration
    against a standard, as labs do). Uncertainties come from the reconstruction's noise
    realisations (:attr:`Reconstruction.noise`), never from image pixels elsewhere.
    """
    if reco.unit != "mol/L":
        raise MPISimError(f"reconstruction has no concentration unit ({reco.unit!r}); cannot quantify iron")
    check_positive("iron per cell (kg)", iron_per_cell)
    if not 0 <= frame < reco.num_frames:
        raise MPISimError(f"frame {frame} out of range 0..{reco.num_frames - 1}")
    img = reco.image[frame]
    parsed = []
    for r in (rois or ["all"]):
        if str(r).strip().lower().startswith("chambers"):
            truth = reco.meta.get("truth")
            meas = reco.meta.get("measurement")
            if not truth and meas is not None and meas.meta.get("phantom") is not None:   # in memory
                truth = meas.meta["phantom"].meta
            parsed.extend(chamber_rois(reco.grid, phantom_chambers(r, reco.grid, truth)))
        else:
            parsed.append((*parse_roi(r, reco.grid), None))
    noise = reco.noise_for(frame)
    scale = 1.0
    if reference is not None:
        if reference_iron is None:
            raise MPISimError("a reference ROI needs its known iron (--reference-iron)")
        rname, rmask = parse_roi(reference, reco.grid)
        measured = roi_total(img, reco.grid, rmask, iron_per_cell, name=rname).iron
        if measured <= 0:
            raise MPISimError(f"reference ROI {rname!r} holds no reconstructed iron")
        scale = reference_iron / measured
        parsed.append((rname, rmask, None))
    results = [roi_total(img * scale, reco.grid, m, iron_per_cell, None if noise is None else noise * scale, name,
                         vol) for name, m, vol in parsed]
    extra = {"calibration_factor": scale, "noise_samples": 0 if noise is None else int(len(noise)),
             "noise_source": reco.info.get("noise_source", "unknown"),
             "interval": INTERVAL_COVERS if noise is not None else
             "no error bars: the reconstruction carries no noise realisations (reconstruct with background frames "
             "or a stated noise density and --uncertainty-samples >= 2)"}
    if reference is not None and noise is not None:
        extra["interval"] += "; the reference's own noise is not propagated into the calibration factor"
    return results, extra
