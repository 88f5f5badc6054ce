"""The ``mpisim`` command line: one module per command (or close group of commands).

Each command module has ``add_parser(sub)`` (its options, help and defaults) and a ``run(args)``
that checks what argparse cannot and calls the library; option groups used by several commands
(tracer, backend, ``--overwrite``) live in :mod:`mpisim.cli.common`. :func:`main` turns user mistakes
(:class:`~mpisim.errors.MPISimError`) into one line and exit status 2, and interrupts into one line
and exit status 130 / 143 with no output left (:mod:`mpisim.interrupt`). To add a command, write
``mpisim/cli/<name>.py`` with those two functions and add its name to :data:`COMMANDS`
(docs/conventions.md, "The command line").
"""

import argparse
import importlib
import os
import sys
import warnings

from .. import __version__, interrupt
from ..errors import MPISimError, printable
from ..io import atomic

__all__ = ["EPILOG", "COMMANDS", "MODULE_OF", "build_parser", "main"]

EPILOG = """Units: SI throughout; fields in T/µ0 (12 mT = 0.012), concentrations in mol Fe/L.
Examples:
  mpisim simulate --scanner bruker-2d --phantom shapes --noise realistic --frames 10 --out meas.mdf
  mpisim sysmat --scanner bruker-2d --grid 41x41x1 --out sm.mdf
  mpisim reco meas.mdf --sm sm.mdf --out reco.mdf --png reco.png
  mpisim info meas.mdf
"""

COMMANDS = ("simulate", "info", "sysmat", "cache", "reco", "live", "demo", "convert", "quantify", "studies", "design",
            "plot", "mps")
"""Command modules, in the order ``mpisim --help`` lists them (``studies`` adds titrate and track)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (the rule for every user mistake), pointing at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


MODULE_OF = {"titrate": "studies", "track": "studies", "sweep": "design"}
"""Commands that live in a module of another name (every other command is its own module)."""


def build_parser(command=None):
    """The parser of every command, or of ``command`` alone (what a run of one command needs: its module's
    imports only, so the command starts sooner)."""
    p = _Parser(prog="mpisim", description="Magnetic particle imaging simulator and reconstructor.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mpisim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    module = MODULE_OF.get(command, command)
    for name in COMMANDS if module not in COMMANDS else (module,):
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return p


class _Tee:
    """Keeps a copy of what a command prints on stdout (to check that it named its outputs)."""

    def __enter__(self):
        self._out, self._parts = sys.stdout, []
        tee = self

        class _W:
            def write(self, text):
                tee._parts.append(text)
                return tee._out.write(text)

            def __getattr__(self, name):
                return getattr(tee._out, name)

        sys.stdout = _W()
        return self

    def __exit__(self, *exc):
        sys.stdout = self._out

    def text(self):
        return "".join(self._parts)


def _name_outputs(written, said, json_mode):
    """Every file a command wrote is named on stdout: those its own messages did not name are
    listed here (on stderr in --json mode, where stdout carries only the JSON)."""
    for p in dict.fromkeys(str(x) for x in written):
        if p not in said and os.path.exists(p):
            print(f"wrote {p}", file=sys.stderr if json_mode else sys.stdout)


def _report_warnings(command, warned):
    """Warnings of a command that succeeded, one line each (the same message once): a failed
    command prints only its error, never the warnings that led to it."""
    seen = []
    for w in warned:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.append(text)
            print(f"mpisim {command}: warning: {text}", file=sys.stderr)


def main(argv=None):
    """The ``mpisim`` command. Interrupts are handled from the first line (see :mod:`mpisim.interrupt`);
    run as a program (``argv`` None), the handlers stay until the process exits, so a signal that
    arrives after the work is done cannot turn into a traceback on the way out."""

    with interrupt.handlers(restore=argv is not None), atomic.record_outputs() as written, atomic.record_inputs():
        try:
            words = sys.argv[1:] if argv is None else list(argv)
            parser = build_parser(words[0] if words else None)
            args = parser.parse_args(argv)
            if not getattr(args, "func", None):
                parser.print_help()
                return 2
            with warnings.catch_warnings(record=True) as warned, _Tee() as said:
                warnings.simplefilter("always")
                for quiet in (DeprecationWarning, PendingDeprecationWarning):     # libraries' business, not the user's
                    warnings.simplefilter("ignore", quiet)
                args.func(args)
            interrupt.check()                    # a signal during the last, unchecked step
            _name_outputs(written, said.text(), getattr(args, "json", False))
            _report_warnings(args.command, warned)
        except MPISimError as e:
            print(f"mpisim {args.command}: error: {printable(e, keep_newlines=False)}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, interrupt.Interrupted) as e:
            code = e.exit_code if isinstance(e, interrupt.Interrupted) else 130
            kept = getattr(e, "kept", None)
            if not kept:
                atomic.remove_outputs(written)   # an interrupt leaves no output, even one already renamed
            name = getattr(locals().get("args"), "command", None)
            print(f"mpisim{' ' + name if name else ''}: interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}); "
                  f"{kept or 'no output written'}", file=sys.stderr)
            return code
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return 0
