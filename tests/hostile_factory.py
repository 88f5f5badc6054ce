"""Hostile HDF5 constructions (issue 22): each takes a valid MDF file written by mpisim and makes a copy
whose bulk dataset (``/measurement/data`` or ``/reconstruction/data``) is replaced by one hostile
construction. The files are small (at most a few MB) whatever they declare.

- ``external``: the dataset's bytes are declared to live in another file (``secret``), HDF5 external
  raw storage;
- ``virtual``: a virtual dataset mapping a dataset of another HDF5 file;
- ``external-link``, ``soft-link``: the dataset's name is a link (to another file / elsewhere in it);
- ``declared-frames``: 10⁷ frames declared, nothing stored (fill values);
- ``field-bomb``: a metadata field (``/acquisition/gradient``) declared 3×10⁸ elements, nothing stored;
- ``gzip-bomb``: about 2 GB of zeros in compressed chunks of about 2 MB of file;
- ``chunk-bomb``: a small compressed dataset one of whose chunks is a crafted stream inflating to
  256 MiB (HDF5's deflate filter inflates a stream to its end, whatever the chunk's size);
- ``deep``: 2,000 nested groups;
- ``many``: 11,000 empty groups side by side.
"""

import shutil
import zlib

import h5py
import numpy as np

KINDS = ("external", "virtual", "external-link", "soft-link", "declared-frames", "field-bomb", "gzip-bomb",
         "chunk-bomb", "deep", "many")

REFUSAL = {"external": "keeps its data in external files", "virtual": "is a virtual dataset",
           "external-link": "is an external link", "soft-link": "is a soft link",
           "declared-frames": "but the file stores 0 bytes", "field-bomb": "/acquisition/gradient declares",
           "gzip-bomb": "a decompression bomb", "chunk-bomb": "a crafted stream", "deep": "nested deeper than",
           "many": "more than 10000 objects"}
"""What the one-line refusal of each construction says."""

SECRET_MARKER = b"MPISIM-SECRET-BYTES-"


def make_secret(path, nbytes=1 << 20):
    """A file that no output may ever contain a byte run of: the marker repeated."""
    reps = nbytes // len(SECRET_MARKER) + 1
    path.write_bytes((SECRET_MARKER * reps)[:nbytes])
    return path


def bulk_name(h):
    return "reconstruction/data" if "reconstruction/data" in h else "measurement/data"


def make(kind, src, dst, secret):
    """Copy ``src`` to ``dst`` and apply the construction ``kind``; returns ``dst``."""
    shutil.copyfile(src, dst)
    dst.chmod(0o644)
    with h5py.File(dst, "r+") as h:
        name = bulk_name(h)
        ds = h[name]
        shape, dtype = ds.shape, ds.dtype
        if kind == "external":
            nbytes = int(np.prod(shape)) * dtype.itemsize
            make_secret(secret, max(nbytes, 1 << 16))
            del h[name]
            h.create_dataset(name, shape, dtype, external=[(str(secret), 0, nbytes)])
        elif kind == "virtual":
            other = dst.with_name(dst.stem + "-source.h5")
            with h5py.File(other, "w") as o:
                o["x"] = ds[()]
            layout = h5py.VirtualLayout(shape, dtype)
            layout[...] = h5py.VirtualSource(str(other), "x", shape=shape)
            del h[name]
            h.create_virtual_dataset(name, layout)
        elif kind == "external-link":
            other = dst.with_name(dst.stem + "-target.h5")
            with h5py.File(other, "w") as o:
                o["x"] = ds[()]
            del h[name]
            h[name] = h5py.ExternalLink(str(other), "/x")
        elif kind == "soft-link":
            h["hidden/data"] = ds[()]
            del h[name]
            h[name] = h5py.SoftLink("/hidden/data")
        elif kind == "declared-frames":
            del h[name]
            h.create_dataset(name, (10 ** 7,) + shape[1:], dtype, chunks=(1,) + shape[1:])
        elif kind == "field-bomb":
            g = "acquisition/gradient"
            if g in h:
                del h[g]
            h.create_dataset(g, (3 * 10 ** 8,), np.float64, chunks=(1 << 16,))
        elif kind == "gzip-bomb":
            per = int(np.prod(shape[1:])) * dtype.itemsize
            fchunk = max(1, (32 << 20) // per)              # ~32 MiB chunks, zeros, compressed once
            nchunks = max(1, (2 << 30) // (fchunk * per))
            del h[name]
            d = h.create_dataset(name, (fchunk * nchunks,) + shape[1:], dtype, chunks=(fchunk,) + shape[1:],
                                 compression="gzip")
            blob = zlib.compress(bytes(fchunk * per), 9)
            for i in range(nchunks):
                d.id.write_direct_chunk((i * fchunk,) + (0,) * (len(shape) - 1), blob)
        elif kind == "chunk-bomb":
            del h[name]
            d = h.create_dataset(name, shape, dtype, chunks=True, compression="gzip")
            d[...] = 0
            blob = zlib.compress(bytes(256 << 20), 9)            # ~250 KB stored, 256 MiB when inflated
            d.id.write_direct_chunk((0,) * len(shape), blob)
        elif kind == "deep":
            g = h.create_group("_deep")
            for _ in range(2000):
                g = g.create_group("a")
        elif kind == "many":
            g = h.create_group("_many")
            for i in range(11000):
                g.create_group(str(i))
        else:
            raise ValueError(kind)
    return dst
