"""Tests of nas.run._distributed: candidate evaluation on a real local Dask cluster (2 processes, 1 thread each).

One cluster serves the whole module. Objectives defined here reach the workers by reference to this module:
Dask spawns its workers with this process's ``sys.path``, where pytest put this folder.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import dataclasses
import itertools
import os
import pickle
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

pytest.importorskip("distributed")

import nas.run._distributed
from hardware_profiles import load_profile
from nas import Supernet, SupernetSpec, load_dataset
from nas.run._distributed import RemoteEvaluator, executor_for
from nas.run._locks import ClusterError, MeasureLock, measure_device
from nas.run._recipe import EvaluatorRecipe
from search import Choice, Integer, Objective, RandomStrategy, Space, Study, Trial, TrialState

SPACE = Space({"x": Integer(0, 9), "y": Choice([0, 1])})


def square(trial):
    x = trial.params["x"]
    if x == 3:
        raise ValueError(f"candidate {trial.number} is not buildable")
    return {"a": float(x * x), "pid": float(os.getpid())}


@dataclasses.dataclass(frozen=True)
class Hold:
    """Holds the cpu measurement lock (or not) for a while and reports when it held it."""

    locked: bool
    seconds: float = 0.25

    def __call__(self, trial):
        lock = MeasureLock("cpu")() if self.locked else contextlib.nullcontext()
        with lock:
            enter = time.time()
            time.sleep(self.seconds)
            leave = time.time()
        return {"a": 0.0, "enter": enter, "leave": leave, "pid": float(os.getpid())}


@dataclasses.dataclass(frozen=True)
class WorkOrMeasure:
    """Even x: CPU work (holding the shared side when ``shared``); odd x: a CPU measurement."""

    shared: bool

    def __call__(self, trial):
        lock = MeasureLock("cpu")
        measuring = trial.params["x"] % 2 == 1
        held = lock() if measuring else (lock.working() if self.shared else contextlib.nullcontext())
        with held:
            enter = time.time()
            time.sleep(0.1 if measuring else 0.3)
            leave = time.time()
        return {"a": 0.0, "enter": enter, "leave": leave, "measuring": float(measuring)}


@dataclasses.dataclass(frozen=True)
class KillOwnWorker:
    """Kills its own worker process: on every attempt for x == 0, on the first attempt only for x == 1."""

    marker_dir: str

    def __call__(self, trial):
        x = trial.params["x"]
        folder = Path(self.marker_dir)
        previous = len(list(folder.glob(f"{trial.number}-*")))
        (folder / f"{trial.number}-{uuid.uuid4().hex}").write_text(str(os.getpid()))
        if x == 0 or (x == 1 and previous == 0):
            os.kill(os.getpid(), signal.SIGKILL)
        return {"a": float(x)}


def attempts(folder: Path, number: int) -> int:
    return len(list(folder.glob(f"{number}-*")))


def study(objectives=("a",), seed=0):
    return Study(
        space=SPACE, objectives=[Objective(n) for n in objectives], strategy=RandomStrategy(seed=seed)
    )


@pytest.fixture(scope="module")
def pool():
    with executor_for(workers=2) as p:
        yield p


def ready(pool):
    """Waits until both workers are up (after a test that killed some)."""
    pool.client.wait_for_workers(2, timeout=60)
    return pool


# -- in this process, arguments, errors --------------------------------------------------------------


def test_in_process_pool_needs_no_dask_and_a_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with executor_for() as p:
        assert p.executor is None and p.n_parallel == 1 and p.client is None
        s = study()
        s.optimize(square, n_trials=4, executor=p.executor, n_parallel=p.n_parallel)
        assert len(s.trials) == 4
    with pytest.raises(ImportError, match=r"hwnas\[dask\]"), executor_for(workers=2):
        pass


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, "not both"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"workers": True}, "workers must be an integer >= 1"),
        ({"scheduler": "localhost"}, "tcp://HOST:8786"),
        ({"scheduler": "tcp://:8786"}, "tcp://HOST:8786"),
        ({"scheduler": "tcp://127.0.0.1:8786", "connect_timeout_s": 0}, "connect_timeout_s"),
        ({"workers": 1, "allowed_failures": -1}, "allowed_failures"),
    ],
)
def test_arguments_are_checked_at_once(kwargs, message):
    with pytest.raises(ValueError, match=message), executor_for(**kwargs):
        pass


def test_an_unreachable_scheduler_fails_within_the_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.perf_counter()
    message = f"cannot reach the Dask scheduler at {address} within 1 s"
    with (
        pytest.raises(ClusterError, match=message),
        executor_for(scheduler=f"127.0.0.1:{port}", connect_timeout_s=1),
    ):
        pass
    assert time.perf_counter() - t0 < 10.0


def test_measure_lock_names_host_and_device_and_maps_visible_gpus(monkeypatch):
    profile = load_profile("local-cpu")
    assert MeasureLock.for_profile(profile).name() == f"hwnas-measure-{socket.gethostname()}-cpu"
    gpu = profile.replace(name="gpu", device="cuda", providers=("CUDAExecutionProvider",), quiet_gate=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert measure_device(gpu) == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert measure_device(gpu) == "cuda:2"
    gpu1 = gpu.replace(provider_options=({"device_id": 1},))
    assert measure_device(gpu1) == "cuda:3"
    # Picklable, and in this process a lock of its own: the profilers' per-process device lock is not
    # re-entered (which would deadlock) while the measurement lock is held.
    lock = pickle.loads(pickle.dumps(MeasureLock("cpu")))
    from profilers import device_lock

    with lock():
        assert device_lock("cpu").acquire(timeout=1)
        device_lock("cpu").release()


@pytest.mark.parametrize("module", ["_distributed", "_locks", "_recipe"])
def test_the_modules_import_dask_only_inside_functions(module):
    path = Path(nas.run._distributed.__file__).with_name(f"{module}.py")
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    guarded = [n for n in tree.body if isinstance(n, ast.If)]  # `if TYPE_CHECKING:` blocks
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
    assert names & {"nas", "hardware_profiles"}  # the check sees the module's imports
    assert not names & {"dask", "distributed"}, names
    assert all("TYPE_CHECKING" in ast.unparse(n.test) for n in guarded)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"calib_samples": 0}, "calib_samples must be an integer >= 1"),
        ({"exporter": "tflite"}, "exporter must be one of"),
        ({"spec": {"stage_channels": [8], "stage_strides": [1, 2]}}, "spec must be a space_to_dict"),
    ],
)
def test_recipe_arguments_are_checked(change, message):
    spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
    good = {"spec": spec.to_dict(), "state_dict": {}, "data": None, "profile": load_profile("local-cpu")}
    with pytest.raises(ValueError, match=message):
        EvaluatorRecipe(**{**good, **change})
    with pytest.raises(TypeError, match="data must be a DataSplits"):
        EvaluatorRecipe(**good)


# -- on the cluster ------------------------------------------------------------------------------------


def test_futures_are_concurrent_futures_and_errors_come_back_as_failed_trials(pool):
    ready(pool)
    assert pool.n_parallel == 2 and pool.allowed_failures == 1
    future = pool.executor.submit(square, Trial(number=0, params={"x": 2}))
    assert isinstance(future, cf.Future)
    assert future.result(timeout=30)["a"] == 4.0
    s = study()
    for x in range(6):
        s.enqueue({"x": x, "y": 0})
    s.optimize(square, n_trials=6, executor=pool.executor, n_parallel=pool.n_parallel)
    by_x = {t.params["x"]: t for t in s.trials}
    assert by_x[3].state is TrialState.FAILED
    assert "ValueError: candidate" in by_x[3].error and "is not buildable" in by_x[3].error
    assert all(by_x[x].state is TrialState.COMPLETE and by_x[x].values == (x * x,) for x in (0, 1, 2, 4, 5))
    assert all(by_x[x].metrics["pid"] != os.getpid() for x in (0, 1, 2, 4, 5))  # ran on the workers


def test_measurements_of_one_device_never_overlap_across_workers(pool):
    ready(pool)

    def intervals(locked):
        s = study(objectives=("a",), seed=1)
        s.optimize(Hold(locked), n_trials=6, executor=pool.executor, n_parallel=2)
        done = [t.metrics for t in s.trials if t.state is TrialState.COMPLETE]
        assert len(done) == 6
        return sorted((m["enter"], m["leave"]) for m in done), {m["pid"] for m in done}

    spans, pids = intervals(locked=True)
    assert len(pids) == 2  # both workers measured
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    # Without the lock the same work does overlap: the check above can fail.
    spans, _ = intervals(locked=False)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_cpu_measurements_never_overlap_other_workers_cpu_work(pool):
    ready(pool)

    def spans(shared):
        s = study(objectives=("a",), seed=2)
        for x in (0, 1, 2, 3, 4, 5, 6, 7):
            s.enqueue({"x": x, "y": 0})
        s.optimize(WorkOrMeasure(shared), n_trials=8, executor=pool.executor, n_parallel=2)
        done = [t.metrics for t in s.trials if t.state is TrialState.COMPLETE]
        assert len(done) == 8
        work = [(m["enter"], m["leave"]) for m in done if not m["measuring"]]
        measure = [(m["enter"], m["leave"]) for m in done if m["measuring"]]
        return work, measure

    def overlaps(a, b):
        return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)

    work, measure = spans(shared=True)
    assert not overlaps(work, measure)
    assert overlaps(work, work)  # work itself still runs on both workers at once
    # Without the shared side, work and measurements do overlap: the check above can fail.
    work, measure = spans(shared=False)
    assert overlaps(work, measure)


def test_the_work_lock_is_free_outside_dask_workers():
    lock = MeasureLock("cpu")
    with lock.working(), lock.working():  # nothing held: it nests
        pass
    assert isinstance(lock.working(), contextlib.nullcontext)
    assert isinstance(MeasureLock("cuda:0").working(), contextlib.nullcontext)


def test_real_evaluator_on_workers_matches_in_process_and_is_built_once_per_worker(pool, tmp_path):
    ready(pool)
    data = load_dataset("digits", seed=0)
    spec = SupernetSpec.for_input(
        data.in_channels, data.image_size, data.num_classes, stage_channels=(8, 12), stage_strides=(1, 2),
        head_channels=32,
    )  # fmt: skip
    profile = load_profile("local-cpu").replace(warmup_runs=2, timed_runs=30)
    recipe = EvaluatorRecipe.from_supernet(
        Supernet(spec, seed=0), data=data, profile=profile, calib_samples=64
    )
    remote = pool.objective(recipe)
    assert isinstance(remote, RemoteEvaluator)
    # Tasks carry a token, never the weights or the data.
    assert len(pickle.dumps(remote)) < 500
    assert len(pickle.dumps(recipe)) > 100_000

    s = Study(
        space=spec.search_space(),
        objectives=[Objective("error"), Objective("latency_ms")],
        strategy=RandomStrategy(seed=3),
    )
    n = 4
    s.optimize(remote, n_trials=n, executor=pool.executor, n_parallel=pool.n_parallel)
    assert [t.state for t in s.trials] == [TrialState.COMPLETE] * n, [t.error for t in s.trials]

    local = recipe.build(work_dir=tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the workers: the same kernels, and no fight with them for the cores
    try:
        reference = [local.score(spec.arch_from_params(t.params), t.fidelity) for t in s.trials]
    finally:
        torch.set_num_threads(threads)
    for t, expected in zip(s.trials, reference):
        assert t.metrics["error"] == expected["error"]
        assert t.metrics["params"] == expected["params"] and t.metrics["flops"] == expected["flops"]
        assert t.metrics["latency_ms"] > 0

    stats = pool.worker_stats(remote)
    assert len(stats) == 2 and sum(w.trials for w in stats.values()) == n
    assert all(w.builds == 1 for w in stats.values() if w.trials > 0)
    assert any(w.trials > 1 for w in stats.values())  # reused, not rebuilt
    assert all(w.seconds.get("accuracy", 0) > 0 for w in stats.values() if w.trials > 0)


def test_a_joined_cluster_uses_its_threads_and_stays_up(pool):
    ready(pool)
    address = pool.client.scheduler.address
    with executor_for(scheduler=address) as joined:
        assert joined.n_parallel == 2 and joined.allowed_failures == 1
        assert address in joined.description
        s = study()
        s.optimize(square, n_trials=4, executor=joined.executor, n_parallel=joined.n_parallel)
        assert len(s.trials) == 4
    assert pool.executor.submit(square, Trial(number=0, params={"x": 5})).result(30)["a"] == 25


def run_killer(pool, folder, xs):
    s = study()
    for x in xs:
        s.enqueue({"x": x, "y": 0})
    t0 = time.perf_counter()
    s.optimize(
        KillOwnWorker(str(folder)), n_trials=len(xs), executor=pool.executor, n_parallel=pool.n_parallel
    )
    assert time.perf_counter() - t0 < 60  # never hangs
    assert len(s.trials) == len(xs) and all(t.state.finished for t in s.trials)  # never lost
    return {t.params["x"]: t for t in s.trials}


def test_a_trial_whose_worker_is_killed_completes_on_retry(pool, tmp_path):
    by_x = run_killer(ready(pool), tmp_path, (1, 2, 4))
    once = by_x[1]
    assert once.state is TrialState.COMPLETE and once.values == (1.0,)
    assert attempts(tmp_path, once.number) == 2
    pids = {p.read_text() for p in tmp_path.glob(f"{once.number}-*")}
    assert len(pids) == 2  # the retry ran in another worker process
    assert all(
        by_x[x].state is TrialState.COMPLETE and attempts(tmp_path, by_x[x].number) == 1 for x in (2, 4)
    )


def test_a_trial_that_kills_every_worker_fails_after_one_retry_and_the_search_goes_on(pool, tmp_path):
    by_x = run_killer(ready(pool), tmp_path, (0, 2, 4, 5))
    always = by_x[0]
    assert always.state is TrialState.FAILED
    assert "KilledWorker" in always.error and "tcp://127.0.0.1:" in always.error  # names the lost worker
    assert attempts(tmp_path, always.number) == 2  # the first attempt and one retry
    assert all(by_x[x].state is TrialState.COMPLETE and by_x[x].values == (x,) for x in (2, 4, 5))
