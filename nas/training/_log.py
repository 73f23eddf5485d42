"""Progress of a long training: per-batch figures (images/s, ETA) and a rate-limited log file."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BatchProgress", "TrainLog", "format_seconds"]


@dataclass(frozen=True)
class BatchProgress:
    """Where a training stands after one step.

    Attributes:
        epoch: The current epoch, 1-based.
        epochs: Epochs in all.
        step: Steps done in this epoch, 1-based.
        steps: Steps per epoch.
        images: Images trained on in this epoch so far, over all ranks.
        seconds: Wall time since the epoch began, in seconds.
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """Training images per second over this epoch so far (``nan`` before any time passed)."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    @property
    def epoch_eta_s(self) -> float:
        """Seconds until this epoch ends, at this epoch's pace so far."""
        return self.seconds / self.step * (self.steps - self.step) if self.step else float("nan")

    @property
    def eta_s(self) -> float:
        """Seconds until the whole training ends, at this epoch's pace so far."""
        if not self.step:
            return float("nan")
        remaining = self.steps - self.step + (self.epochs - self.epoch) * self.steps
        return self.seconds / self.step * remaining

    def line(self) -> str:
        """One line for people: ``epoch 2/20  step 40/352  812 img/s  epoch ETA 39 s  ETA 8 min 51 s``."""
        return (
            f"epoch {self.epoch}/{self.epochs}  step {self.step}/{self.steps}  "
            f"{self.images_per_s:.0f} img/s  epoch ETA {format_seconds(self.epoch_eta_s)}  "
            f"ETA {format_seconds(self.eta_s)}"
        )


def format_seconds(seconds: float) -> str:
    """A duration for people.

    Example:
        >>> format_seconds(3725), format_seconds(42.4), format_seconds(float("nan"))
        ('1 h 2 min', '42 s', '?')
    """
    if math.isnan(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class TrainLog:
    """Appends training progress to a text file (``train.log`` in a run directory), at most one batch line
    every ``every_s`` seconds; epoch lines are always written.

    ``clock`` gives the time in seconds (``time.monotonic`` by default) and decides the rate limit only.

    Example:
        >>> import tempfile
        >>> t = [0.0]
        >>> log = TrainLog(Path(tempfile.mkdtemp()) / "train.log", every_s=10, clock=lambda: t[0])
        >>> log.batch(BatchProgress(1, 1, 1, 9, 32, 1.0)), log.batch(BatchProgress(1, 1, 2, 9, 64, 2.0))
        (True, False)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], str] = lambda: time.strftime("%Y-%m-%d %H:%M:%S"),
    ) -> None:
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self.path = Path(path)
        self.every_s = every_s
        self.clock = clock
        self.stamp = stamp
        self._last: float | None = None

    def write(self, text: str) -> None:
        """Appends one line, stamped with the date and time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"{self.stamp()}  {text}\n")

    def batch(self, progress: BatchProgress) -> bool:
        """Logs ``progress`` unless a batch line was written less than ``every_s`` ago; returns whether it
        wrote. The last step of an epoch is left to :meth:`epoch`."""
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        self.write(progress.line())
        return True

    def epoch(self, epoch: int, total: int, loss: float, seconds: float, images: int | None = None) -> None:
        """Logs the end of an epoch (always)."""
        rate = f"  {images / seconds:.0f} img/s" if images and seconds > 0 else ""
        self.write(f"epoch {epoch}/{total} done  loss {loss:.4f}  {seconds:.1f} s{rate}")
