"""The command line's layout and help (issue 13): every option explained with its default shown once,
every module importable on its own (the import rules and cycles: tests/test_layout.py)."""

import argparse
import pathlib
import subprocess
import sys

import pytest

from mpisim import cli

PACKAGE = pathlib.Path(cli.__file__).resolve().parent.parent


def subparsers():
    p = cli.build_parser()
    sub = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)][0]
    return sub.choices


def _help_text(parser, action):
    fmt = parser._get_formatter()
    return fmt._expand_help(action) if action.help else ""


def _shown_default(action):
    d = action.default
    return not (d is None or d is False or d == "" or d == [] or d == argparse.SUPPRESS
                or isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)))


@pytest.mark.parametrize("name", list(subparsers()))
def test_every_option_is_explained_with_its_default_once(name):
    sp = subparsers()[name]
    assert sp.description, f"mpisim {name} has no description"
    problems = []
    for a in sp._actions:
        if isinstance(a, argparse._HelpAction) or a.help == argparse.SUPPRESS:
            continue
        label = "/".join(a.option_strings) or a.dest
        text = _help_text(sp, a)
        if not text.strip():
            problems.append(f"{label}: no help")
            continue
        n = text.lower().count("default")
        if n > 1:
            problems.append(f"{label}: default shown {n} times: {text!r}")
        if a.option_strings and _shown_default(a) and not a.required and n == 0:
            problems.append(f"{label}: default {a.default!r} not shown: {text!r}")
        if a.required and "default" in text.lower():
            problems.append(f"{label}: required, yet a default is shown")
    assert not problems, f"mpisim {name} --help:\n" + "\n".join(problems)


def _modules():
    return sorted(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
                  for p in PACKAGE.rglob("*.py"))


def test_every_module_imports_on_its_own():
    """Each module imported first, with no other mpisim module loaded (they are all dropped from
    sys.modules before each import, in one fresh interpreter): no module relies on another having been
    imported before it."""
    mods = [m for m in _modules() if not m.endswith("__main__")]
    code = ("import importlib, sys\n"
            "bad = []\n"
            "for m in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k == 'mpisim' or k.startswith('mpisim.')]:\n"
            "        del sys.modules[k]\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except Exception as e:\n"
            "        bad.append(f'{m}: {type(e).__name__}: {e}')\n"
            "print('\\n'.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr[-2000:]
    assert len(mods) > 30
