import math

import numpy as np
import pytest

from mpisim.errors import MPISimError
from mpisim.scanner import PRESETS, Scanner, SelectionField, get_scanner


@pytest.mark.parametrize("name,V,fov", [("bruker-1d", 102, (0.024, 0, 0)), ("bruker-2d", 1632, (0.024, 0.024, 0)),
                                         ("bruker-3d", 53856, (0.024, 0.024, 0.012))])
def test_bruker_presets(name, V, fov):
    s = get_scanner(name)
    assert s.num_samples == V
    assert s.drive_field.cycle == pytest.approx(V / 2.5e6)
    assert np.allclose(s.drive_fov, fov)
    assert s.num_rx_channels == 3
    assert s.receiver.bandwidth == 1.25e6
    np.testing.assert_allclose(s.drive_field.frequencies[:1], [24509.8039], rtol=1e-8)


def test_ffp_solves_selection_plus_drive_zero():
    s = get_scanner("bruker-3d")
    t = s.times[::997]
    r = s.ffp(t)
    np.testing.assert_allclose(s.gradient @ r + s.drive_field_at(t), 0, atol=1e-15)
    assert np.abs(r[0]).max() == pytest.approx(0.012, rel=1e-3)
    assert np.abs(r[2]).max() == pytest.approx(0.006, rel=1e-3)


@pytest.mark.parametrize("name", list(PRESETS))
def test_toml_round_trip(name, tmp_path):
    s = get_scanner(name)
    p = tmp_path / "s.toml"
    s.save(p)
    assert Scanner.load(p) == s
    assert get_scanner(str(p)) == s


def test_custom_scanner_from_toml_text():
    text = """
name = "tabletop"
[selection_field]
gradient = [[-2.5, 0, 0], [0, 1.25, 0], [0, 0, 1.25]]
[drive_field]
base_frequency = 2.5e6
[[drive_field.channels]]
axis = "x"
amplitude = 0.01
divider = 100
phase = 0.0
[receiver]
bandwidth = 1.25e6
[[receiver.channels]]
sensitivity = [2e-3, 0, 0]
"""
    s = Scanner.from_toml(text)
    assert s.num_samples == 100 and s.num_rx_channels == 1
    assert s.drive_fov[0] == pytest.approx(0.008)


@pytest.mark.parametrize("text,match", [
    ("[selection_field]\ngradient = [[1,0,0],[0,1,0],[0,0,1]]", "trace 0"),
    ("[selection_field]\ngradient = [[1,0],[0,-1]]", "3x3"),
    ("name = ", "malformed TOML"),
    ("[drive_field]\nbase_frequency = -1", "base_frequency"),
    ("colour = 'red'", "unknown field"),
    ("[[drive_field.channels]]\naxis = 'w'", "axis"),
    ("[receiver]\nbandwidth = 1.1e6", "integer number of samples"),
])
def test_bad_scanner_toml(text, match):
    with pytest.raises(MPISimError, match=match):
        Scanner.from_toml(text)


def test_unknown_preset():
    with pytest.raises(MPISimError, match="unknown scanner preset"):
        get_scanner("bruker-9d")


def test_selection_field_nan():
    with pytest.raises(MPISimError, match="finite"):
        SelectionField(((math.nan, 0, 0), (0, 1, 0), (0, 0, -1)))
