"""Energy of an NVIDIA GPU read through NVML (the ``pynvml`` module of nvidia-ml-py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, cast

from profilers._energy import EnergyMeterError, EnergyProfiler

__all__ = ["NvmlEnergy"]

_MODES = ("auto", "energy-counter", "power-sampling")
# What _start returns: the kind, pynvml, the device handle, and the counter's start (mJ) or the _Sampling.
_Token = tuple[str, ModuleType, object, Any]


def _import_pynvml() -> ModuleType:
    try:
        import pynvml  # kept lazy: only energy measurements on a GPU need it
    except ImportError as exc:
        raise EnergyMeterError(
            "NVML energy needs the nvidia-ml-py package (`pip install nvidia-ml-py`, which provides pynvml)"
        ) from exc
    return pynvml


def _is(pynvml: ModuleType, exc: BaseException, name: str) -> bool:
    cls = getattr(pynvml, name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _explain(pynvml: ModuleType, exc: BaseException, doing: str) -> str:
    instead = "or obtain energy with 'estimate' (idle_w and tdp_w in the hardware profile)"
    if _is(pynvml, exc, "NVMLError_LibraryNotFound"):
        return (
            f"NVML library (libnvidia-ml.so.1) not found while {doing}: the NVIDIA driver is not installed on "
            f"this machine. Install it (nvidia-smi must work), {instead}"
        )
    if _is(pynvml, exc, "NVMLError_DriverNotLoaded"):
        return (
            f"the NVIDIA driver is not loaded while {doing} (no GPU is visible, or its kernel module is not "
            f"loaded: does nvidia-smi work?). Load it or reboot, {instead}"
        )
    if _is(pynvml, exc, "NVMLError_NoPermission"):
        return f"NVML refused access while {doing} (insufficient permissions): run as a user allowed to query the GPU"
    if _is(pynvml, exc, "NVMLError_InvalidArgument") or _is(pynvml, exc, "NVMLError_NotFound"):
        return f"no such GPU while {doing}: check device_id in the profile's provider_options"
    if _is(pynvml, exc, "NVMLError_NotSupported"):
        return f"this GPU does not support {doing}"
    return f"NVML error while {doing}: {exc}"


@contextmanager
def _errors(pynvml: ModuleType, doing: str) -> Iterator[None]:
    try:
        yield
    except EnergyMeterError:
        raise
    except pynvml.NVMLError as exc:
        raise EnergyMeterError(_explain(pynvml, exc, doing)) from exc


@contextmanager
def _session(pynvml: ModuleType) -> Iterator[None]:
    """``nvmlInit`` ... ``nvmlShutdown`` (NVML counts initialisations, so sessions may nest)."""
    with _errors(pynvml, "initialising NVML"):
        pynvml.nvmlInit()
    try:
        yield
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _name(raw: object) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


@dataclass
class _Sampling:
    """Power read every ``interval_s`` by a background thread: (seconds on ``clock``, watts) pairs."""

    pynvml: ModuleType
    handle: object
    interval_s: float
    clock: Callable[[], float]
    samples: list[tuple[float, float]] = field(default_factory=list)
    error: BaseException | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def sample(self) -> None:
        milliwatts = self.pynvml.nvmlDeviceGetPowerUsage(self.handle)
        self.samples.append((self.clock(), milliwatts / 1e3))

    def pause(self) -> bool:
        """Waits until the next sample is due; True when the measurement ended meanwhile."""
        return self.stop_event.wait(self.interval_s)

    def _loop(self) -> None:
        try:
            while not self.pause():
                self.sample()
        except BaseException as exc:  # noqa: BLE001  # re-raised by stop(), in the measuring thread
            self.error = exc

    def start(self) -> None:
        self.sample()
        self.thread = threading.Thread(target=self._loop, name="hwnas-nvml-power", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error
        self.sample()

    def joules(self) -> float:
        """Trapezoid rule over the samples: exact for power that changes linearly between samples."""
        return sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in zip(self.samples, self.samples[1:]))


class NvmlEnergy(EnergyProfiler):
    """Energy of an NVIDIA GPU from NVML, labelled ``"measured-nvml"``.

    Where the GPU has a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the
    driver was loaded; Volta and newer), the energy of the loop is the difference of two readings. Elsewhere
    the power (``nvmlDeviceGetPowerUsage``, milliwatts) is sampled every ``sample_interval_s`` by a background
    thread and integrated over time with the trapezoid rule; some GPUs average that power reading over up to a
    second, so on those the counter, where it exists, is the better meter. Only the GPU is metered: the host
    CPU and memory are not.

    The GPU is CUDA device ``device_id`` (the profile's ``provider_options`` ``device_id``). NVML numbers GPUs
    in PCI bus order; when ``CUDA_VISIBLE_DEVICES`` is set, its entry ``device_id`` (an NVML index or a
    ``GPU-`` UUID) names the GPU. On machines with different GPU models also set
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so CUDA numbers them as NVML does.

    Args:
        device_id: CUDA index of the GPU.
        mode: ``"energy-counter"``, ``"power-sampling"``, or ``"auto"``: the counter where the GPU has one.
        sample_interval_s: Seconds between power samples (> 0) in power-sampling mode.
        min_duration_s: See :class:`EnergyProfiler`.
        subtract_idle: See :class:`EnergyProfiler`.
        idle_w: See :class:`EnergyProfiler`.
        idle_window_s: See :class:`EnergyProfiler`.
        fallback_reason: See :class:`EnergyProfiler`.
        clock: See :class:`EnergyProfiler`.
        sleep: See :class:`EnergyProfiler`.

    Raises:
        EnergyMeterError: pynvml is not installed, the NVIDIA driver is missing or not loaded, the GPU does not
            exist, or it reports neither energy nor power. The message says what to do.

    Example:
        >>> meter = NvmlEnergy(device_id=0)  # doctest: +SKIP
        >>> meter.mode, meter.gpu_name  # doctest: +SKIP
        ('energy-counter', 'NVIDIA H100 80GB HBM3')
    """

    method = "measured-nvml"

    def __init__(
        self,
        *,
        device_id: int = 0,
        mode: str = "auto",
        sample_interval_s: float = 0.01,
        min_duration_s: float = 1.0,
        subtract_idle: bool = False,
        idle_w: float | None = None,
        idle_window_s: float = 0.5,
        fallback_reason: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id < 0:
            raise ValueError(f"device_id must be a GPU index >= 0, got {device_id!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, got {mode!r}")
        if (
            isinstance(sample_interval_s, bool)
            or not isinstance(sample_interval_s, (int, float))
            or not (sample_interval_s > 0)
        ):
            raise ValueError(
                f"sample_interval_s must be a positive number of seconds, got {sample_interval_s!r}"
            )
        super().__init__(
            device=f"cuda:{device_id}",
            min_duration_s=min_duration_s,
            subtract_idle=subtract_idle,
            idle_w=idle_w,
            idle_window_s=idle_window_s,
            fallback_reason=fallback_reason,
            clock=clock,
            sleep=sleep,
        )
        self.device_id = device_id
        self.sample_interval_s = float(sample_interval_s)
        pynvml = _import_pynvml()
        with _session(pynvml):
            handle, self.gpu = self._handle(pynvml)
            with _errors(pynvml, f"reading the name of {self.gpu}"):
                self.gpu_name = _name(pynvml.nvmlDeviceGetName(handle))
            has_counter = True
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            except pynvml.NVMLError as exc:
                if not _is(pynvml, exc, "NVMLError_NotSupported"):
                    raise EnergyMeterError(_explain(pynvml, exc, "reading the energy counter")) from exc
                has_counter = False
            if mode == "energy-counter" and not has_counter:
                raise EnergyMeterError(
                    f"{self.gpu} ({self.gpu_name}) has no total-energy counter in NVML (GPUs before Volta lack "
                    "it); use mode='power-sampling' or 'auto'"
                )
            use_counter = has_counter and mode != "power-sampling"
            if not use_counter:
                try:
                    pynvml.nvmlDeviceGetPowerUsage(handle)
                except pynvml.NVMLError as exc:
                    if _is(pynvml, exc, "NVMLError_NotSupported"):
                        raise EnergyMeterError(
                            f"{self.gpu} ({self.gpu_name}) reports neither an energy counter nor its power "
                            "through NVML; obtain energy with 'estimate' (idle_w and tdp_w in the profile)"
                        ) from exc
                    raise EnergyMeterError(_explain(pynvml, exc, "reading the power")) from exc
        self.mode = "energy-counter" if use_counter else "power-sampling"

    def __repr__(self) -> str:
        return (
            f"NvmlEnergy(device_id={self.device_id}, mode={self.mode!r}, gpu_name={self.gpu_name!r}, "
            f"min_duration_s={self.min_duration_s}, subtract_idle={self.subtract_idle})"
        )

    def _handle(self, pynvml: ModuleType) -> tuple[object, str]:
        """The NVML handle of CUDA device ``device_id`` and a description of it."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        if not visible:
            with _errors(pynvml, f"opening GPU {self.device_id} (NVML index {self.device_id})"):
                return pynvml.nvmlDeviceGetHandleByIndex(self.device_id), f"GPU {self.device_id}"
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if self.device_id >= len(entries):
            raise EnergyMeterError(
                f"CUDA_VISIBLE_DEVICES={visible!r} makes {len(entries)} GPU(s) visible, so there is no CUDA "
                f"device {self.device_id}; change device_id or CUDA_VISIBLE_DEVICES"
            )
        entry = entries[self.device_id]
        where = f"GPU {self.device_id} (CUDA_VISIBLE_DEVICES entry {entry!r})"
        with _errors(pynvml, f"opening {where}"):
            if entry.isdigit():
                return pynvml.nvmlDeviceGetHandleByIndex(int(entry)), where
            if entry.startswith("MIG-"):
                raise EnergyMeterError(
                    f"{where} is a MIG instance: NVML meters whole GPUs, not MIG instances; measure on a "
                    "whole GPU or obtain energy with 'estimate'"
                )
            return pynvml.nvmlDeviceGetHandleByUUID(entry), where

    def _start(self) -> object:
        pynvml = _import_pynvml()
        with _errors(pynvml, "initialising NVML"):
            pynvml.nvmlInit()
        try:
            handle, _ = self._handle(pynvml)
            if self.mode == "energy-counter":
                with _errors(pynvml, f"reading the energy counter of {self.gpu}"):
                    return ("counter", pynvml, handle, pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            sampling = _Sampling(pynvml, handle, self.sample_interval_s, self.clock)
            with _errors(pynvml, f"reading the power of {self.gpu}"):
                sampling.start()
            return ("sampling", pynvml, handle, sampling)
        except BaseException:
            pynvml.nvmlShutdown()
            raise

    def _stop(self, token: object, duration_s: float) -> tuple[float, str]:
        kind, pynvml, handle, state = cast(_Token, token)
        try:
            if kind == "counter":
                with _errors(pynvml, f"reading the energy counter of {self.gpu}"):
                    end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                return (end_mj - state) / 1e3, f"NVML total-energy counter of {self.gpu} ({self.gpu_name})"
            with _errors(pynvml, f"reading the power of {self.gpu}"):
                state.stop()
            return state.joules(), (
                f"NVML power of {self.gpu} ({self.gpu_name}) sampled every {self.sample_interval_s * 1e3:g} ms "
                f"({len(state.samples)} samples, trapezoid rule)"
            )
        finally:
            pynvml.nvmlShutdown()

    def _abort(self, token: object) -> None:
        kind, pynvml, _, state = cast(_Token, token)
        try:
            if kind == "sampling":
                state.stop_event.set()
                if state.thread is not None:
                    state.thread.join()
        finally:
            pynvml.nvmlShutdown()
