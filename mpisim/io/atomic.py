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
        raise MPISimError(f"{p}: output exists; pass --overwrite (overwrite=True) to replace it")
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
        if p.exists() and not overwrite:
            raise MPISimError(f"{p}: output appeared while writing; not replaced")
        os.replace(tmp, p)
    except OSError as e:
        _remove(tmp)
        if e.errno == 28:
            raise MPISimError(f"{p}: disk full while writing; nothing written") from None
        raise MPISimError(f"{p}: cannot write: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp):
    with contextlib.suppress(OSError):
        os.remove(tmp)
