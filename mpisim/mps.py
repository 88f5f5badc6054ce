"""Magnetic particle spectroscopy (MPS): a tracer in a homogeneous sinusoidal field, no gradient — what a
spectrometer measures to characterise a tracer (issue 23, item 3).

The field H(t) = A sin(2π f t) (A in T/µ0) acts along one axis; the tracer's mean moment along it,
per iron mass, comes from one of :data:`MODELS`:

- ``langevin``: equilibrium, Σ_i q_i m_i L(ξ_i(t)) over the core-size quadrature;
- ``debye``: the Langevin harmonics times 1/(1 + i k ω τ) with the tracer's effective relaxation time
  (today's forward model of a relaxing tracer: one time constant, independent of the field);
- ``brown``: the Fokker–Planck solution of Brownian rotation (:mod:`mpisim.fokker_planck`) with
  τ_B = 3ηV_h/(k_B T) of each core's particle (``hydrodynamic_diameter`` and ``viscosity``);
- ``neel``: the Fokker–Planck solution of Néel rotation with uniaxial anisotropy K (``anisotropy``),
  easy axes along the field (immobilised particles aligned in a field; random axes need the
  non-axial solver, not yet built), free-diffusion time τ_D = the tracer's ``tau0``.

The receive coil sees the voltage ∝ dM/dt, whose k-th harmonic is ∝ k ω |M_k|: :class:`MPSResult`
gives both, the dynamic M–H loop, and the harmonic ratios spectrometers report (A3/A1, A5/A3).
"""

from dataclasses import dataclass
import math

import numpy as np

from . import constants as C
from . import fokker_planck as fp
from .errors import MPISimError
from .particles import langevin

__all__ = ["MODELS", "MPSResult", "mps"]

MODELS = ("langevin", "debye", "brown", "neel")


@dataclass(frozen=True)
class MPSResult:
    """One MPS measurement, simulated. Arrays over one period of ``samples`` times (s); ``field`` in
    T/µ0; ``moment`` in A·m² per kg of iron; ``harmonics``: complex M_k (A·m²/kg, the e^{ikωt}
    coefficients, k = 0..K); ``signal``: k ω |M_k| (A·m²/(kg·s), what the receive coil sees, up to its
    sensitivity)."""

    model: str
    amplitude: float
    frequency: float
    times: np.ndarray
    field: np.ndarray
    moment: np.ndarray
    harmonics: np.ndarray
    tracer: object

    @property
    def signal(self):
        k = np.arange(self.harmonics.size)
        return k * 2 * np.pi * self.frequency * np.abs(self.harmonics)

    def ratio(self, a, b):
        """Signal harmonic ratio A_a / A_b (e.g. 3, 1)."""
        s = self.signal
        return float(s[a] / s[b]) if s[b] > 0 else math.nan

    def as_dict(self):
        s = self.signal
        return {"model": self.model, "amplitude_T_per_mu0": self.amplitude, "frequency_Hz": self.frequency,
                "tracer": self.tracer.to_dict(), "A3/A1": self.ratio(3, 1), "A5/A3": self.ratio(5, 3),
                "signal_harmonics": [float(x) for x in s[:min(s.size, 32)]],
                "moment_amplitude_Am2_per_kg": float(np.abs(self.moment).max())}


def mps(tracer, amplitude=20e-3, frequency=25e3, model="langevin", samples=512, harmonics=None):
    """Simulate an MPS measurement of ``tracer`` (:class:`mpisim.particles.Tracer`) at drive ``amplitude``
    (T/µ0, peak) and ``frequency`` (Hz) with a particle ``model`` of :data:`MODELS`; → :class:`MPSResult`."""
    if model not in MODELS:
        raise MPISimError(f"particle model must be one of {', '.join(MODELS)}, got {model!r}")
    if not (math.isfinite(amplitude) and 0 < amplitude <= 1):
        raise MPISimError(f"MPS amplitude must be > 0 and at most 1 T/µ0, got {amplitude}")
    if not (math.isfinite(frequency) and 0 < frequency <= 1e8):
        raise MPISimError(f"MPS frequency must be > 0 and at most 100 MHz, got {frequency}")
    betas, q = tracer.betas_and_weights()
    d, _ = tracer.size_quadrature()
    per_kg = tracer.moment_per_iron_mass                  # saturated moment per iron mass, A·m²/kg
    omega = 2 * np.pi * frequency
    sigma = 0.0
    if model == "neel" and tracer.anisotropy is not None:
        sigma = tracer.anisotropy * math.pi / 6 * float(d.max()) ** 3 / (C.K_B * tracer.temperature)
    K = harmonics or max(32, int(2 * float(betas.max()) * amplitude + 6 * min(sigma, 60) + 60))
    total = np.zeros(K + 1, complex)
    for beta, qi, di in zip(betas, q, d):
        xi0 = float(beta * amplitude)
        total += qi * _unit_harmonics(tracer, model, xi0, omega, di, K)
    total *= per_kg
    t = np.arange(samples) / samples / frequency
    k = np.arange(1, K + 1)
    moment = total[0].real + 2 * (total[1:, None] * np.exp(1j * np.outer(k, omega * t))).real.sum(axis=0)
    return MPSResult(model, float(amplitude), float(frequency), t, amplitude * np.sin(omega * t), moment, total,
                     tracer)


def _unit_harmonics(tracer, model, xi0, omega, diameter, K):
    """Harmonics F_k (k = 0..K) of ⟨cos θ⟩ of one core size under ξ0 sin(ωt)."""
    if model in ("langevin", "debye"):
        n = max(256, 8 * K)
        t = np.arange(n) / n * 2 * np.pi
        F = np.fft.rfft(langevin(xi0 * np.sin(t)))[:K + 1] / n
        if model == "debye":
            F = F * tracer.debye_factor(np.arange(K + 1) * omega / (2 * np.pi))
        return F
    if model == "brown":
        if tracer.hydrodynamic_diameter is None:
            raise MPISimError("the brown model needs the tracer's hydrodynamic_diameter")
        tau = fp.brown_time(max(tracer.hydrodynamic_diameter, diameter), tracer.viscosity, tracer.temperature)
        return fp.periodic_response(xi0, omega * tau, harmonics=K)
    if tracer.anisotropy is None:
        raise MPISimError("the neel model needs the tracer's anisotropy (J/m³)")
    sigma = tracer.anisotropy * math.pi / 6 * diameter ** 3 / (C.K_B * tracer.temperature)
    if sigma > 60:
        raise MPISimError(f"anisotropy barrier K V/(k_B T) = {sigma:.0f} > 60: the cores are blocked (Néel time beyond "
                          f"any drive period); lower the anisotropy or the core size")
    return fp.periodic_response(xi0, omega * tracer.tau0, sigma=sigma, harmonics=K)
