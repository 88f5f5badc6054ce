import h5py
import numpy as np
import pytest

import mpisim
from mpisim.io.mdf import format_info, read_header, read_mdf, write_mdf
from mpisim.phantoms import get_phantom
from mpisim.forward import SimulationSettings, simulate


@pytest.fixture(scope="module")
def meas():
    sc = mpisim.get_scanner("bruker-2d")
    return simulate(sc, mpisim.Tracer(), get_phantom("shapes", sc),
                    SimulationSettings.realistic(sc, frames=3, background_frames=2, seed=4))


def test_round_trip(meas, tmp_path):
    p = tmp_path / "m.mdf"
    write_mdf(p, meas)
    back = read_mdf(p)
    np.testing.assert_array_equal(back.data, meas.data)
    np.testing.assert_array_equal(back.is_background, meas.is_background)
    assert back.scanner == meas.scanner and back.tracer == meas.tracer
    assert back.bandwidth == meas.bandwidth and back.num_samples == meas.num_samples
    np.testing.assert_allclose(back.drive_frequencies, meas.drive_frequencies)
    np.testing.assert_allclose(back.gradient, meas.gradient)
    np.testing.assert_allclose(back.truth.concentration, meas.phantom.concentration)


def test_layout_as_spec_with_plain_h5py(meas, tmp_path):
    p = tmp_path / "m.mdf"
    write_mdf(p, meas)
    with h5py.File(p, "r") as h:
        assert h["version"][()] == b"2.1.0"
        for g in ("study", "experiment", "scanner", "acquisition", "tracer", "measurement"):
            assert g in h
        assert h["experiment/isSimulation"].dtype == np.int8 and h["experiment/isSimulation"][()] == 1
        assert h["measurement/data"].shape == (5, 1, 3, 1632)
        assert h["acquisition/gradient"].shape == (1, 1, 3, 3)
        assert h["acquisition/drivefield/divider"].shape == (2, 1)
        assert h["acquisition/drivefield/divider"].dtype == np.int64
        assert h["acquisition/drivefield/strength"].shape == (1, 2, 1)
        assert h["acquisition/drivefield/phase"].shape == (1, 2, 1)
        assert h["acquisition/drivefield/cycle"][()] == pytest.approx(652.8e-6)
        assert h["acquisition/receiver/numSamplingPoints"][()] == 1632
        assert h["tracer/concentration"].shape == (1,)
        assert h["tracer/solute"][0] == b"Fe"
        assert h["measurement/isBackgroundFrame"][()].tolist() == [1, 1, 0, 0, 0]
        for flag in ("isFourierTransformed", "isFastFrameAxis", "isBackgroundCorrected"):
            assert h[f"measurement/{flag}"].dtype == np.int8 and h[f"measurement/{flag}"][()] == 0
        assert not any(len(obj.attrs) for obj in [h, h["measurement/data"]])
        assert "scanner" in h["_mpisim"]


def test_info_on_shared_files(shared_data):
    files = sorted(shared_data.glob("*.mdf"))
    assert len(files) >= 2
    for f in files:
        text = format_info(read_header(f))
        assert "MDF version" in text and "sequence" in text


def test_read_real_robot_scan(shared_data):
    m = read_mdf(shared_data / "real_1d_robot_scan.mdf")
    assert m.data.shape == (9, 1, 1, 152)
    assert m.bandwidth == pytest.approx(1.953125e6)
    assert m.drive_frequencies[0] == pytest.approx(125e6 / 4864)
    assert not m.provenance.is_simulation
