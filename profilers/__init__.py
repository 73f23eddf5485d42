"""Measuring models on a device: latency, energy, peak memory, parameters and FLOPs, and a measurement cache.

- Latency: :class:`OnnxRuntimeLatency` (ONNX files; CPU, CUDA, TensorRT or OpenVINO execution providers) and
  :class:`TorchLatency` (PyTorch modules run eagerly). Times are in milliseconds per inference call.
- Energy: :class:`NvmlEnergy` (NVIDIA GPUs), :class:`RaplEnergy` (CPU packages and DRAM) and
  :class:`EstimatedEnergy` (a power model), behind :class:`EnergyProfiler`; each runs inferences for at least
  a second and reports millijoules per inference call, labelled ``measured-nvml``, ``measured-rapl`` or
  ``estimated``. :func:`energy_profiler_from_profile` picks one from a hardware profile and says why when it
  falls back; :func:`measure_energy` measures a model in one call.
- Memory: :func:`estimate_peak_memory` (analytic, from the ONNX graph, in MiB = 2**20 bytes).
- Size: :func:`count_params_and_flops`.
- Lookup tables: :class:`LatencyTable` predicts a model's latency from per-part latencies measured on the
  target device, so a search can run away from it.
- A new device from a few measurements: :func:`fit_latency_transfer` predicts its latency for any arch from
  N measured archs and the latency tables of other devices (:class:`LatencyTransfer`, with its
  leave-one-out error in :class:`TransferFit`).
- INT8 as deployed: :func:`quantize_int8` statically quantizes an ONNX float model (QDQ, per-channel weights,
  calibrated on given images) and keeps its metadata; :func:`compare_int8_accuracy` compares the top-1
  error of the float and int8 models.

Measurements on one device never overlap (:func:`device_lock`). This package never imports ``search`` or
``nas``, and imports ONNX Runtime, ONNX, PyTorch and pynvml only when a measurement needs them.

Example:
    >>> from hardware_profiles import load_profile
    >>> from profilers import energy_profiler_from_profile, latency_profiler_from_profile, measure_energy
    >>> profile = load_profile("local-cpu")
    >>> latency = latency_profiler_from_profile(profile)
    >>> result = latency.measure("model.onnx", (1, 8, 8))  # doctest: +SKIP
    >>> result.median_ms, result.iqr_ms  # doctest: +SKIP
    (0.031, 0.002)
    >>> energy = energy_profiler_from_profile(profile)  # doctest: +SKIP
    >>> joules = measure_energy("model.onnx", (1, 8, 8), latency=latency, energy=energy)  # doctest: +SKIP
    >>> joules.energy_mj, joules.method, joules.fallback_reason  # doctest: +SKIP
    (0.012, 'measured-rapl', None)
    >>> estimate_peak_memory("model.onnx", (1, 8, 8)).peak_memory_mb  # doctest: +SKIP
    0.05
"""

from profilers._base import LatencyProfiler, LatencyResult, Runner
from profilers._cache import JsonValue, MeasurementCache
from profilers._energy import ENERGY_METHODS, EnergyMeterError, EnergyProfiler, EnergyResult, measure_energy
from profilers._estimate import CpuTdp, EstimatedEnergy, cpu_model_name, lookup_cpu_tdp
from profilers._factory import energy_profiler_from_profile, latency_profiler_from_profile
from profilers._flops import COUNTED_OPS, ModelCost, count_params_and_flops
from profilers._lut import LatencyTable, LutError, fit_linear
from profilers._memory import MEMORY_METHODS, MIB, MemoryResult, estimate_peak_memory
from profilers._nvml import NvmlEnergy
from profilers._onnxruntime import OnnxRuntimeLatency, device_lock
from profilers._quantize import (
    PRECISION_METADATA_KEY,
    QUANTIZATION_METADATA_KEY,
    Int8Accuracy,
    QuantizedModel,
    compare_int8_accuracy,
    quantize_int8,
)
from profilers._quiet import GatedTiming, QuietGate
from profilers._rapl import RaplEnergy
from profilers._torch import TorchLatency
from profilers._transfer import (
    MIN_TRANSFER_POINTS,
    LatencyTransfer,
    TransferError,
    TransferFit,
    fit_latency_transfer,
)

__all__ = [
    "COUNTED_OPS",
    "ENERGY_METHODS",
    "MEMORY_METHODS",
    "MIB",
    "MIN_TRANSFER_POINTS",
    "PRECISION_METADATA_KEY",
    "QUANTIZATION_METADATA_KEY",
    "CpuTdp",
    "EnergyMeterError",
    "EnergyProfiler",
    "EnergyResult",
    "EstimatedEnergy",
    "GatedTiming",
    "Int8Accuracy",
    "JsonValue",
    "LatencyProfiler",
    "LatencyResult",
    "LatencyTable",
    "LatencyTransfer",
    "LutError",
    "MeasurementCache",
    "MemoryResult",
    "ModelCost",
    "NvmlEnergy",
    "OnnxRuntimeLatency",
    "QuantizedModel",
    "QuietGate",
    "RaplEnergy",
    "Runner",
    "TorchLatency",
    "TransferError",
    "TransferFit",
    "compare_int8_accuracy",
    "count_params_and_flops",
    "cpu_model_name",
    "device_lock",
    "energy_profiler_from_profile",
    "estimate_peak_memory",
    "fit_latency_transfer",
    "fit_linear",
    "latency_profiler_from_profile",
    "lookup_cpu_tdp",
    "measure_energy",
    "quantize_int8",
]
