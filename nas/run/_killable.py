"""Evaluations that can be stopped: each call runs in a forked child process, killed when it is cancelled.

``--trial-timeout`` without workers evaluates candidates here: :meth:`search.Study.optimize` cancels the future
of a trial past its deadline, which kills the child, records the trial FAILED with a timeout error and goes on.
An evaluation in the searching process itself could only be abandoned, never stopped.

A child runs torch on one thread (see :func:`_child`): after a fork, torch's OpenMP thread pool cannot be used.

Measurements a child makes are not lost with it: each :class:`~profilers.MeasurementCache` given as ``caches``
relays every entry the child stores to the parent over the pipe as soon as it is made; the parent stores it in
its own cache (which saves its file), so a trial killed after its latency was measured leaves that latency
cached for the next candidate with the same arch, and for a resume.

Example:
    >>> with KillableExecutor() as ex:
    ...     ex.submit(pow, 2, 10).result()
    1024
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from profilers import MeasurementCache

__all__ = ["KillableExecutor"]


class _ChildFuture(cf.Future):
    """A future whose ``cancel()`` kills the child process computing it."""

    def __init__(self) -> None:
        super().__init__()
        self.process: Any = None
        self.killed = False
        #: set once everything the child sent has been received (its measurements stored)
        self.collected = threading.Event()

    def cancel(self) -> bool:
        process = self.process
        if process is not None and process.is_alive():
            self.killed = True
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            # what the child measured before it was killed is stored before the trial is recorded failed
            self.collected.wait(COLLECT_TIMEOUT_S)
        if super().cancel():
            return True
        try:
            self.set_exception(TimeoutError("the evaluation was stopped"))
        except cf.InvalidStateError:  # it finished meanwhile
            pass
        return True


#: seconds a cancel waits for what a killed child sent to be received (the pipe closes when the child dies,
#: unless a process it started still holds it)
COLLECT_TIMEOUT_S = 10.0


def _child(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    conn: Any,
    caches: tuple[MeasurementCache, ...] = (),
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it kills this child
    torch = sys.modules.get("torch")
    if torch is not None:
        # GNU OpenMP, which CPU builds of torch use, cannot run a parallel region in a forked child of a
        # process that ran one (training on several threads): the child's first parallel operator would wait
        # for ever. On one thread torch runs every operator without entering OpenMP.
        torch.set_num_threads(1)
    sending = threading.Lock()

    def relay(index: int) -> Callable[[object, Any], None]:
        def send(key: object, value: Any) -> None:
            with sending:
                conn.send(("put", (index, key, value)))

        return send

    for i, cache in enumerate(caches):
        cache.relay(relay(i))
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as this trial's failure
        last = traceback.extract_tb(e.__traceback__)[-1:]
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        conn.send(("error", f"{type(e).__name__}: {e}{where}"))
    finally:
        conn.close()


class KillableExecutor(cf.Executor):
    """Runs each submitted call in its own forked child process (``fork``: the child shares the parent's
    loaded supernet and data without copying them up front); results come back through a pipe.

    Args:
        caches: measurement caches the calls store into: what a child stores reaches this process's cache at
            once (see the module's docstring), killed or not.
    """

    def __init__(self, *, caches: Sequence[MeasurementCache] = ()) -> None:
        self._caches = tuple(caches)
        self._ctx = multiprocessing.get_context("fork")
        self._futures: set[_ChildFuture] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future = _ChildFuture()
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=_child, args=(fn, args, kwargs, send, self._caches), daemon=True)
        process.start()
        send.close()
        future.process = process
        future.set_running_or_notify_cancel()
        with self._lock:
            self._futures.add(future)
        threading.Thread(target=self._collect, args=(future, receive, process), daemon=True).start()
        return future

    def _collect(self, future: _ChildFuture, receive: Any, process: Any) -> None:
        try:
            while True:
                try:
                    kind, value = receive.recv()
                except Exception:  # noqa: BLE001 - closed, or a message cut short by the kill: the child is gone
                    kind, value = "died", None
                if kind != "put":
                    break
                self._store(*value)
        finally:
            receive.close()
            future.collected.set()
            process.join()
        with self._lock:
            self._futures.discard(future)
        if kind == "died" and future.killed:
            return  # cancel() records the timeout
        try:
            if kind == "ok":
                future.set_result(value)
            elif kind == "error":
                future.set_exception(RuntimeError(value))
            else:
                future.set_exception(
                    RuntimeError(f"the evaluation process died (exit status {process.exitcode})")
                )
        except cf.InvalidStateError:  # cancelled (killed) meanwhile: the trial has failed already
            pass

    def _store(self, index: int, key: object, value: Any) -> None:
        try:
            self._caches[index].put(key, value)
        except (OSError, TypeError, ValueError) as e:  # the entry stays in memory; the next save reports it
            warnings.warn(f"a measurement of a stopped evaluation could not be cached: {e}", stacklevel=2)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            futures = list(self._futures)
        for f in futures:
            f.cancel()
