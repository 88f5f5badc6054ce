"""The randomized quantitation study's figure and table, from its stored results.

``benchmarks/study_quantitation.py --cases 300 --seed 2026`` (about 25 minutes on 2 cores) wrote
``benchmarks/results/study_quantitation_seed2026.jsonl.gz``; this draws recovered/true against the ROI's
radius in voxels and the coverage of the 95 % intervals per radius bin, and prints the study's table.
"""

import sys
from pathlib import Path

from _common import FIGURES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import study_quantitation as study  # noqa: E402

rows = study.load(ROOT / "benchmarks" / "results" / "study_quantitation_seed2026.jsonl.gz")
study.table(rows)
study.plot(rows, FIGURES / "quantitation_study.png")
print(f"wrote {FIGURES / 'quantitation_study.png'}")
