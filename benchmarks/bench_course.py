"""Run time of every course notebook (issue 14: each < 60 s on a 2-core laptop), student and solution
versions, executed as `jupyter nbconvert --execute` would (a fresh kernel each).

Usage: python benchmarks/bench_course.py
The first run of labs 4-6 builds small system matrices into a fresh, empty cache; the second finds them.
"""

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1] / "course" / "notebooks"


def main():
    import os
    import tempfile

    os.environ["MPISIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="mpisim-course-cache-")   # the 1st run starts cold
    print(f"{'notebook':34} {'1st run / s':>12} {'2nd run / s':>12} {'< 60 s':>7}")
    worst = 0.0
    for sub in ("student", "solutions"):
        for p in sorted((ROOT / sub).glob("*.ipynb")):
            times = []
            for _ in range(2):
                nb = nbformat.read(p, as_version=4)
                t = time.perf_counter()
                NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(p.parent)}}
                               ).execute()
                times.append(time.perf_counter() - t)
            worst = max(worst, *times)
            print(f"{sub + '/' + p.name:34} {times[0]:12.1f} {times[1]:12.1f} {'yes' if max(times) < 60 else 'NO':>7}")
    print(f"slowest: {worst:.1f} s")


if __name__ == "__main__":
    main()
