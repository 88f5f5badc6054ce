"""Atomic output: write to a temporary name in the target folder, rename on success.

No half-written output is ever left behind: on any exception (including Ctrl-C) the temporary
file is removed and an existing file at the target path is untouched.
"""

import contextlib
import os
import stat
from pathlib import Path
import shutil
import socket
import tempfile
import time

from .. import interrupt
from ..errors import MPISimError

__all__ = ["check_output_path", "atomic_path", "STALE_MIN_SECONDS", "STALE_LEGACY_SECONDS", "stale_parts",
           "remove_stale_parts", "record_outputs", "committed", "remove_outputs", "free_bytes",
           "check_input_file", "record_inputs",
           "check_free_space", "user_mode"]


def check_input_file(path):
    """``path`` as a :class:`Path` if it is a regular file (a link to one included); a missing file, a folder, a
    FIFO, a device or a socket gives one line before anything is read (a FIFO would block the reader, a device
    read without end). Within :func:`record_inputs` the file is remembered as an input of the command."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise MPISimError(f"{p}: file not found") from None
    except OSError as e:
        raise MPISimError(f"{p}: cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket"
                if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise MPISimError(f"{p}: is {kind}, not a regular file")
    if _INPUTS is not None:
        _INPUTS[(st.st_dev, st.st_ino)] = p
    return p


_INPUTS = None
NAME_MAX = 255
"""Bytes in one file name that the usual file systems hold."""


@contextlib.contextmanager
def record_inputs():
    """Remember the files the block reads (:func:`check_input_file`): no output of the block may replace one
    of them (:func:`check_output_path`), with or without ``overwrite`` — the command line's scope."""
    global _INPUTS
    saved, _INPUTS = _INPUTS, {}
    try:
        yield _INPUTS
    finally:
        _INPUTS = saved


def _is_input(p):
    """The input that ``p`` is (the same file: path, link or hard link), or None."""
    if not _INPUTS:
        return None
    try:
        st = os.stat(p)
    except OSError:
        return None
    return _INPUTS.get((st.st_dev, st.st_ino))


def _refuse_input(p):
    """One line if ``p`` is one of the command's inputs (by name, link or hard link)."""
    same = _is_input(p)
    if same is not None:
        raise MPISimError(f"{p}: is an input of this command ({same}); write the output elsewhere")


def check_output_path(path, overwrite=False):
    """Raise a clear error if ``path`` exists (and not ``overwrite``), is one of the command's inputs
    (:func:`record_inputs`; never replaced) or its folder is unwritable."""
    p = Path(path)
    _refuse_input(p)
    if len(p.name.encode()) > NAME_MAX:
        raise MPISimError(f"{p.name[:40]}...: output file name too long ({len(p.name.encode())} bytes; file systems "
                          f"hold {NAME_MAX})")
    if p.exists() and not overwrite:
        raise MPISimError(f"{p}: output exists; pass --overwrite to replace it")
    if p.is_dir():
        raise MPISimError(f"{p}: output path is a folder")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise MPISimError(f"{p}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MPISimError(f"{p}: output folder {folder} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(path, overwrite=False, record=True, suffix=".part"):
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.
    ``record=False``: not one of the outputs an interrupted command removes (a sweep's own state).
    ``suffix``: the temporary name's ending, one of :data:`PART_SUFFIXES` (``.part.png`` for a figure,
    whose writer takes the format from the name)."""
    if suffix not in PART_SUFFIXES:
        raise ValueError(f"suffix must be one of {PART_SUFFIXES}")
    p = check_output_path(path, overwrite)
    folder = p.parent if str(p.parent) else Path(".")
    remove_stale_parts(folder, p.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{_part_stem(p.name)}{_owner()}", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp

        interrupt.check()                 # nothing is committed after an interrupt
        _refuse_input(p)
        if p.exists() and not overwrite:
            raise MPISimError(f"{p}: output appeared while writing; not replaced")
        user_mode(tmp)
        os.replace(tmp, p)
        if _RECORD is not None and record:
            _RECORD.append(p)
    except OSError as e:
        _remove(tmp)
        if e.errno == 28:
            raise MPISimError(f"{p}: disk full while writing; nothing written") from None
        raise MPISimError(f"{p}: cannot write: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


_RECORD = None


def _host():
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40] or "host"


def _part_stem(name):
    """The output's name as its temporary file starts (cut so that the whole temporary name, with its
    ``~host~pid~XXXXXXXX.part``, fits the file system's 255 bytes)."""
    return name.encode()[:PART_STEM_BYTES].decode(errors="ignore")


PART_STEM_BYTES = 160

PART_SUFFIXES = (".part", ".part.png")
"""Endings of temporary names (``.NAME~host~pid~XXXXXXXX.part``, ``….part.png`` for figures)."""


def _owner():
    """The part of a temporary name that says who writes it: ``~host~pid~``."""
    return f"~{_host()}~{os.getpid()}~"


STALE_MIN_SECONDS = 60
"""A partial file of a process that no longer runs counts as stale once untouched for this long."""

STALE_LEGACY_SECONDS = 24 * 3600
"""A partial file without an owner in its name (older mpisim) counts as stale after a day."""


def stale_parts(folder, name=None):
    """Partial files (``.NAME~host~pid~XXXX.part``) in ``folder`` left by processes that no longer
    run on this host (killed with SIGKILL, or a crash of the machine); ``name``: only those of that
    output. Files of live processes, or of other hosts sharing the folder, are never listed."""

    folder = Path(folder)
    out = []
    try:
        candidates = [c for suffix in PART_SUFFIXES
                      for c in folder.glob(f".{_part_stem(name)}*{suffix}" if name else f".*{suffix}")]
    except OSError:
        return out
    host = _host()
    for p in candidates:
        parts = p.name[:-len(next(x for x in reversed(PART_SUFFIXES) if p.name.endswith(x)))].split("~")
        if len(parts) >= 4 and (name is None or parts[0] == f".{name}"):
            if parts[-3] != host or not parts[-2].isdigit() or _alive(int(parts[-2])):
                continue
            try:                # a minute's grace: another pid namespace on the same host name may be writing it
                if time.time() - p.stat().st_mtime < STALE_MIN_SECONDS:
                    continue
            except OSError:
                continue
            out.append(p)
        elif len(parts) == 1 and (name is None or p.name.startswith(f".{name}.")):
            try:
                if time.time() - p.stat().st_mtime > STALE_LEGACY_SECONDS:
                    out.append(p)
            except OSError:
                pass
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_parts(folder, name=None):
    """Delete :func:`stale_parts`; returns [(path, bytes)] of what was removed."""
    removed = []
    for p in stale_parts(folder, name):
        try:
            size = p.stat().st_size
            p.unlink()
            removed.append((p, size))
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def record_outputs():
    """Collect the paths :func:`atomic_path` commits during the block (the command line removes them
    when the command is interrupted after all)."""
    global _RECORD
    saved, _RECORD = _RECORD, []
    try:
        yield _RECORD
    finally:
        _RECORD = saved


def committed(path):
    """Record an output put in place by other means than :func:`atomic_path` (a hard link)."""
    if _RECORD is not None:
        _RECORD.append(Path(path))


def remove_outputs(paths):
    for p in paths:
        _remove(p)


def _remove(tmp):
    with contextlib.suppress(OSError):
        os.remove(tmp)


def free_bytes(folder):
    """Free bytes on the file system of ``folder`` (None when unknown)."""

    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_free_space(plan, what="the output"):
    """Refuse to start when the files a command will write do not fit.

    ``plan``: [(path, bytes)] of every file to be written; sizes on the same file system are added
    up before comparing with its free space, so a build into the cache plus a copy next to it is
    checked as a whole. Raises a one-line :class:`MPISimError` naming the folder and both figures.
    """
    need = {}
    for path, nbytes in plan:
        folder = Path(path).parent if str(Path(path).parent) else Path(".")
        folder = folder if folder.is_dir() else Path(".")
        try:
            dev = os.stat(folder).st_dev
        except OSError:
            continue
        f, n, names = need.get(dev, (folder, 0, []))
        need[dev] = (f, n + int(nbytes), names + [str(path)])
    for folder, n, names in need.values():
        free = free_bytes(folder)
        if free is not None and n > free:
            raise MPISimError(f"{folder}: {what} needs {n / 2**30:.2f} GiB ({', '.join(names)}) but only "
                              f"{free / 2**30:.2f} GiB are free there; nothing was written")


def user_mode(path, mode=0o666):
    """Give a finished output the permissions the user's umask asks for (temporary files are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~mask)
