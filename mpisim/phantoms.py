"""Phantoms: iron concentration (mol Fe/L) on a grid, with generators for common test objects.

Arrays have shape (nx, ny, nz); positions in m. Every phantom carries its ground truth: the
concentration map, the total iron (kg) and, where cells are modelled, the cells per voxel.
"""

from dataclasses import dataclass, field

import numpy as np

from . import constants as C
from . import tomlio
from .errors import MPISimError
from .particles import STATES
from .grid import Grid

__all__ = ["Phantom", "with_fiducials", "supersampled_fill", "phantom_grid", "point", "shapes", "PHANTOMS", "get_phantom",
           "CONCENTRATION_PHANTOM_MMOL", "CUBE_SIDE", "concentration_chambers", "concentration_2d_chambers",
           "concentration", "concentration_2d", "RESOLUTION_TUBES", "RESOLUTION_SPAN", "resolution_tubes",
           "resolution", "SHAPE_CONE", "shape_cone_volume", "shape", "graft", "tumour_series", "viability", "from_toml",
           "from_array"]


@dataclass(eq=False)
class Phantom:
    """grid : :class:`Grid`; concentration : (nx, ny, nz) in mol Fe/L; name; meta (free-form);
    states : {tracer state: (nx, ny, nz) mol Fe/L} when the iron is in several states (multi-contrast,
    :data:`mpisim.particles.STATES`: "mobile", "immobilised"), their sum being ``concentration``; None when all
    of it is in one state (the tracer's as given). :meth:`mixed` builds one from its states."""

    grid: Grid
    concentration: np.ndarray
    name: str = "custom"
    meta: dict = field(default_factory=dict)
    states: dict | None = None

    @classmethod
    def mixed(cls, grid, states, name="mixed", meta=None):
        """A phantom whose iron is in several tracer states: ``states`` {state: Phantom or (nx, ny, nz) mol Fe/L}."""
        arrays = {k: np.asarray(v.concentration if isinstance(v, Phantom) else v, float) for k, v in states.items()}
        if not arrays:
            raise MPISimError("a mixed phantom needs at least one tracer state")
        return cls(grid, sum(arrays.values()), name, dict(meta or {}), arrays)

    def __post_init__(self):
        if self.states is not None:
            bad = [k for k in self.states if k not in STATES]
            if bad:
                raise MPISimError(f"phantom {self.name!r}: unknown tracer state {bad[0]!r} (use {', '.join(STATES)})")
            for k, v in self.states.items():
                v = np.asarray(v, float)
                if v.shape != self.grid.shape or not np.all(np.isfinite(v)) or np.any(v < 0):
                    raise MPISimError(f"phantom {self.name!r}: state {k!r} must be finite, non-negative "
                                      f"concentrations of shape {self.grid.shape}")
            self.states = {k: np.asarray(v, float) for k, v in self.states.items()}
            if not np.allclose(sum(self.states.values()), self.concentration, rtol=1e-9, atol=0):
                raise MPISimError(f"phantom {self.name!r}: the states' concentrations do not add up to the total")
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
        states = None if self.states is None else {k: v * factor for k, v in self.states.items()}
        return Phantom(self.grid, self.concentration * factor, self.name, dict(self.meta), states)

    def state_concentrations(self, default="mobile"):
        """{state: (nx, ny, nz) mol Fe/L}: the states, or all the iron in ``default``."""
        return dict(self.states) if self.states is not None else {default: self.concentration}

    def __add__(self, other):
        if other.grid != self.grid:
            raise MPISimError("phantoms on different grids cannot be added")
        states = None
        if self.states is not None or other.states is not None:
            states = self.state_concentrations()
            for k, v in other.state_concentrations().items():
                states[k] = states.get(k, 0) + v
        return Phantom(self.grid, self.concentration + other.concentration, f"{self.name}+{other.name}", {}, states)


def with_fiducials(phantom, fiducials):
    """The phantom with reference samples of known iron added, as labs put them in the field of view:
    ``fiducials`` [(center (x, y, z) m, radius m, iron kg)], each a sphere (cut by the slab of a 2D phantom)
    filled uniformly so that it holds exactly ``iron``. Recorded in ``meta["fiducials"]``; in a phantom whose iron
    is in several tracer states the fiducials' iron is mobile (free tracer in its tube). Refuses a sphere
    that holds no voxel of the phantom's grid (outside its field of view)."""
    conc = np.array(phantom.concentration, float)
    before = conc.copy()
    grid = phantom.grid
    recorded = []
    for centre, radius, iron in fiducials:
        c, r = [float(v) for v in centre], float(radius)
        if not (r > 0 and iron > 0):
            raise MPISimError(f"fiducial at {np.round(np.array(c) * 1e3, 3).tolist()} mm: radius and iron must be > 0")
        dims = [i for i in range(3) if grid.shape[i] > 1]      # a 2D slab: the disc, as quant.Sphere reads it
        frac = supersampled_fill(grid, lambda x, y, z, c=c, r=r: sum(((x, y, z)[i] - c[i]) ** 2 for i in dims) <= r * r,
                                 3, ([c[i] - r if i in dims else -np.inf for i in range(3)],
                                     [c[i] + r if i in dims else np.inf for i in range(3)]))
        volume = frac.sum() * grid.voxel_volume
        if not volume > 0:
            raise MPISimError(f"fiducial at {np.round(np.array(c) * 1e3, 3).tolist()} mm lies outside the phantom's "
                              f"field of view")
        conc += frac * iron / C.FE_MOLAR_MASS / (volume / C.LITRE)
        recorded.append({"center": c, "radius": r, "iron": float(iron)})
    meta = {**phantom.meta, "fiducials": list(phantom.meta.get("fiducials", [])) + recorded}
    states = None
    if phantom.states is not None:                 # a multi-contrast phantom: the reference tubes hold free tracer
        states = phantom.state_concentrations()
        states["mobile"] = states.get("mobile", 0) + (conc - before)
    return Phantom(grid, conc, phantom.name if not recorded else f"{phantom.name}+fiducials", meta, states)


def supersampled_fill(grid, inside, samples=3, bbox=None):
    """Fraction (0..1) of each voxel inside a shape, by ``samples``³ sub-voxel points.

    inside(x, y, z) → bool array (or memberships 0..1: a soft edge), coordinates in m. ``bbox`` = ((x0, y0, z0),
    (x1, y1, z1)) in m, when given, bounds the shape: only voxels overlapping it are evaluated (the rest are 0).
    """
    sp = grid.spacing
    offs = (np.arange(samples) + 0.5) / samples - 0.5
    sub = []
    for i in range(3):
        ax = grid.axis(i)
        if bbox is None:
            sub.append(slice(0, grid.shape[i]))
            continue
        lo = np.searchsorted(ax + sp[i] / 2, bbox[0][i], "left")
        hi = np.searchsorted(ax - sp[i] / 2, bbox[1][i], "right")
        sub.append(slice(int(lo), int(max(lo, hi))))
    frac = np.zeros(grid.shape)
    if any(s.stop <= s.start for s in sub):
        return frac
    X, Y, Z = np.meshgrid(*(grid.axis(i)[sub[i]] for i in range(3)), indexing="ij")
    part = np.zeros(X.shape)
    for ox in offs:
        for oy in offs:
            for oz in offs:
                part += inside(X + ox * sp[0], Y + oy * sp[1], Z + oz * sp[2])
    frac[tuple(sub)] = part / samples**3
    return frac


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
"""The eight chamber concentrations (mmol Fe/L) of the OpenMPIData concentration phantom, chambers 1–8."""

CUBE_SIDE = 2e-3
"""Edge of an OpenMPIData concentration-phantom cube in m (8 µL)."""


def concentration_chambers(center=(0.0, 0.0, 0.0)):
    """The eight chambers of the OpenMPIData concentration phantom as built.

    Source: OpenMPIData.jl ``docs/src/phantoms.md`` and the CAD mesh ``Phantom2_Concentration.STL``
    (checked by ``tests/test_phantom_meshes.py``): 2 mm cubes (8 µL) whose centres lie 12 mm apart in
    x and y and 6 mm apart in z, i.e. at (±6, ±6, ±3) mm about ``center`` (m). Chambers 1–4 form the
    upper layer (+z), starting front left (+x, +y) and counting clockwise seen from above (+x+y,
    +x−y, −x−y, −x+y); chambers 5–8 the lower layer (−z) in the same order. Returns a list of dicts
    with ``label``, ``center`` (m), ``size`` (m), ``volume`` (m³) and ``concentration`` (mol Fe/L).
    """
    c0 = np.asarray(center, float)
    corners = [(1, 1), (1, -1), (-1, -1), (-1, 1)]
    out = []
    for k in range(8):
        sx, sy = corners[k % 4]
        sz = 1 if k < 4 else -1
        ctr = c0 + np.array([sx * 6e-3, sy * 6e-3, sz * 3e-3])
        out.append({"label": f"chamber {k + 1}", "center": ctr.tolist(), "size": CUBE_SIDE,
                    "volume": CUBE_SIDE**3, "concentration": CONCENTRATION_PHANTOM_MMOL[k] * 1e-3})
    return out


def concentration_2d_chambers(center=(0.0, 0.0, 0.0), spacing=6e-3):
    """Chambers of the 2D teaching raster (**not** the OpenMPIData phantom): the eight OpenMPIData
    concentrations in 2 mm cubes on a 4 × 2 raster in the plane z = ``center[2]``, ``spacing`` (m)
    apart in x and 1.4 × ``spacing`` in y, chamber 1 at (−1.5, +0.7) × spacing, numbered along x then
    down in y, so that a 2D sequence images all of them in its slice."""
    c0 = np.asarray(center, float)
    out = []
    k = 0
    for y in (0.7 * spacing, -0.7 * spacing):
        for x in (np.arange(4) - 1.5) * spacing:
            ctr = c0 + np.array([x, y, 0.0])
            out.append({"label": f"chamber {k + 1}", "center": ctr.tolist(), "size": CUBE_SIDE,
                        "volume": CUBE_SIDE**3, "concentration": CONCENTRATION_PHANTOM_MMOL[k] * 1e-3})
            k += 1
    return out


def _cube_phantom(scanner, chambers, name, resolution, source):
    grid = phantom_grid(scanner, resolution)
    c = np.zeros(grid.shape)
    ndim2 = grid.shape[2] == 1
    chambers = [dict(ch) for ch in chambers]
    for ch in chambers:
        x, y, z = ch["center"]
        half = ch["size"] / 2
        if ndim2:   # a 2D (1D) sequence images a slab (column): keep the cube's part inside it
            y = grid.center[1] if grid.shape[1] == 1 else y
            z = grid.center[2]
            ch["center"] = [x, y, z]
            ch["volume"] = float(np.prod([ch["size"] if grid.shape[i] > 1 else min(ch["size"], grid.fov[i])
                                          for i in range(3)]))
        elif abs(z - grid.center[2]) + half > grid.fov[2] / 2:
            raise MPISimError(f"phantom {name!r}: {ch['label']} at z = {z * 1e3:g} mm lies outside the "
                              f"phantom grid ({grid.fov[2] * 1e3:g} mm thick)")
        fill = supersampled_fill(grid, lambda X, Y, Z, x=x, y=y, z=z: (np.abs(X - x) <= half) &
                                 (np.abs(Y - y) <= half) & (np.abs(Z - z) <= half), samples=4,
                                 bbox=(np.array([x, y, z]) - half, np.array([x, y, z]) + half))
        c += ch["concentration"] * fill
    return Phantom(grid, c, name, {"chambers": chambers, "source": source})


def concentration(scanner, resolution=0.25e-3):
    """OpenMPIData concentration phantom as built: eight 2 mm cubes (8 µL) at (±6, ±6, ±3) mm,
    100 … 5.85 mmol/L, numbered as in :func:`concentration_chambers` (``meta["chambers"]``).

    Source: OpenMPIData.jl ``docs/src/phantoms.md`` (geometry, numbering, concentrations) and its
    CAD mesh (positions checked in the tests). Needs a 3D sequence: the cubes at z = ±3 mm lie outside
    the 1 mm imaging slab of a 2D sequence; use ``concentration-2d`` there.
    """
    if phantom_grid(scanner, resolution).shape[2] == 1:
        raise MPISimError("the OpenMPIData concentration phantom has its chambers at z = ±3 mm, outside the "
                          "1 mm slab of a 2D sequence; use the phantom 'concentration-2d' (a 2D raster of the "
                          "same chambers, not OpenMPIData) or a 3D scanner")
    return _cube_phantom(scanner, concentration_chambers(), "concentration", resolution,
                         "OpenMPIData concentration phantom (OpenMPIData.jl docs/src/phantoms.md)")


def concentration_2d(scanner, resolution=0.25e-3, spacing=6e-3):
    """2D teaching version of the concentration phantom — **not the OpenMPIData phantom**: the same
    eight chambers (2 mm cubes, 100 … 5.85 mmol/L) on the 4 × 2 raster of
    :func:`concentration_2d_chambers` in the imaging plane, cut to the slab on a 2D grid."""
    return _cube_phantom(scanner, concentration_2d_chambers(spacing=spacing), "concentration-2d", resolution,
                         "mpisim 2D raster of the OpenMPIData concentrations (not an OpenMPIData phantom)")


RESOLUTION_TUBES = ((0.0, 0.0), (20.0, 0.0), (-30.0, 0.0), (0.0, 15.0), (0.0, -10.0))
"""Tube directions of the resolution phantom: (angle towards +x in the xy plane, angle towards +z in
the yz plane) in degrees, each tube leaving the common origin along +y."""


RESOLUTION_SPAN = 20.96e-3
"""Length in y (m) of the resolution phantom's Ø 1 mm bores, from their common origin (CAD mesh)."""


def resolution_tubes(origin=(0.0, -RESOLUTION_SPAN / 2, 0.0), y_extent=RESOLUTION_SPAN):
    """Axes of the five Ø 1 mm tubes of the OpenMPIData resolution phantom: list of (start (3,) m,
    unit direction (3,), length m). All start at ``origin`` and run along +y until they have covered
    ``y_extent`` (m) in y, tilted by :data:`RESOLUTION_TUBES` (20° and 30° to either side in xy,
    15° and 10° to either side in yz).

    Source: OpenMPIData.jl ``docs/src/phantoms.md`` (five tubes from one origin, 10°/15° in YZ and
    20°/30° in XY) and the CAD mesh ``Phantom1_Resolution.STL`` (tube axis along y, which side each
    tilt goes, 20.96 mm span of the bores; checked by ``tests/test_phantom_meshes.py``).
    """
    out = []
    o = np.asarray(origin, float)
    for a_xy, a_yz in RESOLUTION_TUBES:
        a, b = np.radians(a_xy), np.radians(a_yz)
        d = np.array([np.tan(a), 1.0, np.tan(b)])
        d /= np.linalg.norm(d)
        out.append((o, d, y_extent / d[1]))
    return out


def resolution(scanner, resolution=0.25e-3, concentration=0.05, diameter=1e-3):
    """OpenMPIData resolution phantom: five tubes of ``concentration`` mol/L (50 mmol/L Perimag in the
    original) from one origin, laid out as in :func:`resolution_tubes` and centred on the FOV in y.
    As in the CAD mesh, every tube is a Ø ``diameter`` disc in each plane y = const (the bores are
    drilled along y and sheared sideways), so each holds π (d/2)² of tracer per metre of y. The
    filling channel at the origin is not modelled. On a 2D grid only what crosses the slab remains."""
    grid = phantom_grid(scanner, resolution)
    tubes = resolution_tubes(origin=(0.0, -RESOLUTION_SPAN / 2, grid.center[2]))

    fill = np.zeros(grid.shape)
    for o, d, length in tubes:
        end = o + length * d

        def tube(X, Y, Z, o=o, d=d, span=length * d[1]):
            sy = Y - o[1]                              # distance along y from the origin
            ax, az = o[0] + sy * d[0] / d[1], o[2] + sy * d[2] / d[1]
            return (sy >= 0) & (sy <= span) & (np.hypot(X - ax, Z - az) <= diameter / 2)

        box = (np.minimum(o, end) - diameter, np.maximum(o, end) + diameter)
        fill = np.maximum(fill, supersampled_fill(grid, tube, samples=6, bbox=box))   # tubes meet at the origin
    return Phantom(grid, concentration * fill, "resolution",
                   {"tubes": [{"origin": o.tolist(), "direction": d.tolist(), "length": float(L)} for o, d, L in tubes],
                    "diameter": diameter,
                    "source": "OpenMPIData resolution phantom (OpenMPIData.jl docs/src/phantoms.md, CAD mesh)"})


SHAPE_CONE = {"height": 22e-3, "tip_radius": 1e-3, "half_angle_deg": 10.0}
"""The shape phantom's cone frustum: 22 mm high, 1 mm tip radius, 10° between axis and wall
(683.9 µL, as documented; a 5° half-angle would give 288 µL)."""


def shape_cone_volume():
    """Volume (m³) of the shape phantom's frustum: π h (r0² + r0 r1 + r1²)/3."""
    h, r0 = SHAPE_CONE["height"], SHAPE_CONE["tip_radius"]
    r1 = r0 + h * np.tan(np.radians(SHAPE_CONE["half_angle_deg"]))
    return float(np.pi * h * (r0 * r0 + r0 * r1 + r1 * r1) / 3)


def shape(scanner, resolution=0.25e-3, concentration=0.05):
    """OpenMPIData shape phantom: a cone frustum along x, 1 mm tip radius at +x (the robot-mount
    side), 10° half-angle, 22 mm high (683.9 µL), centred on the FOV; ``concentration`` mol/L
    (50 mmol/L Perimag in the original). A grid smaller than the cone clips it.

    Source: OpenMPIData.jl ``docs/src/phantoms.md`` and the CAD mesh ``Phantom3_Shape.STL`` (tip
    towards the mount, volume; checked in the tests)."""
    grid = phantom_grid(scanner, resolution)
    h, r0, half = SHAPE_CONE["height"], SHAPE_CONE["tip_radius"], np.radians(SHAPE_CONE["half_angle_deg"])
    x_tip = h / 2

    def inside(X, Y, Z):
        s = x_tip - X                      # distance from the tip plane towards the base
        r = r0 + s * np.tan(half)
        return (s >= 0) & (s <= h) & (np.hypot(Y - grid.center[1], Z - grid.center[2]) <= r)

    r1 = r0 + h * np.tan(half)
    box = ((x_tip - h, grid.center[1] - r1, grid.center[2] - r1), (x_tip, grid.center[1] + r1, grid.center[2] + r1))
    return Phantom(grid, concentration * supersampled_fill(grid, inside, bbox=box), "shape",
                   {"height": h, "tip_radius": r0, "half_angle_deg": SHAPE_CONE["half_angle_deg"],
                    "tip_x": x_tip, "volume": shape_cone_volume(),
                    "source": "OpenMPIData shape phantom (OpenMPIData.jl docs/src/phantoms.md, CAD mesh)"})


def graft(scanner, cells=3e5, iron_per_cell=10e-15, resolution=0.25e-3, separation=7e-3,
          graft_radius=1.0e-3, unlabelled_cells=3e5):
    """Rat-brain striatal graft: two striata at x = ∓separation/2. The left one receives
    ``cells`` labelled cells (``iron_per_cell`` kg Fe each) in a sphere of ``graft_radius``; the
    right one ``unlabelled_cells`` cells without iron. Ground truth in mol Fe/L and in cells."""

    grid = phantom_grid(scanner, resolution)
    z = grid.center[2]
    left = np.array([-separation / 2, 0.0, z])
    right = np.array([separation / 2, 0.0, z])

    def sphere(c):
        return lambda X, Y, Zc: (X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Zc - c[2]) ** 2 <= graft_radius**2

    def bbox(c):
        return (c - graft_radius, c + graft_radius)

    frac = supersampled_fill(grid, sphere(left), samples=4, bbox=bbox(left))
    if frac.sum() == 0:
        raise MPISimError("graft sphere does not intersect the phantom grid")
    iron = cells * iron_per_cell                                   # kg
    cells_map = cells * frac / frac.sum()
    conc = cells_map * iron_per_cell / C.FE_MOLAR_MASS / (grid.voxel_volume / C.LITRE)
    frac_r = supersampled_fill(grid, sphere(right), samples=4, bbox=bbox(right))
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
    each with ``concentration`` (mol Fe/L) or ``cells`` and ``iron_per_cell`` (kg), and optionally its
    tracer ``state`` ("mobile", the default, or "immobilised": bound in cells; multi-contrast). Lengths in m."""

    d = tomlio.loads(path_or_text, "phantom TOML") if is_text else tomlio.load(path_or_text)
    grid = phantom_grid(scanner, float(d.get("resolution", 0.25e-3)))
    objs = d.get("objects")
    if not isinstance(objs, list) or not objs:
        raise MPISimError("phantom TOML needs at least one [[objects]] table")
    parts = {}
    cells_total = 0.0
    for i, o in enumerate(objs):
        kind = o.get("type")
        state = o.get("state", "mobile")
        if state not in STATES:
            raise MPISimError(f"phantom object {i + 1}: unknown tracer state {state!r} (use {', '.join(STATES)})")
        c = parts.setdefault(state, np.zeros(grid.shape))
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
    if set(parts) == {"mobile"}:
        return Phantom(grid, parts["mobile"], d.get("name", "user"), {"cells": cells_total})
    return Phantom.mixed(grid, parts, d.get("name", "user"), {"cells": cells_total})


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


def viability(scanner, concentration=0.02, resolution=None):
    """A graft of labelled cells (immobilised tracer) beside free tracer (mobile: released by dead cells, or
    left in the injectate) and a region holding both (half each), for multi-contrast reconstructions: three
    spheres of 2 mm radius (cut by the slab of a 2D scanner) at 30 % of the drive FOV, ``concentration``
    mol Fe/L each. ``meta["objects"]``: name, centre (m), radius (m) and state of each region."""
    grid = phantom_grid(scanner, resolution or (0.25e-3 if sum(f > 0 for f in scanner.drive_fov) < 3 else 0.5e-3))
    fov = np.asarray(scanner.drive_fov, float)
    r = 2e-3
    spots = [("graft", (-0.3 * fov[0], 0.2 * fov[1], 0.0), "immobilised"),
             ("free", (0.3 * fov[0], 0.2 * fov[1], 0.0), "mobile"),
             ("mixed", (0.0, -0.3 * fov[1], 0.0), "both")]
    parts = {"immobilised": np.zeros(grid.shape), "mobile": np.zeros(grid.shape)}
    for name, ctr, state in spots:
        fill = supersampled_fill(grid, lambda X, Y, Z, ctr=ctr: (X - ctr[0]) ** 2 + (Y - ctr[1]) ** 2
                                 + (Z - ctr[2]) ** 2 <= r * r)
        for k in (parts if state == "both" else [state]):
            parts[k] += concentration * fill * (0.5 if state == "both" else 1.0)
    objects = [{"name": n, "center": [float(v) for v in c], "radius": r, "state": st} for n, c, st in spots]
    return Phantom.mixed(grid, parts, "viability", {"objects": objects})


PHANTOMS.update({"concentration": concentration, "concentration-2d": concentration_2d, "resolution": resolution,
                 "shape": shape, "graft": graft, "viability": viability})
