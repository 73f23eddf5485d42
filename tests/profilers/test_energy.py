"""The contract every EnergyProfiler honours (on fakes of the meters), and measure_energy end to end."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_clock import FakeClock
from fake_nvml import FakeGpu, make_fake_pynvml
from fake_powercap import add_energy, make_powercap

from hardware_profiles import HardwareProfile
from profilers import (
    ENERGY_METHODS,
    EnergyProfiler,
    EnergyResult,
    EstimatedEnergy,
    LatencyProfiler,
    LatencyResult,
    NvmlEnergy,
    OnnxRuntimeLatency,
    RaplEnergy,
    device_lock,
    energy_profiler_from_profile,
    measure_energy,
)

MIN_S = 2**-4  # 62.5 ms of scripted time: a loop of STEP_S inferences runs exactly MIN_S / STEP_S times
STEP_S = 2**-11  # one inference, about 0.5 ms of scripted time
Backend = tuple[EnergyProfiler, Callable[[], None], FakeClock]


def _nvml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **gpu: object) -> Backend:
    clock = FakeClock()
    fake_gpu = FakeGpu(idle_w=20.0, busy_w=40.0, clock=clock, **gpu)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([fake_gpu]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def run() -> None:
        fake_gpu.set_busy(True)
        clock.advance(STEP_S)

    meter = NvmlEnergy(min_duration_s=MIN_S, sample_interval_s=0.005, clock=clock, sleep=clock.sleep)
    return meter, run, clock


def _rapl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    clock = FakeClock()
    root = make_powercap(tmp_path)

    def run() -> None:
        add_energy(root / "intel-rapl:0", 300)
        clock.advance(STEP_S)

    return RaplEnergy(root=root, min_duration_s=MIN_S, clock=clock, sleep=clock.sleep), run, clock


def _estimate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    clock = FakeClock()
    meter = EstimatedEnergy(
        idle_w=5.0, tdp_w=45.0, utilisation=0.5, min_duration_s=MIN_S, clock=clock, sleep=clock.sleep
    )
    return meter, lambda: clock.advance(STEP_S), clock


BACKENDS = [
    pytest.param(lambda m, p: _nvml(m, p), id="nvml-counter"),
    pytest.param(lambda m, p: _nvml(m, p, has_energy_counter=False), id="nvml-sampling"),
    pytest.param(_rapl, id="rapl"),
    pytest.param(_estimate, id="estimate"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    return request.param(monkeypatch, tmp_path)


# -------------------------------------------------------------------------------- conformance suite


def test_result_is_labelled_and_sane(backend: Backend) -> None:
    meter, run, _ = backend
    assert isinstance(meter, EnergyProfiler) and meter.method in ENERGY_METHODS
    result = meter.measure(run, batch_size=2)
    assert isinstance(result, EnergyResult)
    assert result.method == meter.method and result.device == meter.device
    assert result.duration_s == MIN_S and result.runs == round(MIN_S / STEP_S)
    assert result.energy_mj > 0 and result.mean_power_w > 0
    assert result.mean_power_w == pytest.approx(
        result.energy_mj * result.runs / 1e3 / result.duration_s, rel=1e-9
    )
    assert result.per_sample_mj == pytest.approx(result.energy_mj / 2)
    assert result.detail
    with pytest.raises(AttributeError):
        result.energy_mj = 0.0  # type: ignore[misc]
    assert EnergyResult.from_dict(result.to_dict()) == result


def test_loop_stops_at_the_first_run_that_ends_past_min_duration(backend: Backend) -> None:
    meter, run, clock = backend
    starts = []

    def counted() -> None:
        starts.append(clock())
        run()

    result = meter.measure(counted)
    assert result.runs == len(starts) == round(MIN_S / STEP_S)
    # timed from the start of the first run to the end of the last
    assert starts[-1] - starts[0] == result.duration_s - STEP_S


def test_a_slow_inference_runs_once(backend: Backend) -> None:
    meter, run, clock = backend

    def slow() -> None:
        run()
        clock.advance(MIN_S * 1.5)

    result = meter.measure(slow)
    assert result.runs == 1 and result.duration_s == STEP_S + MIN_S * 1.5


def test_measurements_hold_the_device_lock(backend: Backend) -> None:
    meter, run, _ = backend
    done = threading.Event()

    def measure() -> None:
        meter.measure(run)
        done.set()

    with device_lock(meter.device):
        thread = threading.Thread(target=measure)
        thread.start()
        # Never true while the lock is held; a slow machine can only make this check weaker, never fail it.
        assert not done.wait(0.3)
    thread.join(timeout=60)
    assert done.is_set()


def test_bad_arguments(backend: Backend) -> None:
    meter, _, _ = backend
    with pytest.raises(TypeError, match="callable"):
        meter.measure(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        meter.measure(lambda: None, batch_size=0)


def test_clocks_must_be_callables() -> None:
    with pytest.raises(TypeError, match="clock and sleep must be None or callables"):
        EstimatedEnergy(tdp_w=10.0, clock=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock and sleep must be None or callables"):
        EstimatedEnergy(tdp_w=10.0, sleep="1s")  # type: ignore[arg-type]


def test_the_default_clock_is_the_one_in_use_when_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a clock the profiler looks ``time.perf_counter`` up when it reads it, so a patched clock
    reaches it."""
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    result = EstimatedEnergy(tdp_w=10.0, min_duration_s=MIN_S).measure(lambda: clock.advance(STEP_S))
    assert result.runs == round(MIN_S / STEP_S) and result.duration_s == MIN_S


def test_result_rejects_unknown_methods() -> None:
    with pytest.raises(ValueError, match="measured-nvml"):
        EnergyResult(
            energy_mj=1.0,
            method="guessed",
            mean_power_w=1.0,
            duration_s=1.0,
            runs=1,
            batch_size=1,
            device="cpu",
        )


# ------------------------------------------------------------------------------------- measure_energy


def test_measure_energy_of_an_onnx_model(tiny_model: Path, big_model: Path) -> None:
    latency = OnnxRuntimeLatency(warmup_runs=2, timed_runs=30)
    energy = EstimatedEnergy(idle_w=2.0, tdp_w=12.0, min_duration_s=0.1)
    tiny = measure_energy(tiny_model, (4,), latency=latency, energy=energy, batch_size=2)
    big = measure_energy(big_model, (512,), latency=latency, energy=energy, batch_size=2)
    assert tiny.batch_size == 2 and tiny.method == "estimated" and tiny.device == "cpu"
    # Energy follows time per inference: the big model's inferences take hundreds of times longer.
    assert big.energy_mj > 3 * tiny.energy_mj
    assert big.runs < tiny.runs


def test_measure_energy_runs_the_latency_backends_inference(tiny_model: Path) -> None:
    calls = []

    class Spy(LatencyProfiler):
        device = "cpu"
        warmup_runs = 3

        def measure(self, onnx_path: object, input_shape: object, *, batch_size: int = 1) -> LatencyResult:
            raise AssertionError("not used")

        def runner(self, model: object, input_shape: object, *, batch_size: int = 1) -> Callable[[], None]:
            calls.append(("prepare", model, tuple(input_shape), batch_size))  # type: ignore[arg-type]
            return lambda: calls.append("run")  # type: ignore[func-returns-value]

    result = measure_energy(
        tiny_model, (4,), latency=Spy(), energy=EstimatedEnergy(tdp_w=10.0, min_duration_s=0.02), batch_size=5
    )
    assert calls[0] == ("prepare", tiny_model, (4,), 5)
    assert calls.count("run") == 3 + result.runs  # warm-up first, then the measured loop


def test_measure_energy_refuses_a_meter_of_another_device(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="meters 'cuda:0' but the model runs on 'cpu'"):
        measure_energy(
            tiny_model,
            (4,),
            latency=OnnxRuntimeLatency(timed_runs=30),
            energy=EstimatedEnergy(tdp_w=300.0, device="cuda:0"),
        )


def test_profilers_that_do_not_run_models_say_so(tiny_model: Path) -> None:
    class Table(LatencyProfiler):
        def measure(self, onnx_path: object, input_shape: object, *, batch_size: int = 1) -> LatencyResult:
            raise AssertionError("not used")

    with pytest.raises(NotImplementedError, match="cannot drive an energy measurement"):
        measure_energy(tiny_model, (4,), latency=Table(), energy=EstimatedEnergy(tdp_w=10.0))


def test_latency_and_energy_on_one_device_never_overlap(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latency = OnnxRuntimeLatency(warmup_runs=0, timed_runs=30)
    energy = EstimatedEnergy(tdp_w=10.0, min_duration_s=0.1)
    calls: list[str] = []  # the measuring thread of every inference, in the order they started
    original = OnnxRuntimeLatency._runner

    def recording_runner(self: OnnxRuntimeLatency, path: Path, shape: tuple[int, ...]) -> tuple[object, str]:
        run, provider = original(self, path, shape)

        def recorded() -> object:
            calls.append(threading.current_thread().name)  # list.append is atomic: the order is exact
            return run()

        return recorded, provider

    monkeypatch.setattr(OnnxRuntimeLatency, "_runner", recording_runner)
    threads = [
        threading.Thread(
            target=measure_energy,
            args=(tiny_model, (4,)),
            kwargs={"latency": latency, "energy": energy},
            name="energy",
        ),
        *(
            threading.Thread(target=latency.measure, args=(tiny_model, (4,)), name=f"latency{i}")
            for i in range(3)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    order = calls
    blocks = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    # Each measurement's inferences form one uninterrupted block: no two measurements interleave.
    assert sorted(blocks) == ["energy", "latency0", "latency1", "latency2"]
    assert order.count("latency0") == 30


def test_local_cpu_profile_end_to_end(tiny_model: Path, tmp_path: Path) -> None:
    """The default profile on this machine: RAPL when readable, else an estimate that says why, else a clear
    error; never a number without its method."""
    profile = HardwareProfile(name="local", energy_min_duration_s=0.05, idle_w=1.0, tdp_w=11.0)
    energy = energy_profiler_from_profile(profile, powercap_root=tmp_path / "no-rapl")
    latency = OnnxRuntimeLatency.from_profile(profile)
    result = measure_energy(tiny_model, (4,), latency=latency, energy=energy)
    assert result.method == "estimated"
    assert result.fallback_reason is not None and "RAPL" in result.fallback_reason


# -------------------------------------------------------------------------------------- real hardware


def _gpu_energy_ready() -> bool:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return False
    try:
        NvmlEnergy(min_duration_s=0.1)
    except Exception:  # noqa: BLE001  # any failure means: not measurable here
        return False
    return True


@pytest.mark.gpu
@pytest.mark.nvml
@pytest.mark.skipif(not _gpu_energy_ready(), reason="needs onnxruntime-gpu, an NVIDIA GPU and its driver")
def test_local_cuda_profile_measures_gpu_energy(big_model: Path) -> None:
    from hardware_profiles import load_profile

    profile = load_profile("local-cuda")
    latency = OnnxRuntimeLatency.from_profile(profile)
    result = measure_energy(big_model, (512,), latency=latency, energy=energy_profiler_from_profile(profile))
    assert result.method == "measured-nvml" and result.device == "cuda:0" and result.fallback_reason is None
    assert result.duration_s >= 1.0 and result.energy_mj > 0
