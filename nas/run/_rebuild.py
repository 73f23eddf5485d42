"""The run directory as a function of its study: opening it for one writer, and knowing when the files derived
from ``study.db`` (``pareto.json``, ``trials.csv``, ``models/``, the report) are behind it.

``pareto.json`` records the study it was written from (``study: {"trials", "finished"}``); a resume compares
that, the rows of ``trials.csv`` and the age of the report with ``study.db`` and rebuilds whatever is behind,
so a kill between the last trial and the export, or while the report is written, is repaired by the next
resume. Every derived file is written atomically (a temporary file, fsync, rename; the temporary file is
removed when the write fails): :func:`nas._atomic.atomic_write`, named here too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nas._atomic import atomic_write, atomic_write_text
from nas._errors import RunError, RuntimeFailure
from nas.run._run_lock import LOCK_NAME, RunLock

__all__ = [
    "StudyState",
    "atomic_write",
    "atomic_write_text",
    "derived_behind",
    "discard_new_run",
    "open_new_run",
    "open_resumed_run",
    "open_run",
    "prune_models",
    "study_state",
    "write_config",
]

#: model files hwnas writes into ``models/`` (``<id>.onnx``, ``<id>.int8.onnx``); only these are pruned
_MODEL_FILE = re.compile(r"^\d+(\.[A-Za-z0-9_-]+)?\.onnx$")


def write_config(run_dir: Path, config: Any) -> None:
    """``config.yaml``: the validated config, named after its run directory."""
    data = {**config.model_dump(mode="json"), "name": run_dir.name}
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))


def open_new_run(run_dir: Path, config: Any) -> RunLock:
    """Creates ``run_dir`` (an empty one is reused), locks it and writes ``config.yaml``.

    Raises:
        RunLockedError: another process is starting or writing this run.
        RunError: the directory holds a run or other files already, or cannot be written.
    """
    _refuse_taken(run_dir)  # before the lock file is made: a refused start adds nothing to a run
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot write to {run_dir}: {e.strerror or e}") from None
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} exists and is not a folder; choose another --name or --out")
    lock = RunLock(run_dir).acquire()
    try:
        _refuse_taken(run_dir)  # again, holding the lock: another start may have written it meanwhile
        write_config(run_dir, config)
    except RuntimeFailure as e:
        lock.release()
        raise RunError(f"cannot write to {run_dir}: {e}") from None
    except BaseException:
        lock.release()
        raise
    return lock


def _refuse_taken(run_dir: Path) -> None:
    if run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        if (run_dir / LOCK_NAME).is_file():  # a process still writing it is named (RunLockedError, its pid)
            RunLock(run_dir).acquire().release()
        raise RunError(
            f"run directory {run_dir} already exists; choose another --name, or continue it with "
            f"--resume {run_dir} (runs are never overwritten)"
        )


def discard_new_run(run_dir: Path, lock: RunLock) -> None:
    """Removes a run directory whose start failed before any work was done (so that a retry can use the
    name), then releases its lock."""
    try:
        shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        lock.release()


def open_resumed_run(run_dir: Path) -> RunLock:
    """Locks an existing run directory and checks its study file.

    Raises:
        RunLockedError: another process is writing this run.
        RunError: not a run directory, or its ``study.db`` is empty or damaged.
    """
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir} is not an hwnas run directory (no config.yaml): nothing to resume")
    lock = RunLock(run_dir).acquire()
    try:
        check_study_file(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def open_run(run_dir: Path, config: Any, *, resume: bool, note: Callable[[str], Any] = print) -> RunLock:
    """Locks a run directory for one search and returns the lock: a new run is created (see
    :func:`open_new_run`); a resumed one is checked (:func:`open_resumed_run`), and when it has finished its
    trials it is refused if its derived files are up to date, and rebuilt (``note`` says which) if not.

    Raises:
        RunError: what keeps the run from being used, in one line.
    """
    if not resume:
        return open_new_run(run_dir, config)
    lock = open_resumed_run(run_dir)
    state = study_state(run_dir)
    if state is not None and state.finished >= config.search.trials and not state.running:
        behind = derived_behind(run_dir, state, export_infeasible=config.search.export_infeasible)
        if not behind:
            lock.release()
            raise RunError(
                f"{run_dir} already finished its {config.search.trials} trials and its results are up to date; "
                "resume with a larger --trials to search further, or rewrite the report with: "
                f"hwnas report {run_dir}"
            )
        note(f"rebuilding {', '.join(behind)} of {run_dir} from study.db")
    return lock


def check_study_file(run_dir: Path) -> None:
    """A run's ``study.db`` is either absent (the search has not started) or a whole SQLite study.

    Raises:
        RunError: a 0-byte or damaged (e.g. truncated) file, which is never taken for a new study.
    """
    db = run_dir / "study.db"
    if not db.exists():
        return
    if db.stat().st_size == 0:
        raise RunError(
            f"{db} is empty (0 bytes) while the run has results to keep: restore it from a backup; "
            "nothing was changed"
        )
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise RunError(
            f"{db} is not a readable SQLite study file (damaged or truncated: {e}); restore it from a backup; "
            "nothing was changed"
        ) from None
    if not ok or ok[0] != "ok" or not {"meta", "trials"} <= tables:
        raise RunError(
            f"{db} is not a readable SQLite study file (truncated, or not an hwnas study); restore it from a "
            "backup; nothing was changed"
        )


@dataclass(frozen=True)
class StudyState:
    """How far a run's study got: its trials, those finished, and whether any is still RUNNING."""

    trials: int
    finished: int
    running: int

    def signature(self) -> dict[str, int]:
        """What ``pareto.json`` records of the study it was derived from."""
        return {"trials": self.trials, "finished": self.finished}


def study_state(run_dir: Path) -> StudyState | None:
    """The state of ``run_dir/study.db``, or None without one."""
    from search import SQLiteStorage, TrialState

    if not (run_dir / "study.db").is_file():
        return None
    storage = SQLiteStorage(run_dir / "study.db")
    try:
        trials = storage.trials()
    finally:
        storage.close()
    return state_of(trials, TrialState.RUNNING)


def state_of(trials: Iterable[Any], running_state: Any = None) -> StudyState:
    """The :class:`StudyState` of some trials."""
    items = list(trials)
    finished = sum(1 for t in items if t.state.finished)
    running = sum(1 for t in items if not t.state.finished)
    return StudyState(trials=len(items), finished=finished, running=running)


def derived_behind(run_dir: Path, state: StudyState, *, export_infeasible: bool = False) -> list[str]:
    """Which derived files of a run are behind its study (empty when all are up to date); with
    ``export_infeasible``, an infeasible run that exported nothing is behind too."""
    behind = []
    pareto = _read_json(run_dir / "pareto.json")
    if export_infeasible and isinstance(pareto, Mapping) and pareto.get("feasible") is False and not pareto.get("models"):
        behind.append("models/")
    recorded = pareto.get("study") if isinstance(pareto, Mapping) else None
    if (
        pareto is None
        or (isinstance(recorded, Mapping) and dict(recorded) != state.signature())
        # written before pareto.json recorded its study: trust trials.csv
        or (not isinstance(recorded, Mapping) and _csv_rows(run_dir / "trials.csv") != state.trials)
    ):
        behind.append("pareto.json")
    if _csv_rows(run_dir / "trials.csv") != state.trials:
        behind.append("trials.csv")
    if isinstance(pareto, Mapping):
        for model in pareto.get("models") or []:
            onnx = model.get("onnx") if isinstance(model, Mapping) else None
            if isinstance(onnx, str) and not (run_dir / onnx).is_file():
                behind.append("models/")
                break
    report = run_dir / "report.html"
    if not report.is_file() or (pareto is not None and report.stat().st_mtime < (run_dir / "pareto.json").stat().st_mtime):
        behind.append("report.html")
    return behind


def prune_models(run_dir: Path, models: Iterable[Any]) -> list[Path]:
    """Removes ONNX files of ``models/`` that belong to no model of the front; returns what was removed."""
    keep: set[str] = set()
    for m in models:
        entry = m.to_dict() if hasattr(m, "to_dict") else dict(m)
        for rel in (entry.get("onnx"), (entry.get("int8") or {}).get("onnx")):
            if isinstance(rel, str):
                keep.add(os.path.normpath(rel))
    folder = run_dir / "models"
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            rel = os.path.normpath(os.path.relpath(path, run_dir))
            if path.is_file() and _MODEL_FILE.match(path.name) and rel not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _csv_rows(path: Path) -> int | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    except (OSError, ValueError, csv.Error):
        return None
