"""Detection limit of labelled cells on bruker-2d (25 nm tracer, 10 pg Fe per cell, 100 averages)."""

import json

from _common import FIGURES
from mpisim.studies import plot_titration, titrate

res = titrate([1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5, 1e6], 10e-15, seeds=3)
plot_titration(res, FIGURES / "detection_limit.png")
(FIGURES / "detection_limit.json").write_text(json.dumps(res, indent=1))
print(f"detection limit (Currie, image domain): L_D {res['L_D_ng']:.3g} ng Fe ≈ {res['L_D_cells']:.3g} cells, "
      f"L_C {res['L_C_ng']:.3g} ng; data domain (matched filter) L_D {res['L_D_data_ng']:.3g} ng")
