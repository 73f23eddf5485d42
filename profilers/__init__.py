"""Measuring models on a device: latency (ONNX Runtime), parameters and FLOPs, and a measurement cache.

Profilers measure ONNX files; this package never imports ``search``, ``nas`` or torch, and imports ONNX
Runtime and ONNX only when a measurement needs them.

Example:
    >>> from hardware_profiles import load_profile
    >>> from profilers import OnnxRuntimeLatency
    >>> profiler = OnnxRuntimeLatency.from_profile(load_profile("local-cpu"))
    >>> result = profiler.measure("model.onnx", (1, 8, 8))  # doctest: +SKIP
    >>> result.median_ms, result.iqr_ms  # doctest: +SKIP
    (0.031, 0.002)
"""

from profilers._base import LatencyProfiler, LatencyResult
from profilers._cache import JsonValue, MeasurementCache
from profilers._flops import COUNTED_OPS, ModelCost, count_params_and_flops
from profilers._onnxruntime import OnnxRuntimeLatency, device_lock

__all__ = [
    "COUNTED_OPS",
    "JsonValue",
    "LatencyProfiler",
    "LatencyResult",
    "MeasurementCache",
    "ModelCost",
    "OnnxRuntimeLatency",
    "count_params_and_flops",
    "device_lock",
]
