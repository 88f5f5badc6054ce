"""The system matrix as a linear operator: concentrations (mol Fe/L, N voxels) → spectra (C·K' rows).

A noun of the package (docs/conventions.md, "Layout"): it holds its rows in memory or reads them
through a row source that :mod:`mpisim.io.sm_file` gives it for a calibration file; it never opens a
file itself. Like SigPy's ``Linop`` it has a ``shape``, :meth:`SystemMatrix.forward` and
:meth:`SystemMatrix.adjoint`, and :func:`dot_test` checks that the two agree.
"""

import numpy as np

from .errors import MPISimError
from .resources import check_memory

__all__ = ["SystemMatrix", "JointSystemMatrix", "dot_test", "check_compatible", "contrast_names"]


class SystemMatrix:
    """The system matrix as an operator from concentrations (mol Fe/L, N voxels) to spectra.

    Either in memory (``data`` (C, K', N) complex) or on disk (:func:`load_system_matrix`): then
    only the metadata are loaded and :meth:`rows` reads the rows a reconstruction uses, checked
    against their checksums; ``data`` reads every row (small matrices, plots).
    Rows are channel × frequency bin, columns x-fastest voxels; values are scaled to 1 mol Fe/L
    when the delta concentration is known. ``bins`` are the 0-based rfft bins of the rows,
    ``frequencies`` their Hz values; ``snr`` (C, K'); ``background`` (C, K', E) or None.
    ``acquisition``: the calibration's acquisition (a :class:`~mpisim.measurement.Measurement` whose
    bandwidth, samples per period, drive frequencies, gradient, transfer function, scanner and tracer
    a measurement must share), or None; ``origin``: the file it came from, or "(in memory)".
    """

    def __init__(self, data, bins, frequencies, grid, snr=None, background=None, acquisition=None, unit="mol/L",
                 *, origin=None, row_source=None):
        self._nonzero_rows = None
        self._data, self._background = data, background
        self.bins, self.frequencies = np.asarray(bins), np.asarray(frequencies)
        self.grid, self.snr = grid, snr
        self.acquisition, self.unit = acquisition, unit
        self.origin = origin or (acquisition.source if acquisition is not None else "(in memory)")
        self.row_source = row_source
        """On-disk matrices: a :class:`~mpisim.io.sm_file.RowSource` (file, frame split, scale); None in memory."""

    @property
    def label(self):
        """How errors name the matrix: its file, or "system matrix"."""
        return self.origin if self.origin != "(in memory)" else "system matrix"

    @property
    def transfer_function(self):
        """(C, K) complex transfer function the matrix contains (divided out of its rows), or None."""
        return None if self.acquisition is None else self.acquisition.transfer_function

    @property
    def on_disk(self):
        return self._data is None

    @property
    def num_rx_channels(self):
        return self._data.shape[0] if self._data is not None else self.row_source.num_rx_channels

    @property
    def num_background_frames(self):
        if self._data is None:
            return self.row_source.num_background
        return 0 if self._background is None else self._background.shape[-1]

    @property
    def shape(self):
        C, K = self.num_rx_channels, self.bins.size
        return (C * K, self.grid.size)

    @property
    def data(self):
        """(C, K', N) in memory; an on-disk matrix reads every row once (mind the size: :meth:`rows`
        reads only what is needed)."""
        if self._data is None:
            C, K = self.num_rx_channels, self.bins.size
            check_memory(C * K * (self.grid.size + self.row_source.num_background) * self.row_source.itemsize,
                         f"the whole system matrix {self.origin}",
                         "read a selection of its rows instead (SystemMatrix.rows)")
            cidx, kidx = np.divmod(np.arange(C * K), K)
            A, bg = self.row_source.read(cidx, kidx, self.bins, background=True)
            self._data = A.reshape(C, K, -1)
            self._background = None if bg is None else bg.reshape(C, K, -1)
        return self._data

    @property
    def background(self):
        """(C, K', E) background frames (scaled like the data) or None."""
        if self._data is None and self.row_source.num_background:
            self.data
        return self._background

    def rows(self, cidx, kidx, background=False):
        """Rows (channel ``cidx[i]``, bin position ``kidx[i]``) → (M, N) array (and (M, E) background
        rows or None when ``background``): from memory, or read from the file and checked."""
        cidx, kidx = np.asarray(cidx, np.int64), np.asarray(kidx, np.int64)
        if self._data is not None:
            A = self._data[cidx, kidx]
            if not background:
                return A
            return A, (None if self._background is None else self._background[cidx, kidx])
        check_memory(cidx.size * (self.grid.size + self.row_source.num_background) * self.row_source.itemsize,
                     f"{self.origin}: the {cidx.size} selected rows",
                     "raise --snr-threshold, lower --max-freq or pass --top-k")
        A, bg = self.row_source.read(cidx, kidx, self.bins, background)
        return (A, bg) if background else A

    @property
    def nonzero_rows(self):
        """(C, K') bool rows with any non-zero entry, or None for an on-disk matrix (known only for
        the rows read: :func:`mpisim.reco.reconstruct` drops zero rows after reading)."""
        if self._data is None:
            return None
        if self._nonzero_rows is None:
            self._nonzero_rows = np.any(self._data != 0, axis=-1)
        return self._nonzero_rows

    @property
    def matrix(self):
        """(C·K', N) view of the data (rows × voxels)."""
        return self.data.reshape(self.shape)

    def forward(self, c):
        """Spectra of concentrations c (N,) or (N, F) → (C·K',) or (C·K', F)."""
        return self.matrix @ c

    def adjoint(self, u):
        """Aᴴ u for spectra u (C·K',) or (C·K', F) → (N,) or (N, F)."""
        return self.matrix.conj().T @ u

    def select(self, channels=None, bins=None):
        """A sub-matrix: ``channels`` (indices) and ``bins`` (positions within this matrix's rows)."""
        d = self.data
        ch = slice(None) if channels is None else channels
        b = slice(None) if bins is None else bins
        d = d[ch][:, b] if not isinstance(ch, slice) else d[:, b]
        snr = None if self.snr is None else (self.snr[ch][:, b] if not isinstance(ch, slice) else self.snr[:, b])
        bg = None if self.background is None else (self.background[ch][:, b] if not isinstance(ch, slice)
                                                   else self.background[:, b])
        return SystemMatrix(d, self.bins[b], self.frequencies[b], self.grid, snr, bg, self.acquisition, self.unit,
                            origin=self.origin)


def dot_test(op, rng=None, frames=1):
    """Relative adjoint mismatch |⟨A x, y⟩ − ⟨x, Aᴴ y⟩| / (‖A x‖ ‖y‖) of an operator with ``shape``,
    ``forward`` and ``adjoint``, for random x (real, N) and y (complex, M): ~1e-7 in single precision,
    ~1e-15 in double; a wrong adjoint gives O(1)."""
    rng = np.random.default_rng(0) if rng is None else rng
    M, N = op.shape
    x = rng.standard_normal((N, frames)) if frames > 1 else rng.standard_normal(N)
    y = rng.standard_normal((M,) + x.shape[1:]) + 1j * rng.standard_normal((M,) + x.shape[1:])
    ax = op.forward(x)
    lhs = np.vdot(y, ax)                      # ⟨A x, y⟩ = yᴴ A x
    rhs = np.vdot(op.adjoint(y), x)           # ⟨x, Aᴴ y⟩ = (Aᴴ y)ᴴ x
    return float(abs(lhs - rhs) / max(np.linalg.norm(ax) * np.linalg.norm(y), np.finfo(float).tiny))


class JointSystemMatrix:
    """Several system matrices of one scanner, sequence and grid side by side, [S₁ S₂ …]: the operator of a
    multi-contrast reconstruction (Rahmer et al. 2015; Möddel et al. 2018), whose unknowns are one image per
    contrast (K·N, contrast-major). Each S_k is the response of one tracer state (mobile, immobilised) or
    tracer; their rows are read with the same (channel, bin) selection and set side by side, so nothing holds
    more than the selected rows.

    matrices : :class:`SystemMatrix` list (≥ 2); names : one contrast name each (default: each matrix's tracer
    state when they differ, else its tracer's name, else ``contrast0``…). The selection sees, per row, the
    highest SNR of the matrices (a row that shows either contrast is kept).
    """

    def __init__(self, matrices, names=None):
        matrices = list(matrices)
        if len(matrices) < 2:
            raise MPISimError("a multi-contrast reconstruction needs at least two system matrices")
        first = matrices[0]
        for m in matrices[1:]:
            why = _differs(first, m)
            if why:
                raise MPISimError(f"{m.label} and {first.label} cannot be reconstructed together: {why}")
        self.matrices = matrices
        self.names = tuple(names) if names is not None else contrast_names(matrices)
        if len(self.names) != len(matrices) or len(set(self.names)) != len(self.names):
            raise MPISimError(f"give one distinct contrast name per system matrix, got {list(self.names)}")
        self.grid = first.grid
        self.bins, self.frequencies = first.bins, first.frequencies
        self.acquisition, self.unit = first.acquisition, first.unit
        snrs = [m.snr for m in matrices]
        self.snr = None if any(s is None for s in snrs) else np.maximum.reduce([np.asarray(s) for s in snrs])
        self.origin = " + ".join(m.origin for m in matrices)

    label = SystemMatrix.label

    @property
    def transfer_function(self):
        return None                                    # each matrix's own is divided out of its rows

    @property
    def on_disk(self):
        return any(m.on_disk for m in self.matrices)

    @property
    def num_rx_channels(self):
        return self.matrices[0].num_rx_channels

    @property
    def num_background_frames(self):
        return 0                                       # whitening by the data's noise level

    @property
    def num_contrasts(self):
        return len(self.matrices)

    @property
    def shape(self):
        C, K = self.num_rx_channels, self.bins.size
        return (C * K, self.grid.size * len(self.matrices))

    @property
    def nonzero_rows(self):
        nz = [m.nonzero_rows for m in self.matrices]
        return None if any(n is None for n in nz) else np.logical_or.reduce(nz)

    def rows(self, cidx, kidx, background=False):
        """The selected rows of every matrix side by side, (M, K·N), each divided by its own transfer function."""
        parts = []
        for m in self.matrices:
            A = np.asarray(m.rows(cidx, kidx))
            tf = m.transfer_function
            if tf is not None:
                t = np.asarray(tf)[np.asarray(cidx), m.bins[np.asarray(kidx)]]
                A = A / np.where(t == 0, 1, t)[:, None]
            parts.append(A)
        A = np.concatenate(parts, axis=1)
        return (A, None) if background else A

    def forward(self, c):
        """Spectra of the contrasts' concentrations c (K·N,) or (K·N, F)."""
        N = self.grid.size
        return sum(m.forward(c[i * N:(i + 1) * N]) for i, m in enumerate(self.matrices))

    def adjoint(self, u):
        """[S₁ᴴ u; S₂ᴴ u; …]."""
        return np.concatenate([m.adjoint(u) for m in self.matrices], axis=0)


def _differs(a, b):
    """Why two system matrices cannot form one joint operator ("" when they can): the grid, bins and unit here,
    the sequence and scanner by the check a measurement meets (:func:`check_compatible`, with ``b``'s acquisition
    as the measurement)."""
    if a.grid != b.grid:
        return f"different grids ({a.grid.shape} over {a.grid.fov} m against {b.grid.shape} over {b.grid.fov} m)"
    if a.bins.shape != b.bins.shape or not np.array_equal(a.bins, b.bins):
        return "different frequency bins (calibrated with other frequency selections)"
    if a.unit != b.unit:
        return f"units {a.unit!r} and {b.unit!r}"
    if b.acquisition is None:
        return "it states no acquisition (scanner, sequence)"
    try:
        check_compatible(b.acquisition, a)
    except MPISimError as e:
        return str(e).replace("measurement", "the second matrix")
    return ""


def contrast_names(matrices):
    """Each matrix's tracer state when they differ, else its tracer's name, else contrast0, contrast1…"""
    tracers = [getattr(m.acquisition, "tracer", None) for m in matrices]
    for key in ("state", "name"):
        names = [getattr(t, key, None) for t in tracers]
        if all(names) and len(set(names)) == len(names):
            return tuple(names)
    return tuple(f"contrast{i}" for i in range(len(matrices)))


def check_compatible(meas, sm):
    """Raise a clear error when measurement and system matrix cannot be combined."""
    src, acq = sm.label, sm.acquisition
    if acq is None:
        raise MPISimError(f"{src} states no acquisition (bandwidth, samples, drive frequencies): it cannot be "
                          f"checked against the measurement")
    if meas.num_samples != acq.num_samples:
        raise MPISimError(f"measurement has {meas.num_samples} samples per period, system matrix {src} has "
                          f"{acq.num_samples}: different sequences")
    if not np.isclose(meas.bandwidth, acq.bandwidth, rtol=1e-6):
        raise MPISimError(f"receiver bandwidth differs: measurement {meas.bandwidth:g} Hz, system matrix "
                          f"{acq.bandwidth:g} Hz")
    fm, fs = np.sort(meas.drive_frequencies), np.sort(acq.drive_frequencies)
    if fm.shape != fs.shape or not np.allclose(fm, fs, rtol=1e-6):
        raise MPISimError(f"drive frequencies differ: measurement {np.round(fm, 1).tolist()} Hz, system matrix "
                          f"{np.round(fs, 1).tolist()} Hz: different scanners or sequences")
    gm, gs = np.asarray(meas.gradient, float), np.asarray(acq.gradient, float)
    if np.all(np.isfinite(gm)) and np.all(np.isfinite(gs)) and np.any(gm) and np.any(gs) and \
            not np.allclose(gm, gs, rtol=1e-3, atol=1e-6):
        raise MPISimError(f"selection-field gradients differ: measurement diag {np.diag(gm).tolist()}, system "
                          f"matrix diag {np.diag(gs).tolist()} T/m/µ0")
    if meas.num_rx_channels != sm.num_rx_channels:
        raise MPISimError(f"measurement has {meas.num_rx_channels} receive channels, system matrix "
                          f"{sm.num_rx_channels}")
