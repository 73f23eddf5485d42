"""A scripted clock for tests of anything that times itself: it moves only when a test moves it.

A profiler given ``clock=fake`` and ``sleep=fake.sleep`` sees exactly the time the test scripts: an inference
that calls ``fake.advance(step)`` lasts ``step`` seconds however fast or busy the machine is, so a loop of
``min_duration_s`` runs a known number of times. Steps that are powers of two (``2**-10`` s) add up without
rounding, so counts and durations can be compared exactly.
"""

from __future__ import annotations

import threading


class FakeClock:
    """Seconds that move only through :meth:`advance` (or :meth:`sleep`, which advances instead of waiting).

    Safe to read from several threads (a background power sampler reads it while the test advances it).
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = float(start_s)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got {seconds!r} s")
        with self._lock:
            self._now_s += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
