import math

import numpy as np
import pytest

from mpisim import constants as C
from mpisim.errors import MPISimError
from mpisim.particles import Tracer, langevin, langevin_derivative, langevin_over_xi


def test_regression_values_mpisimulations():
    # MPISimulations.jl regression: d = 25 nm, Ms = 0.6 T/µ0, T = 294 K
    t = Tracer(core_diameter=25e-9, ms=0.6, temperature=294.0)
    assert t.moment == pytest.approx(3.90625e-18, rel=1e-6)
    assert t.beta == pytest.approx(962.34, rel=1e-5)


def test_iron_bookkeeping():
    t = Tracer(core_diameter=25e-9)
    assert t.iron_mass_per_core / C.PICOGRAM == pytest.approx(3.06e-5, rel=2e-3)
    assert t.moment_per_iron_mass * C.PICOGRAM == pytest.approx(1.276e-13, rel=1e-3)
    # independent of size
    assert Tracer(core_diameter=18e-9).moment_per_iron_mass == pytest.approx(t.moment_per_iron_mass)


def test_langevin_exact_values_and_small_argument():
    assert langevin(1.0) == pytest.approx(1 / math.tanh(1.0) - 1.0, rel=1e-14)
    assert langevin(-2.0) == pytest.approx(-(1 / math.tanh(2.0) - 0.5), rel=1e-14)
    # near 0 the naive formula fails; ours gives ξ/3 to full precision
    assert langevin(1e-9) == pytest.approx(1e-9 / 3, rel=1e-14)
    assert langevin(0.0) == 0.0
    naive = 1 / np.tanh(1e-9) - 1 / 1e-9
    assert abs(naive - 1e-9 / 3) > 1e-10  # the reason for the series
    # continuity at the switch point
    for f in (langevin, langevin_derivative, langevin_over_xi):
        a, b = f(0.1 - 1e-12), f(0.1 + 1e-12)
        assert abs(a - b) < 1e-11
    assert langevin_derivative(0.0) == pytest.approx(1 / 3)
    assert langevin_derivative(3.0) == pytest.approx(1 / 9 - 1 / math.sinh(3.0) ** 2, rel=1e-13)
    assert langevin_derivative(1e4) == pytest.approx(1e-8, rel=1e-6)


def test_langevin_derivative_matches_numerical_derivative():
    x = np.linspace(-8, 8, 3201)
    num = np.gradient(langevin(x), x)
    assert np.max(np.abs(num - langevin_derivative(x))) < 2e-5


def test_lognormal_quadrature_mass_weighted():
    t = Tracer(core_diameter=20e-9, size_sigma=0.2, size_nodes=15)
    d, q = t.size_quadrature()
    assert q.sum() == pytest.approx(1.0)
    # mass-weighted mean of ln d is ln d0 + 3σ²
    assert np.sum(q * np.log(d)) == pytest.approx(math.log(20e-9) + 3 * 0.04, rel=1e-12)
    # bigger cores dominate the low-field susceptibility compared with a monodisperse 20 nm tracer
    h = np.array([[1e-5], [0.0], [0.0]])
    assert t.unit_magnetisation(h)[0, 0] > Tracer(core_diameter=20e-9).unit_magnetisation(h)[0, 0]


def test_relaxation_times():
    # Brown: water (0.89 mPa·s) at 300 K, 30 nm → 9.1 µs; 60 nm → 73 µs (PHYSICS.md §2)
    b30 = Tracer(core_diameter=20e-9, hydrodynamic_diameter=30e-9, viscosity=0.89e-3, temperature=300).brown_time
    b60 = Tracer(core_diameter=20e-9, hydrodynamic_diameter=60e-9, viscosity=0.89e-3, temperature=300).brown_time
    assert b30 == pytest.approx(9.1e-6, rel=0.02)
    assert b60 == pytest.approx(73e-6, rel=0.02)
    t = Tracer(core_diameter=20e-9, anisotropy=1e4, hydrodynamic_diameter=30e-9, temperature=300)
    assert 1 / t.effective_relaxation_time == pytest.approx(1 / t.neel_time + 1 / t.brown_time)
    assert t.neel_time == pytest.approx(1e-9 * math.exp(1e4 * math.pi * (20e-9) ** 3 / 6 / (C.K_B * 300)))
    assert Tracer().effective_relaxation_time == 0.0
    assert Tracer(relaxation_time=3e-6).effective_relaxation_time == 3e-6


def test_debye_factor_values_from_physics_md():
    t = Tracer(relaxation_time=3e-6)
    f0 = 25e3
    for n, mag, deg in ((1, 0.905, -25.2), (3, 0.577, -54.7), (5, 0.391, -67.0)):
        d = t.debye_factor(n * f0)
        assert abs(d) == pytest.approx(mag, abs=2e-3)
        assert math.degrees(np.angle(d)) == pytest.approx(deg, abs=0.3)


@pytest.mark.parametrize("kw", [dict(core_diameter=-1e-9), dict(core_diameter=25.0), dict(ms=float("nan")),
                                dict(size_sigma=-0.1), dict(relaxation_time=-1.0), dict(temperature=0)])
def test_bad_tracer(kw):
    with pytest.raises(MPISimError):
        Tracer(**kw)
