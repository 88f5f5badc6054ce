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


@dataclass(frozen=True)
class RoiResult:
    """Totals inside an ROI: iron in kg with its 1σ noise uncertainty, and cells."""

    name: str
    voxels: int
    iron: float
    iron_sigma: float
    cells: float
    cells_sigma: float

    def as_dict(self):
        return {"roi": self.name, "voxels": self.voxels, "iron_ng": self.iron * 1e12,
                "iron_sigma_ng": self.iron_sigma * 1e12, "cells": self.cells, "cells_sigma": self.cells_sigma}


def roi_total(image, grid, mask, iron_per_cell, noise_sigma=0.0, name="roi", background=0.0):
    """Iron and cells in ``mask`` ((nx, ny, nz) bool or flat) of a (N,) image in mol/L.

    ``noise_sigma``: per-voxel standard deviation of the image (mol/L) in a region without iron,
    giving σ_total = noise_sigma·√n·(iron per mol/L per voxel) (independent voxels assumed).
    ``background``: mean image value (mol/L) of an empty region, subtracted per voxel.
    """
    m = np.asarray(mask, bool).ravel(order="F") if np.ndim(mask) == 3 else np.asarray(mask, bool)
    if m.size != grid.size:
        raise MPISimError(f"ROI {name!r} has {m.size} voxels, the image {grid.size}")
    n = int(m.sum())
    if n == 0:
        raise MPISimError(f"ROI {name!r} contains no voxel of the grid")
    per = grid.voxel_volume / C.LITRE * C.FE_MOLAR_MASS
    iron = float((np.asarray(image)[m] - background).sum() * per)
    sig = float(noise_sigma * np.sqrt(n) * per)
    return RoiResult(name, n, iron, sig, iron / iron_per_cell, sig / iron_per_cell)


def sphere_mask(grid, center, radius):
    """(N,) mask of voxel centres within ``radius`` (m) of ``center`` (m); axes with a single
    voxel (the slab of a 2D grid) are ignored."""
    pos = grid.positions()
    d2 = sum((pos[:, i] - center[i]) ** 2 for i in range(3) if grid.shape[i] > 1)
    return np.asarray(d2 <= radius**2, bool)


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
        raise MPISimError(f"ROI {spec!r}: kind must be sphere, box or all")
    if not mask.any():
        lo = [f"{grid.extent(i)[0] * 1e3:.3g}..{grid.extent(i)[1] * 1e3:.3g}" for i in range(3)]
        raise MPISimError(f"ROI {spec!r} lies outside the grid (x, y, z in mm: {', '.join(lo)})")
    return name, mask


def quantify(reco, rois, iron_per_cell, frame=0, reference=None, reference_iron=None):
    """ROI totals of one reconstructed frame.

    rois : list of ROI specs (see :func:`parse_roi`); reference, reference_iron : an ROI spec and
    its known iron (kg) — all results are scaled by known/measured (calibration against a
    standard, as labs do). The per-voxel noise σ is the standard deviation of the image outside
    every ROI (when at least 10 voxels remain there).
    """
    if reco.unit != "mol/L":
        raise MPISimError(f"reconstruction has no concentration unit ({reco.unit!r}); cannot quantify iron")
    check_positive("iron per cell (kg)", iron_per_cell)
    if not 0 <= frame < reco.num_frames:
        raise MPISimError(f"frame {frame} out of range 0..{reco.num_frames - 1}")
    img = reco.image[frame]
    parsed = [parse_roi(r, reco.grid) for r in (rois or ["all"])]
    scale = 1.0
    if reference is not None:
        if reference_iron is None:
            raise MPISimError("a reference ROI needs its known iron (--reference-iron)")
        rname, rmask = parse_roi(reference, reco.grid)
        measured = roi_total(img, reco.grid, rmask, iron_per_cell, name=rname).iron
        if measured <= 0:
            raise MPISimError(f"reference ROI {rname!r} holds no reconstructed iron")
        scale = reference_iron / measured
        parsed.append((rname, rmask))
    outside = np.ones(reco.grid.size, bool)
    for _, m in parsed:
        outside &= ~m
    sigma = float(np.std(img[outside])) if outside.sum() >= 10 else 0.0
    results = [roi_total(img * scale, reco.grid, m, iron_per_cell, sigma * scale, name) for name, m in parsed]
    return results, {"calibration_factor": scale, "noise_sigma_mol_per_l": sigma * scale,
                     "background_voxels": int(outside.sum())}
