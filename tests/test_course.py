"""The course (issue 14): the committed notebooks are those the builder makes from course/labs; every
solution notebook runs with all its checks passing (and failing on wrong answers), every student notebook
runs with each check saying the answer is missing; no check cell shows its answer or an Out value; checks
answer nonsense with one line, never a traceback. Each notebook is executed once per test run (the
session's build in tests/test_docs_examples.py, which the docs build reuses)."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from mpisim import course
from test_docs_examples import docs_build  # noqa: F401  (the session's one run of each notebook)

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "course" / "labs").glob("[0-9][0-9]_*.py"))


def test_seven_labs_and_notebooks_up_to_date():
    assert len(LABS) == 7
    for src in LABS:
        for sub, student in (("student", True), ("solutions", False)):
            nb = ROOT / "course" / "notebooks" / sub / (src.stem + ".ipynb")
            assert nb.read_text(encoding="utf-8") == course.notebook_text(src, student), \
                f"{nb} is out of date: python -m mpisim.course course/labs course/notebooks"


def test_student_notebooks_hold_no_solution():
    for src in LABS:
        solution = json.loads(course.notebook_text(src, False))
        student = json.loads(course.notebook_text(src, True))
        sol_cells = [c["source"] for c in solution["cells"] if "solution" in c["metadata"].get("tags", [])]
        stu_cells = [c["source"] for c in student["cells"] if "solution" in c["metadata"].get("tags", [])]
        assert sol_cells and len(sol_cells) == len(stu_cells)
        for s, t in zip(sol_cells, stu_cells):
            assert "# ANSWER" in s and "# ANSWER" not in t and "= ..." in t
            assert all(ln.startswith("#") or "= ..." in ln for ln in t.splitlines())
        # every other cell is the same in both: running both notebooks once runs every cell of the lab
        assert [c for c in solution["cells"] if "solution" not in c["metadata"].get("tags", [])] == \
            [c for c in student["cells"] if "solution" not in c["metadata"].get("tags", [])]


def _check_cells(nb):
    """[(cell, exercise number, answer name)] of the check cells: ``check("N.M", answer, objects...)``."""
    out = []
    for c in nb["cells"]:
        if c["cell_type"] != "code" or not c["source"].lstrip().startswith("check("):
            continue
        call = ast.parse(c["source"]).body[0].value
        out.append((c, call.args[0].value, call.args[1].id))
    return out


def _probes(lab):
    """Code run after the solution notebook: every check again, with a wrong answer (each must say ✘)."""
    src = json.loads(course.notebook_text(ROOT / "course" / "labs" / f"{lab}.py", False))
    lines = ["from mpisim.course import EXERCISES, check as _check",
             "def _wrong(x, n):",
             "    options = EXERCISES[n][1]",
             "    return next(o for o in options if o != x) if options else x * 1.3",
             "print('--- wrong answers ---')"]
    for c, number, name in _check_cells(src):
        call = ast.parse(c["source"]).body[0].value
        given = ", ".join(ast.unparse(a) for a in call.args[2:])
        lines.append(f"_check({number!r}, _wrong({name}, {number!r}){', ' + given if given else ''})")
    return ("\n".join(lines),)


def _lines(nb):
    """The ✔/✘ lines the notebook printed, and the check cells' outputs other than printed text."""
    lines, shown = [], []
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", (o.get("ename"), o.get("evalue"))
            if o.get("output_type") == "stream":
                lines += [ln for ln in o["text"].splitlines() if ln.startswith(("✔", "✘", "---"))]
            elif c.source.lstrip().startswith("check("):
                shown.append((c.source, o))
    return lines, shown


def test_check_cells_show_no_answer():
    """A check cell hands the answer and the notebook's objects to mpisim.course.check: no reference value,
    no formula, no literal number in either notebook's check cells, and every exercise is known."""
    for src in LABS:
        for student in (True, False):
            nb = json.loads(course.notebook_text(src, student))
            cells = _check_cells(nb)
            assert len(cells) >= 3, src.name
            for c, number, name in cells:
                assert number in course.EXERCISES, (src.name, number)
                tree = ast.parse(c["source"])
                call = tree.body[0].value
                assert isinstance(tree.body[0], ast.Expr) and call.func.id == "check", c["source"]
                assert all(isinstance(a, (ast.Name, ast.Attribute)) for a in call.args[1:]) and not call.keywords, \
                    f"{src.name}: a check cell computes something: {c['source']!r}"
                consts = [n for n in ast.walk(call) if isinstance(n, ast.Constant)]
                assert consts == [call.args[0]], f"{src.name}: a literal in a check cell: {c['source']!r}"


@pytest.mark.parametrize("lab", [p.stem for p in LABS])
def test_solution_notebook_passes_its_checks(lab, docs_build):
    """Static mode: the sliders' functions run as ordinary cells, so an error in one fails here. After the
    notebook, every check runs again with a wrong answer and must say ✘: the checks can fail."""
    lines, shown = _lines(docs_build.notebook("solutions", lab, append=_probes(lab)))
    cut = lines.index("--- wrong answers ---")
    right, wrong = lines[:cut], lines[cut + 1:]
    assert len(right) >= 3 and all(ln.startswith("✔") for ln in right), right
    assert len(wrong) == len(right) and all(ln.startswith("✘") and "not yet" in ln for ln in wrong), wrong
    assert not shown, f"a check cell shows more than its line: {shown[:1]}"


@pytest.mark.parametrize("lab", [p.stem for p in LABS])
def test_student_notebook_checks_ask_for_answers(lab, docs_build):
    """The student notebook as the docs render it (the same execution): every check asks for its answer,
    and no check cell shows anything else (no Out[n] value, no reference)."""
    lines, shown = _lines(docs_build.notebook("student", lab))
    assert len(lines) >= 3 and all(ln.startswith("✘") and course.MISSING in ln for ln in lines), lines
    assert not shown, f"a check cell shows more than its line: {shown[:1]}"


def test_explore_draws_sliders_in_jupyter(monkeypatch):
    """Without $MPISIM_COURSE_STATIC, explore hands the function to ipywidgets.interact (which calls it once
    with the sliders' values); the notebooks above run with it set."""
    widgets = pytest.importorskip("ipywidgets")
    monkeypatch.delenv(course.STATIC, raising=False)
    calls = []
    assert course.explore(lambda a=1: calls.append(a), a=widgets.IntSlider(value=3, min=0, max=5)) is None
    assert calls == [3]
    monkeypatch.setenv(course.STATIC, "1")
    course.explore(lambda a=1: calls.append(a), a=widgets.IntSlider(value=4, min=0, max=5))
    assert calls == [3, 4]


def test_check_never_raises(capsys):
    """check(): unknown exercise, wrong type, a broken notebook object — one line each, never a traceback."""
    course.check("9.9", 1.0)
    course.check("2.3", 3, None)
    course.check("2.3", "z", None)
    course.check("2.1", 0.024, None)                   # the scanner is missing: cannot check, says so
    course.check("1.2", 0.125)
    course.check("1.2", ...)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6 and [ln[0] for ln in out] == ["✘"] * 4 + ["✔", "✘"], out
    assert "no such exercise" in out[0] and "not one of" in out[1] and "not one of" in out[2]
    assert "cannot check" in out[3] and course.MISSING in out[5]


@pytest.mark.parametrize("answer,hint", [
    ("two mm", "expected a number, got str"), ([1, 2], "one number"), (np.nan, "finite"),
    (np.ones((2, 2)), "one number"), (None, course.MISSING), (..., course.MISSING), (True, "expected a number"),
    ({"a": 1}, "expected a number"), (2.2, "check the units"), (0.5e-3, "is not it")])
def test_checks_answer_nonsense_with_one_line(capsys, answer, hint):
    assert course.check_number("exercise", answer, 2.2e-3, unit="m") is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✘ exercise: not yet") and hint in out, out


def test_choice_and_array_checks(capsys):
    assert course.check_choice("c", "odd", "odd", ["odd", "even"]) is True
    assert course.check_choice("c", 3, "odd", ["odd", "even"]) is False
    assert course.check_array("a", [1, 2, 3.01], [1, 2, 3]) is True
    assert course.check_array("a", [1, 2], [1, 2, 3]) is False
    assert course.check_array("a", "x", [1]) is False
    assert course.check_array("a", [np.inf], [1]) is False
    out = capsys.readouterr().out.splitlines()
    assert [ln[0] for ln in out] == ["✔", "✘", "✔", "✘", "✘", "✘"]
    assert "expected shape (3,)" in out[3] and "NaN or inf" in out[5]
