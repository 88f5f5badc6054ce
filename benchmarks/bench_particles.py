"""Particle models: time per voxel-period of each (issue 23, first part).

Usage: python benchmarks/bench_particles.py

For one drive period of bruker-2d (1632 samples, 12 mT per channel) and 25 nm cores (60 nm
hydrodynamic), the time to compute one voxel's mean moment over the period with:
  langevin        the forward model's compiled kernel (mpisim.forward.unit_moments), voxels batched;
  fp-axial        the Fokker–Planck moment equations by harmonic balance (mpisim.fokker_planck.
                  periodic_response), a 1D drive of the same amplitude and frequency;
  fp-sphere       Brownian rotation under the 2D Lissajous field (mpisim.fokker_planck.BrownSphere,
                  Crank–Nicolson to the periodic state), at two spherical-harmonic degrees.
A system matrix needs one voxel-period per voxel: the last column says what a 25×25 grid would cost
on one core with no sharing between voxels (the target of issue 23 is 10 min on 2 cores; interpolation
in offset-field space is not built yet). The script also prints the convergence of the sphere solver
in its degree and in its time steps (Crank–Nicolson, second order). fp-axial and langevin times are
medians of 3 repeats; the sphere times are single runs.
"""

import time

import numpy as np

import mpisim
from mpisim import fokker_planck as fp
from mpisim.forward import unit_moments

from bench_kaczmarz import med                                       # median of repeats after a warm-up


def main():
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer(core_diameter=25e-9, hydrodynamic_diameter=60e-9)
    V = sc.num_samples
    period = sc.drive_field.cycle
    beta = float(tr.beta)
    tau_b = fp.brown_time(60e-9, tr.viscosity, tr.temperature)
    rows = []
    offsets = np.random.default_rng(0).uniform(-0.01, 0.01, (625, 3)) * np.array([1, 1, 0])
    unit_moments(sc, tr, offsets[:2])                                 # compile
    t = med(lambda: unit_moments(sc, tr, offsets))
    rows.append(("langevin (compiled kernel, 625 voxels)", t / 625))
    xi0 = beta * sc.drive_field.channels[0].amplitude
    f = sc.drive_field.frequencies[0]
    t = med(lambda: fp.periodic_response(xi0, 2 * np.pi * f * tau_b, xi_static=0.3 * xi0))
    rows.append((f"fp-axial (ξ0 = {xi0:.1f}, ωτ_B = {2 * np.pi * f * tau_b:.1f})", t))
    hd = sc.drive_waveform * beta                                    # (3, V) field energy over the period
    moments = {}
    for lmax in (12, 20, 28):
        sphere = fp.BrownSphere(lmax)
        step = max(1, V // 256)                                      # 256 time samples of the period
        fields = hd[:, ::step] + beta * offsets[0][:, None]
        t0 = time.perf_counter()
        moments[lmax] = sphere.periodic(fields, period / tau_b)
        rows.append((f"fp-sphere lmax {lmax} ({sphere.size} coefficients, {fields.shape[1]} steps)",
                     time.perf_counter() - t0))
    sphere = fp.BrownSphere(12)                                     # time steps: 272 against 816 a period
    fine = sphere.periodic(hd[:, ::2] + beta * offsets[0][:, None], period / tau_b)[:, ::3]
    print(f"fp-sphere lmax 12: 272 against 816 steps a period: largest difference "
          f"{np.abs(moments[12] - fine).max() / np.abs(fine).max():.1e} of the moment's peak")
    ref = np.abs(moments[28]).max()
    for lmax in (12, 20):
        print(f"fp-sphere lmax {lmax}: largest difference from lmax 28: "
              f"{np.abs(moments[lmax] - moments[28]).max() / ref:.1e} of the moment's peak")
    print(f"bruker-2d, {V} samples per period ({period * 1e3:.3f} ms), 25 nm cores, τ_B = {tau_b * 1e6:.0f} µs")
    print(f"{'model':60s} {'s per voxel-period':>18s} {'25x25 grid':>12s}")
    for name, t in rows:
        print(f"{name:60s} {t:18.4g} {t * 625 / 60:10.2f} min")


if __name__ == "__main__":
    main()
