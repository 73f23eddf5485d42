"""One measurement per device at a time: locks named after the host and the device, process-wide or cluster-wide, and the host-wide CPU lock that keeps scoring off a CPU being measured."""


from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from hardware_profiles import HardwareProfile

__all__ = ["DASK_EXTRA", "ClusterError", "MeasureLock", "MissingDaskError", "measure_device"]


DASK_EXTRA = "pip install 'hwnas[dask]'"


class ClusterError(RuntimeError):
    """A Dask cluster cannot be started, reached or used; the message says what to check."""


class MissingDaskError(ClusterError, ImportError):
    """Dask is not installed; the message names the extra to install."""


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError as e:
        raise MissingDaskError(
            f"evaluating on several processes or machines needs Dask: {DASK_EXTRA} ({e})"
        ) from None
    return distributed


def measure_device(profile: HardwareProfile) -> str:
    """The physical device a profile measures on, as named in measurement locks.

    ``"cpu"`` for CPU profiles; ``"cuda:<id>"`` for CUDA ones, where ``<id>`` is the profile's ``device_id``
    mapped through ``CUDA_VISIBLE_DEVICES`` when that is set, so that workers pinned to different GPUs
    (each seeing its GPU as device 0) do not wait for each other.

    Example:
        >>> measure_device(HardwareProfile(name="cpu"))
        'cpu'
    """
    if profile.device != "cuda":
        return profile.device
    options = profile.provider_options[0] if profile.provider_options else {}
    index = int(options.get("device_id", 0))
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return f"cuda:{visible[index] if index < len(visible) else index}"


_local_locks: dict[str, threading.Lock] = {}


_dask_locks: dict[str, Any] = {}


_locks_guard = threading.Lock()


@dataclass(frozen=True)
class MeasureLock:
    """A picklable ``measure_lock`` for :class:`~nas.CandidateEvaluator`: one measurement per device at a time.

    Calling it returns a context manager that holds, inside a Dask worker, the cluster-wide
    ``distributed.Lock`` named :meth:`name` (``hwnas-measure-<host>-<device>``), shared by every worker of
    that host; anywhere else a lock shared by the threads of this process. Dask's locks are leases: the lock
    of a worker that dies while measuring is freed after ``distributed.scheduler.locks.lease-timeout``
    (30 s by default).

    Args:
        device: Device name, as :func:`measure_device` gives it (``"cpu"``, ``"cuda:0"``).

    Example:
        >>> lock = MeasureLock("cpu")
        >>> with lock():
        ...     pass
        >>> lock.name().endswith("-cpu")
        True
    """

    device: str

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(
                f"device must be a non-empty string such as 'cpu' or 'cuda:0', got {self.device!r}"
            )

    @classmethod
    def for_profile(cls, profile: HardwareProfile) -> MeasureLock:
        """The lock of the device ``profile`` measures on."""
        return cls(measure_device(profile))

    def name(self) -> str:
        """The lock's name on a Dask cluster: one per host and device."""
        return f"hwnas-measure-{socket.gethostname()}-{self.device}"

    def __call__(self) -> AbstractContextManager[Any]:
        return self._held()

    def working(self) -> AbstractContextManager[Any]:
        """Held around CPU work that would disturb a CPU measurement on this host (scoring, exporting).

        Inside a Dask worker, with a CPU device, it holds the host's CPU file lock shared: any number of
        workers work at once, but a CPU measurement (which holds it exclusively) waits until they are done,
        and they wait for it. Elsewhere, or for a GPU, it holds nothing.
        """
        if self.device != "cpu" or not _in_dask_worker():
            return contextlib.nullcontext()
        return _host_cpu_lock().held(exclusive=False)

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        lock = self._lock()
        lock.acquire()
        try:
            if self.device == "cpu" and _in_dask_worker():
                with _host_cpu_lock().held(exclusive=True):
                    yield
            else:
                yield
        finally:
            lock.release()

    def _lock(self) -> Any:
        name = self.name()
        if _in_dask_worker():
            with _locks_guard:
                lock = _dask_locks.get(name)
                if lock is None:
                    lock = _dask_locks[name] = sys.modules["distributed"].Lock(name)
                return lock
        with _locks_guard:
            return _local_locks.setdefault(name, threading.Lock())


class _HostCpuLock:
    """A read/write lock shared by every process of this host and user: ``flock`` on one file.

    Shared holders are workers scoring or exporting; the exclusive holder is a worker measuring on the CPU.
    The kernel frees the lock of a process that dies. One file descriptor per process, and one holder per
    process at a time (``held`` is not re-entrant; a process with one thread per worker never nests it).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def held(self, *, exclusive: bool) -> Iterator[None]:
        import fcntl

        with self._guard:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@cache
def _host_cpu_lock() -> _HostCpuLock:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return _HostCpuLock(Path(tempfile.gettempdir()) / f"hwnas-cpu-{uid}.lock")


def _in_dask_worker() -> bool:
    if "distributed" not in sys.modules:  # never imported: this cannot be a Dask worker
        return False
    try:
        sys.modules["distributed"].get_worker()
    except ValueError:
        return False
    return True
