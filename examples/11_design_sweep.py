"""A scanner-design sweep on Dask (docs/howto-design.md): resolution and detection limit against the
selection-field gradient for three core sizes, and the drive field against the safety limits."""

import json
import tempfile

from _common import FIGURES, plt, save
from mpisim.sweep import run_sweep

def main():
    with tempfile.TemporaryDirectory() as d:
        # 18 designs on a local Dask cluster of 2 workers (what `mpisim sweep ... --workers 2` does)
        rows = run_sweep("bruker-2d", {"scanner.selection_field.gradient": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                                       "tracer.core_diameter": [20e-9, 25e-9, 30e-9]},
                         f"{d}/gradient", workers=2, progress=False, plot=False)
        safety = run_sweep("bruker-2d", {"scanner.drive_field.amplitude": [4e-3, 6e-3, 8e-3, 10e-3, 12e-3, 14e-3],
                                         "scanner.drive_field.base_frequency": [1.25e6, 2.5e6]},
                           f"{d}/drive", workers=0, progress=False, plot=False)

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for dia in (20e-9, 25e-9, 30e-9):
        rs = [r for r in rows if float(r["tracer.core_diameter"]) == dia]
        g = [float(r["scanner.selection_field.gradient"]) for r in rs]
        ax[0].semilogy(g, [float(r["resolution_x"]) * 1e3 for r in rs], "o-", label=f"{dia * 1e9:g} nm: simulated PSF")
        ax[0].semilogy(g, [float(r["resolution_x_langevin"]) * 1e3 for r in rs], "k:", lw=1)
        ax[1].semilogy(g, [float(r["detection_limit_cells"]) for r in rs], "o-", label=f"{dia * 1e9:g} nm")
    ax[0].set(xlabel="gradient (strongest axis) / T/m/µ0", ylabel="FWHM along x / mm",
              title="resolution (dotted: Langevin estimate)")
    ax[0].legend(fontsize=8)
    ax[1].set(xlabel="gradient (strongest axis) / T/m/µ0", ylabel="labelled cells (10 pg Fe each)",
              title="detection limit, one drive cycle (SNR 5)")
    ax[1].legend(fontsize=8)
    for f0 in (1.25e6, 2.5e6):
        rs = [r for r in safety if float(r["scanner.drive_field.base_frequency"]) == f0]
        a = [float(r["scanner.drive_field.amplitude"]) * 1e3 for r in rs]
        ax[2].plot(a, [float(r["pns_ratio"]) for r in rs], "o-", label=f"peak / PNS limit, f_x = {f0 / 102 / 1e3:.1f} kHz")
        ax[2].plot(a, [float(r["sar_ratio"]) for r in rs], "s--", label=f"SAR / 2 W/kg, f_x = {f0 / 102 / 1e3:.1f} kHz")
    ax[2].axhline(1, color="k", lw=0.8)
    ax[2].set(xlabel="drive amplitude per channel / mT", ylabel="ratio to limit", title="drive-field safety (human torso)")
    ax[2].legend(fontsize=7)
    save(fig, "design_sweep.png")
    (FIGURES / "design_sweep.json").write_text(json.dumps({"gradient": rows, "drive": safety}, indent=1))
    print(f"wrote {FIGURES / 'design_sweep.json'}")


if __name__ == "__main__":          # Dask starts worker processes: the script must be importable
    main()
