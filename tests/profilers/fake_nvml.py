"""A faithful fake of nvidia-ml-py's ``pynvml`` module, for testing NVML energy without an NVIDIA GPU.

Names, signatures, units and error classes follow the real module (``tests/profilers/test_nvml_energy.py``
checks them against the installed pynvml): ``nvmlDeviceGetTotalEnergyConsumption`` returns millijoules since
the driver was loaded, ``nvmlDeviceGetPowerUsage`` milliwatts, both as integers; every call but ``nvmlInit``
needs NVML initialised; errors are subclasses of ``NVMLError`` with a ``value`` code, and ``NVMLError(code)``
builds the subclass of that code, as in pynvml.

Each fake GPU draws ``idle_w`` plus ``busy_w`` while ``busy``, plus ``ramp_w_per_s`` watts per second since it
was made, and ``consume(mj)`` adds energy directly, so tests can compute what a meter should report. Its
time is ``clock`` (``time.perf_counter`` unless a test passes a scripted clock, which it then also gives
the meter).
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15

_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


class NVMLError(Exception):
    _valClassMapping: ClassVar[dict[int, type]] = {}

    def __new__(cls, value: int):
        subclass = NVMLError._valClassMapping.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(subclass)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return _STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]  # as in pynvml, which defines __eq__ only


def _error_class(name: str, code: int) -> type:
    def new(cls: type) -> NVMLError:
        return NVMLError.__new__(cls, code)

    cls = type(name, (NVMLError,), {"__new__": new})
    NVMLError._valClassMapping[code] = cls
    return cls


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)

ERROR_CLASSES = {name: value for name, value in dict(globals()).items() if name.startswith("NVMLError")}


@dataclass
class FakeGpu:
    name: str = "NVIDIA Fake 80GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    idle_w: float = 0.0
    busy_w: float = 0.0
    ramp_w_per_s: float = 0.0
    has_energy_counter: bool = True
    has_power: bool = True
    busy: bool = False
    clock: Callable[[], float] = time.perf_counter
    origin_s: float | None = None  # when the GPU was made (``clock`` then, unless given)
    energy_mj: float = 1_000_000.0  # since the (fake) driver was loaded
    last_s: float | None = None
    power_reads: list[float] = field(default_factory=list)  # ``clock`` of every nvmlDeviceGetPowerUsage
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.origin_s is None:
            self.origin_s = self.clock()
        if self.last_s is None:
            self.last_s = self.origin_s

    def power_w(self, now: float) -> float:
        return self.idle_w + (self.busy_w if self.busy else 0.0) + self.ramp_w_per_s * (now - self.origin_s)

    def _advance(self) -> float:
        now = self.clock()
        # Exact integral of the (piecewise linear) power since the last update.
        mean_w = (self.power_w(self.last_s) + self.power_w(now)) / 2
        self.energy_mj += mean_w * (now - self.last_s) * 1e3
        self.last_s = now
        return now

    def set_busy(self, busy: bool) -> None:
        with self.lock:
            self._advance()
            self.busy = busy

    def consume(self, mj: float) -> None:
        with self.lock:
            self._advance()
            self.energy_mj += mj


def make_fake_pynvml(
    gpus: list[FakeGpu], *, library_found: bool = True, driver_loaded: bool = True
) -> types.ModuleType:
    """A module with pynvml's names, backed by ``gpus`` (NVML index = list index)."""
    module = types.ModuleType("pynvml")
    module.__dict__.update(ERROR_CLASSES)
    module.NVMLError = NVMLError
    module.NVML_SUCCESS = NVML_SUCCESS
    module.NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    state = {"init": 0}
    module.init_count = lambda: state["init"]

    def check_init() -> None:
        if state["init"] == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def nvmlInit() -> None:
        if not library_found:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        if not driver_loaded:
            raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
        state["init"] += 1

    def nvmlShutdown() -> None:
        check_init()
        state["init"] -= 1

    def nvmlDeviceGetCount() -> int:
        check_init()
        return len(gpus)

    def nvmlDeviceGetHandleByIndex(index: int) -> FakeGpu:
        check_init()
        if not 0 <= index < len(gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpus[index]

    def nvmlDeviceGetHandleByUUID(uuid: str) -> FakeGpu:
        check_init()
        for gpu in gpus:
            if gpu.uuid == uuid:
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetName(handle: FakeGpu) -> str:
        check_init()
        return handle.name

    def nvmlDeviceGetTotalEnergyConsumption(handle: FakeGpu) -> int:
        check_init()
        if not handle.has_energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        with handle.lock:
            handle._advance()
            return int(handle.energy_mj)

    def nvmlDeviceGetPowerUsage(handle: FakeGpu) -> int:
        check_init()
        if not handle.has_power:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        now = handle.clock()
        handle.power_reads.append(now)
        return round(handle.power_w(now) * 1e3)

    for function in (
        nvmlInit,
        nvmlShutdown,
        nvmlDeviceGetCount,
        nvmlDeviceGetHandleByIndex,
        nvmlDeviceGetHandleByUUID,
        nvmlDeviceGetName,
        nvmlDeviceGetTotalEnergyConsumption,
        nvmlDeviceGetPowerUsage,
    ):
        setattr(module, function.__name__, function)
    return module


FAKED_FUNCTIONS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetHandleByUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerUsage",
)
