"""NIfTI-1 images: reconstructions and cell maps out, ROI masks drawn in other tools back in.

Frame: mpisim's x, y, z axes are taken as the scanner's R, A, S axes (NIfTI's RAS+ world frame). MDF
files carry no patient orientation, so the affine written here is the scanner frame in mm: voxel
(i, j, k) lies at ``grid.positions()`` × 1000 mm, no rotation. A mask drawn on such an image in
3D Slicer, ITK-SNAP or Horos comes back in the same frame; :func:`read_roi_mask` resamples it onto any
mpisim grid with partial voxels weighted (fraction of each voxel's volume covered by the mask).

nibabel is imported inside the functions (``import mpisim`` stays light).
"""

from dataclasses import dataclass
import gzip
import itertools
from pathlib import Path

import numpy as np

from ..errors import MPISimError, check_int
from ..grid import Grid
from .atomic import atomic_path, check_input_file

__all__ = ["check_nifti_path", "nifti_affine", "write_nifti", "read_roi_mask", "MaskRoi", "QUANTITIES", "ROI_SAMPLES"]

QUANTITIES = {
    "mol/L": "iron concentration mol/L",
    "mmol/L": "iron concentration mmol/L",
    "cells": "cells per voxel",
    "cells/voxel": "cells per voxel",
    "kg": "iron mass per voxel kg",
}
"""Unit → the quantity written in the NIfTI ``descrip`` field (others: ``"value <unit>"``)."""

ROI_SAMPLES = 6
"""Sample points per grid-voxel axis when a mask is resampled (6³ = 216 per voxel in 3D)."""

_SUFFIXES = (".nii", ".nii.gz")
_UNIT_TO_MM = {"meter": 1e3, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}


def nifti_affine(grid):
    """(4, 4) affine: voxel index (i, j, k) → position in mm in NIfTI's RAS+ world frame.

    mpisim's x, y, z (m) are taken as the scanner's R, A, S axes (MDF gives no patient orientation):
    the affine is the scanner frame in mm, diagonal with the voxel size (mm) and the centre of voxel
    (0, 0, 0) as offset, so ``affine @ [i, j, k, 1]`` is ``grid.positions()`` × 1000 (mm).
    """
    sp = np.asarray(grid.spacing, float) * 1e3
    a = np.eye(4)
    a[:3, :3] = np.diag(sp)
    a[:3, 3] = [grid.axis(i)[0] * 1e3 for i in range(3)]
    return a


def _suffix_ok(path):
    name = Path(path).name.lower()
    return any(name.endswith(s) and len(name) > len(s) for s in _SUFFIXES)


def check_nifti_path(path, what="output"):
    """Refuse, before any work, a NIfTI output whose name does not end in .nii or .nii.gz (None: nothing)."""
    if path and not _suffix_ok(path):
        raise MPISimError(f"{what} {path}: a NIfTI output must end in .nii or .nii.gz")


def _volume_of(volume_or_reco, grid, frame):
    """(volume (nx, ny, nz), grid, unit or None) of a reconstruction-like object or an array plus grid."""
    if hasattr(volume_or_reco, "volume") and hasattr(volume_or_reco, "grid"):
        reco = volume_or_reco
        frames = int(getattr(reco, "num_frames", 1))
        check_int("frame", frame, 0, frames - 1)
        return np.asarray(reco.volume(frame), float), reco.grid, getattr(reco, "unit", None)
    if not isinstance(grid, Grid):
        raise MPISimError("write_nifti: an array needs its grid (mpisim.grid.Grid)")
    vol = np.asarray(volume_or_reco)
    if vol.shape != grid.shape:
        raise MPISimError(f"write_nifti: array of shape {vol.shape} does not match grid shape {grid.shape}")
    if vol.dtype.kind not in "biuf":
        raise MPISimError(f"write_nifti: the image must hold real numbers, got dtype {vol.dtype}")
    return vol.astype(float), grid, None


def write_nifti(path, volume_or_reco, grid=None, frame=0, unit=None, overwrite=False, description=""):
    """Write one image as NIfTI-1 (``.nii`` or ``.nii.gz``), float32, atomically; returns ``path``.

    ``volume_or_reco``: a :class:`~mpisim.reconstruction.Reconstruction` (frame ``frame`` of it, on
    its grid) or an (nx, ny, nz) array on ``grid`` (a cell map, say). The affine of
    :func:`nifti_affine` is both sform and qform (code 1, scanner); spatial unit mm. ``unit``: the
    data's unit (default: the reconstruction's, else mol/L); ``descrip`` names quantity and unit
    (``QUANTITIES``, e.g. "iron concentration mol/L", "cells per voxel"), or ``description`` when given
    (80 bytes at most). Refuses a wrong suffix, non-finite data and an existing ``path`` (unless
    ``overwrite``); nothing is written then.
    """
    import nibabel as nib

    if not _suffix_ok(path):
        raise MPISimError(f"{path}: a NIfTI output must end in .nii or .nii.gz")
    vol, grid, reco_unit = _volume_of(volume_or_reco, grid, frame)
    unit = str(unit or reco_unit or "mol/L")
    if not np.all(np.isfinite(vol)) or np.abs(vol).max(initial=0) > np.finfo(np.float32).max:
        raise MPISimError(f"{path}: not written: the image holds NaN, Inf or values beyond float32")
    text = str(description) if description else QUANTITIES.get(unit, f"value {unit}")
    text = " ".join(text.split())
    if len(text.encode("utf-8")) > 80:
        raise MPISimError(f"{path}: description too long for NIfTI (80 bytes at most): {text[:40]!r}...")
    affine = nifti_affine(grid)
    img = nib.Nifti1Image(vol.astype(np.float32), affine)
    hdr = img.header
    hdr.set_data_dtype(np.float32)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    hdr.set_xyzt_units(xyz="mm")
    hdr["descrip"] = text.encode("utf-8")
    data = img.to_bytes()
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            if Path(path).name.lower().endswith(".gz"):
                with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                    gz.write(data)
            else:
                f.write(data)
    return path


def _load_mask(path):
    """(data (X, Y, Z) float64, affine voxel → mm) of a NIfTI mask; one-line errors naming the file. A file
    unchanged since it was last read (same size and modification time) is not read again."""
    p = Path(path)
    stat = p.stat() if p.is_file() else None
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns) if stat else None
    if key is not None and key in _MASKS:
        return _MASKS[key]
    out = _read_mask(path)
    _MASKS.clear()                                # the last mask only: masks are small, but not kept forever
    if key is not None:
        _MASKS[key] = out
    return out


_MASKS = {}


def _read_mask(path):
    """:func:`_load_mask` without the cache."""
    import nibabel as nib

    check_input_file(path)
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise MPISimError(f"{path}: not a NIfTI file ({type(img).__name__}); save the mask as .nii or .nii.gz")
        data = np.asarray(img.get_fdata(dtype=np.float64))
        affine = np.asarray(img.affine, float)
        space = img.header.get_xyzt_units()[0]
    except MPISimError:
        raise
    except Exception as e:  # nibabel raises many types for files it cannot parse
        msg = " ".join(str(e).split())[:120]
        raise MPISimError(f"{path}: not a NIfTI file nibabel can read ({type(e).__name__}: {msg})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise MPISimError(f"{path}: ROI mask holds {int(np.prod(data.shape[3:]))} volumes (shape {data.shape}); "
                          f"save one 3D mask per file")
    data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    if not np.all(np.isfinite(data)):
        raise MPISimError(f"{path}: ROI mask holds NaN or Inf")
    if data.min(initial=0) < 0:
        raise MPISimError(f"{path}: ROI mask holds negative values (min {data.min():.3g}); a mask is 0 outside, "
                          f"> 0 inside")
    if not data.max(initial=0) > 0:
        raise MPISimError(f"{path}: ROI mask is empty (no voxel > 0)")
    affine = affine.copy()
    affine[:3, :] *= _UNIT_TO_MM.get(space, 1.0)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise MPISimError(f"{path}: ROI mask has a degenerate or non-finite affine (sform/qform)")
    return data, affine


def _grid_window(grid, data, affine):
    """Index slices of the grid voxels that may overlap the mask's non-zero voxels (padded by one voxel)."""
    idx = np.nonzero(data)
    lo = np.array([i.min() for i in idx]) - 0.5
    hi = np.array([i.max() for i in idx]) + 0.5
    corners = np.array([[*c, 1.0] for c in itertools.product(*zip(lo, hi))])
    world = (affine @ corners.T)[:3] * 1e-3
    sub = []
    for i in range(3):
        edges = grid.axis(i)
        d = grid.spacing[i]
        a = int(np.searchsorted(edges + d / 2, world[i].min(), "left"))
        b = int(np.searchsorted(edges - d / 2, world[i].max(), "right"))
        sub.append(slice(max(0, a - 1), min(grid.shape[i], max(a, b) + 1)))
    return tuple(sub)


def read_roi_mask(path, grid, name=None, samples=ROI_SAMPLES):
    """(N,) weights in [0, 1] on ``grid`` (x fastest): the fraction of each voxel covered by a NIfTI mask.

    The mask (``.nii``/``.nii.gz``, 3D, or 4D with one volume) counts voxels with a value > 0 as
    inside; when all its values lie in [0, 1] they are fractional weights, otherwise (labels 1, 255…)
    every voxel > 0 weighs 1. Its world frame is ``img.affine`` (sform, else qform, as nibabel
    resolves it; a mask in m or µm is scaled to mm) and must be the exported frame of
    :func:`nifti_affine`. Each grid voxel is sampled at ``samples`` points per axis; each point goes
    through the inverse affine to the nearest mask voxel (0 outside the mask's array) and the values
    are averaged. An axis with one grid voxel (a 2D grid's undriven axis) is sampled only at its
    centre plane, as :class:`~mpisim.quant.Sphere` ignores that axis: the mask's cross-section at
    the slab's centre is the ROI. Raises :class:`MPISimError` (one line, naming the file) for an
    unreadable or non-NIfTI file, several volumes, negative or non-finite values, an empty mask, or
    a mask entirely outside the grid's field of view.
    """
    samples = check_int("ROI mask samples per axis", samples, 1, 64)
    data, affine = _load_mask(path)
    if data.max() > 1:
        data = (data > 0).astype(float)
    inv = np.linalg.inv(affine)
    sub = _grid_window(grid, data, affine)
    out = np.zeros(grid.shape)
    if all(s.stop > s.start for s in sub):
        axes = [grid.axis(i)[sub[i]] * 1e3 for i in range(3)]
        X, Y, Z = np.meshgrid(*axes, indexing="ij")
        sp = grid.spacing * 1e3
        offs = [((np.arange(samples) + 0.5) / samples - 0.5) * sp[i] if grid.shape[i] > 1 else np.zeros(1)
                for i in range(3)]
        shape = np.array(data.shape)
        acc = np.zeros(X.shape)
        for ox in offs[0]:
            for oy in offs[1]:
                for oz in offs[2]:
                    x, y, z = X + ox, Y + oy, Z + oz
                    ijk = [np.floor(inv[r, 0] * x + inv[r, 1] * y + inv[r, 2] * z + inv[r, 3] + 0.5).astype(np.int64)
                           for r in range(3)]
                    ok = np.ones(X.shape, bool)
                    for r in range(3):
                        ok &= (ijk[r] >= 0) & (ijk[r] < shape[r])
                    acc[ok] += data[ijk[0][ok], ijk[1][ok], ijk[2][ok]]
        out[sub] = acc / (len(offs[0]) * len(offs[1]) * len(offs[2]))
    w = np.clip(grid.flatten(out), 0.0, 1.0)
    if not w.sum() > 0:
        ext = ", ".join(f"{grid.extent(i)[0] * 1e3:.3g}..{grid.extent(i)[1] * 1e3:.3g}" for i in range(3))
        label = f"ROI {name!r} " if name else "ROI mask "
        raise MPISimError(f"{path}: {label}lies outside the reconstruction's field of view (x, y, z in mm: {ext}); "
                          f"was it drawn on an image exported by mpisim (same scanner frame)?")
    return w


def _stem(path):
    name = Path(path).name
    for s in (".nii.gz", ".nii"):
        if name.lower().endswith(s):
            return name[:-len(s)]
    return Path(path).stem


@dataclass(frozen=True)
class MaskRoi:
    """An ROI drawn as a NIfTI mask (``path``), named ``name`` (default: the file name without
    .nii/.nii.gz); the ROI protocol of :mod:`mpisim.quant` (``weights`` and ``masks``)."""

    path: str
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        if not self.name:
            object.__setattr__(self, "name", _stem(self.path))

    def weights(self, grid, truth=None):
        """[(name, (N,) fraction of each voxel covered by the mask, None)]: partial voxels weighted."""
        return [(self.name, read_roi_mask(self.path, grid, self.name), None)]

    def inside(self, grid):
        """f(x, y, z) → bool (m): the point's nearest mask voxel is inside (value ≥ ½, or > 0 for labels);
        on an axis with one grid voxel the mask's plane at the slab's centre is used (as :meth:`weights`).
        The bias-corrected estimator of :mod:`mpisim.quant` uses it to share a cut voxel's content."""
        data, affine = _load_mask(self.path)
        data = data > (0.5 if data.max() <= 1 else 0.0)
        inv = np.linalg.inv(affine)
        flat = [grid.shape[i] == 1 for i in range(3)]
        centre = [float(grid.center[i]) for i in range(3)]
        shape = np.array(data.shape)

        def f(x, y, z):
            p = [np.full(np.shape(x), centre[i]) if flat[i] else np.asarray(v, float) for i, v in enumerate((x, y, z))]
            ijk = [np.floor(sum(inv[r, c] * p[c] * 1e3 for c in range(3)) + inv[r, 3] + 0.5).astype(np.int64)
                   for r in range(3)]
            ok = np.ones(np.shape(x), bool)
            for r in range(3):
                ok &= (ijk[r] >= 0) & (ijk[r] < shape[r])
            out = np.zeros(np.shape(x), bool)
            out[ok] = data[ijk[0][ok], ijk[1][ok], ijk[2][ok]]
            return out

        return f

    def masks(self, grid, truth=None):
        """[(name, (N,) bool: voxels at least half covered, else every voxel touched, None)]."""
        w = self.weights(grid, truth)[0][1]
        m = w > 0.5
        return [(self.name, m if m.any() else w > 0, None)]
