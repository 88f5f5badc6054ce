"""Magnetic particle spectroscopy with six particle models (docs/howto-design.md, "Tracer models"): one
tracer (25 nm cores, 60 nm hydrodynamic, K = 5 kJ/m³) at 20 mT and 25 kHz, what `mpisim mps --model
langevin --model anisotropic --model debye --model brown --model neel-aligned --model neel --png mps.png` draws."""

from _common import FIGURES
from mpisim.mps import mps
from mpisim.particles import Tracer
from mpisim.plot import plot_mps

tracer = Tracer(core_diameter=25e-9, hydrodynamic_diameter=60e-9, anisotropy=5e3, tau0=1e-9, name="25 nm, 60 nm hydrodynamic")
results = [mps(tracer, 20e-3, 25e3, model) for model in ("langevin", "anisotropic", "debye", "brown", "neel-aligned", "neel")]
plot_mps(results, FIGURES / "mps.png")
print(f"wrote {FIGURES / 'mps.png'}")
for r in results:
    print(f"{r.model:12s} A3/A1 {r.ratio(3, 1):.4f}  A5/A3 {r.ratio(5, 3):.4f}")
