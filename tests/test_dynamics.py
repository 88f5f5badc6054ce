"""Particle models in the imaging forward model (issue 23, items 1–2): the Brownian Fokker–Planck dynamics
on the sphere under each voxel's field, checked against independent references computed here."""

import numpy as np
import pytest

import mpisim
from mpisim import dynamics as D
from mpisim.errors import MPISimError
from mpisim.fokker_planck import anisotropic_equilibrium, periodic_response
from mpisim.forward import field_offsets, unit_moments
from mpisim.particles import Tracer, langevin


def _line(sc, xs):
    pos = np.stack([xs, 0 * xs, 0 * xs], axis=1)
    return field_offsets(sc, pos)


def test_collinear_fields_equal_the_axial_harmonic_balance():
    """bruker-1d drives along x; on the x axis every voxel's field stays along x, where the Brownian
    Fokker–Planck equation reduces to the Legendre moment equations solved by harmonic balance (no time
    stepping): the sphere solver's periodic moment has the same harmonics within 1e-4 of the fundamental."""
    sc = mpisim.get_scanner("bruker-1d")
    t = Tracer(core_diameter=25e-9, hydrodynamic_diameter=40e-9, model="brown")
    xs = np.array([0.0, 3e-3, -5e-3])
    off = _line(sc, xs)
    m = unit_moments(sc, t, off)
    (ch,) = sc.drive_field.channels
    omega = 2 * np.pi * sc.drive_field.base_frequency / ch.divider
    V = sc.num_samples
    for p in range(len(xs)):
        F = periodic_response(t.beta * ch.amplitude, omega * t.brown_time, t.beta * off[p, 0], harmonics=40)
        k = np.arange(12)
        want = F[:12] * np.exp(1j * k * ch.phase)            # our drive is sin(ωt + phase)
        got = np.fft.rfft(m[p, 0])[:12] / V
        assert np.abs(got - want).max() <= 1e-4 * abs(want[1]), p
        assert np.abs(m[p, 1:]).max() < 1e-12                 # nothing across the field


def test_fast_brownian_rotation_is_the_langevin_model():
    """τ_B → 0 (ωτ_B ≈ 1e-3): the Fokker–Planck moment equals today's Langevin model within 0.5 % (time course
    and each harmonic up to the 11th, relative to the fundamental)."""
    sc = mpisim.get_scanner("bruker-1d")
    t = Tracer(core_diameter=25e-9, hydrodynamic_diameter=25e-9, viscosity=1e-6, model="brown")
    off = _line(sc, np.array([0.0, 4e-3]))
    m = unit_moments(sc, t, off)
    ref = unit_moments(sc, Tracer(core_diameter=25e-9), off)
    for p in range(2):
        assert np.linalg.norm(m[p] - ref[p]) <= 0.005 * np.linalg.norm(ref[p])
        a, b = np.fft.rfft(m[p, 0])[1:12], np.fft.rfft(ref[p, 0])[1:12]
        assert np.abs(a - b).max() <= 0.005 * abs(b[0])


@pytest.fixture(scope="module")
def plane():
    sc = mpisim.get_scanner("bruker-2d")
    grid = mpisim.default_grid(sc, (25, 25, 1))
    pos = grid.positions()[[0, 100, 312, 400, 624]]
    return sc, field_offsets(sc, pos)


def test_compiled_kernel_equals_its_numpy_twin(plane):
    pytest.importorskip("numba")
    sc, off = plane
    t = Tracer(core_diameter=25e-9, hydrodynamic_diameter=50e-9, model="brown", size_sigma=0.1, size_nodes=2)
    a = D.unit_moments_model(sc, t, off, numba=True)
    b = D.unit_moments_model(sc, t, off, numba=False)
    assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()


def test_degree_is_converged(plane, monkeypatch):
    """The default spherical-harmonic degree against four more: the columns' spectra change by < 0.5 %."""
    sc, off = plane
    t = Tracer(core_diameter=25e-9, hydrodynamic_diameter=50e-9, model="brown")
    a = np.fft.rfft(D.unit_moments_model(sc, t, off), axis=-1)
    base = D.brown_degree
    monkeypatch.setattr(D, "brown_degree", lambda x: base(x) + 4)
    b = np.fft.rfft(D.unit_moments_model(sc, t, off), axis=-1)
    for p in range(len(off)):
        assert np.linalg.norm(a[p] - b[p]) <= 0.005 * np.linalg.norm(b[p]), p
    for xi in (5.0, 20.0, 33.0, 45.0):                        # its equilibrium is the Langevin function
        s = D._sphere(base(xi))
        m = s.moment(s.equilibrium(np.array([0.6 * xi, 0.0, 0.8 * xi])))
        assert abs(np.linalg.norm(m) / langevin(xi) - 1) <= 3e-4


def test_brownian_relaxation_in_a_2d_sequence(plane):
    """On bruker-2d the relaxing particles lag the field: their moment is smaller where the field turns
    fastest, and the matrix row energy at high harmonics falls; the equilibrium limit is approached as τ_B
    shrinks (the distance to Langevin falls monotonically with τ_B)."""
    sc, off = plane
    ref = unit_moments(sc, Tracer(core_diameter=25e-9), off)
    dist = []
    for dh in (60e-9, 40e-9, 28e-9):
        m = D.unit_moments_model(sc, Tracer(core_diameter=25e-9, hydrodynamic_diameter=dh, model="brown"), off)
        dist.append(np.linalg.norm(m - ref) / np.linalg.norm(ref))
        s, r = np.abs(np.fft.rfft(m, axis=-1)), np.abs(np.fft.rfft(ref, axis=-1))
        assert s[..., 200:].sum() < 0.5 * r[..., 200:].sum()
    assert dist[0] > dist[1] > dist[2] > 0.05


def test_anisotropic_model_is_the_random_axis_equilibrium(plane):
    sc, off = plane
    t = Tracer(core_diameter=25e-9, anisotropy=8e3, model="anisotropic")
    m = unit_moments(sc, t, off)
    h = off[1] + sc.drive_waveform[:, 37]
    xi = t.beta * np.linalg.norm(h)
    sigma = 8e3 * t.core_volume / (1.380649e-23 * t.temperature)
    want = anisotropic_equilibrium(xi, sigma) * h / np.linalg.norm(h)
    assert np.allclose(m[1, :, 37], want, rtol=1e-3, atol=1e-6)
    lang = unit_moments(sc, Tracer(core_diameter=25e-9, anisotropy=1e-3, model="anisotropic"), off)
    assert np.allclose(lang, unit_moments(sc, Tracer(core_diameter=25e-9), off), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("kw, needle", [
    ({"model": "neel-brown"}, "unknown particle model"),
    ({"model": "brown"}, "hydrodynamic diameter"),
    ({"model": "brown", "hydrodynamic_diameter": 40e-9, "relaxation_time": 1e-6}, "hydrodynamic diameter"),
    ({"model": "anisotropic"}, "anisotropy"),
])
def test_bad_models_are_refused(kw, needle):
    with pytest.raises(MPISimError, match=needle):
        Tracer(core_diameter=25e-9, **kw)


def test_an_integration_without_a_periodic_state_stops():
    """τ_B of minutes against a 41 µs period: a voxel whose offset field polarises the periodic state cannot get
    there from the isotropic start within the period limit, and the command says so (at the centre, where the
    periodic state is the isotropic start itself, it is reached at once)."""
    sc = mpisim.get_scanner("bruker-1d")
    slow = Tracer(core_diameter=25e-9, hydrodynamic_diameter=200e-9, viscosity=50.0, model="brown")
    with pytest.raises(MPISimError, match="no periodic state"):
        unit_moments(sc, slow, _line(sc, np.array([5e-3])))
    assert np.abs(unit_moments(sc, slow, _line(sc, np.array([0.0])))).max() < 1e-5


def test_the_model_round_trips_and_reaches_the_system_matrix(tmp_path, capsys):
    t = Tracer(core_diameter=25e-9, hydrodynamic_diameter=50e-9, model="brown")
    assert Tracer.from_dict(t.to_dict()) == t and "model" not in Tracer().to_dict()
    assert t.debye_factor(np.array([1e5]))[0] == 1.0          # the dynamics hold the relaxation
    from mpisim.cli import main

    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "5x5x1", "--model", "brown",
                 "--hydrodynamic-diameter", "50nm", "--out", str(tmp_path / "sm.mdf")]) == 0
    S = mpisim.load_system_matrix(tmp_path / "sm.mdf")
    assert S.acquisition.tracer.model == "brown"
    capsys.readouterr()
    assert main(["info", str(tmp_path / "sm.mdf")]) == 0
    assert "particle model brown, mobile" in capsys.readouterr().out
    assert main(["design", "bruker-2d", "--model", "brown", "--hydrodynamic-diameter", "30nm"]) == 0
    out = capsys.readouterr().out
    assert "particle model brown" in out and "n/a resolution" in out
    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "5x5x1", "--model", "brown",
                 "--out", str(tmp_path / "bad.mdf")]) == 2
    assert "hydrodynamic diameter" in capsys.readouterr().err and not (tmp_path / "bad.mdf").exists()


@pytest.mark.parametrize("tracer", [Tracer(core_diameter=25e-9, hydrodynamic_diameter=50e-9, model="brown"),
                                    Tracer(core_diameter=25e-9, anisotropy=8e3, model="anisotropic")],
                         ids=["brown", "anisotropic"])
def test_a_voxel_does_not_depend_on_its_neighbours_in_the_block(plane, tracer):
    """Blocks of voxels (a build's chunks, Dask workers) share no plan that depends on the others' fields: a
    voxel computed alone equals the same voxel computed with the rest, bit for bit."""
    sc, off = plane
    together = D.unit_moments_model(sc, tracer, off)
    for p in (0, 2, 4):
        assert np.array_equal(D.unit_moments_model(sc, tracer, off[[p]])[0], together[p])
