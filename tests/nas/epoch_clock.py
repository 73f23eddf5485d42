"""A run's clock that counts supernet epochs: time budgets under test end after a known number of epochs.

Passed to an :class:`~nas.Experiment` as its reporter and set as its tracker's clock, it moves one second at
every epoch the reporter is told of and stands still otherwise, so ``budget.max_time: 0.5`` stops training
after exactly one epoch however fast or busy the machine is.
"""

from __future__ import annotations

from nas.run._experiment import _SilentReporter


class EpochClock(_SilentReporter):
    """Seconds = epochs reported so far (one second each)."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s

    def epoch(self, epoch: int, total: int, loss: float, seconds: float) -> None:
        self.now_s += 1.0


def run_on_epoch_clock(experiment):
    """Runs ``experiment`` with its elapsed time (and so its ``max_time`` budget) counted in epochs."""
    clock = EpochClock()
    experiment.reporter = clock
    experiment.tracker.clock = clock
    return experiment.run()
