"""The MPI course (``course/``): exercise checks for the notebooks, and the builder that turns the
lab sources into student and solution notebooks.

A notebook checks an exercise with :func:`check` (``check("1.1", fwhm, tracer)``): it hands over the
answer and the notebook's objects the answer depends on, and the reference is computed here, so that
the notebook's source never shows it, and nothing but the check's line is shown (it returns None).

Checks never raise and never show a traceback from inside mpisim: each prints one line —
``✔ exercise: correct`` or ``✘ exercise: not yet — <hint>`` — whatever the student passed (nothing
yet, a string, a list, the wrong shape, NaN). The primitives :func:`check_number`,
:func:`check_choice` and :func:`check_array` print the same line and return True or False.

Lab sources are Python files in the "percent" format (``course/labs/NN_name.py``): ``# %%`` starts a
code cell, ``# %% [markdown]`` a text cell (its lines start with ``# ``), and ``# %% solution`` a cell
whose lines marked ``# ANSWER`` hold the answers. :func:`build` writes each lab twice: the solution
notebook as written, and the student notebook, in which every ``name = value  # ANSWER`` line becomes
``name = ...  # your answer`` and the other lines of a solution cell are dropped.
"""

import json
import math
import os
from pathlib import Path

import numpy as np

from .design import figures_of_merit
from .io.atomic import atomic_path
from .reco import reconstruct
from .scanner import Scanner

__all__ = ["MISSING", "STATIC", "explore", "check_number", "check_choice", "check_array", "EXERCISES",
           "check", "notebook_text", "build"]

MISSING = "replace the ... with your answer"

STATIC = "MPISIM_COURSE_STATIC"
"""Environment variable: when set (CI, the docs build), :func:`explore` draws once instead of sliders."""


def explore(function, **sliders):
    """Sliders for ``function``'s keyword arguments (``ipywidgets.interact``) in Jupyter. With
    ``$MPISIM_COURSE_STATIC`` set — CI and the docs build, where no browser runs the widgets — one call
    with the sliders' initial values, so that its figure is an ordinary cell output."""

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


# --- the exercises of course/labs -------------------------------------------------------------------

EXERCISES = {}
"""Exercise number → (reference(*given), options or None, check_number keywords)."""


def _exercise(number, options=None, **kw):
    def register(reference):
        EXERCISES[number] = (reference, tuple(options) if options else None, kw)
        return reference
    return register


def check(exercise, answer, *given):
    """Check the answer to ``exercise`` (``"1.1"``) and print one line; returns None.

    ``given``: the notebook's objects the answer depends on (a tracer, a scanner, a system matrix,
    a reconstruction), from which the reference is computed here, after the answer is known to be
    given at all (a missing answer costs nothing)."""
    name = f"exercise {exercise}"
    if exercise not in EXERCISES:
        _say(False, name, f"no such exercise (known: {', '.join(EXERCISES)})")
        return None
    reference, options, kw = EXERCISES[exercise]
    if answer is Ellipsis or answer is None:
        hint = f" (one of {', '.join(map(repr, options))})" if options else ""
        _say(False, name, f"not yet — {MISSING}{hint}")
        return None
    if options and not isinstance(answer, str):
        _say(False, name, f"not yet — {answer!r:.40} is not one of {', '.join(map(repr, options))}")
        return None
    if options and answer.strip().lower() not in options:
        _say(False, name, f"not yet — {answer!r:.40} is not one of {', '.join(map(repr, options))}")
        return None
    try:
        expected = reference(*given)
    except Exception as e:                  # a notebook object renamed or changed: say so in one line
        msg = " ".join(str(e).split())[:120]
        _say(False, name, f"cannot check — {type(e).__name__}: {msg} (were the cells above run?)")
        return None
    if options:
        check_choice(name, answer.strip().lower(), expected, list(options))
    else:
        check_number(name, answer, expected, **kw)
    return None


_HINT_11 = "Δx = 4.161 / (β G), β in 1/(T/µ0) and G in T/m/µ0"


@_exercise("1.1", rel=0.01, unit="m", hint=_HINT_11)
def _resolution_at_2(tracer):
    return 4.161 / (tracer.beta * 2.0)


@_exercise("1.2", rel=0.01, hint="m grows with the core volume")
def _doubled_diameter():
    return 0.5 ** 3


@_exercise("1.3", rel=0.05, unit="m", hint="read figures_of_merit(...)['resolution_x'].value")
def _resolution_bruker_1d(tracer):
    return 4.161 / (tracer.beta * 1.0)             # the formula; the simulated PSF agrees within 5 %


@_exercise("2.1", rel=0.01, unit="m", hint="2 A / |G_xx|")
def _fov_x(scanner):
    return 2 * scanner.drive_field.channels[0].amplitude / abs(scanner.gradient[0, 0])


@_exercise("2.2", rel=1e-3, unit="1/s", hint="T_R = lcm(dividers) / base frequency")
def _frame_rate(scanner):
    return scanner.drive_field.base_frequency / math.lcm(*(c.divider for c in scanner.drive_field.channels))


@_exercise("2.3", options="abcd")
def _denser_path(scanner):
    """From the design tool: the coverage and frame rate of 102/96 against 102/100."""

    def merit(divider):
        d = scanner.to_dict()
        d["drive_field"]["channels"][1]["divider"] = divider
        f = figures_of_merit(Scanner.from_dict(d))
        return f["coverage"].value, f["frame_rate"].value

    (cov96, rate96), (cov100, rate100) = merit(96), merit(100)
    if abs(cov100 - cov96) <= 0.02 * cov96:
        return "d"
    if cov96 < cov100:
        return "a"
    return "b" if rate100 < rate96 else "c"


@_exercise("3.1", rel=0.01, unit="Hz", hint="odd harmonics only, at the centre")
def _strongest_harmonic(scanner):
    return 3 * scanner.drive_field.frequencies[0]


@_exercise("3.2", options=("odd", "even", "all"))
def _centre_harmonics():
    return "odd"                                   # the Langevin curve is odd


@_exercise("3.3", rel=0.01, unit="V", hint="σ = noise_density · √bandwidth")
def _noise_sigma(scanner):
    return scanner.receiver.noise_sigma


@_exercise("4.1", rel=1e-4, unit="Hz", hint="m_x f_x + m_y f_y")
def _mixing_21(scanner):
    fx, fy = scanner.drive_field.frequencies[:2]
    return 2 * fx + fy


@_exercise("4.2", options="abcd")
def _orders_at_centre(system_matrix, scanner):
    """Which mixing orders the x coil sees from the voxel at the centre, read from the matrix itself."""

    S = system_matrix
    fx, fy = scanner.drive_field.frequencies[:2]
    centre = int(np.argmin(np.linalg.norm(S.grid.positions(), axis=1)))
    column = np.abs(np.asarray(S.data[0])[:, centre])

    def seen(mx, my):
        k = int(np.argmin(np.abs(S.frequencies - (mx * fx + my * fy))))
        return column[k] > 1e-3 * column.max()

    orders = [(mx, my) for mx in range(1, 5) for my in range(0, 4)]
    shown = {o for o in orders if seen(*o)}
    if shown == {o for o in orders if o[0] % 2 and not o[1] % 2}:
        return "a"
    if shown == set(orders):
        return "b"
    if shown and all(my == 0 for _, my in shown):
        return "c"
    return "d"


@_exercise("4.3", options="abcd")
def _why_drop_rows():
    return "a"                                     # noise the solver would fit and spread over the image


@_exercise("5.1", options="abc")
def _residual_tells(reconstruction):
    ratio = reconstruction.info["residual_over_noise"]
    return "a" if ratio > 1.1 else "b" if ratio < 0.9 else "c"


@_exercise("5.2", options="abc")
def _strong_lambda(measurement, system_matrix, reconstruction):
    """The λ = 1 reconstruction's total iron against the default one's."""

    strong = reconstruct(measurement, system_matrix, lam=1.0, uncertainty_samples=0)
    ratio = strong.iron_mass[0] / reconstruction.iron_mass[0]
    return "a" if ratio < 0.95 else "c" if ratio > 1.05 else "b"


@_exercise("5.3", options="abc")
def _no_positivity():
    return "a"                                     # clipping keeps the positive noise: totals biased up


@_exercise("6.1", rel=0.01, unit="cells", hint="N = iron / iron per cell, both in kg")
def _cells_in_graft(iron_per_cell):
    return 2e-9 / iron_per_cell


@_exercise("6.2", rel=0.01, hint="the noise falls as 1/√n")
def _averaging_400():
    return math.sqrt(100 / 400)


@_exercise("6.3", rel=0.01, unit="cells", hint="live cells' iron plus the microglia's, over the iron per cell")
def _apparent_day_60():
    kept = math.exp(-0.02 * 60)
    return 3e5 * (kept + 0.5 * (1 - kept))


@_exercise("7.1", rel=0.01, hint="ω = 2π·25 kHz, τ_B in s")
def _omega_tau_b(tracer):
    return 2 * math.pi * 25e3 * tracer.brown_time


@_exercise("7.2", rel=0.01, hint="|1/(1 + i·5·ω·τ_B)| with ω = 2π·25 kHz")
def _debye_fifth(tracer):
    return 1 / abs(1 + 5j * 2 * math.pi * 25e3 * tracer.brown_time)


@_exercise("7.3", options=("debye", "brown"))
def _stronger_drive():
    return "brown"


@_exercise("7.4", rel=0.01, unit="s", hint="τ0 · exp(K V_c / k_B T) of the core")
def _bound_tau(tracer):
    return tracer.neel_time


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
