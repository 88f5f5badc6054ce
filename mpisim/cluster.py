"""Dask glue shared by the work that runs on a cluster: sweeps (:mod:`mpisim.sweep`) and system-matrix
builds (:mod:`mpisim.systemmatrix`).

A client connects to a running scheduler (``tcp://host:8786``) or starts a local cluster of worker
processes; results come back either as they finish (:func:`as_completed_results`) or in submission
order with a bounded number in flight (:func:`in_order_results`). dask.distributed is a heavy
optional library: it is imported when a client is made, never when this module is.
"""

import contextlib
import logging
import multiprocessing.util as mp_util
import os
import subprocess
import threading

from . import interrupt
from .errors import MPISimError

__all__ = ["as_completed_results", "connect", "dask_client", "in_order_results"]


_spawned = []          # the worker processes' Popen objects while a cluster lives (multiprocessing reaps them)
_ORIGINAL_SPAWN = mp_util.spawnv_passfds
_session_depth = 0
_session_lock = threading.Lock()


def _spawn_in_own_session(path, args, passfds):
    """:func:`multiprocessing.util.spawnv_passfds` with the child in a session of its own (``setsid``)."""
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "critical",   # a cancelled task is not news to the user
           "MPISIM_PARENT_PID": str(os.getpid())}                   # lets a test find the workers of a command
    p = subprocess.Popen(args, executable=path, pass_fds=tuple(sorted(map(int, passfds))), close_fds=True,
                         start_new_session=True, env=env)
    _spawned.append(p)
    return p.pid


@contextlib.contextmanager
def workers_in_own_session():
    """Worker processes started meanwhile (multiprocessing's ``spawn``, what a local Dask cluster uses)
    run in a session of their own: Ctrl-C in the terminal, or a signal to the command's process group,
    reaches only this process, which closes the cluster itself; otherwise every worker dies at once
    with a traceback of its own while the scheduler waits for them (3 hangs in 18 interrupts, issue 22).
    A worker still exits when this process dies (Dask watches its parent). Nested and overlapping uses
    count: the original spawn comes back when the last one ends."""
    global _session_depth
    if os.name != "posix":
        yield
        return
    with _session_lock:
        _session_depth += 1
        mp_util.spawnv_passfds = _spawn_in_own_session
    try:
        yield
    finally:
        with _session_lock:
            _session_depth -= 1
            if _session_depth == 0:
                mp_util.spawnv_passfds = _ORIGINAL_SPAWN
                for p in _spawned:           # reaped by multiprocessing: the Popen object must not reap again
                    if p.returncode is None:
                        p.returncode = 0
                _spawned.clear()


class dask_client:
    """A Dask client: to ``scheduler`` when given, else to a local cluster of ``workers`` processes
    that terminal and process-group signals do not reach (:func:`workers_in_own_session`)."""

    def __init__(self, workers, scheduler):
        self.workers, self.scheduler = workers, scheduler

    def __enter__(self):
        from distributed import Client, LocalCluster

        for name in ("distributed", "tornado", "asyncio"):     # their shutdown chatter is not the user's business
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.cluster = None
        self._session = workers_in_own_session()
        self._session.__enter__()
        try:
            if self.scheduler:
                try:
                    self.client = Client(self.scheduler, timeout="10s")
                except (OSError, TimeoutError, ValueError) as e:
                    raise MPISimError(f"cannot reach the Dask scheduler at {self.scheduler} ({type(e).__name__})") from None
            else:
                n = self.workers or os.cpu_count() or 1
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
                try:
                    self.client = Client(self.cluster)
                except BaseException:
                    self.cluster.close()
                    raise
        except BaseException:
            self._session.__exit__(None, None, None)
            interrupt.check()       # a worker that a signal reached while it started: the signal is the news
            raise
        try:
            interrupt.check()                       # a signal that arrived while the cluster started
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.client

    def __exit__(self, *exc):
        try:
            self.client.close()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.close()
            finally:
                self._session.__exit__(None, None, None)


def connect(workers=None, scheduler=None, client=None):
    """A context manager giving a Dask client: ``client`` itself when given (left open), else
    :class:`dask_client` ``(workers, scheduler)`` (closed, with its local cluster, on exit)."""
    return contextlib.nullcontext(client) if client is not None else dask_client(workers, scheduler)


def as_completed_results(client, fn, jobs):
    """``fn(*args)`` for every ``(key, args)`` of ``jobs``, all submitted to ``client`` at once (``key``:
    the Dask key of the task); yields the results in the order they finish. Closing the generator
    cancels what is left."""
    futures = [client.submit(fn, *args, pure=False, key=key) for key, args in jobs]
    left = set(futures)
    try:
        while left:
            done = _wait_checking(left, 0.2)
            left -= done
            for fut in [f for f in futures if f in done]:
                yield fut.result()
    finally:
        client.cancel(futures)


def _wait_checking(futures, every):
    """The futures of ``futures`` that are done, once one is, looking for a signal every ``every`` s
    (:func:`mpisim.interrupt.check`) while none is: an interrupt stops the wait within that time."""
    from distributed import wait

    while True:
        interrupt.check()
        try:
            return wait(futures, timeout=every, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            continue


def in_order_results(workers, scheduler, fn, shared, calls, what, consequence=""):
    """``fn(**shared, **kwargs)`` for every ``kwargs`` of ``calls``, computed on Dask workers and yielded
    in the order of ``calls``, with at most two calls per worker in flight (bounded memory here).

    ``shared``: keyword arguments common to every call, sent to every worker once. A failed call (a
    worker lost, the scheduler gone) raises a one-line :class:`MPISimError`: "Dask failed on ``what``
    i of n (reason)" followed by ``consequence``. The client connects on the first result; ``close()``
    cancels what is left and shuts the client down."""
    ctx = dask_client(workers, scheduler)
    client = ctx.__enter__()
    futures = {}
    try:
        names = list(shared)
        remote = dict(zip(names, client.scatter([shared[k] for k in names], broadcast=True)))
        ahead = 2 * max(1, len(client.scheduler_info(n_workers=-1)["workers"]))

        def submit(i):
            futures[i] = client.submit(fn, pure=False, **remote, **calls[i])

        for i in range(min(ahead, len(calls))):
            submit(i)
        for i in range(len(calls)):
            fut = futures.pop(i)
            try:
                _wait_checking([fut], 0.5)
                result = fut.result()
            except interrupt.Interrupted:
                raise
            except Exception as e:                  # a worker lost, the scheduler gone
                raise MPISimError(f"Dask failed on {what} {i + 1} of {len(calls)} ({type(e).__name__}"
                                  f"{': ' + str(e).splitlines()[0][:100] if str(e) else ''}){consequence}") from None
            if i + ahead < len(calls):
                submit(i + ahead)
            yield result
    finally:
        for f in futures.values():
            f.cancel()
        ctx.__exit__(None, None, None)
