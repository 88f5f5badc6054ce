"""Néel rotation on the sphere (precession, easy axes at any angle or at random) and coupled Néel–Brown
rotation (issue 23): checks against independent routes — the Boltzmann integral, the axial moment
equations, Brownian rotation, and each mechanism alone."""

import math

import numpy as np
import pytest

from mpisim import fokker_planck as fp
from mpisim import neel_brown as nb
from mpisim.errors import MPISimError
from mpisim.particles import langevin


def test_basis_is_orthonormal_and_generators_rotate_the_moment():
    """∫ Y_i Y_j = δ_ij on the quadrature, and 𝓛_k m̂_j = (m̂ × e_j)_k: the generators' matrices act on the
    coefficients of m̂_j as the cross product does on the function."""
    b = nb.SphereBasis(9)
    assert np.abs((b.Y * b.weights) @ b.Y.T - np.eye(b.size)).max() < 1e-12
    proj = b.Y * b.weights
    for k in range(3):
        assert np.abs(b.G[k] + b.G[k].T).max() < 1e-12
        for j in range(3):
            assert np.abs(b.G[k] @ (proj @ b.points[j]) - proj @ nb._cross_e(b.points, j)[k]).max() < 1e-10


def _static(xi, sigma, angle, damping=0.1):
    L = nb.neel_degree(xi, sigma)
    b, A0, Aj = nb.neel_operators(L, sigma, damping)
    d = np.array([math.sin(angle), 0.0, math.cos(angle)])
    A = A0 + xi * sum(d[j] * Aj[j] for j in range(3))
    c = np.zeros(b.size)
    c[0] = 1 / math.sqrt(4 * math.pi)
    c[1:] = np.linalg.solve(A[1:, 1:], -A[1:, 0] * c[0])
    return b.moment_rows() @ c @ d


@pytest.mark.parametrize("xi,sigma,angle", [(3.0, 5.0, 0.7), (8.0, 10.0, 1.2), (2.0, 0.0, 0.4)])
def test_static_field_at_an_angle_gives_the_boltzmann_equilibrium(xi, sigma, angle):
    """The null vector of the Néel operator (with precession, which must leave the Boltzmann distribution
    alone) against a direct quadrature of e^{σ(m̂·n̂)² + ξ·m̂}."""
    assert _static(xi, sigma, angle) == pytest.approx(fp.anisotropic_equilibrium(xi, sigma, angle=angle), rel=1e-4)


@pytest.mark.parametrize("sigma,xi0,omega_tau", [(5.0, 4.0, 0.05), (10.0, 8.0, 1e-3), (15.0, 5.0, 1e-3)])
def test_field_along_the_easy_axis_equals_the_axial_moment_equations(sigma, xi0, omega_tau):
    F = nb.neel_harmonics(xi0, omega_tau, sigma, harmonics=24, angle=0.0)
    G = fp.periodic_response(xi0, omega_tau, sigma=sigma, harmonics=24)
    assert np.abs(F[:10] - G[:10]).max() < 1e-4 * abs(G[1])


@pytest.mark.parametrize("angle", [0.0, 0.6, 1.3])
def test_no_barrier_and_no_precession_is_brownian_rotation_in_any_direction(angle):
    """σ = 0 without the precession term is the Brown equation with τ_D for τ_B: the same harmonics as the axial
    Brown solver whatever the field's direction in the particle's frame (a check of the x generators)."""
    F = nb.neel_harmonics(6.0, 0.8, 0.0, damping=np.inf, harmonics=16, angle=angle)
    G = fp.periodic_response(6.0, 0.8, harmonics=16)
    assert np.abs(F[:10] - G[:10]).max() < 1e-8 * abs(G[1])


def test_degree_is_converged():
    sigma, xi0 = 10.0, 8.0
    L = nb.neel_degree(xi0, sigma)
    a = nb.neel_harmonics(xi0, 0.01, sigma, harmonics=24, angle=0.9, lmax=L)
    b = nb.neel_harmonics(xi0, 0.01, sigma, harmonics=24, angle=0.9, lmax=L + 6)
    assert np.abs(a - b).max() < 3e-4 * abs(b[1])


def test_random_axes_at_slow_drive_are_the_random_axes_equilibrium():
    """ωτ_N ≪ 1: the random-axes Néel model follows the Boltzmann average over axes (another route: the
    quadrature of :func:`mpisim.fokker_planck.anisotropic_equilibrium`, Fourier-transformed here)."""
    sigma, xi0 = 4.0, 3.0
    F = nb.neel_harmonics(xi0, 1e-7, sigma, harmonics=12)
    t = np.arange(128) / 128 * 2 * np.pi
    eq = np.array([fp.anisotropic_equilibrium(xi0 * math.sin(x), sigma) for x in t])
    ref = np.fft.rfft(eq)[:13] / t.size
    assert np.abs(F[:8] - ref[:8]).max() < 2e-4 * abs(ref[1])


def test_coupled_model_without_neel_is_brown_exactly():
    xi0, sigma, tau_b, omega = 5.0, 3.0, 5e-6, 2 * np.pi * 25e3
    F = nb.neel_brown_harmonics(xi0, omega, sigma, np.inf, tau_b, harmonics=16)
    G = fp.periodic_response(xi0, omega * tau_b, harmonics=16)
    assert np.abs(F[:10] - G[:10]).max() < 1e-9 * abs(G[1])


def test_coupled_model_without_brown_is_neel_with_random_axes():
    xi0, sigma, tau_d = 3.0, 3.0, 1e-8
    omega = 1 / fp.neel_time(sigma, tau_d)
    F = nb.neel_brown_harmonics(xi0, omega, sigma, tau_d, np.inf, harmonics=12)
    G = nb.neel_harmonics(xi0, omega * tau_d, sigma, harmonics=12)
    assert np.abs(F[:8] - G[:8]).max() < 5e-3 * abs(G[1])


def test_coupled_model_relaxes_faster_than_either_mechanism_and_its_equilibrium_is_langevin():
    """Both mechanisms at once: the fundamental lags less than with either alone (two parallel relaxation
    channels), and at a very slow drive a particle free to turn follows the Langevin function whatever its
    anisotropy (the Boltzmann distribution over m̂ and n̂ together)."""
    xi0, sigma, tau_d = 3.0, 3.0, 1e-8
    tau_n = fp.neel_time(sigma, tau_d)
    omega = 1 / tau_n
    both = nb.neel_brown_harmonics(xi0, omega, sigma, tau_d, tau_n, harmonics=12)
    neel = nb.neel_brown_harmonics(xi0, omega, sigma, tau_d, np.inf, harmonics=12)
    brown = nb.neel_brown_harmonics(xi0, omega, sigma, np.inf, tau_n, harmonics=12)
    lag = lambda F: -np.angle(F[1] * 2j)
    assert 0 < lag(both) < min(lag(neel), lag(brown))
    slow = nb.neel_brown_harmonics(xi0, 1e-6 / tau_n, sigma, tau_d, tau_n, harmonics=12)
    t = np.arange(128) / 128 * 2 * np.pi
    ref = np.fft.rfft(langevin(xi0 * np.sin(t)))[:13] / t.size
    assert np.abs(slow[:8] - ref[:8]).max() < 1e-6 * abs(ref[1])


@pytest.mark.parametrize("call,needle", [
    (lambda: nb.neel_harmonics(3.0, 0.1, 45.0), "outside 0..20"),
    (lambda: nb.neel_harmonics(3.0, 0.1, -1.0), "outside 0..20"),
    (lambda: nb.check_size(80.0, 19.0, 400), r"GB \(at most 2\)"),
    (lambda: nb.check_size(150.0, 5.0, 400, coupled=True), r"GB \(at most 2\)"),
    (lambda: nb.neel_brown_harmonics(3.0, 1e5, 9.0, 1e-8, 1e-5), "use model brown"),
    (lambda: nb.neel_brown_harmonics(3.0, 1e5, 2.0, np.inf, np.inf), "not both infinite"),
    (lambda: nb.neel_operators(8, 1.0, 0.0), "damping α must be > 0"),
])
def test_bad_parameters_are_refused(call, needle):
    with pytest.raises(MPISimError, match=needle):
        call()
