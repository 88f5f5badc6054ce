import json

import numpy as np
import pytest

import mpisim
from mpisim.cli import main
from mpisim.errors import MPISimError
from mpisim.phantoms import CONCENTRATION_PHANTOM_MMOL, from_toml, graft
from mpisim.quant import quantify
from mpisim.units import parse_mass
from mpisim.reco import reconstruct
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

RECO = dict(min_freq=30e3, lam=1e-3, iterations=100)


@pytest.fixture(scope="module")
def setup2d():
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    S = build_system_matrix(sc, tr, default_grid(sc, (25, 25, 1)), CalibrationSettings(background_frames=10))
    return sc, tr, S


def test_phantom_ground_truth():
    sc = mpisim.get_scanner("bruker-2d")
    ph = mpisim.get_phantom("concentration", sc)
    assert [c["concentration"] * 1e3 for c in ph.meta["chambers"]] == pytest.approx(list(CONCENTRATION_PHANTOM_MMOL))
    # each chamber holds concentration × (2 × 2 × 1 mm slab) of iron
    from mpisim.constants import FE_MOLAR_MASS
    expected = sum(CONCENTRATION_PHANTOM_MMOL) * 1e-3 * (2e-3 * 2e-3 * 1e-3) * 1e3 * FE_MOLAR_MASS
    assert ph.iron_mass == pytest.approx(expected, rel=0.02)
    g = graft(sc, cells=3e5, iron_per_cell=10e-15)
    assert g.iron_mass == pytest.approx(3e5 * 10e-15, rel=1e-9)
    assert g.meta["cells_map"].sum() == pytest.approx(3e5)
    shape3d = mpisim.get_phantom("shape", mpisim.get_scanner("bruker-3d"), resolution=0.5e-3)
    # the frustum (683.9 µL in full) clipped to the 3D phantom grid
    assert 0.2e-6 < (shape3d.concentration.sum() / 0.05) * shape3d.grid.voxel_volume < 0.7e-6


def test_concentration_phantom_linear(setup2d):
    sc, tr, S = setup2d
    ph = mpisim.get_phantom("concentration", sc)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=5))
    r = reconstruct(meas, S, **RECO)
    pos = S.grid.positions()
    est, true = [], []
    for ch in ph.meta["chambers"]:
        c = np.array(ch["center"])
        roi = np.hypot(pos[:, 0] - c[0], pos[:, 1] - c[1]) < 2.8e-3
        est.append(r.image[0][roi].sum() * S.grid.voxel_volume / (ch["size"] ** 2 * 1e-3))   # slab of 1 mm
        true.append(ch["concentration"])
    est, true = np.array(est), np.array(true)
    slope, icpt = np.polyfit(true, est, 1)
    r2 = 1 - np.sum((est - (slope * true + icpt)) ** 2) / np.sum((est - est.mean()) ** 2)
    assert r2 >= 0.98
    assert slope == pytest.approx(1.0, abs=0.10)


def test_striatal_graft_cell_count(setup2d, tmp_path):
    sc, tr, S = setup2d
    ph = graft(sc, cells=3e5, iron_per_cell=10e-15)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, averages=10,
                                                                           seed=2))
    r = reconstruct(meas, S, **RECO)
    lx, ly, _ = ph.meta["labelled_center"]
    rx, ry, _ = ph.meta["unlabelled_center"]
    rois = [f"labelled=sphere:{lx * 1e3},{ly * 1e3},0,3.2", f"unlabelled=sphere:{rx * 1e3},{ry * 1e3},0,3.2",
            "empty=sphere:0,-9,0,3.2"]
    res, extra = quantify(r, rois, 10e-15)
    lab, unl, empty = res
    assert lab.cells == pytest.approx(3e5, rel=0.15)
    # the unlabelled striatum reads like an empty region: within 3σ of it and < 2 % of the graft
    assert abs(unl.cells - empty.cells) <= 3 * max(unl.cells_sigma, 1.0) + 0.02 * lab.cells
    assert unl.cells < 0.02 * lab.cells


def test_quantify_cli_calibration_and_png(setup2d, tmp_path, capsys):
    from mpisim.io.reco_mdf import write_reconstruction

    sc, tr, S = setup2d
    ph = graft(sc, cells=1e5, iron_per_cell=20e-15)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=3))
    r = reconstruct(meas, S, **RECO)
    p = tmp_path / "r.mdf"
    write_reconstruction(p, r)
    x = ph.meta["labelled_center"][0] * 1e3
    assert main(["quantify", str(p), "--iron-per-cell", "20pg", "--roi", f"g=sphere:{x},0,0,3.2", "--json",
                 "--reference", f"sphere:{x},0,0,3.2", "--reference-iron", "2ug", "--png", str(tmp_path / "c.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    g = out["rois"][0]
    assert g["iron_ng"] == pytest.approx(2000, rel=1e-6)        # calibrated to the reference exactly
    assert g["cells"] == pytest.approx(1e5, rel=1e-6)
    assert 0.8 < out["calibration_factor"] < 1.2
    assert (tmp_path / "c.png").stat().st_size > 5000


@pytest.mark.parametrize("args,needle", [
    (["--iron-per-cell", "0pg"], "must be > 0"),
    (["--iron-per-cell=-3pg"], "must be > 0"),
    (["--roi", "sphere:500,0,0,1"], "outside the grid"),
    (["--roi", "cube:1,2"], "kind must be"),
])
def test_quantify_bad_input(setup2d, tmp_path, capsys, args, needle):
    from mpisim.io.reco_mdf import write_reconstruction

    sc, tr, S = setup2d
    meas = mpisim.simulate(sc, tr, graft(sc, cells=1e4), background_frames=2)
    p = tmp_path / "r.mdf"
    write_reconstruction(p, reconstruct(meas, S, iterations=2))
    assert main(["quantify", str(p), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_reconstruction_without_units(tmp_path, capsys):
    import mdf_factory as F

    F.write_mpifiles_sm(tmp_path / "sm.mdf", n=7)
    import h5py

    with h5py.File(tmp_path / "sm.mdf", "a") as h:     # no delta concentration → relative units
        del h["tracer/concentration"]
    F.write_mpifiles_meas(tmp_path / "m.mdf", n=7)
    assert main(["reco", str(tmp_path / "m.mdf"), "--sm", str(tmp_path / "sm.mdf"), "--out", str(tmp_path / "r.mdf"),
                 "--snr-threshold", "0"]) == 0
    capsys.readouterr()
    assert main(["quantify", str(tmp_path / "r.mdf")]) == 2
    assert "no concentration unit" in capsys.readouterr().err


def test_user_phantom_toml():
    sc = mpisim.get_scanner("bruker-2d")
    text = """
name = "two samples"
resolution = 0.25e-3
[[objects]]
type = "sphere"
center = [0.004, 0.0, 0.0]
radius = 0.0015
cells = 2e5
iron_per_cell = 5e-15
[[objects]]
type = "box"
center = [-0.004, 0.002, 0.0]
size = [0.002, 0.004, 0.001]
concentration = 0.02
"""
    ph = from_toml(text, sc, is_text=True)
    from mpisim.constants import FE_MOLAR_MASS
    box_iron = 0.02 * 1e3 * 2e-3 * 4e-3 * 1e-3 * FE_MOLAR_MASS
    assert ph.iron_mass == pytest.approx(2e5 * 5e-15 + box_iron, rel=0.03)
    with pytest.raises(MPISimError, match="type must be"):
        from_toml("[[objects]]\ntype='torus'", sc, is_text=True)
    with pytest.raises(MPISimError, match="outside"):
        from_toml("[[objects]]\ntype='sphere'\ncenter=[1,1,1]\nradius=0.001\nconcentration=1", sc, is_text=True)


def test_titration_and_tracking_small(tmp_path):
    from mpisim.studies import titrate, track

    res = titrate([1e3, 1e4, 1e5], 10e-15, seeds=2, blank_seeds=4)
    assert res["rows"][-1]["detected"]
    assert res["detection_limit_cells"] in (1e3, 1e4, 1e5)
    rec = np.mean(res["rows"][-1]["cells_recovered"])
    assert rec == pytest.approx(1e5, rel=0.2)
    tr = track([0, 30, 90], 3e5, 10e-15, death_rate=0.03, microglia_retention=0.5)
    rows = tr["rows"]
    # iron falls more slowly than live cells: apparent > live once cells die
    assert rows[-1]["apparent_cells"] > 1.5 * rows[-1]["live_cells"]
    assert rows[-1]["iron_true_ng"] == pytest.approx(3e5 * 10e-15 * 1e12 * (np.exp(-2.7) + 0.5 * (1 - np.exp(-2.7))))


def test_parsers():
    assert parse_mass("10pg") == pytest.approx(1e-14)
    assert parse_mass("2.5ug") == pytest.approx(2.5e-9)
    with pytest.raises(MPISimError):
        parse_mass("ten")


def test_tumour_homing_series():
    from mpisim.phantoms import tumour_series

    sc = mpisim.get_scanner("bruker-2d")
    series = tumour_series(sc, days=(0, 2, 7), max_cells=1e5, homing_time=2.0, iron_per_cell=5e-15)
    cells = [p.meta["cells"] for _, p in series]
    assert cells[0] == 0 and cells[1] == pytest.approx(1e5 * (1 - np.exp(-1)))
    assert series[2][1].iron_mass == pytest.approx(cells[2] * 5e-15, rel=1e-6)
    # the tumour sits at +x
    c = series[2][1].concentration[:, :, 0]
    assert c[c.shape[0] // 2:].sum() > 0.99 * c.sum()


def test_array_phantom_via_cli(tmp_path, capsys):
    a = np.zeros((20, 20, 1))
    a[8:12, 5:9, 0] = 0.05
    np.save(tmp_path / "p.npy", a)
    out = tmp_path / "m.mdf"
    assert main(["simulate", "--scanner", "bruker-2d", "--phantom", str(tmp_path / "p.npy"), "--out", str(out)]) == 0
    from mpisim.io.mdf import read_mdf

    truth = read_mdf(out).meta["truth"]["concentration"]
    np.testing.assert_array_equal(truth, a)
    (tmp_path / "bad.npy").write_bytes(b"nope")
    assert main(["simulate", "--phantom", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "x.mdf")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("spec", sorted((__import__("pathlib").Path(__file__).parents[1] / "phantoms").glob("*.toml")),
                         ids=lambda p: p.name)
def test_shipped_phantom_specs_simulate(spec, tmp_path):
    out = tmp_path / "m.mdf"
    assert main(["simulate", "--scanner", "bruker-2d", "--phantom", str(spec), "--out", str(out)]) == 0
    from mpisim.io.mdf import read_mdf

    assert read_mdf(out).meta["truth"]["concentration"].max() > 0
