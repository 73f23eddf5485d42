"""The contract every LatencyProfiler that runs models must honour. Add new backends to PROFILERS.

Each backend measures its own kind of model: ONNX files for ONNX Runtime, modules for PyTorch. The models are
twins (same weights, same computation), so every backend's runner must also compute the same outputs from the
same seeded input.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from profiler_models import matmul_chain_reference, to_numpy, torch_matmul_chain

from profilers import LatencyProfiler, LatencyResult, OnnxRuntimeLatency, TorchLatency, device_lock

_PROVIDERS = onnxruntime.get_available_providers()
_HAS_ORT_CUDA = "CUDAExecutionProvider" in _PROVIDERS
_HAS_TORCH = importlib.util.find_spec("torch") is not None


def _torch_cuda() -> bool:
    if not _HAS_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


needs_torch = pytest.mark.skipif(not _HAS_TORCH, reason="needs torch")
gpu = [pytest.mark.gpu]


def _backend(factory: Callable[[], LatencyProfiler], kind: str, id: str, marks: object = ()) -> object:
    """A PROFILERS entry: a factory of the profiler and the kind of model it measures ("onnx" or "torch")."""
    return pytest.param((factory, kind), id=id, marks=marks)


PROFILERS: list = [
    _backend(lambda: OnnxRuntimeLatency(warmup_runs=2, timed_runs=30), "onnx", id="ort-cpu"),
    _backend(
        lambda: OnnxRuntimeLatency(warmup_runs=0, timed_runs=30, optimization_level="disable"),
        "onnx",
        id="ort-cpu-noopt",
    ),
    _backend(
        lambda: OnnxRuntimeLatency(intra_op_threads=2, inter_op_threads=2, warmup_runs=1, timed_runs=30),
        "onnx",
        id="ort-cpu-2threads",
    ),
    _backend(
        lambda: OnnxRuntimeLatency(io_binding=True, warmup_runs=1, timed_runs=30),
        "onnx",
        id="ort-cpu-iobinding",
    ),
    _backend(
        lambda: OnnxRuntimeLatency(providers=["CUDAExecutionProvider"], warmup_runs=2, timed_runs=30),
        "onnx",
        id="ort-cuda",
        marks=[*gpu, pytest.mark.skipif(not _HAS_ORT_CUDA, reason="needs onnxruntime-gpu and a GPU")],
    ),
    _backend(
        lambda: OnnxRuntimeLatency(
            providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"], warmup_runs=2, timed_runs=30
        ),
        "onnx",
        id="ort-tensorrt",
        marks=[
            *gpu,
            pytest.mark.skipif("TensorrtExecutionProvider" not in _PROVIDERS, reason="needs TensorRT"),
        ],
    ),
    _backend(
        lambda: OnnxRuntimeLatency(providers=["OpenVINOExecutionProvider"], warmup_runs=2, timed_runs=30),
        "onnx",
        id="ort-openvino",
        marks=pytest.mark.skipif(
            "OpenVINOExecutionProvider" not in _PROVIDERS, reason="needs onnxruntime-openvino"
        ),
    ),
    _backend(
        lambda: TorchLatency(intra_op_threads=1, warmup_runs=2, timed_runs=30),
        "torch",
        id="torch-cpu",
        marks=needs_torch,
    ),
    _backend(
        lambda: TorchLatency(device="cuda:0", warmup_runs=2, timed_runs=30),
        "torch",
        id="torch-cuda",
        marks=[*gpu, pytest.mark.skipif(not _torch_cuda(), reason="needs a CUDA build of torch and a GPU")],
    ),
]


@pytest.fixture(params=PROFILERS)
def backend(request: pytest.FixtureRequest) -> tuple[LatencyProfiler, str]:
    factory: Callable[[], LatencyProfiler]
    factory, kind = request.param
    return factory(), kind


@pytest.fixture
def profiler(backend: tuple[LatencyProfiler, str]) -> LatencyProfiler:
    return backend[0]


@pytest.fixture
def tiny(backend: tuple[LatencyProfiler, str], tiny_model: Path) -> object:
    return tiny_model if backend[1] == "onnx" else torch_matmul_chain(width=4, depth=1)


@pytest.fixture
def big(backend: tuple[LatencyProfiler, str], big_model: Path) -> object:
    return big_model if backend[1] == "onnx" else torch_matmul_chain(width=512, depth=16)


def test_is_a_latency_profiler(profiler: LatencyProfiler) -> None:
    assert isinstance(profiler, LatencyProfiler)
    assert isinstance(profiler.device, str) and profiler.device
    assert profiler.warmup_runs >= 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_result_is_a_sane_summary(profiler: LatencyProfiler, tiny: object, batch_size: int) -> None:
    result = profiler.measure(tiny, (4,), batch_size=batch_size)  # type: ignore[arg-type]
    assert isinstance(result, LatencyResult)
    values = (result.median_ms, result.iqr_ms, result.mean_ms, result.min_ms, result.max_ms)
    assert all(math.isfinite(v) for v in values)
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.iqr_ms >= 0
    assert result.timed_runs >= 30 and len(result.samples_ms) == result.timed_runs
    assert result.batch_size == batch_size
    assert result.input_shape == (4,)
    assert result.provider


def test_results_are_frozen(profiler: LatencyProfiler, tiny: object) -> None:
    result = profiler.measure(tiny, (4,))  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        result.median_ms = 0.0  # type: ignore[misc]


def test_bigger_model_is_slower(profiler: LatencyProfiler, tiny: object, big: object) -> None:
    big_ms = profiler.measure(big, (512,)).median_ms  # type: ignore[arg-type]
    assert big_ms > 3 * profiler.measure(tiny, (4,)).median_ms  # type: ignore[arg-type]


def test_missing_file_raises(profiler: LatencyProfiler, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        profiler.measure(tmp_path / "missing.onnx", (4,))


def test_runner_computes_the_model_on_the_seeded_input(profiler: LatencyProfiler, tiny: object) -> None:
    run = profiler.runner(tiny, (4,), batch_size=3)
    first, second = to_numpy(run()), to_numpy(run())
    # Every backend feeds np.random.default_rng(seed=0).standard_normal((batch, *shape), float32).
    x = np.random.default_rng(0).standard_normal((3, 4), dtype=np.float32)
    expected = matmul_chain_reference(x, width=4, depth=1)
    assert first.shape == (3, 4)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first, second)


def test_runner_does_not_hold_the_device_lock(profiler: LatencyProfiler, tiny: object) -> None:
    run = profiler.runner(tiny, (4,))
    run()
    lock = device_lock(profiler.device)
    assert lock.acquire(blocking=False)  # nothing is left holding the device
    lock.release()
