"""The latency profiler contract and its result type."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LatencyProfiler", "LatencyResult", "Runner"]

JsonScalar = str | int | float | None

#: A zero-argument callable that runs one inference of a prepared model on its device and returns once the
#: inference has finished (GPU work included); it returns the runtime's outputs.
Runner = Callable[[], object]


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one model on one device, summarised over timed runs.

    Every ``*_ms`` figure is the wall-clock time of one inference call on a whole batch of ``batch_size``
    samples, in milliseconds; divide by ``batch_size`` for the time per sample (see :attr:`per_sample_ms`).

    Attributes:
        median_ms: Median over the timed runs: the figure to optimise.
        iqr_ms: Interquartile range (75th minus 25th percentile): the spread.
        mean_ms: Mean over the timed runs.
        min_ms: Fastest timed run.
        max_ms: Slowest timed run.
        timed_runs: Number of timed runs.
        warmup_runs: Number of untimed runs before timing.
        batch_size: Samples per inference call.
        input_shape: ``(C, H, W)`` (or whatever per-sample shape) of one sample.
        provider: Execution provider that actually ran the model (e.g. ``"CPUExecutionProvider"``).
        intra_op_threads: Threads used inside one operator.
        inter_op_threads: Threads used across operators.
        samples_ms: Every timed run, in order.
        quiet: With a quiet gate (:class:`profilers.QuietGate`): whether every timed run was taken while
            the CPU was undisturbed (False: the gate ran out of time and the figure may be too high).
            ``None`` when no gate was used.
        rejected_runs: Runs the quiet gate skipped because other work disturbed them (0 without a gate).
    """

    median_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    timed_runs: int
    warmup_runs: int
    batch_size: int
    input_shape: tuple[int, ...]
    provider: str
    intra_op_threads: int
    inter_op_threads: int
    samples_ms: tuple[float, ...] = field(default=(), repr=False)
    quiet: bool | None = None
    rejected_runs: int = 0

    @property
    def per_sample_ms(self) -> float:
        """Median latency divided by the batch size, in milliseconds per sample."""
        return self.median_ms / self.batch_size

    def to_dict(self) -> dict[str, JsonScalar | list[int] | list[float]]:
        """A JSON-ready dict (tuples become lists); :meth:`from_dict` reverses it."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["samples_ms"] = list(self.samples_ms)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LatencyResult:
        """Rebuilds a result from :meth:`to_dict` output (e.g. read back from a JSON cache)."""
        values: dict[str, Any] = dict(data)  # JSON values
        values["input_shape"] = tuple(values["input_shape"])
        values["samples_ms"] = tuple(values.get("samples_ms", ()))
        return cls(**values)


class LatencyProfiler(ABC):
    """Measures how long one inference of a model (an ONNX file, or a module for PyTorch) takes on one device.

    Lifecycle: construct a profiler once per device configuration (its constructor validates everything and
    fails at once with a message saying what to change), then call :meth:`measure` for each model. A
    profiler is safe to share between threads: measurements on one device are serialised, so they never
    disturb each other.

    Profilers that run models themselves also offer :meth:`runner`, which prepares a model once and returns a
    callable that runs one inference: energy profilers drive it to measure the energy of exactly the
    inference whose latency is measured. Such profilers name their device in ``device`` (the key of
    :func:`~profilers.device_lock`, e.g. ``"cpu"`` or ``"cuda:0"``) and their untimed runs in
    ``warmup_runs``.
    """

    #: Key of the device lock this profiler's measurements hold.
    device: str = "cpu"
    #: Untimed runs before timing (and before an energy measurement).
    warmup_runs: int = 0

    @abstractmethod
    def measure(
        self,
        onnx_path: str | os.PathLike[str],
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> LatencyResult:
        """Measures the latency of one model.

        Args:
            onnx_path: ONNX file with a single floating-point input whose first dimension is the batch.
            input_shape: Shape of one sample without the batch dimension, e.g. ``(C, H, W)``.
            batch_size: Samples per inference call.

        Returns:
            The latency summary.
        """

    def runner(
        self,
        model: object,
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> Runner:
        """Prepares ``model`` on this profiler's device and returns a callable that runs one inference.

        The callable feeds the same fixed input as :meth:`measure` and returns when the inference has
        finished. Preparing does not hold the device lock: hold :func:`~profilers.device_lock` of
        :attr:`device` while using the callable if other measurements may run at the same time
        (:func:`~profilers.measure_energy` does).

        Raises:
            NotImplementedError: This profiler does not run models (e.g. it predicts latency from a table).
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not run models, so it cannot drive an energy measurement; use "
            "OnnxRuntimeLatency (ONNX files) or TorchLatency (PyTorch modules)"
        )
