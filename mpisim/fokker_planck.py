"""Rotational Fokker–Planck dynamics of magnetic nanoparticles with the field along one axis (issue 23,
first part): Brownian rotation, Néel rotation with uniaxial anisotropy along the field, and the
equilibrium magnetisation of an anisotropic particle at any angle.

The orientation of the moment, m̂, has a distribution W(θ, t) over the angle θ to the field axis.
With the field along the axis of symmetry (an MPS drive, or a 1D drive along a particle's easy axis)
the Fokker–Planck equation of both mechanisms is (Brown 1963; Coffey, Kalmykov and Waldron, *The
Langevin Equation*, ch. 7 and 9)

    2τ ∂W/∂t = ∂/∂x [ (1 − x²) (∂W/∂x + W ∂U/∂x) ],   x = cos θ,   U = −σ x² − ξ(t) x,

with ξ = µ0 m H / (k_B T) the field's energy and σ = K V_c / (k_B T) the anisotropy barrier (in units
of k_B T), and τ the free-diffusion time: τ_B = 3 η V_h / (k_B T) for Brownian rotation of the
whole particle (σ = 0: the moment is fixed in the particle, which turns freely), τ_D =
(1 + α²) µ_s / (2 α γ k_B T) for Néel rotation of the moment inside a fixed particle (the precession
term drops out when the field is along the easy axis). Expanding W in Legendre polynomials, the
moments f_n = ⟨P_n(x)⟩ obey (derived from the equation above with (1 − x²) P_n' = n(n+1)/(2n+1)
(P_{n−1} − P_{n+1}) and x P_k = ((k+1) P_{k+1} + k P_{k−1})/(2k+1); f_0 = 1)

    2τ/(n(n+1)) df_n/dt = −f_n + ξ/(2n+1) (f_{n−1} − f_{n+1})
                          + 2σ/(2n+1) [ (n−1)/(2n−1) f_{n−2} + (2n+1)/((2n−1)(2n+3)) f_n − (n+2)/(2n+3) f_{n+2} ],

and the magnetisation along the field is m f_1 = m ⟨cos θ⟩. For a drive ξ(t) = ξ_s + ξ_0 sin(ωt) the
periodic steady state is found directly by harmonic balance (:func:`periodic_response`): f(t) =
Σ_k F_k e^{ikωt}, one sparse linear system in the harmonics, no time stepping and no transient.

For a field of any direction (a 2D or 3D drive, a voxel's offset field across the drive) Brownian
rotation is solved on the whole sphere by :class:`BrownSphere` (real spherical harmonics, stepped in
time to the periodic state). Néel rotation with the field across the easy axis (precession, random
axes) is not built yet.

Checks (``tests/test_fokker_planck.py``): the Debye limit at small drive, Brown's high-barrier
asymptote of the Néel time, Yoshida and Enpuku's field-dependent Brownian time, the Langevin function
for τ → 0, the anisotropic equilibrium against a direct integral of the Boltzmann distribution, and
:class:`BrownSphere` against the axial solver, the Langevin function in any direction and the Debye lag
of a weak rotating field.
"""

import math

import numpy as np

from . import constants as C
from .errors import MPISimError
from .neel_brown import real_harmonics

__all__ = ["GYROMAGNETIC_RATIO", "MAX_UNKNOWNS", "BrownSphere", "anisotropic_equilibrium", "brown_time", "check_size",
           "harmonics_for", "moment_operators", "neel_diffusion_time", "neel_time", "periodic_response",
           "relaxation_rates", "static_response"]

GYROMAGNETIC_RATIO = 1.7609e11
"""Electron gyromagnetic ratio γ in rad/(s·T) (CODATA 2018: 1.76085963e11)."""


def brown_time(hydrodynamic_diameter, viscosity=8.9e-4, temperature=294.0):
    """Brownian rotational diffusion time τ_B = 3 η V_h / (k_B T) in s (Debye 1929; diameter in m,
    viscosity in Pa·s (water: 8.9e-4 Pa·s at 25 °C), temperature in K)."""
    vh = math.pi / 6 * hydrodynamic_diameter ** 3
    return 3 * viscosity * vh / (C.K_B * temperature)


def neel_diffusion_time(moment, damping=0.1, temperature=294.0, gamma=GYROMAGNETIC_RATIO):
    """Néel free-diffusion time τ_D = (1 + α²) µ_s / (2 α γ k_B T) in s (Brown 1963), the Néel time of
    a particle without anisotropy; ``moment`` µ_s in A·m², ``damping`` α (dimensionless), γ in rad/(s·T)."""
    if not damping > 0:
        raise MPISimError(f"damping must be > 0, got {damping}")
    return (1 + damping ** 2) * moment / (2 * damping * gamma * C.K_B * temperature)


def moment_operators(order, sigma=0.0):
    """The moment equations' parts for n = 1..``order``, in units of the diffusion time τ:
    df/dt = D (M0 f + c0) + ξ(t) D (M1 f + c1) with D = diag(n(n+1)/2). Returns (D, M0, M1, c0, c1)."""
    if order < 2:
        raise MPISimError(f"order must be >= 2, got {order}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise MPISimError(f"anisotropy barrier σ must be finite and >= 0, got {sigma}")
    n = np.arange(1, order + 1, dtype=float)
    D = n * (n + 1) / 2
    M0 = np.diag(-1 + 2 * sigma / ((2 * n - 1) * (2 * n + 3)))
    M1 = np.zeros((order, order))
    for i, k in enumerate(n):
        if i >= 1:
            M1[i, i - 1] = 1 / (2 * k + 1)
        if i + 1 < order:
            M1[i, i + 1] = -1 / (2 * k + 1)
        if i >= 2:
            M0[i, i - 2] = 2 * sigma * (k - 1) / ((2 * k + 1) * (2 * k - 1))
        if i + 2 < order:
            M0[i, i + 2] = -2 * sigma * (k + 2) / ((2 * k + 1) * (2 * k + 3))
    c0 = np.zeros(order)
    c1 = np.zeros(order)
    c1[0] = 1 / 3                                  # n = 1: ξ/3 · f_0
    c0[1] = 2 * sigma / 15                         # n = 2: 2σ/5 · 1/3 · f_0
    return D, M0, M1, c0, c1


def _order_for(xi_max, sigma):
    """Legendre order that resolves the distribution exp(ξx + σx²): 30 + 8 √(ξ + 2σ) terms (against a
    much larger order the harmonics agree to 1e-8 of the fundamental: ``tests/test_fokker_planck.py``)."""
    return int(30 + 8 * math.sqrt(abs(xi_max) + 2 * sigma))


MAX_UNKNOWNS = 300_000
"""Most unknowns (Legendre order × (2K + 1) harmonics) of one harmonic-balance solve (about 1 GB of
sparse LU fill at most)."""


def harmonics_for(xi_max, sigma):
    """Harmonics K a periodic response needs: 2ξ + 6σ + 40 (the switching of an aligned anisotropic
    particle is sharp)."""
    return int(2 * abs(xi_max) + 6 * sigma + 40)


def check_size(xi_max, sigma, harmonics=None, order=None):
    """Refuse (one line) a solve whose unknowns exceed :data:`MAX_UNKNOWNS`: a drive or a barrier too
    strong for this solver."""
    n = (order or _order_for(xi_max, sigma)) * (2 * (harmonics or harmonics_for(xi_max, sigma)) + 1)
    if n > MAX_UNKNOWNS:
        raise MPISimError(f"field energy ξ = {abs(xi_max):.0f} with barrier σ = {sigma:.0f} needs {n} unknowns in the "
                          f"Fokker-Planck solver (at most {MAX_UNKNOWNS}); lower the drive amplitude or the core size")


def static_response(xi, sigma=0.0, order=None):
    """⟨cos θ⟩ in equilibrium for a static field ξ along the easy axis (the zero-frequency solution of
    the moment equations); σ = 0 gives the Langevin function."""
    order = order or _order_for(xi, sigma)
    D, M0, M1, c0, c1 = moment_operators(order, sigma)
    f = np.linalg.solve(M0 + xi * M1, -(c0 + xi * c1))
    return float(f[0])


def periodic_response(xi_amplitude, omega_tau, xi_static=0.0, sigma=0.0, harmonics=None, order=None):
    """Periodic steady state of ⟨cos θ⟩(t) under ξ(t) = ξ_s + ξ_0 sin(ωt): the complex Fourier
    coefficients F_k, k = 0..K, with ⟨cos θ⟩(t) = F_0 + 2 Re Σ_{k≥1} F_k e^{ikωt}.

    ``omega_tau``: ω τ (the drive's angular frequency times the diffusion time: τ_B for Brown, τ_D for
    Néel); ``sigma``: the anisotropy barrier K V_c / (k_B T) (0 for Brown). ``harmonics`` K (default:
    enough for the drive's strength), ``order``: Legendre order (default :func:`_order_for`).
    Solved by harmonic balance: one sparse system of order × (2K + 1) unknowns."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    for name, v in (("ξ_0", xi_amplitude), ("ωτ", omega_tau), ("ξ_s", xi_static)):
        if not math.isfinite(v):
            raise MPISimError(f"{name} must be finite, got {v}")
    if omega_tau <= 0:
        raise MPISimError(f"ωτ must be > 0, got {omega_tau}")
    xmax = abs(xi_static) + abs(xi_amplitude)
    check_size(xmax, sigma, harmonics, order)
    order = order or _order_for(xmax, sigma)
    K = harmonics or harmonics_for(xmax, sigma)
    D, M0, M1, c0, c1 = moment_operators(order, sigma)
    DM0, DM1 = D[:, None] * M0, D[:, None] * M1
    ks = np.arange(-K, K + 1)
    nk = ks.size
    a = xi_amplitude / 2j
    L = (sp.kron(sp.diags(1j * ks * omega_tau), sp.identity(order))
         - sp.kron(sp.identity(nk), sp.csr_matrix(DM0 + xi_static * DM1))
         - a * sp.kron(sp.eye(nk, k=-1), sp.csr_matrix(DM1))
         + a * sp.kron(sp.eye(nk, k=1), sp.csr_matrix(DM1)))
    rhs = np.zeros((nk, order), complex)
    rhs[K] = D * (c0 + xi_static * c1)
    rhs[K + 1] += a * D * c1
    rhs[K - 1] -= a * D * c1
    F = spsolve(L.tocsc(), rhs.ravel()).reshape(nk, order)
    return F[K:, 0]


def relaxation_rates(sigma, order=None):
    """Eigenvalues λ (in units of 1/τ, ascending) of the zero-field moment equations restricted to the
    odd moments (those that carry the magnetisation): ⟨cos θ⟩ decays as Σ a_j e^{−λ_j t/τ}."""
    order = order or _order_for(0.0, sigma)
    D, M0, _, _, _ = moment_operators(order, sigma)
    odd = np.arange(0, order, 2)                    # n = 1, 3, 5, … (σ couples n to n ± 2 only)
    lam = -np.linalg.eigvals((D[:, None] * M0)[np.ix_(odd, odd)])
    return np.sort(lam.real)


def neel_time(sigma, tau_d):
    """Néel relaxation time of the magnetisation (its slowest mode) in s for a barrier σ = K V_c/(k_B T)
    and free-diffusion time ``tau_d`` (s): ``tau_d`` / λ_1."""
    return tau_d / relaxation_rates(sigma)[0]


def anisotropic_equilibrium(xi, sigma, angle=None, nodes=None):
    """Equilibrium ⟨m̂ · ĥ⟩ of a particle with uniaxial anisotropy σ = K V_c/(k_B T) in a field ξ
    (µ0 m H/(k_B T)) at ``angle`` (rad) to its easy axis, or averaged over randomly oriented easy axes
    when ``angle`` is None. Gauss–Legendre quadrature of the Boltzmann distribution e^{σ(m̂·n̂)² + ξ m̂·ĥ}
    over the sphere, in the field's frame (``nodes`` in cos θ, twice as many in φ; default enough for
    the distribution's width); σ → 0 gives the Langevin function."""
    if not (math.isfinite(xi) and math.isfinite(sigma) and sigma >= 0):
        raise MPISimError(f"ξ must be finite and σ finite and >= 0, got ξ={xi}, σ={sigma}")
    nodes = nodes or int(48 + 4 * math.sqrt(abs(xi) + 2 * sigma))
    x, wx = np.polynomial.legendre.leggauss(nodes)          # cos θ of m̂ to the field
    phi = np.linspace(0, 2 * np.pi, 2 * nodes, endpoint=False)
    if angle is None:                                       # easy axes uniform on the sphere: cos ψ nodes
        psi_cos, psi_w = np.polynomial.legendre.leggauss(nodes)
        cps, sps = psi_cos[:, None, None], np.sqrt(1 - psi_cos ** 2)[:, None, None]
    else:
        cps, sps, psi_w = np.array(math.cos(angle)), np.array(math.sin(angle)), None
    s = np.sqrt(1 - x ** 2)
    mn = x[:, None] * cps + s[:, None] * np.cos(phi)[None, :] * sps
    e = sigma * mn ** 2 + xi * x[:, None]
    w = np.exp(e - e.max(axis=(-2, -1), keepdims=True)) * wx[:, None]
    m = (w * x[:, None]).sum(axis=(-2, -1)) / w.sum(axis=(-2, -1))
    return float(m if psi_w is None else (psi_w * m).sum() / 2)


# --- Brownian rotation under a field of any direction ------------------------------------------------

class BrownSphere:
    """Brownian rotation of a rigid dipole (no anisotropy) under a field ξ(t) of any direction: the
    Fokker–Planck equation 2τ_B ∂W/∂t = ∇²W − ∇·(W ∇(ξ·m̂)) on the unit sphere, Galerkin in real
    spherical harmonics up to degree ``lmax``.

    With W = Σ c_j Y_j, the multiplication by the moment's components, (M_k)_ij = ∫ Y_i m_k Y_j dΩ, is
    all it takes: ∫ Y_i ∇·(Y_j ∇m_k) dΩ = −½ (2 + l_i(l_i+1) − l_j(l_j+1)) (M_k)_ij (by parts, with
    ∇²m_k = −2 m_k), so that 2τ dc/dt = −Λ c − Σ_k ξ_k B_k c, Λ = diag(l(l+1)). The M_k come from a
    Gauss–Legendre × uniform quadrature that is exact for these band-limited products. Mean moment:
    ⟨m_k⟩ = √(4π) Σ_j (M_k)_0j c_j. Time in units of τ_B."""

    def __init__(self, lmax=24):
        if lmax < 1:
            raise MPISimError(f"lmax must be >= 1, got {lmax}")
        self.lmax = lmax
        nt, nphi = lmax + 3, 2 * lmax + 4
        x, w = np.polynomial.legendre.leggauss(nt)
        phi = np.arange(nphi) * 2 * np.pi / nphi
        X, P = np.meshgrid(x, phi, indexing="ij")
        W = (w[:, None] * np.full(nphi, 2 * np.pi / nphi)[None, :]).ravel()
        Y = real_harmonics(lmax, X.ravel(), P.ravel())
        s = np.sqrt(1 - X.ravel() ** 2)
        comps = (s * np.cos(P.ravel()), s * np.sin(P.ravel()), X.ravel())
        self.M = [(Y * (W * c)) @ Y.T for c in comps]
        for Mk in self.M:
            Mk[np.abs(Mk) < 1e-13] = 0.0
        ell = np.concatenate([[l] * (2 * l + 1) for l in range(lmax + 1)]).astype(float)
        self.lam = ell * (ell + 1)
        fac = -0.5 * (2 + self.lam[:, None] - self.lam[None, :])
        self.B = [fac * Mk for Mk in self.M]
        self.size = ell.size

    def rhs_matrix(self, xi):
        """dc/dt = A(ξ) c (time in τ_B) for the field vector ξ (3,)."""
        A = -np.diag(self.lam) - sum(x * Bk for x, Bk in zip(xi, self.B))
        return A / 2

    def moment(self, c):
        """Mean moment ⟨m̂⟩ (3,) of coefficients c."""
        return np.array([math.sqrt(4 * math.pi) * (Mk[0] @ c) for Mk in self.M])

    def equilibrium(self, xi):
        """Coefficients of the equilibrium distribution in a static field ξ (3,): the null vector of A(ξ)
        with c_0 = 1/√(4π)."""
        A = self.rhs_matrix(xi)
        c = np.zeros(self.size)
        c[0] = 1 / math.sqrt(4 * math.pi)
        rest = np.linalg.solve(A[1:, 1:], -A[1:, 0] * c[0])
        c[1:] = rest
        return c

    def periodic(self, fields, period_tau, tol=1e-7, max_periods=200):
        """Periodic steady state under the field samples ``fields`` (3, S) over one period of length
        ``period_tau`` (in units of τ_B): ⟨m̂⟩ at the samples (3, S). Crank–Nicolson steps between the
        samples, periods repeated from the equilibrium of the first sample until the state at the start
        of a period changes by less than ``tol``."""
        fields = np.asarray(fields, float)
        S = fields.shape[1]
        h = period_tau / S
        eye = np.eye(self.size)
        steps = []
        for s in range(S):                                   # one propagator per sample interval
            a0 = self.rhs_matrix(fields[:, s])
            a1 = self.rhs_matrix(fields[:, (s + 1) % S])
            steps.append(np.linalg.solve(eye - h / 2 * a1, eye + h / 2 * a0))
        c = self.equilibrium(fields[:, 0])
        out = np.empty((3, S))
        for _ in range(max_periods):
            start = c.copy()
            for s in range(S):
                out[:, s] = self.moment(c)
                c = steps[s] @ c
            if np.abs(c - start).max() < tol:
                return out
        raise MPISimError(f"no periodic state after {max_periods} periods (relaxation much slower than the drive)")
