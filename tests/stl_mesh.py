"""A small binary-STL reader and voxeliser for the tests (numpy and scipy only).

``read_stl`` returns the triangles; ``voxelise`` fills a regular grid by ray parity along x
(a voxel is solid when a ray from −x to its centre crosses the surface an odd number of times);
``cavities`` finds the hollows of a solid that are enclosed slice by slice.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_STL_DTYPE = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])


def read_stl(path):
    """Triangles (n, 3 vertices, 3 coordinates) of a binary STL file, float64, in the file's units.

    Binary even when the 80-byte header starts with "solid" (the size decides)."""
    data = open(path, "rb").read()
    n = int(np.frombuffer(data, "<u4", count=1, offset=80)[0])
    if len(data) != 84 + 50 * n:
        raise ValueError(f"{path}: not a binary STL ({len(data)} bytes for {n} triangles)")
    return np.frombuffer(data, _STL_DTYPE, count=n, offset=84)["vertices"].astype(float)


def mesh_volume(tri):
    """Signed volume enclosed by a closed, outward-oriented triangle mesh."""
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6)


@dataclass
class Voxels:
    """A boolean volume: voxel (i, j, k) has its centre at ``origin + (i, j, k) * spacing``."""

    solid: np.ndarray
    origin: np.ndarray
    spacing: float

    def centres(self, mask):
        """Centres (n, 3) of the voxels where ``mask`` is true."""
        return self.origin + np.argwhere(mask) * self.spacing

    def lookup(self, mask, points):
        """``mask`` at the voxels containing ``points`` (n, 3); False outside the grid."""
        idx = np.floor((np.asarray(points) - self.origin) / self.spacing + 0.5).astype(int)
        ok = np.all((idx >= 0) & (idx < mask.shape), axis=1)
        out = np.zeros(len(idx), bool)
        out[ok] = mask[tuple(idx[ok].T)]
        return out


def voxelise(tri, spacing, pad=2):
    """Voxelise a closed triangle mesh on a grid of ``spacing`` with ``pad`` empty voxels around it.

    Each triangle is intersected with the x-rays through the voxel centres inside its (y, z)
    shadow; a crossing at x toggles the inside state of every voxel beyond it along the ray."""
    lo = tri.reshape(-1, 3).min(0) - pad * spacing
    shape = np.ceil((tri.reshape(-1, 3).max(0) + pad * spacing - lo) / spacing).astype(int) + 1
    # voxel centres half a voxel (plus a small irrational fraction) off the round coordinates of the
    # many axis-aligned faces: no ray runs along an edge, no centre lies on a face (where float32 noise
    # would decide), and a box between round coordinates is sampled symmetrically
    origin = lo + spacing * (0.5 + np.sqrt([5, 2, 3]) / 100)
    a, b, c = (tri[:, i] - origin for i in range(3))
    j0, k0 = np.ceil(np.minimum(np.minimum(a, b), c)[:, 1:] / spacing).astype(int).T
    j1, k1 = np.floor(np.maximum(np.maximum(a, b), c)[:, 1:] / spacing).astype(int).T
    nj, nk = np.maximum(j1 - j0 + 1, 0), np.maximum(k1 - k0 + 1, 0)
    t = np.repeat(np.arange(len(tri)), nj * nk)              # one row per (triangle, ray) pair
    r = np.arange(len(t)) - np.repeat(np.cumsum(nj * nk) - nj * nk, nj * nk)
    j, k = j0[t] + r % nj[t], k0[t] + r // nj[t]
    py, pz = j * spacing, k * spacing
    # barycentric coordinates of the ray in the triangle's (y, z) projection
    A, B, Cc = a[t], b[t], c[t]
    det = (B[:, 1] - A[:, 1]) * (Cc[:, 2] - A[:, 2]) - (Cc[:, 1] - A[:, 1]) * (B[:, 2] - A[:, 2])
    ok = det != 0                                             # skip triangles seen edge-on
    t, j, k, py, pz, A, B, Cc, det = (q[ok] for q in (t, j, k, py, pz, A, B, Cc, det))
    u = ((py - A[:, 1]) * (Cc[:, 2] - A[:, 2]) - (Cc[:, 1] - A[:, 1]) * (pz - A[:, 2])) / det
    v = ((B[:, 1] - A[:, 1]) * (pz - A[:, 2]) - (py - A[:, 1]) * (B[:, 2] - A[:, 2])) / det
    hit = (u >= 0) & (v >= 0) & (u + v <= 1)
    x = (A[:, 0] + u * (B[:, 0] - A[:, 0]) + v * (Cc[:, 0] - A[:, 0]))[hit]
    toggles = np.zeros((shape[0] + 1, shape[1], shape[2]), np.int32)
    np.add.at(toggles, (np.clip(np.ceil(x / spacing).astype(int), 0, shape[0]), j[hit], k[hit]), 1)
    solid = (np.cumsum(toggles, axis=0)[:-1] % 2).astype(bool)
    return Voxels(solid, origin, spacing)


def _slice_holes(solid):
    out = np.zeros_like(solid)
    for axis in range(3):
        structure = np.zeros((3, 3, 3), bool)
        np.moveaxis(structure, axis, 0)[1] = ndimage.generate_binary_structure(2, 1)   # in-slice only
        out |= ndimage.binary_fill_holes(solid, structure=structure)
    return out & ~solid


def cavities(solid):
    """Hollows of ``solid``: voxels enclosed in a slice perpendicular to some axis.

    A chamber opened by thin filling channels is not closed in 3D, but a channel is closed in the
    slices across it and most slices of the chamber are closed. Where two channels meet a chamber
    from different axes, its middle is open in every slice; so the hollows found are added to the
    solid and the search repeated until nothing changes."""
    cav = _slice_holes(solid)
    while True:
        more = cav | _slice_holes(solid | cav)
        if np.array_equal(more, cav):
            return cav
        cav = more
