"""Reading MDF files (v2.1, v2.0 and the deviations of real files): measurements, calibrations and
their metadata, and a calibration's rows one by one.

Tolerated: MDF 2.0 names, transposed ``divider``, scalar strings, several ``gradient`` shapes, v1
complex layout, integer raw data, fast-frame axis, frame permutations, frequency selection. Every
file's numeric metadata pass :func:`mpisim.io.mdf_fields.check_metadata` first; every failure is a
one-line :class:`MPISimError` naming the file and the field (:func:`guarded`).
"""

from dataclasses import replace
import functools
import mmap

import numpy as np

from . import checksum
from .. import interrupt, tomlio
from ..backend import rfft
from ..errors import MPISimError
from ..measurement import Measurement
from ..metadata import CalibrationInfo, Provenance, StoredFrames, Truth
from ..particles import STATES, Tracer
from ..scanner import Scanner
from .calibration import BLOCK_BYTES, DamagedRows, read_row_runs, row_checksums
from .h5 import open_h5, read_blocks
from .mdf_fields import MAX_DATA, check_metadata

__all__ = ["DataLayout", "Reader", "format_info", "guarded", "populated_empty", "read_calibration", "read_header",
           "read_mdf", "read_rows", "read_truth"]


class Reader:
    """Field access with MDF-2.0 fallbacks and one-line errors naming file and field."""

    def __init__(self, h, path):
        self.h, self.path = h, path

    def has(self, name):
        return name in self.h

    def raw(self, name, *alts, required=True):
        for n in (name,) + alts:
            if n in self.h:
                obj = self.h[n]
                if not hasattr(obj, "shape"):
                    raise MPISimError(f"{self.path}: /{n} is a group, expected a dataset")
                if obj.shape is None:            # a null dataspace (how some writers store ""): as if absent
                    continue
                return read_blocks(obj, self.path, n, extra_bytes=obj.dtype.itemsize)   # read, then converted
        if required:
            raise MPISimError(f"{self.path}: missing mandatory field /{name}")
        return None

    def string(self, name, *alts, required=False, default=""):
        v = self.raw(name, *alts, required=required)
        if v is None:
            return default
        v = np.asarray(v)
        if v.ndim > 0:
            if v.size == 0:
                return default
            v = v.ravel()[0]
        v = v.item() if hasattr(v, "item") else v
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        return str(v)

    def number(self, name, *alts, required=True, default=None, kind=float):
        v = self.raw(name, *alts, required=required)
        if v is None:
            return default
        a = np.asarray(v)
        if a.dtype.kind not in "biuf" or a.size < 1:
            raise MPISimError(f"{self.path}: /{name} must be a number, got {a.dtype} {a.shape}")
        x = a.ravel()[0]
        if not np.isfinite(x):
            raise MPISimError(f"{self.path}: /{name} is not finite")
        return kind(x)

    def array(self, name, *alts, required=True, kinds="biuf"):
        v = self.raw(name, *alts, required=required)
        if v is None:
            return None
        a = np.asarray(v)
        if a.dtype.kind not in kinds and not a.dtype.names:
            raise MPISimError(f"{self.path}: /{name} has type {a.dtype}, expected numbers")
        return a

    def flag(self, name, *alts):
        v = self.raw(f"measurement/{name}", *[f"measurement/{a}" for a in alts], required=False)
        if v is None:
            return False
        a = np.asarray(v)
        if a.dtype.kind not in "biu" and not (a.dtype.kind == "f" and np.all(np.isfinite(a))):
            raise MPISimError(f"{self.path}: /measurement/{name} must be a 0/1 flag, got {a.dtype}")
        return bool(a.ravel()[0]) if a.size else False


def _to_complex(a, path, name):
    if a.dtype.names:
        if {"r", "i"} <= set(a.dtype.names):
            return a["r"] + 1j * a["i"]
        raise MPISimError(f"{path}: /{name} is a compound without r/i fields")
    if a.dtype.kind == "c":
        return a
    return None


def _gradient(r):
    g = r.array("acquisition/gradient", required=False)
    if g is None:
        return np.diag([np.nan] * 3)
    g = np.asarray(g, float)
    if g.size == 3:
        return np.diag(g.ravel())
    if g.size >= 9 and g.shape[-2:] == (3, 3):
        return g.reshape(-1, 3, 3)[0]
    if g.size >= 3 and g.shape[-1] == 3:
        return np.diag(g.reshape(-1, 3)[0])
    raise MPISimError(f"{r.path}: /acquisition/gradient has unsupported shape {g.shape}")


def _drive(r):
    D = r.number("acquisition/drivefield/numChannels", kind=int)
    base = r.number("acquisition/drivefield/baseFrequency")
    if base <= 0:
        raise MPISimError(f"{r.path}: /acquisition/drivefield/baseFrequency must be > 0, got {base}")
    div = np.asarray(r.array("acquisition/drivefield/divider"), float)
    if div.ndim == 2 and div.shape[0] != D and div.shape[1] == D:
        div = div.T                          # Bruker converter writes (F, D)
    div = div.reshape(-1)[:max(D, 1)] if div.ndim <= 1 else div[:, 0]
    if div.size != D or np.any(div <= 0) or not np.all(np.isfinite(div)):
        raise MPISimError(f"{r.path}: /acquisition/drivefield/divider does not hold {D} positive dividers")
    strength = _per_channel(r, "acquisition/drivefield/strength", D)
    phase = _per_channel(r, "acquisition/drivefield/phase", D)
    return base, div, strength, phase


def _per_channel(r, name, D):
    """First period/first frequency of a (J, D, F)-like field, tolerating (D,), (D, F), (F, D)."""
    s = r.array(name, required=False)
    if s is None:
        return np.zeros(D)
    s = np.asarray(s, float)
    if s.ndim == 3 and s.shape[1] == D:
        v = s[0, :, 0]
    elif s.ndim == 3 and s.shape[2] == D:
        v = s[0, 0, :]
    elif s.ndim == 2 and s.shape[0] == D:
        v = s[:, 0]
    elif s.ndim == 2 and s.shape[1] == D:
        v = s[0, :]
    elif s.ndim <= 1 and s.size >= D:
        v = s.reshape(-1)[:D]
    else:
        raise MPISimError(f"{r.path}: /{name} has shape {s.shape}, expected (J, {D}, F)")
    if not np.all(np.isfinite(v)):
        raise MPISimError(f"{r.path}: /{name} is not finite")
    return v


def guarded(fn):
    """Turn any low-level failure on a damaged file into a one-line :class:`MPISimError`."""

    @functools.wraps(fn)
    def wrapper(path, *a, **kw):
        try:
            return fn(path, *a, **kw)
        except MPISimError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError,
                OverflowError, MemoryError, UnicodeDecodeError) as e:
            msg = str(e).splitlines()[0][:100] if str(e) else ""
            raise MPISimError(f"{path}: damaged or unsupported MDF file ({type(e).__name__}"
                              f"{': ' + msg if msg else ''})") from None
    return wrapper


@guarded
def read_header(path):
    """Read the metadata of any MDF file into a dict (no bulk data)."""
    with open_h5(path) as h:
        return _header(Reader(h, path))


def _header(r):
    h = r.h
    info = {"path": str(r.path), "version": r.string("version", default="?")}
    groups = [g for g in ("study", "experiment", "scanner", "acquisition", "tracer", "measurement",
                          "calibration", "reconstruction") if g in h]
    info["groups"] = groups
    missing = [g for g in ("study", "experiment", "scanner", "acquisition") if g not in h]
    if missing:
        raise MPISimError(f"{r.path}: missing mandatory group(s) {', '.join('/' + g for g in missing)} "
                          f"(not an MDF file?)")
    check_metadata(r)
    info["is_simulation"] = bool(r.number("experiment/isSimulation", required=False, default=0))
    info["scanner"] = {k: r.string(f"scanner/{k}") for k in ("name", "manufacturer", "facility", "topology")}
    if "tracer" in h:
        info["tracer"] = {"name": r.string("tracer/name"), "solute": r.string("tracer/solute"),
                          "concentration": r.number("tracer/concentration", required=False)}
        stored = _stored_tracer(r)
        if stored is not None:
            info["tracer"].update(model=stored.model, state=stored.state)
    if "acquisition" in h:
        base, div, strength, phase = _drive(r)
        info["drive"] = {"base_frequency": base, "dividers": div, "frequencies": base / div,
                         "strengths": strength, "phases": phase}
        info["gradient"] = _gradient(r)
        info["bandwidth"] = r.number("acquisition/receiver/bandwidth")
        info["num_samples"] = r.number("acquisition/receiver/numSamplingPoints", kind=int)
        info["num_rx_channels"] = r.number("acquisition/receiver/numChannels", kind=int)
        for key, field, low in (("bandwidth", "receiver/bandwidth", 0), ("num_samples", "receiver/numSamplingPoints", 1),
                                ("num_rx_channels", "receiver/numChannels", 0)):
            if not info[key] > low:
                raise MPISimError(f"{r.path}: /acquisition/{field} must be > {low}, got {info[key]}")
        info["num_frames"] = r.number("acquisition/numFrames", required=False, kind=int)
        info["num_periods"] = r.number("acquisition/numPeriodsPerFrame", "acquisition/numPeriods",
                                       required=False, kind=int, default=1)
        info["num_averages"] = r.number("acquisition/numAverages", required=False, kind=int, default=1)
        info["has_transfer_function"] = "acquisition/receiver/transferFunction" in h
    if "measurement/data" in h:
        ds = h["measurement/data"]
        info["data_shape"] = tuple(ds.shape)
        info["data_dtype"] = str(ds.dtype)
        info["flags"] = {k: r.flag(k, *alt) for k, alt in (
            ("isFourierTransformed", ()), ("isFastFrameAxis", ("isTransposed",)),
            ("isFramePermutation", ()), ("isFrequencySelection", ()), ("isBackgroundCorrected", ()),
            ("isTransferFunctionCorrected", ()), ("isSpectralLeakageCorrected", ()),
            ("isSparsityTransformed", ()))}
        bg = r.array("measurement/isBackgroundFrame", required=False)
        info["num_background_frames"] = int(np.count_nonzero(bg)) if bg is not None else 0
        n_data = ds.shape[-1 - (ds.ndim == 5)] if info["flags"]["isFastFrameAxis"] else ds.shape[0]
        problems = []
        if info.get("num_frames") not in (None, n_data) and "calibration" not in h:
            problems.append(f"/acquisition/numFrames is {info['num_frames']} but /measurement/data holds {n_data} frames")
        if bg is not None and np.size(bg) != n_data:
            problems.append(f"/measurement/isBackgroundFrame has {np.size(bg)} entries for {n_data} frames")
        info["problems"] = problems
    if "calibration" in h:
        info["calibration"] = {"method": r.string("calibration/method"),
                               "size": r.array("calibration/size", required=False),
                               "fieldOfView": r.array("calibration/fieldOfView", required=False),
                               "fieldOfViewCenter": r.array("calibration/fieldOfViewCenter", required=False)}
    if "reconstruction/data" in h:
        info["reconstruction"] = {"shape": tuple(h["reconstruction/data"].shape),
                                  "size": r.array("reconstruction/size", required=False)}
    return info


class DataLayout:
    """How ``/measurement/data`` is stored: axis order, complex encoding, conversion to volts."""

    def __init__(self, r, info):
        h, path = r.h, r.path
        self.r, self.path = r, path
        ds = self.ds = h["measurement/data"]
        flags = info["flags"]
        self.fast = flags["isFastFrameAxis"]
        self.ft = flags["isFourierTransformed"]
        shape = ds.shape
        self.v1complex = ds.dtype.kind in "f" and ds.ndim == 5 and shape[-1] == 2
        if ds.ndim != (5 if self.v1complex else 4):
            raise MPISimError(f"{path}: /measurement/data must be 4-D, got shape {shape}")
        self.num_frames = shape[-1 - self.v1complex] if self.fast else shape[0]
        self.num_rx_channels = shape[1] if self.fast else shape[2]
        self.num_bins = shape[2] if self.fast else shape[3]
        self.fac = None
        if ds.dtype.kind in "iu" or (ds.dtype.kind == "f" and "acquisition/receiver/dataConversionFactor" in h):
            fac = r.array("acquisition/receiver/dataConversionFactor", required=False)
            self.fac = None if fac is None else np.asarray(fac, float)

    @property
    def row_itemsize(self):
        """Bytes of one complex value of a row as :func:`read_rows` returns it."""
        d = self.ds.dtype
        if self.ft:
            return d.itemsize * (2 if self.v1complex else 1)
        real = 8 if d.itemsize > 2 and not (d.kind == "f" and d.itemsize == 4 and self.fac is None) else 4
        return 2 * real

    def convert(self, a, channel_axis):
        """Stored values → complex (or float volts); ``channel_axis`` of ``a`` holds the receive channels."""
        path = self.path
        if self.v1complex:
            a = a[..., 0] + 1j * a[..., 1]
        c = _to_complex(a, path, "measurement/data")
        if c is not None:
            a = c
        if a.dtype.kind in "iu" or (a.dtype.kind == "f" and self.fac is not None):
            a = a.astype(np.float64 if a.dtype.itemsize > 2 or a.dtype.kind == "f" and a.dtype.itemsize == 8
                         else np.float32)
            fac = self.fac
            if fac is not None:
                C_ = self.num_rx_channels
                shape = [1] * a.ndim
                shape[channel_axis] = C_
                with np.errstate(over="ignore", invalid="ignore"):   # overflow → inf, refused by the reader
                    if fac.size == 2 * C_:
                        fac = fac.T if (fac.shape == (2, C_) and C_ != 2) else fac.reshape(C_, 2)
                        a = a * fac[:, 0].reshape(shape) + fac[:, 1].reshape(shape)
                    elif fac.size == 2:
                        a = a * fac.ravel()[0] + fac.ravel()[1]
                    else:
                        raise MPISimError(f"{path}: /acquisition/receiver/dataConversionFactor has shape "
                                          f"{fac.shape}, expected ({C_}, 2)")
        if a.dtype.kind not in "fc":
            raise MPISimError(f"{path}: /measurement/data has unsupported type {a.dtype}")
        return a

    def read_frames(self, frames=slice(None)):
        """Frames (stored order) → canonical (n, J, C, K|V) array, converted; read in blocks of frames with
        an interrupt check between blocks, after checking that memory can hold them."""
        ds = self.ds
        axis = ds.ndim - 1 - self.v1complex if self.fast else 0
        a = read_blocks(ds, self.path, "measurement/data", (slice(None),) * axis + (frames,), axis=axis,
                        extra_bytes=16, hint="read fewer frames (--frames)")     # as stored, then complex128
        if self.fast and self.v1complex:
            a = np.moveaxis(a, -2, 0)            # (J, C, K, n, 2) → (n, J, C, K, 2)
        elif self.fast:
            a = np.moveaxis(a, -1, 0)            # (J, C, K, n) → (n, J, C, K)
        return self.convert(a, 2)


def _open_data(h, path):
    """(reader, header, layout) of an open file that must hold /acquisition and /measurement/data."""
    r = Reader(h, path)
    info = _header(r)
    for g in ("acquisition", "measurement"):
        if g not in info["groups"]:
            raise MPISimError(f"{path}: missing mandatory group /{g}")
    if "measurement/data" not in h:
        raise MPISimError(f"{path}: no /measurement/data (metadata-only MDF file)")
    return r, info, DataLayout(r, info)


@guarded
def read_mdf(path, frames=None):
    """Read an MDF measurement or calibration file into a :class:`Measurement`.

    Data come back as (N, J, C, V) time samples in V, or (N, J, C, K) complex spectra when the
    file holds Fourier-transformed data; frames in stored order; ``is_background`` marks
    background frames; integer raw data are converted with ``dataConversionFactor``.
    ``frames``: increasing stored frame indices to read, the others staying on disk: the data and
    ``is_background`` then cover those frames only, ``stored.frames`` lists them (how
    :func:`mpisim.reco.reconstruct` reads a long measurement block by block).
    A calibration's rows are better read with :func:`read_rows` (only the rows in use).
    """
    with open_h5(path) as h:
        r, info, lay = _open_data(h, path)
        if frames is None:
            return _measurement(r, info, lay, lay.read_frames())
        idx = np.asarray(frames).ravel()
        if idx.size and idx.dtype.kind not in "iu":
            raise MPISimError(f"{path}: frames to read must be integer indices, got {idx.dtype}")
        idx = idx.astype(np.int64)
        N = lay.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= N or np.any(np.diff(idx) <= 0)):
            raise MPISimError(f"{path}: frames to read must be increasing indices within 0..{N - 1}")
        run = idx.size == 0 or int(idx[-1] - idx[0]) + 1 == idx.size
        a = lay.read_frames(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)) if run else \
            lay.read_frames(idx)
        return _measurement(r, info, lay, a, frames=idx)


@guarded
def read_calibration(path):
    """An MDF file's metadata as a :class:`Measurement` whose data are a zero-size stand-in, one per
    stored frame (``stored.rows_on_demand``): a calibration's matrix stays on disk and
    :func:`read_rows` reads the rows in use; a measurement's frames are read with ``read_mdf(path,
    frames=…)`` when they are used."""
    with open_h5(path) as h:
        r, info, lay = _open_data(h, path)
        return _measurement(r, info, lay, None)


def populated_empty(shape, dtype):
    """``np.empty`` whose pages the kernel maps in one go (``MAP_POPULATE``) for arrays above 64 MB:
    the rows are then copied by ``preadv`` without taking a page fault each inside the kernel, which is
    slow and erratic on virtual machines (``benchmarks/bench_real_size.py`` times the ``reco`` it serves)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    flag = getattr(mmap, "MAP_POPULATE", None)
    if nbytes < (64 << 20) or flag is None:
        return np.empty(shape, dtype)
    try:
        m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flag)
    except (OSError, ValueError):
        return np.empty(shape, dtype)
    return np.frombuffer(m, dtype).reshape(shape)


@guarded
def read_rows(path, channels, positions, bins=None):
    """Rows of a calibration file: receive ``channels`` (M,) × stored frequency ``positions`` (M,)
    (0-based along the file's frequency axis; rfft bins for time-domain files), period 0 → (M, N)
    complex over every stored frame, in stored frame order.

    Only those rows are read (:mod:`mpisim.io.calibration`), whatever the layout; each is checked
    for finite values, and against its stored checksum when the file has one (files mpisim writes).
    ``bins`` (the rfft bin of each stored position) only serves the error messages. Raises
    :class:`~mpisim.io.calibration.DamagedRows` naming the file and the row when a row cannot be
    read or fails its checksum.
    """
    channels = np.asarray(channels, np.int64).ravel()
    positions = np.asarray(positions, np.int64).ravel()
    M = channels.size
    with open_h5(path) as h:
        r, info, lay = _open_data(h, path)
        if M and (channels.min() < 0 or channels.max() >= lay.num_rx_channels):
            raise MPISimError(f"{path}: receive channel out of range 0..{lay.num_rx_channels - 1}")
        nb = lay.num_bins if lay.ft else lay.num_bins // 2 + 1
        if M and (positions.min() < 0 or positions.max() >= nb):
            raise MPISimError(f"{path}: frequency position out of range 0..{nb - 1}")

        def name(i):
            k = int(positions[i])
            b = k if bins is None else int(np.asarray(bins)[k])
            return f"row (channel {int(channels[i])}, frequency bin {b})"

        order = np.lexsort((positions, channels))
        ordered = bool(np.all(order == np.arange(M)))
        ch, pos = (channels, positions) if ordered else (channels[order], positions[order])
        finite = None
        if lay.ft and lay.fast and lay.fac is None:
            out, finite = _rows_by_runs(h, lay, ch, pos, lambda j: name(j if ordered else int(order[j])))
        else:                                     # slow frame axis or time data: frame blocks
            out = _rows_by_frames(lay, ch, pos)
        if finite is None:
            finite = np.isfinite(out).all(axis=1)
        if not ordered:
            inv = np.empty_like(order)
            inv[order] = np.arange(M)
            out, finite = out[inv], finite[inv]
        if not finite.all():
            raise DamagedRows(f"{path}: /measurement/data {name(int(np.flatnonzero(~finite)[0]))} contains NaN or "
                              f"Inf", path)
        return out


def _rows_by_runs(h, lay, ch, pos, row_name):
    """Rows (ch[i], pos[i]) (sorted by channel, then position) of a contiguous or chunked fast-frame-axis
    spectrum → (out (M, NE), which rows are finite, or None when no checksums were there to tell);
    each row is checked against its stored checksum. ``row_name(i)``: row i in error messages."""
    path, ds, NE, M = lay.path, lay.ds, lay.num_frames, ch.size
    cdtype = np.complex64 if (ds.dtype == np.complex64 or (ds.dtype.names and ds.dtype[0] == np.float32)
                              or (lay.v1complex and ds.dtype == np.float32)) else np.complex128
    out = populated_empty((M, NE), cdtype)
    sums = row_checksums(h)
    if sums is not None and sums.shape != (lay.num_rx_channels, lay.num_bins):
        sums = None
    starts = np.flatnonzero(np.r_[True, ch[1:] != ch[:-1]]) if M else np.array([], int)
    finite = None
    if sums is not None:
        finite = np.ones(M, bool)          # checked with the checksums, in one pass
    for s, e in zip(starts, np.r_[starts[1:], M]):
        interrupt.check()
        c = int(ch[s])
        read_row_runs(path, ds, c, pos[s:e], out[s:e], cdtype)
        if sums is not None:
            bad = np.flatnonzero(checksum.of_rows(out[s:e], finite[s:e]) != sums[c, pos[s:e]])
            if bad.size:
                raise DamagedRows(f"{path}: /measurement/data {row_name(s + int(bad[0]))} fails its checksum "
                                  f"(damaged file; {bad.size} of the rows read)", path)
    return out, finite


def _rows_by_frames(lay, ch, pos):
    """Rows (ch[i], pos[i]) of a slow-frame-axis or time-domain file, read frame block by frame block
    (within ``BLOCK_BYTES``) → (M, NE) complex."""
    path, ds, NE, M = lay.path, lay.ds, lay.num_frames, ch.size
    per_frame = max(1, ds.size // max(lay.num_frames, 1)) * max(ds.dtype.itemsize, 8) * (1 if lay.ft else 2)
    fb = max(1, BLOCK_BYTES // per_frame)
    out = None
    for f0 in range(0, NE, fb):
        interrupt.check()
        try:
            blk = lay.read_frames(slice(f0, min(NE, f0 + fb)))[:, 0]
        except MPISimError as e:
            raise DamagedRows(f"{e} (frames {f0}–{min(NE, f0 + fb) - 1})", path) from None
        if not lay.ft:
            blk = rfft(blk, axis=-1)
        if out is None:
            out = np.empty((M, NE), blk.dtype if blk.dtype.kind == "c" else np.complex128)
        out[:, f0:f0 + blk.shape[0]] = blk[:, ch, pos].T
    if out is None:
        out = np.empty((M, 0), np.complex64)
    return out

def _measurement(r, info, lay, a, frames=None, flags=None):
    """The :class:`Measurement` of a file; ``a``: all frames (canonical), the stored ``frames`` only
    when given, or None for metadata only (a calibration whose rows are read on demand). ``flags``: the
    stored frames' background flags when the caller has read them (a growing stream, whose
    ``lay.num_frames`` is the count it trusts; :mod:`mpisim.io.stream`)."""
    h, path = r.h, r.path
    ft, N, nchan = lay.ft, lay.num_frames, lay.num_rx_channels
    _check_data(path, lay, a, frames)
    bg = r.array("measurement/isBackgroundFrame", required=False) if flags is None else flags[:N]
    bg = np.zeros(N, bool) if bg is None else np.asarray(bg).astype(bool).ravel()
    if bg.size != N:
        raise MPISimError(f"{path}: /measurement/isBackgroundFrame has {bg.size} entries, data has {N} frames")
    stored_bg = bg
    if frames is not None:
        bg = bg[frames]
    V = info["num_samples"]
    K = V // 2 + 1
    fsel = _frequency_selection(r, info, lay)
    nf = info.get("num_frames")
    if flags is None and nf is not None and nf != N and not ("calibration" in h and nf == int((~stored_bg).sum())):
        raise MPISimError(f"{path}: /acquisition/numFrames is {nf} but /measurement/data holds {N} frames")
    tf = _transfer_function(r, K)
    scanner, tracer = _stored_scanner(r, info), _stored_tracer(r)
    stored = StoredFrames() if frames is None else StoredFrames(frames, stored_bg)
    if a is None:                       # rows read on demand: a zero-size stand-in keeps the shape
        J = lay.ds.shape[0] if lay.fast else lay.ds.shape[1]
        a = np.empty((N, J, nchan, 0), np.complex64 if ft else np.float32)
        stored = replace(stored, rows_on_demand=True, row_itemsize=lay.row_itemsize)
    return Measurement(
        data=a, is_background=bg, bandwidth=info["bandwidth"], num_samples=V,
        drive_frequencies=info["drive"]["frequencies"], drive_strengths=info["drive"]["strengths"],
        gradient=info["gradient"], frequency_domain=bool(ft), transfer_function=tf,
        frequency_selection=fsel, num_averages=info["num_averages"] or 1, scanner=scanner, tracer=tracer,
        stored=stored, **_metadata(r, info))


def _check_data(path, lay, a, frames):
    """The data read (``a``; None: none read) finite, below :data:`~mpisim.io.mdf_fields.MAX_DATA`,
    and complex when the file says they are spectra."""
    ft, v1complex = lay.ft, lay.v1complex
    if a is not None:
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            if frames is not None:                      # the stored frame, not the position in the block read
                bad[0] = frames[bad[0]]
            raise MPISimError(f"{path}: /measurement/data contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
        big = float(np.abs(a).max(initial=0))
        if big > MAX_DATA:
            raise MPISimError(f"{path}: /measurement/data holds a value of magnitude {big:.3g}, beyond any signal "
                              f"({MAX_DATA:g}; damaged file or wrong dataConversionFactor?)")
        if a.dtype.kind == "f" and ft and not v1complex:
            raise MPISimError(f"{path}: isFourierTransformed is set but /measurement/data is real")
    elif ft and not v1complex and lay.ds.dtype.kind == "f":
        raise MPISimError(f"{path}: isFourierTransformed is set but /measurement/data is real")


def _frequency_selection(r, info, lay):
    """0-based stored rfft bins (None: all), checked against the data's frequency and channel axes."""
    path, V = r.path, info["num_samples"]
    K = V // 2 + 1
    fsel = None
    if info["flags"]["isFrequencySelection"]:
        fs = r.array("measurement/frequencySelection")
        fsel = np.asarray(fs, np.int64).ravel() - 1
        if fsel.size and (fsel.min() < 0 or fsel.max() >= K):
            raise MPISimError(f"{path}: /measurement/frequencySelection indices outside 1..{K}")
    nbins, nchan = lay.num_bins, lay.num_rx_channels
    if lay.ft:
        expect = K if fsel is None else fsel.size
        if nbins != expect:
            raise MPISimError(f"{path}: /measurement/data has {nbins} frequency bins, expected {expect} "
                              f"(numSamplingPoints {V})")
    elif nbins != V:
        raise MPISimError(f"{path}: /measurement/data has {nbins} samples per period, numSamplingPoints is {V}")
    if nchan != info["num_rx_channels"]:
        raise MPISimError(f"{path}: /measurement/data has {nchan} channels, "
                          f"numChannels is {info['num_rx_channels']}")
    return fsel


def _transfer_function(r, K):
    """The stored (C, K) transfer function, or None (absent or of another shape)."""
    if "acquisition/receiver/transferFunction" not in r.h:
        return None
    tf = None
    t = r.array("acquisition/receiver/transferFunction", kinds="cf")
    t = _to_complex(t, r.path, "acquisition/receiver/transferFunction")
    if t is None:
        tt = np.asarray(r.raw("acquisition/receiver/transferFunction"), float)
        if tt.shape[-1] == 2:
            t = tt[..., 0] + 1j * tt[..., 1]
    if t is not None and t.ndim == 2 and t.shape[1] == K:
        tf = t
    return tf


def _stored_scanner(r, info=None):
    """The :class:`Scanner` of ``/_mpisim/scanner`` (None when absent or not valid), checked against
    the file's own ``/acquisition`` (``info``: its header) before any work: a file whose two scanner
    descriptions disagree is refused in one line naming the first difference."""
    settings_toml = r.string("_mpisim/scanner") if "_mpisim/scanner" in r.h else ""
    if settings_toml:
        try:
            sc = Scanner.from_toml(settings_toml, f"{r.path}:/_mpisim/scanner")
        except MPISimError:
            return None
        if info is not None:
            _check_embedded_scanner(r.path, sc, info)
        return sc
    return None


def _check_embedded_scanner(path, sc, info):
    """Refuse a ``/_mpisim/scanner`` that disagrees with ``/acquisition`` (drive channels, dividers,
    base frequency, receive channels, bandwidth, gradient)."""
    d = info["drive"]
    divs = np.array([c.divider for c in sc.drive_field.channels], float)
    checks = [("drive channels", len(divs), len(d["dividers"])),
              ("receive channels", sc.num_rx_channels, info["num_rx_channels"]),
              ("base frequency (Hz)", sc.drive_field.base_frequency, d["base_frequency"]),
              ("receive bandwidth (Hz)", sc.receiver.bandwidth, info["bandwidth"])]
    if len(divs) == len(d["dividers"]):
        checks.append(("drive dividers", divs, np.asarray(d["dividers"], float)))
    g = np.diag(info["gradient"])
    if np.all(np.isfinite(g)):
        checks.append(("gradient diagonal (T/m/µ0)", np.diag(sc.gradient), g))
    for what, embedded, stored in checks:
        if not np.allclose(embedded, stored, rtol=1e-6, atol=0):
            raise MPISimError(f"{path}: /_mpisim/scanner disagrees with /acquisition on the {what}: "
                              f"{np.round(embedded, 9).tolist()} against {np.round(stored, 9).tolist()} "
                              f"(the file contradicts itself; edited by another tool?)")


def _stored_tracer(r):
    """The :class:`Tracer` of ``/_mpisim/tracer`` (None when absent or not valid)."""
    if "_mpisim/tracer" in r.h:
        try:
            return Tracer.from_dict(tomlio.loads(r.string("_mpisim/tracer")))
        except (MPISimError, TypeError):
            return None
    return None


def _metadata(r, info):
    """The typed metadata of a file's :class:`Measurement`: provenance, tracer concentration, calibration,
    ground truth, stated settings and the drive's base frequency and phases."""
    h, path = r.h, r.path
    out = {"provenance": Provenance(str(path), info["is_simulation"], info,
                                    {k: v for k, v in info["scanner"].items()} | {"operator": ""}),
           "base_frequency": info["drive"]["base_frequency"], "drive_phases": info["drive"]["phases"]}
    if "tracer" in info and info["tracer"]["concentration"]:
        out["tracer_concentration"] = info["tracer"]["concentration"]
    if "calibration" in h:
        out["calibration"] = _calibration(r)
    if "_mpisim/phantom" in h:
        out["recorded_truth"] = Truth.from_record(read_truth(r))
    if "_mpisim/settings" in h:
        try:
            out["stated_settings"] = tomlio.loads(r.string("_mpisim/settings"), "simulation settings")
        except MPISimError:
            pass
    return out


_CALIBRATION_FIELDS = {"size": "size", "fieldOfView": "field_of_view", "fieldOfViewCenter": "center",
                       "deltaSampleSize": "delta_sample_size", "snr": "snr", "positions": "positions"}


def _calibration(r):
    out = {"method": r.string("calibration/method")}
    for k, name in _CALIBRATION_FIELDS.items():
        v = r.array(f"calibration/{k}", required=False)
        if v is not None:
            out[name] = np.asarray(v)
    out["order"] = r.string("calibration/order", default="xyz")
    return CalibrationInfo(**out)


def read_truth(r):
    """The ground truth in ``/_mpisim/phantom`` (the dict :func:`mpisim.io.mdf_write.write_truth` writes)."""
    g = "_mpisim/phantom/"
    out = {"name": r.string(g + "name"), "concentration": np.asarray(r.array(g + "concentration", kinds="iuf"), float),
           "size": np.asarray(r.raw(g + "shape")), "fieldOfView": np.asarray(r.raw(g + "fieldOfView")),
           "fieldOfViewCenter": np.asarray(r.raw(g + "fieldOfViewCenter"))}
    if g + "chambers" in r.h:
        try:
            out["chambers"] = tomlio.loads(r.string(g + "chambers"), "phantom chambers").get("chamber", [])
        except MPISimError:
            pass
    if g + "states" in r.h:
        states = {k: np.asarray(r.array(f"{g}states/{k}", kinds="iuf"), float) for k in STATES if f"{g}states/{k}" in r.h}
        if states and all(v.shape == out["concentration"].shape for v in states.values()):
            out["states"] = states
    return out


# --- info ------------------------------------------------------------------------------------------

def format_info(info):
    """Human-readable summary of :func:`read_header` output."""
    lines = [f"file:        {info['path']}", f"MDF version: {info['version']}",
             f"groups:      {', '.join(info['groups'])}",
             f"simulation:  {'yes' if info['is_simulation'] else 'no'}"]
    s = info["scanner"]
    lines.append(f"scanner:     {s['name'] or '?'} ({s['manufacturer'] or '?'}), topology {s['topology'] or '?'}")
    if "tracer" in info:
        t = info["tracer"]
        lines.append(f"tracer:      {t['name'] or '?'}, solute {t['solute'] or '?'}, "
                     f"concentration {format(t['concentration'], '.6g') if t['concentration'] is not None else '?'} mol/L"
                     + (f"; particle model {t['model']}, {t['state']}" if "model" in t else ""))
    if "drive" in info:
        d = info["drive"]
        fr = ", ".join(f"{f / 1e3:.3f} kHz" for f in d["frequencies"])
        st = ", ".join(f"{x * 1e3:.3g}" for x in d["strengths"]) + " mT"
        lines.append(f"sequence:    {len(d['dividers'])} drive channel(s): {fr}; strength {st}/µ0; "
                     f"base {d['base_frequency'] / 1e6:g} MHz, dividers {', '.join(str(int(x)) for x in d['dividers'])}")
        g = info["gradient"]
        lines.append(f"gradient:    diag({', '.join(f'{x:g}' for x in np.diag(g))}) T/m/µ0")
        lines.append(f"receiver:    {info['num_rx_channels']} channel(s), bandwidth {info['bandwidth'] / 1e6:g} MHz, "
                     f"{info['num_samples']} samples/period; frames {info['num_frames']}, "
                     f"periods/frame {info['num_periods']}, averages {info['num_averages']}"
                     f"{', transfer function stored' if info['has_transfer_function'] else ''}")
    if "data_shape" in info:
        lines.append(f"data:        /measurement/data {info['data_shape']} {info['data_dtype']}, "
                     f"{info['num_background_frames']} background frame(s)")
        on = [k for k, v in info["flags"].items() if v]
        lines.append(f"flags:       {', '.join(on) if on else 'none set'}")
        for p in info.get("problems", []):
            lines.append(f"PROBLEM:     {p}")
    if "calibration" in info:
        c = info["calibration"]
        size = "x".join(str(int(x)) for x in c["size"]) if c["size"] is not None else "?"
        fov = ("x".join(f"{x * 1e3:g}" for x in np.ravel(c["fieldOfView"])) + " mm") if c["fieldOfView"] is not None else "?"
        lines.append(f"calibration: method {c['method'] or '?'}, grid {size}, FOV {fov}")
    if "reconstruction" in info:
        rc = info["reconstruction"]
        lines.append(f"reconstruction: data {rc['shape']}, grid "
                     f"{'x'.join(str(int(x)) for x in rc['size']) if rc['size'] is not None else '?'}")
    return "\n".join(lines)
