"""The system matrix as a linear operator: concentrations (mol Fe/L, N voxels) → spectra (C·K' rows).

A noun of the package (docs/conventions.md, "Layout"): it holds its rows in memory or reads them
through a row source that :mod:`mpisim.io.sm_file` gives it for a calibration file; it never opens a
file itself. Like SigPy's ``Linop`` it has a ``shape``, :meth:`SystemMatrix.forward` and
:meth:`SystemMatrix.adjoint`, and :func:`dot_test` checks that the two agree.
"""

import numpy as np

from .resources import check_memory

__all__ = ["SystemMatrix", "dot_test"]


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
