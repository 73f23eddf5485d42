"""BLAS on one thread while a strategy thinks.

A strategy's linear algebra is small (a Gaussian process of a few hundred observations, a population of a
few dozen), too small for a pool of BLAS threads to pay. On a machine whose cores are busy (parallel
workers, training beside the search, another tenant) such a pool does harm: OpenBLAS threads wait for
cores the others hold. Beside one CPU-bound process on 2 cores, a Bayesian search's asks and tells took
several times longer with the default pool of 2 threads than on one (BENCHMARKS.md, "BLAS threads"). :func:`one_blas_thread` limits BLAS to
one thread for its block and gives back the previous setting after it; nested and concurrent blocks (the
study asked from several threads) keep the limit until the last one leaves. The setting is OpenBLAS's, for
the whole process; a change made from a thread other than the main one was seen to reach the others late
or not at all, which can cost speed, never a result.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["one_blas_thread"]

_lock = threading.Lock()
_depth = 0
_restore: Any = None  # threadpoolctl's limiter of the outermost block, which restores the pools
_controller: Any = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    global _depth, _restore, _controller
    with _lock:
        if _depth == 0:
            try:
                if _controller is None:
                    from threadpoolctl import ThreadpoolController

                    _controller = ThreadpoolController()
                _restore = _controller.limit(limits=1, user_api="blas")
            except (ImportError, OSError, RuntimeError, ValueError):  # no threadpoolctl or a BLAS it cannot drive
                _restore = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore is not None:
                _restore.restore_original_limits()
                _restore = None
