"""Scanner-design sweeps on Dask (issue 12): a 24-design sweep serially, on 1 and on 2 local workers.

Usage: python benchmarks/bench_sweep.py [--scanner bruker-3d]

The sweep varies the gradient (4 values), the core diameter (3) and the averages (2) of a preset.
Each Dask case starts its local cluster first (the start-up time is printed on its own) and
times the sweep on the running cluster; the serial case runs in this process. Prints a table with
the speed-up of 2 workers over 1 (target ≥ 1.6× on a 2-core machine) and checks that every case
gives identical rows.
"""

import argparse
import tempfile
import time

VARY = {"scanner.selection_field.gradient": [1.0, 2.0, 3.0, 4.0], "tracer.core_diameter": [20e-9, 25e-9, 30e-9],
        "design.averages": [1.0, 4.0]}


def _warm_up(scanner):
    from mpisim.design import figures_of_merit

    figures_of_merit(scanner)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scanner", default="bruker-3d")
    a = ap.parse_args()
    from distributed import Client, LocalCluster

    from mpisim.sweep import run_sweep

    results, times = {}, {}
    with tempfile.TemporaryDirectory() as d:
        _warm_up(a.scanner)
        t = time.perf_counter()
        results["serial"] = run_sweep(a.scanner, VARY, f"{d}/serial", workers=0, progress=False, plot=False)
        times["serial"] = (time.perf_counter() - t, 0.0)
        for n in (1, 2):
            t0 = time.perf_counter()
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                    Client(cl) as client:
                client.run(_warm_up, a.scanner)      # every worker imports mpisim and loads its compiled kernels
                start = time.perf_counter() - t0
                t = time.perf_counter()
                results[f"{n} worker(s)"] = run_sweep(a.scanner, VARY, f"{d}/w{n}", client=client, progress=False,
                                                      plot=False)
                times[f"{n} worker(s)"] = (time.perf_counter() - t, start)
    same = all(r == results["serial"] for r in results.values())
    print(f"24-design sweep of {a.scanner} (gradient × core diameter × averages)")
    print(f"{'case':14} {'sweep / s':>10} {'designs/s':>10} {'cluster start / s':>18}")
    for k, (t, s) in times.items():
        print(f"{k:14} {t:10.2f} {24 / t:10.1f} {s:18.2f}")
    speedup = times["1 worker(s)"][0] / times["2 worker(s)"][0]
    print(f"speed-up 2 workers vs 1: {speedup:.2f}x (target >= 1.6x)   identical rows in every case: {same}")


if __name__ == "__main__":
    main()
