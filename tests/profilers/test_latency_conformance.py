"""The contract every LatencyProfiler must honour. Add new backends to PROFILERS."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import onnxruntime
import pytest

from profilers import LatencyProfiler, LatencyResult, OnnxRuntimeLatency

_HAS_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()

PROFILERS: list = [
    pytest.param(lambda: OnnxRuntimeLatency(warmup_runs=2, timed_runs=30), id="ort-cpu"),
    pytest.param(
        lambda: OnnxRuntimeLatency(warmup_runs=0, timed_runs=30, optimization_level="disable"),
        id="ort-cpu-noopt",
    ),
    pytest.param(
        lambda: OnnxRuntimeLatency(intra_op_threads=2, inter_op_threads=2, warmup_runs=1, timed_runs=30),
        id="ort-cpu-2threads",
    ),
    pytest.param(
        lambda: OnnxRuntimeLatency(providers=["CUDAExecutionProvider"], warmup_runs=2, timed_runs=30),
        id="ort-cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not _HAS_CUDA, reason="needs onnxruntime-gpu and a GPU")],
    ),
]


@pytest.fixture(params=PROFILERS)
def profiler(request: pytest.FixtureRequest) -> LatencyProfiler:
    factory: Callable[[], LatencyProfiler] = request.param
    return factory()


def test_is_a_latency_profiler(profiler: LatencyProfiler) -> None:
    assert isinstance(profiler, LatencyProfiler)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_result_is_a_sane_summary(profiler: LatencyProfiler, tiny_model: Path, batch_size: int) -> None:
    result = profiler.measure(tiny_model, (4,), batch_size=batch_size)
    assert isinstance(result, LatencyResult)
    values = (result.median_ms, result.iqr_ms, result.mean_ms, result.min_ms, result.max_ms)
    assert all(math.isfinite(v) for v in values)
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.iqr_ms >= 0
    assert result.timed_runs >= 30
    assert result.batch_size == batch_size
    assert result.input_shape == (4,)
    assert result.provider


def test_results_are_frozen(profiler: LatencyProfiler, tiny_model: Path) -> None:
    result = profiler.measure(tiny_model, (4,))
    with pytest.raises(AttributeError):
        result.median_ms = 0.0  # type: ignore[misc]


def test_bigger_model_is_slower(profiler: LatencyProfiler, tiny_model: Path, big_model: Path) -> None:
    assert profiler.measure(big_model, (512,)).median_ms > 3 * profiler.measure(tiny_model, (4,)).median_ms


def test_missing_file_raises(profiler: LatencyProfiler, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        profiler.measure(tmp_path / "missing.onnx", (4,))
