"""NvmlEnergy against a faithful fake of pynvml (and the real pynvml where an NVIDIA driver is present)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
import time

import pytest
from fake_clock import FakeClock
from fake_nvml import FAKED_FUNCTIONS, FakeGpu, make_fake_pynvml

from hardware_profiles import HardwareProfile
from profilers import (
    EnergyMeterError,
    EstimatedEnergy,
    NvmlEnergy,
    device_lock,
    energy_profiler_from_profile,
)
from profilers._nvml import _Sampling

FAST = {"min_duration_s": 0.15}
STEP_S = 2**-10  # one scripted inference, about 1 ms


def scripted(clock: FakeClock) -> dict[str, object]:
    """Arguments that make a meter read ``clock`` (and sleep on it): FAST's 0.15 s loop then lasts exactly
    ceil(0.15 / STEP_S) inferences of STEP_S."""
    return {**FAST, "clock": clock, "sleep": clock.sleep}


RUNS = 154  # ceil(0.15 / 2**-10)


class SteppedSampler:
    """Makes the background power sampler take a sample exactly when the test asks (:meth:`sample_now`),
    instead of every ``sample_interval_s`` of real time, so the samples and their times are known."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.due = threading.Semaphore(0)
        self.taken = threading.Condition()
        self.count = 0
        stepped = self
        original_sample = _Sampling.sample

        def pause(sampling: _Sampling) -> bool:
            while not sampling.stop_event.is_set():
                if stepped.due.acquire(timeout=0.01):
                    return False
            return True

        def sample(sampling: _Sampling) -> None:
            original_sample(sampling)
            with stepped.taken:
                stepped.count += 1
                stepped.taken.notify_all()

        monkeypatch.setattr(_Sampling, "pause", pause)
        monkeypatch.setattr(_Sampling, "sample", sample)

    def sample_now(self) -> None:
        """Lets the sampler take one sample and waits until it has (the scripted clock stands still)."""
        with self.taken:
            before = self.count
            self.due.release()
            assert self.taken.wait_for(lambda: self.count > before, timeout=60), "the sampler never sampled"


def install(monkeypatch: pytest.MonkeyPatch, *gpus: FakeGpu, **kwargs: bool):
    fake = make_fake_pynvml(list(gpus), **kwargs)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def _real_nvml_works() -> bool:
    if importlib.util.find_spec("pynvml") is None:
        return False
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


HAS_NVML = _real_nvml_works()


# ------------------------------------------------------------------------------------ the fake is faithful


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py is not installed")
def test_fake_has_the_real_names_signatures_and_error_classes() -> None:
    import pynvml

    fake = make_fake_pynvml([FakeGpu()])
    for name in FAKED_FUNCTIONS:
        real = inspect.signature(getattr(pynvml, name)).parameters
        faked = inspect.signature(getattr(fake, name)).parameters
        assert list(real) == list(faked), name
    for name in ("NVMLError_NotSupported", "NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"):
        real_error = getattr(pynvml, name)()
        fake_error = getattr(fake, name)()
        assert issubclass(getattr(fake, name), fake.NVMLError)
        assert real_error.value == fake_error.value
        assert isinstance(pynvml.NVMLError(real_error.value), getattr(pynvml, name))
        assert isinstance(fake.NVMLError(fake_error.value), getattr(fake, name))
    assert pynvml.NVML_ERROR_NOT_SUPPORTED == fake.NVML_ERROR_NOT_SUPPORTED


# ----------------------------------------------------------------------------------------- measuring


def test_energy_counter_gives_exact_energy_per_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    gpu = FakeGpu(name="NVIDIA Fake H100", clock=clock)
    fake = install(monkeypatch, gpu)
    meter = NvmlEnergy(**scripted(clock))
    assert (
        meter.mode == "energy-counter" and meter.device == "cuda:0" and meter.gpu_name == "NVIDIA Fake H100"
    )

    def run() -> None:  # 7 mJ per inference, no idle draw
        gpu.consume(7.0)
        clock.advance(STEP_S)

    result = meter.measure(run, batch_size=2)

    assert result.method == "measured-nvml"
    assert result.energy_mj == pytest.approx(7.0, rel=1e-9, abs=1e-3 / result.runs)
    assert result.per_sample_mj == pytest.approx(3.5, rel=1e-3)
    assert result.runs == RUNS and result.duration_s == RUNS * STEP_S
    assert result.mean_power_w == pytest.approx(7e-3 * result.runs / result.duration_s, rel=1e-3)
    assert result.idle_w is None and result.fallback_reason is None
    assert "total-energy counter" in result.detail and "NVIDIA Fake H100" in result.detail
    assert fake.init_count() == 0  # every nvmlInit was matched by nvmlShutdown


def test_measured_idle_is_subtracted(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    gpu = FakeGpu(idle_w=30.0, busy_w=50.0, clock=clock)
    install(monkeypatch, gpu)
    meter = NvmlEnergy(subtract_idle=True, idle_window_s=0.125, **scripted(clock))

    def run() -> None:
        gpu.set_busy(True)
        clock.advance(STEP_S)

    result = meter.measure(run)
    assert clock() == 0.125 + RUNS * STEP_S  # the idle window, then the loop
    # The counter counts whole millijoules: 0.125 s at 30 W and 0.15 s at 80 W are exact to 1 mJ.
    assert result.idle_w == pytest.approx(30.0, abs=1e-3 / 0.125)
    assert result.mean_power_w == pytest.approx(80.0, abs=1e-3 / result.duration_s)
    assert result.energy_mj == pytest.approx(50.0 * STEP_S * 1e3, rel=1e-3)
    assert "idle" in result.detail and "measured" in result.detail


def test_idle_from_the_profile_is_subtracted_without_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    gpu = FakeGpu(idle_w=40.0, clock=clock)
    install(monkeypatch, gpu)
    meter = NvmlEnergy(subtract_idle=True, idle_w=25.0, **scripted(clock))
    result = meter.measure(lambda: clock.advance(STEP_S))
    assert clock() == RUNS * STEP_S  # no idle window was measured
    assert result.idle_w == 25.0
    assert result.energy_mj == pytest.approx(15.0 * STEP_S * 1e3, rel=1e-3)


def test_power_sampling_when_the_counter_is_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Power rises linearly with time, so the trapezoid rule over the samples is exact.
    clock = FakeClock()
    gpu = FakeGpu(idle_w=20.0, ramp_w_per_s=100.0, has_energy_counter=False, clock=clock)
    install(monkeypatch, gpu)
    stepped = SteppedSampler(monkeypatch)
    meter = NvmlEnergy(sample_interval_s=0.005, **scripted(clock))
    assert meter.mode == "power-sampling"
    probes = len(gpu.power_reads)  # the constructor checked that power is readable
    calls = []

    def run() -> None:
        calls.append(clock())
        clock.advance(STEP_S)
        if len(calls) % 5 == 0:
            stepped.sample_now()  # the background thread samples now, while the clock stands still

    result = meter.measure(run)

    reads = gpu.power_reads[probes:]
    assert result.runs == RUNS
    # one sample at each end, and one taken by the background thread every fifth inference
    assert reads == [0.0, *(STEP_S * k for k in range(5, RUNS + 1, 5)), RUNS * STEP_S]
    first, last = reads[0] - gpu.origin_s, reads[-1] - gpu.origin_s
    expected_j = 20.0 * (last - first) + 100.0 / 2 * (last**2 - first**2)
    assert result.energy_mj * result.runs / 1e3 == pytest.approx(expected_j, rel=1e-3)
    assert "sampled every 5 ms" in result.detail and f"({len(reads)} samples" in result.detail
    assert not any(t.name == "hwnas-nvml-power" for t in threading.enumerate())


def test_the_real_sampler_samples_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unscripted, the sampler's thread samples on its own; how often depends on the machine, so only that it
    ran, and stopped, is checked."""
    clock = FakeClock()
    gpu = FakeGpu(idle_w=20.0, has_energy_counter=False, clock=clock)
    install(monkeypatch, gpu)
    sampled = threading.Event()
    original_sample = _Sampling.sample

    def sample(sampling: _Sampling) -> None:
        original_sample(sampling)
        if threading.current_thread().name == "hwnas-nvml-power":
            sampled.set()

    monkeypatch.setattr(_Sampling, "sample", sample)
    meter = NvmlEnergy(sample_interval_s=0.001, **scripted(clock))

    def run() -> None:
        if clock() >= 0.1:  # the loop's last inference waits for a sample from the thread
            assert sampled.wait(60), "the sampler thread never sampled"
        clock.advance(STEP_S)

    result = meter.measure(run)
    assert sampled.is_set() and result.mean_power_w == pytest.approx(20.0)
    assert not any(t.name == "hwnas-nvml-power" for t in threading.enumerate())


def test_power_sampling_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(idle_w=10.0))
    assert NvmlEnergy(mode="power-sampling", **FAST).mode == "power-sampling"


def test_a_failing_inference_releases_nvml_and_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeGpu(idle_w=10.0, has_energy_counter=False))
    meter = NvmlEnergy(sample_interval_s=0.005, **FAST)

    def run() -> None:
        raise RuntimeError("inference failed")

    with pytest.raises(RuntimeError, match="inference failed"):
        meter.measure(run)
    assert fake.init_count() == 0
    assert not any(t.name == "hwnas-nvml-power" for t in threading.enumerate())
    assert device_lock("cuda:0").acquire(blocking=False)
    device_lock("cuda:0").release()


def test_measurement_holds_the_gpu_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    gpu = FakeGpu(clock=clock)
    install(monkeypatch, gpu)
    meter = NvmlEnergy(device_id=0, **scripted(clock))
    done = threading.Event()

    def run() -> None:
        gpu.consume(1.0)
        clock.advance(STEP_S)

    def measure() -> None:
        meter.measure(run)
        done.set()

    with device_lock("cuda:0"):
        thread = threading.Thread(target=measure)
        thread.start()
        # Never true while the lock is held; a slow machine can only make this check weaker, never fail it.
        assert not done.wait(0.3)
    thread.join(timeout=60)
    assert done.is_set()


# -------------------------------------------------------------------------------------- choosing a GPU


def test_device_id_picks_the_nvml_index(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(name="first"), FakeGpu(name="second"))
    meter = NvmlEnergy(device_id=1, **FAST)
    assert meter.gpu_name == "second" and meter.device == "cuda:1"


def test_cuda_visible_devices_maps_cuda_indices_to_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [FakeGpu(name="a", uuid="GPU-a"), FakeGpu(name="b", uuid="GPU-b"), FakeGpu(name="c", uuid="GPU-c")]
    install(monkeypatch, *gpus)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert NvmlEnergy(device_id=0, **FAST).gpu_name == "c"
    assert NvmlEnergy(device_id=1, **FAST).gpu_name == "a"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-b")
    assert NvmlEnergy(device_id=0, **FAST).gpu_name == "b"
    with pytest.raises(EnergyMeterError, match="makes 1 GPU"):
        NvmlEnergy(device_id=1, **FAST)


def test_missing_gpu_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu())
    with pytest.raises(EnergyMeterError, match="no such GPU.*device_id"):
        NvmlEnergy(device_id=3)


# ---------------------------------------------------------------------------------------------- errors


def test_library_not_found_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(), library_found=False)
    with pytest.raises(EnergyMeterError, match=r"libnvidia-ml.*not found.*driver is not installed") as info:
        NvmlEnergy()
    assert "estimate" in str(info.value)


def test_driver_not_loaded_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(), driver_loaded=False)
    with pytest.raises(EnergyMeterError, match="driver is not loaded.*nvidia-smi"):
        NvmlEnergy()


def test_gpu_without_energy_or_power_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(name="Old GPU", has_energy_counter=False, has_power=False))
    with pytest.raises(EnergyMeterError, match="Old GPU.*neither an energy counter nor its power"):
        NvmlEnergy()
    install(monkeypatch, FakeGpu(name="Old GPU", has_energy_counter=False))
    with pytest.raises(EnergyMeterError, match="no total-energy counter"):
        NvmlEnergy(mode="energy-counter")


def test_missing_pynvml_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(EnergyMeterError, match="nvidia-ml-py"):
        NvmlEnergy()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"device_id": -1}, "device_id"),
        ({"mode": "magic"}, "mode must be one of"),
        ({"sample_interval_s": 0}, "sample_interval_s"),
        ({"min_duration_s": 0}, "min_duration_s"),
        ({"idle_w": -5.0}, "idle_w"),
    ],
)
def test_bad_arguments_are_rejected(monkeypatch: pytest.MonkeyPatch, kwargs: dict, match: str) -> None:
    install(monkeypatch, FakeGpu())
    with pytest.raises(ValueError, match=match):
        NvmlEnergy(**kwargs)


@pytest.mark.skipif(HAS_NVML, reason="an NVIDIA driver is present here")
def test_real_pynvml_without_a_driver_is_explained() -> None:
    with pytest.raises(EnergyMeterError, match="NVIDIA driver|nvidia-ml-py"):
        NvmlEnergy()


# ----------------------------------------------------------------------------------- from a profile


def _gpu_profile(**kwargs: object) -> HardwareProfile:
    return HardwareProfile(
        name="gpu",
        device="cuda",
        providers=("CUDAExecutionProvider",),
        provider_options=({"device_id": 1},),
        energy_min_duration_s=0.2,
        **kwargs,  # type: ignore[arg-type]
    )


def test_profile_picks_nvml_for_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(name="zero"), FakeGpu(name="one"))
    meter = energy_profiler_from_profile(_gpu_profile(subtract_idle=True, idle_w=12.0))
    assert isinstance(meter, NvmlEnergy)
    assert meter.gpu_name == "one" and meter.device == "cuda:1"
    assert meter.min_duration_s == 0.2 and meter.subtract_idle and meter.idle_w == 12.0
    assert meter.fallback_reason is None


def test_auto_falls_back_to_the_power_model_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(), library_found=False)
    meter = energy_profiler_from_profile(_gpu_profile(idle_w=50.0, tdp_w=300.0))
    assert isinstance(meter, EstimatedEnergy)
    assert meter.device == "cuda:1" and meter.utilisation == 1.0 and meter.power_w == 300.0
    assert meter.fallback_reason is not None and meter.fallback_reason.startswith("NVML:")
    assert "not installed" in meter.fallback_reason
    result = meter.measure(lambda: None)
    assert result.method == "estimated" and result.fallback_reason == meter.fallback_reason


def test_auto_without_a_power_model_gives_every_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(), driver_loaded=False)
    with pytest.raises(EnergyMeterError) as info:
        energy_profiler_from_profile(_gpu_profile())
    message = str(info.value)
    assert "NVML" in message and "not loaded" in message and "set idle_w and tdp_w" in message


def test_explicit_nvml_does_not_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(), library_found=False)
    with pytest.raises(EnergyMeterError, match="not installed"):
        energy_profiler_from_profile(_gpu_profile(idle_w=50.0, tdp_w=300.0), "nvml")


# -------------------------------------------------------------------------------------- real hardware


@pytest.mark.nvml
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_NVML, reason="needs an NVIDIA driver (NVML)")
def test_real_gpu_energy_is_plausible() -> None:
    meter = NvmlEnergy(device_id=0, min_duration_s=1.0)
    result = meter.measure(lambda: time.sleep(0.005))
    # An idle-ish GPU draws between a few and a few hundred watts.
    assert 1.0 < result.mean_power_w < 1500.0
    assert result.energy_mj > 0 and result.method == "measured-nvml"
