"""Dask glue shared by the work that runs on a cluster: sweeps (:mod:`mpisim.sweep`) and system-matrix
builds (:mod:`mpisim.systemmatrix`).

A client connects to a running scheduler (``tcp://host:8786``) or starts a local cluster of worker
processes; results come back either as they finish (:func:`as_completed_results`) or in submission
order with a bounded number in flight (:func:`in_order_results`). dask.distributed is a heavy
optional library: it is imported when a client is made, never when this module is.
"""

import contextlib
import logging
import os

from . import interrupt
from .errors import MPISimError

__all__ = ["as_completed_results", "connect", "dask_client", "in_order_results"]


class dask_client:
    """A Dask client: to ``scheduler`` when given, else to a local cluster of ``workers`` processes."""

    def __init__(self, workers, scheduler):
        self.workers, self.scheduler = workers, scheduler

    def __enter__(self):
        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.ERROR)
        self.cluster = None
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
        return self.client

    def __exit__(self, *exc):
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def connect(workers=None, scheduler=None, client=None):
    """A context manager giving a Dask client: ``client`` itself when given (left open), else
    :class:`dask_client` ``(workers, scheduler)`` (closed, with its local cluster, on exit)."""
    return contextlib.nullcontext(client) if client is not None else dask_client(workers, scheduler)


def as_completed_results(client, fn, jobs):
    """``fn(*args)`` for every ``(key, args)`` of ``jobs``, all submitted to ``client`` at once (``key``:
    the Dask key of the task); yields the results in the order they finish. Closing the generator
    cancels what is left."""
    from distributed import as_completed

    futures = [client.submit(fn, *args, pure=False, key=key) for key, args in jobs]
    try:
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.cancel(futures)


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
            interrupt.check()
            try:
                result = futures.pop(i).result()
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
