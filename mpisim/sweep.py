"""Parameter sweeps over scanner designs, run on Dask (dask.distributed).

A sweep varies scanner, tracer and design-setting fields over grids or lists (:func:`parse_vary`),
evaluates :func:`mpisim.design.figures_of_merit` for every combination, and streams one CSV row per
design to ``DIR/results.csv`` as designs finish (so an interrupted sweep keeps what it finished and
``resume=True`` completes it), then plots every figure against the varied parameters
(``DIR/figures.png``).

Keys of ``--vary`` (SI units):

- ``scanner.PATH`` — any scanner TOML key, e.g. ``scanner.receiver.noise_density``,
  ``scanner.drive_field.base_frequency``, ``scanner.drive_field.channels[0].divider``;
  short forms ``selection.``, ``drive.``, ``receiver.`` for ``scanner.selection_field.`` etc.
  ``selection.gradient`` = G scales the gradient matrix so that its strongest axis has |G_ii| = G
  (T/m/µ0); ``drive.amplitude`` sets every channel's amplitude (T/µ0).
- ``tracer.FIELD`` — a :class:`mpisim.particles.Tracer` field, e.g. ``tracer.core_diameter``.
- ``design.FIELD`` — a :class:`mpisim.design.DesignSettings` field, e.g. ``design.averages``.

Values: ``a:b:n`` (n values from a to b), ``a,b,c`` (a list), or one value.
"""

import contextlib
import copy
import csv
from dataclasses import fields, replace
import io
import itertools
import json
import math
from pathlib import Path
import uuid

import numpy as np

from . import cluster, interrupt
from .design import DesignSettings, figure_keys, figures_of_merit
from .errors import MPISimError
from .io.atomic import atomic_path
from .particles import Tracer
from .plot import save_figure_atomic
from .progress import Progress
from .scanner import Scanner, get_scanner

__all__ = ["ALIASES", "MAX_DESIGNS", "build", "canonical_key", "check_keys", "designs", "evaluate", "parse_values",
           "parse_vary", "plot_sweep", "run_sweep"]

ALIASES = {"selection.": "scanner.selection_field.", "drive.": "scanner.drive_field.",
           "receiver.": "scanner.receiver."}


MAX_DESIGNS = 1_000_000
"""Most designs in one sweep (the combinations are listed in memory, one CSV row each)."""


def parse_values(spec, key):
    """'1:7:7' → [1, 2, ..., 7]; '20e-9,25e-9' → list; '3' → [3.0]."""
    text = str(spec).strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
            if n > MAX_DESIGNS:
                raise MPISimError(f"--vary {key}: {n} values; at most {MAX_DESIGNS}")
            vals = list(np.linspace(a, b, max(n, 0)))
        else:
            vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise MPISimError(f"--vary {key}: values must be a:b:n or a,b,c numbers, got {text!r}") from None
    if not vals:
        raise MPISimError(f"--vary {key}: no values in {text!r}" + (" (a range needs at least one value)"
                                                                       if ":" in text else ""))
    if not all(math.isfinite(v) for v in vals):
        raise MPISimError(f"--vary {key}: values must be finite, got {text!r}")
    return [float(v) for v in vals]


def parse_vary(items):
    """['KEY=SPEC', ...] → {canonical key: [values]} (keys checked against the scanner/tracer/design fields)."""
    out = {}
    for item in items:
        if "=" not in str(item):
            raise MPISimError(f"--vary must look like KEY=a:b:n or KEY=a,b, got {item!r}")
        key, spec = str(item).split("=", 1)
        key = canonical_key(key.strip())
        if key in out:
            raise MPISimError(f"--vary {key} is given twice")
        out[key] = parse_values(spec, key)
    if not out:
        raise MPISimError("a sweep needs at least one --vary KEY=VALUES")
    n = math.prod(len(v) for v in out.values())
    if n > MAX_DESIGNS:
        raise MPISimError(f"--vary gives {n} designs; at most {MAX_DESIGNS} per sweep (split it)")
    return out


def canonical_key(key):
    for short, long in ALIASES.items():
        if key.startswith(short):
            key = long + key[len(short):]
    group = key.split(".", 1)[0]
    if group not in ("scanner", "tracer", "design") or "." not in key:
        raise MPISimError(f"--vary {key}: unknown field; keys start with scanner., tracer. or design. "
                          f"(or selection., drive., receiver.)")
    return key


def _known(key, scanner_dict):
    group, rest = key.split(".", 1)
    if group == "tracer":
        return rest in {f.name for f in fields(Tracer)}
    if group == "design":
        return rest in {f.name for f in fields(DesignSettings)}
    if rest in ("selection_field.gradient", "drive_field.amplitude"):
        return True
    node = scanner_dict
    for part in _path(rest):
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) \
                and part < len(node):
            node = node[part]
        else:
            return False
    return not isinstance(node, (dict, list))


def _path(rest):
    parts = []
    for p in rest.split("."):
        if "[" in p and p.endswith("]"):
            name, idx = p[:-1].split("[")
            parts += [name, int(idx)]
        else:
            parts.append(p)
    return parts


def check_keys(vary, scanner):
    d = get_scanner(scanner).to_dict()
    for key in vary:
        try:
            ok = _known(key, d)
        except ValueError:
            ok = False
        if not ok:
            raise MPISimError(f"--vary {key}: no such field of this scanner, tracer or design settings")


def designs(vary):
    """[(design id, {key: value})] over the product of the value lists, in a fixed order."""
    keys = list(vary)
    return [(i, dict(zip(keys, combo))) for i, combo in enumerate(itertools.product(*(vary[k] for k in keys)))]


def build(scanner, tracer, settings, params):
    """(Scanner, Tracer, DesignSettings) of one design: the base ones with ``params`` applied."""
    sc = get_scanner(scanner)
    d = copy.deepcopy(sc.to_dict())
    tkw, skw = {}, {}
    for key, value in params.items():
        group, rest = key.split(".", 1)
        if group == "tracer":
            tkw[rest] = value
        elif group == "design":
            skw[rest] = int(round(value)) if rest == "averages" else value
        elif rest == "selection_field.gradient":
            g = np.array(d["selection_field"]["gradient"], float)
            d["selection_field"]["gradient"] = (g * (value / np.abs(np.diag(g)).max())).tolist()
        elif rest == "drive_field.amplitude":
            for c in d["drive_field"]["channels"]:
                c["amplitude"] = value
        else:
            node = d
            parts = _path(rest)
            for p in parts[:-1]:
                node = node[p]
            old = node[parts[-1]]
            node[parts[-1]] = int(round(value)) if isinstance(old, int) and not isinstance(old, bool) else value
    return Scanner.from_dict(d, "design"), replace(tracer, **tkw), replace(settings, **skw)


def evaluate(scanner, tracer, settings, design_id, params):
    """One design's row: {"design": id, params..., figure keys (SI values)..., "status"}. Never raises
    for a design that is not physical: the error goes into ``status``."""
    row = {"design": design_id, **params}
    try:
        sc, tr, st = build(scanner, tracer, settings, params)
        for k, f in figures_of_merit(sc, tr, st).items():
            row[k] = f.value
        row["status"] = "ok"
    except MPISimError as e:
        row["status"] = f"error: {e}"
    return row


def run_sweep(scanner, vary, out_dir, *, tracer=None, settings=None, workers=None, scheduler=None, resume=False,
              progress=True, plot=True, client=None):
    """Evaluate every design of ``vary`` and stream the rows to ``out_dir/results.csv``.

    ``workers``: 0 evaluates in this process (no Dask); N starts a local Dask cluster with N worker
    processes (default: one per CPU core); ``scheduler``: the address of a running Dask scheduler
    (``tcp://host:8786``). ``resume``: keep the rows of an earlier run of the same sweep and evaluate
    only the missing designs. ``client``: an existing ``distributed.Client`` to use instead.
    Returns the rows, ordered by design id.
    """
    sc = get_scanner(scanner)
    tracer = tracer or Tracer()
    settings = settings or DesignSettings()
    check_keys(vary, sc)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MPISimError(f"{out}: --out must be a folder, and this is a file")
    todo = designs(vary)
    spec = {"scanner": sc.to_dict(), "tracer": tracer.to_dict(), "settings": settings.__dict__,
            "vary": vary}
    results = out / "results.csv"
    fresh, existed = not out.exists(), [p for p in (results, out / "sweep.json") if p.exists()]
    done = {}
    try:
        done.update(_prepare_folder(out, spec, resume, results))
        return _run(sc, tracer, settings, vary, out, results, todo, done, workers, scheduler, progress, plot, client)
    except BaseException:
        if not done:                                  # nothing finished, now or before: leave nothing of this run
            for p in (results, out / "sweep.json"):
                if p not in existed:
                    p.unlink(missing_ok=True)
            if fresh:
                with contextlib.suppress(OSError):
                    out.rmdir()
        raise


def _run(sc, tracer, settings, vary, out, results, todo, done, workers, scheduler, progress, plot, client):
    """The body of :func:`run_sweep` once its folder is ready: rows appended as designs finish."""
    pending = [(i, p) for i, p in todo if i not in done]
    columns = ["design", *vary, *figure_keys(sc), "status"]
    new = not results.exists()
    with open(results, "a", newline="") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="ignore")
        if new:
            writer.writeheader()
            fh.flush()
        try:
            for row in _execute(sc, tracer, settings, pending, workers, scheduler, progress, client):
                writer.writerow(row)
                fh.flush()
                done[int(row["design"])] = row
                interrupt.check()
            rows = [done[i] for i in sorted(done)]
            if plot:
                plot_sweep(rows, list(vary), out / "figures.png")
        except (interrupt.Interrupted, KeyboardInterrupt) as e:   # the rows stay: they are the sweep's result
            raise _interrupted(getattr(e, "signum", 2), done, todo, results) from None
        except Exception as e:
            if interrupt.pending() is not None:     # failed because a signal reached a starting worker: the signal
                raise _interrupted(interrupt.pending(), done, todo, results) from None
            if isinstance(e, MPISimError):
                raise
            raise MPISimError(f"the sweep stopped: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                              f"; {_kept(done, todo, results) or 'nothing written'}") from None   # worker lost, …
    return rows


def _kept(done, todo, results):
    """What a stopped sweep keeps, in words (None: nothing)."""
    if done:
        return f"{results} keeps the {len(done)} of {len(todo)} designs that finished; --resume completes the sweep"
    return None


def _interrupted(signum, done, todo, results):
    """The :class:`~mpisim.interrupt.Interrupted` of a sweep: it keeps the finished rows, if any."""
    return interrupt.Interrupted(signum, kept=_kept(done, todo, results))


def _prepare_folder(out, spec, resume, results):
    """Make the sweep's folder (recording ``spec`` in ``sweep.json``), or check that it holds the same
    sweep when resuming; returns the rows already finished {design id: row}, whole rows only."""
    done = {}
    if out.exists() and any(out.iterdir()):
        stored = out / "sweep.json"
        if not resume:
            raise MPISimError(f"{out}: folder holds an earlier sweep; pass --resume to complete it or choose "
                              f"another --out")
        try:
            same = stored.exists() and json.loads(stored.read_text()) == json.loads(json.dumps(spec))
        except (OSError, ValueError):
            same = False
        if not same:
            raise MPISimError(f"{out}: --resume needs the same sweep (scanner, tracer, settings and --vary) as "
                              f"the one recorded in {stored}")
        done = {int(r["design"]): r for r in _read_rows(results)}
        if results.exists():                     # keep whole rows only (a killed run may have left half of one)
            columns0 = list(next(iter(done.values())).keys()) if done else None
            if columns0:
                with open(results, newline="") as fh:
                    header = next(csv.reader(fh), None)
                _write_atomic(results, _csv_text(header or columns0, [done[i] for i in sorted(done)]))
            else:
                results.unlink()
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MPISimError(f"{out}: cannot create the output folder ({e.strerror})") from None
        _write_atomic(out / "sweep.json", json.dumps(spec, indent=1))
    return done


def _execute(sc, tracer, settings, pending, workers, scheduler, progress, client=None):
    """Rows of ``pending`` designs, in the order they finish."""
    with Progress(len(pending), "designs", enabled=progress and len(pending) > 1) as bar:
        if workers == 0 and scheduler is None and client is None:
            for i, p in pending:
                yield evaluate(sc, tracer, settings, i, p)
                bar.update()
            return
        jobs = [(f"design-{i}-{uuid.uuid4().hex}", (sc, tracer, settings, i, p)) for i, p in pending]
        with cluster.connect(workers, scheduler, client) as client, \
                contextlib.closing(cluster.as_completed_results(client, evaluate, jobs)) as rows:
            for row in rows:
                yield row
                bar.update()


def _csv_text(columns, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _read_rows(path):
    if not Path(path).exists():
        return []
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("status")]


def _write_atomic(path, text):
    with atomic_path(path, overwrite=True, record=False) as tmp:    # the sweep's state survives an interrupt
        Path(tmp).write_text(text)


def plot_sweep(rows, keys, path):
    """One panel per figure of merit against the first varied key (a line per value of the others)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    skip = set(keys) | {"design", "status"}
    figs = [k for k in ok[0] if k not in skip]
    n = len(figs)
    cols = 4
    nrows = math.ceil(n / cols)
    x_key, others = keys[0], keys[1:]

    def draw(p):
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
        groups = {}
        for r in ok:
            groups.setdefault(tuple(float(r[k]) for k in others), []).append(r)
        for ax, key in zip(axes.ravel(), figs):
            for label, rs in groups.items():
                rs = sorted(rs, key=lambda r: float(r[x_key]))
                ax.plot([float(r[x_key]) for r in rs], [float(r[key]) for r in rs], "o-", ms=3,
                        label=", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in zip(others, label)) or None)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel(x_key, fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        if others and len(groups) <= 8:
            axes.ravel()[0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(p, dpi=90)
        plt.close(fig)

    save_figure_atomic(draw, path, overwrite=True)
    return path
