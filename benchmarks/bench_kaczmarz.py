"""Kaczmarz speed on the CPU (numba sweep vs a BLAS pass and vs the per-row numpy loop) and on
the GPU (fused cooperative CUDA kernel vs CGNR on cupy vs the per-row cupy loop).

Usage: python benchmarks/bench_kaczmarz.py [--gpu] [--frames 64]
Random complex64 matrices of MPI sizes; times are medians of repeats in this one run.
"""

import argparse
import statistics
import time

import numpy as np

from mpisim.backend import gpu_available
from mpisim.reco.kaczmarz import PlanarRows, kaczmarz


def med(fn, repeat=5):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def problem(M, N, F=1, seed=0, xp=np):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((M, N)) + 1j * rng.standard_normal((M, N))).astype(np.complex64)
    x = rng.random((N, F)).astype(np.complex64)
    b = A @ x
    return xp.asarray(A), xp.asarray(b[:, 0] if F == 1 else b)


def cpu(frames):
    from mpisim.reco import kaczmarz_cpu as K

    print("CPU (numba), complex64, one frame")
    print(f"{'problem':22} {'BLAS pass/ms':>12} {'sweep/ms':>9} {'ratio':>6} {'numpy loop/ms':>13} {'speed-up':>8} {'max diff':>9}")
    for (M, N, label) in ((400, 19**3, "3D 19^3 x 400 rows"), (1000, 41 * 41, "2D 41^2 x 1000 rows")):
        A, b = problem(M, N)
        flat = A.ravel()
        t_blas = med(lambda: np.vdot(flat, flat), 20)
        P = PlanarRows.from_complex(A).planes
        inv = 1.0 / K.row_norms2(P.reshape(M, 2 * N))
        br, bi = b.real.astype(float), b.imag.astype(float)
        cr, ci, vr, vi = np.zeros(N), np.zeros(N), np.zeros(M), np.zeros(M)
        order = np.arange(M)
        t_sweep = med(lambda: K.sweep_single(P, br, bi, order, inv, 0.1, cr, ci, vr, vi), 20)
        t_np = med(lambda: kaczmarz(A, b, iterations=1, lam=1e-2, impl="numpy"), 3)
        t_nb = med(lambda: kaczmarz(A, b, iterations=1, lam=1e-2, impl="numba"), 5)
        d = np.abs(kaczmarz(A, b, 1, 1e-2, impl="numpy") - kaczmarz(A, b, 1, 1e-2, impl="numba")).max()
        print(f"{label:22} {t_blas * 1e3:12.3f} {t_sweep * 1e3:9.3f} {t_sweep / t_blas:6.2f} {t_np * 1e3:13.2f} "
              f"{t_np / t_nb:8.1f} {d:9.1e}")
    print("  (speed-up: whole kaczmarz() call, numba vs the per-row numpy loop, 1 sweep incl. set-up)")
    single_frame()
    print("\nCPU (numba), many frames: 3 sweeps, 3D 19^3 x 400 rows (planar rows given, as reconstruct does)")
    print(f"{'frames':>6} {'time/s':>8} {'frames/s':>9} {'per frame vs single':>20}")
    A, b1 = problem(400, 19**3)
    A = PlanarRows.from_complex(A)
    t1 = med(lambda: kaczmarz(A, b1, 3, 1e-2), 3)
    print(f"{1:6d} {t1:8.4f} {1 / t1:9.1f} {1.0:20.2f}")
    for F in (8, 10, frames):
        _, B = problem(400, 19**3, F)
        tF = med(lambda: kaczmarz(A, B, 3, 1e-2), 2)
        print(f"{F:6d} {tF:8.4f} {F / tF:9.1f} {tF / F / t1:20.2f}")
    layout()


def single_frame(rounds=5):
    """Issue 24's figures, 2000 × 19³ complex64 rows, one frame: a sweep against a BLAS A·x on the same rows (the
    sweep on planar rows and on the matrix as stored, on one thread and split among the threads ``kaczmarz()``
    uses; a sweep after the first over the same order, which found the pairs' couplings, and the first itself), and
    the fixed cost of a ``kaczmarz()`` call (no sweep: the row norms; the planar copy it skips below
    ``PLANAR_AFTER`` sweeps), in passes of A·x. Each round times every candidate in a block of repeats (a block's
    median; candidates in turn, so a slow spell of a shared machine touches all of them); the table gives the
    median and range over the rounds of each candidate's time over the same round's A·x."""
    from mpisim.reco import kaczmarz_cpu as K
    from mpisim.reco.kaczmarz import PLANAR_AFTER, sweep_threads

    M, N = 2000, 19**3
    A, b = problem(M, N)
    x = np.ones(N, np.complex64)
    P = PlanarRows.from_complex(A).planes
    Af = A.view(np.float32).reshape(M, 2 * N)
    inv = 1.0 / K.row_norms2(Af)
    br, bi = b.real.astype(float), b.imag.astype(float)
    order = np.arange(M)
    st = [np.zeros(N), np.zeros(N), np.zeros(M), np.zeros(M)]
    T = sweep_threads(N)
    cands = {"A·x (BLAS)": lambda: A @ x}
    g = np.empty((M // 2 + 1, 2))
    K.sweep_single(P, br, bi, order, inv, 0.1, *st, 1, g, False)          # a first sweep: the pairs' couplings
    for t in sorted({1, T}):
        th = f"{t} thread{'s' if t > 1 else ''}"
        cands[f"sweep on planar rows, {th}"] = lambda t=t: K.sweep_single(P, br, bi, order, inv, 0.1, *st, t, g, True)
        cands[f"  first sweep of an order, {th}"] = lambda t=t: K.sweep_single(P, br, bi, order, inv, 0.1, *st, t)
        cands[f"sweep as stored, {th}"] = (
            lambda t=t: K.sweep_single_interleaved(Af, br, bi, order, inv, 0.1, *st, t, g, True))
    cands["kaczmarz() fixed cost (row norms)"] = lambda: kaczmarz(A, b, 0, 1e-2)
    cands["kaczmarz() fixed cost, row_norms2 given"] = lambda: kaczmarz(A, b, 0, 1e-2, row_norms2=inv)
    cands["planar copy (skipped below PLANAR_AFTER)"] = lambda: PlanarRows.from_complex(A)
    times = {k: [] for k in cands}
    for _ in range(rounds):
        for k, fn in cands.items():
            times[k].append(med(fn, 7))
    ax = np.array(times["A·x (BLAS)"])
    print(f"\nCPU (numba), one frame, 2000 x 19^3 complex64 rows, {rounds} rounds: A·x (BLAS) {np.median(ax) * 1e3:.2f} ms "
          f"(range {ax.min() * 1e3:.2f}–{ax.max() * 1e3:.2f}); kaczmarz() splits one frame's sweep among {T} threads")
    print(f"{'':42} {'ms':>7} {'× A·x':>6} {'range':>11}")
    for k in list(cands)[1:]:
        r = np.array(times[k]) / ax
        print(f"{k:42} {np.median(times[k]) * 1e3:7.2f} {np.median(r):6.2f} {r.min():5.2f}–{r.max():.2f}")
    print(f"  (kaczmarz() sweeps as stored below {PLANAR_AFTER} sweeps, on its planar copy from there; reco on rows it"
          " holds planar)")


def layout():
    """The matrix layout of the compiled sweep: one fused update/dot pass of three frames over every row
    of a 19^3 x 2000-row matrix with the sweep's kernel on planar rows (re parts, then im parts) against
    the kernel mpisim used before on the interleaved complex rows as stored (the same arithmetic; its
    body is kept here as the baseline), in the two precisions of the iterate."""
    from numba import njit

    from mpisim.reco import kaczmarz_cpu as K

    @njit(fastmath=True, nogil=True)
    def interleaved3(prow, p, row, c0r, c0i, c1r, c1i, c2r, c2i, N, zero):   # before: 2j, 2j+1 indexing
        s0r = s0i = s1r = s1i = s2r = s2i = zero
        for j in range(N):
            qr, qi, ar, ai = prow[2 * j], prow[2 * j + 1], row[2 * j], row[2 * j + 1]
            xr = c0r[j] + qr * p[0] + qi * p[1]
            xi = c0i[j] + qr * p[1] - qi * p[0]
            c0r[j], c0i[j] = xr, xi
            s0r += ar * xr - ai * xi
            s0i += ar * xi + ai * xr
            yr = c1r[j] + qr * p[2] + qi * p[3]
            yi = c1i[j] + qr * p[3] - qi * p[2]
            c1r[j], c1i[j] = yr, yi
            s1r += ar * yr - ai * yi
            s1i += ar * yi + ai * yr
            zr = c2r[j] + qr * p[4] + qi * p[5]
            zi = c2i[j] + qr * p[5] - qi * p[4]
            c2r[j], c2i[j] = zr, zi
            s2r += ar * zr - ai * zi
            s2i += ar * zi + ai * zr
        return s0r, s0i, s1r, s1i, s2r, s2i

    @njit(fastmath=True)
    def interleaved_pass(Af, p, c, zero):
        t = zero
        for k in range(1, Af.shape[0]):
            t += interleaved3(Af[k - 1], p, Af[k], c[0], c[1], c[2], c[3], c[4], c[5], Af.shape[1] // 2, zero)[0]
        return t

    @njit(fastmath=True)
    def planar_pass(P, p, c, zero):
        t = zero
        for k in range(1, P.shape[0]):
            t += K._dot_update3(P[k - 1, 0], P[k - 1, 1], p, P[k, 0], P[k, 1], c[0], c[1], c[2], c[3], c[4], c[5],
                                P.shape[2], zero)[0]
        return t

    M, N = 2000, 19**3
    A, _ = problem(M, N)
    Af, P = A.view(np.float32).reshape(M, 2 * N), PlanarRows.from_complex(A).planes
    print("\nCPU sweep layout: one fused 3-frame update/dot pass over 2000 rows of 19^3 voxels")
    print(f"{'iterate':8} {'interleaved/ms':>14} {'planar/ms':>10} {'planar speed-up':>15} {'same result':>11}")
    for real in (np.float64, np.float32):
        p = (np.arange(1, 7) * 1e-7).astype(real)
        ci, cp = np.zeros((6, N), real), np.zeros((6, N), real)
        same = interleaved_pass(Af, p, ci, real(0)) == planar_pass(P, p, cp, real(0)) and np.array_equal(ci, cp)
        ti = med(lambda: interleaved_pass(Af, p, ci, real(0)), 3)
        tp = med(lambda: planar_pass(P, p, cp, real(0)), 3)
        print(f"{real.__name__:8} {ti * 1e3:14.1f} {tp * 1e3:10.1f} {ti / tp:15.2f} {str(bool(same)):>11}")


def nominal_bandwidth(props, name):
    """Peak DRAM bandwidth in B/s: from the clock and bus width when the runtime reports them
    (removed from newer CUDA), else the vendor figure for known boards."""
    clock, bus = props.get("memoryClockRate"), props.get("memoryBusWidth")
    if clock and bus:
        return 2 * clock * 1e3 * bus / 8
    for key, val in (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100", 2.0e12)):
        if key in name:
            return val
    return float("nan")


def gpu(frames):
    from mpisim.backend import xp_of
    from mpisim.reco.cgnr import cgnr

    cp = xp_of("cupy")
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    bw = nominal_bandwidth(props, name)
    print(f"\nGPU: {name}, nominal memory bandwidth {bw / 1e9:.0f} GB/s")
    M, N = 2000, 37**3
    A, b = problem(M, N, xp=cp)

    def timed(fn, repeat=5):
        fn()
        cp.cuda.Device().synchronize()
        ts = []
        for _ in range(repeat):
            cp.cuda.Device().synchronize()
            t = time.perf_counter()
            fn()
            cp.cuda.Device().synchronize()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    bytes_per_sweep = A.nbytes
    print(f"{'method (3D 37^3 x 2000 rows, 3 sweeps)':42} {'time/ms':>9} {'frames/s':>9} {'of BW bound':>11}")
    t = timed(lambda: kaczmarz(A, b, 3, 1e-2, impl="cuda"))
    print(f"{'fused cooperative kernel, 1 frame':42} {t * 1e3:9.2f} {1 / t:9.1f} {3 * bytes_per_sweep / bw / t:11.1%}")
    for F in (4, 8, frames):
        _, B = problem(M, N, F, xp=cp)
        tF = timed(lambda: kaczmarz(A, B, 3, 1e-2, impl="cuda"), 3)
        print(f"{f'fused cooperative kernel, {F} frames':42} {tF * 1e3:9.2f} {F / tF:9.1f} "
              f"{3 * bytes_per_sweep * -(-F // 8) / bw / tF:11.1%}")
    tc = timed(lambda: cgnr(A, b, 3, 1e-2))
    print(f"{'CGNR on cupy, 3 iterations, 1 frame':42} {tc * 1e3:9.2f} {1 / tc:9.1f} {6 * bytes_per_sweep / bw / tc:11.1%}")
    _, B = problem(M, N, frames, xp=cp)
    tcb = timed(lambda: cgnr(A, B, 3, 1e-2), 3)
    print(f"{f'CGNR on cupy, 3 iterations, {frames} frames':42} {tcb * 1e3:9.2f} {frames / tcb:9.1f} {'':>11}")
    tl = timed(lambda: kaczmarz(A, b, 1, 1e-2, impl="cupy-loop"), 1) * 3
    print(f"{'per-row cupy loop (1 sweep timed, x3)':42} {tl * 1e3:9.2f} {1 / tl:9.1f} {3 * bytes_per_sweep / bw / tl:11.1%}")
    ref = kaczmarz(cp.asnumpy(A), cp.asnumpy(b), 3, 1e-2, impl="numpy")
    got = cp.asnumpy(kaczmarz(A, b, 3, 1e-2, impl="cuda"))
    print(f"fused kernel vs numpy twin: max |diff| / max = {np.abs(got - ref).max() / np.abs(ref).max():.2e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true", help="also run the GPU part (needs cupy and a GPU)")
    ap.add_argument("--cpu", action="store_true", default=True)
    ap.add_argument("--no-cpu", dest="cpu", action="store_false")
    ap.add_argument("--frames", type=int, default=64)
    a = ap.parse_args()
    if a.cpu:
        cpu(a.frames)
    if a.gpu:
        if not gpu_available():
            print("GPU part skipped: no cupy/GPU")
        else:
            gpu(max(a.frames, 256))


if __name__ == "__main__":
    main()
