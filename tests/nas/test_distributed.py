"""Tests of nas.run._distributed: candidate evaluation on a real local Dask cluster (2 processes, 1 thread each).

One cluster serves the whole module. Objectives defined here reach the workers by reference to this module:
Dask spawns its workers with this process's ``sys.path``, where pytest put this folder.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import dataclasses
import importlib
import os
import pickle
import re
import signal
import socket
import sys
import threading
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


#: How long a wait here may last before it counts as a hang. Nothing waits for time to pass: tasks wait for
#: each other's events, and this bound is only reached when the event never comes.
HANG_S = 600.0


def log_event(path: str, event: str, number: int, kind: str) -> None:
    """Appends one line to the events file shared by the workers. Each line is one ``O_APPEND`` write, so
    lines from several processes never interleave, and their order is the order of the events."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{event} {number} {kind}\n".encode())
    finally:
        os.close(fd)


def read_events(path: str) -> list[tuple[str, str, str]]:
    """``(event, trial number, kind)`` in the order they happened: want (before the lock), enter, leave."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [tuple(line.split()) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def with_partner(events, me: str) -> bool:
    """Whether another trial has been inside at the same time as trial ``me``, since ``me`` entered."""
    inside: set[str] = set()
    entered = False
    for event, number, _ in events:
        if event == "enter":
            inside.add(number)
            entered = entered or number == me
        elif event == "leave":
            inside.discard(number)
        if entered and inside - {me}:
            return True
    return False


def contended(events, me: str, trials: int) -> bool:
    """Whether another trial waits to get in (or is in), or every trial has entered (none is left to wait)."""
    wanted = {n for e, n, _ in events if e == "want"}
    entered = {n for e, n, _ in events if e == "enter"}
    return bool(wanted - entered) or len(entered) == trials or with_partner(events, me)


def wait_until(condition) -> None:
    """Polls ``condition`` until it holds, or gives up after about HANG_S (the test's checks then fail)."""
    for _ in range(int(HANG_S / 0.01)):
        if condition():
            return
        time.sleep(0.01)


def hold(events: str, number: int, kind: str, lock, *, rendezvous: bool, trials: int) -> None:
    """Enters ``lock``, then leaves when another trial is inside too (``rendezvous``: an overlap, wherever the
    lock lets one happen) or else when another trial waits to get in (the lock is contended)."""
    log_event(events, "want", number, kind)
    with lock:
        log_event(events, "enter", number, kind)
        me = str(number)
        if rendezvous:
            wait_until(lambda: with_partner(read_events(events), me))
        else:
            wait_until(lambda: contended(read_events(events), me, trials))
        log_event(events, "leave", number, kind)


def overlaps(events, a: str, b: str) -> bool:
    """Whether a trial of kind ``a`` and another of kind ``b`` were ever inside at the same time."""
    inside: dict[str, str] = {}
    for event, number, kind in events:
        if event == "enter":
            if any((kind, other) in ((a, b), (b, a)) for other in inside.values()):
                return True
            inside[number] = kind
        elif event == "leave":
            inside.pop(number, None)
    return False


@dataclasses.dataclass(frozen=True)
class Hold:
    """Holds the cpu measurement lock (or not), logging to ``events`` when it entered and left."""

    events: str
    locked: bool
    rendezvous: bool = False
    trials: int = 0

    def __call__(self, trial):
        lock = MeasureLock("cpu")() if self.locked else contextlib.nullcontext()
        hold(self.events, trial.number, "measure", lock, rendezvous=self.rendezvous, trials=self.trials)
        return {"a": 0.0, "pid": float(os.getpid())}


@dataclasses.dataclass(frozen=True)
class WorkOrMeasure:
    """Even x: CPU work (holding the shared side when ``shared``); odd x: a CPU measurement. Logged as Hold."""

    events: str
    shared: bool
    rendezvous: bool = False
    trials: int = 0

    def __call__(self, trial):
        lock = MeasureLock("cpu")
        measuring = trial.params["x"] % 2 == 1
        held = lock() if measuring else (lock.working() if self.shared else contextlib.nullcontext())
        kind = "measure" if measuring else "work"
        hold(self.events, trial.number, kind, held, rendezvous=self.rendezvous, trials=self.trials)
        return {"a": 0.0}


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
    """Waits until both workers are up (after a test that killed some) and have imported this module.

    A worker imports this module (and with it torch and nas) when the first task defined here reaches it,
    which takes many seconds on a busy machine: done here, the tests' own waits seldom include it. A worker
    killed by the test before may still be leaving: it is passed over, and its replacement imports the module
    with its first task.
    """
    pool.client.wait_for_workers(2, timeout=HANG_S)
    pool.client.run(importlib.import_module, __name__, on_error="ignore")
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


def test_an_unreachable_scheduler_fails_within_the_timeout(monkeypatch):
    import distributed

    asked = []

    def unreachable(address, timeout=None, **kwargs):  # what distributed.Client does when nobody answers
        asked.append((address, timeout))
        raise OSError(f"Timed out trying to connect to {address} after {timeout} s")

    monkeypatch.setattr(distributed, "Client", unreachable)
    address = "tcp://127.0.0.1:8786"
    message = (
        f"cannot reach the Dask scheduler at {address} within 1.5 s (OSError: Timed out trying to connect to "
        f"{address} after 1.5 s); start one with `dask scheduler`"
    )
    with (
        pytest.raises(ClusterError, match=re.escape(message)),
        executor_for(scheduler="127.0.0.1:8786", connect_timeout_s=1.5),
    ):
        pass
    assert asked == [(address, 1.5)]  # the connection timeout is the one given


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


@pytest.mark.slow
def test_futures_are_concurrent_futures_and_errors_come_back_as_failed_trials(pool):
    ready(pool)
    assert pool.n_parallel == 2 and pool.allowed_failures == 1
    future = pool.executor.submit(square, Trial(number=0, params={"x": 2}))
    assert isinstance(future, cf.Future)
    assert future.result(timeout=HANG_S)["a"] == 4.0
    s = study()
    for x in range(6):
        s.enqueue({"x": x, "y": 0})
    s.optimize(square, n_trials=6, executor=pool.executor, n_parallel=pool.n_parallel)
    by_x = {t.params["x"]: t for t in s.trials}
    assert by_x[3].state is TrialState.FAILED
    assert "ValueError: candidate" in by_x[3].error and "is not buildable" in by_x[3].error
    assert all(by_x[x].state is TrialState.COMPLETE and by_x[x].values == (x * x,) for x in (0, 1, 2, 4, 5))
    assert all(by_x[x].metrics["pid"] != os.getpid() for x in (0, 1, 2, 4, 5))  # ran on the workers


def test_measurements_of_one_device_never_overlap_across_workers(pool, tmp_path):
    ready(pool)

    def events(task, n):
        s = study(objectives=("a",), seed=1)
        s.optimize(task, n_trials=n, executor=pool.executor, n_parallel=2)
        done = [t.metrics for t in s.trials if t.state is TrialState.COMPLETE]
        assert len(done) == n, [t.error for t in s.trials]
        log = read_events(task.events)
        assert sorted(e for e, _, _ in log) == sorted(["want", "enter", "leave"] * n)
        return log, {m["pid"] for m in done}

    # Each holder of the lock leaves only once the other worker waits for it.
    log, pids = events(Hold(str(tmp_path / "locked"), locked=True, trials=6), 6)
    assert len(pids) == 2  # both workers measured
    assert not overlaps(log, "measure", "measure")
    # Without the lock two trials, each waiting inside for the other, do overlap: the check above can fail.
    log, _ = events(Hold(str(tmp_path / "unlocked"), locked=False, rendezvous=True), 2)
    assert overlaps(log, "measure", "measure")


def test_cpu_measurements_never_overlap_other_workers_cpu_work(pool, tmp_path):
    ready(pool)

    def events(task, xs):
        s = study(objectives=("a",), seed=2)
        for x in xs:
            s.enqueue({"x": x, "y": 0})
        s.optimize(task, n_trials=len(xs), executor=pool.executor, n_parallel=2)
        assert [t.state for t in s.trials] == [TrialState.COMPLETE] * len(xs), [t.error for t in s.trials]
        return read_events(task.events)

    # Work and measurements in turn, each leaving once another trial waits to get in.
    log = events(WorkOrMeasure(str(tmp_path / "shared"), shared=True, trials=8), range(8))
    assert {k for _, _, k in log} == {"work", "measure"}
    assert not overlaps(log, "work", "measure")
    # Work itself still runs on both workers at once: two works, each waiting inside for the other, meet.
    log = events(WorkOrMeasure(str(tmp_path / "works"), shared=True, rendezvous=True), (0, 2))
    assert overlaps(log, "work", "work")
    # Without the shared side, work and a measurement meet the same way: the first check can fail.
    log = events(WorkOrMeasure(str(tmp_path / "unshared"), shared=False, rendezvous=True), (0, 1))
    assert overlaps(log, "work", "measure")


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
    assert pool.executor.submit(square, Trial(number=0, params={"x": 5})).result(HANG_S)["a"] == 25


def run_killer(pool, folder, xs):
    s = study()
    for x in xs:
        s.enqueue({"x": x, "y": 0})
    search = cf.Future()  # the search runs beside, so that a hang fails the test instead of stopping it

    def optimize():
        try:
            killer = KillOwnWorker(str(folder))
            s.optimize(killer, n_trials=len(xs), executor=pool.executor, n_parallel=pool.n_parallel)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            search.set_exception(e)
        else:
            search.set_result(None)

    threading.Thread(target=optimize, daemon=True).start()
    try:
        search.result(timeout=HANG_S)
    except cf.TimeoutError:
        pytest.fail(f"the search did not end in {HANG_S:g} s: a killed worker's trial hangs it")
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


@pytest.mark.slow
def test_a_trial_that_kills_every_worker_fails_after_one_retry_and_the_search_goes_on(pool, tmp_path):
    by_x = run_killer(ready(pool), tmp_path, (0, 2, 4, 5))
    always = by_x[0]
    assert always.state is TrialState.FAILED
    assert "KilledWorker" in always.error and "tcp://127.0.0.1:" in always.error  # names the lost worker
    assert attempts(tmp_path, always.number) == 2  # the first attempt and one retry
    assert all(by_x[x].state is TrialState.COMPLETE and by_x[x].values == (x,) for x in (2, 4, 5))
