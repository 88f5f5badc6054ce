"""ROI amounts that do not depend on how the ROI is drawn: a geometric-transfer-matrix (GTM) correction
through the reconstruction's own resolution, as PET quantitation does (Rousset, Ma & Evans, J Nucl Med
39:904, 1998), with the content's shape taken from the data.

A linear reconstruction (Kaczmarz without positivity, a fixed λ and sweep count) is a linear map R from
the concentrations x to the image x̂ = R x + noise. A region with voxel weights o_i reads o_i·x̂: its own
content shrunk or inflated by the reconstruction's resolution and Tikhonov ringing, plus what spills in.
If the content of region j has the shape ψ_j (unit total), then

    o_i·x̂ = Σ_j (o_i·R ψ_j) a_j + noise,   G_ij = o_i·R ψ_j,

and the (k+1)×(k+1) system G a = q (the k ROIs and everything outside them) gives the amounts a_j.
R ψ_j is computed, not modelled: ψ_j goes through the selected system-matrix rows (A ψ_j) and the *same*
reconstruction (same rows, weights, λ and sweeps), every region of every ROI drawing in one batch.

Two things come from the data rather than from the ROI's outline:

- the **shape** of the content: a non-negative least-squares solve (:func:`shape_image`; relative
  λ :data:`SHAPE_LAMBDA`, on the voxels where the linear image is significant) — sharper than the linear
  image, without its ringing; what it puts outside every ROI is the rest's content (:data:`REST`);
- the **ownership** of a voxel that the ROI's outline cuts: the shape's content is placed on a finer grid
  (:data:`SUBVOXELS` per axis) by Richardson–Lucy deconvolution through linear interpolation, so that a point
  source that the grid splits among neighbouring voxels goes back where the split says it is, and the ROI
  owns the share of the voxel's content that comes from inside it (:func:`ownership`). An object smaller
  than a voxel is then owned by the ROI drawn around it, not split by volume.

What the data cannot fix — the shape below the resolution — is the bias left. Its scale is the change of
the amounts between the data-driven and the purely geometric ownership (partial-voxel volume fractions),
and between the shape ψ and the sharper ψ² (:func:`gtm_amounts`); :data:`SHAPE_BIAS_FACTOR` turns that
into a σ (chosen on a randomized family separate from the one ``benchmarks/study_quantitation.py``
reports). The noise goes through the same linear algebra: the reconstruction's noise realisations give q's
realisations, and G⁻¹ maps them to the amounts'.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import MPISimError
from .kaczmarz_base import PlanarRows
from .solve import apply

__all__ = ["REST", "SHAPE_LAMBDA", "SHAPE_ITERATIONS", "SUPPORT_SIGMA", "ARTEFACT_PERCENTILE", "SUBVOXELS", "SHARPEN_ITERATIONS", "SHAPE_BIAS_FACTOR",
           "EXACT_MAX",
           "GtmAmounts", "gtm_amounts", "shape_image", "shape_support", "ownership", "check_disjoint", "grow_mask", "subvoxel_content"]

SHAPE_LAMBDA = 1e-5
"""Relative λ (× ‖A‖_F²/N, as Kaczmarz's) of the non-negative solve that gives the content's shape (1e-4 spread
an object of half a voxel over six voxels; on the tuning family the ROIs under a voxel then read 76 % within
10 %, at 1e-5 91 %: ``benchmarks/study_quantitation.py --cases 60 --seed 7 --scanners
bruker-2d,lab-strong-2d,lab-weak-2d`` with this constant set to each)."""
SHAPE_ITERATIONS = 5000
"""FISTA iterations of that solve when its support is too large to solve exactly (:data:`EXACT_MAX`)."""
SUPPORT_SIGMA = 2.0
"""The solve's unknowns: voxels where the linear image exceeds this many noise σ (and the artefact level,
:data:`ARTEFACT_PERCENTILE`), grown by one voxel."""
ARTEFACT_PERCENTILE = 0.5
"""When the noise rule leaves more than :data:`EXACT_MAX` voxels, the support also excludes voxels below the
depth of the linear image's deepest negative values (this percentile): model error and ringing, which the
noise σ does not see, make artefacts of both signs."""
SUBVOXELS = 4
"""Sub-voxels per axis on which the ownership of a cut voxel is computed."""
SHARPEN_ITERATIONS = 100
"""Richardson–Lucy iterations that place the shape's content on the sub-voxel points."""
REST = "shape"
"""What lies outside every ROI: "shape" — what the shape prior's non-negative solve puts there, held fixed
(its spill into the ROIs subtracted); "estimated" — a region solved for like the ROIs. Solving for it let
noise and model error that the prior spreads thinly over the whole field of view trade against the ROIs'
amounts (on 3D grids of 2 mm voxels the rest read thousands of ng where there was none); chosen on the
tuning family: ``benchmarks/study_quantitation.py --cases 80 --seed 7 --scanners bruker-3d`` printed 67 % of the
amounts within 10 % with "estimated", 79 % with "shape" (the 2D scanners: 97 % and 96 %)."""
SHAPE_BIAS_FACTOR = 2.0
"""σ of the shape error = this × the larger change of the amount under the two alternatives. Chosen on a
tuning family (``benchmarks/study_quantitation.py --cases 40 --seed 7 --scanners bruker-2d,lab-strong-2d,lab-weak-2d``
prints the coverage of the 95 % intervals at this factor; with this constant set to 1 or 3 it printed lower or
higher coverage), not on the family the study reports (seed 2026)."""


@dataclass(eq=False)
class GtmAmounts:
    """amount : (k,) ROI totals of concentration × voxels (mol/L; × voxel volume → moles);
    noise : (R, k) their noise realisations (deviations) or None; shape_sigma : (k,) the shape-error σ;
    alternatives : (2, k) the amounts with geometric ownership and with the sharper shape ψ²;
    transfer : (k+1, k+1) G; info : what was done (recorded in the output)."""

    amount: np.ndarray
    noise: np.ndarray | None
    shape_sigma: np.ndarray
    alternatives: np.ndarray
    transfer: np.ndarray
    info: dict = field(default_factory=dict)


def _real_rows(A, weights, cols):
    """(2M, n) float real/imaginary rows of A (complex or planar) restricted to ``cols``, row-weighted."""
    if isinstance(A, PlanarRows):
        P = A.planes[:, :, cols]
    else:
        Ac = np.asarray(A)[:, cols]
        P = np.stack([Ac.real, Ac.imag], axis=1)
    if weights is not None:
        P = P * np.asarray(weights, P.dtype)[:, None, None]
    return P.transpose(1, 0, 2).reshape(-1, P.shape[2])


def shape_image(problem, image, noise=None, grid=None, lam=None, iterations=None):
    """(N,) ≥ 0 the shape prior of :func:`gtm_amounts`, and a dict of what was done.

    min ‖W(A c − b)‖² + λ‖c‖² over c ≥ 0 (W: the problem's row weights; λ relative as Kaczmarz's), solved
    exactly (Lawson–Hanson) or by FISTA warm-started at the linear image, with unknowns only on the
    support: voxels where ``image`` (N,) exceeds :data:`SUPPORT_SIGMA` × the noise σ of each voxel (from the
    realisations ``noise`` (R, N); without them the artefact level and 0.1 % of the image's maximum), grown by one
    voxel on ``grid`` (:func:`shape_support`).
    """
    lam = SHAPE_LAMBDA if lam is None else lam
    iterations = SHAPE_ITERATIONS if iterations is None else iterations
    x = np.asarray(image, np.float64)
    cols = np.nonzero(shape_support(x, noise, grid))[0]
    out = np.zeros_like(x)
    info = {"shape_support_voxels": int(cols.size), "shape_iterations": int(iterations), "shape_lambda": lam}
    if cols.size == 0:
        return out, info
    Ar = _real_rows(problem.A, problem.weights, cols)
    b = problem.b[:, 0] if problem.b.ndim == 2 else problem.b
    b = b * problem.weights if problem.weights is not None else b
    br = np.concatenate([b.real, b.imag]).astype(Ar.dtype)
    lam_abs = lam * float(np.sum(problem.norms2 * (1.0 if problem.weights is None else problem.weights ** 2))) \
        / problem.A.shape[1]
    Ar = Ar.astype(np.float64)
    H = Ar.T @ Ar                                        # the normal matrix on the support (n × n)
    H[np.diag_indices_from(H)] += lam_abs
    g = Ar.T @ br.astype(np.float64)
    del Ar
    exact = None
    if cols.size <= EXACT_MAX:
        try:
            exact = _nnls_exact(H, g)
            info["shape_solver"] = "exact NNLS (Lawson–Hanson on the Cholesky factor)"
        except (np.linalg.LinAlgError, RuntimeError, ValueError):   # not positive definite in float, or no convergence
            exact = None
    if exact is not None:
        out[cols] = exact
    else:
        out[cols] = _fista_nnls(H, g, np.maximum(x[cols], 0.0), iterations)
        info["shape_solver"] = f"FISTA, {iterations} iterations"
    return out, info


def shape_support(image, noise=None, grid=None):
    """(N,) bool the unknowns of :func:`shape_image`: voxels where ``image`` exceeds :data:`SUPPORT_SIGMA` × the
    noise σ of each voxel (from the realisations ``noise`` (R, N); without them the artefact level and 0.1 % of the
    image's maximum; where the noise rule leaves more than :data:`EXACT_MAX`, also the artefact level), grown by one
    voxel on ``grid``."""
    x = np.asarray(image, np.float64)
    floor = max(-float(np.percentile(x, ARTEFACT_PERCENTILE)), 0.0)     # the depth of the ringing's negative lobes
    sig = np.asarray(noise, np.float64).std(axis=0, ddof=1) if noise is not None and len(noise) >= 2 else None
    support = x > SUPPORT_SIGMA * sig if sig is not None else x > max(floor, 1e-3 * max(float(x.max()), 0.0))
    grow = grow_mask if grid is not None else (lambda m, g: m)
    if grow(support, grid).sum() > EXACT_MAX:     # artefacts above the noise (model error): above them, too
        support &= x > floor
    return grow(support, grid)


EXACT_MAX = 3000
"""Up to this many support voxels the shape's NNLS is solved exactly, beyond by FISTA."""


def _nnls_exact(H, g):
    """argmin ½cᵀHc − gᵀc over c ≥ 0 (H symmetric positive definite): Lawson–Hanson NNLS on ‖Lᵀc − L⁻¹g‖,
    H = L Lᵀ."""
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import nnls

    L = cholesky(H, lower=True)
    z = solve_triangular(L, g, lower=True)
    return nnls(L.T, z, maxiter=50 * len(g))[0]


def _fista_nnls(H, g, x0, iterations):
    """FISTA (Beck & Teboulle 2009) for argmin ½cᵀHc − gᵀc over c ≥ 0."""
    v = np.random.default_rng(0).standard_normal(len(g))
    for _ in range(30):                                  # power iteration for the Lipschitz constant
        v = H @ v
        v /= np.linalg.norm(v) or 1.0
    L = 1.05 * float(np.linalg.norm(H @ v))
    x = x0.astype(np.float64)
    y, t = x.copy(), 1.0
    for _ in range(int(iterations)):
        xn = np.maximum(y - (H @ y - g) / L, 0.0)
        tn = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = xn + ((t - 1.0) / tn) * (xn - x)
        x, t = xn, tn
    return x


def grow_mask(mask, grid):
    """The mask grown by one voxel along every axis with more than one voxel (a mask over several contrasts'
    images, K·N, is grown image by image)."""
    if mask.size != grid.size and mask.size % grid.size == 0:
        return np.concatenate([grow_mask(m, grid) for m in mask.reshape(-1, grid.size)])
    m = grid.unflatten(mask.astype(float)) > 0
    g = m.copy()
    for a in range(3):
        if grid.shape[a] > 1:
            g |= np.roll(m, 1, a) & _not_edge(m.shape, a, 0) | np.roll(m, -1, a) & _not_edge(m.shape, a, -1)
    return grid.flatten(g.astype(float)) > 0


def _not_edge(shape, axis, end):
    """True except on the first (end=0) / last (end=-1) plane along ``axis`` (no wrap-around)."""
    keep = np.ones(shape, bool)
    idx = [slice(None)] * 3
    idx[axis] = 0 if end == 0 else -1
    keep[tuple(idx)] = False
    return keep


def ownership(grid, shape, inside_fns, geometric, subvoxels=None, iterations=None, content=None):
    """(k, N) share of each voxel's content inside each ROI.

    The content is placed on ``subvoxels`` points per axis and voxel (axes with one voxel are not
    subdivided) by Richardson–Lucy deconvolution of the shape (N,) through linear interpolation
    (:func:`_subvoxel_content`): a point source between voxel centres, which the voxel grid can only split
    among its neighbours, is put back where that split says it is. A voxel's content is the sum of what its
    sub-voxel points give it (their interpolation weights); the ROI owns the part given by points inside it.
    ``inside_fns``: one f(x, y, z) → bool per ROI (m); ``geometric`` (k, N): the volume fractions, used
    where the shape holds nothing; ``content``: :func:`subvoxel_content` of this shape, when already computed
    (several sets of ROIs on one shape).
    """
    fine, interp, fac = content if content is not None else subvoxel_content(grid, shape, subvoxels, iterations)
    axes = [grid.extent(a)[0] + (np.arange(grid.shape[a] * fac[a]) + 0.5) * grid.spacing[a] / fac[a] for a in range(3)]
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    total = _separable(fine, interp)
    has = total > 1e-12 * max(float(total.max()), 1e-300)
    out = []
    for f, geo in zip(inside_fns, geometric):
        own = _separable(fine * f(X, Y, Z), interp) / np.where(has, total, 1.0)
        out.append(np.where(grid.flatten(has), grid.flatten(own), geo))
    return np.clip(np.array(out), 0.0, 1.0)


def subvoxel_content(grid, shape, subvoxels=None, iterations=None):
    """(fine content, per-axis interpolation matrices, sub-voxels per axis) of the shape (N,): what
    :func:`ownership` works on."""
    subvoxels = SUBVOXELS if subvoxels is None else subvoxels
    fac = [subvoxels if n > 1 else 1 for n in grid.shape]
    interp = [_interpolation(n, f) for n, f in zip(grid.shape, fac)]
    fine = _subvoxel_content(grid.unflatten(np.clip(np.asarray(shape, np.float64), 0.0, None)), interp,
                             SHARPEN_ITERATIONS if iterations is None else iterations)
    return fine, interp, fac


def _interpolation(n, fac):
    """(n, n·fac) linear-interpolation weights of ``fac`` sub-voxel points per voxel onto the n voxel centres
    (in voxel units a point at offset o from its voxel's centre gives 1 − |o| to it and |o| to the neighbour
    on its side; nothing beyond the grid's edge), sparse: two entries per column."""
    from scipy.sparse import csr_matrix

    P = np.zeros((n, n * fac))
    off = (np.arange(fac) + 0.5) / fac - 0.5
    for v in range(n):
        for k, o in enumerate(off):
            P[v, v * fac + k] += 1.0 - abs(o)
            w = v + (1 if o > 0 else -1)
            if o != 0 and 0 <= w < n:
                P[w, v * fac + k] += abs(o)
    return csr_matrix(P)


def _separable(fine, interp, transpose=False):
    """Apply the per-axis matrices ``interp`` (fine → voxels; their transposes with ``transpose``)."""
    out = fine
    for a, P in enumerate(interp):
        M = P.T if transpose else P
        x = np.moveaxis(out, a, 0)
        y = np.asarray(M @ x.reshape(x.shape[0], -1)).reshape((M.shape[0],) + x.shape[1:])
        out = np.moveaxis(y, 0, a)
    return out


def _subvoxel_content(vol, interp, iterations):
    """Non-negative sub-voxel content f with P f ≈ vol (P: linear interpolation), by Richardson–Lucy
    iterations from the interpolated volume; they converge towards the most compact content that the
    voxel values allow (a point source where the split among voxels says one is)."""
    norm = _separable(np.ones_like(vol), interp, transpose=True)
    norm = np.where(norm > 0, norm, 1.0)
    f = _separable(vol, interp, transpose=True) / norm
    for _ in range(int(iterations)):
        model = _separable(f, interp)
        ratio = np.where(model > 0, vol / np.where(model > 0, model, 1.0), 0.0)
        f = f * _separable(ratio, interp, transpose=True) / norm
    return f


def gtm_amounts(problem, solver, lam, sweeps, image, shape, region_sets, noise=None, region_shape=None):
    """GTM-corrected ROI amounts (module docstring), one :class:`GtmAmounts` per set of ROIs.

    problem : the assembled :class:`~mpisim.reco.assemble.Problem` of the reconstruction; solver : a
    :class:`~mpisim.reco.solve.Solver` configured as the reconstruction was (linear); lam, sweeps : its λ
    (relative) and sweep count; image : (N,) the reconstructed frame (mol/L); shape : (N,) ≥ 0 the shape
    prior (:func:`shape_image`); region_sets : one (own, geo) pair per set of ROIs, each (k, N): the
    data-driven ownership (:func:`ownership`) and the geometric volume fractions, summing to ≤ 1 over a
    set's ROIs (disjoint ROIs); noise : (R, N) the frame's noise realisations or None; region_shape : (N,) the
    shape the ROIs' contents take within their weights (default ``shape``; the rest always takes ``shape``).
    """
    shape = np.clip(np.asarray(shape, np.float64), 0.0, None)
    inner = shape if region_shape is None else np.clip(np.asarray(region_shape, np.float64), 0.0, None)
    plans, cols = [], []
    for own, geo in region_sets:
        variants = []
        same = np.array_equal(own, geo)               # ROIs without an outline own their volume fractions
        for W, s, si in ((own, shape, inner), (geo, shape, inner), (own, shape ** 2, inner ** 2)):
            if same and len(variants) == 1:
                variants.append(variants[0])
                continue
            W = np.asarray(W, np.float64)
            Wall = np.vstack([W, np.clip(1.0 - W.sum(axis=0), 0.0, None)[None]])
            variants.append((Wall, sum(c.shape[1] for c in cols)))
            cols.append(_shapes(Wall, si, s))
        plans.append(variants)
    psi = np.concatenate(cols, axis=1)
    # the same reconstruction (rows, weights, λ, sweeps); single precision where the CPU kernel has it
    Rpsi = solver.solve(apply(problem.A, psi), lam, sweeps=sweeps, quiet=True, statistics=True)[0]
    x = np.asarray(image, np.float64)
    out = []
    for variants in plans:
        amounts, G0, W0, keep0 = [], None, None, None
        for Wall, at in variants:
            G = Wall @ Rpsi[:, at:at + len(Wall)]
            a, keep = _solve_regions(G, Wall @ x, float(Wall[-1] @ shape) if REST == "shape" else None)
            amounts.append(a)
            if G0 is None:
                G0, W0, keep0 = G, Wall, keep
        k = len(W0) - 1
        a = amounts[0]
        dev = None
        if noise is not None and len(noise) >= 2:
            qn = (np.asarray(noise, np.float64) @ W0.T).T
            dev = _solve(G0[np.ix_(keep0, keep0)], qn[keep0]).T[:, :k]
        alt = np.array([amounts[1][:k], amounts[2][:k]])
        sigma = SHAPE_BIAS_FACTOR * np.abs(alt - a[:k]).max(axis=0)
        out.append(GtmAmounts(a[:k], dev, sigma, alt, G0,
                              {"transfer_condition": float(np.linalg.cond(G0)), "outside_rois": float(a[k]),
                               "recovery": [float(G0[i, i]) for i in range(k)]}))
    return out


def _shapes(Wall, shape, rest_shape=None):
    """(N, k+1) unit-total shapes: the prior within each region's weights (uniform where it is empty); the last
    region (the rest) takes ``rest_shape`` when given."""
    cols = []
    for i, w in enumerate(Wall):
        s = w * (rest_shape if rest_shape is not None and i == len(Wall) - 1 else shape)
        if not s.sum() > 0:
            s = w.copy()
        tot = s.sum()
        cols.append(s / tot if tot > 0 else s)
    return np.stack(cols, axis=1)


def _solve_regions(G, q, rest=None):
    """Amounts of the k ROIs and the rest from G a = q. With ``rest`` (:data:`REST` "shape") the rest holds
    that much (what the shape prior puts outside every ROI) and only the k ROIs are solved for, its spill-in
    subtracted. Otherwise the rest is solved for too; when it comes out negative (no iron can be negative: its
    shape, from a nearly empty part of the shape prior, is then wrong), it is set to 0 and the k ROI regions
    are solved alone. Returns (amounts (k+1,), the regions kept (bool (k+1,)))."""
    keep = np.ones(len(q), bool)
    if REST not in ("shape", "estimated"):
        raise MPISimError(f"amounts.REST must be 'shape' or 'estimated', got {REST!r}")
    if rest is not None and len(q) > 1:
        keep[-1] = False
        a = np.zeros(len(q))
        a[-1] = rest
        a[:-1] = _solve(G[:-1, :-1], q[:-1] - G[:-1, -1] * rest)
        return a, keep
    a = _solve(G, q)
    if a[-1] < 0 and len(q) > 1:
        keep[-1] = False
        a = np.zeros(len(q))
        a[:-1] = _solve(G[:-1, :-1], q[:-1])
    return a, keep


def _solve(G, q):
    """G a = q for one or many right-hand sides; least squares when G is singular (a region with no
    weight, e.g. no voxel outside the ROIs)."""
    try:
        if np.linalg.cond(G) < 1e12:
            return np.linalg.solve(G, q)
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(G, q, rcond=None)[0]


def check_disjoint(weights, names):
    """Refuse overlapping ROIs (the GTM gives each voxel's content to one ROI): names the first pair."""
    W = np.asarray(weights)
    over = W.sum(axis=0) > 1 + 1e-6
    if over.any():
        v = int(np.argmax(over))
        pair = [names[i] for i in np.nonzero(W[:, v] > 0)[0][:2]]
        raise MPISimError(f"ROIs {pair[0]!r} and {pair[1]!r} overlap: the bias-corrected estimator (gtm) needs "
                          f"disjoint ROIs; draw them apart or use --estimator roi-sum")
