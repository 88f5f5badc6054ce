"""A drive-amplitude sweep at the spectrometer level (docs/howto-design.md, "Tracer models"): a Brownian
tracer (25 nm cores, 60 nm hydrodynamic, in water) at 25 kHz, 5–25 mT, with the Debye model (one
field-independent τ_B) and the Fokker–Planck Brown model side by side: the 3rd and 5th harmonic of
the receive signal per kg of iron, and A3/A1."""

import json

import numpy as np

from _common import FIGURES, plt, save
from mpisim.mps import mps
from mpisim.particles import Tracer

tracer = Tracer(core_diameter=25e-9, hydrodynamic_diameter=60e-9, name="25 nm, 60 nm hydrodynamic")
amplitudes = np.linspace(5e-3, 25e-3, 9)
rows = []
for a in amplitudes:
    row = {"amplitude_mT": round(a * 1e3, 2)}
    for model in ("debye", "brown"):
        r = mps(tracer, a, 25e3, model)
        row[f"{model}_A3"], row[f"{model}_A5"], row[f"{model}_A3/A1"] = float(r.signal[3]), float(r.signal[5]), r.ratio(3, 1)
    rows.append(row)
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
for model, style in (("debye", "s--"), ("brown", "o-")):
    ax.plot(amplitudes * 1e3, [r[f"{model}_A3"] for r in rows], style, label=f"{model}: 3rd harmonic")
    ax.plot(amplitudes * 1e3, [r[f"{model}_A5"] for r in rows], style, alpha=0.5, label=f"{model}: 5th harmonic")
    bx.plot(amplitudes * 1e3, [r[f"{model}_A3/A1"] for r in rows], style, label=model)
ax.set(xlabel="drive amplitude / mT", ylabel="signal k·ω·|M_k| / (A·m²/(kg Fe·s))", yscale="log",
       title="harmonics per kg of iron, 25 kHz")
ax.legend(fontsize=8)
bx.set(xlabel="drive amplitude / mT", ylabel="A3/A1", title="harmonic ratio")
bx.legend(fontsize=8)
save(fig, "mps_amplitude.png")
(FIGURES / "mps_amplitude.json").write_text(json.dumps(rows, indent=1))
print(f"{'mT':>5s} {'debye A3':>10s} {'brown A3':>10s} {'debye A3/A1':>12s} {'brown A3/A1':>12s}")
for r in rows:
    print(f"{r['amplitude_mT']:5.1f} {r['debye_A3']:10.3g} {r['brown_A3']:10.3g} {r['debye_A3/A1']:12.4f} {r['brown_A3/A1']:12.4f}")
