"""Tests of QuietGate: runs beside a disturbed probe never count, the floor, time limits, and its wiring."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from profiler_models import matmul_chain

from hardware_profiles import HardwareProfile, ProfileError
from profilers import OnnxRuntimeLatency, QuietGate, TorchLatency
from profilers._quiet import MIN_QUIET_RUNS, GatedTiming, _Probe, preferred

CALM_NS, BUSY_NS = 10_000, 25_000  # probe times: undisturbed, and in a phase of interference
QUIET_RUN_S, BUSY_RUN_S = 0.0002, 0.002


class ScriptedProbe:
    """Stands in for the probe: returns scripted times and keeps the floor as the real one does."""

    def __init__(self, times: Iterator[int], floor_ns: int) -> None:
        self.times = times
        self.floor_ns = floor_ns
        self.calls = 0

    def time_once(self) -> int:
        self.calls += 1
        t = next(self.times)
        self.floor_ns = min(self.floor_ns, t)
        return t


class ScriptedClock:
    """Stands in for the gate's clocks: time moves only when a run says it does, so a run lasts exactly what
    it is scripted to and the time limit arrives after a known number of runs, whatever else the machine does
    meanwhile."""

    def __init__(self) -> None:
        self.now_ns = 0

    def perf_counter_ns(self) -> int:
        return self.now_ns

    def perf_counter(self) -> float:
        return self.now_ns / 1e9

    def run_for(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)

    def gate(self, **kwargs: object) -> QuietGate:
        """A gate that reads this clock for its deadline and around each run."""
        return QuietGate(clock=self.perf_counter, run_clock_ns=self.perf_counter_ns, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ScriptedClock:
    return ScriptedClock()


def phased(pattern: list[bool], clock: ScriptedClock) -> tuple[ScriptedProbe, callable]:
    """A probe and a run that agree on phases: ``pattern[i]`` says whether run ``i`` is disturbed (and so
    are the probes on both sides of it); a disturbed run takes ten times longer."""
    probes = [
        BUSY_NS if (i < len(pattern) and pattern[i]) or (i > 0 and pattern[i - 1]) else CALM_NS
        for i in range(len(pattern) + 1)
    ]
    probe = ScriptedProbe(iter(probes), CALM_NS)
    calls = iter(pattern)

    def run() -> None:
        clock.run_for(BUSY_RUN_S if next(calls) else QUIET_RUN_S)

    return probe, run


def test_runs_beside_a_disturbed_probe_do_not_count(clock: ScriptedClock) -> None:
    pattern = [False] * 5 + [True] * 20 + [False] * 40  # a burst of interference after five runs
    probe, run = phased(pattern, clock)
    timing = clock.gate(max_seconds=10).time(run, timed_runs=30, probe=probe)
    assert timing.quiet and len(timing.samples_ns) == 30
    assert set(timing.samples_ns.tolist()) == {round(QUIET_RUN_S * 1e9)}  # no disturbed run slipped in
    # the 20 disturbed runs, plus the quiet runs just before and just after the burst, each of which has a
    # disturbed probe on one side
    assert timing.rejected_runs == 22
    assert timing.probe_floor_ns == CALM_NS


def test_runs_are_judged_again_when_the_floor_falls(clock: ScriptedClock) -> None:
    """A process that starts in a slow phase first takes the slow probe for the floor; once a faster probe
    shows up, the runs taken against the old floor no longer count."""
    slow_floor = BUSY_NS
    probes = iter([BUSY_NS] * 11 + [CALM_NS] * 60)
    durations = iter([BUSY_RUN_S] * 10 + [QUIET_RUN_S] * 60)
    probe = ScriptedProbe(probes, slow_floor)
    timing = clock.gate(max_seconds=10).time(lambda: clock.run_for(next(durations)), 30, probe=probe)
    assert timing.quiet and len(timing.samples_ns) == 30
    assert set(timing.samples_ns.tolist()) == {round(QUIET_RUN_S * 1e9)}
    assert timing.probe_floor_ns == CALM_NS and timing.rejected_runs >= 10


def test_a_machine_that_never_calms_down_is_flagged_after_the_time_limit(clock: ScriptedClock) -> None:
    probe = ScriptedProbe(itertools.chain([CALM_NS], itertools.repeat(BUSY_NS)), CALM_NS)
    # Each run takes 1 ms of scripted time: the 51st is the first to end past the 50.5 ms limit.
    timing = clock.gate(max_seconds=0.0505).time(lambda: clock.run_for(0.001), 30, probe=probe)
    assert not timing.quiet
    assert len(timing.samples_ns) == 30  # every run, the last 30 of them
    assert timing.rejected_runs == 51 and probe.calls == 52
    assert clock.perf_counter_ns() == 51_000_000


@pytest.mark.parametrize(
    ("quiet_runs", "quiet"),
    [(MIN_QUIET_RUNS + 2, True), (MIN_QUIET_RUNS, True), (MIN_QUIET_RUNS - 1, False)],
)
def test_a_few_quiet_runs_before_the_time_limit_still_count(
    clock: ScriptedClock, quiet_runs: int, quiet: bool
) -> None:
    probes = itertools.chain([CALM_NS] * (quiet_runs + 1), itertools.repeat(BUSY_NS))
    probe = ScriptedProbe(probes, CALM_NS)
    timing = clock.gate(max_seconds=0.0505).time(lambda: clock.run_for(0.001), 50, probe=probe)
    assert probe.calls == 52  # the limit, not the script, ended the timing: 51 runs, a probe around each
    assert timing.quiet is quiet and timing.rejected_runs == 51 - quiet_runs
    # enough quiet runs: only those count; too few: the last 50 runs of all, flagged
    assert len(timing.samples_ns) == (quiet_runs if quiet else 50)


def test_the_gate_stops_as_soon_as_enough_runs_were_quiet(clock: ScriptedClock) -> None:
    probe = ScriptedProbe(itertools.repeat(CALM_NS), CALM_NS)
    timing = clock.gate(max_seconds=10).time(lambda: clock.run_for(0.001), 30, probe=probe)
    assert timing.quiet and len(timing.samples_ns) == 30 and timing.rejected_runs == 0
    assert probe.calls == 31 and clock.perf_counter_ns() == 30_000_000


def test_the_default_gate_reads_the_clock_in_use_when_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a clock the gate looks ``time.perf_counter`` up per timing, so a patched clock reaches it."""
    scripted = ScriptedClock()
    monkeypatch.setattr(time, "perf_counter", scripted.perf_counter)
    monkeypatch.setattr(time, "perf_counter_ns", scripted.perf_counter_ns)
    probe = ScriptedProbe(itertools.repeat(BUSY_NS), CALM_NS)
    timing = QuietGate(max_seconds=0.0505).time(lambda: scripted.run_for(0.001), 30, probe=probe)
    assert probe.calls == 52 and set(timing.samples_ns.tolist()) == {1_000_000}
    with pytest.raises(TypeError, match="clock and run_clock_ns must be None or callables"):
        QuietGate(clock=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance": 0}, "tolerance must be a number in"),
        ({"tolerance": True}, "tolerance must be a number in"),
        ({"tolerance": 11}, "tolerance must be a number in"),
        ({"max_seconds": 0}, "max_seconds must be a positive number"),
        ({"max_seconds": "1"}, "max_seconds must be a positive number"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": 1.5}, "retries must be an integer >= 0"),
    ],
)
def test_bad_gate_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        QuietGate(**kwargs)


def test_the_real_probe_has_a_floor_and_it_only_falls() -> None:
    probe = _Probe.shared()
    assert probe is _Probe.shared()
    floor = probe.floor_ns
    assert 0 < floor < 1 << 62  # calibrated: a measured time, not the starting sentinel
    times = [probe.time_once() for _ in range(50)]
    assert probe.floor_ns <= floor and probe.floor_ns <= min(times)


# ---------------------------------------------------------------------------------------------- wiring


def test_onnxruntime_latency_with_the_gate(tmp_path: Path) -> None:
    model = matmul_chain(tmp_path / "m.onnx", width=64, depth=2)
    profiler = OnnxRuntimeLatency(timed_runs=30, quiet_gate=QuietGate(max_seconds=5))
    result = profiler.measure(model, (64,))
    assert result.quiet is not None
    # A timed run is left out of the figure only when the gate rejected one.
    assert result.rejected_runs > 0 or (result.quiet and result.timed_runs == 30)
    assert 10 <= result.timed_runs <= 30
    assert len(result.samples_ms) == result.timed_runs
    plain = OnnxRuntimeLatency(timed_runs=30).measure(model, (64,))
    assert plain.quiet is None and plain.rejected_runs == 0
    again = type(result).from_dict(result.to_dict())
    assert again == result


def test_profiles_switch_the_gate_on(tmp_path: Path) -> None:
    profile = HardwareProfile(name="q", quiet_gate=True, quiet_tolerance=0.5, quiet_max_s=3)
    gate = OnnxRuntimeLatency.from_profile(profile).quiet_gate
    assert gate is not None and (gate.tolerance, gate.max_seconds, gate.retries) == (0.5, 3.0, 0)
    retrying = HardwareProfile(name="r", quiet_gate=True, quiet_retries=3)
    assert OnnxRuntimeLatency.from_profile(retrying).quiet_gate.retries == 3  # type: ignore[union-attr]
    assert OnnxRuntimeLatency.from_profile(HardwareProfile(name="p")).quiet_gate is None
    torch_gate = TorchLatency.from_profile(
        HardwareProfile(name="t", runtime="torch", quiet_gate=True)
    ).quiet_gate
    assert torch_gate is not None


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"quiet_gate": "yes"}, "quiet_gate must be true or false"),
        (
            {"quiet_gate": True, "device": "cuda", "providers": ("CUDAExecutionProvider",)},
            "quiet_gate watches the CPU",
        ),
        ({"quiet_tolerance": 0}, r"quiet_tolerance must be in \(0, 10\]"),
        ({"quiet_max_s": -1}, "quiet_max_s must be a positive number of seconds"),
        ({"quiet_retries": -1}, "quiet_retries must be an integer >= 0"),
        ({"quiet_retries": "2"}, "quiet_retries must be an integer >= 0"),
    ],
)
def test_bad_gate_settings_in_a_profile(fields: dict, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        HardwareProfile(name="bad", **fields)


def test_the_gate_is_refused_on_a_gpu_provider_and_device() -> None:
    with pytest.raises(ValueError, match="quiet_gate must be a QuietGate"):
        OnnxRuntimeLatency(quiet_gate=0.25)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quiet_gate must be a QuietGate on device 'cpu'"):
        TorchLatency(quiet_gate=np.float64(0.25))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- retries


class ScriptedGate(QuietGate):
    """A gate whose timings are scripted: each entry is (quiet, nanoseconds of every run)."""

    def __init__(self, script: list[tuple[bool, int]], retries: int) -> None:
        super().__init__(max_seconds=1.0, retries=retries)
        self.script = iter(script)
        self.calls = 0

    def time(self, run, timed_runs, *, probe=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        quiet, ns = next(self.script)
        run()
        return GatedTiming(np.full(timed_runs, ns, dtype=np.int64), quiet, 0 if quiet else 5, CALM_NS)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize(
    ("script", "retries", "calls", "quiet", "median_ms"),
    [
        # a disturbed timing, then a quiet one: the quiet one counts, even though it is slower
        ([(False, 40_000), (True, 50_000)], 2, 2, True, 0.05),
        # never quiet: every retry is spent, the lowest median is kept and the figure stays flagged
        ([(False, 90_000), (False, 60_000), (False, 70_000)], 2, 3, False, 0.06),
        # no retries: the first, disturbed figure is reported
        ([(False, 90_000), (True, 10_000)], 0, 1, False, 0.09),
        # quiet at once: nothing is repeated
        ([(True, 30_000), (True, 10_000)], 2, 1, True, 0.03),
    ],
)
def test_a_disturbed_timing_is_repeated(
    tmp_path: Path,
    backend: str,
    script: list[tuple[bool, int]],
    retries: int,
    calls: int,
    quiet: bool,
    median_ms: float,
) -> None:
    gate = ScriptedGate(script, retries)
    if backend == "onnxruntime":
        model = matmul_chain(tmp_path / "m.onnx", width=16, depth=1)
        result = OnnxRuntimeLatency(timed_runs=30, warmup_runs=0, quiet_gate=gate).measure(model, (16,))
    else:
        import torch

        result = TorchLatency(timed_runs=30, warmup_runs=0, quiet_gate=gate).measure(
            torch.nn.Linear(16, 4), (16,)
        )
    assert gate.calls == calls
    assert result.quiet is quiet
    assert result.median_ms == pytest.approx(median_ms)
    assert result.rejected_runs == 5 * sum(not q for q, _ in script[:calls])


def test_preferred_puts_quiet_before_fast() -> None:
    fast, slow = np.array([10, 10, 10]), np.array([20, 20, 20])
    assert preferred((slow, True), (fast, False))
    assert not preferred((fast, False), (slow, True))
    assert preferred((fast, True), (slow, True)) and preferred((fast, None), (slow, None))
    assert not preferred((slow, False), (fast, False))
