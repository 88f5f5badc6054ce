"""Docs and examples that run: every example script, the docs build (strict), the demo, mpisim plot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpisim.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9]*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPISIM_FIGURES=str(tmp_path), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 5000 for p in pngs)


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -e '.[test]')")
    site = tmp_path / "site"
    env = dict(os.environ, MPISIM_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "WARNING" not in r.stderr
    for page in ("tutorial", "conventions", "getting-started", "generated/api", "generated/detection-limit",
                 "howto-design", "generated/design-figures", "course", "course/instructor", "course/01_particles",
                 "course/06_cells"):
        assert (site / page / "index.html").exists(), page
    for fig in ("langevin", "trajectories", "signal_spectrum", "system_function", "resolution", "relaxation",
                "reconstruction_lambda_iterations", "detection_limit", "total_iron_vs_min_freq"):
        assert (site / "figures" / f"{fig}.png").exists(), fig
    lab = (site / "course" / "05_reconstruction" / "index.html").read_text()
    assert lab.count("data:image/png") >= 2 and "✘ exercise 5.1: not yet" in lab      # rendered with outputs
    assert (site / "figures" / "design_sweep.png").exists()
    det = (site / "generated" / "detection-limit" / "index.html").read_text()
    assert "detection limit ≈" in det and "labelled" in det
    assert "T/µ0" in (site / "generated" / "api" / "index.html").read_text()
    shown = [str(p.relative_to(site)) for p in site.rglob("*.html") if "{#" in p.read_text()]
    assert not shown, f"heading attributes shown as text in {shown}"


def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "iron   true" in out and "cells  true" in out
    for name in ("measurement.mdf", "systemmatrix.mdf", "reconstruction.mdf", "demo.png"):
        assert (tmp_path / "d" / name).stat().st_size > 1000
    from mpisim.demo import run_demo

    res = run_demo(tmp_path / "d", overwrite=True, say=lambda m: None)
    assert res["iron_reco"] == pytest.approx(res["iron_true"], rel=0.10)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0          # reruns: the folder is the demo's own
    (tmp_path / "d" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2          # a folder with other files is not replaced
    assert "exists" in capsys.readouterr().err


def test_plot_any_file(tmp_path, capsys):
    m = tmp_path / "m.mdf"
    assert main(["simulate", "--scanner", "bruker-1d", "--out", str(m)]) == 0
    s = tmp_path / "s.mdf"
    assert main(["sysmat", "--scanner", "bruker-1d", "--grid", "12x1x1", "--out", str(s)]) == 0
    r = tmp_path / "r.mdf"
    assert main(["reco", str(m), "--sm", str(s), "--out", str(r), "--snr-threshold", "0"]) == 0
    for f in (m, s, r):
        assert main(["plot", str(f)]) == 0
        assert f.with_suffix(".png").stat().st_size > 5000
    assert "reconstruction" in capsys.readouterr().out


def test_docs_config_fails_on_a_broken_anchor_and_renders_heading_ids(tmp_path):
    """mkdocs.yml's own markdown and validation settings: a link to a missing anchor fails the strict build,
    and a heading id such as {#x} becomes an id, never text."""
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -e '.[test]')")
    import yaml

    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    mini = {"site_name": "t", "docs_dir": "docs", "strict": True, "markdown_extensions": cfg["markdown_extensions"],
            "validation": cfg["validation"]}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the part](other.md#the-part).\n")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A part {#the-part}\n\ntext\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(mini))

    def build():
        return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    r = build()
    assert r.returncode == 0, r.stderr[-2000:]
    html = (tmp_path / "site" / "other" / "index.html").read_text()
    assert 'id="the-part"' in html and "{#" not in html
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the part](other.md#no-such-part).\n")
    r = build()
    assert r.returncode != 0 and "no-such-part" in r.stdout + r.stderr
