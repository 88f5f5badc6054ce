"""Probe: how the default estimator reads an isolated small sphere, with and without noise.

Isolated spheres of 0.5–1.5 mm (log-uniform) at random positions within ±30 % of the drive FOV, 1000 × the
data-domain detection limit of iron, the system matrix made with the sample's tracer (no model error); each
simulated once without noise and once with the scanner's realistic noise and 10 background frames, reconstructed
and quantified with the defaults in balls of 2 and 4 times the sphere's radius. Prints each reading/truth with its
95 % interval (none without noise: no noise realisations) and how many intervals cover the truth.

What it shows (``docs/howto-quantitation.md``, "The study behind the defaults"): whatever is left of the reading's
offset without noise is the estimator's own bias — on bruker-2d's 25 × 25 matrix the system matrix's columns at the
voxel centres, linearly interpolated, are not the signal of iron between them.

    python benchmarks/probe_isolated_spheres.py --scanner bruker-2d --spheres 8 --seed 3      # about 1 min
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import mpisim

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_quantitation as sq  # noqa: E402  (the study's scanners, phantoms and matrices)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scanner", default="bruker-2d", help="a scanner of the study (default bruker-2d)")
    ap.add_argument("--spheres", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--core", type=float, default=25.0, help="tracer core diameter in nm")
    a = ap.parse_args(argv)
    sc = sq.scanner_of(a.scanner)
    tracer = mpisim.Tracer(core_diameter=a.core * 1e-9)
    S = sq.system_matrix(a.scanner, sc, tracer.core_diameter)
    dims = [i for i in range(3) if sc.drive_fov[i] > 0]
    rng = np.random.default_rng(a.seed)
    iron = sq.detection_limit(sc, tracer) * 1000
    print(f"{a.scanner}, {a.core:g} nm, {a.spheres} isolated spheres of {iron * 1e12:.3g} ng; reading/truth "
          f"[95 % interval]")
    print(f"{'size':>7} {'noise':>5} {'ROI 2x':>26} {'ROI 4x':>26}")
    covered = total = 0
    offsets = []
    for _ in range(a.spheres):
        size = float(np.exp(rng.uniform(np.log(0.5e-3), np.log(1.5e-3))))
        c = np.zeros(3)
        for i in dims:
            c[i] = rng.uniform(-0.3, 0.3) * sc.drive_fov[i]
        ph = sq.phantom_of({"index": 0, "objects": [{"kind": "sphere", "size": size, "centre": c,
                                                       "radius": size / 2, "iron": iron}]}, sc)
        for noisy in (False, True):
            st = mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=int(rng.integers(2 ** 31))) \
                if noisy else mpisim.SimulationSettings()
            meas = mpisim.simulate(sc, tracer, ph, st)
            reco = mpisim.reconstruct(meas, S)
            cells = []
            for f in (2.0, 4.0):
                q = mpisim.quantify(reco, [mpisim.Sphere(tuple(c), f * size / 2, "roi")], measurement=meas,
                                    system_matrix=S)[0]
                cells.append(f"{q.iron / iron:6.3f} [{q.iron_low / iron:6.3f}, {q.iron_high / iron:6.3f}]")
                if noisy:
                    total += 1
                    covered += bool(q.iron_low <= iron <= q.iron_high)
                else:
                    offsets.append(q.iron / iron - 1)
            print(f"{size * 1e3:5.2f}mm {'yes' if noisy else 'no':>5} {cells[0]:>26} {cells[1]:>26}")
    print(f"without noise: offset {100 * np.median(offsets):+.1f} % in the median "
          f"({100 * min(offsets):+.1f} to {100 * max(offsets):+.1f} %); with noise: {covered} of {total} intervals "
          f"cover the truth")


if __name__ == "__main__":
    main()
