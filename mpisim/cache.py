"""Content-addressed cache of system matrices.

Location: ``--cache-dir``, else ``$MPISIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/mpisim``
(``~/.cache/mpisim``). An entry is ``sm-<key>.mdf`` where ``key`` hashes every parameter that
changes the result, including :data:`mpisim.PHYSICS_VERSION`. Entries are written atomically;
on a hit the file's stored key, completeness flag and every HDF5 chunk checksum (fletcher32) are
verified, and a damaged entry is reported, deleted and rebuilt — never used.
"""

import hashlib
import json
import os
from pathlib import Path

from .errors import MPISimError


def cache_dir(override=None):
    """The cache folder (not created)."""
    if override:
        return Path(override)
    env = os.environ.get("MPISIM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mpisim"


def make_key(params):
    """sha256 over a canonical JSON of ``params`` (dicts of plain values)."""
    text = json.dumps(params, sort_keys=True, default=_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def file_digest(path):
    """sha256 of a file's bytes (for inputs such as a transfer-function file)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise MPISimError(f"{path}: cannot read: {e.strerror}") from None
    return h.hexdigest()


def entry_path(key, override=None):
    return cache_dir(override) / f"sm-{key[:32]}.mdf"


def ensure_dir(override=None):
    d = cache_dir(override)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MPISimError(f"cache folder {d} cannot be created: {e.strerror}") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise MPISimError(f"cache folder {d} is not writable (use --cache-dir or --no-cache)")
    return d


def verify(path, key):
    """Return None if the cache file is intact and holds ``key``, else a one-line reason."""
    import h5py

    try:
        with h5py.File(path, "r") as h:
            stored = h["_mpisim/cacheKey"][()]
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
            if stored != key:
                return "key mismatch"
            if int(h["_mpisim/complete"][()]) != 1:
                return "incomplete"
            ds = h["measurement/data"]
            if ds.chunks is None:
                ds[()]
            else:
                for sl in ds.iter_chunks():
                    ds[sl]
    except Exception as e:  # any HDF5/OS error means the entry is unusable
        return str(e).splitlines()[0][:120] or type(e).__name__
    return None


def list_entries(override=None):
    """[(path, size in bytes, summary)] of cache entries."""
    import h5py

    d = cache_dir(override)
    out = []
    if not d.is_dir():
        return out
    for p in sorted(d.glob("sm-*.mdf")):
        try:
            with h5py.File(p, "r") as h:
                s = h["_mpisim/cacheSummary"][()]
                summary = s.decode() if isinstance(s, bytes) else str(s)
        except Exception:
            summary = "(unreadable)"
        out.append((p, p.stat().st_size, summary))
    return out


def clear(override=None):
    """Delete all cache entries (and stale temporary files); returns how many files were removed."""
    d = cache_dir(override)
    n = 0
    if d.is_dir():
        for p in list(d.glob("sm-*.mdf")) + list(d.glob(".sm-*.part")):
            try:
                p.unlink()
                n += 1
            except OSError as e:
                raise MPISimError(f"cannot remove {p}: {e.strerror}") from None
    return n
