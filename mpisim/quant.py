"""Quantification: iron mass and cell numbers from reconstructed concentrations.

Units: concentrations in mol Fe/L, iron masses in kg (reported in ng or µg), iron per cell in kg
(1 pg = 1e-15 kg). Cells = iron mass / iron per cell — a count of labelled-cell equivalents: iron
from dead cells taken up by microglia still counts (MPI sees iron, not viability).
"""

from dataclasses import dataclass, field, replace

import numpy as np

from . import backend as Bk
from . import constants as C
from . import phantoms as P
from .detection import currie
from .errors import MPISimError, check_positive
from .frames import as_frames
from .grid import Grid
from .operator import JointSystemMatrix, contrast_names
from .reco.amounts import check_disjoint, grow_mask, gtm_amounts, ownership, shape_image, subvoxel_content
from .reco.assemble import assemble
from .reco.reconstruct import reconstruct
from .reco.tracer_correction import (estimate as estimate_tracer, fit_core, known_content, model_matrix,
                                     transfer_function)
from .reco.solve import make_solver
from .units import parse_mass

__all__ = ["Sphere", "Box", "Cylinder", "Everything", "Chambers", "QuantResult", "RoiResult", "quantify", "parse_roi", "roi_total",
           "sphere_mask", "chamber_rois", "iron_mass_map", "cells_map", "t_quantile", "INTERVAL_COVERS",
           "GTM_COVERS", "ESTIMATORS", "roi_weights", "roi_parts", "ROWS_FEW", "quantify_sets",
           "Fiducial", "parse_fiducial", "calibration_line", "crowded_rois", "CROWDED_VOXELS"]


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
    """Totals inside an ROI: iron in kg, its *noise* standard deviation ``iron_sigma`` and its 95 % interval
    [``iron_low``, ``iron_high``] — for the image sum (roi-sum) iron ± t·σ; for the bias-corrected estimator
    (gtm) it also holds the shape error ``bias_sigma``, and after a fiducial calibration the line's
    uncertainty, so it is wider than ± t·σ. Cells (iron / iron per cell) likewise. ``truth``: the simulated
    phantom's iron in the ROI where the file records it; ``critical_level`` and ``detection_limit``: Currie's
    L_C and L_D of this ROI (kg). σ and the interval are NaN without noise realisations."""

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
    bias_sigma: float = 0.0
    estimator: str = "roi-sum"
    truth: float | None = None
    critical_level: float = float("nan")
    detection_limit: float = float("nan")
    contrast: str = ""
    """The contrast (tracer state) of a multi-contrast reconstruction this amount is of; "" otherwise."""

    def as_dict(self):
        """JSON-ready dict (ng, cells, mmol/L); quantities without error bars are null."""
        def num(v):
            return None if v != v else float(v)

        d = {"roi": self.name, "voxels": self.voxels, "iron_ng": num(self.iron * 1e12),
             "iron_sigma_ng": num(self.iron_sigma * 1e12),
             "iron_95_ng": [num(self.iron_low * 1e12), num(self.iron_high * 1e12)],
             "cells": num(self.cells), "cells_sigma": num(self.cells_sigma),
             "cells_95": [num(self.iron_low / self.iron_per_cell), num(self.iron_high / self.iron_per_cell)],
             "bias_sigma_ng": num(self.bias_sigma * 1e12), "estimator": self.estimator,
             "truth_ng": None if self.truth is None else num(self.truth * 1e12),
             "critical_level_ng": num(self.critical_level * 1e12), "detection_limit_ng": num(self.detection_limit * 1e12),
             "detected": None if self.critical_level != self.critical_level else bool(self.iron > self.critical_level)}
        if self.concentration is not None:
            d["concentration_mmol_per_l"] = num(self.concentration * 1e3)
        if self.contrast:
            d["contrast"] = self.contrast
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
    m = np.asarray(mask).ravel(order="F") if np.ndim(mask) == 3 else np.asarray(mask)
    m = m.astype(bool) if m.dtype == bool else m.astype(np.float64)    # bool voxels or partial-voxel weights
    if m.size != grid.size:
        raise MPISimError(f"ROI {name!r} has {m.size} voxels, the image {grid.size}")
    n = int(np.count_nonzero(m))
    if n == 0:
        raise MPISimError(f"ROI {name!r} contains no voxel of the grid")
    per = float(iron_mass_map(1.0, grid.voxel_volume))
    w = m.astype(np.float64)
    iron = float(np.asarray(image, np.float64) @ w * per)
    sig = lo = hi = float("nan")
    if realisations is not None and len(realisations) >= 2:
        totals = np.asarray(realisations, float) @ w * per
        sig = float(np.std(totals, ddof=1))
        k = t_quantile(len(totals))
        lo, hi = iron - k * sig, iron + k * sig
    conc = None
    if chamber_volume:
        conc = iron / C.FE_MOLAR_MASS / (chamber_volume / C.LITRE)
    return RoiResult(name, n, iron, sig, lo, hi, iron / iron_per_cell, sig / iron_per_cell,
                     float(w.sum() * grid.voxel_volume), conc, iron_per_cell)


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

    def weights(self, grid, truth=None):
        """[(name, (N,) fraction of each voxel inside the ball, None)]: partial voxels weighted."""
        if len(self.center) != 3 or not self.radius > 0:
            raise MPISimError(f"ROI {self.name!r}: a sphere needs a centre (x, y, z) in m and a radius > 0 m")
        c, r = [float(v) for v in self.center], float(self.radius)
        dims = [i for i in range(3) if grid.shape[i] > 1]
        lo = [c[i] - r if i in dims else -np.inf for i in range(3)]
        hi = [c[i] + r if i in dims else np.inf for i in range(3)]
        return [(self.name, _covered(self.name, _fraction(grid, self.inside(grid), lo, hi), grid), None)]

    def inside(self, grid):
        """f(x, y, z) → bool (m): inside the ball, on the axes the grid resolves."""
        c, r = [float(v) for v in self.center], float(self.radius)
        dims = [i for i in range(3) if grid.shape[i] > 1]

        def f(x, y, z):
            p = (x, y, z)
            return sum((p[i] - c[i]) ** 2 for i in dims) <= r * r

        return f


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

    def weights(self, grid, truth=None):
        """[(name, (N,) fraction of each voxel inside the box, None)]: partial voxels weighted."""
        if len(self.lower) != 3 or len(self.upper) != 3 or any(a > b for a, b in zip(self.lower, self.upper)):
            raise MPISimError(f"ROI {self.name!r}: a box needs lower ≤ upper corners (x, y, z) in m")
        dims = [i for i in range(3) if grid.shape[i] > 1]
        lo, hi = list(self.lower), list(self.upper)
        if any(hi[i] <= lo[i] for i in dims):
            raise MPISimError(f"ROI {self.name!r}: the box has no volume (lower = upper on a resolved axis)")
        w = _fraction(grid, self.inside(grid), [lo[i] if i in dims else -np.inf for i in range(3)],
                      [hi[i] if i in dims else np.inf for i in range(3)])
        return [(self.name, _covered(self.name, w, grid), None)]

    def inside(self, grid):
        """f(x, y, z) → bool (m): inside the box, on the axes the grid resolves."""
        dims = [i for i in range(3) if grid.shape[i] > 1]
        lo, hi = list(self.lower), list(self.upper)

        def f(x, y, z):
            p = (x, y, z)
            out = np.ones(np.shape(x), bool)
            for i in dims:
                out = out & (p[i] >= lo[i]) & (p[i] <= hi[i])
            return out

        return f


def _covered(name, w, grid):
    """Partial-voxel weights that cover some of the grid, else the ROI lies outside the field of view."""
    if not w.sum() > 0:
        lo = [f"{grid.extent(i)[0] * 1e3:.3g}..{grid.extent(i)[1] * 1e3:.3g}" for i in range(3)]
        raise MPISimError(f"ROI {name!r} lies outside the reconstruction's field of view (x, y, z in mm: "
                          f"{', '.join(lo)})")
    return w


def _fraction(grid, inside, lo, hi, samples=6):
    """(N,) fraction of each voxel inside a shape bounded by [lo, hi] (m), by samples³ points per voxel."""
    lo = [max(a, grid.extent(i)[0] - grid.spacing[i]) for i, a in enumerate(lo)]
    hi = [min(b, grid.extent(i)[1] + grid.spacing[i]) for i, b in enumerate(hi)]
    return grid.flatten(P.supersampled_fill(grid, inside, samples, (lo, hi)))


def roi_parts(roi, grid, truth=None):
    """[(name, weights (N,), volume m³ or None, inside f(x, y, z) → bool or None)] of an ROI object: what
    the bias-corrected estimator needs (the outline as a function where the ROI has one)."""
    base = roi.roi if isinstance(roi, _Named) else roi
    fn = base.inside(grid) if hasattr(base, "inside") else None
    return [(n, w, v, fn) for n, w, v in roi_weights(roi, grid, truth)]


def roi_weights(roi, grid, truth=None):
    """[(name, (N,) weights in [0, 1], volume m³ or None)] of an ROI object: the fraction of each voxel
    inside it (spheres and boxes), else its voxel masks."""
    if hasattr(roi, "weights"):
        return roi.weights(grid, truth)
    if isinstance(roi, _Named):
        return roi_weights(roi.roi, grid, truth)
    return [(n, np.asarray(m, float), v) for n, m, v in roi.masks(grid, truth)]


@dataclass(frozen=True)
class Cylinder:
    """Voxels within ``radius`` (m) of the axis from ``start`` to ``end`` (x, y, z in m), between the flat end
    faces through those points: a needle track, a tube. On a 2D grid the axes it does not resolve are ignored
    (the cylinder projected into the plane); one whose end points coincide is refused."""

    start: tuple
    end: tuple
    radius: float
    name: str = "cylinder"

    def _check(self):
        if len(self.start) != 3 or len(self.end) != 3 or not self.radius > 0:
            raise MPISimError(f"ROI {self.name!r}: a cylinder needs two end points (x, y, z) in m and a radius > 0 m")
        if np.allclose(self.start, self.end, rtol=0, atol=1e-12):
            raise MPISimError(f"ROI {self.name!r}: a cylinder needs two different end points")

    def inside(self, grid):
        """f(x, y, z) → bool (m): within ``radius`` of the segment, on the axes the grid resolves."""
        self._check()
        dims = [i for i in range(3) if grid.shape[i] > 1]
        a, b, r = np.asarray(self.start, float), np.asarray(self.end, float), float(self.radius)
        d = np.array([b[i] - a[i] if i in dims else 0.0 for i in range(3)])
        L2 = float(d @ d)

        def f(x, y, z):
            p = [np.asarray(v, float) - a[i] if i in dims else np.zeros(np.shape(x)) for i, v in enumerate((x, y, z))]
            t = sum(p[i] * d[i] for i in range(3)) / L2 if L2 > 0 else np.zeros(np.shape(x))
            return (sum((p[i] - t * d[i]) ** 2 for i in dims) <= r * r) & (t >= 0) & (t <= 1)

        return f

    def _bounds(self, grid):
        self._check()
        dims = [i for i in range(3) if grid.shape[i] > 1]
        lo = [min(self.start[i], self.end[i]) - self.radius if i in dims else -np.inf for i in range(3)]
        hi = [max(self.start[i], self.end[i]) + self.radius if i in dims else np.inf for i in range(3)]
        return lo, hi

    def masks(self, grid, truth=None):
        inside = self.inside(grid)
        pos = grid.positions()
        return [(self.name, _nonempty(self.name, np.asarray(inside(pos[:, 0], pos[:, 1], pos[:, 2]), bool), grid),
                 None)]

    def weights(self, grid, truth=None):
        """[(name, (N,) fraction of each voxel inside the cylinder, None)]: partial voxels weighted."""
        lo, hi = self._bounds(grid)
        return [(self.name, _covered(self.name, _fraction(grid, self.inside(grid), lo, hi), grid), None)]


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

    def weights(self, grid, truth=None):
        """The chambers' cells as weights: a voxel on the boundary of n cells counts 1/n to each."""
        masks = self.masks(grid, truth)
        share = np.maximum(sum(np.asarray(m, float) for _, m, _ in masks), 1.0)
        return [(n, np.asarray(m, float) / share, v) for n, m, v in masks]


def _nonempty(name, mask, grid):
    if not mask.any():
        lo = [f"{grid.extent(i)[0] * 1e3:.3g}..{grid.extent(i)[1] * 1e3:.3g}" for i in range(3)]
        raise MPISimError(f"ROI {name!r} covers no voxel of the grid (x, y, z in mm: {', '.join(lo)})")
    return mask


def parse_roi(spec):
    """An ROI object from the command line's text, lengths in mm:

    ``[name=]sphere:x,y,z,r`` · ``[name=]box:x0,x1,y0,y1,z0,z1`` ·
    ``[name=]cylinder:x0,y0,z0,x1,y1,z1,r`` (axis from the first point to the second) · ``[name=]all`` · ``chambers`` ·
    ``chambers:NAME``. The Python API takes the objects (:class:`Sphere`, :class:`Box`,
    :class:`Cylinder`, :class:`Everything`, :class:`Chambers`) in metres.
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
    if kind not in ("sphere", "box", "cylinder"):
        raise MPISimError(f"ROI {spec!r}: kind must be sphere, box, cylinder, all or chambers")
    try:
        vals = [float(v) * 1e-3 for v in args.split(",")]
    except ValueError:
        raise MPISimError(f"ROI {spec!r}: values must be numbers in mm") from None
    if kind == "sphere":
        if len(vals) != 4 or vals[3] <= 0:
            raise MPISimError(f"ROI {spec!r}: sphere needs x,y,z,r in mm with r > 0")
        return _Named(Sphere(tuple(vals[:3]), vals[3], name), spec)
    if kind == "cylinder":
        if len(vals) != 7 or vals[6] <= 0:
            raise MPISimError(f"ROI {spec!r}: cylinder needs x0,y0,z0,x1,y1,z1,r in mm (its axis from the first point "
                              f"to the second) with r > 0")
        return _Named(Cylinder(tuple(vals[:3]), tuple(vals[3:6]), vals[6], name), spec)
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
    warnings: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __getitem__(self, i):
        return self.rois[i]

    def __iter__(self):
        return iter(self.rois)

    def __len__(self):
        return len(self.rois)

    def as_dict(self):
        """JSON-ready: the ROIs (:meth:`RoiResult.as_dict`) and the notes."""
        return {"rois": [r.as_dict() for r in self.rois], "calibration_factor": self.calibration_factor,
                "noise_samples": self.noise_samples, "noise_source": self.noise_source, "interval": self.interval,
                "warnings": list(self.warnings), **self.info}


def _roi(r):
    if isinstance(r, str):
        raise MPISimError(f"ROI {r!r}: the Python API takes ROI objects in metres (mpisim.Sphere((x, y, z), r), "
                          f"Box, Everything, Chambers); mpisim.quant.parse_roi reads the command line's mm text")
    if not hasattr(r, "masks"):
        raise MPISimError(f"not an ROI: {r!r}")
    return r


@dataclass(frozen=True)
class Fiducial:
    """A reference sample of known iron in the field of view, as labs put them beside the subject: an ROI
    around it (:class:`Sphere`, :class:`Box`) and its iron in kg. Two or more make a calibration line.

    sample : the reference sample's own outline (a :class:`Sphere` or :class:`Box`), where its iron is: the
    tracer correction (:mod:`mpisim.reco.tracer_correction`) takes it as known content, and runs only when
    every fiducial gives one."""

    roi: object
    iron: float
    sample: object = None

    def __post_init__(self):
        try:
            iron = float(self.iron)
        except (TypeError, ValueError):
            iron = float("nan")
        if not (np.isfinite(iron) and iron > 0):
            raise MPISimError(f"fiducial {getattr(self.roi, 'name', self.roi)!r}: its iron must be > 0 kg, "
                              f"got {self.iron!r}")
        object.__setattr__(self, "iron", iron)
        _roi(self.roi)
        if self.sample is not None and not isinstance(getattr(_roi(self.sample), "roi", self.sample), (Sphere, Box)):
            raise MPISimError(f"fiducial {getattr(self.roi, 'name', self.roi)!r}: its sample outline must be a Sphere "
                              f"or a Box, got {type(self.sample).__name__}")


def parse_fiducial(spec):
    """A :class:`Fiducial` from the command line's ``NAME=SHAPE:…=AMOUNT[,sample=R]`` (lengths in mm, the amount
    with its unit, e.g. ``ref1=sphere:10,0,0,3=5ug,sample=1``: an ROI of 3 mm around a reference sphere of 1 mm
    radius; without ``sample`` no tracer correction, the calibration line alone)."""
    text = str(spec).strip()
    sample_r = None
    head, comma, tail = text.rpartition(",")
    if comma and tail.strip().lower().startswith("sample="):
        text, sample_r = head, tail.strip()[len("sample="):]
    roi_text, sep, amount = text.rpartition("=")
    if not sep or ":" not in roi_text:
        raise MPISimError(f"--fiducial {spec!r}: write NAME=SHAPE:...=AMOUNT[,sample=R], e.g. ref1=sphere:10,0,0,3=5ug,sample=1")
    roi = parse_roi(roi_text)
    sample = None
    if sample_r is not None:
        try:
            r = float(sample_r) * 1e-3
        except ValueError:
            r = float("nan")
        if not (np.isfinite(r) and r > 0):
            raise MPISimError(f"--fiducial {spec!r}: sample=R is the reference sample's radius in mm (> 0), "
                              f"got {sample_r!r}")
        inner = getattr(roi, "roi", roi)                          # parsed text wraps the ROI
        centre = inner.center if isinstance(inner, Sphere) else \
            tuple((np.asarray(inner.lower) + np.asarray(inner.upper)) / 2) if isinstance(inner, Box) else None
        if centre is None:
            raise MPISimError(f"--fiducial {spec!r}: sample=R needs a sphere or box ROI around the sample")
        sample = Sphere(tuple(centre), r, f"{roi.name}-sample")
    return Fiducial(roi, parse_mass(amount, f"--fiducial {spec!r} iron", (1e-18, 1e-3)), sample)


def calibration_line(measured, half, known):
    """The calibration line measured = slope × known through the origin (zero iron reads zero once the
    background is subtracted), from ≥ 2 fiducials (kg), each weighted by its 95 % half-width ``half``.
    Returns (slope, σ of the slope, scatter): the scatter is the spread (standard deviation) of the single
    fiducials' ratios measured/known — how unevenly a tracer or scanner mismatch affects different places
    and amounts, which a new amount carries too; σ of the slope is the larger of its statistical error and
    scatter/√n."""
    m, k = np.asarray(measured, float), np.asarray(known, float)
    r = m / k
    sig = np.asarray(half, float) / 1.959964 / k
    sig = np.where(np.isfinite(sig), np.maximum(sig, 1e-9 * np.abs(r).max()), 1.0)   # no error bars: equal weights
    if not np.all(np.isfinite(np.asarray(half, float))):
        sig = np.ones_like(r)
    w = 1.0 / sig ** 2
    slope = float(np.sum(w * r) / np.sum(w))
    scatter = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    return slope, max(float(1.0 / np.sqrt(np.sum(w))), scatter / np.sqrt(len(r))), scatter


def _calibrate(results, fiducials):
    """Apply the fiducials' calibration line (the last ``len(fiducials)`` results) to the others: the amount
    a / slope, with the slope's σ and the fiducials' scatter propagated into σ and the interval (a prediction
    interval for a new amount). Returns the calibrated results of the user's ROIs and the calibration record."""
    n = len(fiducials)
    pts, rest = results[-n:], results[:-n]
    half = [(r.iron_high - r.iron_low) / 2 for r in pts]
    slope, s_slope, scatter = calibration_line([r.iron for r in pts], half, [f.iron for f in fiducials])
    if not slope > 0:
        raise MPISimError(f"the fiducials read no iron (calibration slope {slope:.3g}): check their ROIs and amounts")
    out = []
    k = t_quantile(n) if n >= 2 else float("inf")   # the scatter rests on n − 1 degrees of freedom
    for r in rest:
        est = r.iron / slope
        h_a = (r.iron_high - r.iron_low) / 2 / slope
        h_line = k * abs(est) * float(np.hypot(s_slope, scatter)) / slope
        h = float(np.hypot(h_a, h_line)) if np.isfinite(h_a) else float("nan")
        conc = None if r.concentration is None else r.concentration / slope
        out.append(RoiResult(r.name, r.voxels, est, r.iron_sigma / slope, est - h, est + h, est / r.iron_per_cell,
                             r.cells_sigma / slope, r.volume, conc, r.iron_per_cell, r.bias_sigma / slope,
                             r.estimator + "+fiducials"))
    record = {"slope": slope, "slope_sigma": s_slope, "scatter": scatter,
              "points": [{"fiducial": r.name, "known_ng": f.iron * 1e12, "measured_ng": r.iron * 1e12,
                          "measured_95_ng": [r.iron_low * 1e12, r.iron_high * 1e12]} for r, f in zip(pts, fiducials)]}
    return out, record


ESTIMATORS = ("auto", "gtm", "roi-sum")
"""``gtm``: ROI amounts corrected through the reconstruction's own resolution (:mod:`mpisim.reco.amounts`),
with intervals that include the shape error; ``roi-sum``: the image summed over the ROI (its amount depends
on the ROI's size: Tikhonov ringing and resolution); ``auto``: gtm when the measurement and the system
matrix are at hand and the reconstruction is linear, else roi-sum (and the output says so)."""

GTM_COVERS = ("the 95 % interval covers the measurement noise propagated through the reconstruction and the "
              "GTM correction, and the shape error of the correction (the reconstruction's resolution and "
              "regularisation bias); not a system matrix made for another tracer or scanner, nor iron per cell")

ROWS_FEW = 500
"""Below this many selected rows the output warns that the amounts rest on little evidence."""


def quantify(reco, rois=None, iron_per_cell=10e-15, frame=0, reference=None, reference_iron=None, *,
             measurement=None, system_matrix=None, empty=None, tf=None, estimator="auto", backend="auto",
             impl="auto", fiducials=(), tracer_correction="auto"):
    """ROI amounts of one reconstructed frame, each with its σ and 95 % interval.

    rois : ROI objects in SI units — :class:`Sphere`, :class:`Box`, :class:`Everything` (the default),
    :class:`Chambers` (one ROI per phantom chamber, reported with its mean concentration).
    iron_per_cell : kg (10 pg = 10e-15 kg). reference, reference_iron : an ROI and its known iron (kg) —
    all results are scaled by known/measured (calibration against a standard, as labs do).
    measurement, system_matrix (, empty, tf) : what the reconstruction was made from (a
    :class:`~mpisim.measurement.Measurement` or frame source, a :class:`~mpisim.operator.SystemMatrix`):
    with them the default estimator corrects each ROI's amount through the reconstruction's own
    resolution (``estimator="gtm"``, :mod:`mpisim.reco.amounts`) and its interval includes that
    correction's shape error; without them the amounts are image sums over the ROIs (``"roi-sum"``),
    whose value depends on the ROI's size, and the result says so. fiducials : :class:`Fiducial` reference
    samples of known iron in the field of view (≥ 2): their measured amounts make a calibration line that
    every amount is put through, its uncertainty propagated into the intervals (``info["calibration"]``);
    it absorbs a tracer or scanner that differs from the system matrix's by a factor. Before it, with the gtm
    estimator, ``tracer_correction="auto"`` fits the sample's spectrum (signal scale, Debye relaxation and, where the
    matrix is the forward model's, the core diameter) anchored by the fiducials' known iron and outline
    (:attr:`Fiducial.sample`) and reconstructs the frame again with it divided out and, for a fitted core, with the
    forward model's rows for that core (:mod:`mpisim.reco.tracer_correction`; ``info["tracer_correction"]``);
    "off" skips it.
    Returns a :class:`QuantResult`.
    """
    return quantify_sets(reco, [rois], iron_per_cell, frame, reference, reference_iron, measurement=measurement,
                         system_matrix=system_matrix, empty=empty, tf=tf, estimator=estimator, backend=backend,
                         impl=impl, fiducials=fiducials, tracer_correction=tracer_correction)[0]


def quantify_sets(reco, roi_sets, iron_per_cell=10e-15, frame=0, reference=None, reference_iron=None, *,
                  measurement=None, system_matrix=None, empty=None, tf=None, estimator="auto", backend="auto",
                  impl="auto", fiducials=(), tracer_correction="auto"):
    """:func:`quantify` for several ways of drawing the ROIs on the same frame (e.g. one ROI at several
    radii): one :class:`QuantResult` per set, each set's ROIs corrected together (they must be disjoint
    within a set, not across sets). The work shared by the sets (the problem, the shape prior, the batch
    of reconstructions) is done once.

    tracer_correction : "auto" (with fiducials and the gtm estimator: the sample's spectrum is fitted,
    anchored by the fiducials, and the frame reconstructed again with it divided out,
    :mod:`mpisim.reco.tracer_correction`), "on" (the same, an error where it cannot run) or "off"."""
    if tracer_correction not in ("auto", "on", "off"):
        raise MPISimError(f"tracer correction must be auto, on or off, got {tracer_correction!r}")
    if reco.unit != "mol/L":
        raise MPISimError(f"reconstruction has no concentration unit ({reco.unit!r}); cannot quantify iron")
    check_positive("iron per cell (kg)", iron_per_cell)
    if not 0 <= frame < reco.num_frames:
        raise MPISimError(f"frame {frame} out of range 0..{reco.num_frames - 1}")
    if estimator not in ESTIMATORS:
        raise MPISimError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if reference is not None and reference_iron is None:
        raise MPISimError("a reference ROI needs its known iron (--reference-iron)")
    if isinstance(system_matrix, (list, tuple, dict)):
        if not reco.contrasts:
            raise MPISimError("several system matrices were given, but the reconstruction has one contrast")
        system_matrix = _joint_for(reco, system_matrix)
    if system_matrix is not None and reco.contrasts and not isinstance(system_matrix, JointSystemMatrix):
        raise MPISimError(f"the reconstruction has {len(reco.contrasts)} contrasts ({', '.join(reco.contrasts)}): "
                          f"give one system matrix per contrast")
    if isinstance(system_matrix, JointSystemMatrix) and not reco.contrasts:
        raise MPISimError("several system matrices were given, but the reconstruction has one contrast")
    if reco.contrasts and (fiducials or reference is not None):
        raise MPISimError("fiducials and references calibrate one contrast; quantify a multi-contrast "
                          "reconstruction without them (or each contrast's own reconstruction)")
    why_not = _gtm_unavailable(reco, measurement, system_matrix)
    if estimator == "gtm" and why_not:
        raise MPISimError(f"estimator gtm: {why_not}")
    fiducials = list(fiducials or ())
    if fiducials and (len(fiducials) < 2 or reference is not None):
        raise MPISimError("a calibration line needs at least two fiducials (one reference: --reference), "
                          f"got {len(fiducials)}" if reference is None else "give fiducials or a reference, not both")
    if any(not isinstance(f, Fiducial) for f in fiducials):
        raise MPISimError("fiducials must be mpisim.quant.Fiducial(roi, iron_kg)")
    if (fiducials or reference is not None) and not all(roi_sets):
        raise MPISimError("name the ROIs to quantify (--roi): the default ROI, the whole image, would hold the "
                          "reference samples too")
    sets = [[_roi(r) for r in (rois or [Everything()])] + [f.roi for f in fiducials] for rois in roi_sets]
    if tracer_correction == "on" and (not fiducials or estimator == "roi-sum" or why_not):
        raise MPISimError("the tracer correction needs fiducials and the gtm estimator (the measurement and the "
                          "system matrix)")
    if estimator == "roi-sum" or why_not:
        note = "" if estimator == "roi-sum" else f"roi-sum, since {why_not}"
        if reco.contrasts:                 # each contrast's image summed over the ROIs
            out = [_joined([_roi_sums(reco.contrast(c), rois, iron_per_cell, frame, None, None, note)
                            for c in reco.contrasts], reco.contrasts) for rois in sets]
        else:
            out = [_roi_sums(reco, rois, iron_per_cell, frame, reference, reference_iron, note) for rois in sets]
    else:
        out = _gtm(reco, sets, iron_per_cell, frame, reference, reference_iron, measurement, system_matrix, empty, tf,
                   backend, impl, fiducials if tracer_correction != "off" else (), tracer_correction == "on")
    return [_with_detection(_with_truth(_with_fiducials(q, fiducials, reference), reco, rois))
            for q, rois in zip(out, sets)]


def _joint_for(reco, matrices):
    """The joint operator of ``matrices`` (a list, or {contrast: matrix}) in the order of the reconstruction's
    contrasts: matrices that name their contrasts (their tracers' states or names) are put in that order, and
    refused when they name others; unnamed ones are taken in the order given."""
    if isinstance(matrices, dict):
        names, mats = list(matrices), list(matrices.values())
    else:
        mats = list(matrices)
        names = list(contrast_names(mats))
    if len(mats) != len(reco.contrasts):
        raise MPISimError(f"the reconstruction has {len(reco.contrasts)} contrasts ({', '.join(reco.contrasts)}): "
                          f"give one system matrix each, got {len(mats)}")
    if sorted(names) == sorted(reco.contrasts):
        mats = [mats[names.index(c)] for c in reco.contrasts]
    elif not all(n.startswith("contrast") for n in names):
        raise MPISimError(f"the system matrices are of {', '.join(names)}, the reconstruction's contrasts "
                          f"{', '.join(reco.contrasts)}: not the matrices it was made with")
    return JointSystemMatrix(mats, reco.contrasts)


def _joined(results, contrasts):
    """One :class:`QuantResult` of a multi-contrast reconstruction from one per contrast (in ``contrasts``'
    order): every ROI once per contrast, tagged with it."""
    rows = [replace(r, contrast=c) for q, c in zip(results, contrasts) for r in q.rois]
    return replace(results[0], rois=rows, info={**results[0].info, "contrasts": list(contrasts)})


def _with_detection(q):
    """Each ROI's critical level L_C and detection limit L_D in the image domain (Currie, α = β = 5 %,
    :func:`mpisim.detection.currie`) from its noise σ, estimated from the reconstruction's R realisations
    (Student t, R − 1 degrees of freedom): the amount is *detected* when it exceeds L_C."""
    if q.noise_samples < 2:
        return q
    rows = []
    for r in q.rois:
        lc, ld = currie(r.iron_sigma, dof=q.noise_samples - 1) if r.iron_sigma > 0 else (float("nan"),) * 2
        rows.append(replace(r, critical_level=lc, detection_limit=ld))
    return replace(q, rois=rows)


def _with_truth(q, reco, rois):
    """Each ROI's true iron beside its amount, where the file carries the phantom (a simulation): for a
    sphere or box ROI on a phantom whose recorded chambers hold its iron (the OpenMPIData concentration
    phantoms), the chambers' iron inside the ROI's outline (:func:`_iron_in_cubes`); otherwise the phantom's
    concentrations on its own grid, weighted by the ROI's partial voxels there (the iron of a partial voxel
    taken as spread over it: exact to within half a phantom voxel of the objects' surfaces)."""
    if reco.contrasts:                    # each contrast's ROIs against the truth of its tracer state
        parts = [_with_truth(replace(q, rois=[r for r in q.rois if r.contrast == c]), reco.contrast(c), rois)
                 for c in reco.contrasts]
        return replace(q, rois=[r for p in parts for r in p.rois])
    t = reco.truth
    if t is None or t.concentration is None or not len(t.size):
        return q
    grid = Grid(tuple(int(v) for v in t.size), tuple(float(v) for v in t.field_of_view),
                tuple(float(v) for v in t.center))
    conc = grid.flatten(np.asarray(t.concentration, float))
    per = float(iron_mass_map(1.0, grid.voxel_volume))
    cubes = _truth_cubes(t, grid, float(conc.sum() * per))
    truths = {}
    for r in rois:
        base = r.roi if isinstance(r, _Named) else r
        if cubes and hasattr(base, "inside"):
            truths[getattr(r, "name", "")] = _iron_in_cubes(cubes, base.inside(reco.grid))
            continue
        try:
            for name, w, _ in roi_weights(r, grid, t):
                truths[name] = float(w @ conc * per)
        except MPISimError:                    # an ROI outside the phantom's grid holds none of its iron
            truths[getattr(r, "name", "")] = 0.0
    return replace(q, rois=[replace(r, truth=truths.get(r.name)) for r in q.rois])


CUBE_POINTS = 48
"""Points per axis on which a chamber's overlap with an ROI is integrated (midpoint rule)."""


def _truth_cubes(t, grid, total):
    """[(lower m (3,), upper m (3,), iron kg)] of the phantom's chambers (cubes of known centre, side and
    concentration) when they hold all of the truth's iron (within 3 %), else []. On an axis the phantom's grid
    does not resolve (a 2D slab) a chamber is cut to the grid, as the phantom was."""
    out = []
    for ch in t.chambers or ():
        if not all(k in ch for k in ("center", "size", "concentration")):
            return []
        c, half = np.asarray(ch["center"], float), float(ch["size"]) / 2
        lo, hi = c - half, c + half
        for i in range(3):
            if grid.shape[i] == 1:
                lo[i], hi[i] = max(lo[i], grid.extent(i)[0]), min(hi[i], grid.extent(i)[1])
        vol = float(np.prod(hi - lo))
        out.append((lo, hi, float(ch["concentration"]) / C.LITRE * vol * C.FE_MOLAR_MASS))
    if not out or not total > 0 or abs(sum(o[2] for o in out) / total - 1) > 0.03:
        return []
    return out


def _iron_in_cubes(cubes, inside):
    """Iron (kg) of the chambers ``cubes`` inside an ROI's outline ``inside`` f(x, y, z) → bool (m): each cube's
    iron × the share of :data:`CUBE_POINTS`³ midpoints inside. The phantom's grid places a cube's iron in its
    partial voxels too, up to half a voxel beyond the faces; the cube's own outline does not, so an ROI drawn on
    the cube holds all of its iron."""
    total = 0.0
    for lo, hi, iron in cubes:
        axes = [lo[i] + (np.arange(CUBE_POINTS) + 0.5) / CUBE_POINTS * (hi[i] - lo[i]) for i in range(3)]
        X, Y, Z = np.meshgrid(*axes, indexing="ij")
        total += iron * float(np.mean(inside(X, Y, Z)))
    return total


def _with_fiducials(q, fiducials, reference=None):
    """The result calibrated by the fiducials (the last ROIs of the set), or said to lack them."""
    if not fiducials:
        if reference is not None:
            return q
        note = ("no fiducials: the amounts carry any difference between the sample's tracer (or scanner) and the "
                "system matrix's, which these intervals cannot bound (place reference samples and give --fiducial)")
        return replace(q, warnings=list(q.warnings) + [note])
    rois, record = _calibrate(q.rois, fiducials)
    interval = (q.interval + "; calibrated by the fiducials' line, its slope's uncertainty and the fiducials' scatter "
                "included (Student t with n − 1 degrees of freedom: use three or more fiducials)")
    return replace(q, rois=rois, calibration_factor=q.calibration_factor / record["slope"], interval=interval,
                   info={**q.info, "calibration": record})


def _gtm_unavailable(reco, measurement, system_matrix):
    """Why the GTM estimator cannot run on this reconstruction, or ""."""
    if measurement is None or system_matrix is None:
        return "the measurement and the system matrix it was reconstructed from are not given"
    if reco.params is None or "sweeps" not in reco.info or "lambda" not in reco.info:
        return "the reconstruction does not record its parameters, λ and sweeps (made by another tool?)"
    if reco.info.get("positivity"):
        return "the reconstruction enforced positivity (not linear); reconstruct with --positive off"
    if reco.params.solver.method != "kaczmarz":
        return "the reconstruction is not Kaczmarz"
    if system_matrix.grid != reco.grid:
        return "the system matrix's grid is not the reconstruction's"
    return ""


def _gtm(reco, sets, ipc, frame, reference, reference_iron, measurement, system_matrix, empty, tf, backend, impl,
         fiducials=(), must_correct=False):
    """The GTM path of :func:`quantify_sets`: sets of parsed ROIs (the reference, when given, last in
    each set) → one :class:`QuantResult` per set; with ``fiducials``, after the tracer correction."""
    grid = reco.grid
    ref = []
    if reference is not None:
        ref = roi_parts(_roi(reference), grid, reco.truth)
        if len(ref) != 1:
            raise MPISimError(f"a reference is one ROI, not {len(ref)} (chambers: give one Sphere or Box)")
    parsed_sets = []
    for rois in sets:
        parsed = [w for r in rois for w in roi_parts(r, grid, reco.truth)] + ref
        check_disjoint(np.array([p[1] for p in parsed]), [p[0] for p in parsed])
        parsed_sets.append(parsed)
    K = max(len(reco.contrasts), 1)
    problem = assemble(as_frames(measurement), system_matrix, reco.params, empty, tf)
    if problem.b.shape[1] != reco.num_frames or problem.A.shape[1] != K * grid.size:
        raise MPISimError(f"the measurement gives {problem.b.shape[1]} frame(s) with these parameters, the "
                          f"reconstruction has {reco.num_frames}: not the measurement it was made from")
    corrected = {}
    if fiducials:
        try:
            reco, problem, frame, corrected = _tracer_corrected(reco, problem, fiducials, frame, measurement,
                                                                system_matrix, empty, tf, backend, impl)
        except MPISimError as e:                 # auto: the line alone, and the output says why
            if must_correct:
                raise
            corrected = {"tracer_correction_skipped": str(e)}
    solver = make_solver(problem, reco.params.solver, Bk.resolve(backend), impl)
    image, noise = (reco.joint[frame], reco.noise_for(frame, joint=True)) if K > 1 else \
        (reco.image[frame], reco.noise_for(frame))
    if problem.b.shape[1] > 1:
        problem.b = problem.b[:, [frame]]
    shape, shape_info = shape_image(problem, image, noise, grid)
    shapes = shape.reshape(K, grid.size)
    if CONTRAST_SHAPE not in ("common", "own"):
        raise MPISimError(f"quant.CONTRAST_SHAPE must be 'common' or 'own', got {CONTRAST_SHAPE!r}")
    if K > 1 and CONTRAST_SHAPE == "common":      # where the iron lies: from all of it, whatever its state
        shapes = np.broadcast_to(shapes.sum(axis=0), shapes.shape)
    content = [subvoxel_content(grid, shapes[0])] * K if K > 1 and CONTRAST_SHAPE == "common" else \
        [subvoxel_content(grid, s) for s in shapes]
    regions = [_joint_regions([_regions(grid, s, parsed, c) for s, c in zip(shapes, content)])
               for parsed in parsed_sets]
    amounts = gtm_amounts(problem, solver, float(reco.info["lambda"]), int(reco.info["sweeps"]), image,
                          shape, regions, noise, region_shape=np.ravel(shapes) if K > 1 else None)
    tq = t_quantile(len(noise)) if noise is not None and len(noise) >= 2 else float("nan")
    out = []
    per = float(iron_mass_map(1.0, grid.voxel_volume))
    for parsed, g, (own, _geo) in zip(parsed_sets, amounts, regions):
        results, iron, ssig = _gtm_results(g, parsed * K, grid, ipc, tq, reference_iron if ref else None)
        k, N = len(parsed), grid.size
        crowded = crowded_rois(parsed, [own[c * k:(c + 1) * k, c * N:(c + 1) * N] for c in range(K)],
                               list(shape.reshape(K, N) * per), iron.reshape(K, k).sum(axis=0), grid)
        if K > 1:
            results = [replace(r, contrast=c) for r, c in zip(results, np.repeat(reco.contrasts, k))]
        info = {"estimator": "gtm", "why": "ROI amounts corrected through the reconstruction's own resolution "
                "(geometric transfer matrix): the image summed over an ROI depends on its size (ringing, resolution)",
                **shape_info, "transfer_condition": g.info["transfer_condition"],
                "outside_rois_ng": float(g.info["outside_rois"] * per * 1e12), "recovery": g.info["recovery"],
                "crowded": crowded, **corrected}
        scale = results[-1].iron / iron[-1] if ref else 1.0
        out.append(QuantResult(results, scale, 0 if noise is None else int(len(noise)),
                               reco.info.get("noise_source", "unknown"), GTM_COVERS if noise is not None else
                               "no error bars for the noise: the reconstruction carries no noise realisations",
                               _warnings(reco, problem, iron, ssig, parsed, grid) + _crowded_note(crowded)
                               + _corrected_note(corrected), info))
    return out


CROWDED_VOXELS = 2
"""How far beyond an ROI's edge :func:`crowded_rois` looks for more iron than the ROI holds: the ROI's voxels grown
this many times by one voxel along each axis (a diamond of this radius in voxels of the reconstruction)."""


def crowded_rois(parsed, own, iron_maps, iron, grid):
    """Names of the ROIs beside more iron than they hold: the shape prior's iron within :data:`CROWDED_VOXELS` voxels
    of an ROI's edge and not owned by it exceeds the ROI's amount ``iron`` (k,) kg (summed over the contrasts).
    ``parsed``: the ROIs as ``roi_parts`` gives them (k); ``own``: one (k, N) array per contrast, each ROI's share of
    each voxel; ``iron_maps``: one (N,) array per contrast, the shape prior's iron in kg per voxel. Such an amount
    carries the neighbour's spill and whatever of the neighbour's signal the system matrix does not model
    (``benchmarks/study_quantitation.py`` prints the share within 10 % for the ROIs this names)."""
    out = []
    for i, (name, w, _vol, _fn) in enumerate(parsed):
        near = np.asarray(w) > 0
        for _ in range(CROWDED_VOXELS):
            near = grow_mask(near, grid)
        beside = sum(float(np.sum(m[near] * (1.0 - np.clip(o[i][near], 0.0, 1.0)))) for o, m in zip(own, iron_maps))
        if beside > max(float(iron[i]), 0.0):
            out.append(name)
    return out


def _crowded_note(crowded):
    """The output's line for :func:`crowded_rois` (none when no ROI is crowded)."""
    if not crowded:
        return []
    return [f"{len(crowded)} ROI(s) beside more iron than they hold, within {CROWDED_VOXELS} voxels of their edge "
            f"({', '.join(crowded[:3])}{'...' if len(crowded) > 3 else ''}): their amounts carry that neighbour's "
            f"spill and model error; draw the ROI where the image separates the two, or read the pair as one"]


def _corrected_note(corrected):
    """The tracer correction's line for the output (none without it)."""
    if not corrected:
        return []
    if "tracer_correction_skipped" in corrected:
        return [f"no tracer correction: {corrected['tracer_correction_skipped']}"]
    out = [f"tracer correction (fitted to the data, anchored by the fiducials): {corrected['tracer_correction_summary']}; "
           f"the frame was reconstructed again with it divided out"]
    if corrected.get("tracer_core_at_bound"):
        out.append("the sample's fitted core lies at the bound of the search (the matrix tracer's ± 10 nm): its tracer "
                   "may differ more than a core size can say; make the system matrix with the tracer you inject")
    if "tracer_core_skipped" in corrected:
        out.append(f"the sample's core size was not fitted: {corrected['tracer_core_skipped']}; a different core is "
                   f"left to the calibration line")
    return out


def _tracer_corrected(reco, problem, fiducials, frame, measurement, system_matrix, empty, tf, backend, impl):
    """The frame reconstructed again, alone, with the sample's spectrum divided out (a transfer function fitted
    to the data, anchored by the fiducials: :mod:`mpisim.reco.tracer_correction`) → (reco, problem, its frame
    index there (0), info). Every fiducial needs its sample's outline (:attr:`Fiducial.sample`)."""
    if any(f.sample is None for f in fiducials):
        raise MPISimError("the fiducials give no sample outline (Fiducial.sample, --fiducial ...,sample=R): the "
                          "known iron has no known shape to anchor the fit")
    grid = reco.grid
    per = float(iron_mass_map(1.0, grid.voxel_volume))
    known, near = known_content(grid, [(roi_weights(f.sample, grid, reco.truth)[0][1], f.iron) for f in fiducials], per)
    single = problem if problem.b.shape[1] == 1 else replace(problem, b=problem.b[:, [frame]])
    freqs = np.asarray(system_matrix.frequencies)
    args = (freqs[problem.kidx], grid, known, near, reco.image[frame], reco.noise_for(frame))
    try:                                       # the sample's core too, where the matrix is the forward model's
        corr, info, tracer = fit_core(single, system_matrix, *args)
    except MPISimError as e:
        corr, info, tracer = None, {"tracer_core_skipped": str(e)}, None
    if corr is None:                           # no core fit: the spectral correction on the stored rows
        corr, fitted = estimate_tracer(single, *args)
        info = {**info, **fitted}
    if tracer is not None:
        system_matrix = model_matrix(system_matrix, tracer)
    frames = as_frames(measurement)
    head = frames.head
    base = tf if tf is not None else head.transfer_function
    tf2 = transfer_function(corr, freqs, system_matrix.bins, base, head.num_rx_channels, head.num_samples // 2 + 1)
    params = reco.params
    if reco.num_frames > 1:                    # only this frame (its block of foreground frames)
        pre = params.preprocessing
        chosen = list(pre.frames) or list(range(int(np.count_nonzero(~np.asarray(head.is_background, bool)))))
        params = replace(params, preprocessing=replace(pre, frames=tuple(
            int(v) for v in chosen[frame * pre.average:(frame + 1) * pre.average])))
    reco2 = reconstruct(measurement, system_matrix, params, empty=empty, tf=tf2, backend=backend, impl=impl)
    problem2 = assemble(frames, system_matrix, reco2.params, empty, tf2)
    return reco2, problem2, 0, {**info, "tracer_correction_summary": corr.summary()}


def _gtm_results(g, parsed, grid, ipc, tq, reference_iron=None):
    """RoiResults of one set from its :class:`~mpisim.reco.amounts.GtmAmounts` (the reference, if any, last:
    everything scaled by its known iron over its amount); also the unscaled iron and shape σ (kg)."""
    per = float(iron_mass_map(1.0, grid.voxel_volume))
    iron = g.amount * per
    nsig = g.noise.std(axis=0, ddof=1) * per if g.noise is not None else np.full(len(iron), np.nan)
    ssig = g.shape_sigma * per
    scale = 1.0
    if reference_iron is not None:
        if not iron[-1] > 0:
            raise MPISimError(f"reference ROI {parsed[-1][0]!r} holds no reconstructed iron")
        scale = reference_iron / iron[-1]
    results = []
    for j, (name, w, vol, _) in enumerate(parsed):
        half = float(np.hypot(tq * nsig[j], 1.959964 * ssig[j])) * scale
        a, ns, ss = iron[j] * scale, nsig[j] * scale, ssig[j] * scale
        conc = a / C.FE_MOLAR_MASS / (vol / C.LITRE) if vol else None
        results.append(RoiResult(name, int(np.count_nonzero(w > 0)), a, ns, a - half, a + half, a / ipc, ns / ipc,
                                 float(w.sum() * grid.voxel_volume), conc, ipc, ss, "gtm"))
    return results, iron, ssig


CONTRAST_SHAPE = "common"
"""Multi-contrast GTM: the shape each ROI's content takes in every contrast — "common": the shape prior of all
the iron (summed over the contrasts), the same in each; "own": each contrast's own part of the prior (the split
of the prior between contrasts is noisier than where the iron lies). Chosen on a tuning family, not the one the
docs report: ``benchmarks/study_multicontrast.py --cases 40 --seed 7 --scanners bruker-2d`` with this constant set
to each printed, for common and own, 61.5 % and 59.6 % of the bound and 73.1 % and 73.1 % of the free amounts
within 15 %, and a 95th-percentile cross-talk of 34.7 % and 46.0 %."""


def _joint_regions(per_contrast):
    """(ownership, geometric) weights over the K contrasts' unknowns (K·k, K·N) from each contrast's (k, N)
    pair: ROI i of contrast c owns its voxels in contrast c's image only (block diagonal). One contrast: as is."""
    if len(per_contrast) == 1:
        return per_contrast[0]
    K = len(per_contrast)
    k, N = per_contrast[0][0].shape
    out = []
    for which in (0, 1):
        W = np.zeros((K * k, K * N))
        for c, pair in enumerate(per_contrast):
            W[c * k:(c + 1) * k, c * N:(c + 1) * N] = pair[which]
        out.append(W)
    return tuple(out)


def _regions(grid, shape, parsed, content=None):
    """(ownership, geometric) (k, N) weights of one set of ROIs (:func:`mpisim.reco.amounts.ownership`; ROIs
    without an outline function, e.g. phantom chambers, own their volume fractions)."""
    geo = np.array([p[1] for p in parsed])
    fns = [p[3] for p in parsed]
    own = geo.copy()
    idx = [i for i, f in enumerate(fns) if f is not None]
    if idx:
        own[idx] = ownership(grid, shape, [fns[i] for i in idx], geo[idx], content=content)
    return own, geo


def _radius_voxels(weights, grid):
    """Equivalent radius of an ROI in voxels (a ball or, on a 2D grid, a disc of its volume)."""
    n = float(np.sum(weights))
    dims = sum(1 for s in grid.shape if s > 1)
    return (3 * n / (4 * np.pi)) ** (1 / 3) if dims == 3 else (n / np.pi) ** 0.5 if dims == 2 else n / 2


def _warnings(reco, problem, iron, shape_sigma, parsed, grid):
    """One line each for what makes the amounts weak (few rows, the sweep cap, a large shape error)."""
    out = []
    rows = int(problem.A.shape[0])
    if rows < ROWS_FEW:
        out.append(f"only {rows} rows passed the SNR test: the amounts rest on little data (intervals are wide)")
    if str(reco.info.get("stopped_because", "")).startswith("max iterations"):
        out.append("the reconstruction's sweeps hit their cap: the image is not converged (the GTM still uses "
                   "the same operator, so the amounts stay consistent, but the image's own ROI sums are not)")
    small = [p[0] for p in parsed if _radius_voxels(p[1], grid) < 1.0]
    if small:
        out.append(f"{len(small)} ROI(s) smaller than a voxel of the reconstruction ({', '.join(small[:3])}"
                   f"{'...' if len(small) > 3 else ''}): their amount is what the data place inside them, and the "
                   f"interval includes how uncertain that placement is")
    big = [i for i, (a, s) in enumerate(zip(iron, shape_sigma)) if s > 0.1 * abs(a)]
    if big:
        out.append(f"{len(big)} ROI(s) carry a shape error above 10 % of their amount (ROI smaller than the "
                   f"resolution, or object at its edge): their intervals are widened by it")
    return out


def _roi_sums(reco, rois, iron_per_cell, frame, reference, reference_iron, note=""):
    """The image summed over each ROI (partial voxels weighted), with the noise realisations' σ."""
    img = reco.image[frame]
    parsed = []
    for r in rois:
        parsed.extend(roi_weights(r, reco.grid, reco.truth))
    noise = reco.noise_for(frame)
    scale = 1.0
    if reference is not None:
        masks = roi_weights(_roi(reference), reco.grid, reco.truth)
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
    notes = ["the amounts are image sums over the ROIs: they carry the reconstruction's resolution and ringing "
             "bias, which these intervals do not include (it depends on the ROI's size)"]
    if note:
        notes.insert(0, f"estimator {note}")
    return QuantResult(results, scale, 0 if noise is None else int(len(noise)),
                       reco.info.get("noise_source", "unknown"), interval, notes,
                       {"estimator": "roi-sum", "why": note or "asked for"})
