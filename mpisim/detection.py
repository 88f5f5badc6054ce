"""Detection limits, defined once (Currie 1968), in the data domain and in the image domain.

Definition (L. A. Currie, Anal. Chem. 40:586, 1968). A net amount estimate x̂ (kg of iron) whose
standard deviation at zero amount is σ₀:

- critical level L_C = z₁₋α σ₀: an amount is *detected* when x̂ > L_C (false positives α);
- detection limit L_D = L_C + z₁₋β σ_D: the true amount that is detected with probability 1 − β.
  With constant σ (σ_D = σ₀) L_D = (z₁₋α + z₁₋β) σ₀ = 3.29 σ₀ at α = β = 5 % (z = 1.645).

When σ₀ is *estimated* from n blanks, z is replaced by Student's t with ν = n − 1 degrees of freedom
(for L_C exactly; for L_D, t₁₋α,ν + t₁₋β,ν is the usual approximation of Currie's non-central-t
factor, IUPAC 1995). Blank-subtracted amounts (net = reading − mean of n blanks) have σ₀ = σ_B √(1 + 1/n).

Two domains, one definition:

- **data domain** (:func:`data_domain_limit`, what ``mpisim design`` reports): σ₀ of the matched
  filter on the raw spectra of one frame, for a point source at the centre whose position is known —
  the best any reconstruction can do. :func:`rows_limit` is the same filter restricted to the rows a
  reconstruction actually uses, with the noise level it estimates from the background frames.
- **image domain** (:func:`image_domain_limit`, what ``mpisim titrate`` reports): σ₀ of the iron in
  an ROI of a reconstruction, from blank scans (reconstructions of noise-only data): either the
  spread of their ROI amounts (*measured*), or the reconstructed noise realisations each
  reconstruction carries (``reco.noise``: the noise propagated through the same linear
  reconstruction, *predicted*).

Expected ratio: image-domain σ₀ / data-domain σ₀ ≥ 1 — a reconstruction cannot beat the matched
filter that knows the position. :func:`expected_ratio` predicts it as the rows factor (row selection
and background subtraction, √(1 + 1/E) for E background frames) times the reconstruction factor (the
noise propagated through the linear reconstruction into the ROI: an ROI amount over the regularised image
estimates the iron anywhere in the ROI, not at one known point, so it grows with the ROI's voxel count).
``mpisim titrate`` prints both factors, the predicted and the measured ratio for its scanner and setup;
``tests/test_detection.py`` checks on bruker-2d that measured and predicted agree within a factor 2.

Units: kg of iron (SI); σ in kg.
"""

from dataclasses import dataclass
import math

import numpy as np

from . import constants as C
from .errors import MPISimError, check_int, check_positive
from .forward import load_transfer_function, receive_chain, response, unit_moments
from .frames import as_frames
from .particles import Tracer
from .reco.assemble import assemble
from .reconstruction import RecoParams
from .scanner import get_scanner

__all__ = ["ALPHA", "BETA", "DATA_METHOD", "DetectionLimit", "currie", "matched_filter_sigma", "data_domain_limit",
           "rows_limit", "image_domain_limit", "expected_ratio"]

ALPHA = 0.05
"""Default false-positive rate of the critical level L_C."""

BETA = 0.05
"""Default false-negative rate at the detection limit L_D."""

DATA_METHOD = ("data domain: matched filter on the raw spectra of one frame over all receive bins (band-stop and "
               "receive chain applied), point source at the centre, position known — the best any reconstruction "
               "can do; σ₀ against the receiver's white noise")


@dataclass(frozen=True)
class DetectionLimit:
    """One detection limit by Currie's definition: ``sigma0`` (kg) of the net amount at zero amount,
    ``critical`` L_C and ``limit`` L_D (kg of iron), ``alpha``, ``beta``, ``dof`` (degrees of freedom of
    σ₀; None = known σ₀, normal quantiles), ``domain`` ("data" or "image") and ``method`` (how σ₀ was
    obtained). ``lc, ld = limit`` unpacks (L_C, L_D)."""

    domain: str
    sigma0: float
    critical: float
    limit: float
    alpha: float
    beta: float
    dof: float | None
    method: str

    def __iter__(self):
        return iter((self.critical, self.limit))

    def as_dict(self):
        """JSON-ready, in ng."""
        return {"domain": self.domain, "sigma0_ng": self.sigma0 * 1e12, "L_C_ng": self.critical * 1e12,
                "L_D_ng": self.limit * 1e12, "alpha": self.alpha, "beta": self.beta,
                "dof": None if self.dof is None else float(self.dof), "method": self.method}


def _rate(name, v):
    check_positive(name, v)
    if not v < 0.5:
        raise MPISimError(f"{name} must be a probability in (0, 0.5), got {v}")
    return float(v)


def currie(sigma0, alpha=ALPHA, beta=BETA, dof=None):
    """(L_C, L_D) in the unit of ``sigma0``: L_C = q₁₋α σ₀, L_D = L_C + q₁₋β σ₀, with q the standard
    normal quantile for a known σ₀ (``dof`` None: 1.645 + 1.645 = 3.29 at 5 %), or Student's t with
    ``dof`` degrees of freedom when σ₀ was estimated (n blanks: dof = n − 1)."""
    from scipy import stats                   # scipy.stats takes ~0.3 s to import: only when a limit is made

    check_positive("σ₀ of the blank", sigma0)
    a, b = _rate("alpha", alpha), _rate("beta", beta)
    if dof is None:
        qa, qb = stats.norm.ppf(1 - a), stats.norm.ppf(1 - b)
    else:
        check_positive("degrees of freedom", dof)
        qa, qb = stats.t.ppf(1 - a, dof), stats.t.ppf(1 - b, dof)
    lc = float(qa * sigma0)
    return lc, float(lc + qb * sigma0)


def matched_filter_sigma(scanner, tracer, averages=1):
    """σ₀ (kg) of the matched-filter estimate of the iron of a point source at the centre from one
    frame of ``averages`` drive cycles.

    Signal: the forward model's receive spectra (C, K) of the point source, band-stop and the
    receiver's transfer function applied, over one drive cycle. Noise: white, σ = noise_density·√bandwidth
    per sample, so E|n_k|² = V σ² / averages per bin of the unnormalised rfft; the estimate
    Re(uᴴ d)/‖u‖² then has σ₀ = √(E|n|²/2) / ‖u‖ per kg. Proportional to the noise density and to
    1/√averages.
    """
    check_int("averages", averages, 1, 2 ** 31 - 1)
    if scanner.receiver.noise_density <= 0:
        raise MPISimError("the receiver's noise_density is 0: no detection limit (any amount is detectable)")
    ng = 1e-12
    m = unit_moments(scanner, tracer, np.zeros((1, 3)))[0] * ng * tracer.moment_per_iron_mass   # (3, V) A·m²
    f = scanner.frequencies
    spec = np.fft.rfft(m, axis=-1)                                                              # (3, K)
    tf = load_transfer_function(scanner.receiver.transfer_function)      # the chain the simulator applies
    u = np.einsum("lck,ck->lk", response(scanner, tracer, f, receive_chain(scanner, f, tf, bandstop=True)), spec)
    u[:, 0] = 0.0
    var_bin = scanner.num_samples * scanner.receiver.noise_sigma ** 2 / averages
    snr_per_ng = float(np.sqrt(np.sum(np.abs(u) ** 2))) / math.sqrt(var_bin / 2)
    if not snr_per_ng > 0:
        raise MPISimError("the receive chain sees no particle signal from the centre (no detection limit)")
    return ng / snr_per_ng


def data_domain_limit(scanner, tracer=None, settings=None, alpha=ALPHA, beta=BETA):
    """Data domain: Currie's L_C and L_D (kg) of the matched filter on the raw spectra, point source at
    the centre, position known — the best any reconstruction can do. ``settings``: anything with
    ``averages`` (e.g. :class:`mpisim.design.DesignSettings`; default 1), and ``alpha``, ``beta`` when it
    has them. σ₀ is known (the model's), so the quantiles are normal: L_D = 3.29 σ₀ at 5 %."""
    sc = get_scanner(scanner)
    averages = getattr(settings, "averages", 1)
    alpha, beta = getattr(settings, "alpha", alpha), getattr(settings, "beta", beta)
    s0 = matched_filter_sigma(sc, tracer or Tracer(), averages)
    lc, ld = currie(s0, alpha, beta)
    return DetectionLimit("data", s0, lc, ld, alpha, beta, None,
                          f"{DATA_METHOD}, {averages} averaged cycle(s)")


def rows_limit(measurement, system_matrix, params=None, position=(0.0, 0.0, 0.0), alpha=ALPHA, beta=BETA, empty=None,
               tf=None):
    """Data domain, restricted to what a reconstruction uses: Currie's limits (kg) of the matched filter
    over the rows that ``params`` (:class:`~mpisim.reconstruction.RecoParams` or a dict of its flat
    names) select from ``system_matrix`` for ``measurement`` (a blank scan will do: only its background
    frames and noise matter), with the per-row noise σ the reconstruction estimates (background
    subtraction included), for a point source in the voxel nearest ``position`` (m)."""
    p = params if isinstance(params, RecoParams) else RecoParams().replace(**(params or {}))
    prob = assemble(as_frames(measurement), system_matrix, p, empty, tf)
    if prob.sigma is None:
        raise MPISimError("the measurement has no background frames and states no noise density: no noise level")
    grid = system_matrix.grid
    j = int(np.argmin(np.sum((grid.positions() - np.asarray(position, float)) ** 2, axis=1)))
    per = grid.voxel_volume / C.LITRE * C.FE_MOLAR_MASS            # kg of iron per (mol/L) in one voxel
    u = np.asarray(prob.A[:, j]) / per                            # spectra per kg
    snr2 = float(np.sum(np.abs(u) ** 2 / (prob.sigma.astype(float) ** 2 / 2)))
    if not snr2 > 0:
        raise MPISimError("the selected rows see no signal from that voxel: no detection limit")
    s0 = 1.0 / math.sqrt(snr2)
    lc, ld = currie(s0, alpha, beta)
    return DetectionLimit("data", s0, lc, ld, alpha, beta, None,
                          f"data domain, rows the reconstruction uses: matched filter over {u.size} selected rows, "
                          f"per-row noise from the background frames (subtraction included), point source in the "
                          f"voxel at {np.round(grid.positions()[j] * 1e3, 2).tolist()} mm, position known")


def image_domain_limit(blank_iron, alpha=ALPHA, beta=BETA, *, realisation_sigma=None, samples=None):
    """Image domain: Currie's L_C and L_D (kg) of the net iron in an ROI of a reconstruction (ROI iron −
    mean ROI iron of the n blank scans), from ``blank_iron`` (n,) kg: the ROI iron of n ≥ 2
    reconstructions of blank scans (noise only).

    σ₀ is either *measured*, the standard deviation of ``blank_iron`` (Student t with n − 1 degrees of
    freedom), or, with ``realisation_sigma`` (n,) kg — each blank's σ from the reconstructed noise
    realisations it carries (:class:`~mpisim.quant.RoiResult` ``iron_sigma``, ``samples`` realisations
    each) — *predicted*, their root mean square (t with n·(samples − 1) degrees of freedom): the
    noise propagated through the same linear reconstruction into the ROI. Either way σ₀ = σ_B √(1 + 1/n)
    (the blank mean is subtracted)."""
    x = np.asarray(blank_iron, float).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise MPISimError("an image-domain detection limit needs the finite ROI iron of at least 2 blank scans")
    n = x.size
    if realisation_sigma is None:
        sb, dof = float(np.std(x, ddof=1)), n - 1
        how = f"measured: SD of the ROI iron over {n} blank scans"
    else:
        s = np.asarray(realisation_sigma, float).ravel()
        if s.size != n or not np.all(np.isfinite(s)) or samples is None or samples < 2:
            raise MPISimError("predicted image-domain limit: one finite realisation σ per blank scan, from >= 2 "
                              "noise realisations each")
        sb, dof = float(np.sqrt(np.mean(s ** 2))), n * (int(samples) - 1)
        how = (f"predicted: noise propagated through the reconstruction (RMS over {n} blank scans of the σ of "
               f"{int(samples)} reconstructed noise realisations)")
    s0 = sb * math.sqrt(1 + 1 / n)
    lc, ld = currie(s0, alpha, beta, dof)
    return DetectionLimit("image", s0, lc, ld, alpha, beta, dof,
                          f"image domain, ROI iron of a reconstruction; σ₀ {how}, × √(1 + 1/{n}) for the "
                          f"subtracted blank mean; Student t, {dof} degrees of freedom")


def expected_ratio(data, rows, predicted, measured=None):
    """The ratio image-domain / data-domain and where it comes from, from :class:`DetectionLimit` s:
    ``data`` (:func:`data_domain_limit`), ``rows`` (:func:`rows_limit`), ``predicted`` and ``measured``
    (:func:`image_domain_limit` from realisations and from the spread of blanks). σ₀ ratios: rows/data
    (row selection, background subtraction), predicted/rows (the reconstruction and the ROI amount),
    predicted/data (expected ≥ 1), measured/data and measured/predicted (≈ 1 when the prediction holds);
    and the L_D ratios, which add the t-quantiles and the blank-mean factor."""
    out = {"rows_over_data": rows.sigma0 / data.sigma0, "reconstruction_over_rows": predicted.sigma0 / rows.sigma0,
           "expected_sigma_ratio": predicted.sigma0 / data.sigma0,
           "expected_LD_ratio": predicted.limit / data.limit}
    if measured is not None:
        out.update({"measured_sigma_ratio": measured.sigma0 / data.sigma0,
                    "measured_LD_ratio": measured.limit / data.limit,
                    "measured_over_predicted": measured.limit / predicted.limit})
    return out
