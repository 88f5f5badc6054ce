"""Opening HDF5 files that mpisim did not write, safely: the one place every reader goes through.

:func:`open_h5` opens a file read-only and, before anything is read from it, walks its structure once
(:func:`inspect`), in time linear in the number of objects, and refuses in one line naming the file
and the object:

- **links out of the file**: external links, soft links and user-defined links (MDF has none; a
  soft link can also make the walk circular);
- **data stored elsewhere**: external raw storage (a dataset whose bytes are another file, e.g.
  ``/etc/passwd``) and virtual datasets (a dataset that maps other files' data);
- **filters it cannot vouch for**: anything but deflate, shuffle, Fletcher-32, n-bit,
  scale-offset and LZF;
- **declared sizes the file does not back**: a dataset above :data:`BOMB_FLOOR` declaring more than
  :data:`MAX_RATIO` times the bytes it stores (a decompression bomb, or a dataset without data whose
  fill value would be read), the declared bytes of all datasets together above ``MAX_RATIO`` × the
  file's size + ``BOMB_FLOOR``, and chunks above :data:`MAX_CHUNK_BYTES` (a chunk is decompressed
  whole);
- **compressed chunks that could inflate beyond their place**: a filtered chunk storing more bytes than
  its data take uncompressed (a crafted stream: HDF5's deflate filter inflates a stream to its end,
  whatever the chunk's size), and a largest compressed chunk whose worst inflation
  (:data:`DEFLATE_MAX_RATIO` × its stored bytes) the available memory could not hold;
- **structure no MDF file has**: groups nested deeper than :data:`MAX_DEPTH` or more than
  :data:`MAX_OBJECTS` links.

Bulk data are then read in blocks of at most :data:`READ_BLOCK_BYTES` with an interrupt check
between blocks (:func:`read_blocks`), so Ctrl-C and SIGTERM stop even a slow, compressed read.
The limits are stated in docs/conventions.md ("Untrusted files").
"""

import contextlib
import os

import numpy as np

from .. import interrupt
from ..errors import MPISimError
from ..resources import check_memory
from .atomic import check_input_file

__all__ = ["ALLOWED_FILTERS", "BOMB_FLOOR", "INFLATION", "MAX_CHUNK_BYTES", "MAX_DEPTH", "MAX_OBJECTS", "MAX_RATIO",
           "READ_BLOCK_BYTES", "datasets", "inspect", "open_h5", "read_blocks"]

MAX_DEPTH = 16
"""Deepest group nesting accepted (MDF nests 3 levels: /acquisition/receiver/bandwidth)."""

MAX_OBJECTS = 10_000
"""Most links in one file (an MDF file has about a hundred)."""

MAX_RATIO = 100
"""Most declared bytes per stored byte of a dataset above :data:`BOMB_FLOOR` (deflate reaches about
1000 on zeros, ``tests/test_hostile_h5.py``; data with noise compress far less)."""

BOMB_FLOOR = 64 << 20
"""Declared bytes below which a dataset is not held to :data:`MAX_RATIO` (64 MiB: small fields,
and images that are mostly zeros, may compress further)."""

MAX_CHUNK_BYTES = 256 << 20
"""Largest chunk accepted (256 MiB): HDF5 decompresses a chunk whole to read any of it."""

READ_BLOCK_BYTES = 64 << 20
"""Bytes read from a dataset between two interrupt checks."""

DEFLATE_MAX_RATIO = 1032
"""Most bytes a deflate stream can inflate to per stored byte (the format's limit, about 1032:1)."""

INFLATION = {1: DEFLATE_MAX_RATIO, 32000: 150}
"""Worst inflation per stored byte of the filters that can grow their output beyond a chunk: deflate,
and LZF (88:1 on zeros, its best case; ``tests/test_hostile_h5.py`` checks both bounds); shuffle, n-bit
and scale-offset cannot."""

ALLOWED_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
"""HDF5 filters accepted, by filter id."""

_LINK_KIND = {1: "a soft link", 64: "an external link"}


def _unreadable(path, name, e):
    """The one-line error of an object HDF5 cannot read (a damaged file)."""
    return MPISimError(f"{path}: /{name} cannot be read ({str(e).splitlines()[0][:80]})")


def _refuse(path, why):
    raise MPISimError(f"{path}: refused: {why}")


def _declared_bytes(ds):
    return int(np.prod(ds.shape, dtype=object) if ds.shape else 1) * int(ds.dtype.itemsize)


def _check_dataset(path, name, ds):
    """One dataset's storage: no external raw data, not virtual, known filters, a bounded chunk, and a
    declared size its stored bytes can back. Returns its declared bytes."""
    import h5py

    try:
        dcpl = ds.id.get_create_plist()
        layout = dcpl.get_layout()
        external = dcpl.get_external_count()
        filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
        stored = int(ds.id.get_storage_size()) if layout != h5py.h5d.VIRTUAL else 0
    except Exception as e:                                           # damaged object header
        raise _unreadable(path, name, e) from None
    if layout == h5py.h5d.VIRTUAL:
        _refuse(path, f"/{name} is a virtual dataset (its data would come from other files)")
    if external:
        _refuse(path, f"/{name} keeps its data in external files (they could be any file on this machine)")
    unknown = [f for f in filters if f not in ALLOWED_FILTERS]
    if unknown:
        _refuse(path, f"/{name} uses HDF5 filter {unknown[0]}, not one of "
                      f"{', '.join(ALLOWED_FILTERS.values())}")
    declared = _declared_bytes(ds)
    if ds.chunks is not None:
        chunk = int(np.prod(ds.chunks, dtype=object)) * int(ds.dtype.itemsize)
        if chunk > MAX_CHUNK_BYTES:
            _refuse(path, f"/{name} has chunks of {chunk / 2**20:.0f} MiB (at most {MAX_CHUNK_BYTES >> 20} MiB)")
    if declared > BOMB_FLOOR and declared > MAX_RATIO * stored:
        _refuse(path, f"/{name} declares {_size(declared)} but the file stores {_size(stored)} of it "
                      f"(a decompression bomb or a dataset without data)")
    inflation = max((INFLATION.get(f, 1) for f in filters), default=1)
    if ds.chunks is not None and inflation > 1:                         # deflate or LZF
        _check_chunks(path, name, ds, chunk, inflation)
    return declared


def _check_chunks(path, name, ds, chunk, inflation):
    """Every stored chunk of a compressed dataset at most its uncompressed size (+1 % + 1 KiB: what
    deflate and a checksum add to data that do not compress), and the worst inflation of the largest
    one (``inflation`` × its stored bytes) within the available memory (a
    :class:`~mpisim.resources.NotEnoughMemory` refusal, not a verdict on the file)."""
    sizes = []
    try:
        if hasattr(ds.id, "chunk_iter"):
            ds.id.chunk_iter(lambda info: sizes.append(info.size))
        else:                                                   # older HDF5: one call per chunk
            sizes = [ds.id.get_chunk_info(i).size for i in range(ds.id.get_num_chunks())]
    except Exception as e:
        raise _unreadable(path, name, e) from None
    if not sizes:
        return
    largest = max(sizes)
    if largest > chunk * 1.01 + 1024:
        _refuse(path, f"/{name} has a compressed chunk of {_size(largest)} for {_size(chunk)} of data (a crafted "
                      f"stream that would inflate beyond its place)")
    check_memory(inflation * largest, f"{path}: /{name}: a compressed chunk of {_size(largest)}, inflated at worst "
                 f"{inflation}-fold,", hint="refused: it could be a decompression bomb")


def _size(n):
    for unit, s in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << s:
            return f"{n / (1 << s):.1f} {unit}"
    return f"{n} bytes"


def inspect(h, path):
    """Walk every object of the open file ``h`` once (depth-first, each object once however many hard
    links reach it) and refuse what the module docstring lists. Returns the names of its datasets."""
    import h5py

    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    names, seen, total = [], set(), 0
    count = 0
    stack = [("", h, 0)]
    while stack:
        prefix, group, depth = stack.pop()
        links = []
        try:
            group.id.links.iterate(lambda n, info: links.append((n, info.type)), info=True)
        except Exception as e:
            raise _unreadable(path, prefix, e) from None
        count += len(links)
        if count > MAX_OBJECTS:
            _refuse(path, f"more than {MAX_OBJECTS} objects (an MDF file has about a hundred)")
        for raw, kind in links:
            key = raw.decode("utf-8", "replace")
            name = f"{prefix}/{key}" if prefix else key
            if kind != h5py.h5l.TYPE_HARD:
                _refuse(path, f"/{name} is {_LINK_KIND.get(kind, 'a user-defined link')} (MDF files have no links)")
            try:
                obj = group[raw]
                oid = (h5py.h5o.get_info(obj.id).fileno, h5py.h5o.get_info(obj.id).addr)
            except Exception as e:
                raise _unreadable(path, name, e) from None
            if oid in seen:
                continue
            seen.add(oid)
            if isinstance(obj, h5py.Group):
                if depth + 1 > MAX_DEPTH:
                    _refuse(path, f"groups nested deeper than {MAX_DEPTH} levels (at /{name[:80]}…)")
                stack.append((name, obj, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                names.append(name)
                total += _check_dataset(path, name, obj)
        interrupt.check()
    if size is not None and total > MAX_RATIO * size + BOMB_FLOOR:
        _refuse(path, f"its datasets declare {_size(total)} in a file of {_size(size)}")
    return names


def datasets(h):
    """The dataset names of a file opened with :func:`open_h5` (from its one walk)."""
    names = getattr(h, "_mpisim_datasets", None)
    if names is None:
        names = inspect(h, h.filename)
    return names


def read_blocks(ds, path, name, sel=None, axis=0, extra_bytes=0, hint="is this the right file?"):
    """``ds[sel]`` (``sel``: a tuple of slices or increasing integer indices, None for all), read in
    blocks along ``axis`` of at most :data:`READ_BLOCK_BYTES` into one array, with
    :func:`mpisim.interrupt.check` between blocks; a read failure is a one-line error naming the
    dataset. A read above 64 MiB is first checked against the available memory
    (:func:`mpisim.resources.check_memory`), counting ``extra_bytes`` per element besides the element
    itself (what the caller converts it to); ``hint`` ends that refusal."""
    try:
        shape = ds.shape
        if not shape:                                           # scalar, or a null dataspace (None)
            return ds[()]
        if sel is None:
            sel = ()
        sel = tuple(sel) + tuple(slice(None) for _ in range(len(shape) - len(sel)))
        ax = sel[axis]
        if isinstance(ax, slice):
            idx = range(*ax.indices(shape[axis]))
        else:
            idx = np.asarray(ax)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
        n = len(idx)
        rest = [len(range(*s.indices(d))) if isinstance(s, slice) else np.size(s)
                for i, (s, d) in enumerate(zip(sel, shape)) if i != axis]
        per = max(1, int(np.prod(rest, dtype=object)) * ds.dtype.itemsize)
        need = n * per * (ds.dtype.itemsize + extra_bytes) // ds.dtype.itemsize
        if need > (64 << 20):
            check_memory(need, f"{path}: /{name} ({n} along axis {axis})", hint=hint)
        step = max(1, READ_BLOCK_BYTES // per)
        if n <= step:
            return ds[sel[:axis] + (_as_selection(idx),) + sel[axis + 1:]]
        out = None
        for a in range(0, n, step):
            interrupt.check()
            part = ds[sel[:axis] + (_as_selection(idx[a:a + step]),) + sel[axis + 1:]]
            if out is None:
                full = list(part.shape)
                full[axis] = n
                out = np.empty(full, part.dtype)
            out[(slice(None),) * axis + (slice(a, a + part.shape[axis]),)] = part
        return out
    except (MPISimError, interrupt.Interrupted):
        raise
    except Exception as e:                                         # HDF5 read errors on damaged files
        raise _unreadable(path, name, e) from None


def _as_selection(idx):
    """A range as a slice (h5py reads it as one hyperslab), indices as a list."""
    if isinstance(idx, range):
        return slice(idx.start, idx.stop, idx.step) if len(idx) else slice(0, 0)
    return np.asarray(idx)


def _open_read(h5py, p):
    """h5py's read-only File; a file that a writer holds open in single-writer/multiple-reader mode (a stream
    being recorded, :mod:`mpisim.io.stream`) is opened as one of its readers."""
    try:
        return h5py.File(p, "r")
    except OSError as e:
        if "already open for write" not in str(e):
            raise
        return h5py.File(p, "r", swmr=True)


@contextlib.contextmanager
def open_h5(path):
    """Open an HDF5 file read-only and :func:`inspect` it: missing, unreadable, non-HDF5 and hostile
    files give one-line errors before any data are read."""
    import h5py

    p = check_input_file(path)
    try:
        f = _open_read(h5py, p)
    except OSError as e:
        msg = str(e)
        if "signature" in msg or "file signature" in msg:
            why = "not an HDF5 file"
        elif "truncated" in msg or "eof" in msg.lower():
            why = "truncated HDF5 file"
        else:
            why = f"cannot open as HDF5 ({msg.splitlines()[0][:120]})"
        raise MPISimError(f"{p}: {why}") from None
    try:
        f._mpisim_datasets = inspect(f, p)
        yield f
    finally:
        f.close()
