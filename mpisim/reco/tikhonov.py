"""The Tikhonov solution as a precomputed operator: a frame's image in two small matrix products.

Regularised Kaczmarz converges to the Tikhonov solution x = argmin ‖W(A x − b)‖² + λ‖x‖² (real x; W the row
weights, λ absolute as the sweeps use it: :func:`~mpisim.reco.kaczmarz_base.absolute_lambda`). With the
real-stacked rows Ã = W [Re A; Im A] (2M × N) and the eigen-decomposition of their Gram matrix
ÃᵀÃ = V diag(s) Vᵀ,

    x = V diag(1 / (s + λ)) Vᵀ Ãᵀ b̃ = V_r diag(1 / (s_r + λ)) P_rᵀ b̃,   P = Ã V,

where only the r components whose filter factor s / (s + λ) exceeds :data:`FILTER_FLOOR` are kept (the others
are damped by λ to nearly nothing; the relative change of the image this makes is computed and recorded:
:attr:`TikhonovOperator.truncation_error`). Computing it costs a Gram matrix, an eigen-decomposition of N × N
and one product (50 s for the README's 19³ bruker-3d rows on 2 cores: ``benchmarks/bench_live.py`` prints it); applying it reads P_r (2M × r) and
V_r (N × r) once, against the 2M × N rows a single Kaczmarz sweep reads — what lets a live reconstruction keep a
scanner's frame rate (:mod:`mpisim.live`). P_r, the larger factor, is held as 16-bit integers with one scale per
component (:data:`STORAGE`), and both products run in one compiled kernel (:func:`row_dots`): 164 MB read per
bruker-3d image instead of 270 MB. A linear reconstruction only: no positivity constraint.

The default reconstruction (a stopping rule on the sweeps) stops before convergence; the two differ little
(``benchmarks/bench_live.py`` prints the correlation of each live image with the offline one and the ratio of their
target iron: ≥ 0.995 and within 0.5 % on bruker-3d).
"""

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from .kaczmarz_base import PlanarRows, absolute_lambda

__all__ = ["FILTER_FLOOR", "STORAGE", "TikhonovOperator", "row_dots", "row_dots_numpy"]

FILTER_FLOOR = 1e-2
"""Smallest filter factor s / (s + λ) kept. On the README's bruker-3d rows (12504 × 19³, λ = 1e-2 relative)
1e-2 keeps 2120 of 6859 components and changes the image by 0.22 % (``mpisim live`` records both in its report:
``operator_rank``, ``operator_truncation_error``)."""

STORAGE = ("int16", "float32")
"""How the operator holds P, the factor a frame's data meet (2M × r: 212 MB in float32 for the README's bruker-3d
rows): as 16-bit integers with one scale per component (the default; half of P's bytes, 164 MB read per bruker-3d
frame instead of 270 MB, so a frame's
image costs less than the frame period: ``benchmarks/bench_live.py``; the rounding changes an image by about 2e-4 of
its norm, recorded as ``quantization_error``) or as float32."""

_BLOCK = 2048
"""Rows per block when the Gram matrix and P are formed (memory: a block in float64)."""


class TikhonovOperator:
    """x(b) = the Tikhonov solution of the rows A (M, N) complex (or :class:`PlanarRows`) with row weights
    ``weights`` (M,) or None and λ ``lam`` (relative to ‖WA‖_F²/N as Kaczmarz's, or absolute with
    ``relative=False``), through its eigen-decomposition truncated at ``floor`` (module docstring).

    storage : how P (the larger factor, 2M × r) is held: ``"int16"`` (the default: each component's column as 16-bit
    integers with its own scale, half of P's bytes, :data:`STORAGE`) or ``"float32"``.
    rank : components kept; truncation_error : ‖x_r − x‖/‖x‖ on the data ``check`` (M,) given to the
    constructor (None without), the stored P's rounding included; quantization_error : the part of it from P's 16-bit
    storage alone (‖x_int16 − x_float32‖/‖x_float32‖ on ``check``; 0 for float32); lam_abs : the absolute λ."""

    def __init__(self, A, weights=None, lam=1e-2, relative=True, floor=None, check=None, storage="int16"):
        floor = FILTER_FLOOR if floor is None else float(floor)
        if not 0 < floor < 1:
            raise MPISimError(f"the filter-factor floor must lie in (0, 1), got {floor!r}")
        if storage not in STORAGE:
            raise MPISimError(f"operator storage must be one of {', '.join(STORAGE)}, got {storage!r}")
        rows = _Rows(A, weights)
        M, N = rows.shape
        norms2 = rows.norms2()
        self.lam_abs = absolute_lambda(np.empty((0, N)), lam, relative, norms2) if relative else float(lam)
        H = np.zeros((N, N))
        for a, blk in rows.blocks():
            H += blk.T @ blk
        s, V = np.linalg.eigh(H)
        del H
        s = np.clip(s, 0.0, None)
        keep = s / (s + self.lam_abs) > floor
        self.rank, self.size = int(keep.sum()), N
        Vr = V[:, keep]
        g = None if check is None else np.zeros(N)
        Pt = np.empty((self.rank, 2 * M), np.float32)
        for a, blk in rows.blocks():
            Pt[:, rows.index(a, blk)] = (blk @ Vr).T
            if g is not None:
                g += blk.T @ rows.stacked_data(check, a, blk.shape[0] // 2)
        self.Vr = np.ascontiguousarray(Vr, np.float32)
        self.s = s[keep]
        self._inv = (1.0 / (self.s + self.lam_abs)).astype(np.float32)
        self.weights = rows.w
        self.Pt, self.p_scale, self.storage = Pt, None, "float32"
        self.truncation_error = self.quantization_error = None
        x32 = None if g is None else self(check)
        if storage == "int16":
            self.Pt, self.p_scale, self.storage = _quantize(Pt)
            del Pt
        if g is not None:
            full = V @ ((V.T @ g) / (s + self.lam_abs))
            x = self(check)
            self.truncation_error = float(np.linalg.norm(x - full) / max(np.linalg.norm(full), 1e-300))
            self.quantization_error = float(np.linalg.norm(x - x32) / max(np.linalg.norm(x32), 1e-300))

    @classmethod
    def from_arrays(cls, Pt, Vr, s, weights, lam_abs, p_scale=None, truncation_error=None, quantization_error=None):
        """The operator from its stored parts (:meth:`arrays`)."""
        op = cls.__new__(cls)
        op.Pt, op.Vr, op.s = np.ascontiguousarray(Pt), np.ascontiguousarray(Vr, np.float32), np.asarray(s, np.float64)
        op.storage = "int16" if op.Pt.dtype == np.int16 else "float32"
        op.p_scale = np.asarray(p_scale, np.float32) if op.storage == "int16" else None
        op.weights = None if weights is None or np.size(weights) == 0 else np.asarray(weights, np.float64)
        op.lam_abs, op.size, op.rank = float(lam_abs), int(op.Vr.shape[0]), int(op.Pt.shape[0])
        op._inv = (1.0 / (op.s + op.lam_abs)).astype(np.float32)
        op.truncation_error, op.quantization_error = (
            None if e is None or not np.isfinite(e) else float(e) for e in (truncation_error, quantization_error))
        if op.Pt.dtype not in (np.int16, np.float32) or op.Vr.shape[1] != op.rank or op.s.shape != (op.rank,) or \
                (op.p_scale is not None and op.p_scale.shape != (op.rank,)):
            raise MPISimError(f"stored Tikhonov operator: P has {op.Pt.dtype} shape {op.Pt.shape}, V {op.Vr.shape} "
                              f"and s {op.s.shape}, expected (r, 2M) int16 or float32, (N, r) and (r,)")
        return op

    def arrays(self):
        """The parts :meth:`from_arrays` takes back (a dict of arrays)."""
        nan = np.float64(np.nan)
        return {"Pt": self.Pt, "Vr": self.Vr, "s": self.s,
                "weights": np.zeros(0) if self.weights is None else self.weights, "lam_abs": np.float64(self.lam_abs),
                "p_scale": np.zeros(0) if self.p_scale is None else self.p_scale,
                "truncation_error": nan if self.truncation_error is None else np.float64(self.truncation_error),
                "quantization_error": nan if self.quantization_error is None else np.float64(self.quantization_error)}

    def __call__(self, b):
        """The image(s) of data b (M,) or (M, F) complex at the rows (unweighted, as a Problem's b)."""
        b = np.asarray(b)
        one = b.ndim == 1
        b2 = b[:, None] if one else b
        if self.weights is not None:
            b2 = b2 * self.weights[:, None]
        M, F = b2.shape
        bt = np.empty((F, 2 * M), np.float32)                         # frames as rows: [Re b; Im b]ᵀ
        bt[:, :M] = b2.real.T
        bt[:, M:] = b2.imag.T
        y = row_dots(self.Pt, bt) * (self._inv if self.p_scale is None else self.p_scale * self._inv)[None, :]
        x = row_dots(self.Vr, y).T                                    # (N, F)
        return x[:, 0].astype(np.float64) if one else x.astype(np.float64)

    @property
    def filter_factors(self):
        """(r,) s / (s + λ) of the components kept."""
        return self.s / (self.s + self.lam_abs)

    def resolution(self, c, voxels=None):
        """The image that noise-free data of the concentrations c (N,) or (N, F) give: R c = V_r diag(s/(s+λ))
        V_rᵀ c, the reconstruction's resolution operator. ``voxels``: only those rows of it."""
        c = np.asarray(c, np.float64)
        V = self.Vr if voxels is None else self.Vr[voxels]
        y = self.filter_factors[:, None] * (self.Vr.T.astype(np.float64) @ c.reshape(self.size, -1))
        return (V.astype(np.float64) @ y).reshape((V.shape[0],) + c.shape[1:])

    @property
    def nbytes(self):
        """Bytes read per frame (P and V_r)."""
        return int(self.Pt.nbytes + self.Vr.nbytes)



def _quantize(Pt):
    """(r, 2M) float32 → (the same as int16, each row's scale (r,) float32, "int16"): row j = round(P_j / scale_j),
    scale_j = max |P_j| / 32767."""
    scale = (np.abs(Pt).max(axis=1) / 32767.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    Q = np.empty(Pt.shape, np.int16)
    for a in range(0, Pt.shape[0], 256):
        Q[a:a + 256] = np.rint(Pt[a:a + 256] / safe[a:a + 256, None])
    return Q, scale, "int16"


def row_dots(Q, xt):
    """xt (F, K) float32 · Qᵀ for Q (R, K) int16 or float32 → (F, R) float32: the compiled kernel
    (:func:`mpisim.cpu_kernels.row_dots`) when numba is there, else :func:`row_dots_numpy`."""
    xt = np.ascontiguousarray(xt, np.float32)
    if Q.ndim != 2 or xt.ndim != 2 or Q.shape[1] != xt.shape[1]:
        raise MPISimError(f"row products: rows of shape {Q.shape} and right-hand sides of shape {xt.shape} do not "
                          f"match")
    if B.numba_available():
        from ..cpu_kernels import row_dots as kernel

        out = np.empty((xt.shape[0], Q.shape[0]), np.float32)
        kernel(Q, xt, out)
        return out
    return row_dots_numpy(Q, xt)


def row_dots_numpy(Q, xt):
    """numpy twin of :func:`mpisim.cpu_kernels.row_dots`: Q taken as float32 256 rows at a time."""
    out = np.empty((xt.shape[0], Q.shape[0]), np.float32)
    for a in range(0, Q.shape[0], 256):
        out[:, a:a + 256] = xt @ Q[a:a + 256].astype(np.float32).T
    return out


class _Rows:
    """Blocks of the real-stacked, weighted rows: block a..a+n gives [Re; Im] (2n, N) float64, whose rows sit at
    a..a+n (real parts) and M+a..M+a+n (imaginary parts) of the stacked matrix."""

    def __init__(self, A, weights):
        self.A = A
        self.w = None if weights is None else np.asarray(weights, np.float64)
        self.shape = A.shape if not isinstance(A, PlanarRows) else (A.planes.shape[0], A.planes.shape[2])

    def _complex(self, a, b):
        if isinstance(self.A, PlanarRows):
            p = self.A.planes[a:b].astype(np.float64)
            return p[:, 0], p[:, 1]
        blk = np.asarray(self.A[a:b])
        return blk.real.astype(np.float64), blk.imag.astype(np.float64)

    def blocks(self):
        M = self.shape[0]
        for a in range(0, M, _BLOCK):
            re, im = self._complex(a, min(M, a + _BLOCK))
            if self.w is not None:
                w = self.w[a:a + re.shape[0], None]
                re, im = re * w, im * w
            yield a, np.concatenate([re, im])

    def index(self, a, blk):
        n, M = blk.shape[0] // 2, self.shape[0]
        return np.r_[a:a + n, M + a:M + a + n]

    def stacked_data(self, b, a, n):
        bb = np.asarray(b)[a:a + n]
        if self.w is not None:
            bb = bb * self.w[a:a + n]
        return np.concatenate([bb.real, bb.imag]).astype(np.float64)

    def norms2(self):
        tot = np.zeros(self.shape[0])
        for a, blk in self.blocks():
            n = blk.shape[0] // 2
            tot[a:a + n] = (blk[:n] ** 2).sum(axis=1) + (blk[n:] ** 2).sum(axis=1)
        return tot
