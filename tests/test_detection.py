"""Detection limits (mpisim.detection): Currie's definition against tables, the data-domain σ₀ against the
spread of a matched filter over simulated noise frames, the image-domain limit measured from blank scans
against its prediction, design's and titrate's limits against the predicted ratio, and the studies' grid."""

import numpy as np
import pytest

import mpisim
from mpisim import design as D
from mpisim.detection import (currie, data_domain_limit, expected_ratio, image_domain_limit, matched_filter_sigma,
                              rows_limit)
from mpisim.errors import MPISimError
from mpisim.phantoms import graft, point
from mpisim.studies import StudySetup, study_grid_shape, titrate

Z95 = 1.6448536269514722          # standard normal 95 % quantile (tables)
T95 = {4: 2.131846786, 7: 1.894578605, 11: 1.795884819}      # Student t 95 % quantiles (tables)


def test_currie_against_tables():
    lc, ld = currie(1.0)
    assert lc == pytest.approx(Z95, rel=1e-9) and ld == pytest.approx(2 * Z95, rel=1e-9)     # 3.29 σ₀
    assert currie(2e-12, dof=7) == pytest.approx((2e-12 * T95[7], 4e-12 * T95[7]), rel=1e-8)
    lc, ld = currie(1.0, alpha=0.01, beta=0.05)
    assert lc == pytest.approx(2.326347874, rel=1e-8) and ld == pytest.approx(2.326347874 + Z95, rel=1e-8)
    for bad in (dict(sigma0=0.0), dict(sigma0=1.0, alpha=0.6), dict(sigma0=1.0, dof=0)):
        with pytest.raises(MPISimError):
            currie(**bad)


def test_image_domain_limit_from_blanks_and_realisations():
    x = np.array([1.0, -2.0, 0.5, 3.0, -1.5]) * 1e-12                  # ROI iron of 5 blank scans, kg
    s0 = np.std(x, ddof=1) * np.sqrt(1 + 1 / 5)                          # net: the blank mean is subtracted
    lim = image_domain_limit(x)
    assert lim.domain == "image" and lim.dof == 4 and lim.sigma0 == pytest.approx(s0, rel=1e-12)
    assert tuple(lim) == pytest.approx((T95[4] * s0, 2 * T95[4] * s0), rel=1e-8)
    pred = image_domain_limit(x, realisation_sigma=[1e-12, 2e-12, 2e-12, 1e-12, 1e-12], samples=16)
    assert pred.sigma0 == pytest.approx(np.sqrt(11 / 5) * 1e-12 * np.sqrt(1.2), rel=1e-12) and pred.dof == 75
    assert "predicted" in pred.method and "measured" in lim.method
    with pytest.raises(MPISimError):
        image_domain_limit([1e-12])


def _spectra(sc, tr, ph, **kw):
    m = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, **kw))
    return m.full_spectra().mean(axis=1)                                 # (N, C, K) raw, transfer function kept


def test_data_domain_sigma_is_the_spread_of_the_matched_filter_over_noise_frames():
    """σ₀ of the data domain = SD of Re(uᴴd)/‖u‖² over 2000 realistic noise-only frames (background and
    feed-through included), with the template u from noise-free simulations; L_C is exceeded by 5 % of them."""
    sc, tr = mpisim.get_scanner("bruker-2d"), mpisim.Tracer()
    ph = point(sc)
    blank = graft(sc, cells=0, iron_per_cell=1e-14, separation=1e-9, graft_radius=1e-3, unlabelled_cells=0)
    quiet = dict(noise_density=0.0, background_level=0.0)
    u = (_spectra(sc, tr, ph, **quiet)[0] - _spectra(sc, tr, blank, **quiet)[0]) / ph.iron_mass
    u[:, 0] = 0
    d = _spectra(sc, tr, blank, frames=2000, seed=5)
    x = np.real(np.einsum("ck,nck->n", u.conj(), d - d.mean(axis=0))) / np.sum(np.abs(u) ** 2)
    lim = data_domain_limit(sc, tr)
    assert lim.sigma0 == pytest.approx(np.std(x, ddof=1), rel=0.06)
    assert lim.limit == pytest.approx(2 * Z95 * lim.sigma0, rel=1e-9)
    assert 0.035 < np.mean(x > lim.critical) < 0.065                   # α = 5 %
    # averages: σ/√n; design reports exactly this L_D
    st = D.DesignSettings(averages=100)
    assert data_domain_limit(sc, tr, st).sigma0 == pytest.approx(matched_filter_sigma(sc, tr) / 10, rel=1e-9)
    f = D.figures_of_merit(sc, tr, st)["detection_limit_iron"]
    assert f.value == pytest.approx(data_domain_limit(sc, tr, st).limit, rel=1e-12)
    assert "Currie L_D" in f.method and "data domain" in f.method


def test_titrate_limits_agree_with_their_prediction():
    """bruker-2d, 25 nm, 100 averages, 12 blank scans: the measured image-domain L_D agrees with the one
    predicted from the noise propagated through the reconstruction within a factor 2, and titrate's L_D
    over design's (data domain) is the predicted ratio within a factor 2; the ratio is ≫ 1."""
    res = titrate([1e4, 1e5], 10e-15, seeds=1, blank_seeds=12)
    lim, r = res["limits"], res["limits"]["ratios"]
    design = D.figures_of_merit("bruker-2d", mpisim.Tracer(), D.DesignSettings(averages=100))
    assert res["L_D_data_ng"] == pytest.approx(design["detection_limit_iron"].value * 1e12, rel=1e-9)
    assert res["grid"]["shape"] == [25, 25, 1] and res["grid"]["fov_mm"][:2] == pytest.approx([26.4, 26.4])
    # measured (blank spread, t with 11 dof) against predicted (noise realisations through the reconstruction)
    assert lim["image"]["dof"] == 11
    assert 0.5 < res["L_D_ng"] / lim["image_predicted"]["L_D_ng"] < 2
    # design's L_D and titrate's L_D relate as predicted
    measured_ratio = res["L_D_ng"] / res["L_D_data_ng"]
    assert 0.5 < measured_ratio / r["expected_LD_ratio"] < 2
    # where the ratio comes from: the rows only add the background subtraction √(1 + 1/10) ...
    assert r["rows_over_data"] == pytest.approx(np.sqrt(1.1), rel=0.05)
    # ... the reconstruction and the 8 mm ROI sum the rest: well above 1
    assert r["expected_sigma_ratio"] > 5 and r["measured_sigma_ratio"] > 5
    assert lim["recovery"] == pytest.approx(1.0, abs=0.1)
    assert res["L_D_cells"] == pytest.approx(res["L_D_ng"] * 1e-12 / 10e-15)
    assert all(row["above_L_C"] == [True] for row in res["rows"])     # 100 ng and 1 µg ≫ L_D


def test_rows_limit_and_expected_ratio_keys():
    sc, tr = mpisim.get_scanner("bruker-2d"), mpisim.Tracer()
    setup = StudySetup(grid=(9, 9, 1), averages=4)
    _, _, S = setup.prepare()
    meas = setup.measure(sc, tr, 0, 1e-14, 7)
    rows = rows_limit(meas, S)
    all_rows = rows_limit(meas, S, {"snr_threshold": 0.0})
    data = data_domain_limit(sc, tr, D.DesignSettings(averages=4))
    assert all_rows.sigma0 <= rows.sigma0 * (1 + 1e-9)                     # more rows, more information
    assert rows.sigma0 == pytest.approx(data.sigma0 * np.sqrt(1.1), rel=0.1)
    r = expected_ratio(data, rows, rows)
    assert r["expected_sigma_ratio"] == pytest.approx(r["rows_over_data"]) and "measured_LD_ratio" not in r


@pytest.mark.parametrize("name, shape", [("bruker-3d", (19, 19, 19)), ("bruker-2d", (25, 25, 1)),
                                         ("bruker-1d", (25, 1, 1))])
def test_study_grid_covers_every_driven_axis(name, shape):
    sc = mpisim.get_scanner(name)
    assert study_grid_shape(sc) == shape
    g = StudySetup(scanner=name).grid_for(sc)
    assert g.shape == shape
    for i in sc.driven_axes:
        assert g.shape[i] > 1 and g.fov[i] == pytest.approx(1.1 * sc.drive_fov[i])
    assert StudySetup(scanner=name, grid=(5, 5, 1)).grid_for(sc).shape == (5, 5, 1)


def test_titrate_command_uses_a_3d_grid_on_bruker_3d(monkeypatch, capsys):
    """Without running the study: the setup the command hands to titrate resolves to a 3D grid."""
    import mpisim.cli.studies as cs

    seen = {}

    def fake(cells, ipc, seeds, blank_seeds, setup, backend, progress):
        seen["grid"] = setup.grid_for(mpisim.get_scanner(setup.scanner))
        seen["blank_seeds"] = blank_seeds
        raise MPISimError("stop here")

    monkeypatch.setattr(cs, "titrate", fake)
    assert mpisim.cli.main(["titrate", "--scanner", "bruker-3d", "--cells", "1e3,1e4", "--blank-seeds", "5"]) == 2
    assert seen["grid"].shape == (19, 19, 19) and seen["blank_seeds"] == 5
    assert seen["grid"].fov == pytest.approx((0.0264, 0.0264, 0.0132))
    assert "stop here" in capsys.readouterr().err
    assert mpisim.cli.main(["titrate", "--cells", "1e3,1e4", "--blank-seeds", "1"]) == 2
    assert "--blank-seeds" in capsys.readouterr().err
