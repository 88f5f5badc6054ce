"""Reconstructions and the parameters that make them: nouns, read and written by :mod:`mpisim.io.reco_mdf`
and produced by :func:`mpisim.reco.reconstruct`.

The parameters are grouped by the stage of the reconstruction that uses them, as MPIReco groups its
typed parameters: :class:`FrequencySelection` and :class:`Preprocessing` (assembling the problem),
:class:`SolverParams` (solving it), :class:`UncertaintyParams` (the error bars). :class:`RecoParams`
holds one of each; every field is recorded in the output file.
"""

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from .constants import FE_MOLAR_MASS, LITRE
from .errors import MPISimError, check_int, check_positive
from .grid import Grid
from .metadata import Truth

__all__ = ["FrequencySelection", "Preprocessing", "SolverParams", "UncertaintyParams", "RecoParams",
           "Reconstruction", "check_samples"]


def check_samples(n):
    """Noise realisations for error bars: 0 (none) or >= 2 (a standard deviation needs two)."""
    n = check_int("uncertainty samples", n, 0)
    if n == 1:
        raise MPISimError("uncertainty samples must be 0 (none) or >= 2 to estimate a spread")
    return n


@dataclass(frozen=True)
class FrequencySelection:
    """Which system-matrix rows (receive channel × frequency bin) the reconstruction uses.

    Bins with ``min_freq`` ≤ f ≤ ``max_freq`` (Hz; max 0 = the bandwidth), receive ``channels``
    (0-based; empty = all), system-matrix SNR ≥ ``snr_threshold`` and, if ``top_k`` > 0, only the
    ``top_k`` rows of highest SNR. ``band``: "auto" also drops the bins the data mark as unusable —
    the drive lines within the band-stop's reach and the bins whose background drifts between the
    background frames (:mod:`mpisim.reco.noise`); "all" keeps them.
    """

    snr_threshold: float = 2.0
    min_freq: float = 0.0
    max_freq: float = 0.0
    band: str = "auto"
    channels: tuple = ()
    top_k: int = 0

    def __post_init__(self):
        check_positive("SNR threshold", self.snr_threshold, allow_zero=True)
        check_positive("min frequency (Hz)", self.min_freq, allow_zero=True)
        check_positive("max frequency (Hz)", self.max_freq, allow_zero=True)
        if self.max_freq and self.max_freq < self.min_freq:
            raise MPISimError(f"max frequency {self.max_freq:g} Hz is below min frequency {self.min_freq:g} Hz")
        if self.band not in ("auto", "all"):
            raise MPISimError(f"band must be auto or all, got {self.band!r}")
        object.__setattr__(self, "top_k", check_int("top_k", self.top_k, 0))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))


@dataclass(frozen=True)
class Preprocessing:
    """What is done to the data before solving.

    ``frames``: foreground frame indices (empty = all); ``average``: average blocks of this many
    frames into one. ``background``: "auto" (subtract the mean of the measurement's background frames
    when it has any), "none", or the path of an empty-scanner measurement (recorded here; the caller
    loads it and passes it to :func:`~mpisim.reco.reconstruct`). ``weighting``: "none", "row-norm"
    (1/‖s_k‖) or "whitening" (σ_min/σ_k from the background frames' spread). ``transfer_function``: the
    path of a transfer-function file the data are corrected with ("" = none; loaded by the caller).
    """

    frames: tuple = ()
    average: int = 1
    background: str = "auto"
    weighting: str = "none"
    transfer_function: str = ""

    def __post_init__(self):
        if self.weighting not in ("none", "row-norm", "whitening"):
            raise MPISimError(f"weighting must be none, row-norm or whitening, got {self.weighting!r}")
        object.__setattr__(self, "average", check_int("average", self.average, 1))
        object.__setattr__(self, "frames", tuple(int(f) for f in self.frames))


@dataclass(frozen=True)
class SolverParams:
    """How the problem is solved.

    ``method``: "kaczmarz" or "cgnr"; ``lam``: Tikhonov λ relative to ‖S‖_F²/N, or "auto" (generalised
    discrepancy principle, :func:`mpisim.reco.solve.choose_lambda`). ``iterations``: sweeps (CG
    iterations), or "auto": stop when the residual reaches the noise level, or when the residual or the
    image has changed by less than ``tolerance`` (relative) over the last 5 sweeps — the amounts no longer
    move —, at most ``max_iterations`` (CGNR has no stopping rule: "auto" runs ``max_iterations`` CG
    iterations). ``enforce_positive`` clips c < 0 after each
    sweep: prettier images, but it biases ROI totals upwards, so quantitative defaults leave it off;
    "auto" switches it on only when the selected rows cannot see the total iron (the response to a
    uniform image is below :data:`~mpisim.reco.assemble.VISIBILITY_MIN` of a typical one — a 1D
    sequence, whose fundamental is behind the band-stop). ``order``: row order of the sweeps;
    ``seed``: of shuffled orders and of the noise realisations.
    """

    method: str = "kaczmarz"
    iterations: int | str = "auto"
    max_iterations: int = 100
    tolerance: float = 0.01
    lam: float | str = 1e-2
    enforce_real: bool = True
    enforce_positive: bool | str = "auto"
    order: str = "cyclic"
    seed: int = 0

    def __post_init__(self):
        if self.lam != "auto":
            object.__setattr__(self, "lam", check_positive("lambda", self.lam, allow_zero=True))
        if self.enforce_positive not in (True, False, "auto"):
            raise MPISimError(f"enforce_positive must be true, false or auto, got {self.enforce_positive!r}")
        if self.method not in ("kaczmarz", "cgnr"):
            raise MPISimError(f"solver must be kaczmarz or cgnr, got {self.method!r}")
        if self.iterations != "auto":
            object.__setattr__(self, "iterations", check_int("iterations", self.iterations, 1))
        object.__setattr__(self, "max_iterations", check_int("max_iterations", self.max_iterations, 1))
        check_positive("tolerance", self.tolerance)


@dataclass(frozen=True)
class UncertaintyParams:
    """``samples``: noise realisations reconstructed for the error bars (0 = none, else >= 2)."""

    samples: int = 16

    def __post_init__(self):
        object.__setattr__(self, "samples", check_samples(self.samples))


_GROUPS = {"selection": FrequencySelection, "preprocessing": Preprocessing, "solver": SolverParams,
           "uncertainty": UncertaintyParams}
_FLAT_OF = {"method": "solver", "samples": "uncertainty_samples"}
"""Grouped fields whose flat name (the command line's, and earlier files') differs from the field's."""

FLAT_NAMES = {_FLAT_OF.get(f.name, f.name): (g, f.name) for g, cls in _GROUPS.items() for f in fields(cls)}
"""Flat parameter name (the command line's, and earlier files') → (group, field)."""


@dataclass(frozen=True, init=False)
class RecoParams:
    """Every parameter of a reconstruction, grouped by stage (written into the output file).

    ``RecoParams(selection=FrequencySelection(min_freq=80e3), solver=SolverParams(lam="auto"))``, or
    with the flat names of the command line, ``RecoParams(min_freq=80e3, lam="auto")``; a flat name
    sets that field of its group (:data:`FLAT_NAMES`). The defaults were chosen by measurement
    (``benchmarks/study_reco_defaults.py``): on bruker-3d and bruker-2d they recover the
    concentration phantom chamber by chamber (docs: quantitation).
    """

    selection: FrequencySelection
    preprocessing: Preprocessing
    solver: SolverParams
    uncertainty: UncertaintyParams

    def __init__(self, selection=None, preprocessing=None, solver=None, uncertainty=None, **flat):
        groups = {"selection": selection, "preprocessing": preprocessing, "solver": solver,
                  "uncertainty": uncertainty}
        if isinstance(solver, str):          # the flat name "solver" is the method
            flat["solver"], groups["solver"] = solver, None
        per = {g: {} for g in _GROUPS}
        for name, value in flat.items():
            if name not in FLAT_NAMES:
                raise MPISimError(f"unknown reconstruction parameter {name!r}")
            g, f = FLAT_NAMES[name]
            per[g][f] = value
        for g, cls in _GROUPS.items():
            base = groups[g] if groups[g] is not None else cls()
            if not isinstance(base, cls):
                raise MPISimError(f"RecoParams {g} must be a {cls.__name__}, got {type(base).__name__}")
            object.__setattr__(self, g, replace(base, **per[g]) if per[g] else base)

    def replace(self, **flat):
        """A copy with flat-named fields changed (``params.replace(lam=1e-3)``)."""
        flat = dict(flat)
        solver = self.solver if "solver" not in flat else replace(self.solver, method=flat.pop("solver"))
        return RecoParams(self.selection, self.preprocessing, solver, self.uncertainty, **flat)

    def to_dict(self):
        """{group: {field: value}}: TOML-ready (tuples as lists)."""
        out = {}
        for g in _GROUPS:
            d = asdict(getattr(self, g))
            out[g] = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        return out

    @classmethod
    def from_dict(cls, d):
        """From :meth:`to_dict` output, or the flat dict earlier versions wrote; fields this version
        does not know are ignored (older or newer files)."""
        groups, flat = {}, {}
        for k, v in d.items():
            if k in _GROUPS and isinstance(v, dict):
                known = {f.name for f in fields(_GROUPS[k])}
                groups[k] = _GROUPS[k](**{n: x for n, x in v.items() if n in known})
            elif k in FLAT_NAMES:
                flat[k] = v
        return cls(**groups, **flat)


@dataclass(eq=False)
class Reconstruction:
    """image : (F, N) concentrations (``unit``, normally mol Fe/L), x-fastest voxels on ``grid``.

    ``params``: the :class:`RecoParams` used; ``info``: what the automatic choices chose (band, λ,
    sweeps and why they stopped, noise level and source, timings); ``noise``: reconstructed noise
    realisations behind the error bars, (R, N) (linear reconstruction: the same for every frame) or
    (F, R, N) (bootstrap deviations per frame), in ``unit``, or None; ``measurement``: the
    measurement's metadata (a :class:`~mpisim.measurement.Measurement`, for the output file's
    acquisition record) or None; ``truth``: the phantom's ground truth (:class:`~mpisim.metadata.Truth`)
    when known.
    """

    image: np.ndarray
    grid: Grid
    params: RecoParams
    unit: str = "mol/L"
    info: dict = field(default_factory=dict)
    noise: np.ndarray | None = None
    measurement: object = None
    truth: Truth | None = None
    contrasts: tuple = ()
    """Names of the contrasts of a multi-contrast reconstruction (one image per tracer state or tracer), else ()."""
    joint: np.ndarray | None = None
    """Multi-contrast: (F, K·N) the contrasts' images side by side (contrast-major); ``image`` is their sum,
    the total iron. None otherwise."""
    joint_noise: np.ndarray | None = None
    """Multi-contrast: the noise realisations of ``joint`` ((R, K·N) or (F, R, K·N)); ``noise`` is their sum."""

    @classmethod
    def of_contrasts(cls, joint, grid, params, names, unit="mol/L", info=None, joint_noise=None, measurement=None,
                     truth=None):
        """A multi-contrast reconstruction from the joint images (F, K·N) and noise realisations (…, K·N)."""
        K, N = len(names), grid.size
        joint = np.asarray(joint)
        if joint.ndim != 2 or joint.shape[1] != K * N:
            raise MPISimError(f"a reconstruction of {K} contrasts on {N} voxels needs images of {K * N} values, "
                              f"got {joint.shape}")
        total = joint.reshape(joint.shape[0], K, N).sum(axis=1)
        noise = None
        if joint_noise is not None:
            jn = np.asarray(joint_noise)
            noise = jn.reshape(jn.shape[:-1] + (K, N)).sum(axis=-2)
        return cls(total, grid, params, unit, dict(info or {}), noise, measurement, truth, tuple(names), joint,
                   joint_noise)

    def contrast(self, which):
        """One contrast of a multi-contrast reconstruction (its name or index) as a reconstruction of its own:
        its image, its noise realisations and, where the phantom recorded its states, the truth of that state."""
        if not self.contrasts:
            raise MPISimError("this reconstruction has one contrast (reconstruct with several system matrices)")
        i = self.contrasts.index(which) if which in self.contrasts else which
        if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.contrasts):
            raise MPISimError(f"unknown contrast {which!r}: the reconstruction has {', '.join(self.contrasts)}")
        N = self.grid.size
        sl = slice(i * N, (i + 1) * N)
        noise = None if self.joint_noise is None else self.joint_noise[..., sl]
        truth = None
        if self.truth is not None and self.truth.states and self.contrasts[i] in self.truth.states:
            truth = self.truth.in_state(self.contrasts[i])
        return Reconstruction(self.joint[:, sl], self.grid, self.params, self.unit,
                              {**self.info, "contrast": self.contrasts[i]}, noise, self.measurement, truth)

    def noise_for(self, frame=0, joint=False):
        """(R, N) noise realisations for ``frame``, or None; ``joint``: a multi-contrast reconstruction's
        (R, K·N) realisations of all its contrasts."""
        noise = self.joint_noise if joint else self.noise
        if noise is None:
            return None
        return noise if noise.ndim == 2 else (noise[frame] if frame < len(noise) else None)

    @property
    def num_frames(self):
        return self.image.shape[0]

    def volume(self, frame=0):
        """(nx, ny, nz) image of one frame."""
        if not 0 <= int(frame) < self.num_frames:
            raise MPISimError(f"frame {frame} out of range: the reconstruction has {self.num_frames} frame(s) "
                              f"(0..{self.num_frames - 1})")
        return self.grid.unflatten(self.image[frame])

    @property
    def iron_mass(self):
        """Total iron per frame in kg (mol/L × voxel volume × molar mass)."""
        if self.unit != "mol/L":
            raise MPISimError(f"reconstruction is in {self.unit!r}, not mol/L: iron mass unknown")
        return self.image.sum(axis=1) * self.grid.voxel_volume / LITRE * FE_MOLAR_MASS
