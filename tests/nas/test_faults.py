"""Faults injected into a run: kill -9 at each phase, two processes on one run, damaged files, a full disk.

Each interrupted run is resumed and must end with the results of an uninterrupted run: the same trials (same
candidates, same results, none evaluated twice) and the same front, with its derived files rebuilt from study.db.
Processes are stopped at known points (a wrapped function writes a file and waits to be killed), never after a
guessed delay.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas._errors import RunError, RunLockedError, RuntimeFailure
from nas.run._rebuild import (
    StudyState,
    atomic_write,
    atomic_write_text,
    check_study_file,
    derived_behind,
    prune_models,
)
from nas.run._run_lock import RunLock

CONFIG = """
seed: 2
threads: 1
supernet:
  epochs: 2
  stage_channels: [8, 12]
  stage_strides: [1, 2]
search:
  trials: 6
  population: 2
  objectives: [error, flops]
evaluation:
  calib_samples: 32
tracking:
  enabled: false
"""

#: bound of a wait that counts as a hang; waits end on conditions, not on time
HANG_S = 900.0

# `hwnas` stopped at a known point: STALL_AT="module:attr[.method] COUNT" wraps that function so that its
# COUNT-th call writes STALLED_FILE and waits to be killed (before running, for export and report; after,
# for progress display calls).
STALLING_HWNAS = """
import importlib, os, sys, threading
from pathlib import Path

from nas.cli import main

target, count = os.environ["STALL_AT"].split()
module, _, attr = target.partition(":")
owner = importlib.import_module(module)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, name)
calls = []


def stalled(*args, **kwargs):
    after = name in ("epoch", "trial")
    result = real(*args, **kwargs) if after else None
    calls.append(1)
    if len(calls) == int(count):
        Path(os.environ["STALLED_FILE"]).write_text(str(os.getpid()))
        threading.Event().wait()
    return result if after else real(*args, **kwargs)


setattr(owner, name, stalled)
sys.exit(main(sys.argv[1:]))
"""


def hwnas(*args: str, stall_at: str | None = None, stalled: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "nas.cli", *args]
    if stall_at is not None:
        env.update(STALL_AT=stall_at, STALLED_FILE=str(stalled))
        command = [sys.executable, "-c", STALLING_HWNAS, *args]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(cond, proc: subprocess.Popen) -> None:
    for _ in range(int(HANG_S / 0.05)):
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before the condition held: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no progress in {HANG_S:g} s: it hangs")


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=HANG_S)
    return proc.returncode, err


def trials(run: Path) -> list[tuple]:
    with sqlite3.connect(run / "study.db") as c:
        rows = c.execute("SELECT number, params, state, objective_values FROM trials ORDER BY number").fetchall()
    return [(n, json.loads(p), s, json.loads(v) if v else None) for n, p, s, v in rows]


def trials_so_far(run: Path) -> int:
    """Trials in the study a running search is writing; 0 before its file and tables exist."""
    try:
        return len(trials(run)) if (run / "study.db").is_file() else 0
    except sqlite3.OperationalError:  # the file is there, its tables not yet
        return 0


def front(run: Path) -> list[tuple]:
    pareto = json.loads((run / "pareto.json").read_text())
    return sorted((m["id"], json.dumps(m["arch"], sort_keys=True), m["metrics"]["error"]) for m in pareto["models"])


def assert_same_results(run: Path, reference: Path) -> None:
    assert trials(run) == trials(reference)  # same candidates and results, nothing evaluated twice
    assert front(run) == front(reference)
    pareto = json.loads((run / "pareto.json").read_text())
    n = len(trials(reference))
    assert pareto["study"] == {"trials": n, "finished": n}
    with (run / "trials.csv").open() as fh:
        assert sum(1 for _ in fh) == n + 1
    onnx = sorted(p.name for p in (run / "models").glob("*.onnx"))
    assert onnx == sorted(Path(m["onnx"]).name for m in pareto["models"])  # no stale model left
    assert (run / "report.html").stat().st_mtime >= (run / "pareto.json").stat().st_mtime
    assert not list(run.rglob("*.tmp"))


def search_args(tmp_path: Path, name: str, config: str = CONFIG) -> tuple[str, ...]:
    (tmp_path / "c.yaml").write_text(config)
    return ("search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--name", name)


# -- pieces, fast -------------------------------------------------------------------------------------------
_HOLD = """
import sys, threading
from nas.run._run_lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
threading.Event().wait()
"""


def test_a_second_process_is_refused_with_the_holders_pid_and_a_dead_holder_frees_the_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"process {holder.pid}") as info:
            RunLock(tmp_path).acquire()
        assert info.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunLock(tmp_path) as lock:  # released by the OS when its holder died
        assert lock.held


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_tmp(tmp_path):
    path = tmp_path / "pareto.json"
    path.write_text("old")

    def full(fh):
        fh.write("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(RuntimeFailure, match="No space left on device"):
        atomic_write(path, full)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["pareto.json"]
    atomic_write_text(path, "new")
    assert path.read_text() == "new"


def test_zero_byte_and_truncated_studies_are_refused(tmp_path):
    from search import SQLiteStorage

    db = tmp_path / "study.db"
    check_study_file(tmp_path)  # none yet: a search that has not started
    db.write_bytes(b"")
    with pytest.raises(RunError, match="empty"):
        check_study_file(tmp_path)
    db.unlink()
    storage = SQLiteStorage(db)
    for i in range(200):
        storage.set_meta(f"k{i}", "x" * 200)
    storage.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="not a readable SQLite study"):
        check_study_file(tmp_path)
    assert db.read_bytes() == data[: len(data) // 2]  # left as it was


def test_derived_files_behind_the_study_are_named(tmp_path):
    state = StudyState(trials=3, finished=3, running=0)
    assert set(derived_behind(tmp_path, state)) == {"pareto.json", "trials.csv", "report.html"}
    (tmp_path / "trials.csv").write_text("number\n0\n1\n2\n")
    (tmp_path / "pareto.json").write_text(json.dumps({"study": {"trials": 2, "finished": 2}, "models": []}))
    (tmp_path / "report.html").write_text("")
    os.utime(tmp_path / "report.html", (time.time() + 10, time.time() + 10))
    assert derived_behind(tmp_path, state) == ["pareto.json"]
    (tmp_path / "pareto.json").write_text(json.dumps({"study": state.signature(), "models": [{"onnx": "models/1.onnx"}]}))
    os.utime(tmp_path / "report.html", (time.time() + 20, time.time() + 20))
    assert derived_behind(tmp_path, state) == ["models/"]


def test_models_no_longer_on_the_front_are_removed(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("1.onnx", "2.onnx", "2.int8.onnx", "7.onnx", "notes.txt", "mine.onnx"):
        (models / name).write_text("")
    removed = prune_models(tmp_path, [{"onnx": "models/2.onnx", "int8": {"onnx": "models/2.int8.onnx"}}])
    assert sorted(p.name for p in removed) == ["1.onnx", "7.onnx"]
    assert sorted(p.name for p in models.iterdir()) == ["2.int8.onnx", "2.onnx", "mine.onnx", "notes.txt"]


def test_a_hung_candidate_is_killed_recorded_failed_and_the_search_goes_on(tmp_path):
    from nas.run._killable import KillableExecutor
    from search import Choice, Objective, RandomStrategy, Space, Study, TrialState

    marker = tmp_path / "hung"

    def objective(trial):
        if trial.number == 1:
            marker.write_text(str(os.getpid()))
            threading_event_wait()
        return {"a": float(trial.params["x"])}

    study = Study(space=Space({"x": Choice([1, 2, 3])}), objectives=[Objective("a")], strategy=RandomStrategy(seed=0))
    with KillableExecutor() as ex:
        study.optimize(objective, n_trials=4, executor=ex, n_parallel=1, trial_timeout_s=1.0)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 3 and study.trials[1].state is TrialState.FAILED
    assert "TimeoutError" in (study.trials[1].error or "")
    pid = int(marker.read_text())
    for _ in range(int(HANG_S / 0.05)):  # the child that hung is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the hung evaluation still runs")


def threading_event_wait() -> None:
    import threading

    threading.Event().wait()


# -- whole runs, killed at each phase -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    code, err = finish(hwnas(*search_args(out, "ref")))
    assert code == 0, err
    return out / "ref"


def _kill_at(tmp_path: Path, args: tuple[str, ...], stall_at: str) -> None:
    flag = tmp_path / f"stalled-{len(list(tmp_path.glob('stalled-*')))}"
    p = hwnas(*args, stall_at=stall_at, stalled=flag)
    wait_for(flag.is_file, p)
    p.send_signal(signal.SIGKILL)
    p.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "stall_at",
    [
        "nas.run._progress:ProgressReporter.epoch 1",  # training
        "nas.run._progress:ProgressReporter.trial 3",  # search
        "nas.run._experiment:export_results 1",  # between the last trial and the export
        "nas.report:write_report 1",  # after the export, before the report
    ],
    ids=["training", "search", "export", "report"],
)
def test_kill_9_at_each_phase_then_resume_gives_the_uninterrupted_results(reference, tmp_path, stall_at):
    run = tmp_path / "crash"
    _kill_at(tmp_path, search_args(tmp_path, "crash"), stall_at)
    code, err = finish(hwnas("search", "--resume", str(run)))
    assert code == 0, err
    assert_same_results(run, reference)
    code, err = finish(hwnas("search", "--resume", str(run)))  # now up to date: nothing to do, nothing changed
    assert code == 2 and "up to date" in err and "hwnas report" in err


@pytest.mark.slow
def test_extension_killed_before_export_is_repaired_by_the_next_resume(reference, tmp_path):
    run = tmp_path / "ext"
    code, err = finish(hwnas(*search_args(tmp_path, "ext", CONFIG.replace("trials: 6", "trials: 4"))))
    assert code == 0, err
    _kill_at(tmp_path, ("search", "--resume", str(run), "--trials", "6"), "nas.run._experiment:export_results 1")
    assert json.loads((run / "pareto.json").read_text())["study"]["trials"] == 4  # behind the study
    code, err = finish(hwnas("search", "--resume", str(run)))
    assert code == 0, err
    assert_same_results(run, reference)


@pytest.mark.slow
def test_a_second_process_on_a_searching_run_is_refused_and_changes_nothing(reference, tmp_path):
    run = tmp_path / "two"
    flag = tmp_path / "stalled"
    first = hwnas(*search_args(tmp_path, "two"), stall_at="nas.run._progress:ProgressReporter.trial 2", stalled=flag)
    try:
        wait_for(flag.is_file, first)
        before = trials(run)
        code, err = finish(hwnas("search", "--resume", str(run)))
        assert code == 2 and f"process {first.pid}" in err and len(err.strip().splitlines()) == 1, err
        code, err = finish(hwnas(*search_args(tmp_path, "two")))  # the same new run, started again
        assert code == 2 and f"process {first.pid}" in err, err
        assert trials(run) == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    code, err = finish(hwnas("search", "--resume", str(run)))
    assert code == 0, err
    assert_same_results(run, reference)


@pytest.mark.slow
def test_a_zero_byte_study_in_a_finished_run_is_refused_and_nothing_is_rerun(reference, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    (run / ".lock").unlink(missing_ok=True)
    models = {p.name: p.read_bytes() for p in (run / "models").glob("*.onnx")}
    (run / "study.db").write_bytes(b"")
    for extra in ("study.db-wal", "study.db-shm"):
        (run / extra).unlink(missing_ok=True)
    code, err = finish(hwnas("search", "--resume", str(run)))
    assert code == 2 and "study.db is empty" in err and len(err.strip().splitlines()) == 1, err
    assert (run / "study.db").stat().st_size == 0
    assert {p.name: p.read_bytes() for p in (run / "models").glob("*.onnx")} == models


@pytest.mark.slow
def test_ctrl_c_stops_a_search_within_the_wait_bound(tmp_path):
    run = tmp_path / "int"
    flag = tmp_path / "stalled"
    p = hwnas(*search_args(tmp_path, "int", CONFIG.replace("trials: 6", "trials: 5000")))
    wait_for(lambda: trials_so_far(run) >= 2, p)
    p.send_signal(signal.SIGINT)
    code, err = finish(p)
    assert code == 130 and "Traceback" not in err and f"--resume {run}" in err
    assert not flag.exists()


@pytest.mark.slow
def test_no_feasible_model_is_said_plainly_and_exported_only_when_asked(tmp_path):
    run = tmp_path / "inf"
    config = CONFIG.replace("trials: 6", "trials: 3").replace("objectives: [error, flops]", "objectives: [error, flops]\n  constraints: ['flops <= 1']")
    code, err = finish(hwnas(*search_args(tmp_path, "inf", config)))
    assert code == 4 and "no feasible model" in err and "Traceback" not in err, err
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["feasible"] is False and pareto["models"] == []
    assert not list((run / "models").glob("*.onnx"))
    code, err = finish(hwnas("search", "--resume", str(run), "--export-infeasible"))
    assert code == 4 and "exported (marked infeasible)" in err, err
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["feasible"] is False and pareto["models"]
    assert all(m["feasible"] is False for m in pareto["models"])
    assert all((run / m["onnx"]).is_file() for m in pareto["models"])
