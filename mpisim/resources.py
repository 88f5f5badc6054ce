"""What the machine can give: memory checked before a large allocation (disk space: :mod:`mpisim.io.atomic`), and
the C heap told to keep the pages it frees (:func:`keep_heap_pages`)."""

import ctypes
import os
import sys
from pathlib import Path

try:
    import resource
except ImportError:                      # not a POSIX system: no RLIMIT_AS
    resource = None

from .errors import MPISimError

__all__ = ["keep_heap_pages", "address_space_left", "available_memory", "cgroup_available", "check_memory", "meminfo", "meminfo_of_self",
           "NotEnoughMemory"]


HEAP_TOP_PAD = 64 * 2 ** 20
"""Bytes the C heap keeps above what is in use (glibc's M_TOP_PAD) once :func:`keep_heap_pages` has run."""
HEAP_MMAP_THRESHOLD = 32 * 2 ** 20
"""Blocks up to this size come from the heap, not from mappings of their own (glibc's M_MMAP_THRESHOLD, its 64-bit
maximum): setting the pad freezes glibc's moving threshold at its start value (128 KiB), above which every block
would still be mapped and faulted in afresh."""

_heap_kept = False


def keep_heap_pages():
    """Let the C heap (glibc) keep :data:`HEAP_TOP_PAD` bytes of freed memory instead of handing it back to the kernel
    at once. A loop that allocates a few MB per step (a live session: every frame's spectra and rows) otherwise
    faults the same pages in again at every step, and on a virtual machine each fault is dear: reading and
    preparing one bruker-3d frame took 4.1–4.4 ms with glibc's defaults and 3.7–4.1 ms with this on a 2-core VM
    (``benchmarks/bench_live_parts.py``, four runs). Called by :func:`mpisim.live.follow` and :func:`mpisim.forward.stream_frames`
    (``simulate --pace``); the setting is process-wide and stays (up to :data:`HEAP_TOP_PAD` kept per malloc arena);
    nothing on other C libraries (musl, macOS, Windows). Returns whether the setting took."""
    global _heap_kept
    if _heap_kept or not sys.platform.startswith("linux"):
        return _heap_kept
    try:
        libc = ctypes.CDLL("libc.so.6")
        _heap_kept = bool(libc.mallopt(-3, HEAP_MMAP_THRESHOLD)) and bool(libc.mallopt(-2, HEAP_TOP_PAD))
        # (M_MMAP_THRESHOLD, M_TOP_PAD)
    except (OSError, AttributeError):
        _heap_kept = False
    return _heap_kept


def meminfo():
    """/proc/meminfo as {field: bytes} (Linux; {} elsewhere)."""
    return _proc_fields("/proc/meminfo")


def _proc_fields(path, prefix=""):
    """The ``Name: value kB`` lines of a /proc file (those starting with ``prefix``) as {name: bytes}."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                parts = value.split()
                if key.startswith(prefix) and parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def available_memory():
    """Bytes of memory this process can be given now without swapping, or None when nothing says.

    Linux: ``MemAvailable`` of /proc/meminfo — free memory plus the page cache and other memory the
    kernel reclaims on demand (after a 33 GB system matrix is written, most memory holds its pages in
    the cache: free, for this purpose, though not "free") — and, when this process runs in a control
    group with a memory limit (a container, a batch job), no more than that limit less the group's
    use that is not reclaimable cache (:func:`cgroup_available`), and no more than the address space its
    ``RLIMIT_AS`` leaves (:func:`address_space_left`). Elsewhere the free pages
    (``SC_AVPHYS_PAGES``).
    """
    avail = meminfo().get("MemAvailable")
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    for limit in (cgroup_available(), address_space_left()):
        if limit is not None:
            avail = limit if avail is None else min(avail, limit)
    return avail


def address_space_left():
    """Bytes of address space this process may still map under its ``RLIMIT_AS`` (``ulimit -v``), or
    None without such a limit (or where it cannot be read)."""
    if resource is None:
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    size = meminfo_of_self().get("VmSize")
    return None if size is None else max(0, soft - size)


def meminfo_of_self():
    """/proc/self/status memory fields (VmSize, VmRSS, …) as {field: bytes} (Linux; {} elsewhere)."""
    return _proc_fields("/proc/self/status", "Vm")



def cgroup_available(root="/sys/fs/cgroup", membership="/proc/self/cgroup"):
    """Bytes the memory limits of this process's control group and its parents leave (the smallest
    of limit − usage + reclaimable file cache over them), or None without a limit. cgroup v2 (``memory.max``, ``memory.current``,
    ``inactive_file`` of ``memory.stat``) or v1 (``memory.limit_in_bytes``, ``memory.usage_in_bytes``,
    ``total_inactive_file``)."""
    base = Path(root)
    v1_rel = v2_rel = None
    try:
        with open(membership) as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) != 3:
                    continue
                if "memory" in parts[1].split(","):
                    v1_rel = parts[2].lstrip("/")
                elif parts[0] == "0" and parts[1] == "":
                    v2_rel = parts[2].lstrip("/")
    except OSError:
        return None
    v1 = v1_rel is not None                    # a v1 memory controller wins (hybrid systems mount both)
    rel = v1_rel if v1 else v2_rel
    if rel is None:
        return None
    top = base / "memory" if v1 else base
    names = (("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file") if v1 else
             ("memory.max", "memory.current", "inactive_file"))
    best = None
    d = top / rel if rel else top
    while True:                                 # the group and every parent: a job's limit may sit above it
        left = _group_left(d, names)
        if left is not None:
            best = left if best is None else min(best, left)
        if d == top or top not in d.parents:
            break
        d = d.parent
    return best


def _group_left(d, names):
    """Bytes left under the limit of the cgroup folder ``d`` (None: no limit, or not readable)."""
    try:
        limit_text = (d / names[0]).read_text().strip()
        used = int((d / names[1]).read_text().strip())
    except (OSError, ValueError):
        return None
    if limit_text == "max" or not limit_text.isdigit() or int(limit_text) >= 1 << 60:
        return None                             # no limit (v1 writes a huge number for none)
    inactive = 0
    try:
        for line in (d / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == names[2]:
                inactive = int(value)
    except (OSError, ValueError):
        pass
    return max(0, int(limit_text) - used + inactive)


class NotEnoughMemory(MPISimError):
    """A refusal for want of memory now (not a fault of the input): callers that would otherwise treat
    a failure as damage (the cache) let it through instead."""


def check_memory(nbytes, what, hint="use fewer frames or float32"):
    """Refuse (one-line error) an allocation of ``nbytes`` larger than 80 % of :func:`available_memory`."""
    avail = available_memory()
    if avail is None:
        return
    if nbytes > 0.8 * avail:
        raise NotEnoughMemory(f"{what} would need {nbytes / 2**30:.1f} GiB, but only {avail / 2**30:.1f} GiB of memory "
                          f"is available; {hint}")
