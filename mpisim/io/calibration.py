"""Calibration (system-matrix) files at real size: written by voxel stripes, read row by row.

Layout of the files mpisim writes (``LAYOUT``; ``benchmarks/bench_sm_layout.py`` measures it against
chunked alternatives): ``/measurement/data`` is one contiguous complex (1, C, K', N + E) dataset,
frame axis fastest, so one calibration row (receive channel × frequency bin, every frame) is one
contiguous run of bytes — the layout of the OpenMPIData calibrations that MPIFiles memory-maps.

- The build streams voxel stripes: :class:`StripeWriter` takes (C, K', S) blocks and writes each
  row's piece at its offset on a background I/O thread while the next stripe is computed, so memory
  stays at two stripes whatever the grid.
- Integrity: a Fletcher-64 checksum per row (:mod:`mpisim.io.checksum`) in ``/_mpisim/rowChecksum``,
  built up stripe by stripe, and a sha256 manifest of every other dataset in ``/_mpisim/manifest``.
  :func:`read_rows` checks the checksum of every row it reads, :func:`verify_manifest` the rest.
- Reading (:func:`read_rows`) takes only the requested rows, whatever the file's layout: rows of a
  contiguous fast-frame-axis dataset are read one ``pread`` each straight into the output array,
  chunked datasets band by band along their chunks, slow-frame-axis and time-domain files frame
  block by frame block; the working set besides the output is bounded (``BLOCK_BYTES``).
"""

import hashlib
import json
import os
import queue
import threading

import numpy as np

from . import checksum
from .. import backend as B
from .. import interrupt
from ..errors import MPISimError
from .h5 import datasets

__all__ = ["LAYOUT", "BLOCK_BYTES", "DamagedRows", "create_row_dataset", "StripeWriter", "MANIFEST",
           "write_manifest", "verify_manifest", "row_checksums", "raw_offset", "read_row_runs"]

LAYOUT = "rows-contiguous-v1"
BLOCK_BYTES = 64 << 20
"""Working-set budget of a read besides its output (bytes)."""


class DamagedRows(MPISimError):
    """Rows of a calibration file that fail their checksum or cannot be read."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


# --- writing ---------------------------------------------------------------------------------------

def create_row_dataset(h, shape, dtype):
    """Create the contiguous ``/measurement/data`` (allocated now, never filled); returns its byte offset."""
    import h5py

    grp = h.require_group("measurement")
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    space = h5py.h5s.create_simple(tuple(int(s) for s in shape))
    dsid = h5py.h5d.create(grp.id, b"data", h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)
    off = dsid.get_offset()
    if off is None:
        raise MPISimError("HDF5 did not allocate the system-matrix dataset")
    return int(off)


class StripeWriter:
    """Writes voxel stripes of a (C, K', NE) row-major matrix at byte ``offset`` of the file ``path``.

    ``submit(block, a)``: block (C, K', w) complex covering frames a..a+w (in frame order); the
    block is handed to the I/O thread, which updates the row checksums and, for voxel frames
    (a < ``snr_frames``), the SNR sums Σ|block − ``mean_bg``|, then writes each row's piece. At most
    one block waits; ``free()`` gives back a buffer the thread is done with. ``close()`` waits for
    the thread and re-raises its error; ``abort()`` stops it without waiting for the queue.
    """

    def __init__(self, path, offset, shape, dtype, snr_frames, mean_bg=None):
        self.C, self.K, self.NE = shape
        self.dtype = np.dtype(dtype)
        self.offset, self.snr_frames = offset, snr_frames
        self.state = checksum.new_state((self.C * self.K,))
        self.abs_sum = np.zeros((self.C, self.K))
        self.mean_bg = (np.zeros((self.C, self.K), self.dtype) if mean_bg is None
                        else np.ascontiguousarray(np.broadcast_to(mean_bg, (self.C, self.K)), self.dtype))
        self.fd = os.open(path, os.O_WRONLY)
        self._q, self._done = queue.Queue(maxsize=1), queue.Queue()
        self._error = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="mpisim-sysmat-writer", daemon=True)
        self._thread.start()

    def submit(self, block, a):
        self._raise()
        self._q.put((block, a))

    def free(self, timeout=None):
        """A buffer the I/O thread has written (blocks until one is)."""

        while True:
            self._raise()
            interrupt.check()
            try:
                return self._done.get(timeout=0.2)
            except queue.Empty:
                if not self._thread.is_alive():
                    self._raise()
                    raise MPISimError("system-matrix writer stopped")

    def _raise(self):
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _run(self):
        try:
            while True:
                item = self._q.get()
                if item is None or self._stop:
                    return
                block, a = item
                self._write(block, a, B.numba_available())
                self._done.put(block)
        except BaseException as e:                      # surfaced in the main thread
            self._error = e if isinstance(e, MPISimError) else _io_error(e)

    def _write(self, block, a, numba):
        C, K, w = block.shape
        rows = np.ascontiguousarray(block).reshape(C * K, w)
        checksum.update(self.state, rows, parallel=False)   # this thread runs beside the build's parallel kernels
        nv = min(w, max(0, self.snr_frames - a))
        if nv:
            if numba:
                from ..cpu_kernels import abs_deviation_sum

                abs_deviation_sum(np.ascontiguousarray(block[:, :, :nv]), self.mean_bg, self.abs_sum)
            else:
                self.abs_sum += np.abs(block[:, :, :nv] - self.mean_bg[..., None]).sum(axis=-1)
        isz, NE, base = self.dtype.itemsize, self.NE, self.offset + a * self.dtype.itemsize
        fd = self.fd
        for r in range(C * K):
            if self._stop:
                return
            n = os.pwrite(fd, rows[r], base + r * NE * isz)
            if n != rows[r].nbytes:
                raise OSError(28, f"short write ({n} of {rows[r].nbytes} bytes)")

    def close(self):
        """Wait for every submitted block; returns (row checksums (C, K') uint64, SNR sums (C, K'))."""
        while True:                              # the thread may have stopped on an error, queue full
            try:
                self._q.put(None, timeout=0.2)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join()
        os.close(self.fd)
        self._raise()
        return checksum.digest(self.state).reshape(self.C, self.K), self.abs_sum

    def abort(self):
        self._stop = True
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=30)
        if not self._thread.is_alive():          # never close a descriptor a write may still use
            try:
                os.close(self.fd)
            except OSError:
                pass


def _io_error(e):
    if isinstance(e, OSError):
        if e.errno == 28:
            return MPISimError("disk full while writing the system matrix; nothing written")
        return MPISimError(f"cannot write the system matrix: {e.strerror or e}")
    return e


# --- manifest --------------------------------------------------------------------------------------

MANIFEST = "_mpisim/manifest"
_UNLISTED = ("measurement/data", MANIFEST)


def _dataset_digest(ds):
    v = ds[()]
    a = np.asarray(v)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.dtype.kind == "O":
        for x in a.ravel():
            h.update(x if isinstance(x, bytes) else str(x).encode())
    else:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def write_manifest(h):
    """sha256 of every dataset but the matrix itself (whose rows carry their own checksums)."""
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name not in _UNLISTED:
            out[name] = _dataset_digest(obj)
    h.visititems(visit)
    h.create_dataset(MANIFEST, data=json.dumps(out, sort_keys=True), dtype=h5py.string_dtype())


def verify_manifest(h):
    """None if every dataset matches the manifest (and none was added or removed), else a reason."""
    import h5py

    if MANIFEST not in h:
        return "no manifest"
    try:
        raw = h[MANIFEST][()]
        want = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except Exception:
        return "manifest unreadable"
    seen = [n for n in datasets(h) if n not in _UNLISTED]
    extra = sorted(set(seen) - set(want))
    missing = sorted(set(want) - set(seen))
    if extra or missing:
        return f"datasets {'added: ' + ', '.join(extra) if extra else ''}{' missing: ' + ', '.join(missing) if missing else ''}"
    for name in sorted(want):
        try:
            if _dataset_digest(h[name]) != want[name]:
                return f"/{name} does not match its checksum"
        except Exception:
            return f"/{name} cannot be read"
    return None


# --- reading ---------------------------------------------------------------------------------------

def row_checksums(h):
    """(C, K') uint64 row checksums of a file mpisim wrote, or None."""
    if "_mpisim/rowChecksum" not in h:
        return None
    return np.asarray(h["_mpisim/rowChecksum"][()], np.uint64)


def raw_offset(ds):
    """Byte offset of a contiguous, unfiltered, little-endian dataset (raw reads possible), else None."""
    if ds.chunks is not None or ds.compression is not None:
        return None
    try:
        off = ds.id.get_offset()
    except Exception:
        return None
    dt = ds.dtype
    if off is None or dt.byteorder == ">":
        return None
    if dt.names:                             # a compound must be exactly (r, i) of one little-endian float
        f = dt.fields
        if dt.names != ("r", "i") or f["r"][1] != 0 or f["i"][1] != dt.itemsize // 2 or f["r"][0] != f["i"][0] \
                or f["r"][0].kind != "f" or f["r"][0].byteorder == ">" or f["r"][0].itemsize * 2 != dt.itemsize:
            return None
    elif dt.kind != "c":
        return None
    return int(off)


def read_row_runs(path, ds, channel, positions, out, dtype):
    """Read rows ``(channel, positions[i])`` of a (J, C, K, NE) fast-frame-axis dataset (period 0)
    into ``out[i]`` (NE,) for each i: one pread per row when the dataset is contiguous, else
    hyperslabs of consecutive positions, aligned to the chunks and within ``BLOCK_BYTES``."""
    J, C, K, NE = ds.shape[:4]
    off = raw_offset(ds)
    isz = np.dtype(dtype).itemsize
    if off is not None and ds.dtype.itemsize == isz and ds.ndim == 4:
        fd = os.open(path, os.O_RDONLY)
        try:
            for i, k in enumerate(positions):
                pos = off + ((channel * K + int(k)) * NE) * isz
                view = memoryview(out[i]).cast("B")
                n = os.preadv(fd, [view], pos)
                if n != NE * isz:
                    raise DamagedRows(f"{path}: /measurement/data row (channel {channel}, bin position {int(k)}) "
                                      f"is truncated ({n} of {NE * isz} bytes)", path)
        finally:
            os.close(fd)
        return
    kc = ds.chunks[2] if ds.chunks is not None else 1
    per_row = NE * ds.dtype.itemsize
    band = max(kc, (BLOCK_BYTES // max(per_row, 1)) // kc * kc) if ds.chunks is None else kc
    i = 0
    while i < len(positions):
        k0 = int(positions[i]) // band * band
        k1 = min(K, k0 + band)
        j = i
        while j < len(positions) and int(positions[j]) < k1:
            j += 1
        try:
            blk = ds[0, channel, k0:k1]
        except Exception as e:
            raise DamagedRows(f"{path}: /measurement/data rows of channel {channel}, bin positions {k0}–{k1 - 1} "
                              f"cannot be read ({str(e).splitlines()[0][:80]})", path) from None
        out[i:j] = _as_complex(blk)[np.asarray(positions[i:j], int) - k0]
        i = j


def _as_complex(a):
    if a.dtype.names and {"r", "i"} <= set(a.dtype.names):
        return a["r"] + 1j * a["i"]
    if a.dtype.kind == "f" and a.shape[-1] == 2:
        return a[..., 0] + 1j * a[..., 1]
    return a
