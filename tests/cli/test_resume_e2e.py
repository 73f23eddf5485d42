"""A search killed with SIGKILL (or stopped with Ctrl-C) and resumed ends as if it had never stopped."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# error and FLOPs are deterministic for a seed, so an interrupted run can be compared trial by trial.
CONFIG = """
seed: 2
threads: 1
supernet:
  epochs: 2
  batch_size: 128
  stage_channels: [8, 12]
  stage_strides: [1, 2]
search:
  trials: 12
  population: 4
  objectives: [error, flops]
evaluation:
  calib_samples: 64
tracking:
  enabled: false
"""

pytestmark = pytest.mark.slow

#: How long a wait here may last before it counts as a hang; the tests wait for events, not for time.
HANG_S = 900.0

# `hwnas` whose progress display stops the search at a known point: once it has shown STALL_AT's count of
# epochs or trials ("epoch 1", "trial 6"), the process writes STALLED_FILE and waits there to be killed.
STALLING_HWNAS = """
import os, sys, threading
from pathlib import Path

from nas.cli import main
from nas.run._progress import ProgressReporter

method, count = os.environ["STALL_AT"].split()
show = getattr(ProgressReporter, method)
shown = []


def show_then_stall(self, *args, **kwargs):
    show(self, *args, **kwargs)
    shown.append(args)
    if len(shown) == int(count):
        Path(os.environ["STALLED_FILE"]).write_text(str(os.getpid()))
        threading.Event().wait()


setattr(ProgressReporter, method, show_then_stall)
sys.exit(main(sys.argv[1:]))
"""


def hwnas(*args: str, stall_at: str | None = None, stalled: Path | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "nas.cli", *args]
    if stall_at is not None:
        env.update(STALL_AT=stall_at, STALLED_FILE=str(stalled))
        command = [sys.executable, "-c", STALLING_HWNAS, *args]
    # As from a terminal: a suite started in the background of a non-interactive shell inherits SIGINT
    # ignored, and Python keeps an ignored SIGINT ignored, so Ctrl-C would never reach the search.
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kw,
    )


def finished(run: Path) -> int:
    db = run / "study.db"
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as c:
            return int(c.execute("SELECT COUNT(*) FROM trials WHERE state != 'RUNNING'").fetchone()[0])
    except sqlite3.Error:
        return 0


def trials(run: Path) -> list[tuple]:
    with sqlite3.connect(run / "study.db") as c:
        rows = c.execute(
            "SELECT number, params, state, objective_values FROM trials ORDER BY number"
        ).fetchall()
    return [(n, json.loads(p), s, json.loads(v) if v else None) for n, p, s, v in rows]


def wait_for(cond, proc: subprocess.Popen) -> None:
    """Polls ``cond`` until it holds; fails when the search ends first, or after about HANG_S (a hang)."""
    for _ in range(int(HANG_S / 0.05)):
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the search ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the search did not get there in {HANG_S:g} s: it hangs")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    (out / "c.yaml").write_text(CONFIG)
    p = hwnas("search", "--config", str(out / "c.yaml"), "--out", str(out), "--name", "ref")
    _, err = p.communicate(timeout=HANG_S)
    assert p.returncode == 0, err
    return out / "ref"


def test_kill_9_during_training_and_search_then_resume_gives_the_same_study(reference, tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    run = tmp_path / "crash"
    args = ("search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--name", "crash")

    p = hwnas(*args, stall_at="epoch 1", stalled=tmp_path / "stalled-1")  # killed after the first epoch
    wait_for((tmp_path / "stalled-1").is_file, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert torch.load(run / "supernet.pt", weights_only=True)["epoch"] == 1 and finished(run) == 0

    # killed in the middle of the search, after its 6th trial
    p = hwnas("search", "--resume", str(run), stall_at="trial 6", stalled=tmp_path / "stalled-2")
    wait_for((tmp_path / "stalled-2").is_file, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert finished(run) == 6

    p = hwnas("search", "--resume", str(run))
    _, err = p.communicate(timeout=HANG_S)
    assert p.returncode == 0, err

    got, want = trials(run), trials(reference)
    assert [t[:2] for t in got] == [t[:2] for t in want]  # the same candidates, in the same order
    assert got == want  # and the same results: nothing lost, nothing evaluated twice
    def front(r):
        return sorted((m["id"], m["metrics"]["error"]) for m in json.loads((r / "pareto.json").read_text())["models"])

    assert front(run) == front(reference)


def test_ctrl_c_keeps_the_study_and_says_how_to_resume(tmp_path):
    # More trials than can possibly finish before the signal arrives, so that the search is always mid-way.
    (tmp_path / "c.yaml").write_text(CONFIG.replace("trials: 12", "trials: 5000"))
    run = tmp_path / "int"
    p = hwnas("search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--name", "int")
    wait_for(lambda: finished(run) >= 2, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=HANG_S)
    assert p.returncode == 130
    assert f"--resume {run}" in err and "Traceback" not in err
    states = [t[2] for t in trials(run)]
    assert states.count("COMPLETE") >= 2 and set(states) <= {"COMPLETE", "RUNNING"}


def test_resume_refuses_a_changed_space_and_a_finished_run(reference):
    from nas.cli import main

    before = (reference / "study.db").read_bytes()
    assert main(["search", "--resume", str(reference), "--epochs", "3"]) == 2
    assert main(["search", "--resume", str(reference)]) == 2
    assert (reference / "study.db").read_bytes() == before
