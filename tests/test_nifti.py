"""NIfTI export (affine, header, data) and NIfTI ROI masks resampled onto a reconstruction's grid."""

import gzip

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from mpisim.errors import MPISimError
from mpisim.grid import Grid
from mpisim.io.nifti import MaskRoi, nifti_affine, read_roi_mask, write_nifti
from mpisim.phantoms import supersampled_fill
from mpisim.reconstruction import Reconstruction, RecoParams


GRID3 = Grid((19, 19, 19), (38e-3, 38e-3, 19e-3), (1.5e-3, -2e-3, 0.5e-3))
"""19³ voxels over 38 × 38 × 19 mm: 2 × 2 × 1 mm voxels, off centre."""


def _indices(grid):
    """(N, 4) homogeneous voxel indices, x fastest (the order of grid.positions())."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij")
    return np.stack([i.ravel(order="F"), j.ravel(order="F"), k.ravel(order="F"), np.ones(grid.size)], axis=1)


def _smooth(grid):
    """A smooth positive test image (mol/L) on ``grid``."""
    p = grid.positions()
    return grid.unflatten(0.05 + 0.02 * np.cos(p[:, 0] * 150) * np.exp(-((p[:, 1] - 2e-3) / 15e-3) ** 2)
                          + 3.0 * p[:, 2])


def _ball_mask(path, center_mm, radius_mm, voxel_mm=0.25, margin_mm=1.0, code=1):
    """A finer NIfTI mask "drawn in the exported space": voxels with centres within the ball are 1."""
    c = np.asarray(center_mm, float)
    n = int(np.ceil(2 * (radius_mm + margin_mm) / voxel_mm))
    origin = c - (n - 1) / 2 * voxel_mm
    aff = np.diag([voxel_mm] * 3 + [1.0])
    aff[:3, 3] = origin
    ax = [origin[i] + np.arange(n) * voxel_mm for i in range(3)]
    X, Y, Z = np.meshgrid(*ax, indexing="ij")
    data = (((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2) <= radius_mm ** 2).astype(np.uint8)
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=code)
    img.set_qform(aff, code=code)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return data


def _ball_weights(grid, center_mm, radius_mm, samples=6):
    c = np.asarray(center_mm) * 1e-3
    r = radius_mm * 1e-3

    def inside(x, y, z):
        return (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r
    return grid.flatten(supersampled_fill(grid, inside, samples))


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# --- the affine ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grid", [
    GRID3,
    Grid((7, 5, 3), (14e-3, 4e-3, 9e-3), (-3e-3, 7e-3, 11e-3)),
    Grid((25, 17, 1), (30e-3, 17e-3, 1e-3), (2e-3, -1e-3, 0.3e-3)),        # 2D: one voxel along z
], ids=["19cubed", "anisotropic", "2d"])
def test_affine_maps_indices_to_voxel_centres_in_mm(grid):
    a = nifti_affine(grid)
    assert a.shape == (4, 4)
    np.testing.assert_allclose((a @ _indices(grid).T).T[:, :3], grid.positions() * 1e3, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.diag(a)[:3], grid.spacing * 1e3, rtol=1e-12)
    assert np.all(a[:3, :3] == np.diag(np.diag(a)[:3])) and np.all(a[3] == [0, 0, 0, 1])


# --- writing ---------------------------------------------------------------------------------------------------

def test_round_trip_of_a_reconstruction(tmp_path):
    vols = [_smooth(GRID3), 2 * _smooth(GRID3)]
    reco = Reconstruction(np.stack([GRID3.flatten(v) for v in vols]), GRID3, RecoParams())
    out = tmp_path / "reco.nii.gz"
    assert write_nifti(out, reco, frame=1) == out
    img = nib.load(str(out))
    assert img.get_data_dtype() == np.float32
    data = np.asarray(img.dataobj)
    assert data.dtype == np.float32 and data.shape == GRID3.shape
    np.testing.assert_array_equal(data, vols[1].astype(np.float32))
    np.testing.assert_allclose(img.affine, nifti_affine(GRID3), atol=1e-6)
    sform, scode = img.get_sform(coded=True)
    qform, qcode = img.get_qform(coded=True)
    assert int(scode) == 1 and int(qcode) == 1
    np.testing.assert_allclose(sform, nifti_affine(GRID3), atol=1e-6)
    np.testing.assert_allclose(qform, nifti_affine(GRID3), atol=1e-6)
    assert img.header.get_xyzt_units()[0] == "mm"
    assert img.header["descrip"].item().decode() == "iron concentration mol/L"
    with gzip.open(out) as f:                                    # really gzip-compressed
        assert len(f.read()) > GRID3.size * 4
    assert _files(tmp_path) == ["reco.nii.gz"]


def test_array_with_grid_cell_map_and_2d(tmp_path):
    g = Grid((25, 17, 1), (30e-3, 17e-3, 1e-3), (2e-3, -1e-3, 0.3e-3))
    cells = np.arange(g.size, dtype=float).reshape(g.shape, order="F") * 3.5
    write_nifti(tmp_path / "cells.nii", cells, g, unit="cells")
    img = nib.load(str(tmp_path / "cells.nii"))
    np.testing.assert_array_equal(np.asarray(img.dataobj)[..., 0] if img.ndim == 3 else img.dataobj,
                                  cells[..., 0].astype(np.float32))
    assert img.shape[:2] == (25, 17)
    assert img.header["descrip"].item().decode() == "cells per voxel"
    np.testing.assert_allclose(img.affine, nifti_affine(g), atol=1e-6)
    write_nifti(tmp_path / "x.nii", cells, g, description="my own   words")
    assert nib.load(str(tmp_path / "x.nii")).header["descrip"].item().decode() == "my own words"


def test_overwrite(tmp_path):
    out = tmp_path / "a.nii"
    write_nifti(out, np.ones(GRID3.shape), GRID3)
    with pytest.raises(MPISimError, match="output exists"):
        write_nifti(out, np.zeros(GRID3.shape), GRID3)
    assert np.asarray(nib.load(str(out)).dataobj).min() == 1
    write_nifti(out, np.zeros(GRID3.shape), GRID3, overwrite=True)
    assert np.asarray(nib.load(str(out)).dataobj).max() == 0
    assert _files(tmp_path) == ["a.nii"]


@pytest.mark.parametrize("name, args, match", [
    ("a.nii.txt", {}, r"must end in \.nii or \.nii\.gz"),
    ("a.img", {}, r"must end in \.nii or \.nii\.gz"),
    ("a.nii", {"nan": True}, "NaN, Inf"),
    ("a.nii", {"shape": (19, 19, 18)}, "does not match grid shape"),
    ("a.nii", {"nogrid": True}, "needs its grid"),
])
def test_bad_output_writes_nothing(tmp_path, name, args, match):
    vol = np.ones(args.get("shape", GRID3.shape))
    if args.get("nan"):
        vol[3, 4, 5] = np.nan
    with pytest.raises(MPISimError, match=match) as e:
        write_nifti(tmp_path / name, vol, None if args.get("nogrid") else GRID3)
    assert "\n" not in str(e.value)
    assert _files(tmp_path) == []


def test_bad_frame(tmp_path):
    reco = Reconstruction(np.ones((1, GRID3.size)), GRID3, RecoParams())
    with pytest.raises(MPISimError, match="frame"):
        write_nifti(tmp_path / "a.nii", reco, frame=1)
    assert _files(tmp_path) == []


# --- masks back in ------------------------------------------------------------------------------------------

def test_mask_on_the_exported_grid_comes_back_exactly(tmp_path):
    rng = np.random.default_rng(3)
    mask = (rng.random(GRID3.shape) < 0.3).astype(np.uint8)
    write_nifti(tmp_path / "reco.nii", _smooth(GRID3), GRID3)
    ref = nib.load(str(tmp_path / "reco.nii"))                  # what a lab's tool would draw on
    nib.save(nib.Nifti1Image(mask, ref.affine, ref.header), str(tmp_path / "roi.nii.gz"))
    w = read_roi_mask(tmp_path / "roi.nii.gz", GRID3)
    assert w.dtype == np.float64 and w.shape == (GRID3.size,)
    np.testing.assert_array_equal(w, GRID3.flatten(mask).astype(float))
    # 2D: the same on a grid with one voxel along z
    g2 = Grid((25, 17, 1), (30e-3, 17e-3, 1e-3), (2e-3, -1e-3, 0.3e-3))
    m2 = (rng.random(g2.shape) < 0.4).astype(np.float32)
    nib.save(nib.Nifti1Image(m2, nifti_affine(g2)), str(tmp_path / "roi2.nii"))
    np.testing.assert_array_equal(read_roi_mask(tmp_path / "roi2.nii", g2), g2.flatten(m2))


def test_fractional_mask_values_are_weights_and_labels_count_as_one(tmp_path):
    frac = np.zeros(GRID3.shape, np.float32)
    frac[5, 6, 7], frac[8, 8, 8] = 0.25, 1.0
    nib.save(nib.Nifti1Image(frac, nifti_affine(GRID3)), str(tmp_path / "frac.nii"))
    w = GRID3.unflatten(read_roi_mask(tmp_path / "frac.nii", GRID3))
    assert w[5, 6, 7] == pytest.approx(0.25, abs=1e-12) and w[8, 8, 8] == 1.0 and w.sum() == pytest.approx(1.25)
    labels = np.zeros(GRID3.shape, np.uint8)
    labels[1, 2, 3], labels[4, 5, 6] = 255, 2
    nib.save(nib.Nifti1Image(labels, nifti_affine(GRID3)), str(tmp_path / "labels.nii"))
    w = GRID3.unflatten(read_roi_mask(tmp_path / "labels.nii", GRID3))
    assert w[1, 2, 3] == 1.0 and w[4, 5, 6] == 1.0 and w.sum() == 2.0


@pytest.mark.parametrize("center_mm, radius_mm", [((3.3, -4.1, 1.7), 6.2), ((-10.2, 7.9, -3.6), 3.1)])
def test_finer_sphere_mask_round_trip(tmp_path, center_mm, radius_mm):
    """The issue's round trip: export, draw a ball on a finer grid in that space, read it back onto the
    reconstruction grid: the partial-voxel weights of the ball, computed directly, within the sampling error."""
    write_nifti(tmp_path / "reco.nii.gz", _smooth(GRID3), GRID3)
    _ball_mask(tmp_path / "ball.nii.gz", center_mm, radius_mm)
    w = read_roi_mask(tmp_path / "ball.nii.gz", GRID3)
    ref = _ball_weights(GRID3, center_mm, radius_mm)
    assert 0 <= w.min() and w.max() <= 1
    assert np.sum(w > 0) > 20 and np.sum((w > 0) & (w < 1)) > 10            # partial voxels really occur
    assert abs(w.sum() - ref.sum()) < 0.02 * ref.sum()
    # the ball's true volume (mm³) against the weights × voxel volume
    ball = 4 / 3 * np.pi * radius_mm ** 3
    assert w.sum() * GRID3.voxel_volume * 1e9 == pytest.approx(ball, rel=0.03)
    img = GRID3.flatten(_smooth(GRID3))
    assert abs(w @ img - ref @ img) < 0.02 * (ref @ img)
    assert np.abs(w - ref).max() < 0.2                                   # voxel by voxel, too
    assert np.corrcoef(w, ref)[0, 1] > 0.99


def test_shifted_mask_is_not_the_same(tmp_path):
    """The affine is really used: the same ball drawn 4 mm off gives different weights."""
    _ball_mask(tmp_path / "ball.nii", (3.3, -4.1, 1.7), 6.2)
    _ball_mask(tmp_path / "off.nii", (7.3, -4.1, 1.7), 6.2)
    a, b = read_roi_mask(tmp_path / "ball.nii", GRID3), read_roi_mask(tmp_path / "off.nii", GRID3)
    ref = _ball_weights(GRID3, (7.3, -4.1, 1.7), 6.2)
    assert np.abs(a - b).sum() > 0.5 * a.sum()
    assert abs(b.sum() - ref.sum()) < 0.02 * ref.sum() and np.abs(b - ref).max() < 0.2


def test_mask_on_2d_grid_takes_the_centre_plane(tmp_path):
    g2 = Grid((25, 25, 1), (30e-3, 30e-3, 1e-3), (0.0, 0.0, 0.0))
    _ball_mask(tmp_path / "ball.nii", (2.1, -1.3, 0.0), 5.0)
    w = read_roi_mask(tmp_path / "ball.nii", g2)
    c, r = (2.1e-3, -1.3e-3), 5e-3
    ref = g2.flatten(supersampled_fill(g2, lambda x, y, z: (x - c[0]) ** 2 + (y - c[1]) ** 2 <= r * r, 6))
    assert abs(w.sum() - ref.sum()) < 0.02 * ref.sum()


def test_mask_roi_protocol(tmp_path):
    _ball_mask(tmp_path / "graft.nii.gz", (3.3, -4.1, 1.7), 6.2)
    roi = MaskRoi(tmp_path / "graft.nii.gz")
    assert roi.name == "graft" and MaskRoi(tmp_path / "graft.nii.gz", "left").name == "left"
    [(name, w, vol)] = roi.weights(GRID3)
    assert name == "graft" and vol is None
    np.testing.assert_array_equal(w, read_roi_mask(tmp_path / "graft.nii.gz", GRID3))
    [(name, m, vol)] = roi.masks(GRID3)
    assert m.dtype == bool and np.array_equal(m, w > 0.5) and vol is None
    # a mask smaller than half a voxel: masks() falls back to every voxel it touches
    _ball_mask(tmp_path / "speck.nii", (0.9, 1.1, 0.4), 0.4)
    [(_, m, _)] = MaskRoi(tmp_path / "speck.nii").masks(GRID3)
    assert m.any() and not np.any(MaskRoi(tmp_path / "speck.nii").weights(GRID3)[0][1] > 0.5)


def _save(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, nifti_affine(GRID3) if affine is None else affine), str(path))


@pytest.mark.parametrize("case, match", [
    ("text", "not a NIfTI file"),
    ("garbage", "not a NIfTI file"),
    ("analyze", "not a NIfTI file"),
    ("missing", "not found"),
    ("negative", "negative values"),
    ("nan", "NaN or Inf"),
    ("empty", "is empty"),
    ("outside", r"outside the reconstruction's field of view \(x, y, z in mm: -17.5..20.5, -21..17, -9..10\)"),
    ("4d", "holds 2 volumes"),
])
def test_bad_masks(tmp_path, case, match):
    p = tmp_path / "roi.nii"
    ones = np.zeros(GRID3.shape, np.float32)
    ones[3:6, 3:6, 3:6] = 1
    if case == "text":
        p = tmp_path / "roi.txt"
        p.write_text("this is not an image\n")
    elif case == "garbage":
        p.write_bytes(b"\x00" * 100)
    elif case == "analyze":
        p = tmp_path / "roi.img"
        nib.save(nib.AnalyzeImage(ones, nifti_affine(GRID3)), str(p))
    elif case == "negative":
        ones[0, 0, 0] = -1
        _save(p, ones)
    elif case == "nan":
        ones[0, 0, 0] = np.nan
        _save(p, ones)
    elif case == "empty":
        _save(p, np.zeros(GRID3.shape, np.uint8))
    elif case == "outside":
        aff = nifti_affine(GRID3)
        aff[:3, 3] += [100, 0, 0]
        _save(p, ones, aff)
    elif case == "4d":
        _save(p, np.stack([ones, ones], axis=-1))
    before = _files(tmp_path)
    with pytest.raises(MPISimError, match=match) as e:
        read_roi_mask(p, GRID3, name="graft")
    assert "\n" not in str(e.value) and str(p) in str(e.value)
    assert _files(tmp_path) == before


def test_single_volume_4d_mask_is_accepted(tmp_path):
    m = np.zeros(GRID3.shape + (1,), np.uint8)
    m[2, 3, 4, 0] = 1
    _save(tmp_path / "m.nii", m)
    w = read_roi_mask(tmp_path / "m.nii", GRID3)
    assert w.sum() == 1.0 and GRID3.unflatten(w)[2, 3, 4] == 1.0
