"""Row checksums of system-matrix files: Fletcher-64 over each row's bytes, built up voxel block by block.

A calibration row (one receive channel × one frequency bin, all frames) is written in pieces, one
voxel stripe at a time, so its checksum must be computable piece by piece in frame order: the
Fletcher-64 sums (a, b) over little-endian 32-bit words, modulo 2³² − 1, carry over from one
piece to the next. ``reco`` reads only the rows it uses and checks exactly those rows, so a
damaged byte anywhere in a used row is found before the row is used, without reading the rest of
the file.

:func:`update` is the compiled kernel (numba, rows in parallel); :func:`update_numpy` its numpy
twin (closed form per piece), the reference the tests compare against.
"""

import numpy as np

from .. import backend as B

__all__ = ["MOD", "METHOD", "new_state", "words", "update_numpy", "update", "digest", "of_rows"]

MOD = np.uint64(0xFFFFFFFF)
METHOD = "fletcher64: (b << 32) | a, a = sum(w), b = sum of partial sums a, mod 2^32-1, over each row's little-endian uint32 words in frame order"
_NUMPY_PIECE = 8192          # words per numpy step: keeps Σ (n − i + 1)·w_i below 2⁶⁴


def new_state(shape):
    """Empty checksum state, (..., 2) uint64 holding (a, b) per row."""
    return np.zeros(tuple(shape) + (2,), np.uint64)


def words(block):
    """(M, P) array of any 4-byte-multiple dtype → (M, W) uint32 view of each row's bytes."""
    block = np.ascontiguousarray(block)
    return block.view(np.uint32).reshape(block.shape[0], -1)


def update_numpy(state, block):
    """Add the bytes of ``block`` (M, P) to the row states (M, 2) in place (numpy twin)."""
    w = words(block).astype(np.uint64)
    a, b = state[:, 0].copy(), state[:, 1].copy()
    for s in range(0, w.shape[1], _NUMPY_PIECE):
        piece = w[:, s:s + _NUMPY_PIECE]
        n = piece.shape[1]
        weight = np.arange(n, 0, -1, dtype=np.uint64)
        b = (b + (np.uint64(n) * a) % MOD + (piece * weight).sum(axis=1) % MOD) % MOD
        a = (a + piece.sum(axis=1) % MOD) % MOD
    state[:, 0], state[:, 1] = a, b
    return state


def update(state, block, finite=None, parallel=True):
    """Add the bytes of ``block`` (M, P) to the row states (M, 2) in place (compiled when numba is
    there). ``finite`` (M,) bool, optional: cleared for rows of a float/complex ``block`` that hold
    NaN or Inf, found in the same pass."""

    if not B.numba_available():
        if finite is not None:
            finite &= np.isfinite(block).all(axis=1)
        return update_numpy(state, block)
    from ..cpu_kernels import fletcher64_update, fletcher64_update_serial

    kernel = fletcher64_update if parallel else fletcher64_update_serial
    step = 1 if np.dtype(block.dtype).itemsize // (2 if np.iscomplexobj(block) else 1) == 4 else 2
    kernel(state, words(block), np.ones(block.shape[0], bool) if finite is None else finite, step)
    return state


def digest(state):
    """Final checksums (M,) uint64 from the states."""
    return (state[..., 1] << np.uint64(32)) | state[..., 0]


def of_rows(block, finite=None):
    """Checksums (M,) of whole rows (M, P) in one piece (``finite``: see :func:`update`)."""
    return digest(update(new_state(block.shape[:1]), block, finite))
