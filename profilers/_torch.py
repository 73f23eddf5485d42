"""Latency (and CUDA peak memory) of a PyTorch module run eagerly, for users who deploy PyTorch itself."""

from __future__ import annotations

import copy
import itertools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Union

import numpy as np

from hardware_profiles import MIN_TIMED_RUNS, HardwareProfile
from profilers._base import LatencyProfiler, LatencyResult, Runner
from profilers._memory import MemoryResult
from profilers._onnxruntime import best_timing, device_lock, summarise
from profilers._quiet import QuietGate

if TYPE_CHECKING:
    import torch

__all__ = ["TorchLatency"]

TorchModel = Union["torch.nn.Module", str, os.PathLike[str]]

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _import_torch() -> ModuleType:
    import torch  # kept lazy: `import profilers` never loads torch

    return torch


class TorchLatency(LatencyProfiler):
    """Latency of a ``torch.nn.Module`` run eagerly under ``torch.inference_mode``.

    Each :meth:`measure` prepares the module on the device (a copy is moved there, and put in eval mode, when
    the module is elsewhere or in training mode: the caller's module is never changed), feeds one fixed input
    drawn from a seeded NumPy generator (the same input :class:`~profilers.OnnxRuntimeLatency` feeds, so both
    backends can be compared output for output), runs ``warmup_runs`` untimed calls and times ``timed_runs``
    calls with ``time.perf_counter_ns``. On a GPU every call ends with ``torch.cuda.synchronize``, so a timed
    call covers the whole inference. The measurement holds the device's lock (:func:`~profilers.device_lock`).

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``.
        intra_op_threads: Threads PyTorch uses inside one operator on the CPU during each inference
            (``torch.set_num_threads``, restored after every call), or ``None`` to leave PyTorch's setting.
        warmup_runs: Untimed runs before timing (>= 0).
        timed_runs: Timed runs (>= 30).
        seed: Seed of the generator that draws the input.
        quiet_gate: Time only runs taken while the CPU is undisturbed (:class:`~profilers.QuietGate`), for
            shared machines; ``None``: time every run. CPU only.

    Raises:
        ValueError: An argument is out of range, or the CUDA device does not exist (the message says how many
            this machine has).

    Example:
        >>> profiler = TorchLatency(timed_runs=30)
        >>> profiler.device
        'cpu'
        >>> result = profiler.measure(model, (3, 32, 32))  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        device: str = "cpu",
        intra_op_threads: int | None = None,
        warmup_runs: int = 10,
        timed_runs: int = 50,
        seed: int = 0,
        quiet_gate: QuietGate | None = None,
    ) -> None:
        if not isinstance(device, str) or not _DEVICE.match(device):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")
        if device == "cuda":
            device = "cuda:0"
        checks = [("warmup_runs", warmup_runs, 0), ("timed_runs", timed_runs, MIN_TIMED_RUNS)]
        if intra_op_threads is not None:
            checks.append(("intra_op_threads", intra_op_threads, 1))
        for name, value, minimum in checks:
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                why = " for a stable median and IQR" if name == "timed_runs" else ""
                raise ValueError(f"{name} must be an integer >= {minimum}{why}, got {value!r}")
        if device.startswith("cuda"):
            torch = _import_torch()
            index = int(device.split(":")[1])
            if not torch.cuda.is_available():
                raise ValueError(
                    f"device {device!r}: this PyTorch ({torch.__version__}) sees no CUDA GPU; install a CUDA "
                    "build of PyTorch on a machine with an NVIDIA GPU, or use device='cpu'"
                )
            if index >= torch.cuda.device_count():
                raise ValueError(
                    f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                    f"(indices 0 to {torch.cuda.device_count() - 1})"
                )
        self.device = device
        self.intra_op_threads = intra_op_threads
        self.warmup_runs = warmup_runs
        self.timed_runs = timed_runs
        self.seed = seed
        if quiet_gate is not None and (not isinstance(quiet_gate, QuietGate) or device != "cpu"):
            raise ValueError(
                f"quiet_gate must be a QuietGate on device 'cpu' (it watches the CPU), got {quiet_gate!r} "
                f"on {device!r}"
            )
        self.quiet_gate = quiet_gate

    @classmethod
    def from_profile(cls, profile: HardwareProfile, *, seed: int = 0) -> TorchLatency:
        """A profiler configured as a hardware profile with ``runtime: torch`` says.

        The GPU is ``cuda:<device_id>`` with the profile's ``device_id``; ``intra_op_threads`` applies on the
        CPU.

        Example:
            >>> from hardware_profiles import HardwareProfile
            >>> TorchLatency.from_profile(HardwareProfile(name="pt", runtime="torch")).intra_op_threads
            1
        """
        if profile.runtime != "torch":
            raise ValueError(f"profile {profile.name!r} uses runtime {profile.runtime!r}, not 'torch'")
        device = "cpu" if profile.device == "cpu" else f"cuda:{profile.device_id}"
        return cls(
            device=device,
            intra_op_threads=profile.intra_op_threads,
            warmup_runs=profile.warmup_runs,
            timed_runs=profile.timed_runs,
            seed=seed,
            quiet_gate=QuietGate.from_profile(profile) if profile.quiet_gate else None,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(device={self.device!r}, intra_op_threads={self.intra_op_threads}, "
            f"warmup_runs={self.warmup_runs}, timed_runs={self.timed_runs})"
        )

    def _load(self, model: TorchModel) -> torch.nn.Module:
        torch = _import_torch()
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"model file not found: {path}")
            if path.suffix == ".onnx":
                raise ValueError(
                    f"{path} is an ONNX file; TorchLatency measures PyTorch modules (or programs saved with "
                    "torch.export.save), use OnnxRuntimeLatency for ONNX files"
                )
            try:
                return torch.export.load(str(path)).module()
            except Exception as exc:
                raise ValueError(
                    f"{path} could not be loaded with torch.export.load ({exc}); pass an nn.Module or a "
                    "program saved with torch.export.save"
                ) from exc
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"model must be a torch.nn.Module or the path of a torch.export program, got "
                f"{type(model).__name__}"
            )
        return model

    def _prepare(
        self, model: TorchModel, input_shape: Sequence[int], batch_size: int
    ) -> tuple[torch.nn.Module, torch.Tensor, tuple[int, ...]]:
        torch = _import_torch()
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        sample_shape = tuple(int(d) for d in input_shape)
        if not sample_shape or any(d < 1 for d in sample_shape):
            raise ValueError(
                "input_shape must be a non-empty tuple of positive sizes, e.g. (3, 32, 32), "
                f"got {input_shape!r}"
            )
        loaded = self._load(model)
        target = torch.device(self.device)
        tensors = list(itertools.chain(loaded.parameters(), loaded.buffers()))
        module = loaded
        if loaded.training or any(t.device != target for t in tensors):
            # A copy: the caller's module keeps its device and its training mode.
            module = copy.deepcopy(loaded).to(target)
            try:
                module.eval()
            except NotImplementedError:
                pass  # exported programs refuse eval(); they run as they were exported
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        rng = np.random.default_rng(self.seed)
        array = rng.standard_normal((batch_size, *sample_shape), dtype=np.float32)
        x = torch.from_numpy(array).to(device=target, dtype=dtype)
        return module, x, sample_shape

    def _runner(self, module: torch.nn.Module, x: torch.Tensor) -> Runner:
        torch = _import_torch()
        on_gpu = self.device.startswith("cuda")
        threads = None if on_gpu else self.intra_op_threads

        def run() -> object:
            previous = torch.get_num_threads()
            if threads is not None and previous != threads:
                torch.set_num_threads(threads)
            try:
                with torch.inference_mode():
                    out = module(x)
                if on_gpu:
                    torch.cuda.synchronize(self.device)
            finally:
                if threads is not None and previous != threads:
                    torch.set_num_threads(previous)
            return out

        return run

    def runner(
        self,
        model: TorchModel,  # type: ignore[override]
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> Runner:
        """Prepares ``model`` on the device and returns a callable that runs one inference.

        The callable returns the module's output (a tensor on the device). It does not hold the device lock;
        see :meth:`LatencyProfiler.runner`.

        Example:
            >>> import torch
            >>> run = TorchLatency(timed_runs=30).runner(torch.nn.Linear(4, 2), (4,), batch_size=3)
            >>> tuple(run().shape)
            (3, 2)
        """
        module, x, _ = self._prepare(model, input_shape, batch_size)
        return self._runner(module, x)

    def measure(
        self,
        model: TorchModel,
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> LatencyResult:
        """Measures the latency of one module; see :meth:`LatencyProfiler.measure`.

        Args:
            model: A ``torch.nn.Module`` (not modified), or the path of a program saved with
                ``torch.export.save``.
            input_shape: Shape of one sample without the batch dimension.
            batch_size: Samples per inference call.

        Raises:
            FileNotFoundError: ``model`` is a path that does not exist.
            ValueError: ``model`` is an ONNX file, or an argument is out of range.

        Example:
            >>> import torch
            >>> result = TorchLatency(timed_runs=30, warmup_runs=1).measure(torch.nn.Linear(4, 2), (4,))
            >>> result.provider, result.timed_runs
            ('torch:cpu', 30)
        """
        torch = _import_torch()
        with device_lock(self.device):
            module, x, sample_shape = self._prepare(model, input_shape, batch_size)
            run = self._runner(module, x)
            samples_ns, quiet, rejected = best_timing(
                lambda: run, self.warmup_runs, self.timed_runs, self.quiet_gate
            )
        return summarise(
            samples_ns,
            warmup_runs=self.warmup_runs,
            batch_size=batch_size,
            input_shape=sample_shape,
            provider=f"torch:{self.device}",
            intra_op_threads=self.intra_op_threads or torch.get_num_threads(),
            inter_op_threads=torch.get_num_interop_threads(),
            quiet=quiet,
            rejected_runs=rejected,
        )

    def peak_memory(
        self,
        model: TorchModel,
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
    ) -> MemoryResult:
        """Peak GPU memory of one inference, measured with PyTorch's CUDA allocator statistics.

        ``weights_bytes`` is the size of the module's parameters and buffers; ``activation_bytes`` is
        ``torch.cuda.max_memory_allocated`` during one inference minus what was allocated before the input was
        created (so other tensors of the process do not count). Both are what the caching allocator handed
        out (rounded up to its 512-byte blocks), not what it reserved from the driver; the result's method is
        ``"measured-cuda"``, comparable with :func:`~profilers.estimate_peak_memory`.

        Raises:
            ValueError: The profiler's device is not a CUDA GPU.

        Example:
            >>> TorchLatency(device="cuda").peak_memory(model, (3, 32, 32)).peak_memory_mb  # doctest: +SKIP
            1.9
        """
        if not self.device.startswith("cuda"):
            raise ValueError(
                f"peak_memory measures CUDA allocations, but this profiler runs on {self.device!r}; use "
                "TorchLatency(device='cuda:0'), or estimate_peak_memory(onnx_path, ...) on any machine"
            )
        torch = _import_torch()
        with device_lock(self.device):
            module, x, sample_shape = self._prepare(model, input_shape, batch_size)
            weights = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
            weights_bytes = sum(t.numel() * t.element_size() for t in weights.values())
            shape = tuple(x.shape)
            dtype = x.dtype
            del x
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            rng = np.random.default_rng(self.seed)
            x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(self.device, dtype=dtype)
            with torch.inference_mode():
                out = module(x)
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            del out, x
        return MemoryResult(
            weights_bytes=int(weights_bytes),
            activation_bytes=int(peak - before),
            method="measured-cuda",
            batch_size=batch_size,
            input_shape=sample_shape,
        )
