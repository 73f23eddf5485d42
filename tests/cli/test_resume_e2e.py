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


def hwnas(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # As from a terminal: a suite started in the background of a non-interactive shell inherits SIGINT
    # ignored, and Python keeps an ignored SIGINT ignored, so Ctrl-C would never reach the search.
    return subprocess.Popen(
        [sys.executable, "-m", "nas.cli", *args],
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


def wait_for(cond, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the search ended before it could be interrupted: {proc.communicate()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the search")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    (out / "c.yaml").write_text(CONFIG)
    p = hwnas("search", "--config", str(out / "c.yaml"), "--out", str(out), "--name", "ref")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out / "ref"


def test_kill_9_during_training_and_search_then_resume_gives_the_same_study(reference, tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    run = tmp_path / "crash"
    args = ("search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--name", "crash")

    p = hwnas(*args)  # killed after the first epoch's checkpoint
    wait_for(lambda: (run / "supernet.pt").is_file(), p)
    p.send_signal(signal.SIGKILL)
    p.wait()

    p = hwnas("search", "--resume", str(run))  # killed in the middle of the search
    wait_for(lambda: finished(run) >= 5, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert finished(run) < 12

    p = hwnas("search", "--resume", str(run))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err

    got, want = trials(run), trials(reference)
    assert [t[:2] for t in got] == [t[:2] for t in want]  # the same candidates, in the same order
    assert got == want  # and the same results: nothing lost, nothing evaluated twice
    front = lambda r: sorted(
        (m["id"], m["metrics"]["error"]) for m in json.loads((r / "pareto.json").read_text())["models"]
    )
    assert front(run) == front(reference)


def test_ctrl_c_keeps_the_study_and_says_how_to_resume(tmp_path):
    # More trials than can possibly finish before the signal arrives, so that the search is always mid-way.
    (tmp_path / "c.yaml").write_text(CONFIG.replace("trials: 12", "trials: 5000"))
    run = tmp_path / "int"
    p = hwnas("search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--name", "int")
    wait_for(lambda: finished(run) >= 2, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
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
