"""Néel rotation with precession and random easy axes, and coupled Néel–Brown rotation, by the
Fokker–Planck equation on the sphere (issue 23).

**Néel.** The moment m̂ of a core with uniaxial anisotropy along its easy axis n̂ has a distribution W(m̂, t)
that obeys (Brown 1963; Coffey and Kalmykov, *The Langevin Equation*, 4th ed., ch. 9)

    2τ_D ∂W/∂t = ∇²W + ∇·(W ∇U) − α⁻¹ m̂·(∇U × ∇W),     U = −σ (m̂·n̂)² − ξ·m̂,

with σ = K V_c/(k_B T), ξ = µ0 m H/(k_B T) (a vector: the field may point anywhere), τ_D = (1 + α²) µ_s /
(2 α γ k_B T) the free-diffusion time and α the Gilbert damping. The last term is the precession: it follows
from the Landau–Lifshitz drift ṁ = −γ' m̂ × H − α γ' m̂ × (m̂ × H) of an electron spin (γ' > 0), whose
precession sense fixes its sign. With the rotation generators 𝓛 = m̂ × ∇ (real, degree-preserving on the
sphere) the three terms are 𝓛·𝓛W, 𝓛·(W 𝓛U) and −α⁻¹ m̂·(𝓛U × 𝓛W).

**Néel–Brown.** A particle free to turn carries its easy axis n̂ and, when the moment sits in its well, the
moment with it. W(m̂, n̂, t) then obeys

    ∂W/∂t = (1/2τ_D) [Néel operator in m̂, n̂ fixed] + (1/2τ_B) 𝒥·(𝒥W + W 𝒥U),    𝒥 = 𝓛_m + 𝓛_n,

the second term the rigid-body rotational diffusion of the whole particle (τ_B = 3ηV_h/(k_B T)) under the
torque the field exerts on the moment, 𝒥U = 𝓛_m(−ξ·m̂) (the anisotropy energy is internal: 𝒥(m̂·n̂)² = 0). It
reduces exactly to Brownian rotation of a fixed dipole when the Néel term is off (the m̂-marginal obeys
Brown's equation whatever the m̂–n̂ correlation), and to Néel rotation with frozen, randomly oriented axes
when the Brown term is off. (MNPDynamics.jl solves either mechanism, not both in one particle.)

**Discretisation.** Galerkin in orthonormal real spherical harmonics (:class:`SphereBasis`): the generators
come from the harmonics' rotation matrices, multiplications by polynomials of m̂ and n̂ from a quadrature
exact for them. The coupled problem uses the product basis Y_i(m̂) Z_a(n̂), the n̂ factor in even degrees only
(the energy is even in n̂). For the periodic state under a sinusoidal drive along one axis (a spectrometer)
the harmonics of W are found by the matrix continued fraction (Risken, *The Fokker–Planck Equation*, ch. 9):
no time stepping, no transient; for the coupled model the basis is first reduced to the functions invariant
under rotations about the drive axis (the field keeps that symmetry), which shrinks it by the degree.

Checks (``tests/test_neel_brown.py``): the generators against 𝓛 m̂ = m̂ × e, the equilibrium under a static
field of any direction against the Boltzmann integral (:func:`mpisim.fokker_planck.anisotropic_equilibrium`),
the field along the easy axis against the axial moment equations, σ = 0 and no precession against
:class:`~mpisim.fokker_planck.BrownSphere`, and the coupled model against each mechanism alone.
"""

import math
from functools import lru_cache

import numpy as np

from .errors import MPISimError

__all__ = ["SphereBasis", "neel_operators", "neel_brown_operators", "continued_fraction", "neel_harmonics",
           "neel_brown_harmonics", "neel_degree", "axis_degree", "axis_nodes", "real_harmonics", "MAX_BARRIER",
           "COUPLED_MAX_BARRIER", "MAX_BYTES", "check_size",
           "check_coupled_barrier"]

_EPS = np.zeros((3, 3, 3))
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _EPS[_i, _j, _k], _EPS[_i, _k, _j] = 1.0, -1.0


def real_harmonics(lmax, cos_theta, phi):
    """Orthonormal real spherical harmonics Y_lm at points (cos θ, φ) → (J, P), rows j = ℓ² + ℓ + m: P̄_ℓ^|m|(cos θ)
    times 1 (m = 0), √2 cos(mφ) (m > 0) or √2 sin(|m|φ) (m < 0), P̄ the orthonormal associated Legendre
    functions by the standard three-term recurrences in ℓ (stable for the degrees used here)."""
    x = np.asarray(cos_theta, float)
    s = np.sqrt(np.maximum(0.0, 1 - x * x))
    out = np.empty(((lmax + 1) ** 2, x.size))
    pmm = np.full(x.size, 1 / math.sqrt(4 * math.pi))
    for m in range(lmax + 1):
        if m > 0:
            pmm = -math.sqrt((2 * m + 1) / (2 * m)) * s * pmm
        cols = [pmm]
        if m < lmax:
            cols.append(math.sqrt(2 * m + 3) * x * pmm)
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            cols.append(a * (x * cols[-1] - b * cols[-2]))
        for l, p in zip(range(m, lmax + 1), cols):
            if m == 0:
                out[l * l + l] = p
            else:
                out[l * l + l + m] = math.sqrt(2) * p * np.cos(m * phi)
                out[l * l + l - m] = math.sqrt(2) * p * np.sin(m * phi)
    return out


class SphereBasis:
    """Orthonormal real spherical harmonics up to degree ``lmax`` (every degree, or the even ones only), on a
    Gauss–Legendre × uniform quadrature exact for a product of two of them and a polynomial of degree ≤ 4.

    ``points`` (3, P) unit vectors of the nodes, ``weights`` (P,), ``Y`` (J, P) the harmonics at the nodes,
    ``ell`` (J,) their degrees, ``G`` the matrices of the rotation generators 𝓛_k = (m̂ × ∇)_k (k = x, y, z),
    block-diagonal in the degree and antisymmetric."""

    def __init__(self, lmax, even=False):
        if lmax < 1:
            raise MPISimError(f"lmax must be >= 1, got {lmax}")
        self.lmax = int(lmax)
        nt, nphi = lmax + 3, 2 * lmax + 6
        x, w = np.polynomial.legendre.leggauss(nt)
        phi = np.arange(nphi) * 2 * np.pi / nphi
        X, P = np.meshgrid(x, phi, indexing="ij")
        self.weights = (w[:, None] * np.full(nphi, 2 * np.pi / nphi)[None, :]).ravel()
        s = np.sqrt(1 - X.ravel() ** 2)
        self.points = np.array([s * np.cos(P.ravel()), s * np.sin(P.ravel()), X.ravel()])
        ell = np.concatenate([[l] * (2 * l + 1) for l in range(lmax + 1)])
        self._keep = (ell % 2 == 0) if even else np.ones(ell.size, bool)
        self.Y = real_harmonics(lmax, X.ravel(), P.ravel())[self._keep]
        self.ell = ell[self._keep]
        order = np.concatenate([np.arange(-l, l + 1) for l in range(lmax + 1)])
        self.order = order[self._keep]
        # the half-turn about y, (x, y, z) → (−x, y, −z), maps Y_lm to ±Y_lm: + for (ℓ even, m ≥ 0) and
        # (ℓ odd, m < 0). A drive along z or x reverses under it, the anisotropy along z does not.
        self.turn = np.where((self.ell + (self.order < 0)) % 2 == 0, 1, -1)
        self.size = self.ell.size
        self.G = [self._generator(k) for k in range(3)]

    def mult(self, values):
        """Matrix of the multiplication by a function given at the nodes, projected on the basis."""
        return (self.Y * (self.weights * values)) @ self.Y.T

    def _generator(self, k):
        """𝓛_k from the rotation by θ = 2/(L + 1) about axis k: D_ij = ∫ Y_i(m̂) Y_j(R m̂) dΩ = exp(θ G)_ij, the
        logarithm per degree from D's eigenvalues e^{imθ} (distinct, and no angle wraps, while ℓθ < π: here
        ℓθ < 2 for every degree)."""
        theta = 2.0 / (self.lmax + 1)
        c, s = math.cos(theta), math.sin(theta)
        e = np.zeros(3)
        e[k] = 1.0
        p = self.points
        rp = p * c + np.cross(e, p, axis=0) * s + np.outer(e, e @ p) * (1 - c)
        Yr = real_harmonics(self.lmax, rp[2], np.arctan2(rp[1], rp[0]))[self._keep]
        D = (self.Y * self.weights) @ Yr.T
        G = np.zeros_like(D)
        for l in np.unique(self.ell):
            b = np.flatnonzero(self.ell == l)
            if l > 0:
                w, V = np.linalg.eig(D[np.ix_(b, b)])
                G[np.ix_(b, b)] = np.real((V * (1j * np.angle(w))) @ np.linalg.inv(V)) / theta
        G = (G - G.T) / 2
        G[np.abs(G) < 1e-12] = 0.0
        return G

    def moment_rows(self):
        """(3, J): ⟨m̂_k⟩ = rows @ c for coefficients c (√(4π) ∫ Y_0 m̂_k Y_j)."""
        return np.array([math.sqrt(4 * math.pi) * self.mult(self.points[k])[0] for k in range(3)])


def _cross_e(p, j):
    """m̂ × e_j at the nodes (3, P): the field 𝓛 m̂_j."""
    e = np.zeros(3)
    e[j] = 1.0
    return np.cross(p, e[:, None], axis=0)


def neel_operators(lmax, sigma, damping):
    """Néel Fokker–Planck operator for the easy axis along z: 2τ_D dc/dt = (A0 + Σ_j ξ_j A_j) c, dense
    (J, J) matrices, with the precession of Gilbert damping ``damping`` (np.inf: none). Returns
    (basis, A0, (A_x, A_y, A_z)). The parts are cached per degree and damping: A0 is linear in σ."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise MPISimError(f"anisotropy barrier σ must be finite and >= 0, got {sigma}")
    if not damping > 0:
        raise MPISimError(f"damping α must be > 0, got {damping}")
    b, base, unit, Aj = _neel_parts(int(lmax), float(damping))
    return b, base + sigma * unit, Aj


@lru_cache(maxsize=8)
def _neel_parts(lmax, damping):
    b = SphereBasis(lmax)
    p = b.points
    unit = _drift(b, -2 * p[2] * _cross_e(p, 2), damping)     # 𝓛U of the anisotropy −σ m_z² at σ = 1
    base = -np.diag((b.ell * (b.ell + 1)).astype(float))
    Aj = tuple(_drift(b, -_cross_e(p, j), damping) for j in range(3))
    return b, base, unit, Aj


def _drift(b, lu, damping):
    """Galerkin matrix of 𝓛·(W 𝓛U) − α⁻¹ m̂·(𝓛U × 𝓛W) for 𝓛U given at the nodes (3, P)."""
    A = sum(b.G[k] @ b.mult(lu[k]) for k in range(3))
    if math.isfinite(damping):
        p = b.points
        for a, bb, c in zip(*np.nonzero(_EPS)):
            A = A - _EPS[a, bb, c] / damping * (b.mult(p[a] * lu[bb]) @ b.G[c])
    return A


def neel_degree(xi_max, sigma):
    """Spherical-harmonic degree of the Néel problem for field energies up to ``xi_max`` and barrier σ: the wells
    of the distribution are about 1/√(ξ + 2σ) wide, and above σ ≈ 10 the barrier crossing (the Néel time, which
    grows as e^σ) needs the tails resolved as well: L = ⌈8 + 2 √(ξ + 2σ) + 2 max(0, σ − 10)⌉. With the field along
    the easy axis it is within 1e-4 of the fundamental of the axial moment equations at σ = 5, 10 and 15
    (``tests/test_neel_brown.py``), and 6 degrees more change the harmonics at ψ = 0.9 rad by < 3e-4 (σ = 10);
    the static moment at an angle is within 3e-6 of the Boltzmann integral at σ = 18 and 20 (measured, not
    in the suite: those degrees take minutes to build)."""
    return int(math.ceil(8 + 2 * math.sqrt(abs(xi_max) + 2 * sigma) + 2 * max(0.0, sigma - 10)))


MAX_BARRIER = 20.0
"""Largest anisotropy barrier σ = K V_c/(k_B T) the Néel solver takes (a degree of about 42): beyond it the
degree grows past what a spectrometer simulation affords, and the particle is blocked for any MPI drive
(Néel time ≳ 10⁴ τ_D·e^{σ−10}); its well's equilibrium (model ``anisotropic``) is then the better model."""

MAX_BYTES = 2e9
"""Most memory the continued fraction's matrices S_k (or the coupled model's reduced basis) may take."""


def check_size(xi0, sigma, harmonics, coupled=False):
    """Refuse (one line) a Néel solve whose memory exceeds :data:`MAX_BYTES`: (K + 1) (J/2)² complex matrices for
    J = (L + 1)² coefficients, times the axis functions for the coupled model."""
    L = neel_degree(xi0, sigma)
    J = (L + 1) ** 2
    if coupled:
        A = (axis_degree(sigma) + 1) * (axis_degree(sigma) + 2) // 2
        r = J * A / (L + 1)                               # the axially invariant functions, about
        need = max((harmonics + 1) * (r / 2) ** 2 * 16, J * A * r * 8)
    else:
        need = (harmonics + 1) * (J / 2) ** 2 * 16
    if need > MAX_BYTES:
        raise MPISimError(f"the Néel Fokker-Planck solve at field energy ξ = {xi0:.0f}, barrier σ = {sigma:.1f} "
                          f"(degree {L}, {harmonics} harmonics) needs about {need / 1e9:.0f} GB (at most "
                          f"{MAX_BYTES / 1e9:.0f}); lower the drive amplitude or the core size")


def _check_barrier(sigma):
    if not (math.isfinite(sigma) and 0 <= sigma <= MAX_BARRIER):
        raise MPISimError(f"anisotropy barrier σ = K V/(k_B T) = {sigma:.3g} is outside 0..{MAX_BARRIER:g} for the Néel "
                          f"Fokker–Planck solver: lower K or the core size, or use the anisotropic (equilibrium) model")


def axis_nodes(count=12):
    """Gauss–Legendre nodes in cos ψ ∈ [0, 1] and weights summing to 1: easy axes uniform on the sphere,
    averaged about a drive axis (n̂ and −n̂ are the same axis)."""
    x, w = np.polynomial.legendre.leggauss(int(count))
    return (x + 1) / 2, w / 2


def continued_fraction(A0, A1, xi0, omega, K, fixed=0, fixed_value=1.0, parity=None, lstsq=False):
    """Periodic state of dc/dt = (A0 + ξ0 sin(ωt) A1) c whose components ``fixed`` (an index or several) are
    constant, ``fixed_value`` (the normalisation, and any other conserved component: their rows of A0 and
    A1 are zero): the Fourier coefficients C_k (K + 1, J), c(t) = C_0 +
    2 Re Σ_{k≥1} C_k e^{ikωt}, by the matrix continued fraction C_k = S_k C_{k−1},
    S_k = (ikω − A0 + a A1 S_{k+1})⁻¹ a A1 (a = ξ0/2i, S_{K+1} = 0), and C_0 from the real equation
    (A0 − ξ0 A1 Im S_1) C_0 = 0.

    ``parity`` (J,) of 0/1, the components' sign under a symmetry that A0 keeps and A1 reverses (here the
    half-turn about an axis across the drive: it reverses the field and keeps the anisotropy and the
    precession; inversion m̂ → −m̂ would flip the precession term): the half-wave symmetry of the drive then puts
    harmonic k on the components of parity k mod 2 only, and each step solves a system of half the size.
    ``lstsq``: solve the static (k = 0) system in the least-squares sense, for operators with conserved
    components beyond the fixed ones that the output does not depend on."""
    J = A0.shape[0]
    par = np.zeros(J, int) if parity is None else np.asarray(parity) % 2
    sets = [np.flatnonzero(par == 0), np.flatnonzero(par == 1)]
    if parity is None:
        sets[1] = sets[0]
    a = xi0 / 2j
    blocks = {(id(M), p, q): M[np.ix_(sets[p], sets[q])] for M in (A0, A1) for p in (0, 1) for q in (0, 1)}

    def block(M, k, j):
        return blocks[id(M), k % 2, j % 2]

    S = [None] * (K + 2)
    S[K + 1] = np.zeros((sets[(K + 1) % 2].size, sets[K % 2].size), complex)
    for k in range(K, 0, -1):
        P = sets[k % 2]
        S[k] = np.linalg.solve(1j * k * omega * np.eye(P.size) - block(A0, k, k) + a * block(A1, k, k + 1) @ S[k + 1],
                               a * block(A1, k, k - 1))
    even = sets[0]
    M = block(A0, 0, 0) - xi0 * block(A1, 0, 1) @ S[1].imag
    fixed, fixed_value = np.atleast_1d(fixed), np.atleast_1d(np.asarray(fixed_value, float))
    f = np.array([int(np.flatnonzero(even == i)[0]) for i in fixed])
    rest = np.setdiff1d(np.arange(even.size), f)
    C = np.zeros((K + 1, J), complex)
    c0 = np.zeros(even.size)
    c0[f] = fixed_value
    if lstsq:
        c0[rest] = np.linalg.lstsq(M[np.ix_(rest, rest)], -M[np.ix_(rest, f)] @ fixed_value, rcond=None)[0]
    else:
        c0[rest] = np.linalg.solve(M[np.ix_(rest, rest)], -M[np.ix_(rest, f)] @ fixed_value)
    C[0, even] = c0
    prev = c0.astype(complex)
    for k in range(1, K + 1):
        prev = S[k] @ prev
        C[k, sets[k % 2]] = prev
    return C


def neel_harmonics(xi0, omega_tau_d, sigma, damping=0.1, harmonics=32, lmax=None, axes=8, angle=None):
    """Harmonics F_k (k = 0..K) of ⟨m̂·ĥ⟩ under ξ(t) = ξ0 sin(ωt) ĥ for Néel rotation with easy axes at random
    (``axes`` Gauss nodes in cos ψ) or at one ``angle`` ψ (rad) to the field; ``omega_tau_d`` = ω τ_D."""
    _check_barrier(sigma)
    lmax = lmax or neel_degree(xi0, sigma)
    b, A0, Aj = neel_operators(int(lmax), float(sigma), float(damping))
    rows = b.moment_rows()
    cos_psi, w = (np.array([math.cos(angle)]), np.array([1.0])) if angle is not None else axis_nodes(axes)
    F = np.zeros(harmonics + 1, complex)
    for cp, wi in zip(cos_psi, w):
        d = np.array([math.sqrt(max(0.0, 1 - cp * cp)), 0.0, cp])    # the field in the particle's frame
        A1 = sum(d[j] * Aj[j] for j in range(3))
        # time in units of 2τ_D: ω (2τ_D)
        C = continued_fraction(A0, A1, xi0, 2 * omega_tau_d, harmonics, fixed_value=1 / math.sqrt(4 * math.pi),
                               parity=(1 - b.turn) // 2)
        F += wi * (C @ rows.T) @ d
    return F


@lru_cache(maxsize=8)
def neel_brown_operators(lmax_m, lmax_n, sigma, damping):
    """Coupled Néel–Brown operators in the product basis Y_i(m̂) Z_a(n̂) (n̂ in even degrees): sparse
    (N0, N_j) of the Néel term (2τ_D dc/dt) and (R0, R_j) of the Brown term (2τ_B dc/dt), j = x, y, z, and the
    moment rows (3, J·A). Returns (N0, Nj, R0, Rj, rows, (bm, bn))."""
    import scipy.sparse as sp

    bm, bn = SphereBasis(lmax_m), SphereBasis(lmax_n, even=True)
    pm, pn = bm.points, bn.points

    def kron(a, c):
        a, c = np.where(np.abs(a) < 1e-13, 0, a), np.where(np.abs(c) < 1e-13, 0, c)
        return sp.kron(sp.csr_matrix(a), sp.csr_matrix(c), format="csr")

    nn = [[bn.mult(pn[i] * pn[j]) for j in range(3)] for i in range(3)]
    # 𝓛_m U_A, U_A = −σ (m̂·n̂)²: component k = −2σ Σ_{i,a,j} ε_kaj (m_i m_a)(n_i n_j)
    Gm = [kron(bm.G[k], np.eye(bn.size)) for k in range(3)]
    N0 = -kron(np.diag((bm.ell * (bm.ell + 1)).astype(float)), np.eye(bn.size))
    prec = math.isfinite(damping)
    for k in range(3):
        for a, j in zip(*np.nonzero(_EPS[k])):
            for i in range(3):
                f = -2 * sigma * _EPS[k, a, j]
                N0 = N0 + f * (Gm[k] @ kron(bm.mult(pm[i] * pm[a]), nn[i][j]))
                if prec:       # −α⁻¹ ε_bkc m_b (𝓛U)_k 𝓛_c W
                    for bb, c in zip(*np.nonzero(_EPS[:, k, :])):
                        N0 = N0 - _EPS[bb, k, c] / damping * f * (
                            kron(bm.mult(pm[bb] * pm[i] * pm[a]), nn[i][j]) @ Gm[c])
    _, _, Aj = neel_operators(lmax_m, 0.0, float(damping))
    Nj = tuple(kron(Aj[j], np.eye(bn.size)) for j in range(3))
    Jk = [Gm[k] + kron(np.eye(bm.size), bn.G[k]) for k in range(3)]
    R0 = sum(Jk[k] @ Jk[k] for k in range(3))
    Rj = tuple(sum(Jk[k] @ kron(bm.mult(-_cross_e(pm, j)[k]), np.eye(bn.size)) for k in range(3))
               for j in range(3))
    rows = np.kron(bm.moment_rows(), np.eye(bn.size)[0] * math.sqrt(4 * math.pi))
    return N0.tocsr(), Nj, R0.tocsr(), Rj, rows, (bm, bn)


def _axial_invariant(bm, bn):
    """Orthonormal basis (J·A, r) of the product functions invariant under rotations about z (the null space
    of 𝒥_z = 𝓛_z,m + 𝓛_z,n), built block by block over the degree pairs, each vector even or odd under the
    half-turn about y (returned as (Q, parity) with parity 0 for even)."""
    cols, parity = [], []
    for l1 in np.unique(bm.ell):
        i = np.flatnonzero(bm.ell == l1)
        for l2 in np.unique(bn.ell):
            a = np.flatnonzero(bn.ell == l2)
            Jz = np.kron(bm.G[2][np.ix_(i, i)], np.eye(a.size)) + np.kron(np.eye(i.size), bn.G[2][np.ix_(a, a)])
            _, s, vt = np.linalg.svd(Jz)
            null = vt[s < 1e-9 * max(1.0, s.max())].T
            turn = np.kron(bm.turn[i], bn.turn[a])
            ev, V = np.linalg.eigh(null.T @ (turn[:, None] * null))
            null = null @ V
            idx = (i[:, None] * bn.size + a[None, :]).ravel()
            for v, e in zip(null.T, ev):
                col = np.zeros(bm.size * bn.size)
                col[idx] = v
                cols.append(col)
                parity.append(0 if e > 0 else 1)
    return np.array(cols).T, np.array(parity)


COUPLED_MAX_BARRIER = 6.0
"""Largest barrier σ of the coupled Néel–Brown solver. In the product basis the distribution's dependence on
n̂ is as sharp as on m̂ (both sit in wells of width 1/√σ about each other), so the axis degree must grow with σ
(:func:`axis_degree`); above σ ≈ 6 that is more than the solver affords. There Néel rotation is slow against
Brown rotation at MPI frequencies (τ_N/τ_D ≈ 10² at σ = 6, 10⁴ at σ = 12) and model ``brown`` (moment locked
in the core) is the better description of a free particle, model ``neel`` of a bound one."""


def check_coupled_barrier(sigma):
    """Refuse (one line) a barrier outside the coupled solver's range 0..:data:`COUPLED_MAX_BARRIER`."""
    if not (math.isfinite(sigma) and 0 <= sigma <= COUPLED_MAX_BARRIER):
        raise MPISimError(f"neel-brown: anisotropy barrier σ = K V/(k_B T) = {sigma:.3g} is above "
                          f"{COUPLED_MAX_BARRIER:g}, where the coupled solver does not converge at an affordable size; "
                          f"use model brown for a free particle (Néel rotation is slow there) or neel for a bound one")


def axis_degree(sigma):
    """Even degree of the n̂ expansion of the coupled model: 2⌈σ⌉ + 2, at least 6 (with the Brown term off the
    coupled model then agrees with :func:`neel_harmonics` within 0.5 % of the fundamental for σ ≤ 5)."""
    return max(6, 2 * int(math.ceil(sigma)) + 2)


def neel_brown_harmonics(xi0, omega, sigma, tau_d, tau_b, damping=0.1, harmonics=32, lmax=None, lmax_axis=None):
    """Harmonics F_k (k = 0..K) of ⟨m̂_z⟩ under ξ(t) = ξ0 sin(ωt) ẑ for the coupled Néel–Brown model (``omega``
    in rad/s, ``tau_d`` the Néel free-diffusion time and ``tau_b`` the Brown time in s; np.inf switches a
    mechanism off). Degrees: ``lmax`` for m̂ (default :func:`neel_degree`), ``lmax_axis`` (even) for n̂
    (default :func:`axis_degree`)."""
    if not (tau_d > 0 and tau_b > 0) or (math.isinf(tau_d) and math.isinf(tau_b)):
        raise MPISimError("neel-brown: the Néel and Brown times must be > 0 and not both infinite")
    check_coupled_barrier(sigma)
    lmax = lmax or neel_degree(xi0, sigma)
    lmax_axis = lmax_axis or axis_degree(sigma)
    N0, Nj, R0, Rj, rows, (bm, bn) = neel_brown_operators(int(lmax), int(lmax_axis), float(sigma), float(damping))
    Q, parity = _axial_invariant(bm, bn)
    rn = 0.0 if math.isinf(tau_d) else 1 / (2 * tau_d)
    rb = 0.0 if math.isinf(tau_b) else 1 / (2 * tau_b)
    A0 = rn * N0 + rb * R0
    A1 = rn * Nj[2] + rb * Rj[2]
    A0r, A1r = Q.T @ (A0 @ Q), Q.T @ (A1 @ Q)
    c0 = Q[0]                                                # the constant function's coordinates
    fixed = int(np.argmax(np.abs(c0)))                       # the (0, 0) block holds the constant alone
    value = 1 / (4 * math.pi) / c0[fixed]                    # c_00 = 1/√4π · 1/√4π for the uniform W
    fixed, value = [fixed], [value]
    if rb == 0.0:            # axes frozen: their distribution (the m̂-degree-0 components) stays uniform
        frozen = np.flatnonzero(np.abs(Q[:bn.size]).sum(axis=0) > 1e-9)
        fixed += [int(i) for i in frozen if i != fixed[0]]
        value += [0.0] * (len(fixed) - 1)
    # Néel off: the relative orientation's moments ⟨P_ℓ(m̂·n̂)⟩ are conserved too; ⟨m̂⟩ does not depend on them
    C = continued_fraction(A0r, A1r, xi0, omega, harmonics, fixed=fixed, fixed_value=value, parity=parity,
                           lstsq=rn == 0.0)
    return C @ (rows[2] @ Q)
