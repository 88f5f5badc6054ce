"""GPU Kaczmarz: the fused cooperative CUDA kernel (``kernels/kaczmarz.cu``) and, for comparison,
a per-row cupy loop like the reference tool's GPU path. cupy comes from :mod:`mpisim.backend`.

The kernels are compiled lazily, on first use, through ``cupy.RawModule`` with cooperative
groups enabled; nothing happens at import.
"""

import functools
from importlib import resources

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from .kaczmarz_base import project, sweep_numpy

__all__ = ["VARIANTS", "BLOCK", "kernel_source", "solve"]

VARIANTS = {(1, 1), (2, 1), (4, 1), (8, 1), (1, 4), (2, 4), (4, 4), (1, 8), (2, 8)}
BLOCK = 256


def kernel_source():
    """CUDA source of the Kaczmarz kernels (package data ``mpisim.kernels/kaczmarz.cu``)."""
    return resources.files("mpisim.kernels").joinpath("kaczmarz.cu").read_text()


@functools.lru_cache(maxsize=1)
def _module():
    cp = B.xp_of("cupy")
    return cp.RawModule(code=kernel_source(), options=("-std=c++17",), enable_cooperative_groups=True)


def _sm_count(cp):
    dev = cp.cuda.Device()
    try:
        return int(dev.attributes["MultiProcessorCount"])
    except (KeyError, AttributeError):
        return int(cp.cuda.runtime.getDeviceProperties(dev.id)["multiProcessorCount"])


def _blocks_per_sm(kernel, cp):
    """Resident blocks per SM for a cooperative launch (register granularity of 8 per thread)."""
    n = getattr(kernel, "num_regs", None)
    if n is None:
        n = kernel.attributes.get("num_regs", 64)
    regs = -(-max(int(n), 1) // 8) * 8
    by_regs = 65536 // (regs * BLOCK)
    by_threads = 2048 // BLOCK
    return max(1, min(by_regs, by_threads))


def solve(A, b, orders, inv_den, lam, enforce_real, enforce_positive, loop=False, stop=None):
    """Run the sweeps on the GPU. A (M, N) cupy complex; b (M, F) complex128. Returns (N, F).
    ``stop(sweep, c)`` → True after a sweep ends the iteration (c the cupy iterate)."""
    cp = B.xp_of("cupy")
    A = cp.ascontiguousarray(cp.asarray(A, dtype=cp.complex64))
    b = cp.ascontiguousarray(cp.asarray(b, dtype=cp.complex128))
    inv = cp.asarray(inv_den, dtype=cp.float64)
    M, N = A.shape
    F = b.shape[1]
    c = cp.zeros((N, F), cp.complex128)
    v = cp.zeros((M, F), cp.complex128)
    sq = float(np.sqrt(lam))
    if loop:
        return _solve_loop(cp, A, b, orders, inv, sq, c, v, enforce_real, enforce_positive, stop)
    fb = 1 if F == 1 else (4 if F <= 4 else 8)
    mod = _module()
    sms = _sm_count(cp)
    orders = [cp.asarray(o, dtype=cp.int64) for o in orders]
    # A cooperative grid must fit on the GPU at once; if the occupancy estimate is too optimistic
    # the launch is refused (nothing is modified) and we retry with fewer blocks per SM.
    for vpt in (1, 2, 4, 8):
        if (vpt, fb) not in VARIANTS:
            continue
        kern = mod.get_function(f"kaczmarz_sweep_v{vpt}_f{fb}")
        for bps in range(_blocks_per_sm(kern, cp), 0, -1):
            if vpt * sms * bps * BLOCK < N:
                break                                # needs more voxels per thread
            grid = max(1, min(sms * bps, -(-N // (vpt * BLOCK))))
            partial = cp.zeros((2, grid, fb), cp.complex128)
            try:
                _sweeps(kern, grid, A, N, b, F, fb, orders, inv, sq, c, v, partial, enforce_real, enforce_positive,
                        stop)
            except cp.cuda.driver.CUDADriverError as e:
                if "TOO_LARGE" in str(e).upper() or "too large" in str(e):
                    continue
                raise
            return c.real.copy() if enforce_real else c
    raise MPISimError(f"too many voxels ({N}) for the fused GPU kernel; use impl='cupy-loop' or CGNR")


def _sweeps(kern, grid, A, N, b, F, fb, orders, inv, sq, c, v, partial, er, ep, stop=None):
    for it, o in enumerate(orders):
        for f0 in range(0, F, fb):
            nf = min(fb, F - f0)
            args = (A, np.int64(N), np.int32(N), b, np.int32(F), np.int32(f0), np.int32(nf), o,
                    np.int32(o.size), inv, np.float64(sq), c, v, partial, np.int32(bool(er)), np.int32(bool(ep)))
            kern((grid,), (BLOCK,), args)
        if stop is not None and stop(it, c.real if er else c):
            break


def _solve_loop(cp, A, b, orders, inv, sq, c, v, er, ep, stop=None):
    """Per-row cupy loop (the numpy twin run on cupy arrays): the slow pattern, for comparison."""

    inv_h = cp.asnumpy(inv)
    for it, order in enumerate(orders):
        sweep_numpy(A, b, order, inv_h, sq, c, v)
        project(c, er, ep)
        if stop is not None and stop(it, c.real if er else c):
            break
    return c.real.copy() if er else c
