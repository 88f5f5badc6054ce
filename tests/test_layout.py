"""The package's floors (docs/conventions.md, "Layout"): every import points to the same floor or a lower
one; verbs do not open files; imports sit at the top of the file except the heavy optional libraries;
every module says what it exports; no function is longer than 80 lines unless the conventions page
says why."""

import ast
import pathlib
import re
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mpisim"
DOCS = PACKAGE.parent / "docs" / "conventions.md"

FLOORS = {
    0: "foundations",
    1: "nouns",
    2: "verbs",
    3: "drivers",
    4: "command line",
}
FLOOR_OF = {
    # 0 foundations: no physics, no file formats
    "mpisim": 0, "mpisim.constants": 0, "mpisim.units": 0, "mpisim.errors": 0, "mpisim.interrupt": 0,
    "mpisim.progress": 0, "mpisim.backend": 0, "mpisim.cpu_kernels": 0, "mpisim.resources": 0, "mpisim.grid": 0,
    "mpisim.tomlio": 0, "mpisim.cluster": 0, "mpisim.io": 0, "mpisim.io.atomic": 0, "mpisim.io.h5": 0,
    "mpisim.io.checksum": 0,
    # 1 nouns: the data, their typed metadata, the operator, the frame source, the file formats
    "mpisim.particles": 1, "mpisim.fokker_planck": 1, "mpisim.dynamics": 1, "mpisim.injection": 1, "mpisim.scanner": 1, "mpisim.transfer": 1, "mpisim.phantoms": 1, "mpisim.metadata": 1,
    "mpisim.measurement": 1, "mpisim.frames": 1, "mpisim.operator": 1, "mpisim.reconstruction": 1,
    "mpisim.cache": 1, "mpisim.io.calibration": 1, "mpisim.io.mdf": 1, "mpisim.io.mdf_read": 1,
    "mpisim.io.mdf_write": 1, "mpisim.io.mdf_fields": 1, "mpisim.io.sm_file": 1, "mpisim.io.frame_file": 1,
    "mpisim.io.reco_mdf": 1, "mpisim.io.transfer_file": 1, "mpisim.io.nifti": 1, "mpisim.io.stream": 1,
    # 2 verbs
    "mpisim.forward": 2, "mpisim.systemmatrix": 2, "mpisim.quant": 2, "mpisim.design": 2, "mpisim.plot": 2,
    "mpisim.io.convert": 2, "mpisim.reco": 2, "mpisim.detection": 2, "mpisim.mps": 2,
    # 3 drivers: verbs that run other verbs
    "mpisim.sweep": 3, "mpisim.studies": 3, "mpisim.demo": 3, "mpisim.course": 3, "mpisim.live": 3,
    "mpisim.live_view": 3,
    # 4 the command line
    "mpisim.cli": 4, "mpisim.__main__": 4,
}

LAZY_OK = {"h5py", "numba", "dask", "distributed", "matplotlib", "cupy", "scipy", "ipywidgets", "IPython", "nibabel",
           "bokeh", "tornado"}
"""Heavy optional libraries: imported inside the function that needs them (start-up time, optional installs)."""
NUMBA_MODULES = {"mpisim.cpu_kernels", "mpisim.reco.kaczmarz_cpu"}
"""mpisim's compiled kernels: they import numba at their top, so they are heavy optional libraries too."""

NO_FILES = ("mpisim.reco", "mpisim.quant", "mpisim.operator", "mpisim.frames", "mpisim.reconstruction",
            "mpisim.measurement", "mpisim.metadata")
"""Modules that never open a file: they import nothing from the file layer (mpisim.io)."""


def _modules():
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = p
    return out


MODULES = _modules()
"""mpisim's modules: name → file."""


def floor(module):
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in FLOOR_OF:
            return FLOOR_OF[".".join(parts[:i])]
    raise KeyError(module)


def _imports(path, module):
    """(target, line, top-level?) of every import statement in the file, resolved to absolute names."""
    tree = ast.parse(path.read_text())
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    top = set()                               # statements outside every function and class
    stack = list(tree.body)
    while stack:
        n = stack.pop()
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top.add(id(n))
            stack.extend(c for c in ast.iter_child_nodes(n) if isinstance(c, ast.stmt) or isinstance(c, ast.excepthandler))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            out += [(t, node.lineno, id(node) in top) for t in (names or [target])]
    return out


def test_every_module_has_a_floor():
    missing = [m for m in MODULES if m not in FLOOR_OF and not any(m.startswith(k + ".") for k in FLOOR_OF)]
    assert not missing, f"give these modules a floor in FLOOR_OF and docs/conventions.md: {missing}"


def test_no_import_runs_back_up():
    """An import from a lower floor to a higher one, anywhere in a file (top level or inside a function)."""
    bad = []
    for m, path in MODULES.items():
        for target, line, _ in _imports(path, m):
            if target.startswith("mpisim") and target != "mpisim" and floor(target) > floor(m):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {m} ({FLOORS[floor(m)]}) imports {target} "
                           f"({FLOORS[floor(target)]})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_in_the_package():
    """No cycle among the imports a module runs when it is imported (its top-level statements)."""
    mods = MODULES
    graph = {m: {t for t, _, top in _imports(p, m) if top and t in mods and t != m} for m, p in mods.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif not state.get(t):
                visit(t, stack + [t])
        state[m] = 2
    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])
    # a package importing its own submodule at the top (mpisim → mpisim.x → mpisim) is not a cycle that
    # breaks imports; anything else is
    real = [c for c in cycles if not all(x == "mpisim" or c[0].startswith(x) for x in c)]
    assert not real, real


def test_the_check_fails_on_an_import_that_runs_back_up(tmp_path):
    """The rule above is real: a foundation importing a verb is caught."""
    fake = tmp_path / "grid.py"
    fake.write_text("from .reco import reconstruct\n")
    assert [t for t, _, _ in _imports(fake, "mpisim.grid") if floor(t) > floor("mpisim.grid")] == \
        ["mpisim.reco.reconstruct"]


def test_modules_that_never_open_files_import_no_file_code():
    bad = [f"{m} imports {t}" for m, p in MODULES.items() if m.startswith(NO_FILES)
           for t, _, _ in _imports(p, m) if t.startswith("mpisim.io")]
    assert not bad, bad


def test_imports_sit_at_the_top():
    """Inside a function only the heavy optional libraries (LAZY_OK) and the importlib of the lazy
    top-level API; everything else at the top of the file, where the dependency graph can be read."""
    bad = []
    for m, path in MODULES.items():
        for target, line, top in _imports(path, m):
            root = target.split(".")[0]
            if not top and root not in LAZY_OK and target not in NUMBA_MODULES \
                    and not (m == "mpisim" and target == "importlib"):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def test_every_module_declares_its_public_names():
    bad = []
    for m, path in MODULES.items():
        if m.endswith("__main__"):
            continue
        tree = ast.parse(path.read_text())
        names = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
        if "__all__" not in names:
            bad.append(m)
    assert not bad, f"modules without __all__: {bad}"


def _long_functions():
    out = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                out.append(f"{m}.{node.name}")
    return out


def test_no_function_over_80_lines_unless_the_conventions_page_says_why():
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Functions over 80 lines", 1)[-1].split("\n## ", 1)[0] if "### Functions over 80 lines" in text else ""
    unexplained = [f for f in _long_functions() if f"`{f}`" not in section]
    assert not unexplained, f"over 80 lines, and not explained in docs/conventions.md: {unexplained}"


def test_import_mpisim_is_light():
    """`import mpisim` loads none of the heavy libraries (cupy, h5py, numba, dask, matplotlib, scipy)."""
    import subprocess

    code = ("import sys, mpisim; heavy = {'cupy', 'h5py', 'numba', 'dask', 'matplotlib', 'scipy'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("name", sorted(__import__("mpisim").__all__))
def test_every_public_name_resolves(name):
    import mpisim

    assert getattr(mpisim, name) is not None


def test_the_api_summary_lists_every_public_name():
    import mpisim

    page = (PACKAGE.parent / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [n for n in mpisim.__all__ if n != "__version__" and f"`{n}" not in page]
    assert not missing, f"docs/api.md does not list {missing}"


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python section, as a user would paste it: the top-level API, the ROI in metres."""
    code = re.search(r"```python\n(.*?)```", (PACKAGE.parent / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "µg Fe" in out and "RoiResult(name='ring'" in out
