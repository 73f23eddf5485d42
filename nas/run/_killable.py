"""Evaluations that can be stopped: each call runs in a forked child process, killed when it is cancelled.

``--trial-timeout`` without workers evaluates candidates here: :meth:`search.Study.optimize` cancels the future
of a trial past its deadline, which kills the child, records the trial FAILED with a timeout error and goes on.
An evaluation in the searching process itself could only be abandoned, never stopped.

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
import threading
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["KillableExecutor"]


class _ChildFuture(cf.Future):
    """A future whose ``cancel()`` kills the child process computing it."""

    def __init__(self) -> None:
        super().__init__()
        self.process: Any = None

    def cancel(self) -> bool:
        process = self.process
        if process is not None and process.is_alive():
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if super().cancel():
            return True
        try:
            self.set_exception(TimeoutError("the evaluation was stopped"))
        except cf.InvalidStateError:  # it finished meanwhile
            pass
        return True


def _child(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it kills this child
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
    loaded supernet and data without copying them up front); results come back through a pipe."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("fork")
        self._futures: set[_ChildFuture] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future = _ChildFuture()
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=_child, args=(fn, args, kwargs, send), daemon=True)
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
            kind, value = receive.recv()
        except (EOFError, OSError):
            kind, value = "died", None
        finally:
            receive.close()
            process.join()
        with self._lock:
            self._futures.discard(future)
        try:
            if kind == "ok":
                future.set_result(value)
            elif kind == "error":
                future.set_exception(RuntimeError(value))
            else:
                future.set_exception(RuntimeError(f"the evaluation process died (exit status {process.exitcode})"))
        except cf.InvalidStateError:  # cancelled (killed) meanwhile: the trial has failed already
            pass

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            futures = list(self._futures)
        for f in futures:
            f.cancel()
