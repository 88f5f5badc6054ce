"""``reconstruct(measurement, system_matrix)``: preprocessing + Kaczmarz/CGNR → iron map (mol Fe/L)."""

from dataclasses import dataclass, field
import time

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from ..grid import Grid
from .preprocess import (RecoParams, check_compatible, measurement_spectra, row_weights, select_frames,
                         select_rows)


@dataclass(eq=False)
class Reconstruction:
    """image : (F, N) concentrations (``unit``, normally mol Fe/L), x-fastest voxels on ``grid``."""

    image: np.ndarray
    grid: Grid
    params: RecoParams
    unit: str = "mol/L"
    info: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self):
        return self.image.shape[0]

    def volume(self, frame=0):
        """(nx, ny, nz) image of one frame."""
        return self.grid.unflatten(self.image[frame])

    @property
    def iron_mass(self):
        """Total iron per frame in kg (mol/L × voxel volume × molar mass)."""
        from ..constants import FE_MOLAR_MASS, LITRE

        if self.unit != "mol/L":
            raise MPISimError(f"reconstruction is in {self.unit!r}, not mol/L: iron mass unknown")
        return self.image.sum(axis=1) * self.grid.voxel_volume / LITRE * FE_MOLAR_MASS


def _load_meas(m):
    from ..io.mdf import read_mdf
    from ..measurement import Measurement

    return m if isinstance(m, Measurement) else read_mdf(m)


def _load_sm(s):
    from ..systemmatrix import SystemMatrix, load_system_matrix

    return s if isinstance(s, SystemMatrix) else load_system_matrix(s)


def reconstruct(measurement, system_matrix, params=None, *, backend="auto", impl="auto", progress=False, **kw):
    """Reconstruct concentration images from a measurement and a system matrix.

    Parameters
    ----------
    measurement : :class:`~mpisim.measurement.Measurement` or MDF path.
    system_matrix : :class:`~mpisim.systemmatrix.SystemMatrix` or MDF calibration path.
    params : :class:`RecoParams`; keyword arguments override its fields.
    backend : "auto" | "numpy" | "cupy" for the solver.
    progress : show a progress bar over the sweeps (CPU Kaczmarz) on a terminal.

    Returns
    -------
    :class:`Reconstruction` with images (F, N) in mol Fe/L (the system matrix's unit).
    """
    params = params or RecoParams()
    if kw:
        params = RecoParams(**{**params.to_dict(), **kw})
    t0 = time.perf_counter()
    meas = _load_meas(measurement)
    sm = _load_sm(system_matrix)
    check_compatible(meas, sm)
    tf = None
    if params.transfer_function:
        from ..transfer import TransferFunction

        tf = TransferFunction.load(params.transfer_function).at(meas.all_frequencies, meas.num_channels)
    spec = measurement_spectra(meas, tf)
    background = None
    if params.background not in ("auto", "none"):
        empty = _load_meas(params.background)
        check_compatible(empty, sm)
        background = measurement_spectra(empty, tf).mean(axis=0)
    frames, bg_sub = select_frames(spec, meas, params, background)
    ch, mask = select_rows(sm, params, meas.bandwidth)
    # rows: (channel, bin) pairs in channel-major order
    cidx, kidx = np.nonzero(mask)
    S = sm.data
    sm_tf = sm.meta.get("transfer_function")
    A = S[cidx, kidx]                                            # (rows, N), a copy (fancy index)
    if sm_tf is not None:
        t = np.asarray(sm_tf)[cidx, sm.bins[kidx]]
        A = A / np.where(t == 0, 1, t)[:, None]
    b = frames[:, cidx, sm.bins[kidx]].T                         # (rows, F)
    spread = None
    if params.weighting == "whitening":
        if sm.background is not None and sm.background.shape[-1] >= 2:
            spread = np.std(sm.background[cidx, kidx], axis=-1)
        elif meas.background_frames.size >= 2:
            spread = np.std(spec[meas.background_frames][:, cidx, sm.bins[kidx]], axis=0)
    w = row_weights(A, params, spread)
    if not np.all(np.isfinite(A)):
        raise MPISimError(f"{sm.meta.get('source', 'system matrix')}: selected rows contain NaN or Inf")
    A = np.ascontiguousarray(A, dtype=np.complex64 if A.dtype in (np.complex64, np.float32) else A.dtype)
    use = B.resolve(backend)
    t1 = time.perf_counter()
    if params.solver == "kaczmarz":
        from .kaczmarz import kaczmarz

        if use == "cupy":
            A_dev, b_dev = B.to_device(A, "cupy"), B.to_device(b, "cupy")
            img = kaczmarz(A_dev, b_dev, params.iterations, params.lam, enforce_real=params.enforce_real,
                           enforce_positive=params.enforce_positive, order=params.order, seed=params.seed,
                           row_weights=None if w is None else B.to_device(w, "cupy"), impl=impl)
        else:
            from ..progress import Progress

            with Progress(params.iterations, "kaczmarz", enabled=progress) as bar:
                img = kaczmarz(A, b, params.iterations, params.lam, enforce_real=params.enforce_real,
                               enforce_positive=params.enforce_positive, order=params.order, seed=params.seed,
                               row_weights=w, backend="numpy", impl=impl, callback=lambda i, c: bar.update())
    else:
        from .cgnr import cgnr

        Ax = B.to_device(A, use)
        img = cgnr(Ax, B.to_device(b, use), params.iterations, params.lam, enforce_real=params.enforce_real,
                   enforce_positive=params.enforce_positive,
                   row_weights=None if w is None else B.to_device(w, use))
    img = B.to_numpy(img).T                                      # (F, N)
    t2 = time.perf_counter()
    info = {"rows": int(A.shape[0]), "voxels": int(A.shape[1]), "frames": int(img.shape[0]),
            "background_subtracted": bool(bg_sub), "backend": use, "solve_seconds": t2 - t1,
            "total_seconds": t2 - t0, "channels": ch.tolist(),
            "rows_per_channel": [int((cidx == c).sum()) for c in range(sm.num_channels)],
            "measurement": meas.meta.get("source", "(in memory)"),
            "system_matrix": sm.meta.get("source", "(in memory)")}
    return Reconstruction(img if params.enforce_real else img, sm.grid, params, sm.unit, info,
                          {"measurement": meas})
