"""The Fokker–Planck particle dynamics (issue 23, first part) against published results, each computed
here independently of the solver: Debye's susceptibility, Brown's high-barrier asymptote of the Néel
time, Yoshida and Enpuku's field-dependent Brownian time, the Langevin function and its spectrum, and
a direct numerical integral of the Boltzmann distribution of an anisotropic particle."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from mpisim import fokker_planck as fp
from mpisim.errors import MPISimError
from mpisim.particles import langevin


@pytest.mark.parametrize("xi", [0.05, 0.5, 3.0, 10.0, 25.0])
def test_equilibrium_without_anisotropy_is_langevin(xi):
    assert fp.static_response(xi) == pytest.approx(float(langevin(xi)), rel=1e-9)
    assert fp.anisotropic_equilibrium(xi, 0.0, 0.7) == pytest.approx(float(langevin(xi)), rel=1e-9)
    assert fp.anisotropic_equilibrium(xi, 0.0) == pytest.approx(float(langevin(xi)), rel=1e-9)   # random axes


@pytest.mark.parametrize("omega_tau", np.logspace(-2, 2, 9))
def test_brown_at_small_drive_is_debye(omega_tau):
    """ξ0 = 0.05: the fundamental of ⟨cos θ⟩ is χ0/(1 + iωτ_B) times the drive, χ0 = 1/3 (Debye 1929)."""
    xi0 = 0.05
    F1 = fp.periodic_response(xi0, omega_tau)[1]
    debye = (xi0 / 3) / (2j) / (1 + 1j * omega_tau)       # the e^{iωt} coefficient of Im[(ξ0/3) e^{iωt}/(1+iωτ)]
    assert abs(F1) == pytest.approx(abs(debye), rel=0.01)
    assert abs(np.angle(F1 / debye)) < 0.01


@pytest.mark.parametrize("sigma", [10.0, 20.0])
def test_neel_time_follows_browns_high_barrier_asymptote(sigma):
    """Brown (1963): τ_N ≈ τ_D (√π/2) σ^(−3/2) e^σ (1 + 1/σ) for a high barrier σ = KV/(k_B T); the
    leading term alone is off by about 1/σ."""
    tau = fp.neel_time(sigma, 1.0)
    lead = math.sqrt(math.pi) / 2 * sigma ** -1.5 * math.exp(sigma)
    assert tau == pytest.approx(lead * (1 + 1 / sigma), rel=0.03)
    assert abs(tau / lead - 1) > 0.5 / sigma                 # the first correction matters


def test_neel_time_without_barrier_is_the_free_diffusion_time():
    assert fp.neel_time(1e-3, 2.5e-9) == pytest.approx(2.5e-9, rel=1e-3)
    assert fp.neel_time(0.0, 1.0) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("xi0", [1.0, 3.0, 10.0, 20.0])
def test_brown_under_a_strong_drive_follows_yoshida_enpuku(xi0):
    """Yoshida and Enpuku (2009): under an AC field of amplitude ξ0 the Brownian time, read where the
    out-of-phase part of the fundamental peaks against frequency, is τ_B / √(1 + 0.126 ξ0^1.72)."""
    def quadrature(log_wt):                                   # the cos(ωt) (out-of-phase) part of the fundamental
        return abs(2 * fp.periodic_response(xi0, 10 ** log_wt)[1].real)

    grid = np.linspace(-1.5, 1.0, 11)
    i = int(np.argmax([quadrature(g) for g in grid]))
    peak = optimize.minimize_scalar(lambda g: -quadrature(g), bracket=(grid[i - 1], grid[i], grid[i + 1]),
                                    tol=1e-4).x
    tau_eff = 1 / 10 ** peak
    assert tau_eff == pytest.approx(1 / math.sqrt(1 + 0.126 * xi0 ** 1.72), rel=0.05)


def test_fast_relaxation_gives_the_langevin_spectrum():
    """τ → 0: the harmonics of ⟨cos θ⟩ are those of L(ξ0 sin ωt), computed by FFT of the Langevin function."""
    xi0 = 10.0
    F = fp.periodic_response(xi0, 1e-6)
    t = np.arange(8192) / 8192 * 2 * np.pi
    ref = np.fft.rfft(langevin(xi0 * np.sin(t))) / t.size
    for k in range(1, 23, 2):
        assert abs(F[k] - ref[k]) < 0.005 * abs(ref[1]), k


def _direct_boltzmann(xi, sigma, angle):
    """⟨m̂·ĥ⟩ by adaptive 2-D quadrature in the easy axis' frame (not the solver's frame or nodes)."""
    hx, hz = math.sin(angle), math.cos(angle)

    def weight(phi, theta, with_projection):
        m_h = math.sin(theta) * math.cos(phi) * hx + math.cos(theta) * hz
        w = math.exp(sigma * (math.cos(theta) ** 2 - 1) + xi * (m_h - 1)) * math.sin(theta)
        return w * m_h if with_projection else w

    num = integrate.dblquad(lambda p, t: weight(p, t, True), 0, math.pi, 0, 2 * math.pi, epsabs=0, epsrel=1e-10)[0]
    den = integrate.dblquad(lambda p, t: weight(p, t, False), 0, math.pi, 0, 2 * math.pi, epsabs=0, epsrel=1e-10)[0]
    return num / den


@pytest.mark.parametrize("xi,sigma,angle", [(2.0, 5.0, math.pi / 3), (8.0, 10.0, 1.2), (0.5, 3.0, 0.0),
                                            (4.0, 15.0, math.pi / 2)])
def test_anisotropic_equilibrium_against_a_direct_integral(xi, sigma, angle):
    assert fp.anisotropic_equilibrium(xi, sigma, angle) == pytest.approx(_direct_boltzmann(xi, sigma, angle),
                                                                         rel=1e-3)


def test_anisotropic_equilibrium_along_the_easy_axis_equals_the_moment_equations():
    """Two independent routes: quadrature of the Boltzmann distribution and the zero-frequency solution of
    the Fokker–Planck moment equations."""
    for xi, sigma in ((1.0, 2.0), (3.0, 8.0), (10.0, 20.0)):
        assert fp.static_response(xi, sigma) == pytest.approx(fp.anisotropic_equilibrium(xi, sigma, 0.0), rel=1e-6)


def test_physical_times():
    """τ_B of a 100 nm sphere in water at 294 K: 3 × 8.9e-4 Pa·s × 5.236e-22 m³ / 4.059e-21 J = 0.3444 ms;
    τ_D of a 20 nm magnetite core (M_s = 477.5 kA/m, µ = 2.000e-18 A·m²) with α = 0.1 at 294 K:
    1.01 × 2.000e-18 / (2 × 0.1 × 1.7609e11 × 4.059e-21) = 14.13 ns (values worked by hand)."""
    assert fp.brown_time(100e-9, 8.9e-4, 294.0) == pytest.approx(3.444e-4, rel=1e-3)
    m = 0.6 / 1.25663706212e-6 * math.pi / 6 * (20e-9) ** 3
    assert m == pytest.approx(2.000e-18, rel=1e-3)
    assert fp.neel_diffusion_time(m, 0.1, 294.0) == pytest.approx(14.13e-9, rel=2e-3)


@pytest.mark.parametrize("call", [lambda: fp.moment_operators(10, -1.0), lambda: fp.periodic_response(float("nan"), 1.0),
                                  lambda: fp.periodic_response(1.0, 0.0), lambda: fp.anisotropic_equilibrium(1.0, -2.0, 0.0),
                                  lambda: fp.neel_diffusion_time(1e-18, 0.0)])
def test_bad_parameters_are_refused(call):
    with pytest.raises(MPISimError):
        call()


# --- Brownian rotation under a field of any direction (spherical harmonics) --------------------------

@pytest.fixture(scope="module")
def sphere():
    return fp.BrownSphere(16)


@pytest.mark.parametrize("xi", [(0.0, 0.0, 3.0), (2.0, 1.0, -2.0), (-4.0, 0.5, 0.0)])
def test_brown_sphere_equilibrium_is_langevin_along_any_field(sphere, xi):
    xi = np.array(xi)
    n = np.linalg.norm(xi)
    assert np.allclose(sphere.moment(sphere.equilibrium(xi)), float(langevin(n)) * xi / n, rtol=0, atol=1e-9)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_brown_sphere_agrees_with_the_axial_solver(sphere, axis):
    """Two derivations: Legendre moment equations solved by harmonic balance, and a spherical-harmonic
    Galerkin scheme stepped in time (Crank–Nicolson, 256 steps a period), for a drive along x, y or z."""
    xi0, wt, S = 4.0, 1.0, 256
    t = np.arange(S) / S * 2 * np.pi
    fields = np.zeros((3, S))
    fields[axis] = xi0 * np.sin(t)
    m = sphere.periodic(fields, 2 * np.pi / wt)
    F = fp.periodic_response(xi0, wt)
    axial = F[0].real + 2 * np.real((F[1:, None] * np.exp(1j * np.outer(np.arange(1, F.size), t))).sum(axis=0))
    assert np.abs(m[axis] - axial).max() < 1e-3 * np.abs(axial).max()
    assert np.abs(np.delete(m, axis, axis=0)).max() < 1e-9            # nothing across the drive


@pytest.mark.parametrize("omega_tau", [0.3, 1.0, 3.0])
def test_brown_sphere_in_a_weak_rotating_field_lags_like_debye(sphere, omega_tau):
    """A weak field rotating at ω: the moment rotates with it, (ξ0/3)/√(1 + (ωτ_B)²) long and behind by
    atan(ωτ_B) (the Debye susceptibility of each component)."""
    xi0, S = 0.05, 128
    t = np.arange(S) / S * 2 * np.pi
    m = sphere.periodic(np.array([xi0 * np.cos(t), xi0 * np.sin(t), 0 * t]), 2 * np.pi / omega_tau)
    assert np.hypot(m[0], m[1]).mean() == pytest.approx(xi0 / 3 / math.hypot(1, omega_tau), rel=0.01)
    lag = np.angle(np.mean((m[0] + 1j * m[1]) * np.exp(-1j * t)))
    assert -lag == pytest.approx(math.atan(omega_tau), abs=0.01)


@pytest.mark.parametrize("sigma", [2.0, 10.0, 30.0])
def test_random_easy_axes_keep_the_langevin_initial_susceptibility(sigma):
    """An ensemble of uniaxial particles with randomly oriented easy axes has the initial susceptibility of
    isotropic ones, χ0 = ξ/3, whatever the barrier (the anisotropy averages out to first order in the
    field; e.g. García-Palacios, Adv. Chem. Phys. 112 (2000), sec. 4)."""
    xi = 1e-3
    assert fp.anisotropic_equilibrium(xi, sigma) == pytest.approx(xi / 3, rel=1e-4)
    assert fp.anisotropic_equilibrium(xi, sigma, 0.0) > 1.5 * xi / 3      # along the easy axis: much larger


@pytest.mark.parametrize("xi,sigma,omega_tau", [(166.0, 0.0, 0.5), (5.0, 30.0, 1e-3), (0.5, 40.0, 1e-2)])
def test_default_legendre_order_is_converged(xi, sigma, omega_tau):
    """The default order 30 + 8√(ξ + 2σ) against the much larger 2(ξ + 2σ) + 30: the harmonics agree to
    1e-8 of the fundamental."""
    K = fp.harmonics_for(xi, sigma)
    a = fp.periodic_response(xi, omega_tau, sigma=sigma, harmonics=K)
    b = fp.periodic_response(xi, omega_tau, sigma=sigma, harmonics=K, order=int(2 * (xi + 2 * sigma) + 30))
    assert np.abs(a - b).max() < 1e-8 * abs(b[1])
