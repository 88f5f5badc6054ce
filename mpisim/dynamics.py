"""Particle models behind one interface for the imaging forward model: the mean moment of a voxel's particles
under the drive field plus the voxel's offset field, for every model of :data:`MODELS`.

- ``langevin``: equilibrium (the Langevin function), with a Debye relaxation factor applied to the spectrum
  when the tracer has a relaxation time (:meth:`mpisim.particles.Tracer.debye_factor`) — today's model;
- ``brown``: Brownian rotation of particles whose moment is fixed in the core (a high anisotropy barrier), by
  the Fokker–Planck equation on the sphere (:class:`mpisim.fokker_planck.BrownSphere`: real spherical harmonics
  up to degree :func:`brown_degree`), integrated in time to the periodic state of the scanner's drive at each
  voxel's offset field: the relaxation is in the moment's time course, field-dependent (it speeds up in strong
  fields, Yoshida and Enpuku's τ_B(H)) and no Debye factor is applied on top;
- ``anisotropic``: equilibrium with uniaxial anisotropy K and easy axes oriented at random
  (:func:`mpisim.fokker_planck.anisotropic_equilibrium`), tabulated in |ξ| once per tracer; with random axes the
  mean moment is along the field.

The compiled kernel (:func:`mpisim.cpu_kernels.brown_moments`) and its numpy twin
(:func:`brown_moments_numpy`) integrate with the same classical Runge–Kutta steps: a pre-roll of several τ_B,
then periods until the state's distance to the periodic one — estimated as its change over a period over
1 − ρ, ρ = e^{−T/τ_B} the zero-field contraction of the slowest mode over a period T — is within
:data:`PERIOD_TOL`; an integration that does not get there
within :data:`MAX_PERIODS` periods stops with an error.
"""

import math
from functools import lru_cache

import numpy as np

from . import backend as B
from . import constants as C
from .errors import MPISimError
from .fokker_planck import BrownSphere, anisotropic_equilibrium, periodic_response
from .particles import MODELS as _MODELS

__all__ = ["MODELS", "PERIOD_TOL", "MAX_PERIODS", "STABILITY", "brown_degree", "brown_plan", "unit_moments_model",
           "brown_moments_numpy", "anisotropic_table", "axial_moment"]

MODELS = _MODELS
"""Particle models of the imaging forward model (:attr:`mpisim.particles.Tracer.model`)."""
PERIOD_TOL = 1e-6
"""A periodic state: the coefficients' estimated distance to it (relative, max norm) is below this."""
MAX_PERIODS = 60
"""Periods integrated at most before an integration is said not to reach a periodic state."""
STABILITY = 2.5
"""Runge–Kutta steps are kept below this over the largest eigenvalue magnitude of the Fokker–Planck operator
(classical RK4 is stable on the negative real axis up to 2.79)."""
PREROLL_TAU = 8.0
"""Pre-roll before the recorded period, in τ_B (the transient from the isotropic start decays as e^{−t/τ_B})."""


def brown_degree(xi_max):
    """Spherical-harmonic degree L of the Brownian Fokker–Planck expansion for fields up to ``xi_max``
    (µ0 m H / k_B T): L = max(8, ⌈2.8 √ξ_max⌉). The equilibrium it gives is the Langevin function within 3e-4
    up to ξ = 45 (``tests/test_dynamics.py`` checks it and that degree + 4 changes the columns by < 0.5 %)."""
    return max(8, int(math.ceil(2.8 * math.sqrt(max(float(xi_max), 0.0)))))


@lru_cache(maxsize=8)
def _sphere(lmax):
    return BrownSphere(lmax)


@lru_cache(maxsize=32)
def brown_plan(lmax, xi_max):
    """(lam (n,), CSR (ptr, idx, val) of [B_x; B_y; B_z], mrow (3, n), largest eigenvalue magnitude of the
    operator in units of 1/(2τ_B)) for the Brownian Fokker–Planck equation up to degree ``lmax``."""
    from scipy.sparse import csr_matrix, vstack

    s = _sphere(lmax)
    Bcsr = vstack([csr_matrix(b) for b in s.B]).tocsr()
    mrow = np.array([math.sqrt(4 * math.pi) * Mk[0] for Mk in s.M])
    worst = 0.0
    for d in (np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0]) / math.sqrt(3)):
        A = np.diag(s.lam) + sum(x * b for x, b in zip(xi_max * d, s.B))
        worst = max(worst, float(np.abs(np.linalg.eigvals(A)).max()))
    return (s.lam.astype(np.float64), (Bcsr.indptr.astype(np.int64), Bcsr.indices.astype(np.int64),
                                       Bcsr.data.astype(np.float64)), mrow, worst)


def unit_moments_model(scanner, tracer, offsets, dtype=np.float64, weights=None, numba=None):
    """Mean moment per saturated moment, (P, 3, V) — or the ``weights``-weighted sum over voxels (3, V) — for
    a tracer whose :attr:`~mpisim.particles.Tracer.model` is not "langevin" (offsets (P, 3) in T/µ0)."""
    offsets = np.ascontiguousarray(offsets, np.float64)
    betas, q = tracer.betas_and_weights()
    if tracer.model == "anisotropic":
        out = _anisotropic_moments(scanner, tracer, offsets, betas, q)
    elif tracer.model == "brown":
        out = np.zeros((offsets.shape[0], 3, scanner.num_samples))
        for b, w in zip(betas, q):
            out += w * _brown(scanner, tracer, offsets, float(b), numba)
    else:
        raise MPISimError(f"unit_moments_model: model {tracer.model!r} has no dynamics here (langevin is the "
                          f"forward model's own)")
    if weights is not None:
        return np.einsum("p,pcv->cv", np.asarray(weights, np.float64), out).astype(dtype, copy=False)
    return out.astype(dtype, copy=False)


def _levels(xi):
    """Half-octave level of each voxel's largest field energy ξ: the voxels of one level share a plan (degree,
    steps, table), chosen for 2^(level/2) ≥ ξ, so that a voxel's result depends on its own field only, not on
    which voxels it is computed with (blocks, Dask workers)."""
    return np.ceil(2 * np.log2(np.maximum(xi, 1.0))).astype(int)


def _brown(scanner, tracer, offsets, beta, numba=None):
    """(P, 3, V) periodic ⟨m̂⟩ of one core size under Brownian rotation, voxels grouped by :func:`_levels`."""
    amp = np.sqrt(np.sum(np.abs(scanner.drive_waveform) ** 2, axis=0)).max()
    levels = _levels(beta * (amp + np.sqrt((offsets ** 2).sum(axis=1))))
    out = np.empty((offsets.shape[0], 3, scanner.num_samples))
    for level in np.unique(levels):
        sel = np.flatnonzero(levels == level)
        out[sel] = _brown_level(scanner, tracer, np.ascontiguousarray(offsets[sel]), beta, 2.0 ** (level / 2), numba)
    return out


def _brown_level(scanner, tracer, offsets, beta, xi_max, numba=None):
    """:func:`_brown` for voxels whose field energy stays below ``xi_max``."""
    tau = tracer.brown_time
    V = scanner.num_samples
    dt = 1.0 / scanner.receiver.sampling_rate
    lam, (ptr, idx, val), mrow, worst = brown_plan(brown_degree(xi_max), xi_max)
    # step h (s): rate·|λ|max ≤ STABILITY with rate = h/(2τ_B)
    substeps = max(1, int(math.ceil(dt * worst / (2 * tau) / STABILITY)))
    if substeps * V > 5e7:
        raise MPISimError(f"model brown: τ_B = {tau * 1e6:.3g} µs is far shorter than the sampling interval "
                          f"({dt * 1e6:.3g} µs): {substeps} steps per sample; the particles are in equilibrium, use "
                          f"model langevin (with its Debye factor)")
    h = dt / substeps
    times = np.arange(2 * substeps * V) * (h / 2)
    hfine = np.ascontiguousarray(scanner.drive_field_at(times), np.float64)
    preroll = min(int(math.ceil(PREROLL_TAU * tau / dt)), 4 * V)
    rate = h / (2 * tau)
    # contraction per period: every mode but the equilibrium decays at least as e^{−t/τ_B} (the slowest
    # zero-field mode, l = 1; a field only speeds relaxation up)
    rho = math.exp(-V * dt / tau)
    out = np.empty((offsets.shape[0], 3, V))
    periods = np.empty(offsets.shape[0], np.int64)
    use_numba = B.numba_available() if numba is None else numba
    if use_numba:
        from .cpu_kernels import brown_moments  # imports numba: loaded on first use

        brown_moments(hfine, offsets, beta, rate, lam, ptr, idx, val, mrow, substeps, preroll, MAX_PERIODS,
                      PERIOD_TOL, rho, out, periods)
    else:
        brown_moments_numpy(hfine, offsets, beta, rate, lam, (ptr, idx, val), mrow, substeps, preroll,
                            MAX_PERIODS, PERIOD_TOL, rho, out, periods)
    if np.any(periods < 0):
        raise MPISimError(f"model brown: no periodic state within {MAX_PERIODS} periods for "
                          f"{int(np.sum(periods < 0))} voxel(s) (τ_B = {tau * 1e6:.3g} µs against a "
                          f"{V * dt * 1e3:.3g} ms period); the relaxation is too slow for this sequence")
    return out


def brown_moments_numpy(hfine, offsets, beta, rate, lam, csr, mrow, substeps, preroll, max_periods, tol, rho, out,
                        periods):
    """Numpy twin of :func:`mpisim.cpu_kernels.brown_moments` (same steps, all voxels at once: the state is
    (n, P), the B_k act as sparse matrices)."""
    from scipy.sparse import csr_matrix

    ptr, idx, val = csr
    n, P, V = lam.shape[0], offsets.shape[0], out.shape[2]
    Bs = [csr_matrix((val[ptr[k * n]:ptr[(k + 1) * n]], idx[ptr[k * n]:ptr[(k + 1) * n]],
                      ptr[k * n:(k + 1) * n + 1] - ptr[k * n]), shape=(n, n)) for k in range(3)]
    c = np.zeros((n, P))
    c[0] = 1.0 / math.sqrt(4.0 * math.pi)
    H, L = 2 * substeps, hfine.shape[1]

    def rhs(x, j):
        xi = beta * (hfine[:, j % L][:, None] + offsets.T)          # (3, P)
        return -rate * (lam[:, None] * x + sum(xi[k][None, :] * (Bs[k] @ x) for k in range(3)))

    periods[:] = -1
    start = c.copy()
    done = np.zeros(P, bool)
    for step in range(preroll + max_periods * V + 1):           # + 1: the last period's end is checked too
        s, rec = (step - preroll) % V, step - preroll
        if rec >= 0 and s == 0:
            if rec > 0:
                d = np.abs(c - start).max(axis=0)
                ok = (d <= tol * np.abs(c).max(axis=0) * (1.0 - rho)) & ~done
                periods[ok] = rec // V
                done |= ok
                if done.all():
                    return
            start = np.where(done[None, :], start, c)
        if rec >= 0:
            m = mrow @ c
            out[~done, :, s] = m.T[~done]
        for sub in range(substeps):
            j = s * H + 2 * sub
            k1 = rhs(c, j)
            k2 = rhs(c + 0.5 * k1, j + 1)
            k3 = rhs(c + 0.5 * k2, j + 1)
            k4 = rhs(c + k3, j + 2)
            c = np.where(done[None, :], c, c + (k1 + 2 * k2 + 2 * k3 + k4) / 6.0)


@lru_cache(maxsize=16)
def anisotropic_table(sigma, xi_max, points=400):
    """(ξ nodes, ⟨m̂·ĥ⟩ / ξ) of the equilibrium with uniaxial anisotropy σ = K V / k_B T and random easy axes,
    on a grid dense near 0 (ξ = ξ_max u², u uniform), for interpolation."""
    u = np.linspace(0.0, 1.0, points)
    xi = np.maximum(xi_max * u ** 2, 1e-6)
    m = np.array([anisotropic_equilibrium(float(x), sigma) for x in xi])
    return xi, m / xi


def _anisotropic_moments(scanner, tracer, offsets, betas, q):
    hd = scanner.drive_waveform
    h = offsets[:, :, None] + hd[None]                                   # (P, 3, V)
    hn = np.sqrt((h ** 2).sum(axis=1))
    m = np.empty_like(hn)
    levels = _levels(np.max(hn, axis=1) * float(np.max(betas)))
    for level in np.unique(levels):                                      # one table range per voxel's level
        sel = levels == level
        m[sel] = _anisotropic_moments_of(tracer, hn[sel])               # ⟨m̂·ĥ⟩, along the field
    return m[:, None, :] * h / np.where(hn > 0, hn, 1.0)[:, None, :]


def axial_moment(tracer, amplitude, omega, phase, t):
    """Mean moment per saturated moment along a field amplitude·sin(ωt + phase) (T/µ0) of one axis, with no
    offset, at times ``t`` (s): the equilibrium curve of ``langevin`` and ``anisotropic`` (their Debye factor, if
    any, is the caller's), and for ``brown`` the periodic Fokker–Planck response by harmonic balance
    (:func:`mpisim.fokker_planck.periodic_response`: exact for a field along one axis)."""
    t = np.asarray(t, float)
    h = amplitude * np.sin(omega * t + phase)
    if tracer.model == "langevin":
        field = np.zeros((3,) + t.shape)
        field[0] = h
        return tracer.unit_magnetisation(field)[0]
    if tracer.model == "anisotropic":
        return _anisotropic_moments_of(tracer, np.abs(h)) * np.sign(h)
    betas, q = tracer.betas_and_weights()
    out = np.zeros_like(t)
    for b, w in zip(betas, q):
        F = periodic_response(b * amplitude, omega * tracer.brown_time)
        k = np.arange(1, len(F))
        out += w * (F[0].real + 2 * np.real(F[1:, None] * np.exp(1j * k[:, None] * (omega * t + phase)[None, :])).sum(0))
    return out


def _anisotropic_moments_of(tracer, hn):
    """⟨m̂·ĥ⟩ (size-averaged) of the anisotropic model at field magnitudes ``hn`` (T/µ0)."""
    betas, q = tracer.betas_and_weights()
    d, _ = tracer.size_quadrature()
    out = np.zeros_like(hn, dtype=float)
    for b, qi, di in zip(betas, q, d):
        sigma = tracer.anisotropy * math.pi * di ** 3 / 6 / (C.K_B * tracer.temperature)
        xmax = 2.0 ** math.ceil(math.log2(float(b * np.max(hn, initial=0.0)) * 1.01 + 1e-3))
        nodes, f = anisotropic_table(round(sigma, 12), xmax)
        out += qi * b * hn * np.interp(b * hn, nodes, f)
    return out
