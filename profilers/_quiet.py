"""A quiet gate for CPU timing on shared machines: keep only the runs taken while no one else was busy.

On a virtual machine or a laptop with background work, other tenants slow a core down in *phases* that last
from milliseconds to seconds; a model timed during one runs up to twice as slow, so the median of a short
measurement lands on one of two speeds at random (see BENCHMARKS.md, section (e)). Interference only ever
adds time, and it slows every workload on the core at once.

The gate interleaves the timed runs with a tiny fixed *probe* (a 64x64 matrix-vector chain in ONNX
Runtime, about 15 us, run twice with the second run timed so that its caches are warm whatever the model
evicted), ``probe, run, probe, run, probe, ...``. The probe's undisturbed time (its *floor*) is
the fastest the probe has ever run in this process. A run counts only when the probes just before and just
after it were both within ``tolerance`` of the floor (runs are judged again whenever the floor falls); the
gate keeps going until ``timed_runs`` runs counted, or until ``max_seconds`` have passed. A run that is skipped costs only time, never accuracy.
When a timing ran out of time (``quiet`` false), the latency backends time the model again (ONNX Runtime
in a fresh session), up to ``retries`` more times, and keep a quiet result where one came (:func:`preferred`).

On a quiet dedicated machine every run counts and the gate costs one probe per run. It watches the CPU
the timing thread runs on, so it suits CPU execution; a GPU's own contention is not visible to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from profilers._base import Runner

if TYPE_CHECKING:
    import onnxruntime

    from hardware_profiles import HardwareProfile

__all__ = ["GatedTiming", "QuietGate", "preferred"]

#: Fewest gated runs a result is allowed to rest on; below that the gate reports all runs as disturbed.
MIN_QUIET_RUNS = 10
_PROBE_SIDE = 64
_PROBE_LAYERS = 4
_CALIBRATION_RUNS = 200


@dataclass(frozen=True)
class GatedTiming:
    """What one gated timing produced.

    Attributes:
        samples_ns: The timed runs that count, in order (the quiet ones; all of them when ``quiet`` is false).
        quiet: Whether the figure rests only on runs taken in quiet phases. False when fewer than
            ``MIN_QUIET_RUNS`` quiet runs came within ``max_seconds``; the samples are then every run taken,
            and the figure may be too high.
        rejected_runs: Runs skipped because a probe beside them was disturbed.
        probe_floor_ns: The probe's undisturbed time the runs were judged against.
    """

    samples_ns: np.ndarray
    quiet: bool
    rejected_runs: int
    probe_floor_ns: int


def _probe_model() -> bytes:
    """A small, fixed ONNX model: ``_PROBE_LAYERS`` times ``tanh(x @ W)`` on a ``1 x 64`` vector."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((_PROBE_SIDE, _PROBE_SIDE)).astype(np.float32)
    weight /= np.sqrt(_PROBE_SIDE)
    nodes, previous = [], "x"
    for i in range(_PROBE_LAYERS):
        nodes.append(helper.make_node("MatMul", [previous, "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
        previous = f"t{i}"
    graph = helper.make_graph(
        nodes,
        "hwnas_quiet_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, _PROBE_SIDE])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, _PROBE_SIDE])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # readable by every ONNX Runtime this project supports
    onnx.checker.check_model(model)
    return model.SerializeToString()


class _Probe:
    """The probe session and its floor, shared by every gate of the process (the floor only ever falls)."""

    _lock = threading.Lock()
    _instance: _Probe | None = None

    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session: onnxruntime.InferenceSession = ort.InferenceSession(
            _probe_model(), options, providers=["CPUExecutionProvider"]
        )
        self.feed = {"x": np.ones((1, _PROBE_SIDE), dtype=np.float32)}
        self.floor_ns = 1 << 62
        for _ in range(_CALIBRATION_RUNS):
            self.time_once()

    @classmethod
    def shared(cls) -> _Probe:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def time_once(self) -> int:
        """Runs the probe twice and times the second run: the first refills the caches the timed model
        evicted, so the floor does not depend on the model being timed."""
        self.session.run(None, self.feed)
        start = time.perf_counter_ns()
        self.session.run(None, self.feed)
        elapsed = time.perf_counter_ns() - start
        self.floor_ns = min(self.floor_ns, elapsed)
        return elapsed


class QuietGate:
    """Times a runner only while probes beside each run show an undisturbed CPU.

    Args:
        tolerance: How far above its floor a probe may be and still count as quiet (0.25: 25 %).
        max_seconds: Most seconds one timing may spend waiting for quiet runs.
        retries: How many more times a latency backend times a model (ONNX Runtime: in a fresh session) when a
            timing ran out of time without enough quiet runs; 0: report the disturbed figure at once.
        clock: Seconds on a monotonic clock, read for the ``max_seconds`` deadline; ``None``:
            ``time.perf_counter``, looked up when a timing starts. Tests pass a scripted clock so that the
            limit arrives after a known number of runs.
        run_clock_ns: Nanoseconds on a monotonic clock, read around each timed run; ``None``:
            ``time.perf_counter_ns``, looked up when a timing starts.

    Raises:
        ValueError: An argument is out of range.

    Example:
        >>> gate = QuietGate(tolerance=0.25, max_seconds=2.0)
        >>> timing = gate.time(lambda: sum(range(1000)), timed_runs=30)
        >>> len(timing.samples_ns) >= 10
        True
    """

    def __init__(
        self,
        *,
        tolerance: float = 0.25,
        max_seconds: float = 2.0,
        retries: int = 0,
        clock: Callable[[], float] | None = None,
        run_clock_ns: Callable[[], int] | None = None,
    ) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance <= 10:
            raise ValueError(f"tolerance must be a number in (0, 10], got {tolerance!r}")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0:
            raise ValueError(f"max_seconds must be a positive number of seconds, got {max_seconds!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        if not all(c is None or callable(c) for c in (clock, run_clock_ns)):
            raise TypeError(
                "clock and run_clock_ns must be None or callables returning the time (seconds, nanoseconds)"
            )
        self.tolerance = float(tolerance)
        self.max_seconds = float(max_seconds)
        self.retries = retries
        self.clock = clock
        self.run_clock_ns = run_clock_ns

    @classmethod
    def from_profile(cls, profile: HardwareProfile) -> QuietGate:
        """The gate a hardware profile's ``quiet_tolerance``, ``quiet_max_s`` and ``quiet_retries`` describe."""
        return cls(
            tolerance=profile.quiet_tolerance, max_seconds=profile.quiet_max_s, retries=profile.quiet_retries
        )

    def __repr__(self) -> str:
        return (
            f"QuietGate(tolerance={self.tolerance}, max_seconds={self.max_seconds}, retries={self.retries})"
        )

    def time(self, run: Runner, timed_runs: int, *, probe: _Probe | None = None) -> GatedTiming:
        """Times ``run`` until ``timed_runs`` calls were taken in quiet phases, or ``max_seconds`` passed.

        The caller warms ``run`` up first and holds the device lock.
        """
        probe = probe or _Probe.shared()
        clock = self.clock or time.perf_counter
        run_clock_ns = self.run_clock_ns or time.perf_counter_ns
        deadline = clock() + self.max_seconds
        runs: list[int] = []
        probes = [probe.time_once()]  # probes[i] came just before runs[i], probes[i + 1] just after it
        floor, quiet = probe.floor_ns, 0
        while True:
            start = run_clock_ns()
            run()
            runs.append(run_clock_ns() - start)
            probes.append(probe.time_once())
            if probe.floor_ns < floor:  # a new, lower floor: judge every run again against it
                floor = probe.floor_ns
                quiet = int(self._quiet_mask(np.asarray(probes), floor).sum())
            elif max(probes[-2], probes[-1]) <= floor * (1.0 + self.tolerance):
                quiet += 1
            if quiet >= timed_runs or clock() > deadline:
                break
        mask = self._quiet_mask(np.asarray(probes), floor)
        samples = np.asarray(runs, dtype=np.int64)
        enough = quiet >= min(MIN_QUIET_RUNS, timed_runs)
        samples = samples[mask][-timed_runs:] if enough else samples[-timed_runs:]
        return GatedTiming(
            samples_ns=np.asarray(samples, dtype=np.int64),
            quiet=enough,
            rejected_runs=len(runs) - quiet,
            probe_floor_ns=int(floor),
        )

    def _quiet_mask(self, probes: np.ndarray, floor: int) -> np.ndarray:
        """Per run: whether the probes before and after it were both within tolerance of ``floor``."""
        calm = probes <= floor * (1.0 + self.tolerance)
        return calm[:-1] & calm[1:]


def preferred(a: tuple[np.ndarray, bool | None], b: tuple[np.ndarray, bool | None]) -> bool:
    """Whether timing ``a`` (samples, quiet) makes a better figure than ``b``: a quiet one beats a disturbed
    one, and between equals the lower median wins (interference only ever adds time)."""
    return (a[1] is False, float(np.median(a[0]))) < (b[1] is False, float(np.median(b[0])))
