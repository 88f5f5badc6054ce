"""Reading MDF files as other tools write them (plain h5py, MPIFiles.jl layout) and reconstructing."""

import h5py
import numpy as np
import pytest

import mpisim
from mpisim.cli import main
from mpisim.errors import MPISimError
from mpisim.io.mdf import read_header, read_mdf
from mpisim.io.reco_mdf import read_reconstruction
from mpisim.io.sm_file import load_system_matrix
from mpisim.io.transfer_file import load_transfer_function

import mdf_factory as F
from helpers import ncc


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpifiles")
    F.write_mpifiles_sm(d / "sm.mdf")
    c, volts = F.write_mpifiles_meas(d / "meas.mdf")
    return d, c, volts


def test_mpifiles_pair_reconstructs(pair, capsys):
    d, c, _ = pair
    out = d / "reco.mdf"
    assert main(["reco", str(d / "meas.mdf"), "--sm", str(d / "sm.mdf"), "--out", str(out), "--min-freq", "30e3",
                 "--lambda", "1e-3", "--iterations", "50", "--snr-threshold", "3"]) == 0
    r = read_reconstruction(out)
    assert r.unit == "mol/L"
    for f in range(r.num_frames):
        assert ncc(r.image[f], c) >= 0.9
    assert r.image[0].sum() == pytest.approx(c.sum(), rel=0.25)


def test_mpifiles_pair_reconstructs_with_defaults(pair):
    """The MPIFiles-layout pair under mpisim's default reconstruction (no options)."""
    d, c, _ = pair
    out = d / "reco-defaults.mdf"
    assert main(["reco", str(d / "meas.mdf"), "--sm", str(d / "sm.mdf"), "--out", str(out)]) == 0
    r = read_reconstruction(out)
    for f in range(r.num_frames):
        assert ncc(r.image[f], c) >= 0.9
    assert r.info["lambda"] == 1e-2 and r.info["uncertainty_samples"] == 16


def test_int16_conversion_and_background_first(pair):
    d, c, volts = pair
    m = read_mdf(d / "meas.mdf")
    assert m.data.dtype == np.float64
    assert m.is_background.tolist() == [True] * 4 + [False] * 3
    a = np.abs(volts).max() / 30000
    assert np.abs(m.data - volts).max() <= 0.51 * a


def test_sm_with_background_and_permutation(pair):
    d, _, _ = pair
    S = load_system_matrix(d / "sm.mdf")
    assert S.data.shape == (2, 817, 169) and S.background.shape == (2, 817, 6)
    assert S.grid.shape == (13, 13, 1) and S.unit == "mol/L"


@pytest.mark.parametrize("kw", [dict(fast_axis=True), dict(old_names=True), dict(gradient_shape=(3,)),
                                dict(gradient_shape=(1, 3)), dict(gradient_shape=(1, 3, 3)),
                                dict(divider_layout="FD"), dict(scalar_strings=True), dict(bg_position="random")])
def test_reader_tolerates_real_world_deviations(tmp_path, kw):
    p = tmp_path / "m.mdf"
    c, volts = F.write_mpifiles_meas(p, **kw)
    m = read_mdf(p)
    assert m.data.shape == (7, 1, 2, F.V)
    np.testing.assert_allclose(m.drive_frequencies, [F.BASE / 102, F.BASE / 96])
    np.testing.assert_allclose(np.diag(m.gradient), [-1, -1, 2])
    assert m.is_background.sum() == 4
    assert np.abs(m.data - volts).max() < 1e-3 * np.abs(volts).max()
    info = read_header(p)
    assert info["num_periods"] == 1


def test_v1_complex_and_frequency_selected_matrix(tmp_path, pair):
    d, c, _ = pair
    F.write_mpifiles_sm(tmp_path / "v1.mdf", v1_complex=True)
    S1 = load_system_matrix(tmp_path / "v1.mdf")
    S0 = load_system_matrix(d / "sm.mdf")
    np.testing.assert_allclose(S1.data, S0.data, rtol=1e-6, atol=1e-12)
    sel = np.arange(20, 600, 2)
    F.write_mpifiles_sm(tmp_path / "fs.mdf", freq_select=sel)
    S2 = load_system_matrix(tmp_path / "fs.mdf")
    assert S2.data.shape == (2, sel.size, 169)
    np.testing.assert_array_equal(S2.bins, sel)
    np.testing.assert_allclose(S2.data, S0.data[:, sel], rtol=1e-6)
    out = tmp_path / "r.mdf"
    assert main(["reco", str(d / "meas.mdf"), "--sm", str(tmp_path / "fs.mdf"), "--out", str(out),
                 "--min-freq", "30e3", "--lambda", "1e-3", "--iterations", "50", "--snr-threshold", "3"]) == 0
    assert ncc(read_reconstruction(out).image[0], c) >= 0.9


def test_transfer_function_file_layouts(shared_data, tmp_path):
    tf = load_transfer_function(shared_data / "transfer_function_preinstalled_3ch.h5")
    assert tf.num_rx_channels == 3 and tf.frequencies[0] == pytest.approx(10e3) and tf.frequencies[-1] == pytest.approx(1.5e6)
    with h5py.File(shared_data / "transfer_function_preinstalled_3ch.h5", "r") as h:
        raw = h["transferFunction"][()]
        f = h["frequencies"][()]
    # on its own nodes the interpolation is exact
    np.testing.assert_allclose(tf.at(f[:50]), raw[:, :50, 0] + 1j * raw[:, :50, 1], rtol=1e-12)
    # the complex (C, K) layout gives the same function
    with h5py.File(tmp_path / "tf.h5", "w") as h:
        h["transferFunction"] = raw[..., 0] + 1j * raw[..., 1]
        h["frequencies"] = f
    tf2 = load_transfer_function(tmp_path / "tf.h5")
    freqs = np.linspace(20e3, 1.2e6, 333)
    np.testing.assert_allclose(tf2.at(freqs), tf.at(freqs))


def test_simulate_with_transfer_function_and_correct_it(shared_data, tmp_path):
    sc = mpisim.get_scanner("bruker-2d")
    tfp = str(shared_data / "transfer_function_preinstalled_3ch.h5")
    from mpisim.phantoms import point

    ph = point(sc, 0.05, center=(0.002, 0.001, 0))
    plain = mpisim.simulate(sc, mpisim.Tracer(), ph)
    withtf = mpisim.simulate(sc, mpisim.Tracer(), ph, transfer_function=tfp)
    mpisim.write_mdf(tmp_path / "m.mdf", withtf)
    back = read_mdf(tmp_path / "m.mdf")
    assert back.transfer_function is not None and back.transfer_function.shape == (3, 817)
    from mpisim.reco.preprocess import measurement_spectra

    corrected = measurement_spectra(back)[0]
    ref = plain.spectra()[0, 0]
    band = (sc.frequencies > 15e3) & (sc.frequencies < 1.2e6)
    np.testing.assert_allclose(corrected[:, band], ref[:, band], atol=1e-6 * np.abs(ref).max())


def test_every_shared_file_is_read(shared_data, capsys):
    for p in sorted(shared_data.glob("*.mdf")):
        assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "MDF version: 2.0" in out and "MDF version: 2.1.0" in out
    assert "TestSimpleSimulatedScanner" in out and "robot" in out
    with pytest.raises(MPISimError, match="mandatory group /measurement"):
        read_mdf(shared_data / "simulated_metadata_only_v2.1.mdf")


def test_convert_round_trip_and_band(pair, tmp_path, capsys):
    d, c, _ = pair
    src = d / "meas.mdf"
    before = src.read_bytes()
    assert main(["convert", str(src), str(tmp_path / "f.mdf")]) == 0
    assert main(["convert", str(tmp_path / "f.mdf"), str(tmp_path / "t.mdf"), "--to", "time"]) == 0
    np.testing.assert_allclose(read_mdf(tmp_path / "t.mdf").data, read_mdf(src).data, atol=1e-9)
    assert main(["convert", str(src), str(tmp_path / "b.mdf"), "--min-freq", "30e3", "--max-freq", "600e3"]) == 0
    with h5py.File(tmp_path / "b.mdf", "r") as h:
        assert h["measurement/isFrequencySelection"][()] == 1
        sel = h["measurement/frequencySelection"][()]
        f = np.fft.rfftfreq(F.V, 1 / (2 * F.BW))[sel - 1]
        assert f.min() >= 30e3 and f.max() <= 600e3
        assert h["measurement/data"].dtype.kind == "c"
    assert src.read_bytes() == before                     # input never modified
    out = tmp_path / "r.mdf"
    assert main(["reco", str(tmp_path / "b.mdf"), "--sm", str(d / "sm.mdf"), "--out", str(out), "--min-freq", "30e3",
                 "--lambda", "1e-3", "--iterations", "50", "--snr-threshold", "3"]) == 0
    assert ncc(read_reconstruction(out).image[0], c) >= 0.9
