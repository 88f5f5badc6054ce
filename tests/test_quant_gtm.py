"""The bias-corrected ROI estimator (geometric transfer matrix, mpisim.reco.amounts) on small cases:
exact on data made by the system matrix itself, independent of the ROI's size on simulated data,
intervals that cover the truth, and the user mistakes it refuses."""

from copy import copy

import numpy as np
import pytest

import mpisim
from mpisim import constants as C
from mpisim.cli import main
from mpisim.errors import MPISimError
from mpisim.operator import SystemMatrix
from mpisim.phantoms import Phantom, phantom_grid, supersampled_fill
from mpisim.quant import quantify, quantify_sets
from mpisim.reco.amounts import gtm_amounts
from mpisim.reco.assemble import assemble
from mpisim.reco.solve import make_solver
from mpisim.reco.tracer_correction import TracerCorrection, model_matrix, transfer_function
from mpisim.frames import as_frames
from mpisim.systemmatrix import build_system_matrix, default_grid


@pytest.fixture(scope="module")
def bruker2d():
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer(core_diameter=25e-9)
    return sc, tr, build_system_matrix(sc, tr, default_grid(sc, (25, 25, 1)))


def _discs(sc, discs, seed, tracer=None, frames=1):
    """A phantom of discs [(x, y, radius m, iron kg)] and a realistic measurement with 10 background frames."""
    grid = phantom_grid(sc, resolution=0.25e-3)
    conc = np.zeros(grid.shape)
    for x, y, r, iron in discs:
        f = supersampled_fill(grid, lambda X, Y, Z, x=x, y=y, r=r: (X - x) ** 2 + (Y - y) ** 2 <= r * r, 3)
        conc += f * iron / C.FE_MOLAR_MASS / (f.sum() * grid.voxel_volume / C.LITRE)
    ph = Phantom(grid, conc, "discs")
    return ph, mpisim.simulate(sc, tracer or mpisim.Tracer(core_diameter=25e-9), ph,
                               mpisim.SimulationSettings.realistic(sc, background_frames=10, seed=seed, frames=frames))


def _graft_with_fiducials(sc, S, seed, tracer, frames=1):
    """A graft disc (3 µg at (2, −2) mm) and two fiducial discs of known iron, measured with ``tracer`` and
    reconstructed with S → (reco, measurement, the graft's ROI, the fiducials)."""
    discs = [(2e-3, -2e-3, 1.0e-3, 3e-9), (-7e-3, 7e-3, 1.0e-3, 8e-9), (7e-3, 7e-3, 1.0e-3, 2e-9)]
    _, meas = _discs(sc, discs, seed, tracer=tracer, frames=frames)
    reco = mpisim.reconstruct(meas, S)
    assert reco.num_frames == frames
    fid = [mpisim.Fiducial(mpisim.Sphere((x, y, 0.0), 2.5e-3, f"ref{i}"), iron, mpisim.Sphere((x, y, 0.0), r, f"s{i}"))
           for i, (x, y, r, iron) in enumerate(discs[1:])]
    return reco, meas, mpisim.Sphere((2e-3, -2e-3, 0.0), 2.5e-3, "graft"), fid


def test_gtm_exact_on_data_of_the_matrix_itself(bruker2d):
    """Data = S x for an x on the matrix's own grid and the true x as shape: the GTM returns the true ROI
    amounts to the batch's single-precision round-off, for any ROI size (the correction adds no bias)."""
    sc, tr, S = bruker2d
    g = S.grid
    x = np.zeros(g.size)
    x[g.size // 2 + 3] = 0.02
    x[g.size // 3] = 0.005
    ph = Phantom(g, g.unflatten(x), "on-grid")
    meas = mpisim.simulate(sc, tr, ph, mpisim.SimulationSettings())       # noise-free, the matrix's own model
    reco = mpisim.reconstruct(meas, S, uncertainty_samples=0)
    problem = assemble(as_frames(meas), S, reco.params)
    solver = make_solver(problem, reco.params.solver)
    pos = g.positions()
    for fac in (0.6, 1.5, 4.0):
        W = [mpisim.quant.roi_weights(mpisim.Sphere(tuple(pos[i]), fac * g.spacing[0], f"v{i}"), g)[0][1]
             for i in (g.size // 2 + 3, g.size // 3)]
        W = np.array(W)
        a = gtm_amounts(problem, solver, reco.info["lambda"], reco.info["sweeps"], reco.image[0], x, [(W, W)])[0]
        truth = W @ x
        np.testing.assert_allclose(a.amount, truth, rtol=2e-3)     # the batch runs in single precision


def test_amount_does_not_depend_on_roi_size(bruker2d):
    """One disc, ROIs of 1.5× to 4× its radius: the default estimator's amount stays within 10 % of the truth and
    moves by less than half as much as the image sum (roi-sum), which swings by more than 20 % over the same
    radii. (The study's numbers: docs/howto-quantitation.md.)"""
    sc, tr, S = bruker2d
    r = 1.0e-3
    ph, meas = _discs(sc, [(2e-3, -1.5e-3, r, 2e-9)], seed=3)
    reco = mpisim.reconstruct(meas, S)
    sets = [[mpisim.Sphere((2e-3, -1.5e-3, 0.0), f * r, "disc")] for f in (1.5, 2.0, 3.0, 4.0)]
    gtm = [q[0].iron for q in quantify_sets(reco, sets, measurement=meas, system_matrix=S)]
    plain = [q[0].iron for q in quantify_sets(reco, sets)]
    assert np.all(np.abs(np.array(gtm) / 2e-9 - 1) < 0.10), gtm
    assert max(plain) / min(plain) - 1 > 0.20, plain
    assert max(gtm) / min(gtm) - 1 < 0.5 * (max(plain) / min(plain) - 1), (gtm, plain)


def test_intervals_cover_the_truth_ci_sized(bruker2d):
    """24 seeded random cases (1–3 discs of 0.4–1.5 mm radius, iron over two decades, ROI 1.3–3× the radius):
    the 95 % intervals of the default estimator cover the truth in ≥ 80 % of the ROIs (CI-sized band; the
    full study is benchmarks/study_quantitation.py); the image sum's noise-only intervals cover far fewer."""
    sc, tr, S = bruker2d
    rng = np.random.default_rng(11)
    hit_gtm = hit_sum = n = 0
    for case in range(24):
        discs = []
        for _ in range(int(rng.integers(1, 4))):
            for _try in range(50):
                r = rng.uniform(0.4e-3, 1.5e-3)
                x, y = rng.uniform(-8e-3, 8e-3, 2)
                if all(np.hypot(x - d[0], y - d[1]) > 3.2 * (r + d[2]) for d in discs):
                    discs.append((x, y, r, 10 ** rng.uniform(-9.5, -7.5)))
                    break
        ph, meas = _discs(sc, discs, seed=case)
        reco = mpisim.reconstruct(meas, S)
        f = rng.uniform(1.3, 3.0)
        rois = [mpisim.Sphere((x, y, 0.0), f * r, f"d{j}") for j, (x, y, r, _) in enumerate(discs)]
        g = quantify(reco, rois, measurement=meas, system_matrix=S)
        p = quantify(reco, rois, estimator="roi-sum")
        for roi, a, b in zip(rois, g, p):
            w = mpisim.quant.roi_weights(roi, ph.grid)[0][1]
            truth = float(w @ ph.concentration_vector()) * ph.grid.voxel_volume / C.LITRE * C.FE_MOLAR_MASS
            hit_gtm += a.iron_low <= truth <= a.iron_high
            hit_sum += b.iron_low <= truth <= b.iron_high
            n += 1
    assert hit_gtm / n >= 0.80, (hit_gtm, n)
    assert hit_sum / n < hit_gtm / n - 0.2, (hit_sum, hit_gtm, n)


def test_gtm_refuses_overlap_and_says_why_it_falls_back(bruker2d):
    sc, tr, S = bruker2d
    ph, meas = _discs(sc, [(0.0, 0.0, 1e-3, 1e-9)], seed=1)
    reco = mpisim.reconstruct(meas, S)
    a, b = mpisim.Sphere((0, 0, 0), 3e-3, "left"), mpisim.Sphere((4e-3, 0, 0), 3e-3, "right")
    with pytest.raises(MPISimError, match="'left' and 'right' overlap"):
        quantify(reco, [a, b], measurement=meas, system_matrix=S)
    with pytest.raises(MPISimError, match="outside the reconstruction's field of view"):
        quantify(reco, [mpisim.Sphere((0.5, 0, 0), 1e-3, "far")], measurement=meas, system_matrix=S)
    q = quantify(reco, [a])                       # no measurement and matrix: the image sum, and it says so
    assert q.info["estimator"] == "roi-sum" and "not given" in q.info["why"]
    assert any("resolution and ringing" in w for w in q.warnings)
    with pytest.raises(MPISimError, match="estimator gtm: the measurement"):
        quantify(reco, [a], estimator="gtm")


def test_quantify_cli_gtm_and_bad_rois(bruker2d, tmp_path, capsys, monkeypatch):
    """The command line finds the measurement and matrix the reconstruction records; overlapping ROIs and
    an ROI outside the field of view end with one line and status 2."""
    sc, tr, S = bruker2d
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--scanner", "bruker-2d", "--phantom", "shapes", "--noise", "realistic",
                 "--background-frames", "10", "--out", "meas.mdf"]) == 0
    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "25x25x1", "--out", "sm.mdf"]) == 0
    assert main(["reco", "meas.mdf", "--sm", "sm.mdf", "--out", "reco.mdf"]) == 0
    capsys.readouterr()
    assert main(["quantify", "reco.mdf", "--roi", "dot=sphere:-3,2,0,4"]) == 0
    out = capsys.readouterr().out
    assert "estimator: gtm" in out
    for roi, needle in ((["--roi", "a=sphere:0,0,0,5", "--roi", "b=sphere:4,0,0,5"], "overlap"),
                        (["--roi", "sphere:500,0,0,2"], "outside the reconstruction's field of view")):
        assert main(["quantify", "reco.mdf", *roi]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_nifti_round_trip_quantify_equals_roi_in_mm(bruker2d, tmp_path):
    """Issue 21's round trip: export the reconstruction as NIfTI, draw a ball "in the exported space" as a
    finer NIfTI mask (as a lab would in 3D Slicer), quantify with it: the amount equals the same ball given
    in mm (within 2 %), for the bias-corrected estimator and the image sum."""
    import nibabel as nib

    from mpisim.io.nifti import MaskRoi, write_nifti

    sc, tr, S = bruker2d
    ph, meas = _discs(sc, [(3e-3, 2e-3, 1.2e-3, 3e-9), (-5e-3, -4e-3, 0.6e-3, 1e-9)], seed=4)
    reco = mpisim.reconstruct(meas, S)
    write_nifti(tmp_path / "reco.nii.gz", reco)
    img = nib.load(str(tmp_path / "reco.nii.gz"))
    assert img.shape[:2] == S.grid.shape[:2]
    centre, radius = np.array([3.0, 2.0, 0.0]), 3.0                      # mm, in the exported image's frame
    step = 0.2
    n = int(2 * radius / step) + 5
    origin = centre - step * (n - 1) / 2 * np.array([1, 1, 0])          # one plane at z = 0: the 2D slab
    ijk = np.indices((n, n, 1)).reshape(3, -1).T
    xyz = origin + ijk * step
    inside = (np.sum((xyz[:, :2] - centre[:2]) ** 2, axis=1) <= radius ** 2).reshape(n, n, 1)
    aff = np.diag([step, step, step, 1.0])
    aff[:3, 3] = origin
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), aff), str(tmp_path / "graft.nii.gz"))
    ball = mpisim.Sphere(tuple(centre * 1e-3), radius * 1e-3, "graft")
    mask = MaskRoi(tmp_path / "graft.nii.gz")
    for kw in ({"measurement": meas, "system_matrix": S}, {"estimator": "roi-sum"}):
        a = quantify(reco, [ball], **kw)[0].iron
        b = quantify(reco, [mask], **kw)[0].iron
        assert b == pytest.approx(a, rel=0.02), (kw.get("estimator", "gtm"), a, b)


def test_fiducials_calibrate_a_different_tracer(bruker2d):
    """The sample's tracer is 4 nm larger in core than the matrix's: without fiducials the amount is off by far
    more than 10 % (and the output says it cannot bound that); two fiducials of known iron in the field of
    view make a calibration line that brings it within 10 %, its interval covering the truth, with the tracer
    correction (their known geometry anchors the fitted spectrum) and without it (the line alone)."""
    sc, tr, S = bruker2d
    reco, meas, roi, fid = _graft_with_fiducials(sc, S, 2, mpisim.Tracer(core_diameter=29e-9))
    plain = quantify(reco, [roi], measurement=meas, system_matrix=S)
    assert abs(plain[0].iron / 3e-9 - 1) > 0.2, plain[0].iron
    assert any("no fiducials" in w for w in plain.warnings)
    cal = quantify(reco, [roi], measurement=meas, system_matrix=S, fiducials=fid, tracer_correction="off")
    assert cal[0].iron == pytest.approx(3e-9, rel=0.10)
    assert cal[0].iron_low <= 3e-9 <= cal[0].iron_high
    assert cal.info["calibration"]["slope"] > 1.2 and len(cal.info["calibration"]["points"]) == 2
    assert "tracer_correction" not in cal.info
    # with the tracer correction (the default): the matrix is the forward model's, so the sample's core is fitted
    # (29 nm within 1 nm), no relaxation is found and the signal per iron is the matrix tracer's; the frame is
    # reconstructed with the model's rows for that core, and the output says so
    cal = quantify(reco, [roi], measurement=meas, system_matrix=S, fiducials=fid)
    tc = cal.info["tracer_correction"]
    assert tc["core"] == pytest.approx(29e-9, abs=1e-9) and tc["matrix_core"] == 25e-9, tc
    assert tc["tau"] < 0.1e-6 and tc["scale"] == pytest.approx(1.0, abs=0.1), tc
    assert cal.info["tracer_core_gain"] > 100
    assert any("core fitted to" in w for w in cal.warnings), cal.warnings
    assert cal[0].iron == pytest.approx(3e-9, rel=0.10) and cal[0].iron_low <= 3e-9 <= cal[0].iron_high
    assert cal.info["calibration"]["slope"] == pytest.approx(1.0, abs=0.1)     # nothing left for the line
    with pytest.raises(MPISimError, match="at least two fiducials"):
        quantify(reco, [roi], measurement=meas, system_matrix=S, fiducials=fid[:1])
    with pytest.raises(MPISimError, match="must be > 0 kg"):
        mpisim.Fiducial(roi, 0.0)


def test_simulate_places_fiducials_and_quantify_calibrates_with_them(tmp_path, capsys, monkeypatch):
    """`simulate --fiducial x,y,z,r=AMOUNT` adds reference samples holding exactly their iron (the phantom's
    recorded truth grows by their sum); `quantify --fiducial` reads them back into a calibration line; a
    fiducial without a unit or outside the field of view is refused with one line."""
    import json

    monkeypatch.chdir(tmp_path)
    base = ["simulate", "--scanner", "bruker-2d", "--phantom", "shapes", "--noise", "realistic", "--background-frames",
            "10"]
    assert main([*base, "--out", "plain.mdf"]) == 0
    assert main([*base, "--fiducial=-9,-9,0,1=8ug", "--fiducial", "9,9,0,1=2ug", "--fiducial=-9,9,0,1=5ug",
                 "--out", "meas.mdf"]) == 0
    plain, meas = mpisim.read_mdf("plain.mdf"), mpisim.read_mdf("meas.mdf")
    assert meas.truth.name.endswith("+fiducials")
    grid = lambda t: mpisim.Grid(tuple(int(v) for v in t.size), tuple(t.field_of_view), tuple(t.center))
    iron = lambda t: float(t.concentration.sum()) * grid(t).voxel_volume / C.LITRE * C.FE_MOLAR_MASS
    assert iron(meas.truth) - iron(plain.truth) == pytest.approx(15e-9, rel=1e-9)
    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "25x25x1", "--out", "sm.mdf"]) == 0
    assert main(["reco", "meas.mdf", "--sm", "sm.mdf", "--out", "reco.mdf"]) == 0
    capsys.readouterr()
    assert main(["quantify", "reco.mdf", "--roi", "dot=sphere:4,5,0,2.5", "--fiducial", "a=sphere:-9,-9,0,2.5=8ug,sample=1",
                 "--fiducial", "b=sphere:9,9,0,2.5=2ug,sample=1", "--fiducial", "c=sphere:-9,9,0,2.5=5ug,sample=1",
                 "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["calibration"]["slope"] == pytest.approx(1.0, abs=0.1)      # the matrix's own tracer: slope ≈ 1
    tc = q["tracer_correction"]                                           # and nothing to correct
    assert tc["tau"] < 0.05e-6 and tc["scale"] == pytest.approx(1.0, abs=0.1), tc
    r = q["rois"][0]
    assert r["iron_95_ng"][0] <= r["truth_ng"] <= r["iron_95_ng"][1]
    for bad, needle in (("0,0,0,1=5", "needs a unit"), ("300,0,0,1=5ug", "outside the phantom's field of view")):
        assert main([*base, "--fiducial", bad, "--out", "x.mdf"]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
        assert not (tmp_path / "x.mdf").exists()


def test_tracer_correction_recovers_relaxation(bruker2d):
    """A sample whose particles relax (Debye τ = 2 µs; the matrix's do not): the spectral fit anchored by two
    fiducials finds τ within 2 % and the amount comes within 10 % of the truth, its interval covering it;
    the calibration line alone (tracer correction off) leaves it off by more than 30 %."""
    sc, tr, S = bruker2d
    reco, meas, roi, fid = _graft_with_fiducials(sc, S, 2, mpisim.Tracer(core_diameter=25e-9, relaxation_time=2e-6))
    cal = quantify(reco, [roi], measurement=meas, system_matrix=S, fiducials=fid)
    assert cal.info["tracer_correction"]["tau"] == pytest.approx(2e-6, rel=0.02)
    assert cal[0].iron == pytest.approx(3e-9, rel=0.10)
    assert cal[0].iron_low <= 3e-9 <= cal[0].iron_high
    # the sample's core is the matrix's: the core search runs and keeps it (the likelihood-ratio test)
    assert cal.info["tracer_correction"]["core"] is None and cal.info["tracer_correction"]["matrix_core"] == 25e-9
    assert cal.info["tracer_core_gain"] < 9 and not cal.info["tracer_core_at_bound"]
    assert any("25.0 nm core explains the data best" in w for w in cal.warnings), cal.warnings
    assert any("tracer correction" in w and f"{cal.info['tracer_correction']['tau'] * 1e6:.2f} µs" in w
               for w in cal.warnings), cal.warnings
    plain_line = quantify(reco, [roi], measurement=meas, system_matrix=S,
                          fiducials=[mpisim.Fiducial(f.roi, f.iron) for f in fid])        # no sample outlines
    assert "tracer_correction" not in plain_line.info
    assert any("no tracer correction" in w and "sample outline" in w for w in plain_line.warnings)
    off = quantify(reco, [roi], measurement=meas, system_matrix=S, fiducials=fid, tracer_correction="off")
    assert abs(off[0].iron / 3e-9 - 1) > 0.3
    faint = [mpisim.Fiducial(f.roi, 1e-18, f.sample) for f in fid]          # 1 fg: no signal to anchor a fit on
    with pytest.raises(MPISimError, match="below the noise"):
        quantify(reco, [roi], measurement=meas, system_matrix=S, fiducials=faint, tracer_correction="on")
    with pytest.raises(MPISimError, match="needs fiducials"):
        quantify(reco, [roi], measurement=meas, system_matrix=S, tracer_correction="on")
    with pytest.raises(MPISimError, match="auto, on or off"):
        quantify(reco, [roi], measurement=meas, system_matrix=S, tracer_correction="yes")


def test_tracer_correction_on_one_frame_of_several(bruker2d):
    """Three frames of a relaxing sample: quantifying the last one fits and corrects that frame alone (the
    reconstruction it uses has one frame) and finds the same τ and amount as a single-frame acquisition."""
    sc, tr, S = bruker2d
    reco, meas, roi, fid = _graft_with_fiducials(sc, S, 4, mpisim.Tracer(core_diameter=25e-9, relaxation_time=2e-6), 3)
    cal = quantify(reco, [roi], 10e-15, 2, measurement=meas, system_matrix=S, fiducials=fid)
    assert cal.info["tracer_correction"]["tau"] == pytest.approx(2e-6, rel=0.02)
    assert cal[0].iron == pytest.approx(3e-9, rel=0.10) and cal[0].iron_low <= 3e-9 <= cal[0].iron_high


def test_core_beyond_the_search_is_said_on_a_later_frame(bruker2d):
    """A sample whose core (38 nm) lies beyond the search's span (the matrix's 25 nm ± 10 nm), quantified on the
    second of two frames: the core fit runs on that frame alone, stops at the bound (35 nm), and the output says in
    one line that the tracer may differ more than a core size can say; the fitted core still beats the matrix's own
    (the likelihood-ratio gain) and the calibration line takes the rest, its interval covering the truth."""
    sc, tr, S = bruker2d
    reco, meas, roi, fid = _graft_with_fiducials(sc, S, 6, mpisim.Tracer(core_diameter=38e-9), 2)
    cal = quantify(reco, [roi], 10e-15, 1, measurement=meas, system_matrix=S, fiducials=fid)
    tc = cal.info["tracer_correction"]
    assert tc["core"] == pytest.approx(35e-9, abs=1e-12) and cal.info["tracer_core_at_bound"], cal.info
    assert cal.info["tracer_core_gain"] > 9
    assert sum("bound of the search" in w for w in cal.warnings) == 1, cal.warnings
    assert cal[0].iron == pytest.approx(3e-9, rel=0.10)
    assert cal[0].iron_low <= 3e-9 <= cal[0].iron_high, (cal[0].iron, cal[0].iron_low, cal[0].iron_high)
    assert "core fitted to 35.0 nm" in cal.warnings[0] and "; its signal is ×" in cal.warnings[0], cal.warnings


def test_tracer_correction_factor_is_debye():
    """The correction's factor at a given τ is the tracer model's Debye factor 1/(1 + iωτ) (PHYSICS.md), and its
    transfer function divides only the matrix's bins."""
    f = np.linspace(0, 1e6, 101)
    tc = TracerCorrection(scale=2.0, tau=1.5e-6)
    assert np.allclose(tc.factor(f), 2.0 * mpisim.Tracer(relaxation_time=1.5e-6).debye_factor(f), rtol=1e-12)
    tf = transfer_function(tc, f[10:20], np.arange(10, 20), None, 3, 101)
    assert tf.shape == (3, 101) and np.all(tf[:, :10] == 1) and np.allclose(tf[1, 10:20], tc.factor(f[10:20]))


def test_model_rows_reproduce_the_matrix_and_a_measured_matrix_keeps_its_core(bruker2d):
    """The forward model's rows for the matrix's own tracer, scaled row by row, are the stored rows (a matrix
    mpisim made: 1e-6); a larger core gives other rows (the point-spread function narrows). A matrix that does
    not record its scanner and tracer (a measured one) gets the spectral correction without a core fit, and the
    output says why in one line."""
    sc, tr, S = bruker2d
    rng = np.random.default_rng(0)
    c, k = rng.integers(0, S.num_rx_channels, 40), rng.integers(1, S.bins.size, 40)
    stored = S.rows(c, k)
    same = model_matrix(S, S.acquisition.tracer).rows(c, k)
    assert np.linalg.norm(same - stored) <= 1e-5 * np.linalg.norm(stored)
    other = model_matrix(S, mpisim.Tracer(core_diameter=29e-9)).rows(c, k)
    assert np.linalg.norm(other - stored) > 0.1 * np.linalg.norm(stored)
    acq = copy(S.acquisition)
    acq.scanner = None
    measured = SystemMatrix(None, S.bins, S.frequencies, S.grid, S.snr, None, acq, S.unit, origin="measured.mdf",
                            row_source=S.row_source)
    reco, meas, roi, fid = _graft_with_fiducials(sc, measured, 2,
                                                 mpisim.Tracer(core_diameter=25e-9, relaxation_time=2e-6))
    cal = quantify(reco, [roi], measurement=meas, system_matrix=measured, fiducials=fid)
    assert cal.info["tracer_correction"]["core"] is None
    assert "measured?" in cal.info["tracer_core_skipped"]
    assert sum("core size was not fitted" in w for w in cal.warnings) == 1, cal.warnings
    assert cal.info["tracer_correction"]["tau"] == pytest.approx(2e-6, rel=0.02)
    assert cal[0].iron == pytest.approx(3e-9, rel=0.10)


def test_crowding_line_names_the_roi_beside_a_brighter_object(bruker2d):
    """A faint disc 2.5 mm from one 20 times brighter (bruker-2d, 1 mm voxels) and an isolated disc of the faint one's
    iron: the crowding line names the faint disc's ROI and not the isolated one's, nor the bright one's; a
    single-ROI set around the faint disc alone (its neighbour then in the rest) is named too."""
    sc, tr, S = bruker2d
    discs = [(-3e-3, 2e-3, 0.5e-3, 10e-9), (-0.5e-3, 2e-3, 0.5e-3, 0.5e-9), (4e-3, -5e-3, 0.5e-3, 0.5e-9)]
    _, meas = _discs(sc, discs, seed=11)
    reco = mpisim.reconstruct(meas, S)
    rois = [mpisim.Sphere((x, y, 0.0), 1.2e-3, n) for (x, y, _, _), n in zip(discs, ("bright", "faint", "alone"))]
    both, alone = quantify_sets(reco, [rois, rois[1:2]], measurement=meas, system_matrix=S)
    assert both.info["crowded"] == ["faint"]
    assert alone.info["crowded"] == ["faint"]
    assert any("beside more iron than they hold" in w and "faint" in w for w in both.warnings)
    plain = quantify_sets(reco, [rois[2:]], measurement=meas, system_matrix=S)[0]
    assert plain.info["crowded"] == [] and not any("beside more iron" in w for w in plain.warnings)


def test_crowded_rois_counts_only_iron_near_the_edge_and_not_owned():
    """crowded_rois on a 9 × 9 grid: a one-voxel ROI holding 1 kg is named when 1.5 kg it does not own lies two voxels
    from its edge (along an axis, or one step along each of two), not when it lies three voxels away (beyond
    CROWDED_VOXELS), nor when the ROI owns it; with two
    contrasts the iron beside it is summed over both (0.8 + 0.7 kg > 1 kg), each with its own ownership."""
    from mpisim.quant import CROWDED_VOXELS, crowded_rois

    assert CROWDED_VOXELS == 2
    g = mpisim.Grid((9, 9, 1), (9e-3, 9e-3, 1e-3))
    idx = lambda x, y: y * 9 + x                                  # x fastest
    w = np.zeros(g.size)
    w[idx(4, 4)] = 1.0
    parsed = [("roi", w, g.voxel_volume, None)]

    def beside(x, y, kg):
        m = np.zeros(g.size)
        m[idx(x, y)] = kg
        return m

    none = np.zeros((1, g.size))
    assert crowded_rois(parsed, [none], [beside(6, 4, 1.5)], [1.0], g) == ["roi"]        # the 2nd voxel beyond
    assert crowded_rois(parsed, [none], [beside(5, 5, 1.5)], [1.0], g) == ["roi"]        # diagonal: 2 steps
    assert crowded_rois(parsed, [none], [beside(7, 4, 1.5)], [1.0], g) == []            # the 3rd voxel beyond
    assert crowded_rois(parsed, [none], [beside(6, 4, 0.9)], [1.0], g) == []            # less than it holds
    owned = none.copy()
    owned[0, idx(6, 4)] = 1.0
    assert crowded_rois(parsed, [owned], [beside(6, 4, 1.5)], [1.0], g) == []           # its own content
    assert crowded_rois(parsed, [none, none], [beside(6, 4, 0.8), beside(4, 6, 0.7)], [1.0], g) == ["roi"]
    assert crowded_rois(parsed, [none, owned], [beside(4, 6, 0.8), beside(6, 4, 0.7)], [1.0], g) == []
