"""Tracers: equilibrium Langevin magnetisation, core-size distributions and Debye relaxation.

Units: core diameters in m, saturation magnetisation ``ms`` in T/µ0, temperature in K, fields in
T/µ0, moments in A·m², times in s, viscosity in Pa·s, anisotropy in J/m³.

The Langevin function L(ξ) = coth ξ − 1/ξ loses all precision near ξ = 0 (the field-free point);
all functions here switch to the Taylor series for |ξ| < 0.1, so they are exact to float64
rounding everywhere.
"""

from dataclasses import dataclass, fields, replace
import math

import numpy as np

from . import constants as C
from .errors import MPISimError, check_int, check_positive

__all__ = ["langevin", "langevin_over_xi", "langevin_derivative", "LANGEVIN_DERIVATIVE_FWHM", "Tracer", "MODELS", "STATES", "cell_label_tracer",
           "resovist_like_tracer", "perimag_like_tracer", "synomag_like_tracer", "TRACER_PRESETS",
           "default_tracer"]

_SMALL = 0.1  # below this |ξ| the series are used (error < 1e-16 with the terms kept)


def langevin(xi):
    """Langevin function L(ξ) = coth ξ − 1/ξ, odd, stable near 0 (array in, array out)."""
    xi = np.asarray(xi, dtype=float)
    a = np.abs(xi)
    small = a < _SMALL
    safe = np.where(small, 1.0, a)
    big = 1.0 / np.tanh(safe) - 1.0 / safe
    x2 = a * a
    series = a * (1 / 3 - x2 * (1 / 45 - x2 * (2 / 945 - x2 * (1 / 4725 - x2 * 2 / 93555))))
    return np.sign(xi) * np.where(small, series, big)


def langevin_over_xi(xi, xp=np):
    """L(ξ)/ξ, even and smooth with value 1/3 at ξ = 0 (the linear susceptibility factor).

    ``xp`` is the array module (numpy or cupy); the dtype of ``xi`` is kept if floating.
    """
    xi = xp.asarray(xi)
    if xi.dtype.kind != "f":
        xi = xi.astype(float)
    a = xp.abs(xi)
    small = a < _SMALL
    safe = xp.where(small, 1.0, a)
    big = (1.0 / xp.tanh(safe) - 1.0 / safe) / safe
    x2 = a * a
    series = 1 / 3 - x2 * (1 / 45 - x2 * (2 / 945 - x2 * (1 / 4725 - x2 * 2 / 93555)))
    return xp.where(small, series, big)


def langevin_derivative(xi):
    """L′(ξ) = 1/ξ² − 1/sinh² ξ, even, 1/3 at ξ = 0 (stable series for |ξ| < 0.1)."""
    a = np.abs(np.asarray(xi, dtype=float))
    small = a < _SMALL
    safe = np.where(small, 1.0, np.minimum(a, 350.0))
    big = 1.0 / safe**2 - 1.0 / np.sinh(safe) ** 2
    big = np.where(a >= 350.0, 1.0 / np.maximum(a, 1.0) ** 2, big)
    x2 = a * a
    series = 1 / 3 - x2 * (1 / 15 - x2 * (2 / 189 - x2 * (1 / 675 - x2 * 2 / 10395)))
    return np.where(small, series, big)


LANGEVIN_DERIVATIVE_FWHM = 4.1610
"""Full width at half maximum of L′(ξ) in units of ξ (Rahmer 2009; Goodwill & Conolly 2010)."""


@dataclass(frozen=True)
class Tracer:
    """A SPION tracer: magnetite cores, optional log-normal size distribution and relaxation.

    Parameters
    ----------
    core_diameter : float
        Median core diameter d in m (the number-weighted median when ``size_sigma > 0``).
    ms : float
        Saturation magnetisation of the core material in T/µ0 (0.6 T/µ0 = 477 kA/m, magnetite).
    temperature : float
        Temperature in K.
    size_sigma : float
        σ of the log-normal core-size distribution (of ln d); 0 means monodisperse.
    size_nodes : int
        Number of Gauss–Hermite quadrature nodes over ln d when ``size_sigma > 0``.
    relaxation_time : float or None
        Debye relaxation time τ in s, given directly. ``None`` with ``anisotropy`` or
        ``hydrodynamic_diameter`` set computes τ from Néel and Brown (1/τ = 1/τ_N + 1/τ_B);
        ``None`` with neither means equilibrium (no relaxation).
    anisotropy : float or None
        Effective anisotropy constant K in J/m³ for Néel relaxation τ_N = τ0 exp(K V_c / k_B T).
    tau0 : float
        Néel attempt time τ0 in s.
    hydrodynamic_diameter : float or None
        Hydrodynamic diameter in m for Brown relaxation τ_B = 3 η V_h / (k_B T).
    viscosity : float
        Carrier viscosity η in Pa·s (default: water at 25 °C, 0.89e-3).
    damping : float
        Gilbert damping α of the Néel Fokker–Planck models (dimensionless; the free-diffusion time is
        τ_D = (1 + α²) µ_s / (2 α γ k_B T)).
    name : str
        Label written to MDF ``/tracer/name``.
    model : str
        Particle model of the imaging forward model (:data:`mpisim.dynamics.MODELS`): "langevin" (equilibrium,
        times the Debye factor of the relaxation time, if any), "brown" (Brownian rotation by Fokker–Planck, the
        moment fixed in the core: needs ``hydrodynamic_diameter``; the relaxation is in the dynamics, no Debye
        factor), "anisotropic" (equilibrium with uniaxial anisotropy ``anisotropy`` and random easy axes).
    state : str
        Binding state (:data:`STATES`): "mobile" (free to rotate) or "immobilised" (bound: Brown blocked);
        set by :meth:`in_state`, recorded in every output, and the contrast a system matrix of this tracer
        reconstructs (multi-contrast).
    """

    core_diameter: float = 25e-9
    ms: float = C.MAGNETITE_MS
    temperature: float = 294.0
    size_sigma: float = 0.0
    size_nodes: int = 9
    relaxation_time: float | None = None
    anisotropy: float | None = None
    tau0: float = 1e-9
    hydrodynamic_diameter: float | None = None
    viscosity: float = 0.89e-3
    damping: float = 0.1
    name: str = "magnetite-25nm"
    state: str = "mobile"
    model: str = "langevin"

    def __post_init__(self):
        if self.model not in MODELS:
            raise MPISimError(f"unknown particle model {self.model!r}: use one of {', '.join(MODELS)}")
        if self.model == "brown" and (self.hydrodynamic_diameter is None or self.relaxation_time is not None):
            raise MPISimError("particle model brown needs a hydrodynamic diameter (m) and no relaxation time given "
                              "directly (the Fokker–Planck dynamics make the relaxation)")
        if self.model == "anisotropic" and self.anisotropy is None:
            raise MPISimError("particle model anisotropic needs the anisotropy constant K (J/m³)")
        if self.state not in STATES:
            raise MPISimError(f"unknown tracer state {self.state!r}: use one of {', '.join(STATES)}")
        check_positive("tracer core_diameter (m)", self.core_diameter)
        if self.core_diameter > 1e-6:
            raise MPISimError(f"tracer core_diameter must be given in m (e.g. 25e-9), got {self.core_diameter}")
        check_positive("tracer ms (T/µ0)", self.ms)
        check_positive("tracer temperature (K)", self.temperature)
        check_positive("tracer size_sigma", self.size_sigma, allow_zero=True)
        if self.size_sigma > 1.0:
            raise MPISimError(f"tracer size_sigma must be <= 1 (σ of ln d), got {self.size_sigma}")
        object.__setattr__(self, "size_nodes", check_int("tracer size_nodes", self.size_nodes, 1, 64))
        if self.relaxation_time is not None:
            check_positive("tracer relaxation_time (s)", self.relaxation_time, allow_zero=True)
        if self.anisotropy is not None:
            check_positive("tracer anisotropy (J/m³)", self.anisotropy)
        if self.hydrodynamic_diameter is not None:
            check_positive("tracer hydrodynamic_diameter (m)", self.hydrodynamic_diameter)
            if self.hydrodynamic_diameter < self.core_diameter:
                raise MPISimError("tracer hydrodynamic_diameter must be >= core_diameter")
        check_positive("tracer tau0 (s)", self.tau0)
        check_positive("tracer viscosity (Pa·s)", self.viscosity)
        if not (isinstance(self.damping, (int, float)) and math.isfinite(self.damping) and 1e-4 <= self.damping <= 10):
            raise MPISimError(f"tracer damping α must be between 1e-4 and 10, got {self.damping}")

    # --- single-core quantities -------------------------------------------------------------
    @property
    def core_volume(self):
        """Core volume V_c = π d³ / 6 in m³ (median core)."""
        return math.pi * self.core_diameter**3 / 6

    @property
    def moment(self):
        """Magnetic moment m = M_s V_c of the median core in A·m²."""
        return self.ms / C.MU0 * self.core_volume

    @property
    def beta(self):
        """µ0 m / (k_B T) in 1/(T/µ0): ξ = beta · |field in T/µ0| (median core)."""
        return self.moment / (C.K_B * self.temperature)

    @property
    def iron_mass_per_core(self):
        """Iron mass of one median core in kg."""
        return C.MAGNETITE_DENSITY * C.FE_MASS_FRACTION * self.core_volume

    @property
    def moment_per_iron_mass(self):
        """Saturated moment per iron mass in A·m²/kg (independent of d)."""
        return self.ms / C.MU0 / (C.MAGNETITE_DENSITY * C.FE_MASS_FRACTION)

    # --- size distribution ------------------------------------------------------------------
    def size_quadrature(self):
        """Quadrature over core sizes: (diameters in m, iron-mass fractions summing to 1).

        For a log-normal number distribution with median d0 and σ, the iron-mass (∝ d³) weighted
        distribution is log-normal with median d0·exp(3σ²); Gauss–Hermite nodes in ln d.
        """
        if self.size_sigma == 0 or self.size_nodes == 1:
            return np.array([self.core_diameter]), np.array([1.0])
        x, w = np.polynomial.hermite_e.hermegauss(int(self.size_nodes))
        mu = math.log(self.core_diameter) + 3 * self.size_sigma**2
        d = np.exp(mu + self.size_sigma * x)
        return d, w / w.sum()

    def betas_and_weights(self):
        """(β_i in 1/(T/µ0), iron-mass fractions q_i) over the size quadrature."""
        d, q = self.size_quadrature()
        m = self.ms / C.MU0 * np.pi * d**3 / 6
        return m / (C.K_B * self.temperature), q

    def unit_magnetisation(self, field):
        """Mean moment per saturated moment, Σ q_i L(β_i|H|) Ĥ, for fields (3, ...) in T/µ0."""
        field = np.asarray(field, dtype=float)
        h = np.sqrt(np.sum(field**2, axis=0))
        betas, q = self.betas_and_weights()
        s = sum(qi * bi * langevin_over_xi(bi * h) for bi, qi in zip(betas, q))
        return s * field

    # --- relaxation -------------------------------------------------------------------------
    @property
    def neel_time(self):
        """Néel relaxation time τ_N in s (inf when no anisotropy is given)."""
        if self.anisotropy is None:
            return math.inf
        e = self.anisotropy * self.core_volume / (C.K_B * self.temperature)
        return self.tau0 * math.exp(min(e, 700.0))

    @property
    def brown_time(self):
        """Brown relaxation time τ_B = 3 η V_h / (k_B T) in s (inf without a hydrodynamic size)."""
        if self.hydrodynamic_diameter is None:
            return math.inf
        vh = math.pi * self.hydrodynamic_diameter**3 / 6
        return 3 * self.viscosity * vh / (C.K_B * self.temperature)

    @property
    def effective_relaxation_time(self):
        """Debye τ in s used by the forward model: given directly, or 1/τ = 1/τ_N + 1/τ_B; 0 = none."""
        if self.relaxation_time is not None:
            return float(self.relaxation_time)
        rate = 1 / self.neel_time + 1 / self.brown_time
        return 0.0 if rate == 0 else 1.0 / rate

    def debye_factor(self, frequencies):
        """Debye response 1/(1 + i ω τ) at ``frequencies`` in Hz (ones when τ = 0, and for a model whose
        dynamics make the relaxation: brown)."""
        tau = self.effective_relaxation_time if self.model != "brown" else 0.0
        f = np.asarray(frequencies, dtype=float)
        return 1.0 / (1.0 + 2j * np.pi * f * tau)

    # --- (de)serialisation ------------------------------------------------------------------
    def to_dict(self):
        """Plain dict (TOML/MDF friendly); ``None`` fields and the default state ("mobile") are left out (files
        and cache keys written before states existed stay valid)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None and not (f.name == "state" and self.state == "mobile")
                and not (f.name == "model" and self.model == "langevin")
                and not (f.name == "damping" and self.damping == 0.1)}

    @classmethod
    def from_dict(cls, d):
        """Build from a dict as written by :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        bad = set(d) - names
        if bad:
            raise MPISimError(f"unknown tracer field(s): {', '.join(sorted(bad))}")
        return cls(**d)

    def with_(self, **changes):
        """A copy with some fields changed."""
        return replace(self, **changes)

    def in_state(self, state):
        """This tracer in a binding ``state`` (:data:`STATES`): "mobile" — free in a liquid, Néel and Brown
        relaxation (itself); "immobilised" — bound in or on cells, or in a gel: the particle cannot turn, so
        Brown relaxation is blocked and only Néel relaxation remains (1/τ = 1/τ_N). Multi-contrast MPI tells
        the two apart by their spectra (Rahmer et al. 2015; Möddel et al. 2018). Needs the mechanisms: an
        anisotropy K (Néel) and a hydrodynamic diameter (Brown), not a relaxation time given directly."""
        if state not in STATES:
            raise MPISimError(f"unknown tracer state {state!r}: use one of {', '.join(STATES)}")
        if state == self.state:
            return self
        if self.state != "mobile":
            raise MPISimError(f"tracer {self.name!r} is {self.state}: its mobile state is not known")
        if self.relaxation_time is not None:
            raise MPISimError(f"tracer {self.name!r}: an immobilised state needs its relaxation mechanisms, not a "
                              f"relaxation time given directly (give K and the hydrodynamic diameter instead)")
        if self.anisotropy is None:
            raise MPISimError(f"tracer {self.name!r}: an immobilised state relaxes by Néel rotation only: give the "
                              f"anisotropy K (J/m³)")
        if self.hydrodynamic_diameter is None:
            raise MPISimError(f"tracer {self.name!r}: an immobilised state differs from the mobile one only with "
                              f"Brown rotation to block: give the hydrodynamic diameter (m)")
        model = "langevin" if self.model == "brown" else self.model     # no rotation left to model
        return replace(self, hydrodynamic_diameter=None, name=f"{self.name}-immobilised", state="immobilised",
                       model=model)


MODELS = ("langevin", "brown", "anisotropic")
"""Particle models of the imaging forward model (the same as :data:`mpisim.dynamics.MODELS`)."""

STATES = ("mobile", "immobilised")
"""Binding states of a tracer (:meth:`Tracer.in_state`): free to rotate, or held by cells (Brown blocked)."""


def cell_label_tracer(**kw):
    """A single-core magnetite tracer for labelling cells whose two states differ (multi-contrast): 25 nm core,
    effective anisotropy K = 4.5 kJ/m³ (Néel τ_N = 8.7 µs at 294 K with τ0 = 1 ns), hydrodynamic diameter
    30 nm in water (Brown τ_B = 9.3 µs): mobile τ = 4.5 µs, immobilised 8.7 µs (Debye, 1/τ = 1/τ_N + 1/τ_B).
    Illustrative values chosen so that both mechanisms matter at MPI drive frequencies, not fitted to a
    commercial product: give your tracer's K and hydrodynamic diameter where you know them."""
    kw.setdefault("name", "cell-label-25nm")
    return Tracer(**{"core_diameter": 25e-9, "anisotropy": 4.5e3, "hydrodynamic_diameter": 30e-9, **kw})


def resovist_like_tracer(**kw):
    """A multicore tracer in the manner of Resovist (ferucarbotran), the MPI community's long-standing
    reference: a broad distribution of magnetically effective cores, hydrodynamic diameter 60 nm.

    Sources and assumptions: the hydrodynamic size, "a particle size of about 60 nm", is from Y.-X. J. Wang,
    Quant. Imaging Med. Surg. 1 (2011) 35-40 (https://qims.amegroups.org/article/view/21). The core median
    (20 nm), its log-normal σ (0.15), the effective anisotropy
    (2 kJ/m³) and α = 0.1 are assumptions in the range MPI simulation studies use, not a fit to a
    measurement of the product (the distribution is kept narrow enough for the Néel Fokker–Planck model to
    solve its largest cores in about a minute): compare ``mpisim mps`` of the preset with a spectrometer
    measurement of your tracer before relying on them."""
    kw.setdefault("name", "resovist-like")
    return Tracer(**{"core_diameter": 20e-9, "size_sigma": 0.15, "size_nodes": 5, "anisotropy": 2e3,
                     "hydrodynamic_diameter": 60e-9, **kw})


def perimag_like_tracer(**kw):
    """A multicore dextran tracer in the manner of perimag (micromod): large hydrodynamic diameter (130 nm,
    the manufacturer's nominal size; not checked against a publication here), so that Brown rotation is slow
    (τ_B ≈ 0.8 ms in water) and Néel rotation carries the signal. Core median 18 nm, σ 0.12, K = 2.5 kJ/m³:
    assumptions, not a fit to a measurement of the product (the OpenMPIData tracer notes say only that its
    signal is comparable to Resovist's)."""
    kw.setdefault("name", "perimag-like")
    return Tracer(**{"core_diameter": 18e-9, "size_sigma": 0.12, "size_nodes": 5, "anisotropy": 2.5e3,
                     "hydrodynamic_diameter": 130e-9, **kw})


def synomag_like_tracer(**kw):
    """A nanoflower tracer in the manner of synomag-D (micromod): large, nearly monodisperse effective cores
    with a low effective anisotropy, hydrodynamic diameter 50 nm. The OpenMPIData tracer notes report up to
    twice perimag's signal, which the larger cores give here. Core median 24 nm, σ 0.08, K = 1.5 kJ/m³ and
    the 50 nm hydrodynamic size (the product's nominal grade) are assumptions, not a fit to a measurement."""
    kw.setdefault("name", "synomag-like")
    return Tracer(**{"core_diameter": 24e-9, "size_sigma": 0.08, "size_nodes": 5, "anisotropy": 1.5e3,
                     "hydrodynamic_diameter": 50e-9, **kw})


TRACER_PRESETS = {"cell-label": cell_label_tracer, "resovist-like": resovist_like_tracer,
                  "perimag-like": perimag_like_tracer, "synomag-like": synomag_like_tracer}
"""Tracer presets by name (``--tracer NAME``): functions returning a :class:`Tracer`."""


def default_tracer(core_diameter=25e-9, **kw):
    """A monodisperse magnetite tracer of the given core diameter in m at 294 K."""
    kw.setdefault("name", f"magnetite-{core_diameter * 1e9:g}nm")
    return Tracer(core_diameter=core_diameter, **kw)
