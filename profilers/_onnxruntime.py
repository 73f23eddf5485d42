"""Latency of an ONNX model measured with ONNX Runtime (CPU, CUDA, TensorRT or OpenVINO execution providers)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hardware_profiles import MIN_TIMED_RUNS, HardwareProfile
from profilers._base import LatencyProfiler, LatencyResult, Runner
from profilers._quiet import QuietGate, preferred

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["OnnxRuntimeLatency", "device_lock"]

ProviderOptionValue = str | int | float | bool

_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
# Providers that run on an NVIDIA GPU; their lock is per GPU (device_id), not per process.
_CUDA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
# What to install when a provider is missing.
_PROVIDER_HINTS = {
    "CUDAExecutionProvider": "onnxruntime-gpu (and the CUDA and cuDNN libraries it was built for)",
    "TensorrtExecutionProvider": "onnxruntime-gpu with TensorRT's libraries on the library path",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
}

_device_locks: dict[str, threading.RLock] = {}
_device_locks_guard = threading.Lock()


def device_lock(device: str) -> threading.RLock:
    """The process-wide lock that serialises measurements on one device.

    Every latency or energy measurement holds its device's lock while it runs, so two measurements on the
    same device never overlap inside this process (they would slow each other down, and an energy meter
    would count both). The lock is re-entrant: a thread that holds it (e.g. :func:`~profilers.measure_energy`
    around a whole energy measurement) may take it again in the profilers it calls.

    Args:
        device: Device name such as ``"cpu"`` or ``"cuda:0"``.

    Example:
        >>> device_lock("cpu") is device_lock("cpu")
        True
        >>> with device_lock("cpu"), device_lock("cpu"):  # re-entrant
        ...     pass
    """
    with _device_locks_guard:
        lock = _device_locks.get(device)
        if lock is None:
            lock = _device_locks[device] = threading.RLock()
        return lock


def _device_of(
    providers: Sequence[str], provider_options: Sequence[Mapping[str, ProviderOptionValue]]
) -> str:
    primary = providers[0]
    options = provider_options[0] if provider_options else {}
    if primary in _CUDA_PROVIDERS:
        return f"cuda:{int(options.get('device_id', 0))}"
    if primary == "CPUExecutionProvider":
        return "cpu"
    if primary == "OpenVINOExecutionProvider":
        # OpenVINO runs on the CPU unless its device_type names another device (GPU, NPU).
        target = str(options.get("device_type", "CPU"))
        return "cpu" if target.upper().startswith("CPU") else f"openvino:{target}"
    return primary


def _import_onnxruntime() -> ModuleType:
    import onnxruntime  # kept lazy: `import profilers` stays cheap

    return onnxruntime


class OnnxRuntimeLatency(LatencyProfiler):
    """Latency measured with an ONNX Runtime ``InferenceSession``.

    Each :meth:`measure` creates a session (threads as configured, sequential execution, full graph
    optimisation), feeds one fixed random input drawn from a seeded generator, runs ``warmup_runs`` untimed
    calls and then times ``timed_runs`` calls one by one with ``time.perf_counter_ns``. The whole measurement
    holds the device's lock (:func:`device_lock`). :meth:`measure` is written on top of :meth:`runner`, so a
    latency and an energy measurement of one model run the very same inference.

    On a GPU (CUDA or TensorRT provider) the input is copied to the GPU once and bound with IO binding, the
    outputs are bound on the GPU too, and each call is ``run_with_iobinding`` followed by
    ``synchronize_outputs``: a timed call covers the whole inference on the GPU and no host-device copy.
    OpenVINO and CPU providers are fed NumPy arrays.

    Args:
        providers: Execution providers in priority order; each must be available in this ONNX Runtime.
        provider_options: One options dict per provider, or empty for defaults.
        intra_op_threads: Threads inside one operator.
        inter_op_threads: Threads across operators.
        warmup_runs: Untimed runs before timing (>= 0).
        timed_runs: Timed runs (>= 30).
        rounds: Sessions timed, each with its warm-up and ``timed_runs`` runs; the one with the lowest median
            is the result (1: one session).
        optimization_level: ONNX Runtime graph optimisation: ``"disable"``, ``"basic"``, ``"extended"`` or
            ``"all"``.
        seed: Seed of the generator that draws the input.
        device: Name of the device lock to hold; by default derived from the first provider
            (``"cpu"``, ``"cuda:<device_id>"``; OpenVINO: ``"cpu"`` unless its ``device_type`` names another).
        io_binding: Bind input and outputs to the device with IO binding; by default only on a GPU provider.
        quiet_gate: Time only runs taken while the CPU is undisturbed (:class:`QuietGate`), for shared
            machines; ``None``: time every run. CPU providers only.

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
        rounds: int = 1,
        optimization_level: str = "all",
        seed: int = 0,
        device: str | None = None,
        io_binding: bool | None = None,
        quiet_gate: QuietGate | None = None,
    ) -> None:
        if isinstance(providers, str):
            raise ValueError(  # a usage error like the others here
                f"providers must be a sequence of provider names, e.g. [{providers!r}]"
            )
        providers = tuple(providers)
        if not providers:
            raise ValueError(
                "providers must name at least one execution provider, e.g. ['CPUExecutionProvider']"
            )
        options = tuple(dict(o) for o in provider_options)
        if options and len(options) != len(providers):
            raise ValueError(
                f"provider_options has {len(options)} entries but providers has {len(providers)}; "
                "give one dict per provider ({} for defaults) or none at all"
            )
        for name, value, minimum in (
            ("intra_op_threads", intra_op_threads, 1),
            ("inter_op_threads", inter_op_threads, 1),
            ("warmup_runs", warmup_runs, 0),
            ("timed_runs", timed_runs, MIN_TIMED_RUNS),
            ("rounds", rounds, 1),
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
            hints = "; ".join(f"{p} needs {_PROVIDER_HINTS[p]}" for p in missing if p in _PROVIDER_HINTS)
            raise ValueError(
                f"ONNX Runtime execution provider(s) {missing} not available here; available: {available}. "
                "Use one of these, or install the ONNX Runtime build that provides it "
                f"({hints or 'e.g. onnxruntime-gpu for CUDAExecutionProvider'})"
            )
        if io_binding is not None and not isinstance(io_binding, bool):
            raise ValueError(f"io_binding must be True, False or None (automatic), got {io_binding!r}")
        self.providers: tuple[str, ...] = providers
        self.provider_options: tuple[dict[str, ProviderOptionValue], ...] = options
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.warmup_runs = warmup_runs
        self.timed_runs = timed_runs
        self.rounds = rounds
        self.optimization_level = optimization_level
        self.seed = seed
        self.device = device if device is not None else _device_of(providers, options)
        self.io_binding = io_binding if io_binding is not None else providers[0] in _CUDA_PROVIDERS
        if quiet_gate is not None and not isinstance(quiet_gate, QuietGate):
            raise ValueError(f"quiet_gate must be a QuietGate or None, got {quiet_gate!r}")
        if quiet_gate is not None and providers[0] in _CUDA_PROVIDERS:
            raise ValueError(
                "quiet_gate watches the CPU; it cannot see contention on a GPU "
                f"({providers[0]}): leave it off for GPU providers"
            )
        self.quiet_gate = quiet_gate

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
            rounds=profile.timing_rounds,
            seed=seed,
            quiet_gate=QuietGate.from_profile(profile) if profile.quiet_gate else None,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(providers={list(self.providers)}, "
            f"intra_op_threads={self.intra_op_threads}, inter_op_threads={self.inter_op_threads}, "
            f"warmup_runs={self.warmup_runs}, "
            f"timed_runs={self.timed_runs}, device={self.device!r}, io_binding={self.io_binding}"
            + (f", quiet_gate={self.quiet_gate!r})" if self.quiet_gate is not None else ")")
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

    def _prepare(
        self, onnx_path: str | os.PathLike[str], input_shape: Sequence[int], batch_size: int
    ) -> tuple[Path, tuple[int, ...]]:
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
        return path, sample_shape

    def _runner(self, path: Path, shape: tuple[int, ...]) -> tuple[Runner, str]:
        """A session for ``path`` fed a ``shape`` input, as a one-inference callable and the provider used."""
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
        array = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
        provider = session.get_providers()[0]
        if not self.io_binding:
            feed = {model_input.name: array}

            def run() -> object:
                return session.run(None, feed)

            return run, provider

        on_gpu = self.providers[0] in _CUDA_PROVIDERS
        device_type = "cuda" if on_gpu else "cpu"
        options = self.provider_options[0] if self.provider_options else {}
        device_id = int(options.get("device_id", 0)) if on_gpu else 0
        return _BoundRunner(session, model_input.name, array, device_type, device_id), provider

    def runner(
        self,
        onnx_path: str | os.PathLike[str],  # type: ignore[override]
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> Runner:
        """Creates a session for one model and returns a callable that runs one inference.

        The callable feeds the same fixed input as :meth:`measure` and returns the outputs (NumPy arrays, or
        ``OrtValue`` objects on the device with IO binding). It does not hold the device lock; see
        :meth:`LatencyProfiler.runner`.

        Raises:
            FileNotFoundError: ``onnx_path`` does not exist.
            ValueError: As for :meth:`measure`.

        Example:
            >>> run = OnnxRuntimeLatency(timed_runs=30).runner("model.onnx", (1, 8, 8))  # doctest: +SKIP
            >>> logits = run()[0]  # doctest: +SKIP
        """
        path, sample_shape = self._prepare(onnx_path, input_shape, batch_size)
        run, _ = self._runner(path, (batch_size, *sample_shape))
        return run

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
        path, sample_shape = self._prepare(onnx_path, input_shape, batch_size)
        with device_lock(self.device):
            provider = ""

            def fresh_session() -> Runner:
                # A session's speed can depend on where its buffers landed (sessions of one model were seen
                # 2x apart on a virtual machine): every round and every retry opens a new one.
                nonlocal provider
                run, provider = self._runner(path, (batch_size, *sample_shape))
                return run

            samples_ns, quiet, rejected = best_timing(
                fresh_session, self.warmup_runs, self.timed_runs, self.quiet_gate, rounds=self.rounds
            )
        return summarise(
            samples_ns,
            warmup_runs=self.warmup_runs,
            batch_size=batch_size,
            input_shape=sample_shape,
            provider=provider,
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            quiet=quiet,
            rejected_runs=rejected,
        )


class _BoundRunner:
    """One inference through IO binding: input and outputs stay on the device between calls."""

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        input_name: str,
        array: np.ndarray,
        device_type: str,
        device_id: int,
    ) -> None:
        ort = _import_onnxruntime()
        self.session = session
        self.binding = session.io_binding()
        # The input is copied to the device once, so no host-to-device copy is part of a run; the OrtValue is
        # kept here because the binding refers to its buffer.
        self.device_input = ort.OrtValue.ortvalue_from_numpy(array, device_type, device_id)
        self.binding.bind_ortvalue_input(input_name, self.device_input)
        for output in session.get_outputs():
            self.binding.bind_output(output.name, device_type, device_id)
        self.binding.synchronize_inputs()

    def __call__(self) -> object:
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()  # the inference has finished on the device when the call returns
        return self.binding.get_outputs()


def time_runs(run: Runner, warmup_runs: int, timed_runs: int) -> np.ndarray:
    """Calls ``run`` ``warmup_runs`` times untimed, then times ``timed_runs`` calls; nanoseconds per call."""
    for _ in range(warmup_runs):
        run()
    samples_ns = np.empty(timed_runs, dtype=np.int64)
    for i in range(timed_runs):
        start = time.perf_counter_ns()
        run()
        samples_ns[i] = time.perf_counter_ns() - start
    return samples_ns


def timed(
    run: Runner, warmup_runs: int, timed_runs: int, gate: QuietGate | None
) -> tuple[np.ndarray, bool | None, int]:
    """Warm-up, then ``timed_runs`` timed calls, through ``gate`` when given.

    Returns:
        Nanoseconds per counted call, whether they were all quiet (``None`` without a gate) and how many
        calls the gate skipped.
    """
    if gate is None:
        return time_runs(run, warmup_runs, timed_runs), None, 0
    for _ in range(warmup_runs):
        run()
    timing = gate.time(run, timed_runs)
    return timing.samples_ns, timing.quiet, timing.rejected_runs


def best_timing(
    next_run: Callable[[], Runner],
    warmup_runs: int,
    timed_runs: int,
    gate: QuietGate | None,
    *,
    rounds: int = 1,
) -> tuple[np.ndarray, bool | None, int]:
    """:func:`timed` ``rounds`` times, then again (up to ``gate.retries`` times) while the best timing so far
    is disturbed; each timing gets its runner from ``next_run``. Keeps the :func:`~profilers._quiet.preferred`
    timing (quiet first, then the lowest median: interference only ever adds time).

    Returns:
        As :func:`timed`, with the skipped calls of every timing added up.
    """
    samples_ns, quiet, rejected = timed(next_run(), warmup_runs, timed_runs, gate)
    for attempt in range(1, rounds + (gate.retries if gate else 0)):
        if attempt >= rounds and quiet is not False:
            break
        block, block_quiet, block_rejected = timed(next_run(), warmup_runs, timed_runs, gate)
        rejected += block_rejected
        if preferred((block, block_quiet), (samples_ns, quiet)):
            samples_ns, quiet = block, block_quiet
    return samples_ns, quiet, rejected


def summarise(
    samples_ns: np.ndarray,
    *,
    warmup_runs: int,
    batch_size: int,
    input_shape: tuple[int, ...],
    provider: str,
    intra_op_threads: int,
    inter_op_threads: int,
    quiet: bool | None = None,
    rejected_runs: int = 0,
) -> LatencyResult:
    """The :class:`LatencyResult` of timed runs given in nanoseconds."""
    samples_ms = samples_ns / 1e6
    q25, q50, q75 = np.percentile(samples_ms, [25, 50, 75])
    return LatencyResult(
        median_ms=float(q50),
        iqr_ms=float(q75 - q25),
        mean_ms=float(samples_ms.mean()),
        min_ms=float(samples_ms.min()),
        max_ms=float(samples_ms.max()),
        timed_runs=len(samples_ms),
        warmup_runs=warmup_runs,
        batch_size=batch_size,
        input_shape=input_shape,
        provider=provider,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        samples_ms=tuple(float(s) for s in samples_ms),
        quiet=quiet,
        rejected_runs=rejected_runs,
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
