"""Candidate evaluation on a Dask cluster: executors, evaluators built once per worker, shared device locks.

A search evaluates candidates through a ``concurrent.futures.Executor`` (see :meth:`search.Study.optimize`);
only the driver writes the study storage. :func:`executor_for` gives that executor and the number of
evaluations to keep in flight: in this process by default, a local Dask cluster of ``workers`` processes,
or an existing cluster at ``scheduler``.

The supernet's weights and the data reach each worker once, not once per trial: :meth:`EvaluationPool.objective`
sends an :class:`EvaluatorRecipe` to every worker (a Dask worker plugin, so workers that join or restart later
get it too) and returns a small :class:`RemoteEvaluator` that tasks carry instead; each worker process builds
its :class:`~nas.CandidateEvaluator` from the recipe on its first trial and reuses it for every later one.

Measurements of one device never overlap: evaluators built on workers hold a cluster-wide lock named after
the host and the device (:class:`MeasureLock`) around every on-device measurement. A CPU measurement also
never overlaps other workers' CPU work on the same host: workers hold a host-wide file lock shared while
they score accuracy or export, and exclusively while they measure on the CPU (:meth:`MeasureLock.working`).

A worker that dies mid-trial (killed, out of memory) loses the trial's attempt; Dask's scheduler runs it
again on another worker, and after ``allowed-failures`` further deaths fails it with ``KilledWorker``, an
error that names the last worker lost; the search goes on with the other trials. Clusters started here
allow one retry. A joined cluster keeps its scheduler's setting (Dask's default is 3 retries); start its
scheduler with ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1`` for the same behaviour. Dask charges a
death to every trial the worker held, running or waiting; with one trial in flight per worker thread (the
pool's ``n_parallel``) a trial waits on a busy worker only after another worker died, so a trial can fail
after a single real attempt only when workers die close together.

Dask is optional (``pip install 'hwnas[dask]'``) and imported only when a cluster is asked for.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from hardware_profiles import HardwareProfile
from nas.data._loaders import DataSplits
from nas.run._evaluator import CandidateEvaluator
from nas.run._export import EXPORTERS
from nas.spaces import ElasticSupernet, space_from_dict, space_to_dict
from search import Trial

if TYPE_CHECKING:
    import distributed

__all__ = [
    "ClusterError",
    "EvaluationPool",
    "EvaluatorRecipe",
    "MeasureLock",
    "RemoteEvaluator",
    "WorkerStats",
    "executor_for",
    "measure_device",
]

DASK_EXTRA = "pip install 'hwnas[dask]'"
#: Deaths of workers running one trial that Dask tolerates before the trial fails, on clusters started here.
DEFAULT_ALLOWED_FAILURES = 1
DEFAULT_CONNECT_TIMEOUT_S = 10.0

Objective = Callable[[Trial], Mapping[str, float]]


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


# -- what every worker needs to score candidates -----------------------------------------------------


@dataclass(frozen=True, repr=False)
class EvaluatorRecipe:
    """Everything a worker needs to build a :class:`~nas.CandidateEvaluator`: picklable, sent once per worker.

    Attributes:
        spec: The supernet's space as JSON-ready data (:func:`nas.spaces.space_to_dict`).
        state_dict: The trained supernet's weights and buffers, on the CPU.
        member_states: Those of the further members of an ensemble (``supernet.members``), if any.
        data: The dataset splits (batch-norm recalibration uses ``train``, scoring uses ``val``).
        profile: The hardware profile latency is measured with.
        calib_samples: Training images used to recalibrate batch norm.
        exporter: ONNX exporter, ``"torchscript"`` or ``"dynamo"``.

    Example:
        >>> from hardware_profiles import load_profile
        >>> from nas import Supernet, SupernetSpec, load_dataset
        >>> spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
        >>> recipe = EvaluatorRecipe.from_supernet(
        ...     Supernet(spec), data=load_dataset("digits"), profile=load_profile("local-cpu"), calib_samples=64)
        >>> evaluator = recipe.build()
        >>> 0.0 <= evaluator.score(spec.smallest_arch())["error"] <= 100.0
        True
    """

    spec: Mapping[str, Any]
    state_dict: Mapping[str, torch.Tensor]
    data: DataSplits
    profile: HardwareProfile
    calib_samples: int = 512
    exporter: str = "torchscript"
    #: further keyword arguments of :class:`CandidateEvaluator` (lookup table, latency mode, energy, fine-tuning)
    options: Mapping[str, Any] = field(default_factory=dict)
    member_states: tuple[Mapping[str, torch.Tensor], ...] = ()

    def __post_init__(self) -> None:
        try:
            space_from_dict(self.spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"spec must be a space_to_dict() dict: {e}") from None
        if (
            not isinstance(self.calib_samples, int)
            or isinstance(self.calib_samples, bool)
            or self.calib_samples < 1
        ):
            raise ValueError(f"calib_samples must be an integer >= 1, got {self.calib_samples!r}")
        if self.exporter not in EXPORTERS:
            raise ValueError(f"exporter must be one of {list(EXPORTERS)}, got {self.exporter!r}")
        if not isinstance(self.profile, HardwareProfile):
            raise TypeError(
                f"profile must be a HardwareProfile (see load_profile), got {type(self.profile).__name__}"
            )
        if not isinstance(self.data, DataSplits):
            raise TypeError(f"data must be a DataSplits (see load_dataset), got {type(self.data).__name__}")

    def __repr__(self) -> str:
        return (
            f"EvaluatorRecipe(dataset={self.data.name!r}, profile={self.profile.name!r}, "
            f"tensors={len(self.state_dict)}, members={1 + len(self.member_states)}, calib_samples={self.calib_samples}, exporter={self.exporter!r})"
        )

    @classmethod
    def from_supernet(
        cls,
        supernet: ElasticSupernet | Sequence[ElasticSupernet],
        *,
        data: DataSplits,
        profile: HardwareProfile,
        calib_samples: int = 512,
        exporter: str = "torchscript",
        options: Mapping[str, Any] | None = None,
    ) -> EvaluatorRecipe:
        """The recipe of an evaluator of ``supernet``, or of the members of an ensemble (weights copied to the
        CPU)."""
        members = (supernet,) if isinstance(supernet, ElasticSupernet) else tuple(supernet)
        states = [{k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for m in members]
        return cls(
            spec=space_to_dict(members[0].space),
            state_dict=states[0],
            member_states=tuple(states[1:]),
            data=data,
            profile=profile,
            calib_samples=calib_samples,
            exporter=exporter,
            options=dict(options or {}),
        )

    @classmethod
    def from_evaluator(cls, evaluator: CandidateEvaluator) -> EvaluatorRecipe:
        """The recipe of an evaluator like ``evaluator`` (same supernet, data, profile and settings)."""
        return cls.from_supernet(
            evaluator.members,
            data=evaluator.data,
            profile=evaluator.profile,
            calib_samples=evaluator.calib_samples,
            exporter=evaluator.exporter,
            options=evaluator.settings(),
        )

    def build(
        self,
        *,
        measure_lock: Callable[[], AbstractContextManager[Any]] | None = None,
        work_dir: str | Path | None = None,
    ) -> CandidateEvaluator:
        """A fresh evaluator in this process.

        Args:
            measure_lock: Held around every on-device measurement; by default the :class:`MeasureLock` of
                the profile's device (cluster-wide inside a Dask worker, process-wide elsewhere). Its
                ``working`` method, where it has one, is held around scoring and exporting.
            work_dir: Folder for temporary ONNX files; a new temporary folder by default.
        """
        lock = measure_lock if measure_lock is not None else MeasureLock.for_profile(self.profile)
        space = space_from_dict(self.spec)
        members = []
        for state in (self.state_dict, *self.member_states):
            supernet = space.build_supernet(seed=0)
            supernet.load_state_dict(dict(state))
            members.append(supernet.eval())
        return CandidateEvaluator(
            supernet=members,
            data=self.data,
            profile=self.profile,
            calib_samples=self.calib_samples,
            exporter=self.exporter,
            work_dir=work_dir,
            measure_lock=lock,
            work_lock=getattr(lock, "working", None),
            **dict(self.options),
        )


# -- one device, one measurement at a time -----------------------------------------------------------


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


# -- the worker side: recipes installed by a plugin, evaluators built once ---------------------------


@dataclass
class _Installed:
    recipe: EvaluatorRecipe
    work_dir: Path
    evaluator: CandidateEvaluator | None = None
    builds: int = 0
    trials: int = 0


_installed: dict[str, _Installed] = {}
_installed_guard = threading.Lock()


def _install(token: str, recipe: EvaluatorRecipe, local_directory: str) -> None:
    with _installed_guard:
        old = _installed.pop(token, None)
        if old is not None:
            shutil.rmtree(old.work_dir, ignore_errors=True)
        _installed[token] = _Installed(recipe, Path(local_directory) / f"hwnas-{token}")


def _uninstall(token: str) -> None:
    with _installed_guard:
        entry = _installed.pop(token, None)
    if entry is not None:
        shutil.rmtree(entry.work_dir, ignore_errors=True)


def _evaluator(token: str) -> CandidateEvaluator:
    with _installed_guard:
        entry = _installed.get(token)
        if entry is None:
            raise RuntimeError(
                f"evaluator {token} is not installed in process {os.getpid()} on {socket.gethostname()}: "
                "remote evaluators run only on the Dask workers of the pool that created them"
            )
        if entry.evaluator is None:
            entry.evaluator = entry.recipe.build(work_dir=entry.work_dir)
            entry.builds += 1
        entry.trials += 1
        return entry.evaluator


def _stats(token: str) -> dict[str, Any]:
    with _installed_guard:
        entry = _installed.get(token)
        seconds = dict(entry.evaluator.seconds) if entry is not None and entry.evaluator is not None else {}
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "installed": entry is not None,
            "builds": entry.builds if entry is not None else 0,
            "trials": entry.trials if entry is not None else 0,
            "seconds": seconds,
        }


@cache
def _plugin_type() -> type:
    """The worker plugin class, made on first use so that Dask is imported only when it is used."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class _EvaluatorPlugin(WorkerPlugin):
        """Installs one recipe on every worker, present and future; uninstalls it on teardown."""

        idempotent = False

        def __init__(self, token: str, recipe: EvaluatorRecipe) -> None:
            self.token = token
            self.recipe = recipe

        def setup(self, worker: Any) -> None:
            _install(self.token, self.recipe, worker.local_directory)

        def teardown(self, worker: Any) -> None:
            _uninstall(self.token)

    # Pickled by reference to this module (see __getattr__), so workers rebuild the same class.
    _EvaluatorPlugin.__module__ = __name__
    _EvaluatorPlugin.__qualname__ = "_EvaluatorPlugin"
    return _EvaluatorPlugin


def __getattr__(name: str) -> Any:
    if name == "_EvaluatorPlugin":
        return _plugin_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class RemoteEvaluator:
    """The objective a distributed search submits: a token naming a recipe already on every worker.

    Calling it on a worker scores the trial with that worker's evaluator, built from the recipe on the
    worker's first call. It pickles to a few hundred bytes, whatever the size of the supernet.

    Attributes:
        token: Names the recipe on the workers.
    """

    token: str

    def __call__(self, trial: Trial) -> dict[str, Any]:
        metrics: dict[str, Any] = dict(_evaluator(self.token)(trial))
        # Which process scored the trial: the study keeps it with the trial's metrics.
        metrics["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        return metrics


@dataclass(frozen=True)
class WorkerStats:
    """What one worker process did for one :class:`RemoteEvaluator`.

    Attributes:
        address: The worker's Dask address.
        host: The worker's host name.
        pid: The worker's process id.
        builds: Evaluators built from the recipe in this process (1 once it has scored a trial).
        trials: Trials started in this process.
        seconds: The evaluator's time split (``accuracy``, ``export``, ``latency``), in seconds.
    """

    address: str
    host: str
    pid: int
    builds: int
    trials: int
    seconds: Mapping[str, float] = field(default_factory=dict)


# -- the driver side -----------------------------------------------------------------------------------


class EvaluationPool:
    """Where a search's evaluations run, as :func:`executor_for` yields it.

    Pass ``executor`` and ``n_parallel`` to :meth:`search.Study.optimize`, with the objective that
    :meth:`objective` returns.

    Attributes:
        executor: The executor, or ``None`` to evaluate in this process, one trial at a time.
        n_parallel: Evaluations to keep in flight (the cluster's worker threads, at least 1).
        client: The ``distributed.Client``, or ``None`` in this process.
        allowed_failures: Worker deaths a trial survives before it fails (``None`` when unknown or
            in this process).
        description: One line for logs: where evaluations run.
    """

    def __init__(
        self,
        *,
        executor: cf.Executor | None = None,
        n_parallel: int = 1,
        client: distributed.Client | None = None,
        allowed_failures: int | None = None,
        description: str = "in this process",
    ) -> None:
        if n_parallel < 1:
            raise ValueError(f"n_parallel must be >= 1, got {n_parallel}")
        self.executor = executor
        self.n_parallel = n_parallel
        self.client = client
        self.allowed_failures = allowed_failures
        self.description = description
        self._plugins: list[str] = []

    def __repr__(self) -> str:
        return f"EvaluationPool({self.description}, n_parallel={self.n_parallel})"

    def objective(self, evaluator: CandidateEvaluator | EvaluatorRecipe) -> Objective:
        """The objective to pass to :meth:`search.Study.optimize` with this pool's executor.

        In this process: ``evaluator`` itself (a recipe is built here). On a cluster: the recipe (taken
        from ``evaluator`` when an evaluator is given) is sent once to every worker, present and future, and
        a :class:`RemoteEvaluator` is returned. Each worker builds its own evaluator, so repeated archs and
        latencies are cached per worker, not across them.

        Raises:
            ClusterError: A worker cannot load the recipe (for example hwnas is not installed there).
        """
        if self.client is None:
            return evaluator.build() if isinstance(evaluator, EvaluatorRecipe) else evaluator
        recipe = (
            evaluator if isinstance(evaluator, EvaluatorRecipe) else EvaluatorRecipe.from_evaluator(evaluator)
        )
        token = uuid.uuid4().hex[:16]
        name = f"hwnas-evaluator-{token}"
        try:
            self.client.register_plugin(_plugin_type()(token, recipe), name=name)
        except Exception as e:  # noqa: BLE001 - whatever a worker raised, say which setup is wrong
            raise ClusterError(
                f"the workers cannot load the evaluator ({type(e).__name__}: {e}); every worker needs the same "
                "hwnas, torch and ONNX Runtime as this process"
            ) from None
        self._plugins.append(name)
        return RemoteEvaluator(token)

    def worker_stats(self, objective: RemoteEvaluator) -> dict[str, WorkerStats]:
        """What each live worker did for ``objective``, by worker address (empty in this process)."""
        if self.client is None:
            return {}
        raw = self.client.run(_stats, objective.token)
        return {
            address: WorkerStats(
                address=address,
                host=s["host"],
                pid=s["pid"],
                builds=s["builds"],
                trials=s["trials"],
                seconds=s["seconds"],
            )
            for address, s in raw.items()
            if s["installed"]
        }

    def _release(self) -> None:
        if self.client is None:
            return
        for name in self._plugins:
            with contextlib.suppress(Exception):  # a worker that is gone has nothing to free
                self.client.unregister_worker_plugin(name)
        self._plugins.clear()


@contextlib.contextmanager
def executor_for(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    allowed_failures: int = DEFAULT_ALLOWED_FAILURES,
) -> Iterator[EvaluationPool]:
    """Where to evaluate candidates: in this process, on a local Dask cluster, or on an existing one.

    Args:
        workers: Start a local Dask cluster of this many worker processes (one thread each, no dashboard),
            closed on exit.
        scheduler: Join the cluster of the Dask scheduler at this address (``tcp://HOST:PORT``); the cluster
            stays up on exit, and what this pool installed on its workers is removed.
        connect_timeout_s: Seconds to wait for the scheduler before giving up.
        allowed_failures: For a cluster started here: worker deaths a trial survives (it is retried on
            another worker each time) before it fails with ``KilledWorker``. A joined cluster keeps its
            scheduler's ``distributed.scheduler.allowed-failures``.

    Yields:
        The pool: ``executor`` (``None`` in this process), ``n_parallel`` (the worker threads, at least 1)
        and :meth:`EvaluationPool.objective`.

    Raises:
        ValueError: Both ``workers`` and ``scheduler``, fewer than one worker, or a malformed address.
        ImportError: A cluster was asked for and Dask is not installed (the message names the extra).
        ClusterError: The scheduler cannot be reached within ``connect_timeout_s``, or the cluster cannot
            start.

    Example:
        >>> from search import Choice, Objective, RandomStrategy, Space, Study
        >>> study = Study(space=Space({"x": Choice([1, 2, 3])}), objectives=[Objective("a")],
        ...               strategy=RandomStrategy(seed=0))
        >>> with executor_for() as pool:  # workers=2 or scheduler="tcp://HOST:8786" for Dask
        ...     study.optimize(lambda t: {"a": t.params["x"]}, n_trials=3,
        ...                    executor=pool.executor, n_parallel=pool.n_parallel)
        >>> len(study.trials)
        3
    """
    if workers is not None and scheduler is not None:
        raise ValueError("give workers (start a local Dask cluster) or scheduler (join one), not both")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not connect_timeout_s > 0:
        raise ValueError(f"connect_timeout_s must be > 0, got {connect_timeout_s!r}")
    if not isinstance(allowed_failures, int) or isinstance(allowed_failures, bool) or allowed_failures < 0:
        raise ValueError(f"allowed_failures must be an integer >= 0, got {allowed_failures!r}")
    if scheduler is not None:
        scheduler = _check_address(scheduler)
    if workers is None and scheduler is None:
        yield EvaluationPool()
        return

    distributed = _import_distributed()
    import dask

    cluster = None
    if workers is not None:
        try:
            # The scheduler runs in this process and reads allowed-failures when it starts.
            with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
                cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    scheduler_port=0,
                )
            client = distributed.Client(cluster, timeout=connect_timeout_s)
        except Exception as e:  # noqa: BLE001 - one message, whatever failed
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            raise ClusterError(f"cannot start a local Dask cluster of {workers} workers: {e}") from None
        failures: int | None = allowed_failures
        n_parallel = workers
        description = f"local Dask cluster at {cluster.scheduler_address}, {workers} worker processes"
    else:
        try:
            client = distributed.Client(scheduler, timeout=connect_timeout_s)
        except Exception as e:  # noqa: BLE001 - a refused, silent or foreign peer fails in many ways
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout_s:g} s "
                f"({type(e).__name__}: {e}); start one with `dask scheduler` and check the address and port"
            ) from None
        try:
            nthreads = client.nthreads()
        except BaseException:
            client.close()
            raise
        threads = sum(nthreads.values())
        n_parallel = max(1, threads)
        try:
            # A lambda travels by value: the scheduler's machine need not have hwnas installed.
            failures = int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))
        except Exception:  # noqa: BLE001 - informative only
            failures = None
        description = f"Dask cluster at {scheduler}, {len(nthreads)} workers, {threads} threads"
    executor = client.get_executor(pure=False)
    pool = EvaluationPool(
        executor=executor,
        n_parallel=n_parallel,
        client=client,
        allowed_failures=failures,
        description=description,
    )
    try:
        yield pool
    finally:
        executor.shutdown(wait=False)
        pool._release()
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


def _check_address(address: str) -> str:
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler must be an address like tcp://HOST:8786, got {address!r}")
    address = address.strip()
    if "://" not in address:
        address = f"tcp://{address}"
    protocol, _, location = address.partition("://")
    host, sep, port = location.rpartition(":")
    if protocol not in ("tcp", "tls", "ucx", "ws", "wss") or not sep or not host or not port.isdigit():
        raise ValueError(f"scheduler must be an address like tcp://HOST:8786, got {address!r}")
    return address
