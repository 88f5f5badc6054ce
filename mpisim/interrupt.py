"""Interrupts (Ctrl-C, SIGTERM) that stop a command cleanly: no output, no traceback, exit 130 / 143.

The command line installs :func:`handlers`. A signal is only *recorded*; long work calls :func:`check`
between blocks (voxel blocks of a build, frame blocks of a simulation, sweeps, row reads, progress
updates), which raises :class:`Interrupted` there, and :func:`mpisim.io.atomic.atomic_path` checks
before it renames a finished file into place, so nothing is committed after an interrupt. Raising
from the handler itself could land inside a finalizer or weakref callback, where Python prints
"Exception ignored" and carries on; a second signal does raise at once, for work without check points.

Library code calls :func:`check` too; without the command line's handlers it never raises.
"""

import contextlib
import signal

__all__ = ["EXIT_CODES", "Interrupted", "pending", "consume", "check", "handlers"]

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(BaseException):
    """The user interrupted the command (a BaseException, so ``except Exception`` does not swallow it)."""

    def __init__(self, signum, kept=None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.kept = kept           # what the command keeps on purpose (a sweep's finished rows), or None

    @property
    def exit_code(self):
        return EXIT_CODES.get(self.signum, 130)


_pending = None


def pending():
    """The signal number received and not yet acted on, or None."""
    return _pending


def consume():
    """The signal number received and not yet acted on (None: none), now acted on: for work that a signal ends
    normally (a live session, which Ctrl-C finishes with its report)."""
    global _pending
    signum, _pending = _pending, None
    return signum


def check():
    """Raise :class:`Interrupted` if a signal has arrived (call between blocks of long work)."""
    if _pending is not None:
        raise Interrupted(_pending)


def _handler(signum, frame):
    global _pending
    if _pending is not None:             # second signal: stop now
        raise Interrupted(signum)
    _pending = signum


@contextlib.contextmanager
def handlers(restore=True):
    """Record SIGINT/SIGTERM for the duration (main thread only); the previous handlers come back after,
    unless ``restore`` is false (a program that exits next: a late signal is then recorded, not raised)."""
    global _pending
    _pending = None
    old = {}
    try:
        for s in EXIT_CODES:
            old[s] = signal.signal(s, _handler)
    except ValueError:                   # not the main thread: leave signals alone
        old = {}
    try:
        yield
    finally:
        if restore:
            for s, h in old.items():
                signal.signal(s, h)
            _pending = None
        elif old:
            # the program exits next; Python's finalisation puts the default handlers back, so a signal
            # arriving now would kill the finished command (exit −2): ignore them from here on
            for s in old:
                signal.signal(s, signal.SIG_IGN)
