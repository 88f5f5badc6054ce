"""Magnetic particle spectroscopy (MPS): a tracer in a homogeneous sinusoidal field, no gradient — what a
spectrometer measures to characterise a tracer (issue 23, item 3).

The field H(t) = A sin(2π f t) (A in T/µ0) acts along one axis; the tracer's mean moment along it,
per iron mass, comes from one of :data:`MODELS`:

- ``langevin``: equilibrium, Σ_i q_i m_i L(ξ_i(t)) over the core-size quadrature;
- ``anisotropic``: equilibrium with uniaxial anisotropy K (``anisotropy``), easy axes oriented at
  random (immobilised cores, e.g. in cells), no relaxation: the Boltzmann average
  :func:`mpisim.fokker_planck.anisotropic_equilibrium`, tabulated over the field and interpolated;
- ``debye``: the Langevin harmonics times 1/(1 + i k ω τ) with the tracer's effective relaxation time
  (today's forward model of a relaxing tracer: one time constant, independent of the field);
- ``brown``: the Fokker–Planck solution of Brownian rotation (:mod:`mpisim.fokker_planck`) with
  τ_B = 3ηV_h/(k_B T) of each core's particle (``hydrodynamic_diameter`` and ``viscosity``);
- ``neel``: the Fokker–Planck solution of Néel rotation with uniaxial anisotropy K (``anisotropy``),
  precession and easy axes oriented at random (immobilised cores, e.g. in cells;
  :func:`mpisim.neel_brown.neel_harmonics`), with each core's own free-diffusion time τ_D = (1 + α²) µ_s /
  (2 α γ k_B T) for the Gilbert damping α (``damping``). The tracer's ``tau0`` (the attempt time of
  the Néel–Arrhenius law that the ``debye`` model uses) plays no part: the Fokker–Planck equation
  gives the Néel time itself;
- ``neel-aligned``: the same with every easy axis along the field (particles aligned in a field before
  they were immobilised), by the axial moment equations (:func:`mpisim.fokker_planck.periodic_response`);
- ``neel-brown``: Néel and Brown rotation in one particle (:func:`mpisim.neel_brown.neel_brown_harmonics`):
  a tracer free in a liquid whose moment can also cross its barrier; needs K and the hydrodynamic
  diameter.

The receive coil sees the voltage ∝ dM/dt, whose k-th harmonic is ∝ k ω |M_k|: :class:`MPSResult`
gives both, the dynamic M–H loop, and the harmonic ratios spectrometers report (A3/A1, A5/A3).
"""

from dataclasses import dataclass
import math

import numpy as np

from . import constants as C
from . import fokker_planck as fp
from . import neel_brown as nb
from .errors import MPISimError
from .particles import langevin

__all__ = ["MODELS", "MPSResult", "check_mps", "mps"]

MODELS = ("langevin", "anisotropic", "debye", "brown", "neel", "neel-aligned", "neel-brown")


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
    damping: float | None = None

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
                "tracer": self.tracer.to_dict(), "A3/A1": self.ratio(3, 1),
                **({"gilbert_damping": self.damping} if self.damping is not None else {}), "A5/A3": self.ratio(5, 3),
                "signal_harmonics": [float(x) for x in s[:min(s.size, 32)]],
                "moment_amplitude_Am2_per_kg": float(np.abs(self.moment).max())}


def mps(tracer, amplitude=20e-3, frequency=25e3, model="langevin", samples=512, harmonics=None, damping=None,
        progress=None):
    """Simulate an MPS measurement of ``tracer`` (:class:`mpisim.particles.Tracer`) at drive ``amplitude``
    (T/µ0, peak) and ``frequency`` (Hz) with a particle ``model`` of :data:`MODELS` (``damping``: the
    Gilbert damping α of the Néel models, default the tracer's); → :class:`MPSResult`, its time series on at
    least ``samples`` points a period (more when the harmonics need them). ``progress``: called with (done,
    total) core sizes."""
    damping = tracer.damping if damping is None else damping
    nodes, K = check_mps(tracer, amplitude, frequency, model, harmonics, damping)
    per_kg = tracer.moment_per_iron_mass                  # saturated moment per iron mass, A·m²/kg
    omega = 2 * np.pi * frequency
    total = np.zeros(K + 1, complex)
    for i, (xi0, qi, di, sigma) in enumerate(nodes):
        Ki = harmonics or max(32, fp.harmonics_for(xi0, sigma))
        total[:Ki + 1] += qi * _unit_harmonics(tracer, model, xi0, omega, di, Ki, sigma, damping)[:Ki + 1]
        if progress is not None:
            progress(i + 1, len(nodes))
    total *= per_kg
    n = max(samples, 2 * K + 2)
    t = np.arange(n) / n / frequency
    full = np.zeros(n // 2 + 1, complex)
    full[:K + 1] = total
    moment = np.fft.irfft(full * n, n)                        # M(t) = M_0 + 2 Re Σ_k M_k e^{ikωt}
    return MPSResult(model, float(amplitude), float(frequency), t, amplitude * np.sin(omega * t), moment, total,
                     tracer, float(damping) if model.startswith("neel") else None)


def check_mps(tracer, amplitude, frequency, model, harmonics=None, damping=None):
    """Validate one MPS simulation before any of it is solved (one-line errors): → (nodes, K), the core-size
    nodes (ξ0, iron fraction, diameter, σ) and the harmonics to compute."""
    damping = tracer.damping if damping is None else damping
    if model not in MODELS:
        raise MPISimError(f"particle model must be one of {', '.join(MODELS)}, got {model!r}")
    if not (math.isfinite(amplitude) and 0 < amplitude <= 1):
        raise MPISimError(f"MPS amplitude must be > 0 and at most 1 T/µ0, got {amplitude}")
    if not (math.isfinite(frequency) and 0 < frequency <= 1e8):
        raise MPISimError(f"MPS frequency must be > 0 and at most 100 MHz, got {frequency}")
    if not (math.isfinite(damping) and 1e-4 <= damping <= 10):
        raise MPISimError(f"damping α must be between 1e-4 and 10, got {damping}")
    betas, q = tracer.betas_and_weights()
    d, _ = tracer.size_quadrature()
    nodes = [(float(b * amplitude), qi, di, _barrier(tracer, model, di)) for b, qi, di in zip(betas, q, d)]
    if model == "anisotropic":
        _needs(tracer, model)
    if model in ("brown", "neel", "neel-aligned", "neel-brown"):     # every core size checked before any is solved
        _needs(tracer, model)
        for xi0, _, _, sigma in nodes:
            fp.check_size(xi0, sigma)
            if model in ("neel", "neel-brown"):
                nb._check_barrier(sigma)
            if model == "neel-brown":
                nb.check_coupled_barrier(sigma)
            if model in ("neel", "neel-brown"):
                nb.check_size(xi0, sigma, harmonics or max(32, fp.harmonics_for(xi0, sigma)), model == "neel-brown")
    K = harmonics or max(32, max(fp.harmonics_for(xi0, sigma) for xi0, _, _, sigma in nodes))
    if K > 100_000:
        raise MPISimError(f"the drive saturates these cores so hard that {K} harmonics are needed (at most 100000); "
                          f"lower the amplitude")
    return nodes, K


def _barrier(tracer, model, diameter):
    """σ = K V_c/(k_B T) of a core (0 unless the model is neel or anisotropic and the tracer has an
    anisotropy)."""
    if model not in ("neel", "neel-aligned", "neel-brown", "anisotropic") or tracer.anisotropy is None:
        return 0.0
    return tracer.anisotropy * math.pi / 6 * diameter ** 3 / (C.K_B * tracer.temperature)


def _needs(tracer, model):
    if model in ("brown", "neel-brown") and tracer.hydrodynamic_diameter is None:
        raise MPISimError(f"the {model} model needs the tracer's hydrodynamic_diameter")
    if model in ("neel", "neel-aligned", "neel-brown", "anisotropic") and tracer.anisotropy is None:
        raise MPISimError(f"the {model} model needs the tracer's anisotropy (J/m³)")


def _unit_harmonics(tracer, model, xi0, omega, diameter, K, sigma, damping):
    """Harmonics F_k (k = 0..K) of ⟨cos θ⟩ of one core size under ξ0 sin(ωt)."""
    if model in ("langevin", "debye"):
        n = max(256, 8 * K)
        t = np.arange(n) / n * 2 * np.pi
        F = np.fft.rfft(langevin(xi0 * np.sin(t)))[:K + 1] / n
        if model == "debye":
            F = F * tracer.debye_factor(np.arange(K + 1) * omega / (2 * np.pi))
        return F
    if model == "anisotropic":
        return _anisotropic_harmonics(xi0, sigma, K)
    if model == "brown":
        tau = fp.brown_time(max(tracer.hydrodynamic_diameter, diameter), tracer.viscosity, tracer.temperature)
        return fp.periodic_response(xi0, omega * tau, harmonics=K)
    moment = tracer.ms / C.MU0 * math.pi / 6 * diameter ** 3
    tau_d = fp.neel_diffusion_time(moment, damping, tracer.temperature)
    if model == "neel":
        return nb.neel_harmonics(xi0, omega * tau_d, sigma, damping, harmonics=K)
    if model == "neel-brown":
        tau_b = fp.brown_time(max(tracer.hydrodynamic_diameter, diameter), tracer.viscosity, tracer.temperature)
        return nb.neel_brown_harmonics(xi0, omega, sigma, tau_d, tau_b, damping, harmonics=K)
    return fp.periodic_response(xi0, omega * tau_d, sigma=sigma, harmonics=K)


def _anisotropic_harmonics(xi0, sigma, K, table=65):
    """Harmonics of the equilibrium ⟨cos θ⟩ of randomly oriented anisotropic cores under ξ0 sin(ωt): the
    Boltzmann average on ``table`` Chebyshev points of |ξ| ≤ ξ0 (it is odd in ξ), a cubic spline between
    them (``tests/test_mps.py`` checks it against direct quadrature), sampled and Fourier-transformed."""
    from scipy.interpolate import CubicSpline

    u = np.sort(xi0 * (1 - np.cos(np.linspace(0, np.pi / 2, table))))      # dense near 0 and near ξ0
    m = np.array([fp.anisotropic_equilibrium(float(x), sigma) for x in u])
    spline = CubicSpline(np.r_[-u[:0:-1], u], np.r_[-m[:0:-1], m])
    n = max(256, 8 * K)
    t = np.arange(n) / n * 2 * np.pi
    return np.fft.rfft(spline(xi0 * np.sin(t)))[:K + 1] / n
