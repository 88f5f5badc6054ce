"""Content-addressed cache of system matrices.

Location: ``--cache-dir``, else ``$MPISIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/mpisim``
(``~/.cache/mpisim``). An entry is ``sm-<key>.mdf`` where ``key`` hashes every parameter that
changes the result, including :data:`mpisim.PHYSICS_VERSION` and the file layout. Entries are
written atomically and made read-only; a process building an entry holds ``sm-<key>.lock``
(``flock``), so processes wanting the same entry at once build it once.

A hit costs no copy and no full read: ``--out`` becomes a hard link to the entry (a copy only
across file systems; an output built on another file system is registered as ``sm-<key>.ref``
instead of copied into the cache). :func:`verify` checks, without reading the matrix, that the
entry is complete, that its stored parameters hash to the key and describe its content (grid,
rows, frames), that every other dataset matches its sha256 manifest and that the file is not
truncated. The matrix rows are checked against their checksums when they are read
(:func:`mpisim.io.mdf.read_rows`): a damaged entry is deleted and rebuilt, never used.

:class:`CachedBuild` is the orchestration: serve an entry (linked to ``--out``) or build it once under
the lock, register an output built on another file system, rebuild an entry whose rows fail their
checksums.
"""

import contextlib
from dataclasses import dataclass
import errno
import hashlib
import json
import os
from pathlib import Path
import secrets
import shutil
from typing import Callable

import numpy as np

from . import interrupt
from .errors import MPISimError
from .io import calibration
from .io.h5 import open_h5
from .resources import NotEnoughMemory
from .io.atomic import atomic_path, check_free_space, check_output_path, committed, remove_stale_parts, stale_parts

try:
    import fcntl
except ImportError:                      # no flock on this platform: no cross-process lock
    fcntl = None

__all__ = ["CachedBuild", "cache_dir", "canonical", "clear", "ensure_dir", "entry_path", "file_digest", "find",
           "invalidate", "link_or_copy", "list_entries", "lock", "lock_path", "make_key", "read_only", "ref_path",
           "register", "remove", "same_device", "same_file", "verify"]


def cache_dir(override=None):
    """The cache folder (not created)."""
    if override:
        return Path(override)
    env = os.environ.get("MPISIM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mpisim"


def canonical(params):
    """The canonical JSON text of ``params`` that :func:`make_key` hashes (stored in each entry)."""
    return json.dumps(params, sort_keys=True, default=_default, separators=(",", ":"))


def make_key(params):
    """sha256 over a canonical JSON of ``params`` (dicts of plain values)."""
    return hashlib.sha256(canonical(params).encode()).hexdigest()


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


def writable(d):
    """Whether entries can be added to the cache folder ``d``."""
    return os.access(d, os.W_OK | os.X_OK)


def ensure_dir(override=None):
    """The cache folder, created if missing; a folder that exists but is read-only is returned too (its
    entries are served, nothing is added: :meth:`CachedBuild.fetch_or_build`)."""
    d = cache_dir(override)
    if d.is_dir() and not writable(d):
        return d
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MPISimError(f"cache folder {d} cannot be created: {e.strerror}") from None
    if writable(d):
        remove_stale_parts(d)               # partial builds of killed processes
    return d


def _remove_unheld_lock(p):
    if fcntl is None:
        return
    try:
        fd = os.open(p, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(OSError):
            os.unlink(p)
    except OSError:
        pass                             # a build holds it
    finally:
        os.close(fd)


def ref_path(key, override=None):
    """Registration of an entry that lives outside the cache (built on another file system)."""
    return cache_dir(override) / f"sm-{key[:32]}.ref"


def lock_path(key, override=None):
    return cache_dir(override) / f"sm-{key[:32]}.lock"


@contextlib.contextmanager
def lock(key, override=None, say=None):
    """Hold the build lock of ``key`` (blocking; says so when another process holds it)."""
    if fcntl is None:                    # no flock on this platform: no cross-process lock
        yield
        return
    p = lock_path(key, override)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if say:
                say(f"waiting for another mpisim process that is building this system matrix ({p.name})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                     # closing releases the lock


def verify(path, key):
    """Return None if the entry at ``path`` is intact and holds ``key``, else a one-line reason.

    Reads metadata only (well under a second for any size): the matrix rows carry their own
    checksums, checked when they are read."""
    try:
        with open_h5(path) as h:
            stored = h["_mpisim/cacheKey"][()]
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
            if stored != key:
                return "key mismatch"
            if int(h["_mpisim/complete"][()]) != 1:
                return "incomplete"
            why = calibration.verify_manifest(h)
            if why:
                return why
            raw = h["_mpisim/cacheParams"][()]
            params = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
            if make_key(params) != key:
                return "stored parameters do not hash to the key"
            ds = h["measurement/data"]
            shape = tuple(int(x) for x in params["grid"]["shape"])
            N = int(np.prod(shape))
            E = int(params["settings"]["background_frames"])
            if tuple(np.ravel(h["calibration/size"][()]).tolist()) != shape:
                return f"content is a {h['calibration/size'][()].tolist()} grid, the key says {list(shape)}"
            K = int(np.size(h["measurement/frequencySelection"][()]))
            if ds.shape[1:] != (int(h["acquisition/receiver/numChannels"][()]), K, N + E):
                return f"matrix shape {ds.shape} does not match the key's grid and bins"
            sums = h["_mpisim/rowChecksum"] if "_mpisim/rowChecksum" in h else None
            if ds.chunks is None:
                if sums is None or sums.shape != ds.shape[1:3]:
                    return "row checksums missing"
                off = calibration.raw_offset(ds)
                if off is None or off + ds.size * ds.dtype.itemsize > os.path.getsize(path):
                    return "truncated"
            elif not ds.fletcher32:
                return "no checksums"
    except NotEnoughMemory:  # not damage: the entry stays, the command says why it cannot go on
        raise
    except Exception as e:  # any HDF5/OS error means the entry is unusable
        return str(e).splitlines()[0][:120] or type(e).__name__
    return None


def find(key, override=None):
    """(path, None) of a verified entry of ``key`` (in the cache or registered), or (None, reason of
    the damaged one, already removed)."""
    why = None
    entry = entry_path(key, override)
    if entry.exists():
        why = verify(entry, key)
        if why is None:
            return entry, None
        remove(entry)
    ref = ref_path(key, override)
    if ref.exists():
        try:
            target = Path(ref.read_text().strip())
        except OSError:
            target = None
        if target is not None and target.exists() and verify(target, key) is None:
            return target, None
        remove(ref)
    return None, why


def register(key, path, override=None):
    """Record ``path`` (outside the cache) as the entry of ``key``."""
    ref = ref_path(key, override)
    tmp = ref.with_suffix(".ref.part")
    tmp.write_text(str(Path(path).resolve()) + "\n")
    os.replace(tmp, ref)


def remove(path):
    """Delete an entry (read-only files included)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def invalidate(path):
    """If ``path`` is a cache entry or a link to / registered copy of one (found through its stored key),
    remove it from the cache; returns True when it was."""
    try:
        with open_h5(path) as h:
            key = h["_mpisim/cacheKey"][()]
            key = key.decode() if isinstance(key, bytes) else str(key)
    except Exception:
        return False
    done = False
    for d in {str(cache_dir()), str(Path(path).resolve().parent)}:
        for p in (entry_path(key, d), ref_path(key, d)):
            try:
                same = p.exists() and (p.suffix == ".ref" and Path(p.read_text().strip()) == Path(path).resolve()
                                       or p.suffix == ".mdf" and os.path.samefile(p, path))
            except OSError:
                same = False
            if same:
                remove(p)
                done = True
    return done


def list_entries(override=None):
    """[(path, size in bytes, summary)] of cache entries."""

    d = cache_dir(override)
    out = []
    if not d.is_dir():
        return out
    for p in sorted(d.glob("sm-*.mdf")):
        try:
            with open_h5(p) as h:
                s = h["_mpisim/cacheSummary"][()]
                summary = s.decode() if isinstance(s, bytes) else str(s)
        except NotEnoughMemory:
            summary = "(cannot be checked now: not enough memory)"
        except Exception:
            summary = "(unreadable)"
        out.append((p, p.stat().st_size, summary))
    for p in sorted(d.glob("sm-*.ref")):
        try:
            target = Path(p.read_text().strip())
            out.append((p, target.stat().st_size, f"registered file {target}"))
        except OSError:
            out.append((p, 0, "(registered file missing)"))
    for p in sorted(d.glob("op-*.npz")):
        with contextlib.suppress(OSError):
            out.append((p, p.stat().st_size, "live reconstruction operator (mpisim live; computed again when missing)"))
    for p in sorted(stale_parts(d)):
        with contextlib.suppress(OSError):
            out.append((p, p.stat().st_size, "partial file of a killed process (removed by the next build or "
                                             "`mpisim cache clear`)"))
    return out


def clear(override=None):
    """Delete all cache entries and the partial files of killed processes (a build in progress keeps
    its own); returns how many files were removed."""
    d = cache_dir(override)
    n = 0
    if d.is_dir():
        for p in d.glob("sm-*.lock"):        # build locks: no content, not counted; a held one stays
            _remove_unheld_lock(p)
        for p in list(d.glob("sm-*.mdf")) + list(d.glob("sm-*.ref")) + list(d.glob("op-*.npz")) + stale_parts(d):
            try:
                p.unlink()
                n += 1
            except OSError as e:
                raise MPISimError(f"cannot remove {p}: {e.strerror}") from None
    return n


# --- serving and building entries ------------------------------------------------------------------

def same_device(folder, path):
    """True when ``path`` (its folder) is on the file system of ``folder``."""
    try:
        parent = os.path.dirname(os.path.abspath(path)) or "."
        return os.stat(folder).st_dev == os.stat(parent).st_dev
    except OSError:
        return False


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_only(path):
    with contextlib.suppress(OSError):
        os.chmod(path, 0o444)


def link_or_copy(src, dst, overwrite, nbytes):
    """Give ``dst`` the content of ``src``: a hard link (atomic rename of a linked temporary name), or a
    copy when the file systems differ or links are refused. Returns "linked to" or "copied from"."""
    p = check_output_path(dst, overwrite)
    folder = p.parent if str(p.parent) else "."
    tmp = os.path.join(folder, f".{p.name}.{secrets.token_hex(4)}.link")
    try:
        os.link(src, tmp)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES):
            raise MPISimError(f"{dst}: cannot write: {e.strerror}") from None
        check_free_space([(dst, nbytes)], "the copy of the system matrix")
        with atomic_path(dst, overwrite) as t:
            shutil.copyfile(src, t)
        return "copied from"
    try:
        interrupt.check()
        if p.exists() and not overwrite:
            raise MPISimError(f"{p}: output appeared while writing; not replaced")
        os.replace(tmp, p)
        committed(p)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return "linked to"


@dataclass
class CachedBuild:
    """The cache entry of ``key``, served or built: ``build(target, overwrite)`` writes the file at
    ``target``; ``out`` (optional) also gets it, as a hard link to the entry (a copy only across file
    systems); ``nbytes``: the file's size for the free-space checks; ``say``: one-line status messages."""

    key: str
    build: Callable
    cache_dir: object = None
    out: object = None
    overwrite: bool = False
    nbytes: int = 0
    say: Callable = print

    def fetch_or_build(self, rebuild_reason=None):
        """The path of the entry (or of ``out``): a verified entry, else one built now, under the build
        lock. An output on another file system is built there once and registered, not copied."""
        key, cache_dir, out, overwrite, nbytes, say = (self.key, self.cache_dir, self.out, self.overwrite, self.nbytes,
                                                       self.say)
        if not writable(entry_path(key, cache_dir).parent):   # cache_dir here: the folder given
            return self._read_only()
        with lock(key, cache_dir, say):
            found, why = (None, rebuild_reason) if rebuild_reason else find(key, cache_dir)
            if found is not None:
                return self._serve(found)
            if why:
                say(f"cache entry of this system matrix was damaged ({why}); rebuilding")
            entry = entry_path(key, cache_dir)
            remove(entry)
            target = entry
            if out is not None and not same_device(entry.parent, out):
                target = out                    # build once, on the output's file system, and register it
            check_free_space([(target, nbytes)], "the system matrix")
            self.build(target, True if target == entry else overwrite)
            if target == entry:
                read_only(entry)
                if out is not None:
                    link_or_copy(entry, out, overwrite, nbytes)
                return entry if out is None else out
            register(key, target, cache_dir)
            return target

    def _serve(self, found, note=""):
        """Serve the verified entry ``found``: said in one line (with ``note``), linked (or copied) to ``out``."""
        self.say(f"system matrix served from cache: {found}{note}")
        if self.out is not None and not same_file(found, self.out):
            how = link_or_copy(found, self.out, self.overwrite, self.nbytes)
            self.say(f"{self.out}: {how} {found}")
        return found if self.out is None else self.out

    def _read_only(self):
        """A read-only cache folder: its verified entry is served, with a note that nothing can be
        added; without one, a one-line error."""
        entry = entry_path(self.key, self.cache_dir)
        if not (entry.exists() and verify(entry, self.key) is None):
            raise MPISimError(f"cache folder {entry.parent} is read-only and holds no entry of this "
                              f"system matrix (use --cache-dir or --no-cache)")
        return self._serve(entry, " (the cache folder is read-only: nothing can be added to it)")

    def on_damage(self, err):
        """Rows failed their checksum when read: drop the entry (and the link to it), rebuild, read again
        (a read-only cache cannot rebuild: a one-line error, the entry and ``out`` left as they are)."""
        if not writable(entry_path(self.key, self.cache_dir).parent):
            raise MPISimError(f"{err}; the cache folder is read-only, so the entry cannot be rebuilt (use --cache-dir "
                              f"or --no-cache)")
        self.say(f"{err}; rebuilding the cache entry")
        remove(entry_path(self.key, self.cache_dir))
        remove(ref_path(self.key, self.cache_dir))
        if self.out is not None:
            remove(self.out)
        return self.fetch_or_build(rebuild_reason="rows failed their checksum")
