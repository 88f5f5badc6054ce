"""Scanner design: the figures of merit of a scanner and tracer, each with its unit and method.

:func:`figures_of_merit` answers what a design gives — field of view and its coverage by the
trajectory, repetition time and frame rate, spatial resolution per driven axis, the detection limit
in iron and in cells, and the drive field against published human safety limits. Every figure is a
:class:`Figure` (key, value in SI units, unit, how it was obtained); :func:`as_table` and
:func:`as_dict` print and serialise them. Sweeps over many designs are in :mod:`mpisim.sweep`.

Units: m, s, Hz, kg (iron), T (drive fields: the scanner's T/µ0 amplitudes are µ0H in tesla),
T/s, W/kg.
"""

from dataclasses import dataclass
import math

import numpy as np

from . import constants as C
from .errors import MPISimError, check_int, check_positive
from .detection import ALPHA, BETA, currie, data_domain_limit
from .dynamics import axial_moment
from .particles import LANGEVIN_DERIVATIVE_FWHM as LANGEVIN_FWHM  # noqa: E402  Δx = 4.1610 / (β G), PHYSICS.md §5
from .particles import Tracer
from .scanner import AXES, get_scanner

__all__ = ["SAR_LIMITS", "PNS_PEAK_FIELD", "TISSUE_CONDUCTIVITY", "TISSUE_DENSITY", "Figure",
           "DesignSettings", "figures_of_merit", "figure_keys", "fov_extent", "trajectory_coverage",
           "psf_fwhm", "detection_limit", "drive_peak_and_slew", "sar_estimate", "as_dict", "readable",
           "as_table"]

SAR_LIMITS = {"normal": 2.0, "first_level": 4.0}
"""Whole-body SAR limits in W/kg of IEC 60601-2-33 (MR equipment): normal operating mode and first
level controlled operating mode. See docs/howto-design.md."""

PNS_PEAK_FIELD = 7e-3
"""Default human magnetostimulation threshold for the drive field, peak µ0H in T (torso, ~25 kHz;
Saritas et al., IEEE Trans Med Imaging 32:1600, 2013). A design parameter: see docs/howto-design.md."""

TISSUE_CONDUCTIVITY = 0.5
"""Mean tissue conductivity in S/m of the SAR estimate (homogeneous body model)."""

TISSUE_DENSITY = 1000.0
"""Tissue density in kg/m³ of the SAR estimate."""


@dataclass(frozen=True)
class Figure:
    """One figure of merit: ``value`` in ``unit`` (SI), and ``method``: how it was obtained."""

    key: str
    label: str
    value: float
    unit: str
    method: str


@dataclass(frozen=True)
class DesignSettings:
    """What the figures of merit assume besides scanner and tracer.

    averages : drive cycles averaged per frame (noise σ/√averages).
    iron_per_cell : kg of iron per labelled cell (10 pg = 1e-14 kg).
    body_radius : m, radius of the homogeneous cylinder of the SAR estimate (0.15 m: adult torso).
    pns_limit : T, peak drive field compared with the magnetostimulation threshold.
    alpha, beta : false-positive and false-negative rates of the detection limit (Currie's L_D,
    :mod:`mpisim.detection`; 5 % each: L_D = 3.29 σ₀).
    """

    averages: int = 1
    iron_per_cell: float = 10 * C.PICOGRAM
    body_radius: float = 0.15
    pns_limit: float = PNS_PEAK_FIELD
    alpha: float = ALPHA
    beta: float = BETA

    def __post_init__(self):
        object.__setattr__(self, "averages", check_int("averages", self.averages, 1, 2 ** 31 - 1))
        check_positive("iron per cell (kg)", self.iron_per_cell)
        check_positive("body radius (m)", self.body_radius)
        check_positive("magnetostimulation limit (T)", self.pns_limit)
        for name in ("alpha", "beta"):
            check_positive(name, getattr(self, name))
            if not getattr(self, name) < 0.5:
                raise MPISimError(f"{name} must be a probability in (0, 0.5), got {getattr(self, name)}")


def figures_of_merit(scanner, tracer=None, settings=None):
    """The figures of merit of ``scanner`` (preset, TOML path or :class:`~mpisim.scanner.Scanner`)
    with ``tracer`` (default: the 25 nm magnetite tracer) → {key: :class:`Figure`}, in print order."""

    sc = get_scanner(scanner)
    tr = tracer or Tracer()
    st = settings or DesignSettings()
    out = {}

    def add(key, label, value, unit, method):
        out[key] = Figure(key, label, float(value), unit, method)

    ext = fov_extent(sc)
    for i in sc.driven_axes:
        add(f"fov_{AXES[i]}", f"field of view {AXES[i]}", ext[i], "m",
            "extent of the FFP path, 2 Σ_l |(G⁻¹)_il| A_l (exact)")
    add("coverage", "largest distance FOV point → FFP path", trajectory_coverage(sc), "m",
        "FOV sampled at 21 points per driven axis, FFP path at ≥ 20 000 points per cycle (k-d tree)")
    add("repetition_time", "repetition time", sc.drive_field.cycle, "s", "lcm(dividers) / base frequency (exact)")
    add("frame_rate", "frame rate", 1.0 / (sc.drive_field.cycle * st.averages), "1/s",
        f"1 / (repetition time × {st.averages} averaged cycle(s) per frame)")
    g = sc.gradient
    for i in sc.driven_axes:
        ax = AXES[i]
        add(f"resolution_{ax}", f"resolution {ax} (PSF FWHM)", psf_fwhm(sc, tr, i), "m",
            "FWHM of the x-space PSF of the simulated particle response (size distribution and Debye "
            "relaxation included), rising half of the drive cycle, 16 384 samples per period")
        add(f"resolution_{ax}_langevin", f"resolution {ax} (Langevin estimate)",
            LANGEVIN_FWHM / (tr.beta * abs(g[i, i])), "m", "4.161 k_B T / (µ0 m G), median core, no relaxation")
    lim = detection_limit(sc, tr, st)
    add("detection_limit_iron", "detection limit L_D, data domain (iron)", lim, "kg",
        f"data domain: matched filter, Currie L_D at α = {st.alpha:g}, β = {st.beta:g} "
        f"(L_D = {_currie_factor(st):.3g} σ₀, mpisim.detection): point source at the centre, position known — "
        f"the best any reconstruction can do; all receive bins (band-stop applied) against the receiver's white "
        f"noise, {st.averages} averaged cycle(s)")
    add("detection_limit_cells", "detection limit L_D, data domain (cells)", lim / st.iron_per_cell, "cells",
        f"detection limit / {st.iron_per_cell / C.PICOGRAM:g} pg iron per cell")
    peak, slew = drive_peak_and_slew(sc)
    add("drive_peak", "drive field, peak µ0H", peak, "T", "max over the cycle of |H_D(t)| (sampled at ≥ 20 000 points)")
    add("drive_slew", "drive field, peak dB/dt", slew, "T/s", "max over the cycle of |dH_D/dt|")
    add("pns_ratio", "drive peak / magnetostimulation limit", peak / st.pns_limit, "1",
        f"against {st.pns_limit * 1e3:g} mT (Saritas et al. 2013; see docs/howto-design.md)")
    sar = sar_estimate(sc, st.body_radius)
    add("sar", f"SAR (cylinder r = {st.body_radius:g} m)", sar, "W/kg",
        f"Σ_l σ (2π f_l A_l)² R² / (16 ρ): homogeneous cylinder, σ = {TISSUE_CONDUCTIVITY} S/m, "
        f"ρ = {TISSUE_DENSITY:g} kg/m³, field along its axis")
    add("sar_ratio", "SAR / IEC 60601-2-33 normal-mode limit", sar / SAR_LIMITS["normal"], "1",
        "against 2 W/kg whole-body (IEC 60601-2-33)")
    return out


def figure_keys(scanner):
    """The keys :func:`figures_of_merit` returns for ``scanner``, in its order (without computing them)."""

    axes = [AXES[i] for i in get_scanner(scanner).driven_axes]
    return ([f"fov_{a}" for a in axes] + ["coverage", "repetition_time", "frame_rate"]
            + [k for a in axes for k in (f"resolution_{a}", f"resolution_{a}_langevin")]
            + ["detection_limit_iron", "detection_limit_cells", "drive_peak", "drive_slew", "pns_ratio", "sar",
               "sar_ratio"])


def fov_extent(scanner):
    """(3,) extent in m of the FFP path along x, y, z: 2 Σ_l |(G⁻¹)_il| A_l."""

    ginv = np.linalg.inv(scanner.gradient)
    ext = np.zeros(3)
    for c in scanner.drive_field.channels:
        ext += 2 * np.abs(ginv[:, AXES.index(c.axis)]) * c.amplitude
    return ext


def _dense_times(scanner, minimum=20000):
    n = max(scanner.num_samples, minimum)
    return np.arange(n) * (scanner.drive_field.cycle / n)


def trajectory_coverage(scanner, points_per_axis=21):
    """Largest distance (m) from a point of the field of view to the FFP path."""
    from scipy.spatial import cKDTree

    path = scanner.ffp(_dense_times(scanner)).T
    ext = fov_extent(scanner)
    centre = np.zeros(3)
    axes = [np.linspace(-e / 2, e / 2, points_per_axis) if e > 0 else np.zeros(1) for e in ext]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3) + centre
    d, _ = cKDTree(path).query(grid)
    return float(d.max())


def psf_fwhm(scanner, tracer, axis, samples=16384):
    """FWHM (m) of the x-space PSF along ``axis`` (0, 1, 2), from the simulated particle response.

    The channel driving ``axis`` alone sweeps the FFP over a point sample at the centre; the mean
    moment along the axis follows the tracer's particle model (:func:`mpisim.dynamics.axial_moment`: the
    size-averaged Langevin or anisotropic equilibrium curve, delayed by its Debye relaxation applied to the
    moment spectrum as the forward model does, or the Brownian Fokker–Planck response); the x-space PSF is the
    induced signal divided by the FFP speed, on the rising half of the cycle (PHYSICS.md §5). NaN when
    the PSF does not fall to half its maximum inside the field of view.
    """

    ch = [c for c in scanner.drive_field.channels if AXES.index(c.axis) == axis]
    if not ch:
        raise MPISimError(f"axis {AXES[axis]} is not driven")
    c = ch[0]
    f = scanner.drive_field.base_frequency / c.divider
    G = scanner.gradient[axis, axis]
    t = np.arange(samples) / (samples * f)
    h = c.amplitude * np.sin(2 * np.pi * f * t + c.phase)                 # field at the sample, T/µ0
    m = axial_moment(tracer, c.amplitude, 2 * np.pi * f, c.phase, t)     # the tracer's particle model
    spec = np.fft.rfft(m) * tracer.debye_factor(np.fft.rfftfreq(samples, t[1]))
    k = np.fft.rfftfreq(samples, 1.0 / samples)
    dm = np.fft.irfft(spec * 2j * np.pi * k * f, samples)                 # dm/dt (spectral derivative)
    dh = 2 * np.pi * f * c.amplitude * np.cos(2 * np.pi * f * t + c.phase)
    x = -h / G                                                            # FFP position on the axis
    rising = (dh * np.sign(-1.0 / G) > 0) & (np.abs(h) < 0.95 * c.amplitude)
    psf = dm[rising] / dh[rising]                                         # dm/dH along the path
    xs = x[rising]
    o = np.argsort(xs)
    xs, psf = xs[o], np.abs(psf[o])
    i0 = int(np.argmax(psf))
    half = psf[i0] / 2
    left = np.flatnonzero(psf[:i0] < half)
    right = np.flatnonzero(psf[i0:] < half)
    if not left.size or not right.size:
        return float("nan")
    a, b = left[-1], i0 + right[0]
    xl = np.interp(half, [psf[a], psf[a + 1]], [xs[a], xs[a + 1]])
    xr = np.interp(half, [psf[b], psf[b - 1]], [xs[b], xs[b - 1]])
    return float(xr - xl)


def detection_limit(scanner, tracer, settings=None):
    """Data-domain detection limit (kg of iron) at the centre: Currie's L_D of the matched filter on the
    raw spectra with the position known (:func:`mpisim.detection.data_domain_limit`; 3.29 σ₀ at
    α = β = 5 %). σ₀ (:func:`mpisim.detection.matched_filter_sigma`) is proportional to the noise
    density and to 1/√averages. A reconstruction's ROI does worse: see :mod:`mpisim.detection`."""

    return data_domain_limit(scanner, tracer, settings or DesignSettings()).limit


def _currie_factor(st):
    """L_D / σ₀ of the settings' α and β."""
    return currie(1.0, st.alpha, st.beta)[1]


def drive_peak_and_slew(scanner):
    """(peak |µ0 H_D| in T, peak |µ0 dH_D/dt| in T/s) over one cycle."""

    t = _dense_times(scanner)
    dh = np.zeros((3, t.size))
    for c in scanner.drive_field.channels:
        f = scanner.drive_field.base_frequency / c.divider
        dh[AXES.index(c.axis)] += 2 * np.pi * f * c.amplitude * np.cos(2 * np.pi * f * t + c.phase)
    h = scanner.drive_field_at(t)
    return float(np.sqrt((h ** 2).sum(0)).max()), float(np.sqrt((dh ** 2).sum(0)).max())


def sar_estimate(scanner, body_radius):
    """Time- and cross-section-averaged SAR (W/kg) of a homogeneous cylinder of radius
    ``body_radius`` (m) in the drive field, each channel's field along the cylinder axis:
    E(r) = r ω B / 2, so SAR = σ ω² B² R² / (16 ρ) per channel, channels adding in power."""
    total = 0.0
    for c in scanner.drive_field.channels:
        w = 2 * np.pi * scanner.drive_field.base_frequency / c.divider
        total += TISSUE_CONDUCTIVITY * (w * c.amplitude) ** 2 * body_radius ** 2 / (16 * TISSUE_DENSITY)
    return float(total)


def as_dict(figures):
    """{key: {"value", "unit", "label", "method"}} (JSON-ready; NaN becomes None)."""
    return {k: {"value": (None if not math.isfinite(f.value) else f.value), "unit": f.unit, "label": f.label,
                "method": f.method} for k, f in figures.items()}


_SHOW = {"m": (1e3, "mm"), "s": (1e3, "ms"), "kg": (1e12, "ng"), "T": (1e3, "mT")}


def readable(figure):
    """(value text, unit) of a figure in readable units (mm, ms, ng, mT; "n/a" when not finite)."""
    scale, unit = _SHOW.get(figure.unit, (1.0, figure.unit))
    return ("n/a" if not math.isfinite(figure.value) else f"{figure.value * scale:.4g}"), unit


def as_table(figures):
    """Figures as an aligned text table in readable units (mm, ms, ng, mT)."""
    return "\n".join(f"{f.label:42} {v:>10} {u}" for f, (v, u) in ((f, readable(f)) for f in figures.values()))
