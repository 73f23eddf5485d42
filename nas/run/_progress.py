"""Progress display for the command line: supernet epochs (and the batches inside each, with images/s and an
ETA), then trials with front size and hypervolume."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nas.training._log import BatchProgress, format_seconds
from profilers import EstimatedEnergy
from search import Study, Trial, TrialState


class ProgressReporter:
    """Rich progress bars on stderr; on a non-terminal it prints a line every ``every`` items instead, and
    a batch line at most every ``batch_every_s`` seconds of ``clock`` inside a long epoch."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        every: int = 10,
        batch_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.every = every
        self.batch_every_s = batch_every_s
        self.clock = clock
        self._batch_task: TaskID | None = None
        self._last_batch_line: float | None = None
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._t0 = time.perf_counter()
        self._failed = 0
        self._tracker: Any = None

    def set_tracker(self, tracker: Any) -> None:
        """Shows the energy the run has spent so far (a :class:`nas.SearchTracker`)."""
        self._tracker = tracker

    def __enter__(self) -> ProgressReporter:
        if self.live:
            self._progress.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self._progress.stop()

    def _log(self, text: str) -> None:
        if not self.live:
            self.console.print(text, highlight=False)

    def start_training(self, epochs: int, members: int = 1) -> None:
        self._task = self._progress.add_task("supernet", total=epochs, info="")
        each = epochs // members
        what = (
            f"the supernet for {epochs} epoch{'s' if epochs != 1 else ''}"
            if members == 1
            else f"{members} supernets (an ensemble) one after another, {each} epoch{'s' if each != 1 else ''} each"
        )
        self._log(f"training {what} (sandwich rule, in-place distillation)")

    def batch(self, progress: BatchProgress) -> None:
        """One training step done: the batches of the epoch as a second bar, with images/s and the ETA."""
        info = (
            f"{progress.images_per_s:.0f} img/s  epoch ETA {format_seconds(progress.epoch_eta_s)}  "
            f"training ETA {format_seconds(progress.eta_s)}"
        )
        if self._batch_task is None:
            self._batch_task = self._progress.add_task("  batches", total=progress.steps, info="")
        self._progress.update(
            self._batch_task,
            completed=progress.step,
            total=progress.steps,
            description=f"  epoch {progress.epoch}",
            info=info,
        )
        now = self.clock()
        if self._last_batch_line is None or now - self._last_batch_line >= self.batch_every_s:
            self._last_batch_line = now
            self._log(f"  {progress.line()}")

    def note(self, text: str) -> None:
        """A line the user should read whatever the display (e.g. what an objective really measures)."""
        self.console.print(f"[yellow]{text}[/]", highlight=False)

    def epoch(self, epoch: int, total: int, loss: float, seconds: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=epoch, info=f"loss {loss:.3f}")
        if epoch == total or epoch % self.every == 0:
            self._log(f"  epoch {epoch}/{total}  loss {loss:.3f}  {seconds:.1f} s/epoch")

    def start_search(self, trials: int, done: int = 0) -> None:
        if self._batch_task is not None:
            self._progress.remove_task(self._batch_task)
            self._batch_task = None
        self._task = self._progress.add_task("search", total=trials, completed=done, info="")
        self._log(f"searching: {trials} trials" + (f" ({done} done before resuming)" if done else ""))

    def trial(self, study: Study, trial: Trial) -> None:
        if trial.state is TrialState.FAILED:
            self._failed += 1
            self.console.print(f"[yellow]trial {trial.number} failed:[/] {trial.error}", highlight=False)
        n = len(study.trials)
        front = study.best_trials
        info = f"front {len(front)}  HV {study.hypervolume():.4g}  {time.perf_counter() - self._t0:.0f} s"
        if self._tracker is not None and self._tracker.enabled:
            info += f"  {self._tracker.energy_kwh * 1000:.3g} Wh ({self._tracker.method or 'not measured'})"
        if self._failed:
            info += f"  failed {self._failed}"
        if self._task is not None:
            self._progress.update(self._task, completed=n, info=info)
        if n % self.every == 0:
            self._log(f"  trials {n}  {info}")


def estimated_energy_note(cfg: Any, evaluator: Any) -> str | None:
    """One line saying that ``energy_mj`` is latency in other units, when it is an objective and can only be
    estimated as a constant power times the latency (no NVML or RAPL meter for the profile).

    ``cfg`` is a :class:`~nas.run._config.SearchConfig`; ``evaluator`` has ``energy_profiler()`` (a
    :class:`~nas.run._evaluator.CandidateEvaluator`).
    """
    if "energy_mj" not in cfg.search.objectives:
        return None
    try:
        meter = evaluator.energy_profiler()
    except Exception:  # noqa: BLE001 - a meter that cannot be built fails the first trial with its reason
        return None
    if not isinstance(meter, EstimatedEnergy):
        return None
    return (
        f"note: energy_mj is estimated as a constant {meter.power_w:.3g} W times the latency (no energy meter "
        "for this profile), so as an objective it ranks models exactly as latency_ms does"
    )
