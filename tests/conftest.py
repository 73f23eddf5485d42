"""Suite-wide test settings.

``HWNAS_TEST_CLOCK_SPEED=<factor>`` (set by ``scripts/hostile_check.py``) makes ``time.perf_counter``,
``time.perf_counter_ns``, ``time.monotonic`` and ``time.monotonic_ns`` run ``factor`` times faster for the
whole test session, for the project's own code (any file of this repository outside ``.venv``), as if the
machine were that much slower: every wall-clock interval the project measures or waits for ends after
``1 / factor`` of the work. Other libraries (Dask's heartbeats, pytest's durations, threading) keep the real clock: their own
timeouts are not the project's to keep. ``time.sleep`` and ``time.time`` are left alone. A test whose outcome
changes with the factor depends on the machine's speed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pytest

_SPEED_VARIABLE = "HWNAS_TEST_CLOCK_SPEED"


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_VENV = os.path.join(_REPO, ".venv") + os.sep


def _ours() -> bool:
    """Whether the code that asked for the time (two frames up) is the project's: a file of this repository."""
    path = sys._getframe(2).f_code.co_filename
    return path.startswith(_REPO) and not path.startswith(_VENV)


def _sped_up(real: Callable[[], float], speed: float) -> Callable[[], float]:
    origin = real()  # fixed for the session, so the sped-up clock stays monotonic across tests

    def now() -> float:
        return origin + (real() - origin) * speed if _ours() else real()

    return now


def _sped_up_ns(real: Callable[[], int], speed: float) -> Callable[[], int]:
    origin = real()

    def now_ns() -> int:
        return origin + round((real() - origin) * speed) if _ours() else real()

    return now_ns


def pytest_configure(config: pytest.Config) -> None:
    raw = os.environ.get(_SPEED_VARIABLE, "").strip()
    if not raw:
        return
    try:
        speed = float(raw)
    except ValueError:
        raise pytest.UsageError(
            f"{_SPEED_VARIABLE} must be a number (a clock speed factor), got {raw!r}"
        ) from None
    if not speed > 0:
        raise pytest.UsageError(f"{_SPEED_VARIABLE} must be > 0, got {raw!r}")
    # pytest and threading bound their own references to these functions at import; every other caller is
    # told apart by its module (see _ours).
    time.perf_counter = _sped_up(time.perf_counter, speed)  # type: ignore[assignment]
    time.monotonic = _sped_up(time.monotonic, speed)  # type: ignore[assignment]
    time.perf_counter_ns = _sped_up_ns(time.perf_counter_ns, speed)  # type: ignore[assignment]
    time.monotonic_ns = _sped_up_ns(time.monotonic_ns, speed)  # type: ignore[assignment]
