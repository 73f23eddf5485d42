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
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.run._evaluator import CandidateEvaluator
from nas.run._locks import ClusterError, _import_distributed
from nas.run._recipe import EvaluatorRecipe
from search import Trial

__all__ = ["DEFAULT_ALLOWED_FAILURES", "DEFAULT_CONNECT_TIMEOUT_S", "EvaluationPool", "Objective", "RemoteEvaluator", "WorkerStats", "executor_for"]


if TYPE_CHECKING:
    import distributed


#: Deaths of workers running one trial that Dask tolerates before the trial fails, on clusters started here.
DEFAULT_ALLOWED_FAILURES = 1


DEFAULT_CONNECT_TIMEOUT_S = 10.0


Objective = Callable[[Trial], Mapping[str, float]]


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
