"""Quantification: iron mass and cell numbers from reconstructed concentrations.

Units: concentrations in mol Fe/L, iron masses in kg (reported in ng or µg), iron per cell in kg
(1 pg = 1e-15 kg). Cells = iron mass / iron per cell — a count of labelled-cell equivalents: iron
from dead cells taken up by microglia still counts (MPI sees iron, not viability).
"""

from dataclasses import dataclass, field

import numpy as np

from . import constants as C
from . import phantoms as P
from .errors import MPISimError, check_positive

__all__ = ["Sphere", "Box", "Everything", "Chambers", "QuantResult", "RoiResult", "quantify", "parse_roi", "roi_total",
           "sphere_mask", "chamber_rois", "iron_mass_map", "cells_map", "t_quantile", "INTERVAL_COVERS"]


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
    from scipy.stats import t                 # scipy.stats takes ~0.3 s to import: only when an interval is made

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


# --- ROIs: objects in SI units (the command line's mm strings are parsed into them) -----------------

@dataclass(frozen=True)
class Sphere:
    """Voxels whose centres lie within ``radius`` (m) of ``center`` (x, y, z in m); in a 2D grid (one voxel
    along an axis) that axis is ignored."""

    center: tuple
    radius: float
    name: str = "sphere"

    def masks(self, grid, truth=None):
        if len(self.center) != 3 or not self.radius > 0:
            raise MPISimError(f"ROI {self.name!r}: a sphere needs a centre (x, y, z) in m and a radius > 0 m")
        return [(self.name, _nonempty(self.name, sphere_mask(grid, [float(c) for c in self.center], float(self.radius)),
                                      grid), None)]


@dataclass(frozen=True)
class Box:
    """Voxels whose centres lie in [lower, upper] (x, y, z in m) on every axis the grid resolves."""

    lower: tuple
    upper: tuple
    name: str = "box"

    def masks(self, grid, truth=None):
        if len(self.lower) != 3 or len(self.upper) != 3 or any(a > b for a, b in zip(self.lower, self.upper)):
            raise MPISimError(f"ROI {self.name!r}: a box needs lower ≤ upper corners (x, y, z) in m")
        pos = grid.positions()
        mask = np.ones(grid.size, bool)
        for i in range(3):
            if grid.shape[i] > 1:
                mask &= (pos[:, i] >= self.lower[i]) & (pos[:, i] <= self.upper[i])
        return [(self.name, _nonempty(self.name, mask, grid), None)]


@dataclass(frozen=True)
class Everything:
    """Every voxel of the image."""

    name: str = "all"

    def masks(self, grid, truth=None):
        return [(self.name, np.ones(grid.size, bool), None)]


@dataclass(frozen=True)
class Chambers:
    """One ROI per phantom chamber (:func:`chamber_rois`), reported with its mean concentration.
    ``chambers``: the chambers (dicts with ``label``, ``center`` m, ``volume`` m³), or ``phantom``: the
    documented chambers of a phantom by name (concentration, concentration-2d); neither: the chambers
    the reconstruction's ground truth records."""

    chambers: tuple = ()
    phantom: str = ""

    def masks(self, grid, truth=None):
        if self.chambers:
            return chamber_rois(grid, list(self.chambers))
        if self.phantom:
            table = {"concentration": P.concentration_chambers, "concentration-2d": P.concentration_2d_chambers}
            if self.phantom not in table:
                raise MPISimError(f"ROI 'chambers:{self.phantom}': phantoms with chambers are {', '.join(table)}")
            return chamber_rois(grid, table[self.phantom]())
        if truth is None or not truth.chambers:
            raise MPISimError("ROI 'chambers': the file records no phantom chambers; use chambers:concentration "
                              "(OpenMPIData) or chambers:concentration-2d")
        return chamber_rois(grid, list(truth.chambers))


def _nonempty(name, mask, grid):
    if not mask.any():
        lo = [f"{grid.extent(i)[0] * 1e3:.3g}..{grid.extent(i)[1] * 1e3:.3g}" for i in range(3)]
        raise MPISimError(f"ROI {name!r} covers no voxel of the grid (x, y, z in mm: {', '.join(lo)})")
    return mask


def parse_roi(spec):
    """An ROI object from the command line's text, lengths in mm:

    ``[name=]sphere:x,y,z,r`` · ``[name=]box:x0,x1,y0,y1,z0,z1`` · ``[name=]all`` · ``chambers`` ·
    ``chambers:NAME``. The Python API takes the objects (:class:`Sphere`, :class:`Box`,
    :class:`Everything`, :class:`Chambers`) in metres.
    """
    text = str(spec).strip()
    if text.lower().startswith("chambers"):
        return Chambers(phantom=text.partition(":")[2].strip())
    name, _, body = text.rpartition("=") if "=" in text else ("", "", text)
    kind, _, args = body.partition(":")
    kind = kind.strip().lower()
    name = name or body
    if kind == "all":
        return Everything(name)
    if kind not in ("sphere", "box"):
        raise MPISimError(f"ROI {spec!r}: kind must be sphere, box, all or chambers")
    try:
        vals = [float(v) * 1e-3 for v in args.split(",")]
    except ValueError:
        raise MPISimError(f"ROI {spec!r}: values must be numbers in mm") from None
    if kind == "sphere":
        if len(vals) != 4 or vals[3] <= 0:
            raise MPISimError(f"ROI {spec!r}: sphere needs x,y,z,r in mm with r > 0")
        return _Named(Sphere(tuple(vals[:3]), vals[3], name), spec)
    if len(vals) != 6 or any(vals[2 * i] > vals[2 * i + 1] for i in range(3)):
        raise MPISimError(f"ROI {spec!r}: box needs x0,x1,y0,y1,z0,z1 in mm with x0 <= x1 ...")
    return _Named(Box(tuple(vals[0::2]), tuple(vals[1::2]), name), spec)


@dataclass(frozen=True)
class _Named:
    """An ROI parsed from text: errors quote the user's text."""

    roi: object
    spec: str

    @property
    def name(self):
        return self.roi.name

    def masks(self, grid, truth=None):
        try:
            return self.roi.masks(grid, truth)
        except MPISimError as e:
            if "covers no voxel" in str(e):
                raise MPISimError(str(e).replace(f"ROI {self.roi.name!r}", f"ROI {self.spec!r}", 1)) from None
            raise


@dataclass(frozen=True)
class QuantResult:
    """What :func:`quantify` found: one :class:`RoiResult` per ROI (``rois``), the calibration factor
    applied (1 without a reference), how many noise realisations made the intervals, where the noise
    level came from, and what the intervals cover."""

    rois: list = field(default_factory=list)
    calibration_factor: float = 1.0
    noise_samples: int = 0
    noise_source: str = "unknown"
    interval: str = ""

    def __getitem__(self, i):
        return self.rois[i]

    def __iter__(self):
        return iter(self.rois)

    def __len__(self):
        return len(self.rois)

    def as_dict(self):
        """JSON-ready: the ROIs (:meth:`RoiResult.as_dict`) and the notes."""
        return {"rois": [r.as_dict() for r in self.rois], "calibration_factor": self.calibration_factor,
                "noise_samples": self.noise_samples, "noise_source": self.noise_source, "interval": self.interval}


def _roi(r):
    if isinstance(r, str):
        raise MPISimError(f"ROI {r!r}: the Python API takes ROI objects in metres (mpisim.Sphere((x, y, z), r), "
                          f"Box, Everything, Chambers); mpisim.quant.parse_roi reads the command line's mm text")
    if not hasattr(r, "masks"):
        raise MPISimError(f"not an ROI: {r!r}")
    return r


def quantify(reco, rois=None, iron_per_cell=10e-15, frame=0, reference=None, reference_iron=None):
    """ROI totals of one reconstructed frame, each with its noise σ and 95 % interval.

    rois : ROI objects in SI units — :class:`Sphere`, :class:`Box`, :class:`Everything` (the default),
    :class:`Chambers` (one ROI per phantom chamber, reported with its mean concentration).
    iron_per_cell : kg (10 pg = 10e-15 kg). reference, reference_iron : an ROI and its known iron (kg) —
    all results are scaled by known/measured (calibration against a standard, as labs do).
    Uncertainties come from the reconstruction's noise realisations (:attr:`Reconstruction.noise`),
    never from image pixels elsewhere. Returns a :class:`QuantResult`.
    """
    if reco.unit != "mol/L":
        raise MPISimError(f"reconstruction has no concentration unit ({reco.unit!r}); cannot quantify iron")
    check_positive("iron per cell (kg)", iron_per_cell)
    if not 0 <= frame < reco.num_frames:
        raise MPISimError(f"frame {frame} out of range 0..{reco.num_frames - 1}")
    img = reco.image[frame]
    parsed = []
    for r in (rois or [Everything()]):
        parsed.extend(_roi(r).masks(reco.grid, reco.truth))
    noise = reco.noise_for(frame)
    scale = 1.0
    if reference is not None:
        if reference_iron is None:
            raise MPISimError("a reference ROI needs its known iron (--reference-iron)")
        masks = _roi(reference).masks(reco.grid, reco.truth)
        if len(masks) != 1:
            raise MPISimError(f"a reference is one ROI, not {len(masks)} (chambers: give one Sphere or Box)")
        rname, rmask, _ = masks[0]
        measured = roi_total(img, reco.grid, rmask, iron_per_cell, name=rname).iron
        if measured <= 0:
            raise MPISimError(f"reference ROI {rname!r} holds no reconstructed iron")
        scale = reference_iron / measured
        parsed.append((rname, rmask, None))
    results = [roi_total(img * scale, reco.grid, m, iron_per_cell, None if noise is None else noise * scale, name,
                         vol) for name, m, vol in parsed]
    interval = (INTERVAL_COVERS if noise is not None else
                "no error bars: the reconstruction carries no noise realisations (reconstruct with background frames "
                "or a stated noise density and --uncertainty-samples >= 2)")
    if reference is not None and noise is not None:
        interval += "; the reference's own noise is not propagated into the calibration factor"
    return QuantResult(results, scale, 0 if noise is None else int(len(noise)),
                       reco.info.get("noise_source", "unknown"), interval)
