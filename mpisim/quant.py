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
