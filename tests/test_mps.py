"""``mpisim mps`` (issue 23, item 3): the models agree where physics says they must, and the command
keeps its promises."""

import json

import numpy as np
import pytest

from mpisim import fokker_planck as fp
from mpisim.cli import main
from mpisim.mps import mps
from mpisim.particles import Tracer


def test_slow_drive_of_aligned_anisotropic_cores_is_their_equilibrium():
    """At 100 Hz the Néel time (σ ≈ 5) is negligible: the neel model's harmonics are those of the
    equilibrium magnetisation of an aligned anisotropic particle, from a quadrature of the Boltzmann
    distribution (another route than the Fokker–Planck moment equations), Fourier-transformed here."""
    tr = Tracer(core_diameter=20e-9, anisotropy=5e3)
    sigma = 5e3 * np.pi / 6 * (20e-9) ** 3 / (1.380649e-23 * tr.temperature)
    assert 4 < sigma < 6
    amplitude = 10e-3
    r = mps(tr, amplitude, 100.0, "neel-aligned", damping=1.0)
    t = np.arange(512) / 512 * 2 * np.pi
    xi0 = tr.beta * amplitude
    eq = np.array([fp.anisotropic_equilibrium(xi0 * np.sin(x), sigma, 0.0) for x in t])
    ref = np.fft.rfft(eq) / t.size * tr.moment_per_iron_mass
    for k in (1, 3, 5, 7):
        assert abs(r.harmonics[k] - ref[k]) < 1e-3 * abs(ref[1]), k
    assert r.ratio(3, 1) > mps(tr, amplitude, 100.0, "langevin").ratio(3, 1)   # aligned axes: squarer loop


def test_saturation_moment_per_iron_mass():
    """Far above saturation the moment reaches M_s per iron mass: 0.6 T/µ0 / (5170 kg/m³ × 0.7236)."""
    r = mps(Tracer(core_diameter=30e-9), 0.5, 25e3, "langevin")
    assert abs(r.moment).max() == pytest.approx(0.6 / 1.25663706212e-6 / (5170 * 0.7236), rel=0.01)


def test_brown_at_small_drive_equals_debye_with_the_brownian_time():
    tr = Tracer(core_diameter=15e-9, hydrodynamic_diameter=50e-9)
    f = 25e3
    brown = mps(tr, 1e-4, f, "brown")
    debye = mps(tr.with_(relaxation_time=fp.brown_time(50e-9, tr.viscosity, tr.temperature)), 1e-4, f, "debye")
    assert brown.harmonics[1] == pytest.approx(debye.harmonics[1], rel=0.01)


def test_brown_relaxation_lowers_the_harmonics_and_opens_the_loop():
    tr = Tracer(core_diameter=25e-9, hydrodynamic_diameter=60e-9)
    lang, brown = mps(tr, 20e-3, 25e3, "langevin"), mps(tr, 20e-3, 25e3, "brown")
    assert brown.ratio(3, 1) < 0.5 * lang.ratio(3, 1)
    area = lambda r: abs(np.sum(r.moment * np.gradient(np.unwrap(2 * np.pi * r.times * r.frequency)) *
                                np.cos(2 * np.pi * r.frequency * r.times)))          # ∮ M dH, up to a constant
    assert area(brown) > 10 * area(lang)


def test_neel_without_barrier_and_fast_diffusion_is_langevin():
    tr = Tracer(core_diameter=20e-9, anisotropy=1e-3)
    a, b = mps(tr, 15e-3, 100.0, "langevin"), mps(tr, 15e-3, 100.0, "neel", damping=1.0)
    for k in (1, 3, 5, 7):
        assert abs(b.harmonics[k] - a.harmonics[k]) < 1e-3 * abs(a.harmonics[1])


def test_mps_command(tmp_path, capsys):
    png = tmp_path / "mps.png"
    assert main(["mps", "--hydrodynamic-diameter", "60nm", "--model", "langevin", "--model", "brown",
                 "--png", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in out["results"]] == ["langevin", "brown"]
    assert out["results"][1]["A3/A1"] < out["results"][0]["A3/A1"]
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args,needle", [
    (["--model", "brown"], "needs the tracer's hydrodynamic_diameter"),
    (["--model", "neel"], "needs the tracer's anisotropy"),
    (["--amplitude", "20"], "at most 1 T/µ0"),
    (["--amplitude", "20kHz"], "--amplitude must be a number in T"),
    (["--frequency", "25mT"], "--frequency must be a number in Hz"),
    (["--model", "neel", "--anisotropy", "1e6"], "unknowns in the Fokker-Planck solver"),
    (["--model", "neel", "--anisotropy", "5e3", "--damping", "0"], "damping α must be between 1e-4 and 10"),
])
def test_mps_bad_input(tmp_path, capsys, args, needle):
    assert main(["mps", *args, "--png", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_anisotropic_model_interpolates_the_boltzmann_average():
    """The anisotropic (random axes, equilibrium) model's M(t) against the quadrature evaluated directly at
    a few moments of the period; K → 0 gives the Langevin model."""
    tr = Tracer(core_diameter=25e-9, anisotropy=5e3)
    r = mps(tr, 20e-3, 25e3, "anisotropic")
    xi0 = tr.beta * 20e-3
    sigma = 5e3 * np.pi / 6 * (25e-9) ** 3 / (1.380649e-23 * tr.temperature)
    for j in (3, 40, 100, 200, 300):
        direct = fp.anisotropic_equilibrium(xi0 * np.sin(2 * np.pi * r.frequency * r.times[j]), sigma)
        assert r.moment[j] == pytest.approx(direct * tr.moment_per_iron_mass, abs=1e-4 * tr.moment_per_iron_mass)
    soft = mps(tr.with_(anisotropy=1e-3), 20e-3, 25e3, "anisotropic")
    lang = mps(tr, 20e-3, 25e3, "langevin")
    assert np.allclose(soft.harmonics[:20], lang.harmonics[:20], atol=1e-5 * abs(lang.harmonics[1]))


def test_neel_with_random_axes_at_a_slow_drive_is_the_anisotropic_equilibrium():
    """At 100 Hz the Néel time (σ ≈ 5) is negligible: the random-axes Fokker–Planck model (mpisim.neel_brown)
    gives the harmonics of the random-axes Boltzmann average (the anisotropic model, another route); at 25 kHz
    the same cores lag (the loop opens) and lose harmonics."""
    tr = Tracer(core_diameter=20e-9, anisotropy=5e3)
    slow, eq = mps(tr, 10e-3, 100.0, "neel"), mps(tr, 10e-3, 100.0, "anisotropic")
    assert slow.as_dict()["gilbert_damping"] == tr.damping and "gilbert_damping" not in eq.as_dict()
    for k in (1, 3, 5, 7):
        assert abs(slow.harmonics[k] - eq.harmonics[k]) < 2e-4 * abs(eq.harmonics[1]), k
    fast = mps(tr.with_(anisotropy=9e3), 10e-3, 25e3, "neel")
    assert fast.ratio(3, 1) < mps(tr.with_(anisotropy=9e3), 10e-3, 25e3, "anisotropic").ratio(3, 1)


def test_tracer_presets_and_damping_round_trip(capsys):
    from mpisim.particles import TRACER_PRESETS

    for name, make in TRACER_PRESETS.items():
        t = make()
        assert t.name.startswith(name.split("-")[0]) and t.anisotropy and t.hydrodynamic_diameter
        assert Tracer.from_dict(t.to_dict()) == t
    t = Tracer(damping=0.3)
    assert t.to_dict()["damping"] == 0.3 and "damping" not in Tracer().to_dict()     # old cache keys unchanged
    assert main(["mps", "--tracer", "synomag-like", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["tracer"]["name"] == "synomag-like"


@pytest.mark.parametrize("args,needle", [
    (["--model", "neel-brown", "--anisotropy", "5e3", "--hydrodynamic-diameter", "60nm", "--model", "langevin"],
     "use model brown for a free particle"),
    (["--model", "neel-brown", "--anisotropy", "1e3"], "needs the tracer's hydrodynamic_diameter"),
    (["--model", "neel", "--anisotropy", "5e4"], "outside 0..20"),
    (["--model", "neel", "--tracer-diameter", "30nm", "--anisotropy", "5e3", "--amplitude", "50mT"], "GB (at most 2)"),
])
def test_neel_models_refuse_before_anything_is_solved(tmp_path, capsys, args, needle):
    assert main(["mps", *args, "--png", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("extra", [["--tracer-diameter", "25nm"], ["--relaxation-time", "1e-6"]])
def test_a_preset_refuses_the_options_it_sets_itself(tmp_path, capsys, extra):
    """Even a value equal to the default is refused with a preset (it would be ignored silently)."""
    assert main(["mps", "--tracer", "perimag-like", *extra, "--png", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "sets its own core diameter" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
