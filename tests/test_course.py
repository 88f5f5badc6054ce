"""The course (issue 14): the committed notebooks are those the builder makes from course/labs; every
solution notebook runs with all its checks passing, every student notebook runs with each check
saying the answer is missing; checks answer nonsense with one line, never a traceback."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mpisim import course

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "course" / "labs").glob("[0-9][0-9]_*.py"))


def test_six_labs_and_notebooks_up_to_date():
    assert len(LABS) == 6
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


def _run(path, static):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    env = {course.STATIC: "1"} if static else {}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    lines = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", (path.name, o.get("ename"), o.get("evalue"))
            if o.get("output_type") == "stream":
                lines += [ln for ln in o["text"].splitlines() if ln.startswith(("✔", "✘"))]
    return lines


@pytest.mark.parametrize("lab", [p.stem for p in LABS])
def test_solution_notebook_passes_its_checks(lab):
    """Static mode: the sliders' functions run as ordinary cells, so an error in one fails here."""
    lines = _run(ROOT / "course" / "notebooks" / "solutions" / f"{lab}.ipynb", static=True)
    assert len(lines) >= 3 and all(ln.startswith("✔") for ln in lines), lines


@pytest.mark.parametrize("lab", [p.stem for p in LABS])
def test_student_notebook_checks_ask_for_answers(lab):
    """Interactive mode, as `jupyter nbconvert --execute` runs it (ipywidgets.interact)."""
    lines = _run(ROOT / "course" / "notebooks" / "student" / f"{lab}.ipynb", static=False)
    assert len(lines) >= 3 and all(ln.startswith("✘") and course.MISSING in ln for ln in lines), lines


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
