"""Open an MDF calibration file (mpisim's or another tool's) as a :class:`~mpisim.operator.SystemMatrix`.

The thin loader between the file and the operator: metadata and SNR are read at once, rows only when
a reconstruction asks for them (:class:`RowSource`, checked against their checksums).
"""

import numpy as np

from .. import cache
from ..backend import rfft
from ..errors import MPISimError
from ..grid import Grid
from ..operator import SystemMatrix
from .calibration import DamagedRows
from .mdf_read import guarded, read_calibration, read_rows

__all__ = ["RowSource", "load_system_matrix", "open_system_matrix"]


class RowSource:
    """Where an on-disk matrix's rows are: the file, which stored frames are voxels and which are
    background, and the scale to mol Fe/L. ``on_damage`` (set for cache entries) is called with the
    error when rows fail their checksum; it may rebuild the file and return the path to read again."""

    def __init__(self, path, num_rx_channels, fg, bg, scale, itemsize, on_damage=None):
        self.path, self.num_rx_channels = str(path), num_rx_channels
        self.fg, self.bg, self.scale, self.itemsize = fg, bg, scale, itemsize
        self.on_damage = on_damage

    @property
    def num_background(self):
        return self.bg.size

    def read(self, cidx, kidx, bins, background=False):
        try:
            full = read_rows(self.path, cidx, kidx, bins)
        except DamagedRows as e:
            again = self.on_damage(e) if self.on_damage is not None else None
            if not again:
                raise
            self.path = str(again)             # the rebuilt file (a registered file is rebuilt in the cache)
            full = read_rows(self.path, cidx, kidx, bins)
        bg = full[:, self.bg] if (background and self.bg.size) else None
        A = _keep_frames(full, self.fg)
        if self.scale is not None:
            A = _scaled(A, self.scale, owned=True)
            bg = None if bg is None else _scaled(bg, self.scale, owned=True)
        return A, bg


def _keep_frames(full, fg):
    """full (M, NE)[:, fg] as a C-contiguous (M, len(fg)) array, in place (no second copy) when the
    voxel frames come first, as in every calibration file mpisim writes."""
    M, NE = full.shape
    N = fg.size
    if N == NE:
        return full
    if not np.array_equal(fg, np.arange(N)):
        return np.ascontiguousarray(full[:, fg])
    flat = full.reshape(-1)
    for i in range(1, M):                 # row i moves from i·NE to i·N (never past a later row's source)
        flat[i * N:(i + 1) * N] = flat[i * NE:i * NE + N]
    return flat[:M * N].reshape(M, N)


def _scaled(a, factor, owned):
    """a · factor, in place when the array is ours (avoids a second copy of a big matrix)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if owned and a.flags.writeable:
            a *= np.asarray(factor, dtype=a.real.dtype)
        else:
            a = a * np.asarray(factor, dtype=a.real.dtype)
    return a


def load_system_matrix(path, measurement=None):
    """Open an MDF calibration file (ours or another tool's) as an on-disk :class:`SystemMatrix`:
    the metadata and SNR are read now, the rows when they are used (:meth:`SystemMatrix.rows`)."""
    return guarded(_load_system_matrix)(path, measurement)


def open_system_matrix(path, on_damage=None):
    """An on-disk :class:`SystemMatrix` of a file mpisim just built or served from its cache; ``on_damage``
    (called with the :class:`~mpisim.io.calibration.DamagedRows` error) may rebuild it and return the path
    to read again."""
    return guarded(_load_system_matrix)(path, None, on_damage)


def _drop_from_cache(err):
    """Rows of a file that is (a link to) a cache entry failed their checksum: remove the entry so the
    next ``mpisim sysmat`` rebuilds it, and say so in the error."""
    if err.path and cache.invalidate(err.path):
        raise DamagedRows(f"{err}; it was a cached system matrix: removed from the cache, so `mpisim sysmat` "
                          f"builds it again", err.path) from None
    return False


def _load_system_matrix(path, measurement=None, on_damage=_drop_from_cache):
    meas = read_calibration(path) if measurement is None else measurement
    cal = meas.calibration
    if cal is None:
        raise MPISimError(f"{path}: not a calibration file (no /calibration group)")
    fg, bgi = meas.foreground_frames, meas.background_frames
    size = cal.size
    if size is None or int(np.prod(size)) != fg.size:
        raise MPISimError(f"{path}: /calibration/size {None if size is None else np.ravel(size).tolist()} does not match "
                          f"{fg.size} foreground frames")
    fov = np.ones(3) if cal.field_of_view is None else cal.field_of_view
    center = np.zeros(3) if cal.center is None else cal.center
    grid = Grid(tuple(int(s) for s in np.ravel(size)), tuple(np.ravel(fov)), tuple(np.ravel(center)))
    conc = meas.tracer_concentration
    unit, scale = "mol/L", None
    if conc and conc > 0:
        scale = 1.0 / conc
    else:
        unit = "delta-sample concentration"
    K = meas.num_samples // 2 + 1
    bins = np.arange(K) if meas.frequency_selection is None else meas.frequency_selection
    snr = cal.snr
    if snr is not None:
        snr = np.asarray(snr, float)
        snr = snr.reshape(-1, *snr.shape[-2:])[0]
        if snr.shape != (meas.num_rx_channels, bins.size):
            snr = None
    stored = meas.stored
    itemsize = int(stored.row_itemsize if stored is not None and stored.row_itemsize else
                   8 if meas.data.dtype in (np.complex64, np.float32) else 16)
    if stored is None or not stored.rows_on_demand:      # an in-memory Measurement was given
        spectra = meas.data if meas.frequency_domain else rfft(meas.data, axis=-1)
        allf = np.moveaxis(spectra[:, 0], 0, -1)                      # (C, K, frames)
        data = allf if fg.size == allf.shape[-1] else allf[..., fg]
        bg = allf[..., bgi] if bgi.size else None
        if scale is not None:
            data = _scaled(data, scale, owned=False)
            bg = None if bg is None else bg * np.asarray(scale, dtype=bg.real.dtype)
        return SystemMatrix(data, bins, meas.all_frequencies[bins], grid, snr, bg, meas, unit, origin=str(path))
    source = RowSource(path, meas.num_rx_channels, fg, bgi, scale, itemsize, on_damage)
    return SystemMatrix(None, bins, meas.all_frequencies[bins], grid, snr, None, meas, unit, origin=str(path),
                        row_source=source)
