"""Safe read-only opening of HDF5 files with clear errors."""

import contextlib
from pathlib import Path

from ..errors import MPISimError

__all__ = ["open_h5"]


@contextlib.contextmanager
def open_h5(path):
    """Open an HDF5 file read-only; missing, unreadable and non-HDF5 files give one-line errors."""
    import h5py

    p = Path(path)
    if not p.exists():
        raise MPISimError(f"{p}: file not found")
    if p.is_dir():
        raise MPISimError(f"{p}: is a folder, not an HDF5 file")
    try:
        f = h5py.File(p, "r")
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
        yield f
    finally:
        f.close()
