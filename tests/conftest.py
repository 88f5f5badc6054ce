import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one worker per core already keeps every core busy: numba's own threads on top of that only contend
    # (results do not depend on the thread count: frames and voxels are split, never a sum)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

SHARED_DATA = Path(os.environ["MPISIM_SHARED_DATA"]) if os.environ.get("MPISIM_SHARED_DATA") else \
    Path(__file__).resolve().parents[2] / "shared" / "data"
"""Real files written by other MPI tools: $MPISIM_SHARED_DATA, else ../shared/data beside the checkout."""


_WARM_UP = """
import os, tempfile
import mpisim
os.environ["MPISIM_CACHE_DIR"] = tempfile.mkdtemp()
sc = mpisim.get_scanner("bruker-2d")
tr = mpisim.Tracer()
S = mpisim.build_system_matrix(sc, tr, mpisim.default_grid(sc, (6, 6, 1)),
                               mpisim.CalibrationSettings(background_frames=4))
m = mpisim.simulate(sc, tr, mpisim.get_phantom("point", sc),
                    mpisim.SimulationSettings.realistic(sc, frames=2, background_frames=4, seed=0))
mpisim.reconstruct(m, S, iterations=2)
mpisim.reconstruct(m, S, iterations=2, frames=(1,))
"""


def pytest_sessionstart(session):
    """Before the xdist workers start (and before a run without them): compile numba's kernels once, into
    their on-disk cache. On a fresh clone every process would otherwise compile them — the workers, and each
    of the command-line runs the tests start, many of which are interrupted before they could save them."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("MPISIM_DISABLE_NUMBA") \
            or not session.config.getoption("numprocesses", None):
        return                                   # one process compiles once anyway
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _WARM_UP], capture_output=True, text=True, timeout=600)
    if r.returncode:                             # the tests that need the kernels will say what is wrong
        print(f"numba warm-up failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)


def require_gpu():
    """Skip visibly without a GPU; fail instead when MPISIM_REQUIRE_GPU=1."""
    from mpisim.backend import gpu_available

    if not gpu_available():
        msg = "no CUDA GPU / cupy available"
        if os.environ.get("MPISIM_REQUIRE_GPU") == "1":
            pytest.fail(msg + " but MPISIM_REQUIRE_GPU=1")
        pytest.skip(msg)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The suite runs on every core (pytest-xdist, ``-n auto`` in pyproject.toml); with ``-s`` (the slow
    studies print their figures) or ``--pdb`` it runs in this one process instead. ``-n 0`` does too."""
    if config.getoption("numprocesses", None) and (config.getoption("capture") == "no"
                                                   or config.getoption("usepdb")):
        config.option.numprocesses = 0
        config.option.dist = "no"


# Test files whose tests share a session fixture (the docs build runs each notebook and example once).
_GROUPS = {"test_course": "docs", "test_docs_examples": "docs", "test_browser": "docs"}
_FIRST = ("docs", "interrupts-1", "interrupts-2", "test_quant", "test_design")
"""The longest groups (the docs build; the interrupt moments, in two halves; quantitation; design sweeps)."""


def pytest_itemcollected(item):
    """Every test that uses the ``gpu`` fixture carries the ``gpu`` marker (``pytest -m gpu`` selects them).
    Each test carries its xdist group: under pytest-xdist (``--dist loadgroup``) a module's tests stay on
    one worker, so module- and session-scoped fixtures are built once, not once per worker. (Marked here,
    as each test is collected: before any plugin's collection_modifyitems reads the groups, whichever
    order pytest runs those hooks in.)"""
    if "gpu" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("gpu"):
        item.add_marker(pytest.mark.gpu)
    if not item.get_closest_marker("xdist_group"):
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        item.add_marker(pytest.mark.xdist_group(_GROUPS.get(module, module)))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    xdist = config.pluginmanager.hasplugin("xdist")
    if getattr(config.option, "loadgroup", False) and items and hasattr(items[0], "_id"):
        # pytest >= 9.2 keeps a node's id in ``_id``: pytest-xdist 3.8 still renames ``_nodeid`` to send a test's
        # group to the scheduler (``name@group``), which no longer takes effect, and every test became its own
        # group (the docs built on both workers). Renamed here the way the scheduler reads it.
        from _pytest.nodeid import coerce_node_id

        for item in items:
            item._id = coerce_node_id(f"{item.nodeid}@{_group(item)}")
    if xdist:            # the longest groups first, so that no worker is left with one of them at the end
        items.sort(key=lambda item: _FIRST.index(_group(item)) if _group(item) in _FIRST else len(_FIRST))


def _group(item):
    """An item's xdist group, named as pytest-xdist names it (its groups' names, sorted, joined by "_")."""
    return "_".join(sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                            for m in item.iter_markers("xdist_group")}))


def pytest_runtest_setup(item):
    """A test marked ``gpu`` without the fixture is skipped (or fails, MPISIM_REQUIRE_GPU=1) the same way."""
    if item.get_closest_marker("gpu") and "gpu" not in getattr(item, "fixturenames", ()):
        require_gpu()


@pytest.fixture
def gpu():
    require_gpu()
    import cupy

    return cupy


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder {SHARED_DATA} is not there (files written by other MPI tools; "
                    f"point MPISIM_SHARED_DATA at a copy)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Module- and session-scoped fixtures run before the per-test cache below: they get a cache of the
    session's own, never the user's ~/.cache/mpisim (a test run neither fills it nor depends on it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPISIM_CACHE_DIR", str(tmp_path_factory.mktemp("session-cache")))
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MPISIM_CACHE_DIR", str(tmp_path / "cache"))
