"""The noise level behind the stopping rule, λ auto and the error bars (mpisim.reco.noise)."""

import json

import numpy as np
import pytest

import mpisim
from mpisim.reco.noise import contaminated_bins, noise_level
from mpisim.reco.preprocess import measurement_spectra
from mpisim.reconstruction import RecoParams


def scan(phantom_scale=1.0, background_frames=10, frames=1, seed=1, **kw):
    sc = mpisim.get_scanner("bruker-2d")
    ph = mpisim.get_phantom("shapes", sc).scaled(phantom_scale)
    st = mpisim.SimulationSettings.realistic(sc, frames=frames, background_frames=background_frames, seed=seed, **kw)
    return sc, mpisim.simulate(sc, mpisim.Tracer(), ph, st)


def true_bin_sigma(sc, averages=1):
    """σ of one complex rfft bin of one frame: E|z|² = V σ_t², σ_t = density·√bandwidth/√averages."""
    rx = sc.receiver
    return rx.noise_density * np.sqrt(rx.bandwidth / averages) * np.sqrt(sc.num_samples)


@pytest.mark.parametrize("E", [3, 10, 30])
def test_background_frames_give_an_unbiased_noise_level(E):
    sc, m = scan(background_frames=E, seed=E)
    lv = noise_level(m, measurement_spectra(m), RecoParams())
    ratio = np.median(lv.frame_sigma) / true_bin_sigma(sc)
    assert ratio == pytest.approx(1.0, abs=0.06 if E >= 10 else 0.15)
    assert "background frames" in lv.source


def test_subtraction_and_averaging_enter_as_one_over_average_plus_one_over_E():
    sc, m = scan(background_frames=10, frames=20)
    spec = measurement_spectra(m)
    one = noise_level(m, spec, RecoParams())
    avg = noise_level(m, spec, RecoParams(average=10))
    np.testing.assert_allclose(avg.sigma**2 / avg.frame_sigma**2, 1 / 10 + 1 / 10)
    np.testing.assert_allclose(one.sigma**2 / one.frame_sigma**2, 1 + 1 / 10)


def test_stated_noise_without_background_frames():
    sc, m = scan(background_frames=0, averages=4)
    lv = noise_level(m, measurement_spectra(m), RecoParams())
    assert lv.source.startswith("noise density stated")
    assert np.median(lv.sigma) == pytest.approx(true_bin_sigma(sc, 4), rel=1e-9)


def test_noise_free_data_have_no_noise_level():
    sc, m = scan(noise_density=0.0, background_level=0.0)
    assert noise_level(m, measurement_spectra(m), RecoParams()) is None
    from mpisim.systemmatrix import build_system_matrix, default_grid

    r = mpisim.reconstruct(m, build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (15, 15, 1))),
                           uncertainty_samples=4)
    assert r.noise is None and "no error bars" in r.info["uncertainty"]


def test_contamination_marks_drift_not_the_sample():
    """A drifting background bin is flagged; a static background and the sample's strength are not."""
    sc, blank = scan(phantom_scale=1e-6)
    _, strong = scan(phantom_scale=1.0)
    for m in (blank, strong):
        assert not contaminated_bins(measurement_spectra(m)[m.background_frames]).any()
    spec = measurement_spectra(strong)
    k = 40
    bg = strong.background_frames
    spec[bg[len(bg) // 2:], 0, k] += 50 * true_bin_sigma(sc)              # the empty scanner drifts at bin 40
    flagged = contaminated_bins(spec[bg])
    assert flagged[0, k] and flagged.sum() == 1


def test_frequency_selected_measurement_keeps_its_noise_level(tmp_path):
    from mpisim.io.convert import convert
    from mpisim.io.mdf import read_mdf, write_mdf

    sc, m = scan()
    write_mdf(tmp_path / "m.mdf", m)
    convert(tmp_path / "m.mdf", tmp_path / "f.mdf", "frequency", 100e3, 600e3, False, None)
    f = read_mdf(tmp_path / "f.mdf")
    spec = measurement_spectra(f)
    lv = noise_level(f, spec, RecoParams())
    held = np.isfinite(lv.frame_sigma[0])
    assert held.sum() == f.frequency_selection.size
    assert np.median(lv.frame_sigma[:, held]) == pytest.approx(true_bin_sigma(sc), rel=0.08)


def test_quantify_json_without_error_bars_is_valid_json(tmp_path, capsys):
    from mpisim.cli import main
    from mpisim.io.reco_mdf import write_reconstruction
    from mpisim.systemmatrix import build_system_matrix, default_grid

    sc, m = scan()
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (15, 15, 1)))
    write_reconstruction(tmp_path / "r.mdf", mpisim.reconstruct(m, S, uncertainty_samples=0))
    capsys.readouterr()
    assert main(["quantify", str(tmp_path / "r.mdf"), "--json"]) == 0

    def refuse(c):
        raise ValueError(f"not JSON: {c}")

    out = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert out["rois"][0]["iron_95_ng"] == [None, None] and out["noise_samples"] == 0


def test_noise_draws_are_reproducible_per_file_and_independent_across_measurements():
    """The same data give the same error bars; different scans get independent draws (one fixed set of
    draws would put the same sampling error of σ into every scan's interval)."""
    from mpisim.systemmatrix import build_system_matrix, default_grid

    sc, m1 = scan(seed=1)
    _, m2 = scan(seed=2)
    S = build_system_matrix(sc, mpisim.Tracer(), default_grid(sc, (15, 15, 1)))
    a, b = mpisim.reconstruct(m1, S), mpisim.reconstruct(m1, S)
    c = mpisim.reconstruct(m2, S)
    np.testing.assert_array_equal(a.noise, b.noise)
    assert np.corrcoef(a.noise.sum(axis=1), c.noise.sum(axis=1))[0, 1] < 0.9


def test_separate_empty_measurement_with_other_averages():
    """An empty-scanner file recorded with 4 averages sets the noise of a 1-average measurement: its
    per-frame variance is 4× smaller and is scaled back (plus the subtraction term of its own mean)."""
    sc, m = scan(background_frames=0)
    _, empty = scan(phantom_scale=0.0, background_frames=0, frames=12, averages=4, seed=9)
    spec = measurement_spectra(m)
    lv = noise_level(m, spec, RecoParams(background="empty.mdf"), measurement_spectra(empty),
                     background_scale=4.0)
    expected = np.sqrt(true_bin_sigma(sc) ** 2 + true_bin_sigma(sc, 4) ** 2 / 12)
    assert np.median(lv.sigma) == pytest.approx(expected, rel=0.06)
