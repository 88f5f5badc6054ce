"""Shared by the examples: where figures go (``$MPISIM_FIGURES`` or ./figures) and matplotlib set-up."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(os.environ.get("MPISIM_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)


def save(fig, name):
    path = FIGURES / name
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return path
