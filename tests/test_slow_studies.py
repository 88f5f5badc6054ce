"""Long studies, run by hand: ``python3 -m pytest -m slow -q -s``."""

import numpy as np
import pytest

import mpisim

pytestmark = pytest.mark.slow


def box_average(ph, grid, sub=4):
    from scipy.interpolate import RegularGridInterpolator

    f = RegularGridInterpolator(tuple(ph.grid.axis(i) for i in range(3)), ph.concentration,
                                bounds_error=False, fill_value=0)
    X, Y, Z = np.meshgrid(*(grid.axis(i) for i in range(3)), indexing="ij")
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    acc = 0
    for ox in offs:
        for oy in offs:
            for oz in offs:
                acc = acc + f(np.stack([X + ox * grid.spacing[0], Y + oy * grid.spacing[1],
                                        Z + oz * grid.spacing[2]], -1))
    return acc / sub**3


def test_3d_end_to_end(tmp_path):
    from mpisim.reco import reconstruct
    from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

    sc = mpisim.get_scanner("bruker-3d")
    tr = mpisim.Tracer()
    ph = mpisim.get_phantom("shapes", sc)
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings.realistic(sc, background_frames=5, seed=1))
    S = build_system_matrix(sc, tr, default_grid(sc, (15, 15, 9)),
                            CalibrationSettings(background_frames=10, min_freq=20e3, max_freq=400e3))
    r = reconstruct(meas, S, min_freq=30e3, lam=1e-3, iterations=50)
    truth = box_average(ph, S.grid)
    img = r.volume(0)
    corr = np.sum(img * truth) / (np.linalg.norm(img) * np.linalg.norm(truth))
    print(f"\n3D: correlation {corr:.3f}, iron {r.iron_mass[0] / ph.iron_mass:.3f} x true")
    assert corr >= 0.85
    assert r.iron_mass[0] == pytest.approx(ph.iron_mass, rel=0.15)


def test_detection_limit_reproducible_over_seed_sets():
    from mpisim.studies import titrate

    cells = [3e2, 1e3, 3e3, 1e4, 3e4]
    a = titrate(cells, 10e-15, seeds=5, blank_seeds=10)
    print(f"\ndetection limit {a['detection_limit_cells']:.3g} cells, threshold {a['threshold_ng']:.3g} ng")
    assert a["detection_limit_cells"] is not None and 3e2 <= a["detection_limit_cells"] <= 1e4
