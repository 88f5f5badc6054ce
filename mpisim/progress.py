"""A small progress bar with ETA on stderr (no dependency): shown only when enabled and stderr is
a terminal, or when ``MPISIM_PROGRESS=1``."""

import os
import sys
import time

from .interrupt import check

__all__ = ["Progress"]


class Progress:
    def __init__(self, total, label="", enabled=True, stream=None):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and (os.environ.get("MPISIM_PROGRESS") == "1" or
                                    (hasattr(self.stream, "isatty") and self.stream.isatty()))
        self.t0 = self._last = time.perf_counter()

    def update(self, n=1):
        check()                          # long loops report progress: a natural place to stop
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        frac = min(self.done / self.total, 1.0)
        el = now - self.t0
        eta = el / frac - el if frac > 0 else 0.0
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r{self.label:>10} [{bar:<30}] {100 * frac:5.1f}%  {el:6.1f}s elapsed, ETA {eta:6.1f}s")
        self.stream.flush()

    def finish(self):
        """Draw the bar at 100 % now: the work ended early (a stopping rule) and is complete."""
        if self.done >= self.total:
            return
        self.total = max(self.done, 1)
        self._last = 0.0
        self.update(0)

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
