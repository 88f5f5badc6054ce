"""Benchmark: the README's bruker-3d pipeline, as written, for quantitation (issue 21).

1. ``mpisim reco`` of 10 frames of the concentration phantom recorded with 10 background frames (the README's
   measurement, with ``--frames 10``) against the same 10 frames recorded without background frames:
   sweeps, why they stopped, and wall time (same run, same matrix; the ratio is the figure of merit).
2. ``mpisim quantify --roi chambers`` (the default estimator, gtm: 8 ROIs) on the README's reconstruction
   (one frame, 10 background frames) against the ``mpisim reco`` that made it.

Each command runs in this process through ``mpisim.cli.main`` (no interpreter start-up), three times; the
table shows the median. The 19³ system matrix (4.4 GB) comes from the cache after its first build.

    python benchmarks/bench_quantitation.py [--workdir DIR] [--repeats 3]
"""

import argparse
import json
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np

from mpisim.cli import main

SM = ["--scanner", "bruker-3d", "--grid", "19x19x19", "--fov", "0.038,0.038,0.019"]
SIM = ["--scanner", "bruker-3d", "--phantom", "concentration", "--noise", "realistic"]


def run(args):
    """(seconds, stdout) of one command."""
    out = StringIO()
    t = time.perf_counter()
    with redirect_stdout(out):
        rc = main(args)
    if rc != 0:
        raise SystemExit(f"mpisim {' '.join(args)} failed ({rc})")
    return time.perf_counter() - t, out.getvalue()


def median_run(args, repeats):
    times, out = [], ""
    for _ in range(repeats):
        t, out = run(args)
        times.append(t)
    return float(np.median(times)), out


def main_(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    d = Path(a.workdir or tempfile.mkdtemp(prefix="bench-quant-"))
    d.mkdir(parents=True, exist_ok=True)
    sm = d / "sm.mdf"
    if not sm.exists():
        run(["sysmat", *SM, "--out", str(sm)])
    files = {"bg": d / "meas-bg.mdf", "nobg": d / "meas-nobg.mdf", "readme": d / "meas.mdf"}
    run(["simulate", *SIM, "--frames", "10", "--background-frames", "10", "--out", str(files["bg"]), "--overwrite"])
    run(["simulate", *SIM, "--frames", "10", "--out", str(files["nobg"]), "--overwrite"])
    run(["simulate", *SIM, "--background-frames", "10", "--out", str(files["readme"]), "--overwrite"])
    rows = {}
    for key in ("bg", "nobg"):
        reco = d / f"reco-{key}.mdf"
        t, out = median_run(["reco", str(files[key]), "--sm", str(sm), "--out", str(reco), "--overwrite", "--json"],
                            a.repeats)
        rows[key] = (t, json.loads(out))
    t_reco, out = median_run(["reco", str(files["readme"]), "--sm", str(sm), "--out", str(d / "reco.mdf"),
                              "--overwrite", "--json"], a.repeats)
    t_quant, qout = median_run(["quantify", str(d / "reco.mdf"), "--roi", "chambers", "--json"], a.repeats)
    q = json.loads(qout)
    print(f"{'command':62} {'median s':>9} {'sweeps':>7}  stopped because")
    for key, label in (("bg", "reco, 10 frames recorded with 10 background frames"),
                       ("nobg", "reco, the same 10 frames without background frames")):
        t, j = rows[key]
        print(f"{label:62} {t:9.2f} {j['sweeps']:7d}  {j['stopped_because']}")
    print(f"{'ratio (with / without background frames); target <= 1.5':62} {rows['bg'][0] / rows['nobg'][0]:9.2f}")
    print(f"{'reco of the README measurement (1 frame, 10 background)':62} {t_reco:9.2f}")
    print(f"{'quantify --roi chambers (estimator ' + q['estimator'] + ', 8 ROIs)':62} {t_quant:9.2f}")
    print(f"{'ratio (quantify / reco); target <= 2':62} {t_quant / t_reco:9.2f}")
    errs = [r["iron_ng"] / r["truth_ng"] - 1 for r in q["rois"]]
    print(f"chambers: recovered/true − 1 = {', '.join(f'{e:+.3f}' for e in errs)}; intervals cover "
          f"{sum(r['iron_95_ng'][0] <= r['truth_ng'] <= r['iron_95_ng'][1] for r in q['rois'])}/8")
    print(f"(files in {d})")


if __name__ == "__main__":
    main_()
