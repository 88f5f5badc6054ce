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
        for oy in offs:
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
    1.5 mm at (4, 5) mm (x, y); 6 mm thick in z on a 3D grid, the whole slab on a 2D one.
    Concentrations: ring ``concentration``,
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

    half = 3 * mm if grid.shape[2] > 1 else grid.fov[2]   # 6 mm thick in 3D; the whole slab in 2D

    def thick(fn):
        return lambda x, y, z: fn(x, y, z) & (np.abs(z - grid.center[2]) <= half)

    c = concentration * (supersampled_fill(grid, thick(ring)) + 0.6 * supersampled_fill(grid, thick(bar))
                         + 1.5 * supersampled_fill(grid, thick(dot)))
    return Phantom(grid, c, "shapes", {"concentration": concentration})


PHANTOMS = {"point": point, "shapes": shapes}


def get_phantom(name, scanner, **kw):
    """A phantom by name, a .toml spec file or a .npy concentration array (mol Fe/L, placed on the
    scanner's default phantom FOV unless ``fov`` is given) for ``scanner`` (keyword arguments go
    to the generator)."""
    if str(name).endswith(".toml"):
        return from_toml(name, scanner)
    if str(name).endswith(".npy"):
        return from_array(name, kw.get("fov") or phantom_grid(scanner).fov)
    if name not in PHANTOMS:
        raise MPISimError(f"unknown phantom {name!r}; choose one of {', '.join(sorted(PHANTOMS))}")
    return PHANTOMS[name](scanner, **kw)


# --- OpenMPIData phantoms, biological phantoms and user phantoms -------------------------------------

CONCENTRATION_PHANTOM_MMOL = (100.0, 66.6, 44.4, 29.6, 19.7, 13.1, 8.77, 5.85)
"""The eight chamber concentrations (mmol Fe/L) of the OpenMPIData concentration phantom."""


def concentration(scanner, resolution=0.25e-3, spacing=6e-3, size=2e-3):
    """OpenMPIData concentration phantom: eight 2 mm cubes at 100 … 5.85 mmol/L.

    mpisim places the cubes on a 4 × 2 raster in the xy plane with ``spacing`` (m) between centres
    (x = ±0.5, ±1.5 spacing; y = ±0.7 spacing), so each chamber is resolved by a 2D sequence; in a 2D (thin-slab) grid each cube is cut to the slab. ``meta["chambers"]`` lists
    centres (m) and concentrations (mol/L).
    """
    grid = phantom_grid(scanner, resolution)
    xs = (np.arange(4) - 1.5) * spacing
    ys = (np.array([0.5, -0.5])) * spacing * 1.4
    c = np.zeros(grid.shape)
    chambers = []
    k = 0
    for y in ys:
        for x in xs:
            conc = CONCENTRATION_PHANTOM_MMOL[k] * 1e-3
            z = grid.center[2]
            fill = supersampled_fill(grid, lambda X, Y, Z, x=x, y=y, z=z: (np.abs(X - x) <= size / 2) &
                                     (np.abs(Y - y) <= size / 2) & (np.abs(Z - z) <= size / 2), samples=4)
            c += conc * fill
            chambers.append({"center": [float(x), float(y), float(z)], "concentration": conc, "size": size})
            k += 1
    return Phantom(grid, c, "concentration", {"chambers": chambers})


def resolution(scanner, resolution=0.25e-3, concentration=0.05, diameter=1e-3, length=20e-3):
    """OpenMPIData resolution phantom: five Ø1 mm tubes from one origin (−10 mm, 0, 0), along +x
    and opened by 20° and 30° in the xy plane (both sides: 20° up, 30° down) and 10° and 15° out of
    it (towards +z), ``concentration`` mol/L. Out-of-plane tubes mostly leave a 2D slab."""
    grid = phantom_grid(scanner, resolution)
    origin = np.array([-length / 2, 0.0, grid.center[2]])
    dirs = []
    for a_xy, a_z in ((0, 0), (20, 0), (-30, 0), (0, 10), (0, 15)):
        a, b = np.radians(a_xy), np.radians(a_z)
        dirs.append(np.array([np.cos(a) * np.cos(b), np.sin(a) * np.cos(b), np.sin(b)]))

    def inside(X, Y, Z):
        out = np.zeros(X.shape, bool)
        P = np.stack([X - origin[0], Y - origin[1], Z - origin[2]], -1)
        for d in dirs:
            s = P @ d
            perp = np.linalg.norm(P - s[..., None] * d, axis=-1)
            out |= (s >= 0) & (s <= length) & (perp <= diameter / 2)
        return out

    return Phantom(grid, concentration * supersampled_fill(grid, inside), "resolution",
                   {"tubes": [d.tolist() for d in dirs], "origin": origin.tolist()})


def shape(scanner, resolution=0.25e-3, concentration=0.05):
    """OpenMPIData shape phantom: a cone frustum along x, tip radius 1 mm, apex angle 10°, 22 mm
    long (683.9 µL in full), centred on the FOV; ``concentration`` mol/L."""
    grid = phantom_grid(scanner, resolution)
    h, r0, half = 22e-3, 1e-3, np.radians(5.0)
    x0 = -h / 2

    def inside(X, Y, Z):
        s = X - x0
        r = r0 + s * np.tan(half)
        return (s >= 0) & (s <= h) & (np.hypot(Y, Z - grid.center[2]) <= r)

    return Phantom(grid, concentration * supersampled_fill(grid, inside), "shape", {"height": h})


def graft(scanner, cells=3e5, iron_per_cell=10e-15, resolution=0.25e-3, separation=7e-3,
          graft_radius=1.0e-3, unlabelled_cells=3e5):
    """Rat-brain striatal graft: two striata at x = ∓separation/2. The left one receives
    ``cells`` labelled cells (``iron_per_cell`` kg Fe each) in a sphere of ``graft_radius``; the
    right one ``unlabelled_cells`` cells without iron. Ground truth in mol Fe/L and in cells."""
    from . import constants as C

    grid = phantom_grid(scanner, resolution)
    z = grid.center[2]
    left = np.array([-separation / 2, 0.0, z])
    right = np.array([separation / 2, 0.0, z])

    def sphere(c):
        return lambda X, Y, Zc: (X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Zc - c[2]) ** 2 <= graft_radius**2

    frac = supersampled_fill(grid, sphere(left), samples=4)
    if frac.sum() == 0:
        raise MPISimError("graft sphere does not intersect the phantom grid")
    iron = cells * iron_per_cell                                   # kg
    cells_map = cells * frac / frac.sum()
    conc = cells_map * iron_per_cell / C.FE_MOLAR_MASS / (grid.voxel_volume / C.LITRE)
    frac_r = supersampled_fill(grid, sphere(right), samples=4)
    unl = unlabelled_cells * frac_r / max(frac_r.sum(), 1e-30)
    return Phantom(grid, conc, "graft", {
        "cells": float(cells), "iron_per_cell": float(iron_per_cell), "iron": float(iron),
        "labelled_center": left.tolist(), "unlabelled_center": right.tolist(), "radius": graft_radius,
        "cells_map": cells_map, "unlabelled_cells_map": unl})


def tumour_series(scanner, days=(0, 1, 2, 4, 7), max_cells=1e5, homing_time=2.0, iron_per_cell=5e-15,
                  center=(3e-3, 2e-3, 0.0), radius=1.5e-3, resolution=0.25e-3):
    """A tumour homing labelled T cells over days: cells(t) = max_cells·(1 − e^{−t/homing_time})
    in a sphere; returns [(day, Phantom)]. Iron per cell in kg."""
    out = []
    for day in days:
        n = max_cells * (1 - np.exp(-day / homing_time))
        p = graft(scanner, cells=max(n, 0.0), iron_per_cell=iron_per_cell, resolution=resolution,
                  separation=2 * abs(center[0]) or 1e-3, graft_radius=radius, unlabelled_cells=0)
        if center[0] > 0:   # place on the requested side
            p.concentration = p.concentration[::-1].copy()
        p.name = f"tumour-day{day:g}"
        p.meta.update({"day": day, "cells": float(n)})
        out.append((day, p))
    return out


def from_toml(path_or_text, scanner, is_text=False):
    """User phantom from TOML: ``resolution`` (m, optional) and ``[[objects]]`` with ``type`` =
    sphere (center, radius), box (center, size) or cylinder (center, radius, length, axis x|y|z),
    each with ``concentration`` (mol Fe/L) or ``cells`` and ``iron_per_cell`` (kg). Lengths in m."""
    from . import constants as C
    from . import tomlio

    d = tomlio.loads(path_or_text, "phantom TOML") if is_text else tomlio.load(path_or_text)
    grid = phantom_grid(scanner, float(d.get("resolution", 0.25e-3)))
    objs = d.get("objects")
    if not isinstance(objs, list) or not objs:
        raise MPISimError("phantom TOML needs at least one [[objects]] table")
    c = np.zeros(grid.shape)
    cells_total = 0.0
    for i, o in enumerate(objs):
        kind = o.get("type")
        try:
            ctr = np.array(o.get("center", [0, 0, 0]), float)
            if kind == "sphere":
                r = float(o["radius"])
                fn = lambda X, Y, Z, ctr=ctr, r=r: (X - ctr[0]) ** 2 + (Y - ctr[1]) ** 2 + (Z - ctr[2]) ** 2 <= r * r
            elif kind == "box":
                s = np.array(o["size"], float) / 2
                fn = lambda X, Y, Z, ctr=ctr, s=s: (np.abs(X - ctr[0]) <= s[0]) & (np.abs(Y - ctr[1]) <= s[1]) & \
                    (np.abs(Z - ctr[2]) <= s[2])
            elif kind == "cylinder":
                r, L, ax = float(o["radius"]), float(o["length"]), "xyz".index(o.get("axis", "z"))
                def fn(X, Y, Z, ctr=ctr, r=r, L=L, ax=ax):
                    P = [X - ctr[0], Y - ctr[1], Z - ctr[2]]
                    other = [P[j] for j in range(3) if j != ax]
                    return (np.abs(P[ax]) <= L / 2) & (np.hypot(*other) <= r)
            else:
                raise MPISimError(f"phantom object {i + 1}: type must be sphere, box or cylinder, got {kind!r}")
        except (KeyError, ValueError, TypeError) as e:
            raise MPISimError(f"phantom object {i + 1} ({kind}): missing or bad field {e}") from None
        frac = supersampled_fill(grid, fn)
        if frac.sum() == 0:
            raise MPISimError(f"phantom object {i + 1} ({kind}) lies outside the phantom grid")
        if "cells" in o:
            n, ipc = float(o["cells"]), float(o.get("iron_per_cell", 10e-15))
            if n < 0 or ipc <= 0:
                raise MPISimError(f"phantom object {i + 1}: cells must be >= 0 and iron_per_cell > 0")
            c += n * ipc * frac / frac.sum() / C.FE_MOLAR_MASS / (grid.voxel_volume / C.LITRE)
            cells_total += n
        else:
            conc = float(o.get("concentration", -1))
            if conc < 0:
                raise MPISimError(f"phantom object {i + 1}: needs concentration (mol/L) >= 0 or cells")
            c += conc * frac
    return Phantom(grid, c, d.get("name", "user"), {"cells": cells_total})


def from_array(path, fov, center=(0.0, 0.0, 0.0)):
    """User phantom from a .npy array (nx, ny, nz) in mol Fe/L on a grid of ``fov`` (m)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise MPISimError(f"{path}: cannot read a .npy array ({e})") from None
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise MPISimError(f"{path}: phantom array must be 2-D or 3-D, got shape {a.shape}")
    return Phantom(Grid(a.shape, tuple(fov), tuple(center)), a, str(path))


PHANTOMS.update({"concentration": concentration, "resolution": resolution, "shape": shape, "graft": graft})
