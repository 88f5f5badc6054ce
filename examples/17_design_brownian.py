"""A drive-amplitude sweep at the scanner level (docs/howto-design.md, "Tracer models"): bruker-2d with both
drive channels at 5–25 mT, a Brownian tracer (25 nm cores, 30 nm hydrodynamic, in water: τ_B = 9.3 µs), with
the Debye model (the Langevin curve times one field-independent 1/(1 + iωτ_B)) and the Fokker–Planck Brown
model (mpisim.dynamics) side by side: the data-domain detection limit (Currie's L_D of the matched filter, the
forward model's own spectra; `mpisim design` prints it) and how many receive bins a 1 µg sample at the centre
lifts above the noise of one cycle (what the reconstruction has to work with: resolution comes from the high
ones)."""

import json

import numpy as np

from _common import FIGURES, plt, save
import mpisim
from mpisim.design import detection_limit
from mpisim.forward import field_offsets, receive_chain, response, unit_moments

base = mpisim.get_scanner("bruker-2d").to_dict()
amplitudes = np.linspace(5e-3, 25e-3, 9)
models = {"debye": mpisim.Tracer(core_diameter=25e-9, hydrodynamic_diameter=30e-9),
          "fokker-planck": mpisim.Tracer(core_diameter=25e-9, hydrodynamic_diameter=30e-9, model="brown")}
rows = []
for a in amplitudes:
    d = {**base, "drive_field": {**base["drive_field"],
                                 "channels": [{**c, "amplitude": float(a)} for c in base["drive_field"]["channels"]]}}
    sc = mpisim.Scanner.from_dict(d)
    row = {"amplitude_mT": round(a * 1e3, 2)}
    for name, tr in models.items():
        m = unit_moments(sc, tr, field_offsets(sc, np.zeros((1, 3))))[0] * 1e-9 * tr.moment_per_iron_mass  # 1 µg
        f = sc.frequencies
        u = np.einsum("lck,ck->lk", response(sc, tr, f, receive_chain(sc, f, bandstop=True)), np.fft.rfft(m, axis=-1))
        sigma_bin = np.sqrt(sc.num_samples / 2) * sc.receiver.noise_sigma
        row[f"{name}_LD_ng"] = detection_limit(sc, tr) * 1e12
        row[f"{name}_bins"] = int(np.sum(np.abs(u[:, 1:]) > sigma_bin))
    rows.append(row)
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
for name, style in (("debye", "s--"), ("fokker-planck", "o-")):
    ax.plot(amplitudes * 1e3, [r[f"{name}_LD_ng"] for r in rows], style, label=name)
    bx.plot(amplitudes * 1e3, [r[f"{name}_bins"] for r in rows], style, label=name)
ax.set(xlabel="drive amplitude / mT (both channels)", ylabel="L_D, data domain / ng Fe", yscale="log",
       title="bruker-2d, 25 nm cores, τ_B = 9.3 µs: detection limit")
bx.set(xlabel="drive amplitude / mT (both channels)", ylabel="receive bins above the noise",
       title="1 µg at the centre, one cycle")
ax.legend(fontsize=8)
bx.legend(fontsize=8)
save(fig, "design_brownian.png")
(FIGURES / "design_brownian.json").write_text(json.dumps(rows, indent=1))
print(f"{'mT':>5s} {'L_D debye/ng':>13s} {'L_D FP/ng':>10s} {'ratio':>6s} {'bins debye':>11s} {'bins FP':>8s}")
for r in rows:
    print(f"{r['amplitude_mT']:5.1f} {r['debye_LD_ng']:13.3g} {r['fokker-planck_LD_ng']:10.3g} "
          f"{r['debye_LD_ng'] / r['fokker-planck_LD_ng']:6.2f} {r['debye_bins']:11d} {r['fokker-planck_bins']:8d}")
