"""Atomic output: write to a temporary name in the target folder, rename on success.

No half-written output is ever left behind: on any exception (including Ctrl-C) the temporary
file is removed and an existing file at the target path is untouched.
"""

import contextlib
import os
from pathlib import Path
import tempfile

from ..errors import MPISimError


def check_output_path(path, overwrite=False):
    """Raise a clear error if ``path`` exists (and not ``overwrite``) or its folder is unwritable."""
    p = Path(path)
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
def atomic_path(path, overwrite=False):
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds."""
    p = check_output_path(path, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    try:
        yield tmp
        from .. import interrupt

        interrupt.check()                 # nothing is committed after an interrupt
        if p.exists() and not overwrite:
            raise MPISimError(f"{p}: output appeared while writing; not replaced")
        user_mode(tmp)
        os.replace(tmp, p)
        if _RECORD is not None:
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
    import shutil

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
