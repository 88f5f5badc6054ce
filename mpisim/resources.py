"""What the machine can give: memory checked before a large allocation (disk space: :mod:`mpisim.io.atomic`)."""

import os

from .errors import MPISimError

__all__ = ["check_memory"]


def check_memory(nbytes, what, hint="use fewer frames or float32"):
    """Refuse (one-line error) an allocation larger than 80 % of the memory available now."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if nbytes > 0.8 * avail:
        raise MPISimError(f"{what} would need {nbytes / 2**30:.1f} GiB, but only {avail / 2**30:.1f} GiB of memory "
                          f"is available; {hint}")
