"""The MPI course (``course/``): exercise checks for the notebooks, and the builder that turns the
lab sources into student and solution notebooks.

Checks never raise and never show a traceback from inside mpisim: each prints one line —
``✔ exercise: correct`` or ``✘ exercise: not yet — <hint>`` — and returns True or False, whatever
the student passed (nothing yet, a string, a list, the wrong shape, NaN).

Lab sources are Python files in the "percent" format (``course/labs/NN_name.py``): ``# %%`` starts a
code cell, ``# %% [markdown]`` a text cell (its lines start with ``# ``), and ``# %% solution`` a cell
whose lines marked ``# ANSWER`` hold the answers. :func:`build` writes each lab twice: the solution
notebook as written, and the student notebook, in which every ``name = value  # ANSWER`` line becomes
``name = ...  # your answer`` and the other lines of a solution cell are dropped.
"""

import json
import math
from pathlib import Path

MISSING = "replace the ... with your answer"

STATIC = "MPISIM_COURSE_STATIC"
"""Environment variable: when set (CI, the docs build), :func:`explore` draws once instead of sliders."""


def explore(function, **sliders):
    """Sliders for ``function``'s keyword arguments (``ipywidgets.interact``) in Jupyter. With
    ``$MPISIM_COURSE_STATIC`` set — CI and the docs build, where no browser runs the widgets — one call
    with the sliders' initial values, so that its figure is an ordinary cell output."""
    import os

    if os.environ.get(STATIC):
        function(**{k: getattr(w, "value", w) for k, w in sliders.items()})
        return None
    from ipywidgets import interact

    interact(function, **sliders)
    return None


def _say(ok, name, text):
    print(f"{'✔' if ok else '✘'} {name}: {text}")
    return ok


def _number(answer):
    """(float, None) or (None, hint) for a student's answer."""
    if answer is Ellipsis or answer is None:
        return None, MISSING
    if isinstance(answer, bool) or isinstance(answer, (str, bytes)):
        return None, f"expected a number, got {type(answer).__name__} {answer!r:.40}"
    try:
        import numpy as np

        a = np.asarray(answer, dtype=float)
    except (TypeError, ValueError, OverflowError):
        return None, f"expected a number, got {type(answer).__name__}"
    if a.size != 1:
        return None, f"expected one number, got an array of shape {a.shape}"
    x = float(a.reshape(()))
    if not math.isfinite(x):
        return None, f"expected a finite number, got {x}"
    return x, None


def check_number(name, answer, expected, rel=0.05, unit="", hint=""):
    """A numeric answer within ``rel`` (relative) of ``expected``; ``unit`` is named in the messages."""
    x, why = _number(answer)
    u = f" {unit}" if unit else ""
    if why:
        return _say(False, name, f"not yet — {why}{f' (in{u})' if unit else ''}")
    if expected == 0:
        ok = abs(x) <= rel
    else:
        ok = abs(x - expected) <= rel * abs(expected)
    if ok:
        return _say(True, name, f"correct ({x:.4g}{u})")
    far = "" if expected == 0 else (" — check the units" if 900 < abs(x / expected) < 1.1e3 or
                                    9e-4 < abs(x / expected) < 1.1e-3 else "")
    return _say(False, name, f"not yet — {x:.4g}{u} is not it{far}{'; ' + hint if hint else ''}")


def check_choice(name, answer, expected, options):
    """An answer that must be one of ``options`` (strings or numbers)."""
    if answer is Ellipsis or answer is None:
        return _say(False, name, f"not yet — {MISSING} (one of {', '.join(map(repr, options))})")
    try:
        known = any(answer == o and type(answer) is type(o) for o in options)
    except (TypeError, ValueError):         # an array, or something that does not compare
        known = False
    if not known:
        return _say(False, name, f"not yet — {answer!r:.40} is not one of {', '.join(map(repr, options))}")
    if answer == expected:
        return _say(True, name, f"correct ({answer!r})")
    return _say(False, name, f"not yet — {answer!r} is not it")


def check_array(name, answer, expected, rel=0.05, unit=""):
    """An array answer of ``expected``'s shape, each value within ``rel`` of the largest |expected|."""
    import numpy as np

    if answer is Ellipsis or answer is None:
        return _say(False, name, f"not yet — {MISSING}")
    try:
        a = np.asarray(answer, dtype=float)
    except (TypeError, ValueError, OverflowError):
        return _say(False, name, f"not yet — expected numbers, got {type(answer).__name__}")
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        return _say(False, name, f"not yet — expected shape {e.shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        return _say(False, name, "not yet — the array holds NaN or inf")
    scale = np.abs(e).max() or 1.0
    if np.abs(a - e).max() <= rel * scale:
        return _say(True, name, "correct")
    return _say(False, name, f"not yet — largest difference {np.abs(a - e).max():.3g}{' ' + unit if unit else ''}")


# --- building the notebooks --------------------------------------------------------------------------

def _cells(source):
    """[(kind, lines)] of a percent-format source; kind: markdown, code, solution."""
    cells, kind, lines = [], None, []
    for line in source.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, lines))
            tag = line[4:].strip()
            kind = "markdown" if tag == "[markdown]" else "solution" if tag == "solution" else "code"
            lines = []
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        cells.append((kind, lines))
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        out.append((kind, lines))
    return out


def _student(lines):
    keep = []
    for ln in lines:
        if "# ANSWER" in ln:
            code = ln.split("# ANSWER", 1)[0]
            if "=" not in code or code != code.lstrip():
                raise ValueError(f"a '# ANSWER' line must be an unindented assignment: {ln.strip()!r}")
            lhs = code.split("=", 1)[0].rstrip()
            note = ln.split("# ANSWER", 1)[1].strip()
            keep.append(f"{lhs} = ...  # your answer{(' ' + note) if note else ''}")
    return ["# your code here", *keep] if keep else ["# your code here"]


def _notebook(cells, student):
    nb_cells = []
    for kind, lines in cells:
        if kind == "solution" and student:
            lines = _student(lines)
        text = "\n".join(lines)
        if kind == "markdown":
            nb_cells.append({"cell_type": "markdown", "metadata": {}, "source": text})
        else:
            meta = {"tags": ["solution"]} if kind == "solution" else {}
            nb_cells.append({"cell_type": "code", "metadata": meta, "source": text, "outputs": [],
                             "execution_count": None})
    return {"cells": nb_cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                           "name": "python3"},
                                            "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def notebook_text(source_path, student):
    """The .ipynb JSON text of one lab source (student or solution version)."""
    nb = _notebook(_cells(Path(source_path).read_text(encoding="utf-8")), student)
    for i, c in enumerate(nb["cells"]):
        c["id"] = f"c{i:02d}"
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def build(labs_dir, out_dir):
    """Write ``out_dir/student/NN_name.ipynb`` and ``out_dir/solutions/NN_name.ipynb`` for every
    ``labs_dir/NN_name.py``; returns the paths written."""
    from .io.atomic import atomic_path

    written = []
    for src in sorted(Path(labs_dir).glob("[0-9][0-9]_*.py")):
        for sub, student in (("student", True), ("solutions", False)):
            dst = Path(out_dir) / sub / (src.stem + ".ipynb")
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst, overwrite=True) as tmp:
                Path(tmp).write_text(notebook_text(src, student), encoding="utf-8")
            written.append(dst)
    return written


if __name__ == "__main__":          # python -m mpisim.course LABS_DIR OUT_DIR
    import sys

    for p in build(*(sys.argv[1:3] or ["course/labs", "course/notebooks"])):
        print(f"wrote {p}")
