"""The energy profiler contract, its result type, and measuring the energy of one model in one call."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

from profilers._base import LatencyProfiler, Runner
from profilers._onnxruntime import device_lock

__all__ = [
    "ENERGY_METHODS",
    "EnergyMeterError",
    "EnergyProfiler",
    "EnergyResult",
    "measure_energy",
]

#: How an energy figure was obtained; every :class:`EnergyResult` carries exactly one of these.
ENERGY_METHODS = ("measured-nvml", "measured-rapl", "estimated")


class EnergyMeterError(RuntimeError):
    """Energy cannot be obtained this way on this machine. The message says why and what to do instead."""


@dataclass(frozen=True)
class EnergyResult:
    """Energy of one inference of one model on one device, from a sustained loop of inferences.

    Attributes:
        energy_mj: Energy of one inference call (a whole batch of ``batch_size`` samples) in millijoules:
            the energy of the loop divided by ``runs``, less ``idle_w x duration_s`` when idle power was
            subtracted (then never below 0).
        method: ``"measured-nvml"``, ``"measured-rapl"`` or ``"estimated"``.
        mean_power_w: Mean power over the loop in watts, idle included.
        duration_s: Length of the loop in seconds.
        runs: Inferences run in the loop.
        batch_size: Samples per inference call.
        device: The device measured (the key of its lock), e.g. ``"cpu"`` or ``"cuda:0"``.
        idle_w: Idle power subtracted, in watts, or ``None`` when idle power was not subtracted.
        detail: How the figure was obtained, for people: the counters or zones read, the sampling, the power
            model and where its numbers come from, where the idle power came from.
        fallback_reason: Why a measuring method was not used, when ``"auto"`` fell back to another one;
            ``None`` when the method asked for was used.

    Example:
        >>> r = EnergyResult(energy_mj=2.0, method="estimated", mean_power_w=20.0, duration_s=1.0, runs=10000,
        ...                  batch_size=4, device="cpu")
        >>> r.per_sample_mj
        0.5
    """

    energy_mj: float
    method: str
    mean_power_w: float
    duration_s: float
    runs: int
    batch_size: int
    device: str
    idle_w: float | None = None
    detail: str = ""
    fallback_reason: str | None = None

    def __post_init__(self) -> None:
        if self.method not in ENERGY_METHODS:
            raise ValueError(f"method must be one of {list(ENERGY_METHODS)}, got {self.method!r}")

    @property
    def per_sample_mj(self) -> float:
        """Energy per inference divided by the batch size, in millijoules per sample."""
        return self.energy_mj / self.batch_size

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> EnergyResult:
        """Rebuilds a result from :meth:`to_dict` output (e.g. read back from a JSON cache)."""
        return cls(**data)  # type: ignore[arg-type]


class EnergyProfiler(ABC):
    """Measures the energy of one inference by running it in a loop for at least ``min_duration_s``.

    Lifecycle: construct a profiler once per device (its constructor checks that the meter can be read here
    and fails at once with a message saying why not and what to do), then call :meth:`measure` with a callable
    that runs one inference (from :meth:`LatencyProfiler.runner`), or :func:`measure_energy` with a model.

    A measurement holds the device's lock (:func:`~profilers.device_lock`), so latency and energy
    measurements on one device never overlap. With ``subtract_idle`` it first finds the idle power (from
    ``idle_w`` when given, else measured with the same meter over ``idle_window_s`` of doing nothing), then
    runs the loop: read the meter, call the runner until ``min_duration_s`` has passed, read the meter again.
    Counters update every millisecond (RAPL) to every few tens of milliseconds (NVML): a loop of a second
    or more keeps that granularity a small part of the figure.

    Backends implement :meth:`_start` and :meth:`_stop` (one reading each end of an interval).

    Args:
        device: The device measured, as a lock key (``"cpu"``, ``"cuda:0"``).
        min_duration_s: Seconds the loop runs at least (> 0); one inference always runs.
        subtract_idle: Report energy above idle power.
        idle_w: Idle power to subtract in watts (e.g. from the hardware profile); ``None`` measures it.
        idle_window_s: Seconds of idle measured before the loop when ``idle_w`` is not given (> 0).
        fallback_reason: Why this method stands in for another (set by
            :func:`~profilers.energy_profiler_from_profile`); copied into every result.
        clock: Seconds on a monotonic clock, read to time the loop and the idle window; ``None``:
            ``time.perf_counter``, looked up when it is read. Tests pass a scripted clock, so a loop lasts a
            known number of runs.
        sleep: Waits a number of seconds (the idle window); ``None``: ``time.sleep``. A scripted clock comes
            with a sleep that moves it on instead of waiting.
    """

    #: The method every result of this backend carries (one of :data:`ENERGY_METHODS`).
    method: ClassVar[str]

    def __init__(
        self,
        *,
        device: str,
        min_duration_s: float = 1.0,
        subtract_idle: bool = False,
        idle_w: float | None = None,
        idle_window_s: float = 0.5,
        fallback_reason: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if not isinstance(device, str) or not device:
            raise ValueError(
                f"device must be a non-empty device name such as 'cpu' or 'cuda:0', got {device!r}"
            )
        for name, value in (("min_duration_s", min_duration_s), ("idle_window_s", idle_window_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(subtract_idle, bool):
            raise TypeError(f"subtract_idle must be True or False, got {subtract_idle!r}")
        if idle_w is not None and (
            isinstance(idle_w, bool) or not isinstance(idle_w, (int, float)) or idle_w < 0
        ):
            raise ValueError(f"idle_w must be a non-negative number of watts or None, got {idle_w!r}")
        if not all(f is None or callable(f) for f in (clock, sleep)):
            raise TypeError(
                "clock and sleep must be None or callables (seconds now; wait a number of seconds)"
            )
        self.device = device
        self.min_duration_s = float(min_duration_s)
        self.subtract_idle = subtract_idle
        self.idle_w = None if idle_w is None else float(idle_w)
        self.idle_window_s = float(idle_window_s)
        self.fallback_reason = fallback_reason
        self._clock = clock
        self._sleep = sleep

    def clock(self) -> float:
        """Seconds now, on the clock this profiler times its intervals with."""
        return (self._clock or time.perf_counter)()

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds`` on this profiler's clock."""
        (self._sleep or time.sleep)(seconds)

    @abstractmethod
    def _start(self) -> object:
        """Reads the meter at the start of an interval; returns whatever :meth:`_stop` needs."""

    @abstractmethod
    def _stop(self, token: object, duration_s: float) -> tuple[float, str]:
        """Reads the meter at the end of the interval started by ``token`` (``duration_s`` long, timed
        between the two readings): joules spent, and a detail line."""

    def _abort(self, token: object) -> None:
        """Releases what :meth:`_start` acquired when the interval ends with an error (no reading needed)."""

    def _interval(self, body: Callable[[], int]) -> tuple[float, float, int, str]:
        """Runs ``body`` between two meter readings: joules, seconds, what ``body`` returned, and detail."""
        clock = self._clock or time.perf_counter
        token = self._start()
        start = clock()
        try:
            result = body()
        except BaseException:
            self._abort(token)
            raise
        duration_s = clock() - start
        joules, detail = self._stop(token, duration_s)
        return joules, duration_s, result, detail

    def _idle_power(self) -> tuple[float, str]:
        """Idle power in watts and where it came from."""
        if self.idle_w is not None:
            return self.idle_w, f"idle {self.idle_w:.3f} W given (hardware profile)"

        def wait() -> int:
            self.sleep(self.idle_window_s)
            return 0

        joules, elapsed, _, _ = self._interval(wait)
        return (
            joules / elapsed,
            f"idle {joules / elapsed:.3f} W measured over {elapsed:.2f} s before the loop",
        )

    def measure(self, run: Runner, *, batch_size: int = 1) -> EnergyResult:
        """Runs ``run`` in a loop for at least ``min_duration_s`` and returns the energy per call.

        Args:
            run: A callable that runs one inference and returns when it has finished, e.g. from
                :meth:`LatencyProfiler.runner`. Warm it up first: the first calls are often slower.
            batch_size: Samples per call, recorded in the result.

        Returns:
            The energy per call.

        Example:
            >>> from profilers import EstimatedEnergy
            >>> meter = EstimatedEnergy(idle_w=10.0, tdp_w=110.0, utilisation=0.5, min_duration_s=0.01)
            >>> result = meter.measure(lambda: sum(range(1000)))
            >>> result.method, result.mean_power_w
            ('estimated', 60.0)
        """
        if not callable(run):
            raise TypeError(f"run must be a callable that runs one inference, got {type(run).__name__}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")

        clock = self._clock or time.perf_counter

        def loop() -> int:
            runs = 0
            start = clock()
            while True:
                run()
                runs += 1
                if clock() - start >= self.min_duration_s:
                    return runs

        with device_lock(self.device):
            idle_w, idle_note = self._idle_power() if self.subtract_idle else (None, "")
            joules, duration_s, runs, detail = self._interval(loop)
        net_joules = joules
        notes = [detail]
        if idle_w is not None:
            net_joules = joules - idle_w * duration_s
            notes.append(idle_note)
            if net_joules < 0:
                notes.append(f"below idle by {-net_joules:.3g} J over the loop: reported as 0")
                net_joules = 0.0
        return EnergyResult(
            energy_mj=net_joules / runs * 1e3,
            method=self.method,
            mean_power_w=joules / duration_s,
            duration_s=duration_s,
            runs=runs,
            batch_size=batch_size,
            device=self.device,
            idle_w=idle_w,
            detail="; ".join(n for n in notes if n),
            fallback_reason=self.fallback_reason,
        )


def measure_energy(
    model: object,
    input_shape: Sequence[int],
    *,
    latency: LatencyProfiler,
    energy: EnergyProfiler,
    batch_size: int = 1,
) -> EnergyResult:
    """Measures the energy of one inference of a model, run exactly as ``latency`` runs it.

    Holds the device's lock throughout, prepares the model with ``latency.runner`` (an ONNX session, or a
    PyTorch module on its device), runs ``latency.warmup_runs`` untimed inferences, then measures with
    ``energy``.

    Args:
        model: What ``latency`` measures: an ONNX file for :class:`~profilers.OnnxRuntimeLatency`, a module
            (or ``torch.export`` file) for :class:`~profilers.TorchLatency`.
        input_shape: Shape of one sample without the batch dimension.
        latency: The latency backend that runs the model.
        energy: The energy backend; it must meter the device the model runs on.
        batch_size: Samples per inference.

    Raises:
        ValueError: ``energy`` meters another device than the one ``latency`` runs on.

    Example:
        >>> from hardware_profiles import load_profile
        >>> from profilers import OnnxRuntimeLatency, energy_profiler_from_profile
        >>> profile = load_profile("local-cpu")
        >>> result = measure_energy(
        ...     "model.onnx", (3, 32, 32),
        ...     latency=OnnxRuntimeLatency.from_profile(profile),
        ...     energy=energy_profiler_from_profile(profile),
        ... )  # doctest: +SKIP
        >>> result.energy_mj, result.method, result.fallback_reason  # doctest: +SKIP
        (0.41, 'measured-rapl', None)
    """
    if energy.device != latency.device:
        raise ValueError(
            f"the energy profiler meters {energy.device!r} but the model runs on {latency.device!r}; build "
            "both from one hardware profile (energy_profiler_from_profile and latency_profiler_from_profile)"
        )
    with device_lock(latency.device):
        run = latency.runner(model, input_shape, batch_size=batch_size)
        for _ in range(latency.warmup_runs):
            run()
        return energy.measure(run, batch_size=batch_size)
