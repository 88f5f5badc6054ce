"""Regular voxel grids. Arrays on a grid have shape (nx, ny, nz); flattened, x runs fastest."""

from dataclasses import dataclass

import numpy as np

from .errors import MPISimError, check_finite

__all__ = ["Grid", "MAX_SIDE", "MAX_VOXELS", "parse_shape", "parse_triple"]


def _triple(name, v, kind=float):
    try:
        t = tuple(kind(x) for x in v)
    except (TypeError, ValueError):
        raise MPISimError(f"{name} must be three numbers, got {v!r}") from None
    if len(t) != 3:
        raise MPISimError(f"{name} must have 3 entries (x, y, z), got {len(t)}")
    return t


@dataclass(frozen=True)
class Grid:
    """A box of ``shape`` voxels covering ``fov`` (m) centred on ``center`` (m).

    Voxel centres along an axis with n voxels of size d = fov/n: center − fov/2 + (i + ½) d.
    """

    shape: tuple = (1, 1, 1)
    fov: tuple = (1e-3, 1e-3, 1e-3)
    center: tuple = (0.0, 0.0, 0.0)

    def __post_init__(self):
        shape = _triple("grid shape", self.shape, float)
        if any(s != int(s) or s < 1 for s in shape):
            raise MPISimError(f"grid shape must be positive integers, got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))
        fov = _triple("grid fov (m)", self.fov)
        check_finite("grid fov", np.array(fov))
        if any(f <= 0 for f in fov):
            raise MPISimError(f"grid fov must be positive in every axis (m), got {self.fov!r}")
        object.__setattr__(self, "fov", fov)
        center = _triple("grid center (m)", self.center)
        check_finite("grid center", np.array(center))
        object.__setattr__(self, "center", center)

    @property
    def size(self):
        """Number of voxels."""
        return int(np.prod(self.shape))

    @property
    def spacing(self):
        """Voxel size (3,) in m."""
        return np.array(self.fov) / np.array(self.shape)

    @property
    def voxel_volume(self):
        """Voxel volume in m³."""
        return float(np.prod(self.spacing))

    def axis(self, i):
        """Voxel-centre coordinates along axis i in m."""
        n, f, c = self.shape[i], self.fov[i], self.center[i]
        return c - f / 2 + (np.arange(n) + 0.5) * f / n

    def positions(self):
        """Voxel centres (size, 3) in m, x fastest, then y, then z."""
        x, y, z = (self.axis(i) for i in range(3))
        X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
        return np.stack([X.ravel(order="F"), Y.ravel(order="F"), Z.ravel(order="F")], axis=1)

    def flatten(self, volume):
        """(nx, ny, nz) array → (size,) vector, x fastest."""
        v = np.asarray(volume)
        if v.shape != self.shape:
            raise MPISimError(f"array of shape {v.shape} does not match grid shape {self.shape}")
        return v.ravel(order="F")

    def unflatten(self, vector):
        """(size,) or (..., size) → (..., nx, ny, nz)."""
        v = np.asarray(vector)
        if v.shape[-1] != self.size:
            raise MPISimError(f"vector of length {v.shape[-1]} does not match grid of {self.size} voxels")
        return v.reshape(v.shape[:-1] + self.shape[::-1]).transpose(
            tuple(range(v.ndim - 1)) + tuple(v.ndim - 1 + i for i in (2, 1, 0)))

    def extent(self, i):
        """(min, max) edge coordinates along axis i in m."""
        return self.center[i] - self.fov[i] / 2, self.center[i] + self.fov[i] / 2

    def to_dict(self):
        return {"shape": list(self.shape), "fov": list(self.fov), "center": list(self.center)}


MAX_SIDE = 4096
"""Most voxels along one grid axis."""
MAX_VOXELS = 2 ** 27
"""Most voxels in a grid (134 million; a 512³ grid): counted in Python integers, so no size
overflows on the way to the memory and disk checks."""


def parse_shape(text):
    """Parse ``"41x41x1"`` (or ``"41,41,1"``) into a shape triple (clear error otherwise)."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise MPISimError(f"grid must look like NXxNYxNZ (e.g. 41x41x1), got {text!r}") from None
    if len(vals) != 3:
        raise MPISimError(f"grid must have three sizes NXxNYxNZ, got {text!r}")
    if any(v <= 0 for v in vals):
        raise MPISimError(f"grid sizes must be positive, got {text!r}")
    if any(v > MAX_SIDE for v in vals) or vals[0] * vals[1] * vals[2] > MAX_VOXELS:
        raise MPISimError(f"grid {text!r} is too large: at most {MAX_SIDE} voxels per axis and {MAX_VOXELS} in all")
    return tuple(vals)


MAX_EXTENT = 1.0
"""Largest field of view, or distance of its centre from the scanner's, accepted (m): the largest MPI
scanners (human head) image about 0.2 m; a larger value is a length in mm typed as m."""


def parse_triple(text, name, positive=False):
    """Parse ``"0.03,0.03,0.001"`` (m) into three floats, each within ±:data:`MAX_EXTENT` (and > 0 with
    ``positive``): ``--fov 38,38,1`` is refused before any work, naming the option."""
    try:
        vals = [float(p) for p in str(text).split(",")]
    except ValueError:
        raise MPISimError(f"{name} must be three comma-separated numbers in m, got {text!r}") from None
    if len(vals) != 3:
        raise MPISimError(f"{name} must have three values (x,y,z), got {text!r}")
    check_finite(name, np.array(vals))
    if any(abs(v) > MAX_EXTENT for v in vals):
        raise MPISimError(f"{name} {text} m: beyond {MAX_EXTENT:g} m, larger than any MPI scanner; the values are in m "
                          f"(38 mm is 0.038)")
    if positive and any(v <= 0 for v in vals):
        raise MPISimError(f"{name}: the fov must be positive along every axis (m), got {text!r}")
    return tuple(vals)
