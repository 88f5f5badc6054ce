"""Benchmark: what one bruker-3d live image costs, part by part (issue 24), on the files ``bench_live.py --keep DIR``
leaves (``DIR/bruker-3d/sm.mdf`` and ``inj.mdf``; run that first, it also caches the live operator).

1. Reading and preparing a frame (``frame_rows``: read, spectrum, background, rows), 200 frames, in a fresh process
   with glibc's defaults and in one after :func:`mpisim.resources.keep_heap_pages`; and a look at the stream that
   finds one new frame (``StreamFrames.refresh``: its count and flags; the metadata were read when it was opened).
2. The live operator on one frame: P as int16 in the compiled kernel (the default), P as float32 in the same kernel,
   float32 through two BLAS products (before), and the compiled first product followed by a BLAS second one
   (OpenBLAS's spinning threads against numba's).

    python benchmarks/bench_live_parts.py --keep DIR
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_kaczmarz import med


def median_ms(fn, repeat):
    return med(fn, repeat) * 1e3


def session(d):
    import mpisim
    from mpisim.io.stream import StreamFrames
    from mpisim.live import LiveSettings, _Session
    from mpisim.reconstruction import RecoParams

    src = StreamFrames(d / "inj.mdf").__enter__()
    src.refresh()
    ses = _Session(src, mpisim.load_system_matrix(d / "sm.mdf"), RecoParams(), LiveSettings(), "numpy", "auto", None,
                   None)
    return src, ses


def frames_part(d, keep):
    """Median ms of frame_rows over 200 frames (this process: ``keep`` the heap's pages or not)."""
    from mpisim.resources import keep_heap_pages

    if keep:
        keep_heap_pages()
    from mpisim.reco.preprocess import frame_rows

    src, ses = session(d)
    fg = np.flatnonzero(~src.bg)[100:300]
    ts = []
    for f in fg:
        t0 = time.perf_counter()
        frame_rows(src, np.array([f]), ses.rows, ses.problem.background, None, 1)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def refresh_part(d):
    """Median ms of a look at the stream that finds one more frame (the file is complete: the count seen so far is
    set back before each look)."""
    from mpisim.io.stream import StreamFrames

    with StreamFrames(d / "stream.mdf") as src:
        bg = src.bg.copy()
        ts = []
        for f in range(100, 300):
            src.available, src.bg = f, bg[:f]
            t0 = time.perf_counter()
            src.refresh()
            ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def operator_part(d):
    from mpisim.reco.tikhonov import TikhonovOperator, row_dots

    src, ses = session(d)
    op = ses.op
    b = ses.problem.b[:, 0]
    M = b.size
    P32 = (op.Pt.astype(np.float32) * op.p_scale[:, None]).astype(np.float32)
    op32 = TikhonovOperator.from_arrays(P32, op.Vr, op.s, op.weights, op.lam_abs)
    bt = np.empty((1, 2 * M), np.float32)
    bt[0, :M], bt[0, M:] = b.real, b.imag
    inv = op._inv

    def blas():
        return op.Vr @ ((P32 @ bt[0]) * inv)

    def mixed():
        return op.Vr @ (row_dots(op.Pt, bt)[0] * op.p_scale * inv)

    return {"int16 compiled": median_ms(lambda: op(b), 30), "float32 compiled": median_ms(lambda: op32(b), 30),
            "float32 BLAS": median_ms(blas, 30), "int16 compiled + BLAS": median_ms(mixed, 30),
            "MB int16": op.nbytes / 1e6, "MB float32": op32.nbytes / 1e6}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", required=True, help="the folder bench_live.py --keep wrote")
    ap.add_argument("--frames-only", choices=("keep", "default"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    d = Path(a.keep) / "bruker-3d"
    if a.frames_only:
        print(json.dumps(frames_part(d, a.frames_only == "keep")))
        return
    frames = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, __file__, "--keep", a.keep, "--frames-only", mode], check=True,
                             capture_output=True, text=True).stdout
        frames[mode] = json.loads(out.strip().splitlines()[-1])
    ops = operator_part(d)
    print("bruker-3d live image, part by part (median ms)")
    print(f"  a look at the stream finding a new frame       {refresh_part(d):6.2f}")
    print(f"  read and prepare a frame: glibc defaults {frames['default']:.2f}, heap pages kept {frames['keep']:.2f}")
    print(f"  operator, P as int16, both products compiled   {ops['int16 compiled']:6.2f}  ({ops['MB int16']:.0f} MB)")
    print(f"  operator, P as float32, both products compiled {ops['float32 compiled']:6.2f}  ({ops['MB float32']:.0f} MB)")
    print(f"  operator, float32, two BLAS products           {ops['float32 BLAS']:6.2f}")
    print(f"  operator, int16 compiled, then a BLAS product  {ops['int16 compiled + BLAS']:6.2f}")


if __name__ == "__main__":
    main()
