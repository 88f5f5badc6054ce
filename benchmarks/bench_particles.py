"""Particle models: time per voxel-period of each (issue 23, first part).

Usage: python benchmarks/bench_particles.py [--neel]   (--neel: only the Néel models' table)

For one drive period of bruker-2d (1632 samples, 12 mT per channel) and 25 nm cores (60 nm
hydrodynamic), the time to compute one voxel's mean moment over the period with:
  langevin        the forward model's compiled kernel (mpisim.forward.unit_moments), voxels batched;
  fp-axial        the Fokker–Planck moment equations by harmonic balance (mpisim.fokker_planck.
                  periodic_response), a 1D drive of the same amplitude and frequency;
  fp-sphere       Brownian rotation under the 2D Lissajous field (mpisim.fokker_planck.BrownSphere,
                  Crank–Nicolson to the periodic state), at two spherical-harmonic degrees.
A system matrix needs one voxel-period per voxel: the last column says what a 25×25 grid would cost
on one core with no sharing between voxels. The second table (:func:`imaging`) times the imaging forward
model's particle models (mpisim.dynamics: the compiled Runge–Kutta Fokker–Planck kernel for brown) and
whole bruker-2d 25×25 system matrices built with them, locally and on 2 Dask workers (the target of
issue 23: 10 min on 2 cores), and extrapolates bruker-3d 19³ from 16 of its voxels. The script also prints the convergence of the sphere solver
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


def imaging(workers=2):
    """The imaging forward model with each particle model (mpisim.dynamics): time per voxel-period of the
    compiled kernels on this machine's cores, and whole system matrices (no cache) built locally and on
    ``workers`` Dask workers; bruker-3d 19³ extrapolated from a sample of its voxels."""
    import os
    import tempfile

    from mpisim.forward import field_offsets

    tracers = {"langevin": mpisim.Tracer(core_diameter=25e-9),
               "anisotropic (K 8 kJ/m³, random axes)": mpisim.Tracer(core_diameter=25e-9, anisotropy=8e3,
                                                                     model="anisotropic"),
               "brown (60 nm hydrodynamic, τ_B 74 µs)": mpisim.Tracer(core_diameter=25e-9, hydrodynamic_diameter=60e-9,
                                                                    model="brown"),
               "brown (30 nm hydrodynamic, τ_B 9.3 µs)": mpisim.Tracer(core_diameter=25e-9, hydrodynamic_diameter=30e-9,
                                                                     model="brown")}
    print(f"\nimaging forward model, {os.cpu_count()} cores (time per voxel-period: all cores, divided by voxels)")
    print(f"{'model':42s} {'scanner':>10s} {'s/voxel-period':>15s} {'matrix':>10s} {'build s':>9s} "
          f"{f'{workers} workers s':>13s}")
    for scanner, shape, fov in (("bruker-2d", (25, 25, 1), None), ("bruker-3d", (19, 19, 19), (0.038, 0.038, 0.019))):
        sc = mpisim.get_scanner(scanner)
        grid = mpisim.default_grid(sc, shape, fov) if fov is None else mpisim.Grid(shape, fov)
        pos = grid.positions()
        for name, tr in tracers.items():
            sample = pos[np.random.default_rng(1).choice(len(pos), 16 if scanner == "bruker-3d" else 64, replace=False)]
            off = field_offsets(sc, sample)
            unit_moments(sc, tr, off[:2])                           # compile, tables
            t0 = time.perf_counter()
            unit_moments(sc, tr, off)
            per = (time.perf_counter() - t0) / len(off)
            build = dask = float("nan")
            if scanner == "bruker-2d":
                with tempfile.TemporaryDirectory() as d:
                    t0 = time.perf_counter()
                    mpisim.build_system_matrix(sc, tr, grid, out=os.path.join(d, "a.mdf"), use_cache=False, load=False)
                    build = time.perf_counter() - t0
                    if tr.model == "brown":
                        t0 = time.perf_counter()
                        mpisim.build_system_matrix(sc, tr, grid, out=os.path.join(d, "b.mdf"), use_cache=False,
                                                   load=False, workers=workers)
                        dask = time.perf_counter() - t0
            label = f"{per * grid.size / 60:8.1f} min" if scanner == "bruker-3d" else ""
            print(f"{name:42s} {scanner:>10s} {per:15.4g} {grid.size:10d} {build:9.1f} {dask:13.1f}"
                  + (f"   ({label} for the matrix, extrapolated)" if label else ""))
    print("no interpolation in offset-field space: every voxel's own field is integrated (interpolation error 0)")


def neel_models():
    """The spectrometer's Néel models (mpisim.neel_brown): one voxel-period of a 1D drive (25 kHz) solved to its
    periodic state by the matrix continued fraction, operators built and cached first (their build is timed
    apart), for one core size; the time of a whole MPS is this times the size-quadrature nodes."""
    from mpisim import neel_brown as nb

    print(f"\nNéel models, one core size, 25 kHz drive along one axis (medians of 3 after a warm-up)")
    print(f"{'model':58s} {'degree':>7s} {'build s':>8s} {'s per voxel-period':>19s}")
    omega = 2 * np.pi * 25e3
    tau_d = 2.6e-8                                                   # 25 nm magnetite, α = 0.1
    for sigma, xi0 in ((3.0, 5.0), (9.0, 10.0), (9.0, 24.0)):
        L = nb.neel_degree(xi0, sigma)
        K = fp.harmonics_for(xi0, sigma)
        nb._neel_parts.cache_clear()
        t0 = time.perf_counter()
        nb.neel_operators(L, sigma, 0.1)
        build = time.perf_counter() - t0
        t = med(lambda: nb.neel_harmonics(xi0, omega * tau_d, sigma, harmonics=K))
        print(f"{f'neel, random axes (σ {sigma:g}, ξ0 {xi0:g}, {K} harmonics, 8 axes)':58s} {L:7d} {build:8.2f} {t:19.3f}")
    for sigma, xi0 in ((2.0, 5.0), (5.0, 5.0)):
        L, La = nb.neel_degree(xi0, sigma), nb.axis_degree(sigma)
        K = fp.harmonics_for(xi0, sigma)
        nb.neel_brown_operators.cache_clear()
        t0 = time.perf_counter()
        nb.neel_brown_operators(L, La, sigma, 0.1)
        build = time.perf_counter() - t0
        t = med(lambda: nb.neel_brown_harmonics(xi0, omega, sigma, tau_d, 20e-6, harmonics=K))
        print(f"{f'neel-brown (σ {sigma:g}, ξ0 {xi0:g}, τ_B 20 µs, {K} harmonics)':58s} {f'{L}/{La}':>7s} "
              f"{build:8.2f} {t:19.3f}")


if __name__ == "__main__":
    import sys

    if "--neel" in sys.argv:                                         # the Néel rows alone
        neel_models()
    else:
        main()
        imaging()
        neel_models()
