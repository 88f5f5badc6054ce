"""Docs and examples that run: every example script, the docs build (strict), the demo, mpisim plot.

One session-wide build (:class:`Build`, fixture ``docs_build``): each example and each course notebook is
executed once per test run, by the same code the docs build uses (``docs/hooks.py``); the example tests, the
course tests (tests/test_course.py), the docs build and the browser tests (tests/test_browser.py) share it."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpisim.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9]*.py"))
LABS = sorted(p.stem for p in (ROOT / "course" / "labs").glob("[0-9][0-9]_*.py"))


def hooks():
    """docs/hooks.py as a module, loaded once."""
    name = "mpisim_docs_hooks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "hooks.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


class Build:
    """The session's one run of every example and course notebook, and of the docs build that renders them
    (with ``$MPISIM_DOCS_PREBUILT``, so that the build copies those outputs instead of running them again).
    Each step runs when a test first asks for it; a failure is kept and reported to every test that needs it."""

    def __init__(self, root):
        self.root = Path(root)
        self.cache = self.root / "cache"                # one system-matrix cache: lab 5 reads lab 4's matrix
        self._done = {}

    def _once(self, key, make):
        if key not in self._done:
            try:
                self._done[key] = (make(), None)
            except Exception as e:                      # kept: the next test that needs it gets the same error
                self._done[key] = (None, e)
        value, err = self._done[key]
        if err is not None:
            raise err
        return value

    def example(self, script):
        """(CompletedProcess, folder of its figures) of one example script."""
        def make():
            figs = self.root / "examples" / script.stem
            figs.mkdir(parents=True)
            return hooks().run_example(script, figs, self.cache, timeout=300), figs
        return self._once(("example", script.name), make)

    def notebook(self, kind, lab, append=()):
        """The executed notebook course/notebooks/KIND/LAB.ipynb (static sliders, as the docs show them);
        ``append``: code cells run after the notebook's own, in its kernel (the tests' probes)."""
        def make():
            return hooks().execute_notebook(ROOT / "course" / "notebooks" / kind / f"{lab}.ipynb", static=True,
                                            cache_dir=self.cache, append=append)
        return self._once(("notebook", kind, lab, tuple(append)), make)

    def site(self):
        """The docs built with --strict from this session's examples and student notebooks: (result, site)."""
        def make():
            import nbformat

            pre = self.root / "prebuilt"
            (pre / "course").mkdir(parents=True)
            for script in EXAMPLES:
                r, figs = self.example(script)
                if r.returncode:
                    raise RuntimeError(f"example {script.name} failed, so the docs cannot build: "
                                       f"{r.stderr.strip().splitlines()[-1:]}")
                shutil.copytree(figs, pre / "figures", dirs_exist_ok=True)
            for lab in LABS:
                nbformat.write(self.notebook("student", lab), pre / "course" / f"{lab}.ipynb")
            site = self.root / "site"
            env = dict(os.environ, MPISIM_CACHE_DIR=str(self.cache), MPISIM_DOCS_PREBUILT=str(pre))
            r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            return r, site
        return self._once("site", make)


_BUILD = {}


@pytest.fixture(scope="session")
def docs_build(tmp_path_factory):
    """The session's one :class:`Build` (shared by the modules that import this fixture)."""
    if "build" not in _BUILD:
        _BUILD["build"] = Build(tmp_path_factory.mktemp("docs-build"))
    return _BUILD["build"]


@pytest.fixture(scope="session")
def built_site(docs_build):
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -e '.[test]')")
    r, site = docs_build.site()
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return site


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, docs_build):
    r, figs = docs_build.example(script)
    assert r.returncode == 0, r.stderr[-2000:]
    pngs = list(figs.glob("*.png"))
    assert pngs and all(p.stat().st_size > 5000 for p in pngs)


def test_docs_build_strict(docs_build, built_site):
    r, site = docs_build.site()
    assert "WARNING" not in r.stderr, r.stderr[-3000:]
    for page in ("tutorial", "conventions", "getting-started", "api", "generated/api", "generated/detection-limit",
                 "howto-design", "generated/design-figures", "course", "course/instructor", "course/01_particles",
                 "course/06_cells", "howto-quantitation"):
        assert (site / page / "index.html").exists(), page
    for fig in ("langevin", "trajectories", "signal_spectrum", "system_function", "resolution", "relaxation",
                "reconstruction_lambda_iterations", "detection_limit", "total_iron_vs_min_freq", "quantitation_rois",
                "quantitation_study"):
        assert (site / "figures" / f"{fig}.png").exists(), fig
    lab = (site / "course" / "05_reconstruction" / "index.html").read_text()
    assert lab.count("data:image/png") >= 2 and "✘ exercise 5.1: not yet" in lab      # rendered with outputs
    assert (site / "figures" / "design_sweep.png").exists()
    det = (site / "generated" / "detection-limit" / "index.html").read_text()
    assert "L_D =" in det and "labelled" in det and "data-domain limit" in det
    shown = [str(p.relative_to(site)) for p in site.rglob("*.html") if "{#" in p.read_text()]
    assert not shown, f"heading attributes shown as text in {shown}"
    # equations: every lab loads the site's own MathJax (no network), none the empty script mkdocs-jupyter writes
    assert (site / "assets" / "mathjax" / "MathJax.js").is_file()
    for lab in LABS:
        page = (site / "course" / lab / "index.html").read_text()
        assert "../../assets/mathjax/MathJax.js" in page and '<script src="">' not in page, lab


def test_api_reference_generated(built_site):
    """The API reference lists every module that declares __all__ (not the CLI), exactly their names, numpydoc
    sections as lists, roles as code or links, defaults by name (never a path of the build machine)."""
    import mpisim

    page = (built_site / "generated" / "api" / "index.html").read_text()
    text = (ROOT / "docs" / "generated" / "api.md").read_text()
    assert text.startswith("# API reference\n") and "T/µ0" in page
    for mod in hooks().api_modules():
        assert f"## `{mod.__name__}`" in text, mod.__name__
        assert not mod.__name__.startswith("mpisim.cli")
        for name in mod.__all__:
            assert f"`{name}" in text, f"{mod.__name__}.{name}"
    for leak in (":meth:", ":class:", ":func:", "<module ", "site-packages", str(Path(mpisim.__file__).parent)):
        assert leak not in text and leak.replace("<", "&lt;") not in page, leak
    assert "<strong>Parameters</strong>" in page and "<li><code>" in page
    nav = (built_site / "index.html").read_text()
    assert nav.index("API summary") < nav.index("API reference")


def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "whole image  iron true" in out and "cells true" in out and "estimator gtm" in out
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
