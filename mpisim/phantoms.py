"""Phantoms: iron concentration (mol Fe/L) on a grid, with generators for common test objects.

Arrays have shape (nx, ny, nz); positions in m. Every phantom carries its ground truth: the
concentration map, the total iron (kg) and, where cells are modelled, the cells per voxel.
"""

from dataclasses import dataclass, field

import numpy as np

from . import constants as C
from .errors import MPISimError
from .grid import Grid


@dataclass(eq=False)
class Phantom:
    """grid : :class:`Grid`; concentration : (nx, ny, nz) in mol Fe/L; name; meta (free-form)."""

    grid: Grid
    concentration: np.ndarray
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        c = np.asarray(self.concentration, dtype=float)
        if c.shape != self.grid.shape:
            raise MPISimError(f"phantom concentration shape {c.shape} does not match grid {self.grid.shape}")
        if not np.all(np.isfinite(c)):
            raise MPISimError(f"phantom {self.name!r}: concentration contains NaN/Inf")
        if np.any(c < 0):
            raise MPISimError(f"phantom {self.name!r}: negative concentration {c.min():g} mol/L")
        self.concentration = c

    def concentration_vector(self):
        """(size,) concentrations in mol Fe/L, x fastest."""
        return self.grid.flatten(self.concentration)

    @property
    def iron_mass(self):
        """Total iron in kg."""
        return float(self.concentration.sum() * self.grid.voxel_volume / C.LITRE * C.FE_MOLAR_MASS)

    def scaled(self, factor):
        return Phantom(self.grid, self.concentration * factor, self.name, dict(self.meta))

    def __add__(self, other):
        if other.grid != self.grid:
            raise MPISimError("phantoms on different grids cannot be added")
        return Phantom(self.grid, self.concentration + other.concentration, f"{self.name}+{other.name}")


def supersampled_fill(grid, inside, samples=3):
    """Fraction (0..1) of each voxel inside a shape, by ``samples``³ sub-voxel points.

    inside(x, y, z) → bool array, coordinates in m.
    """
    sp = grid.spacing
    offs = (np.arange(samples) + 0.5) / samples - 0.5
    X, Y, Z = np.meshgrid(*(grid.axis(i) for i in range(3)), indexing="ij")
    frac = np.zeros(grid.shape)
    for ox in offs:
        for oy in offs if grid.shape[1] > 1 or True else [0]:
            for oz in offs:
                frac += inside(X + ox * sp[0], Y + oy * sp[1], Z + oz * sp[2])
    return frac / samples**3


def phantom_grid(scanner, resolution=0.5e-3, margin=1.2, thickness=1e-3):
    """A fine grid covering the scanner's drive FOV × ``margin``; one ``thickness`` slice on
    undriven axes (so a 2D sequence gets a thin slab)."""
    fov = np.array(scanner.drive_fov) * margin
    shape = []
    for i in range(3):
        if fov[i] == 0:
            fov[i], n = thickness, 1
        else:
            n = max(1, int(round(fov[i] / resolution)))
        shape.append(n)
    return Grid(tuple(shape), tuple(fov))


def point(scanner, concentration=0.1, size=1e-3, center=(0.0, 0.0, 0.0)):
    """A small cube of side ``size`` (m) at ``center`` (m), ``concentration`` mol Fe/L — one voxel
    of a grid made for it."""
    grid = Grid((1, 1, 1), (size, size, size), tuple(center))
    return Phantom(grid, np.full((1, 1, 1), float(concentration)), "point",
                   {"size": size, "center": list(center)})


def shapes(scanner, concentration=0.05, resolution=0.5e-3):
    """An extended 2D/3D test object: a ring, a bar and a dot inside the drive FOV.

    Ring: radius 6 mm, wall 1.5 mm, centre (−3, 2) mm; bar: 8 × 2 mm at (5, −5) mm; dot: radius
    1.5 mm at (4, 5) mm (x, y), full slab thickness in z. Concentrations: ring ``concentration``,
    bar 0.6×, dot 1.5× (mol Fe/L).
    """
    grid = phantom_grid(scanner, resolution)
    mm = 1e-3

    def ring(x, y, z):
        r = np.hypot(x + 3 * mm, y - 2 * mm)
        return (r > 4.5 * mm) & (r < 6 * mm)

    def bar(x, y, z):
        return (np.abs(x - 5 * mm) < 4 * mm) & (np.abs(y + 5 * mm) < 1 * mm)

    def dot(x, y, z):
        return np.hypot(x - 4 * mm, y - 5 * mm) < 1.5 * mm

    slab = np.abs(np.array(grid.fov[2])) / 2 + 1e-12

    def thick(fn):
        return lambda x, y, z: fn(x, y, z) & (np.abs(z - grid.center[2]) <= max(slab, 3 * mm))

    c = concentration * (supersampled_fill(grid, thick(ring)) + 0.6 * supersampled_fill(grid, thick(bar))
                         + 1.5 * supersampled_fill(grid, thick(dot)))
    return Phantom(grid, c, "shapes", {"concentration": concentration})


PHANTOMS = {"point": point, "shapes": shapes}


def get_phantom(name, scanner, **kw):
    """A phantom by name for ``scanner`` (keyword arguments go to the generator)."""
    if name not in PHANTOMS:
        raise MPISimError(f"unknown phantom {name!r}; choose one of {', '.join(sorted(PHANTOMS))}")
    return PHANTOMS[name](scanner, **kw)
