"""Safe read-only opening of HDF5 files with clear errors."""

import contextlib

from ..errors import MPISimError
from .atomic import check_input_file

__all__ = ["open_h5"]


@contextlib.contextmanager
def open_h5(path):
    """Open an HDF5 file read-only; missing, unreadable and non-HDF5 files give one-line errors."""
    import h5py

    p = check_input_file(path)
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
