"""Field fuzzing (issue 13, "Bad input"): every numeric field of valid MDF files set to NaN, ±inf, 0,
−1, 1e308 and 2⁶², and each mutated file given to every command that reads it.

For every run: exit status 0 or 2; on 2 one line on stderr naming the file and no output left; on 0
every number written (MDF datasets, PNG aside) and printed (stdout, JSON) is finite; no Python
warning is raised and none reaches stderr; the input file is unchanged.

The fast suite runs a seeded sample (``MPISIM_FUZZ_RUNS``, default 100); the slow study runs all of
them (``pytest -m slow tests/test_fuzz_fields.py``).
"""

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import warnings

import h5py
import numpy as np
import pytest

from mpisim.cli import main

import mdf_factory as F

VALUES = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf, "0": 0.0, "-1": -1.0, "1e308": 1e308, "-1e308": -1e308,
          "2^62": 2.0 ** 62}
NON_FINITE = re.compile(r"(?<![\w.])(nan|-?inf(inity)?)(?![\w])", re.IGNORECASE)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("fuzz-src"))


def make_sources(d):
    """Valid files to mutate: mpisim's measurement, calibration and reconstruction (bruker-1d) and
    MPIFiles-layout measurement and calibration (tests/mdf_factory.py)."""
    run = lambda *a: main(list(map(str, a)))   # noqa: E731
    assert run("simulate", "--scanner", "bruker-1d", "--frames", "2", "--background-frames", "2",
               "--noise", "realistic", "--out", d / "meas.mdf") == 0
    assert run("sysmat", "--scanner", "bruker-1d", "--grid", "9x1x1", "--background-frames", "3", "--no-cache",
               "--out", d / "sm.mdf") == 0
    assert run("reco", d / "meas.mdf", "--sm", d / "sm.mdf", "--out", d / "reco.mdf", "--snr-threshold", "0") == 0
    F.write_mpifiles_sm(d / "mpifiles-sm.mdf", n=5, n_bg=2)
    F.write_mpifiles_meas(d / "mpifiles-meas.mdf", n=5, frames=2, n_bg=1)
    return d


def commands(kind, path, sources, out):
    """The commands that read a file of this kind, with ``path`` in the place under test."""
    s = sources
    if kind == "meas":
        sm = s / ("sm.mdf" if "mpifiles" not in path.name else "mpifiles-sm.mdf")
        return [["info", path], ["reco", path, "--sm", sm, "--out", out / "r.mdf", "--snr-threshold", "0", "--json"],
                ["convert", path, out / "c.mdf"], ["plot", path, "--out", out / "p.png"]]
    if kind == "sm":
        meas = s / ("meas.mdf" if "mpifiles" not in path.name else "mpifiles-meas.mdf")
        return [["info", path], ["reco", meas, "--sm", path, "--out", out / "r.mdf", "--snr-threshold", "0", "--json"],
                ["plot", path, "--out", out / "p.png"]]
    return [["info", path], ["plot", path, "--out", out / "p.png"],
            ["quantify", path, "--roi", "a=sphere:0,0,0,3", "--json"]]


def numeric_fields(path):
    names = []
    with h5py.File(path, "r") as h:
        h.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset)
                     and (o.dtype.kind in "biufc" or o.dtype.names) else None)
    return names


def cases(sources):
    """(source name, kind, field, value label) for every field × value."""
    out = []
    for name, kind in (("meas.mdf", "meas"), ("sm.mdf", "sm"), ("reco.mdf", "reco"),
                       ("mpifiles-meas.mdf", "meas"), ("mpifiles-sm.mdf", "sm")):
        for field in numeric_fields(sources / name):
            for label in VALUES:
                out.append((name, kind, field, label))
    return out


def mutate(src, dst, field, value):
    """Copy ``src`` to ``dst`` with ``field``'s first element set to ``value`` (retyped to float64
    when its type cannot hold it)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _mutate(src, dst, field, value)


def _mutate(src, dst, field, value):
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as h:
        ds = h[field]
        a = np.array(ds[()])
        del h[field]
        if a.dtype.names:
            a = a.copy()
            a.flat[0] = tuple(value for _ in a.dtype.names)
        elif a.dtype.kind == "c":
            a = a.astype(np.complex128)
            a.flat[0] = value
        else:
            try:
                b = a.astype(a.dtype)
                b.flat[0] = value
                if not (np.isnan(value) and b.dtype.kind != "f") and (b.flat[0] == value or b.dtype.kind == "f"):
                    a = b
                else:
                    raise OverflowError
            except (OverflowError, ValueError):
                a = a.astype(np.float64)
                a.flat[0] = value
        h[field] = a


def run_one(args):
    """(exit status, stdout, stderr, warnings) of one in-process command."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as w, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:                # argparse
            code = e.code
        except Exception as e:                 # a traceback: the bug this test looks for
            code = f"{type(e).__name__}: {str(e)[:150]}"
    return code, out.getvalue(), err.getvalue(), [f"{x.category.__name__}: {x.message}" for x in w]


def finite_outputs(folder):
    """Names of datasets with non-finite numbers in the MDF files under ``folder``."""
    bad = []
    for p in folder.glob("*.mdf"):
        with h5py.File(p, "r") as h:
            def visit(n, o):
                if isinstance(o, h5py.Dataset) and o.dtype.kind in "fc" and not np.all(np.isfinite(o[()])):
                    bad.append(f"{p.name}:/{n}")
            h.visititems(visit)
    return bad


def check_case(sources, tmp, name, kind, field, label):
    """Problems found with one mutated file (empty list: all good)."""
    src = sources / name
    mutated = tmp / f"m-{name}"
    mutate(src, mutated, field, VALUES[label])
    digest = hashlib.sha256(mutated.read_bytes()).hexdigest()
    problems = []
    for args in commands(kind, mutated, sources, tmp / "out"):
        shutil.rmtree(tmp / "out", ignore_errors=True)
        (tmp / "out").mkdir()
        code, out, err, warned = run_one(args)
        what = f"{name} /{field}={label} `{args[0]}`"
        if code not in (0, 2):
            problems.append(f"{what}: {code}")
            continue
        if warned or "Warning" in err or "Warning" in out:
            problems.append(f"{what}: warnings {warned[:2]} {err[:150]!r}")
        if code == 2:
            if len(err.strip().splitlines()) != 1 or mutated.name not in err and "error" not in err:
                problems.append(f"{what}: error not one line naming the file: {err[:200]!r}")
            left = [p.name for p in (tmp / "out").iterdir()]
            if left:
                problems.append(f"{what}: exit 2 but left {left}")
        else:
            if NON_FINITE.search(out):
                problems.append(f"{what}: non-finite number printed: {out[:200]!r}")
            if out.lstrip().startswith("{"):                 # --json: stdout is one JSON document
                try:
                    json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
                except ValueError as e:
                    problems.append(f"{what}: invalid JSON ({e})")
            bad = finite_outputs(tmp / "out")
            if bad:
                problems.append(f"{what}: wrote non-finite {bad[:3]}")
    if hashlib.sha256(mutated.read_bytes()).hexdigest() != digest:
        problems.append(f"{name} /{field}={label}: input modified")
    return problems


def _run(sources, tmp_path, selected):
    problems = []
    for case in selected:
        problems += check_case(sources, tmp_path, *case)
    return problems


def test_field_fuzz_sample(sources, tmp_path):
    all_cases = cases(sources)
    n = int(os.environ.get("MPISIM_FUZZ_RUNS", "100"))
    rng = np.random.default_rng(13)
    pick = [all_cases[i] for i in sorted(rng.choice(len(all_cases), min(n, len(all_cases)), replace=False))]
    problems = _run(sources, tmp_path, pick)
    assert problems == [], "\n".join(problems[:40])


@pytest.mark.slow
def test_field_fuzz_all(sources, tmp_path):
    all_cases = cases(sources)
    problems = _run(sources, tmp_path, all_cases)
    print(f"\nfield fuzz: {len(all_cases)} mutated files, {len(problems)} problems")
    assert problems == [], "\n".join(problems[:80])


# --- scanner TOML files, mutated one key at a time -------------------------------------------------

TOML_VALUES = {"string": "pi/2", "bool": True, "zero": 0, "negative": -1, "huge": 1e300, "2^62": 2 ** 62,
               "tiny": 1e-300, "empty list": [], "table": {"a": 1}}


def _leaves(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                yield from _leaves(x, prefix + (k, i))
        else:
            yield prefix + (k,)


def _set(d, path, value, delete=False):
    import copy

    d = copy.deepcopy(d)
    t = d
    for p in path[:-1]:
        t = t[p]
    if delete:
        del t[path[-1]]
    else:
        t[path[-1]] = value
    return d


def scanner_variants():
    """(label, TOML text or dict) of mutated bruker-1d scanners: every key deleted, every key set
    to each of TOML_VALUES, every section deleted, and an empty file."""
    import mpisim

    base = mpisim.get_scanner("bruker-1d").to_dict()
    out = [("empty file", "")]
    for sec in ("selection_field", "drive_field", "receiver"):
        out.append((f"no [{sec}]", _set(base, (sec,), None, delete=True)))
    for path in _leaves(base):
        key = ".".join(str(p) for p in path)
        out.append((f"{key} deleted", _set(base, path, None, delete=True)))
        for label, v in TOML_VALUES.items():
            out.append((f"{key} = {label}", _set(base, path, v)))
    return out


def _toml_text(v):
    from mpisim import tomlio

    return v if isinstance(v, str) else tomlio.dumps(v)


def test_scanner_toml_mutations(tmp_path):
    """Every variant: simulate and sysmat exit 0 or 2, never a traceback or a warning; an error is one
    line naming the key (or the file for an empty one); a success that left out optional keys says
    which defaults it used; nothing is left behind after an error."""
    problems, ran = [], 0
    for i, (label, variant) in enumerate(scanner_variants()):
        try:
            text = _toml_text(variant)
        except Exception:        # a value tomlio cannot write (e.g. a table where a number goes)
            import tomllib  # noqa: F401
            continue
        path = tmp_path / f"s{i}.toml"
        path.write_text(text)
        key = label.split("[")[1].rstrip("]") if label.startswith("no [") else label.split(" ")[0].split(".")[-1]
        for cmd in (["simulate", "--scanner", path, "--out", tmp_path / "o.mdf"],
                    ["sysmat", "--scanner", path, "--grid", "5x1x1", "--no-cache", "--out", tmp_path / "o.mdf"]):
            ran += 1
            code, out, err, warned = run_one(cmd)
            what = f"{label!r} `{cmd[0]}`"
            if code not in (0, 2):
                problems.append(f"{what}: {code}")
                continue
            if warned or "Warning" in err:
                problems.append(f"{what}: warnings {warned[:2]} {err[:120]!r}")
            if code == 2:
                err = "\n".join(ln for ln in err.splitlines() if not ln.startswith("note:"))
                if len(err.strip().splitlines()) != 1:
                    problems.append(f"{what}: not one line: {err[:200]!r}")
                elif label != "empty file" and key not in err and not key.isdigit():
                    problems.append(f"{what}: error does not name {key!r}: {err.strip()[:200]}")
                if (tmp_path / "o.mdf").exists():
                    problems.append(f"{what}: exit 2 left the output")
            elif label.endswith("deleted") and key not in err and key not in ("name", "manufacturer", "facility",
                                                                                "topology"):
                problems.append(f"{what}: accepted without saying {key} was filled in: {out[:200]!r}")
            (tmp_path / "o.mdf").unlink(missing_ok=True)
    assert ran > 300
    assert problems == [], "\n".join(problems[:40])


# --- command-line values that once overflowed, allocated without bound or wrote without a word -----

GUARDS = [
    (["simulate", "--averages", str(10 ** 30)], "averages"),
    (["simulate", "--averages", "1e30"], "averages"),
    (["simulate", "--scanner", "bruker-3d", "--frames", "300000"], "GiB"),          # 390 GB: refused, disk
    (["sysmat", "--grid", "4294967296x4294967296x1"], "too large"),                # once overflowed to 0 voxels
    (["sysmat", "--grid", "1000x1000x1000", "--max-freq", "30e3"], "too large"),   # once MemoryError at 15 GB
]


@pytest.mark.parametrize("argv,needle", GUARDS, ids=[" ".join(a)[:40] for a, _ in GUARDS])
def test_resource_guards(tmp_path, argv, needle):
    code, out, err, warned = run_one([*argv, "--out", tmp_path / "o.mdf"])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (code, err)
    assert not warned and list(tmp_path.iterdir()) == []


def test_frame_range_is_checked_before_it_is_expanded(sources, tmp_path):
    code, out, err, warned = run_one(["reco", sources / "meas.mdf", "--sm", sources / "sm.mdf",
                                      "--out", tmp_path / "r.mdf", "--frames", "0-999999999"])
    assert code == 2 and "--frames" in err and not (tmp_path / "r.mdf").exists(), err
