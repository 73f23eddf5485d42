"""Tests of OnnxRuntimeLatency: validation, measurement statistics, device locking, profiles."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from profiler_models import matmul_chain, save_model

from hardware_profiles import HardwareProfile, load_profile
from profilers import LatencyResult, OnnxRuntimeLatency, device_lock

WIDTH_TINY = (4,)
WIDTH_BIG = (512,)


@pytest.fixture(scope="module")
def profiler() -> OnnxRuntimeLatency:
    return OnnxRuntimeLatency(warmup_runs=3, timed_runs=30)


# ------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("timed_runs", [-1, 0, 1, 29])
def test_fewer_than_30_timed_runs_are_rejected(timed_runs: int) -> None:
    with pytest.raises(ValueError, match=r"timed_runs must be an integer >= 30 for a stable median"):
        OnnxRuntimeLatency(timed_runs=timed_runs)


def test_30_timed_runs_are_accepted() -> None:
    assert OnnxRuntimeLatency(timed_runs=30).timed_runs == 30


def test_missing_provider_error_names_the_available_ones() -> None:
    with pytest.raises(ValueError) as info:
        OnnxRuntimeLatency(providers=["NoSuchExecutionProvider"])
    message = str(info.value)
    assert "NoSuchExecutionProvider" in message
    for available in onnxruntime.get_available_providers():
        assert available in message


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="CUDA provider is available here"
)
def test_cuda_provider_without_cuda_build_is_rejected_with_a_hint() -> None:
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        OnnxRuntimeLatency(providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"providers": "CPUExecutionProvider"}, "sequence of provider names"),
        ({"providers": []}, "at least one"),
        ({"provider_options": [{}, {}]}, "one dict per provider"),
        ({"intra_op_threads": 0}, "intra_op_threads"),
        ({"inter_op_threads": 1.5}, "inter_op_threads"),
        ({"warmup_runs": -1}, "warmup_runs"),
        ({"timed_runs": True}, "timed_runs"),
        ({"optimization_level": "max"}, "optimization_level"),
    ],
)
def test_bad_arguments_are_rejected_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OnnxRuntimeLatency(**kwargs)


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        OnnxRuntimeLatency(["CPUExecutionProvider"])  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ measurement


def test_result_statistics_are_consistent(profiler: OnnxRuntimeLatency, tiny_model: Path) -> None:
    result = profiler.measure(tiny_model, WIDTH_TINY)
    assert isinstance(result, LatencyResult)
    assert result.timed_runs == 30 == len(result.samples_ms)
    assert result.warmup_runs == 3
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.min_ms <= result.mean_ms <= result.max_ms
    assert result.iqr_ms >= 0
    assert result.min_ms == min(result.samples_ms) and result.max_ms == max(result.samples_ms)
    assert result.median_ms == pytest.approx(float(np.median(result.samples_ms)))
    assert result.provider == "CPUExecutionProvider"
    assert (result.intra_op_threads, result.inter_op_threads) == (1, 1)
    assert result.batch_size == 1 and result.input_shape == WIDTH_TINY


def test_bigger_model_measures_slower(
    profiler: OnnxRuntimeLatency, tiny_model: Path, big_model: Path
) -> None:
    tiny = profiler.measure(tiny_model, WIDTH_TINY)
    big = profiler.measure(big_model, WIDTH_BIG)
    # ~4.2 M MACs against ~16: even a noisy machine keeps a wide gap.
    assert big.median_ms > 3 * tiny.median_ms
    assert big.min_ms > tiny.median_ms


def test_batch_size_is_fed_and_recorded(profiler: OnnxRuntimeLatency, big_model: Path) -> None:
    result = profiler.measure(big_model, WIDTH_BIG, batch_size=4)
    assert result.batch_size == 4
    assert result.per_sample_ms == pytest.approx(result.median_ms / 4)


def test_fixed_batch_dimension_mismatch_is_explained(profiler: OnnxRuntimeLatency, tmp_path: Path) -> None:
    path = matmul_chain(tmp_path / "fixed.onnx", width=4, depth=1, batch=1)
    assert profiler.measure(path, WIDTH_TINY, batch_size=1).batch_size == 1
    with pytest.raises(ValueError, match="fixed batch size 1 but 2 was requested"):
        profiler.measure(path, WIDTH_TINY, batch_size=2)


def test_wrong_input_shape_is_explained(profiler: OnnxRuntimeLatency, tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="fixed dimension 1 4 but 5"):
        profiler.measure(tiny_model, (5,))
    with pytest.raises(ValueError, match="rank 2"):
        profiler.measure(tiny_model, (1, 4))


def test_missing_file_is_reported(profiler: OnnxRuntimeLatency, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        profiler.measure(tmp_path / "nope.onnx", WIDTH_TINY)


def test_models_with_two_inputs_are_rejected(profiler: OnnxRuntimeLatency, tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4])],
    )
    path = save_model(graph, tmp_path / "two.onnx")
    with pytest.raises(ValueError, match="2 inputs"):
        profiler.measure(path, WIDTH_TINY)


def test_integer_inputs_are_rejected(profiler: OnnxRuntimeLatency, tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["tokens"], ["out"])],
        "int_input",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["batch", 4])],
    )
    path = save_model(graph, tmp_path / "int.onnx")
    with pytest.raises(ValueError, match=r"tensor\(int64\)"):
        profiler.measure(path, WIDTH_TINY)


def test_float16_models_get_a_float16_input(profiler: OnnxRuntimeLatency, tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"])],
        "half",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT16, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT16, ["batch", 4])],
    )
    path = save_model(graph, tmp_path / "half.onnx")
    assert profiler.measure(path, WIDTH_TINY).median_ms > 0


def test_bad_measure_arguments(profiler: OnnxRuntimeLatency, tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        profiler.measure(tiny_model, WIDTH_TINY, batch_size=0)
    with pytest.raises(ValueError, match="input_shape"):
        profiler.measure(tiny_model, ())


# ------------------------------------------------------------------------------------------ device lock


def test_device_lock_is_one_lock_per_device() -> None:
    assert device_lock("cpu") is device_lock("cpu")
    assert device_lock("cpu") is not device_lock("cuda:0")


def test_measurements_wait_for_the_device_lock(profiler: OnnxRuntimeLatency, tiny_model: Path) -> None:
    done = threading.Event()

    def measure() -> None:
        profiler.measure(tiny_model, WIDTH_TINY)
        done.set()

    with device_lock(profiler.device):
        thread = threading.Thread(target=measure)
        thread.start()
        # The tiny model measures in milliseconds; it cannot finish while the device is held.
        assert not done.wait(0.3)
    thread.join(timeout=30)
    assert done.is_set()


def test_measurements_on_one_device_never_overlap(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profiler = OnnxRuntimeLatency(warmup_runs=0, timed_runs=30)
    inside: list[int] = []  # measurements in progress, seen as each one opened its session
    active = [0]
    guard = threading.Lock()
    original = OnnxRuntimeLatency._session

    def slow_session(self: OnnxRuntimeLatency, path: Path) -> onnxruntime.InferenceSession:
        with guard:
            active[0] += 1
            inside.append(active[0])
        try:
            time.sleep(0.02)  # gives the other threads time to enter, were the lock missing
            return original(self, path)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(OnnxRuntimeLatency, "_session", slow_session)
    threads = [threading.Thread(target=profiler.measure, args=(tiny_model, WIDTH_TINY)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert inside == [1, 1, 1, 1]  # no measurement ever began while another was under way


# -------------------------------------------------------------------------------------------- profiles


def test_from_profile_takes_every_setting() -> None:
    profile = HardwareProfile(
        name="test",
        intra_op_threads=2,
        inter_op_threads=1,
        warmup_runs=4,
        timed_runs=31,
        provider_options=({},),
    )
    profiler = OnnxRuntimeLatency.from_profile(profile)
    assert profiler.providers == ("CPUExecutionProvider",)
    assert (profiler.intra_op_threads, profiler.inter_op_threads) == (2, 1)
    assert (profiler.warmup_runs, profiler.timed_runs) == (4, 31)
    assert profiler.device == "cpu"


def test_from_local_cpu_profile_measures(tiny_model: Path) -> None:
    profile = load_profile("local-cpu")
    profiler = OnnxRuntimeLatency.from_profile(profile)
    result = profiler.measure(tiny_model, WIDTH_TINY, batch_size=profile.batch_size)
    assert result.warmup_runs == profile.warmup_runs
    assert profile.quiet_gate and profiler.quiet_gate is not None  # local-cpu times quiet runs only
    assert result.quiet is not None
    # every run counted unless the gate ran short of time on a busy machine
    assert result.timed_runs == profile.timed_runs or result.rejected_runs > 0


@pytest.mark.gpu
def test_cuda_profile_locks_per_gpu() -> None:
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime-gpu")
    profile = HardwareProfile(
        name="gpu", device="cuda", providers=("CUDAExecutionProvider",), provider_options=({"device_id": 0},)
    )
    assert OnnxRuntimeLatency.from_profile(profile).device == "cuda:0"


def test_result_round_trips_through_a_dict(profiler: OnnxRuntimeLatency, tiny_model: Path) -> None:
    result = profiler.measure(tiny_model, WIDTH_TINY)
    data = result.to_dict()
    assert isinstance(data["input_shape"], list)
    assert LatencyResult.from_dict(data) == result


def test_model_is_not_modified(profiler: OnnxRuntimeLatency, tiny_model: Path) -> None:
    before = tiny_model.read_bytes()
    profiler.measure(tiny_model, WIDTH_TINY)
    assert tiny_model.read_bytes() == before
    onnx.checker.check_model(str(tiny_model))


def test_with_rounds_the_block_with_the_lowest_median_is_kept(tiny_model: Path, monkeypatch) -> None:
    import profilers._onnxruntime as ort_module

    blocks = iter([np.full(30, 5_000_000), np.full(30, 1_000_000), np.full(30, 3_000_000)])  # ns per run
    monkeypatch.setattr(ort_module, "time_runs", lambda run, warmup, timed: next(blocks))
    r = OnnxRuntimeLatency(timed_runs=30, rounds=3).measure(tiny_model, (4,))
    assert r.median_ms == pytest.approx(1.0) and r.timed_runs == 30
    profile = HardwareProfile(name="r", timing_rounds=4)
    assert OnnxRuntimeLatency.from_profile(profile).rounds == 4
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        OnnxRuntimeLatency(rounds=0)
