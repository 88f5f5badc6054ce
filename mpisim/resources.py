"""What the machine can give: memory checked before a large allocation (disk space: :mod:`mpisim.io.atomic`)."""

import os

from .errors import MPISimError

__all__ = ["available_memory", "check_memory"]


def available_memory():
    """Bytes of memory the system can give now without swapping, or None when it does not say.

    Linux: ``MemAvailable`` of /proc/meminfo — free memory plus the page cache and other memory the
    kernel reclaims on demand (after a 33 GB system matrix is written, most memory holds its pages in
    the cache: free, for this purpose, though not "free"); elsewhere the free pages (``SC_AVPHYS_PAGES``).
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes, what, hint="use fewer frames or float32"):
    """Refuse (one-line error) an allocation of ``nbytes`` larger than 80 % of :func:`available_memory`."""
    avail = available_memory()
    if avail is None:
        return
    if nbytes > 0.8 * avail:
        raise MPISimError(f"{what} would need {nbytes / 2**30:.1f} GiB, but only {avail / 2**30:.1f} GiB of memory "
                          f"is available; {hint}")
