"""mpisim's OpenMPIData phantoms against the CAD meshes of the phantom holders.

Each STL file (OpenMPIData.jl, mm) is the 3D-printed holder; the tracer fills its cavities, which
are open to the outside through thin filling channels. ``stl_mesh`` voxelises a mesh at 0.25 mm by
ray parity and finds the cavities slice by slice. Checked, per phantom:

* the robot-mount bore (the cavity furthest along the mount axis) lies on mpisim's +X side;
* ≥ 95 % of mpisim's tracer (voxel centres weighted by concentration) falls into the mesh cavities
  (dilated by one voxel for the voxelisation) and < 2 % into the solid holder;
* the cavities have mpisim's size: 2 mm cubes (8 µL) at (±6, ±6, ±3) mm; a cone of 10° half-angle,
  22 mm high, 1 mm tip radius at +X (683.9 µL) that holds all of the cavity round it; five Ø 1 mm
  tubes whose directions agree with mpisim's within 2°;
* negative controls: superseded geometries (cubes on the 2D raster, a 5° cone with its tip at −X,
  mirrored tube tilts) fail the tracer criterion clearly.

Frames. OpenMPIData's phantom frame has the robot mount along +X and the flat side on +Z; mpisim's
phantom coordinates are that frame, in m. Each mesh → frame rotation below is a fixed axis
permutation (columns: the mesh directions of phantom X, Y, Z): X is the mesh axis towards the mount
plate and bore (asserted); for the resolution phantom Y is the direction in which the tubes leave
their common origin (mpisim's convention) and Z = X × Y, which fixes the sides of the tilts. The
cubes and the cone are symmetric about the other two axes, so there Y and Z need only make the frame
right-handed (the cube mesh cannot tell its flat side, nor therefore the chamber numbering). The
translation is measured from the mesh, never fitted to mpisim: the centroid of the eight cube
cavities, the midpoint of the cone cavity's axis, the common point of the five tube axes (placed at
mpisim's tube origin, (0, −10.48, 0) mm).
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import mpisim
from mpisim import phantoms as P
from stl_mesh import cavities, mesh_volume, read_stl, voxelise

from conftest import SHARED_DATA as DATA  # $MPISIM_SHARED_DATA or ../shared/data
FILES = {"resolution": "Phantom1_Resolution.STL", "concentration": "Phantom2_Concentration.STL",
         "shape": "Phantom3_Shape.STL"}
if not all((DATA / f).is_file() for f in FILES.values()):
    pytest.skip(f"OpenMPIData CAD meshes {sorted(FILES.values())} not found in {DATA}", allow_module_level=True)

H = 0.25   # voxel size, mm

# Phantom → mesh rotations (columns = mesh direction of phantom X, Y, Z).
# Concentration mesh (24 × 39 × 15 mm): mount plate at mesh y > 24 → X = +mesh y; Z = mesh z; Y = Z × X = −mesh x
R_CONCENTRATION = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
# Shape (24 × 15 × 36) and resolution (24 × 18 × 39) meshes: mount bore at high mesh z → X = +mesh z; the tubes
# run along +mesh x → Y = mesh x; Z = X × Y = mesh y.
R_SHAPE = R_RESOLUTION = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])


@lru_cache(maxsize=None)
def mesh(name):
    """(voxels, chamber cavities, bore cavity) of a mesh; the bore is the cavity furthest along the mount axis."""
    tri = read_stl(DATA / FILES[name])
    vox = voxelise(tri, H)
    assert abs(vox.solid.sum() * H**3 / mesh_volume(tri) - 1) < 0.01    # voxeliser sanity: volume within 1 %
    lab, n = ndimage.label(cavities(vox.solid))
    mount = {"concentration": R_CONCENTRATION, "shape": R_SHAPE, "resolution": R_RESOLUTION}[name][:, 0]
    along = ndimage.mean(vox.centres(lab > 0) @ mount, lab[lab > 0], range(1, n + 1))
    bore = lab == 1 + int(np.argmax(along))
    return vox, (lab > 0) & ~bore, bore


@lru_cache(maxsize=None)
def phantom(name):
    return mpisim.get_phantom(name, mpisim.get_scanner("bruker-3d"))


def tracer(ph):
    """mpisim's tracer: voxel centres (n, 3) in mm and weights (concentration × fill)."""
    c = ph.grid.flatten(ph.concentration)
    return ph.grid.positions()[c > 0] * 1e3, c[c > 0]


def fractions(name, points, weights, R, t):
    """Weighted fractions of phantom ``points`` (mm) that map into the (dilated) cavities and into solid holder."""
    vox, cav, _ = mesh(name)
    q = points @ R.T + t
    in_cav = vox.lookup(ndimage.binary_dilation(cav), q)
    in_solid = vox.lookup(vox.solid, q) & ~in_cav
    w = weights / weights.sum()
    return float(w[in_cav].sum()), float(w[in_solid].sum())


def to_phantom(q, R, t):
    """Mesh points (n, 3) → phantom frame, mm."""
    return (q - t) @ R


def lattice(lo, hi, step=H / 2):
    """Points of a regular lattice filling the box [lo, hi] (mm)."""
    axes = [np.arange(a + step / 2, b, step) for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


# --- registration: the mesh position (mm) of mpisim's phantom origin, measured from the cavities ----------

@lru_cache(maxsize=None)
def cube_centres():
    """Centres of the eight cube cavities (an opening removes the Ø 1 mm filling channels)."""
    vox, cav, _ = mesh("concentration")
    cubes = ndimage.binary_opening(cav, np.ones((5, 5, 5)))
    lab, n = ndimage.label(cubes)
    return np.array(ndimage.center_of_mass(cubes, lab, range(1, n + 1))) * H + vox.origin


@lru_cache(maxsize=None)
def cone_axis():
    """(midpoint, first, last): the cone cavity's axis midpoint (mesh mm) and the first and last mesh-z slices
    whose cavity contains the axis (the filling channel at the base is off-axis)."""
    vox, cav, _ = mesh("shape")
    z = np.nonzero(cav.any((0, 1)))[0]
    xy = np.median([np.argwhere(cav[:, :, k]).mean(0) for k in z], axis=0)      # robust to the side channel
    i, j = np.round(xy).astype(int)
    on_axis = np.nonzero(cav[i, j, :])[0]
    first, last = on_axis.min(), on_axis.max()
    assert np.all(cav[i, j, first:last + 1]), "the cone cavity should be one run along its axis"
    return vox.origin + H * np.array([*xy, (first + last) / 2]), first, last


@lru_cache(maxsize=None)
def tube_axes():
    """(common point, [(centre, unit direction, voxels, window length)]) of the five tubes, measured in the
    middle of the holder (35–90 % of its x-extent), where they are separate and of constant section."""
    vox, cav, _ = mesh("resolution")
    x = vox.origin[0] + H * np.arange(cav.shape[0])
    a, b = np.percentile(x[vox.solid.any((1, 2))], [35, 90])
    win = cav & ((x >= a) & (x < b))[:, None, None]
    lab, n = ndimage.label(win, np.ones((3, 3, 3)))
    tubes = []
    for k in range(1, n + 1):
        q = vox.centres(lab == k)
        ctr = q.mean(0)
        d = np.linalg.eigh(np.cov((q - ctr).T))[1][:, -1]
        tubes.append((ctr, d * np.sign(d[0]), len(q), b - a))
    proj = [np.eye(3) - np.outer(d, d) for _, d, _, _ in tubes]                 # least-squares common point
    common = np.linalg.solve(sum(proj), sum(p @ c for p, (c, *_) in zip(proj, tubes)))
    return common, tubes


def t_concentration():
    return cube_centres().mean(0)


def t_shape():
    return cone_axis()[0]


def t_resolution():
    origin = np.array(phantom("resolution").meta["tubes"][0]["origin"]) * 1e3   # mpisim's common tube origin
    return tube_axes()[0] - R_RESOLUTION @ origin


REG = {"concentration": (R_CONCENTRATION, t_concentration), "shape": (R_SHAPE, t_shape),
       "resolution": (R_RESOLUTION, t_resolution)}


# --- all phantoms -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["concentration", "shape", "resolution"])
def test_mount_bore_on_plus_x(name):
    vox, _, bore = mesh(name)
    R, t = REG[name]
    X, Y, Z = to_phantom(vox.centres(bore), R, t()).mean(0)
    assert X > 15 and abs(Y) < 3 and abs(Z) < 6, (X, Y, Z)


@pytest.mark.parametrize("name", ["concentration", "shape", "resolution"])
def test_tracer_lies_in_cavities(name):
    R, t = REG[name]
    in_cav, in_solid = fractions(name, *tracer(phantom(name)), R, t())
    assert in_cav >= 0.95 and in_solid < 0.02, (in_cav, in_solid)


# --- concentration phantom --------------------------------------------------------------------------------

def test_cube_cavities_match_chambers():
    vox, cav, _ = mesh("concentration")
    t = t_concentration()
    measured = to_phantom(cube_centres(), R_CONCENTRATION, t)
    ph = phantom("concentration")
    chambers = ph.meta["chambers"]
    assert len(measured) == len(chambers) == 8
    q = to_phantom(vox.centres(cav), R_CONCENTRATION, t)
    X = ph.grid.positions() * 1e3
    for ch in chambers:
        c = np.array(ch["center"]) * 1e3
        assert np.min(np.linalg.norm(measured - c, axis=1)) < 0.2, ch["label"]   # a cube cavity sits there

        def box(p, half):
            return np.all(np.abs(p - c) <= half, axis=1)

        assert box(q, 1.0).sum() * H**3 == pytest.approx(8.0, rel=0.15)        # 2 mm cube of cavity ...
        assert box(q, 1.5).sum() * H**3 < 8.0 * 1.15                            # ... and not larger
        fill = ph.grid.flatten(ph.concentration)[box(X, 1.0 + H)] / ch["concentration"]
        assert fill.sum() * ph.grid.voxel_volume == pytest.approx(8e-9, rel=0.03)
        assert ch["volume"] == pytest.approx(8e-9)


def test_negative_control_2d_raster():
    """The superseded geometry (4 × 2 raster in z = 0, x = ±3, ±9 mm, y = ±4.2 mm) misses the cavities."""
    pts = np.concatenate([lattice(np.array(ch["center"]) * 1e3 - 1, np.array(ch["center"]) * 1e3 + 1)
                          for ch in P.concentration_2d_chambers()])
    in_cav, in_solid = fractions("concentration", pts, np.ones(len(pts)), R_CONCENTRATION, t_concentration())
    assert in_cav < 0.2 and in_solid > 0.5, (in_cav, in_solid)


# --- shape phantom ----------------------------------------------------------------------------------------

def cone_inside(p, tip_x=11.0, half_angle=10.0, r0=1.0, height=22.0, grow=0.0):
    """Points (n, 3) mm inside a frustum along X with its tip (radius r0) at X = tip_x, widened by ``grow``."""
    s = (p[:, 0] - tip_x) * np.sign(-tip_x)                     # distance from the tip plane towards the base
    r = r0 + s * np.tan(np.radians(half_angle)) + grow
    return (s >= -grow) & (s <= height + grow) & (np.hypot(p[:, 1], p[:, 2]) <= r)


def test_cone_cavity_matches_mpisim_cone():
    vox, cav, _ = mesh("shape")
    _, first, last = cone_axis()
    assert (last - first + 1) * H == pytest.approx(22.0, abs=0.5)               # height along X
    t = t_shape()
    # radius profile along the axis (mesh z = X): equivalent radius of each slice's cavity; fit
    # r = r_tip + (11 mm − X) tan(half-angle), dropping the slices crossed by the filling channels
    r = np.sqrt(cav[:, :, first:last + 1].sum((0, 1)) * H**2 / np.pi)
    X = vox.origin[2] + H * np.arange(first, last + 1) - t[2]
    keep = np.ones(len(r), bool)
    for _ in range(2):
        slope, r_tip = np.polyfit((11 - X)[keep], r[keep], 1)
        keep = np.abs(slope * (11 - X) + r_tip - r) < 0.15
    assert keep.mean() > 0.8
    assert np.degrees(np.arctan(slope)) == pytest.approx(P.SHAPE_CONE["half_angle_deg"], abs=0.5)
    assert r_tip == pytest.approx(P.SHAPE_CONE["tip_radius"] * 1e3, abs=0.15)   # tip at +X (mount side)
    q = to_phantom(vox.centres(cav), R_SHAPE, t)
    v_cone = P.shape_cone_volume() * 1e9                                         # mm³
    assert v_cone == pytest.approx(683.9, rel=1e-3)
    v_in = cone_inside(q).sum() * H**3
    v_shell = (cone_inside(q, grow=0.5) & ~cone_inside(q)).sum() * H**3
    assert v_in > 0.97 * v_cone                                                  # the cavity fills mpisim's cone ...
    assert v_shell < 0.03 * v_cone                                               # ... and is not wider than it
    ph = phantom("shape")
    assert ph.concentration.sum() / ph.concentration.max() * ph.grid.voxel_volume == pytest.approx(683.9e-9, rel=0.02)


def test_negative_control_old_cone():
    """The superseded cone (5° half-angle, tip at −X) is not where the cavity is."""
    p = phantom("shape").grid.positions() * 1e3
    pts = p[cone_inside(p, tip_x=-11.0, half_angle=5.0)]
    in_cav, in_solid = fractions("shape", pts, np.ones(len(pts)), R_SHAPE, t_shape())
    assert in_cav < 0.85 and in_solid > 0.15, (in_cav, in_solid)


# --- resolution phantom -----------------------------------------------------------------------------------

def test_tube_directions_and_diameter():
    common, tubes = tube_axes()
    assert len(tubes) == 5
    for ctr, d, _, _ in tubes:                                                   # the axes meet in one point
        off = common - ctr
        assert np.linalg.norm(off - (off @ d) * d) < 0.1
    ph = phantom("resolution")
    mp = [np.array(tb["direction"]) for tb in ph.meta["tubes"]]
    measured = [R_RESOLUTION.T @ d for _, d, _, _ in tubes]
    angle = np.degrees(np.arccos(np.clip(np.array(measured) @ np.array(mp).T, -1, 1)))   # (mesh, mpisim)
    assert sorted(np.argmin(angle, axis=1)) == list(range(5))                    # one mesh tube per mpisim tube
    assert angle.min(axis=1).max() < 2.0, angle.min(axis=1)
    for _, _, n, length in tubes:         # Ø 1 mm in the Y slices (a 1 mm disc is only ~12 voxels: 15 %)
        assert n * H**3 / length == pytest.approx(np.pi * 0.25, rel=0.15)
    # mpisim: each tube is a Ø 1 mm disc in every y slice (as in the mesh): volume per mm of y = π/4 mm²,
    # measured away from the common origin where the tubes overlap
    assert ph.meta["diameter"] == pytest.approx(1e-3)
    X = ph.grid.positions() * 1e3
    c = ph.grid.flatten(ph.concentration) / ph.concentration.max()                 # fill
    for tb in ph.meta["tubes"]:
        o, d, length = np.array(tb["origin"]) * 1e3, np.array(tb["direction"]), tb["length"] * 1e3
        sy = X[:, 1] - o[1]
        off = np.hypot(X[:, 0] - o[0] - sy * d[0] / d[1], X[:, 2] - o[2] - sy * d[2] / d[1])
        span = length * d[1]
        sel = (sy >= 10) & (sy < span - 1) & (off < 0.75)
        assert c[sel].sum() * ph.grid.voxel_volume * 1e9 / (span - 11) == pytest.approx(np.pi * 0.25, rel=0.05)


def test_negative_control_mirrored_tilts():
    """Tubes tilted to the opposite sides miss the cavities."""
    p = phantom("resolution").grid.positions() * 1e3
    inside = np.zeros(len(p), bool)
    for o, d, length in P.resolution_tubes():
        o, d = o * 1e3, d * np.array([-1, 1, -1])
        s = (p - o) @ d
        inside |= (s >= 0) & (s <= length * 1e3) & (np.linalg.norm(p - o - np.outer(s, d), axis=1) <= 0.5)
    in_cav, _ = fractions("resolution", p[inside], np.ones(inside.sum()), R_RESOLUTION, t_resolution())
    assert in_cav < 0.8, in_cav


def test_tubes_reach_the_exit_face():
    """Each mpisim tube ends within 1.5 mm (the 1 mm countersink + 0.5 mm) of where its mesh tube leaves the holder."""
    vox, cav, _ = mesh("resolution")
    common, tubes = tube_axes()
    q = vox.centres(cav)
    ph = phantom("resolution")
    for ctr, d, _, _ in tubes:
        s = (q - common) @ d
        on_axis = np.linalg.norm(q - common - np.outer(s, d), axis=1) < 0.5
        end = to_phantom(q[on_axis][np.argmax(s[on_axis])][None], R_RESOLUTION, t_resolution())[0, 1] + H / 2
        tb = min(ph.meta["tubes"], key=lambda tb: np.linalg.norm(np.array(tb["direction"]) - R_RESOLUTION.T @ d))
        mp_end = (tb["origin"][1] + tb["length"] * tb["direction"][1]) * 1e3
        assert mp_end > end - 1.5, (mp_end, end)
