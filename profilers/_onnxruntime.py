"""Latency of an ONNX model measured with ONNX Runtime."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Union

import numpy as np

from hardware_profiles import MIN_TIMED_RUNS, HardwareProfile
from profilers._base import LatencyProfiler, LatencyResult

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["OnnxRuntimeLatency", "device_lock"]

ProviderOptionValue = Union[str, int, float, bool]

_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
# Providers that run on an NVIDIA GPU; their lock is per GPU (device_id), not per process.
_CUDA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

_device_locks: dict[str, threading.Lock] = {}
_device_locks_guard = threading.Lock()


def device_lock(device: str) -> threading.Lock:
    """The process-wide lock that serialises measurements on one device.

    Every latency or energy measurement holds its device's lock while it runs, so two measurements on the
    same device never overlap inside this process (they would slow each other down).

    Args:
        device: Device name such as ``"cpu"`` or ``"cuda:0"``.

    Example:
        >>> device_lock("cpu") is device_lock("cpu")
        True
    """
    with _device_locks_guard:
        lock = _device_locks.get(device)
        if lock is None:
            lock = _device_locks[device] = threading.Lock()
        return lock


def _device_of(
    providers: Sequence[str], provider_options: Sequence[Mapping[str, ProviderOptionValue]]
) -> str:
    primary = providers[0]
    if primary in _CUDA_PROVIDERS:
        options = provider_options[0] if provider_options else {}
        return f"cuda:{options.get('device_id', 0)}"
    if primary == "CPUExecutionProvider":
        return "cpu"
    return primary


def _import_onnxruntime() -> ModuleType:
    import onnxruntime  # kept lazy: `import profilers` stays cheap

    return onnxruntime


class OnnxRuntimeLatency(LatencyProfiler):
    """Latency measured with an ONNX Runtime ``InferenceSession``.

    Each :meth:`measure` creates a session (threads as configured, sequential execution, full graph
    optimisation), feeds one fixed random input drawn from a seeded generator, runs ``warmup_runs`` untimed
    calls and then times ``timed_runs`` calls one by one with ``time.perf_counter_ns``. The whole measurement
    holds the device's lock (:func:`device_lock`).

    Args:
        providers: Execution providers in priority order; each must be available in this ONNX Runtime.
        provider_options: One options dict per provider, or empty for defaults.
        intra_op_threads: Threads inside one operator.
        inter_op_threads: Threads across operators.
        warmup_runs: Untimed runs before timing (>= 0).
        timed_runs: Timed runs (>= 30).
        optimization_level: ONNX Runtime graph optimisation: ``"disable"``, ``"basic"``, ``"extended"`` or
            ``"all"``.
        seed: Seed of the generator that draws the input.
        device: Name of the device lock to hold; by default derived from the first provider
            (``"cpu"``, ``"cuda:<device_id>"``).

    Raises:
        ValueError: An argument is out of range, or a provider is not available (the message lists the
            available ones).

    Example:
        >>> profiler = OnnxRuntimeLatency(timed_runs=30)
        >>> result = profiler.measure("model.onnx", (1, 8, 8))  # doctest: +SKIP
        >>> result.median_ms  # doctest: +SKIP
        0.021
    """

    def __init__(
        self,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        provider_options: Sequence[Mapping[str, ProviderOptionValue]] = (),
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        warmup_runs: int = 10,
        timed_runs: int = 50,
        optimization_level: str = "all",
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        if isinstance(providers, str):
            raise ValueError(f"providers must be a sequence of provider names, e.g. [{providers!r}]")
        providers = tuple(providers)
        if not providers:
            raise ValueError(
                "providers must name at least one execution provider, e.g. ['CPUExecutionProvider']"
            )
        provider_options = tuple(dict(o) for o in provider_options)
        if provider_options and len(provider_options) != len(providers):
            raise ValueError(
                f"provider_options has {len(provider_options)} entries but providers has {len(providers)}; "
                "give one dict per provider ({} for defaults) or none at all"
            )
        for name, value, minimum in (
            ("intra_op_threads", intra_op_threads, 1),
            ("inter_op_threads", inter_op_threads, 1),
            ("warmup_runs", warmup_runs, 0),
            ("timed_runs", timed_runs, MIN_TIMED_RUNS),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                why = (
                    " for a stable median and IQR (lower warmup_runs instead if measurements take too long)"
                    if name == "timed_runs"
                    else ""
                )
                raise ValueError(f"{name} must be an integer >= {minimum}{why}, got {value!r}")
        if optimization_level not in _OPTIMIZATION_LEVELS:
            raise ValueError(
                f"optimization_level must be one of {list(_OPTIMIZATION_LEVELS)}, got {optimization_level!r}"
            )
        ort = _import_onnxruntime()
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise ValueError(
                f"ONNX Runtime execution provider(s) {missing} not available here; available: {available}. "
                "Use one of these, or install the ONNX Runtime build that provides it "
                "(e.g. onnxruntime-gpu for CUDAExecutionProvider)"
            )
        self.providers: tuple[str, ...] = providers
        self.provider_options: tuple[dict[str, ProviderOptionValue], ...] = provider_options
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.warmup_runs = warmup_runs
        self.timed_runs = timed_runs
        self.optimization_level = optimization_level
        self.seed = seed
        self.device = device if device is not None else _device_of(providers, provider_options)

    @classmethod
    def from_profile(cls, profile: HardwareProfile, *, seed: int = 0) -> OnnxRuntimeLatency:
        """A profiler configured as a hardware profile says.

        Example:
            >>> from hardware_profiles import load_profile
            >>> OnnxRuntimeLatency.from_profile(load_profile("local-cpu")).device
            'cpu'
        """
        if profile.runtime != "onnxruntime":
            raise ValueError(f"profile {profile.name!r} uses runtime {profile.runtime!r}, not 'onnxruntime'")
        return cls(
            providers=profile.providers,
            provider_options=profile.provider_options,
            intra_op_threads=profile.intra_op_threads,
            inter_op_threads=profile.inter_op_threads,
            warmup_runs=profile.warmup_runs,
            timed_runs=profile.timed_runs,
            seed=seed,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(providers={list(self.providers)}, "
            f"intra_op_threads={self.intra_op_threads}, inter_op_threads={self.inter_op_threads}, "
            f"warmup_runs={self.warmup_runs}, "
            f"timed_runs={self.timed_runs}, device={self.device!r})"
        )

    def _session(self, onnx_path: Path) -> onnxruntime.InferenceSession:
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization_level]
        options.log_severity_level = 3  # errors only: optimiser notes would flood the logs of a search
        session = ort.InferenceSession(
            str(onnx_path),
            sess_options=options,
            providers=list(self.providers),
            provider_options=list(self.provider_options) or None,
        )
        used = session.get_providers()
        if self.providers[0] not in used:
            # ONNX Runtime falls back to the CPU silently when, e.g., CUDA libraries fail to load.
            raise RuntimeError(
                f"ONNX Runtime did not enable {self.providers[0]} for {onnx_path} (enabled: {used}); "
                "check the provider's libraries and options"
            )
        return session

    def measure(
        self,
        onnx_path: str | os.PathLike[str],
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> LatencyResult:
        """Measures the latency of one model; see :meth:`LatencyProfiler.measure`.

        Raises:
            FileNotFoundError: ``onnx_path`` does not exist.
            ValueError: The model does not have exactly one floating-point input, or its fixed dimensions do
                not match ``(batch_size, *input_shape)``.

        Example:
            >>> OnnxRuntimeLatency().measure("model.onnx", (3, 32, 32), batch_size=8)  # doctest: +SKIP
        """
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        sample_shape = tuple(int(d) for d in input_shape)
        if not sample_shape or any(d < 1 for d in sample_shape):
            raise ValueError(
                "input_shape must be a non-empty tuple of positive sizes, e.g. (3, 32, 32), "
                f"got {input_shape!r}"
            )
        shape = (batch_size, *sample_shape)

        with device_lock(self.device):
            session = self._session(path)
            inputs = session.get_inputs()
            if len(inputs) != 1:
                raise ValueError(
                    f"{path} has {len(inputs)} inputs ({[i.name for i in inputs]}); latency is measured on "
                    "models with a single input"
                )
            (model_input,) = inputs
            dtype = _INPUT_DTYPES.get(model_input.type)
            if dtype is None:
                raise ValueError(
                    f"{path}: input {model_input.name!r} has type {model_input.type}; expected one of "
                    f"{list(_INPUT_DTYPES)}"
                )
            _check_shape(path, model_input.name, model_input.shape, shape)
            rng = np.random.default_rng(self.seed)
            feed = {model_input.name: rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)}
            for _ in range(self.warmup_runs):
                session.run(None, feed)
            samples_ns = np.empty(self.timed_runs, dtype=np.int64)
            for i in range(self.timed_runs):
                start = time.perf_counter_ns()
                session.run(None, feed)
                samples_ns[i] = time.perf_counter_ns() - start
            provider = session.get_providers()[0]

        samples_ms = samples_ns / 1e6
        q25, q50, q75 = np.percentile(samples_ms, [25, 50, 75])
        return LatencyResult(
            median_ms=float(q50),
            iqr_ms=float(q75 - q25),
            mean_ms=float(samples_ms.mean()),
            min_ms=float(samples_ms.min()),
            max_ms=float(samples_ms.max()),
            timed_runs=self.timed_runs,
            warmup_runs=self.warmup_runs,
            batch_size=batch_size,
            input_shape=sample_shape,
            provider=provider,
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            samples_ms=tuple(float(s) for s in samples_ms),
        )


def _check_shape(path: Path, name: str, model_shape: Sequence[object], shape: tuple[int, ...]) -> None:
    if len(model_shape) != len(shape):
        raise ValueError(
            f"{path}: input {name!r} has rank {len(model_shape)} (shape {list(model_shape)}) but the batch "
            f"to feed has shape {list(shape)}; pass input_shape without the batch dimension"
        )
    for axis, (expected, given) in enumerate(zip(model_shape, shape)):
        if isinstance(expected, int) and expected != given:
            what = "batch size" if axis == 0 else f"dimension {axis}"
            fix = "; export with a dynamic batch dimension" if axis == 0 else ""
            raise ValueError(
                f"{path}: input {name!r} has fixed {what} {expected} but {given} was requested "
                f"(model input shape {list(model_shape)}){fix}"
            )
