"""A measurement recorded while it is read: an MDF file that grows frame block by frame block.

A scanner writes its frames as it acquires them; a live reconstruction follows the file. HDF5's
single-writer/multiple-reader mode (SWMR) makes this safe: the writer (:class:`StreamWriter`) creates every
group and dataset first, with ``/measurement/data`` and ``/measurement/isBackgroundFrame`` extensible along
the frame axis, switches to SWMR and then only appends; readers (:class:`StreamFrames`, and every mpisim
command through :func:`mpisim.io.h5.open_h5`) see a valid MDF v2.1 file at every moment, holding the frames
written so far. The order of a write keeps a reader's view whole: the frames and their flags first, then
``/acquisition/numFrames`` (the count a reader trusts), each flushed.

The stream's own bookkeeping lives in ``/_mpisim/stream``: ``written`` (s since the epoch at which each frame
was written: what a live reconstruction's latency is measured from), ``frameTime`` (s, the acquisition time of a
frame: its periods × averages, at the sampling rate) and ``complete`` (0 while the writer runs, 1 when it closed normally; a stream
stopped by Ctrl-C keeps its frames and stays 0).

A stream is created under a temporary name and renamed into place once its metadata are written and SWMR is
on; from then on, unlike every other output of mpisim, it is written in place: being read while it is written is
its purpose.
"""

import contextlib
import os
import tempfile
import time

import numpy as np

from ..errors import MPISimError
from ..frames import MeasurementFrames
from .atomic import check_output_path
from .h5 import open_h5
from ..measurement import Measurement
from ..metadata import StoredFrames
from .mdf_read import _check_data, _measurement, _open_data
from .mdf_write import write_acquisition, write_extension, write_flags, write_header, write_tracer, write_truth

__all__ = ["StreamWriter", "StreamFrames", "ReplayFrames", "STREAM", "frame_time", "wait_for"]

STREAM = "_mpisim/stream"
"""Group of a stream's bookkeeping (module docstring)."""


def frame_time(meas):
    """Acquisition time of one frame (s): its periods of ``num_samples`` samples at the sampling rate, times the
    acquisitions averaged into it."""
    return float(meas.num_samples / meas.sampling_rate * meas.data.shape[1] * max(meas.num_averages, 1))


class StreamWriter:
    """Write a time-domain measurement frame block by frame block, readable at every moment (SWMR).

    ``meas``: a :class:`~mpisim.measurement.Measurement` giving the metadata (its data only the shape of one
    frame's other axes: (any, J, C, V)); ``extension``: further ``/_mpisim`` datasets (e.g. a series' truth per
    frame). :meth:`append` adds frames, :meth:`close` marks the stream complete. A context manager: an
    exception or Ctrl-C closes the file with the frames written so far and ``complete`` 0 (a file without a
    single frame is removed)."""

    def __init__(self, path, meas, *, overwrite=False, name="mpisim stream", extension=None):
        import h5py             # loaded when a stream is written

        if meas.frequency_domain:
            raise MPISimError("a stream holds time-domain frames, as a scanner records them")
        self.path = str(check_output_path(path, overwrite))
        sc = meas.scanner
        self.frame_time = frame_time(meas)
        folder, base = os.path.split(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".stream", dir=folder)
        os.close(fd)
        os.remove(tmp)
        self.h = h = h5py.File(tmp, "x", libver="latest")
        try:
            meta = ({"facility": sc.facility, "manufacturer": sc.manufacturer, "name": sc.name, "operator": "mpisim",
                     "topology": sc.topology} if sc is not None else {"topology": "FFP"})
            write_header(h, name=name, description="a stream written by mpisim while it is read", scanner_meta=meta,
                         is_simulation=True if meas.provenance.is_simulation is None else bool(meas.provenance.is_simulation))
            ph = meas.phantom
            write_tracer(h, meas.tracer, float(ph.concentration.max()) if ph is not None else 0.0,
                         float((ph.concentration > 0).sum() * ph.grid.voxel_volume / 1e-3) if ph is not None else 0.0)
            write_acquisition(h, meas, 0, meas.num_averages)
            J, C, V = meas.data.shape[1], meas.num_rx_channels, meas.num_samples
            self.data = h.create_dataset("measurement/data", shape=(0, J, C, V), maxshape=(None, J, C, V),
                                         chunks=(1, J, C, V), dtype=meas.data.dtype)
            write_flags(h)
            self.bg = h.create_dataset("measurement/isBackgroundFrame", shape=(0,), maxshape=(None,), dtype=np.int8,
                                       chunks=(4096,))
            write_extension(h, sc, meas.tracer, meas.settings, ph)
            if ph is None and getattr(meas, "truth", None) is not None and meas.truth.concentration is not None:
                write_truth(h, meas.truth.to_record())          # a replayed recording's truth
            for k, v in (extension or {}).items():
                h[f"_mpisim/{k}"] = v
            self.written = h.create_dataset(f"{STREAM}/written", shape=(0,), maxshape=(None,), dtype=np.float64,
                                            chunks=(4096,))
            h[f"{STREAM}/frameTime"] = self.frame_time
            self.complete = h.create_dataset(f"{STREAM}/complete", data=np.int8(0))
            self.count = h["acquisition/numFrames"]
            h.swmr_mode = True
            os.replace(tmp, self.path)          # readers see the stream only once it is whole and in SWMR mode
        except BaseException:
            h.close()
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        self.num_frames = 0

    def append(self, frames, is_background):
        """Append frames (n, J, C, V) with their background flags (n,) bool; readers see them on return. Each frame's
        time stamp (``/_mpisim/stream/written``, s since the epoch: where a live session's latency starts) is taken
        once its data are in the file, flushed, just before the count that makes them visible."""
        frames = np.asarray(frames)
        n0, n = self.num_frames, self.num_frames + frames.shape[0]
        for ds in (self.data, self.bg, self.written):
            ds.resize(n, axis=0)
        self.data[n0:n] = frames
        self.bg[n0:n] = np.asarray(is_background, np.int8)
        for ds in (self.data, self.bg):
            ds.flush()
        self.written[n0:n] = time.time()
        self.written.flush()
        self.count[()] = np.int64(n)            # last: the count a reader trusts
        self.count.flush()
        self.num_frames = n

    def close(self, complete=True):
        """Close the file; ``complete``: the stream ended as planned (``/_mpisim/stream/complete`` = 1)."""
        if self.h is None:
            return
        try:
            if complete:
                self.complete[()] = np.int8(1)
                self.complete.flush()
        finally:
            self.h.close()
            self.h = None
            if self.num_frames == 0:
                os.remove(self.path)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.close(complete=kind is None)


class StreamFrames(MeasurementFrames):
    """The frames of an MDF file that may still be growing (a stream, or any finished file), the file held
    open: :meth:`refresh` looks for new frames (cheaply: a few small reads), :meth:`read` reads stored frames.
    ``head``: the metadata as of the last refresh (its data a zero-size stand-in, one per frame).

    A file that is replaced (another file under the same name) or that shrinks while it is followed is refused
    with a one-line error; so are frames that cannot be read whole. A file locked by its writer (a stream being
    created) is waited for, at most ``wait`` s."""

    def __init__(self, path, wait=5.0):
        self.path = str(path)
        end = time.monotonic() + wait
        while True:                     # a stream being created is locked until its writer switches to SWMR
            self._cm = open_h5(self.path)
            try:
                self.h = self._cm.__enter__()
                break
            except MPISimError as e:
                if "lock" not in str(e) or time.monotonic() > end:
                    raise
                time.sleep(0.02)
        try:
            self.r, self.info, self.lay = _open_data(self.h, self.path)
            if self.lay.fast or self.lay.ft:
                raise MPISimError(f"{self.path}: a followed measurement must hold time-domain frames with the frame "
                                  f"axis first, as a scanner records them")
            self._inode = os.stat(self.path).st_ino
            self._flags = self.h["measurement/isBackgroundFrame"] if "measurement/isBackgroundFrame" in self.h else None
            self._count = self.h["acquisition/numFrames"] if "acquisition/numFrames" in self.h else None
            self._written = self.h[f"{STREAM}/written"] if f"{STREAM}/written" in self.h else None
            self._complete = self.h[f"{STREAM}/complete"] if f"{STREAM}/complete" in self.h else None
            stated = float(self.h[f"{STREAM}/frameTime"][()]) if f"{STREAM}/frameTime" in self.h else None
            self.available = 0
            self.bg = np.zeros(0, bool)
            # a stream's metadata do not change: read once, each refresh's head only counts more frames
            self._meta = _measurement(self.r, self.info, _Counted(self.lay, 0), None, flags=np.zeros(0, bool))
            self.head = self._meta
            self.refresh()
            self.frame_time = stated if stated is not None else frame_time(self.head)
        except BaseException:
            self.close()
            raise

    @property
    def streaming(self):
        """Whether the file is a stream (written by :class:`StreamWriter`)."""
        return self._complete is not None

    @property
    def complete(self):
        """No more frames will come: a stream marked complete, or a file that is not a stream."""
        if self._complete is None:
            return True
        self._complete.refresh()
        return bool(self._complete[()])

    def refresh(self):
        """Look for new frames → how many frames the file holds now (whole frames only)."""
        try:
            if os.stat(self.path).st_ino != self._inode:
                raise MPISimError(f"{self.path}: the file was replaced while it was followed")
        except FileNotFoundError:
            raise MPISimError(f"{self.path}: the file was removed while it was followed") from None
        for ds in (self._count, self.lay.ds, self._flags, self._written):
            if ds is not None and hasattr(ds, "refresh"):
                ds.refresh()
        n = int(self._count[()]) if self._count is not None else self.lay.ds.shape[0]
        n = min(n, self.lay.ds.shape[0], self._flags.shape[0] if self._flags is not None else n)
        if n < self.available:
            raise MPISimError(f"{self.path}: the file shrank from {self.available} to {n} frames while it was followed")
        if n > self.available:
            new = np.asarray(self._flags[self.available:n]).astype(bool) if self._flags is not None else \
                np.zeros(n - self.available, bool)
            flags = np.concatenate([self.bg[:self.available], new])          # only the new frames' flags are read
            self.bg = flags
            self.available = n
            stand_in = self._meta.data
            self.head = Measurement(**{**self._meta.__dict__, "is_background": flags,
                                       "data": np.empty((n, *stand_in.shape[1:]), stand_in.dtype)})
        return self.available

    @property
    def num_frames(self):
        return self.available

    def written_at(self, frame):
        """When the stream wrote a stored frame (s since the epoch), or None (not a stream)."""
        if self._written is None or frame >= self._written.shape[0]:
            return None
        return float(self._written[frame])

    def read(self, idx):
        """A Measurement holding the stored frames ``idx`` (increasing, all already available)."""
        idx = np.asarray(idx, np.int64).ravel()
        if idx.size and (idx[0] < 0 or idx[-1] >= self.available or np.any(np.diff(idx) <= 0)):
            raise MPISimError(f"{self.path}: frames to read must be increasing indices within 0..{self.available - 1}")
        a = self.lay.read_frames(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0))
        a = a[idx - idx[0]] if idx.size and idx.size != idx[-1] - idx[0] + 1 else a
        _check_data(self.path, self.lay, a, idx)
        bg = self.bg[:self.available]
        return Measurement(**{**self.head.__dict__, "data": a, "is_background": bg[idx],
                              "stored": StoredFrames(idx, bg)})

    def close(self):
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Counted:
    """A :class:`~mpisim.io.mdf_read.DataLayout` seen with ``n`` frames (those a growing file's count states)."""

    def __init__(self, lay, n):
        self._lay, self.num_frames = lay, n

    def __getattr__(self, name):
        return getattr(self._lay, name)


def wait_for(path, timeout, poll=0.05):
    """Wait until ``path`` exists (a stream about to be started), at most ``timeout`` s."""
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise MPISimError(f"{path}: no such file (waited {timeout:g} s for a stream to start)")
        time.sleep(poll)



SERIES_MAX = 10_000_000
"""Most entries of a recorded series dataset a replay copies (a frame-by-frame truth: one per frame)."""


class ReplayFrames:
    """The frames of a recorded measurement file as a frame source for :func:`mpisim.forward.stream_frames`
    (``mpisim simulate --replay``): a recording played back at the pace it was acquired, as a scanner would
    deliver it. The file's ``/_mpisim/series`` (a simulated series' truth per frame) travels with it."""

    def __init__(self, path):
        self.src = StreamFrames(path, wait=0.0)
        self.head = self.src.head
        if not self.src.complete:
            self.src.close()
            raise MPISimError(f"{path}: a stream still being written cannot be replayed; wait for it to complete")
        self.num_frames = self.src.available
        self.dtype = self.src.lay.ds.dtype if self.src.lay.ds.dtype.kind == "f" else np.float64
        self.extension = {}
        g = self.src.h.get("_mpisim/series")
        if g is not None and hasattr(g, "keys"):
            for k in g.keys():
                ds = g[k]
                if getattr(ds, "ndim", None) == 1 and ds.dtype.kind in "iuf" and ds.shape[0] <= SERIES_MAX:
                    self.extension[f"series/{k}"] = np.asarray(ds[()], float)

    def frames(self, a, b):
        return self.src.read(np.arange(a, b)).data

    def measurement(self, stand_in):
        return Measurement(**{**self.head.__dict__, "data": stand_in})

    def close(self):
        self.src.close()
