"""A guided cell injection as a phantom that changes with time (issue 24, first part): a stereotactic
needle into a target, an infusion of labelled cells, reflux along the needle track, spread, and a leak into a
ventricle — with the true iron in the target, on the track and in the ventricle at every moment.

The model (SI units throughout; times from the start of the infusion):

- the injectate holds ``iron_density`` kg of iron per m³ (cells per µL × iron per cell) and is infused at
  ``rate`` m³/s until ``volume`` is in: V(t) = min(rate·t, volume);
- from ``reflux_onset`` on, a fraction ``reflux_fraction`` of what is infused flows back up the needle track
  instead of into the target, filling a cylinder of the needle's radius from the target towards the entry
  point, up to ``reflux_length``; from ``leak_onset`` on a fraction ``leak_fraction`` of the infusion goes
  into a ventricle (a sphere, ``ventricle``);
- what reaches the target is a ball of the infused volume, its iron spread by diffusion (a Gaussian of
  σ² = 2 D t, ``diffusion`` m²/s) — iron is conserved exactly on any grid.

:meth:`Injection.amounts` gives the three amounts at any time (closed form), :meth:`Injection.phantom` the
concentrations on a grid, and :func:`simulate_series` the frames of a scan of the whole injection: the frames
share the particle response (the measurement is linear in the concentrations, so each voxel of the region
the injection touches is simulated once; a frame costs a product of those responses with that frame's
concentrations), so a series costs about one matrix–vector product per frame.
"""

from dataclasses import asdict, dataclass
import math

import numpy as np

from . import constants as C
from .errors import MPISimError, check_positive
from .grid import Grid
from .phantoms import Phantom, supersampled_fill

__all__ = ["Injection", "injection_preset", "region_grid"]

UL = 1e-9
"""One microlitre in m³."""
FILL_SAMPLES = 4
"""Sub-voxel points per axis of a part's fill; its edge is soft over their spacing (:func:`_soft`)."""


@dataclass(frozen=True)
class Injection:
    """A stereotactic infusion (module docstring). Positions in m (scanner frame), times in s from the start
    of the infusion, volumes in m³, rates in m³/s."""

    target: tuple = (-3.5e-3, 0.0, 0.0)
    entry: tuple = (-3.5e-3, 9.0e-3, 0.0)
    rate: float = 2.0 * UL / 60
    volume: float = 1.0 * UL
    cells_per_ul: float = 1e5
    iron_per_cell: float = 10e-15
    needle_radius: float = 0.15e-3
    reflux_onset: float | None = None
    reflux_fraction: float = 0.3
    reflux_length: float = 4e-3
    leak_onset: float | None = None
    leak_fraction: float = 0.2
    ventricle: tuple = (-1.5e-3, 2.0e-3, 0.0, 0.8e-3)
    diffusion: float = 2e-9

    def __post_init__(self):
        for name in ("rate", "volume", "cells_per_ul", "iron_per_cell", "needle_radius", "reflux_length"):
            check_positive(f"injection {name}", getattr(self, name))
        check_positive("injection diffusion (m²/s)", self.diffusion, allow_zero=True)
        for name in ("reflux_fraction", "leak_fraction"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise MPISimError(f"injection {name} must be in 0..1, got {v}")
        if self.reflux_fraction + self.leak_fraction > 1:
            raise MPISimError("injection reflux_fraction + leak_fraction must not exceed 1")
        for name in ("reflux_onset", "leak_onset"):
            v = getattr(self, name)
            if v is not None:
                check_positive(f"injection {name} (s)", v, allow_zero=True)
        if len(self.ventricle) != 4 or not self.ventricle[3] > 0:
            raise MPISimError("injection ventricle must be (x, y, z, radius) in m, radius > 0")
        if np.linalg.norm(np.subtract(self.entry, self.target)) <= 0:
            raise MPISimError("the needle's entry point must differ from its target")

    @property
    def iron_density(self):
        """Iron per volume of injectate, kg/m³."""
        return self.cells_per_ul * self.iron_per_cell / UL

    @property
    def duration(self):
        """Seconds until the whole volume is in."""
        return self.volume / self.rate

    def _infused(self, t, onset):
        """Volume infused after ``onset`` up to time t (0 when onset is None)."""
        if onset is None:
            return 0.0
        return max(min(self.rate * t, self.volume) - min(self.rate * onset, self.volume), 0.0)

    def amounts(self, t):
        """{"target", "track", "ventricle", "total"}: iron (kg) at time t."""
        total = min(self.rate * max(t, 0.0), self.volume) * self.iron_density
        track = self.reflux_fraction * self._infused(t, self.reflux_onset) * self.iron_density
        leak = self.leak_fraction * self._infused(t, self.leak_onset) * self.iron_density
        return {"target": total - track - leak, "track": track, "ventricle": leak, "total": total}

    def phantom(self, grid, t):
        """The :class:`~mpisim.phantoms.Phantom` on ``grid`` at time t (each part holding exactly its amount)."""
        a = self.amounts(t)
        conc = np.zeros(grid.shape)
        per = C.FE_MOLAR_MASS / C.LITRE                  # kg/m³ of iron per mol/L
        tgt = np.asarray(self.target, float)
        edge = min([s for s, n in zip(grid.spacing, grid.shape) if n > 1] or list(grid.spacing)) / FILL_SAMPLES
        vol = a["target"] / self.iron_density if a["target"] > 0 else 0.0
        if vol > 0:
            r = (3 * vol / (4 * math.pi)) ** (1 / 3)
            spread = math.sqrt(2 * self.diffusion * max(t, 0.0))
            conc += _part(grid, lambda X, Y, Z: _ball(X, Y, Z, tgt, r, edge), a["target"], per, spread,
                          (tgt - r - 4 * spread - grid.spacing, tgt + r + 4 * spread + grid.spacing))
        if a["track"] > 0:
            axis = np.subtract(self.entry, self.target)
            axis = axis / np.linalg.norm(axis)
            top = tgt + axis * self.reflux_length
            conc += _part(grid, lambda X, Y, Z: _cylinder(X, Y, Z, tgt, axis, self.reflux_length, self.needle_radius,
                                                          edge),
                          a["track"], per, 0.0, (np.minimum(tgt, top) - self.needle_radius - grid.spacing,
                                                 np.maximum(tgt, top) + self.needle_radius + grid.spacing))
        if a["ventricle"] > 0:
            c, rv = np.asarray(self.ventricle[:3], float), float(self.ventricle[3])
            conc += _part(grid, lambda X, Y, Z: _ball(X, Y, Z, c, rv, edge), a["ventricle"], per, 0.0,
                          (c - rv - grid.spacing, c + rv + grid.spacing))
        return Phantom(grid, conc, "injection", {"time": float(t), "amounts": a, "injection": self.to_dict()})

    def to_dict(self):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}

    def bounds(self, margin=1e-3):
        """(lower, upper) corners (m) of the box the injection can reach."""
        pts = [np.asarray(self.target, float), np.asarray(self.entry, float)]
        c, rv = np.asarray(self.ventricle[:3], float), float(self.ventricle[3])
        r = (3 * self.volume / (4 * math.pi)) ** (1 / 3) + 4 * math.sqrt(2 * self.diffusion * 2 * self.duration)
        lo = np.min([pts[0] - r, pts[1], c - rv], axis=0) - margin
        hi = np.max([pts[0] + r, pts[1], c + rv], axis=0) + margin
        return lo, hi


def _soft(depth, width):
    """Membership (0..1) of a point ``depth`` m inside a surface (negative: outside), linear across a band of
    ``width`` m centred on it: a part's fill then changes continuously as it grows or moves (a sharp edge
    sampled at sub-voxel points changes in steps, which an image shows as jumps no injection makes)."""
    return np.clip(0.5 + depth / width, 0.0, 1.0)


def _ball(X, Y, Z, c, r, width):
    return _soft(r - np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2), width)


def _cylinder(X, Y, Z, start, axis, length, radius, width):
    d = np.stack(np.broadcast_arrays(X - start[0], Y - start[1], Z - start[2]))
    along = np.tensordot(axis, d, axes=1)
    across = np.sqrt(np.maximum(np.sum(d * d, axis=0) - along ** 2, 0.0))
    return np.minimum(_soft(radius - across, width), _soft(np.minimum(along, length - along), width))


def _part(grid, inside, iron, per, spread, bbox):
    """Concentrations (mol/L) of one part holding ``iron`` kg: its fill fractions on ``grid`` (a part smaller
    than a voxel still fills the voxels it touches in proportion; ``inside`` gives soft memberships,
    :func:`_soft`), blurred by a Gaussian of σ ``spread`` (m)."""
    frac = supersampled_fill(grid, inside, FILL_SAMPLES, bbox)
    if not frac.sum() > 0:                               # smaller than the sub-voxel sampling: its nearest voxel
        centre = (np.asarray(bbox[0]) + np.asarray(bbox[1])) / 2
        frac = np.zeros(grid.shape)
        frac[np.unravel_index(int(np.argmin(((grid.positions() - centre) ** 2).sum(1))), grid.shape, order="F")] = 1
    if spread > 0:
        from scipy.ndimage import gaussian_filter

        sig = [spread / s if n > 1 else 0.0 for s, n in zip(grid.spacing, grid.shape)]
        frac = gaussian_filter(frac, sig, mode="constant")
    return frac * (iron / frac.sum()) / (grid.voxel_volume * per)


def region_grid(scanner, injection, resolution=None):
    """The grid over the box the injection can reach (:meth:`Injection.bounds`), at ``resolution`` m (default
    0.25 mm on a 2D sequence, 1 mm on a 3D one, whose voxel responses are 33 times longer); one slice on
    undriven axes, as the phantoms have."""
    driven = [f > 0 for f in scanner.drive_fov]
    res = resolution or (1e-3 if all(driven) else 0.25e-3)
    lo, hi = injection.bounds()
    shape, fov, centre = [], [], []
    for i in range(3):
        if driven[i]:
            n = max(1, int(math.ceil((hi[i] - lo[i]) / res)))
            shape.append(n)
            fov.append(n * res)
            centre.append((lo[i] + hi[i]) / 2)
        else:
            shape.append(1)
            fov.append(1e-3)
            centre.append(0.0)
    return Grid(tuple(shape), tuple(fov), tuple(centre))


def injection_preset(scanner, **changes):
    """The preset scenario: 1 µL of 1e5 cells/µL (10 pg each: 1 µg of iron) at 2 µL/min into the left striatum
    of the `graft` geometry (x = −3.5 mm) along a needle from +y, reflux starting 12 s in (30 % of the
    infusion up the track) and a leak into the ventricle from 20 s (20 %); ``changes`` override fields."""
    return Injection(**{"reflux_onset": 12.0, "leak_onset": 20.0, **changes})
