"""Study storage: every trial and the study's description, in memory or in an SQLite file."""

from __future__ import annotations

import abc
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from search._trial import Trial, TrialState

__all__ = ["InMemoryStorage", "SQLiteStorage", "Storage", "StorageError"]

_FORMAT = "hwnas-study"
_VERSION = 1


class StorageError(RuntimeError):
    """A study file that cannot be used (corrupt, foreign, or from an incompatible version)."""


class Storage(abc.ABC):
    """Where a study keeps its trials and metadata. Only the driving process writes to it."""

    @abc.abstractmethod
    def add_trial(self, trial: Trial) -> None:
        """Stores a new trial (its ``number`` must be the next free one)."""

    @abc.abstractmethod
    def update_trial(self, trial: Trial) -> None:
        """Replaces the stored trial with the same ``number``."""

    @abc.abstractmethod
    def trials(self) -> list[Trial]:
        """Every stored trial, ordered by number."""

    @abc.abstractmethod
    def get_trial(self, number: int) -> Trial:
        """The trial with this number (``KeyError`` if there is none)."""

    @abc.abstractmethod
    def count(self) -> int:
        """Number of stored trials."""

    @abc.abstractmethod
    def set_meta(self, key: str, value: Any) -> None:
        """Stores a JSON-ready value under ``key``."""

    @abc.abstractmethod
    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""

    def close(self) -> None:
        """Releases resources; the default does nothing."""


class InMemoryStorage(Storage):
    """Keeps everything in a list; lost when the process ends."""

    def __init__(self) -> None:
        self._trials: list[Trial] = []
        self._meta: dict[str, Any] = {}

    def add_trial(self, trial: Trial) -> None:
        if trial.number != len(self._trials):
            raise ValueError(f"trial number {trial.number} is not the next one ({len(self._trials)})")
        self._trials.append(trial)

    def update_trial(self, trial: Trial) -> None:
        self._trials[trial.number] = trial

    def trials(self) -> list[Trial]:
        return list(self._trials)

    def get_trial(self, number: int) -> Trial:
        if not 0 <= number < len(self._trials):
            raise KeyError(f"no trial {number}")
        return self._trials[number]

    def count(self) -> int:
        return len(self._trials)

    def set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = json.loads(json.dumps(value))

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self._meta.get(key, default)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    params TEXT NOT NULL,
    fidelity REAL NOT NULL,
    state TEXT NOT NULL,
    objective_values TEXT,
    metrics TEXT NOT NULL,
    violation REAL,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    attrs TEXT NOT NULL
);
"""


class SQLiteStorage(Storage):
    """An SQLite file (write-ahead log), safe to read while a search writes it.

    Opening an existing file checks that it is an hwnas study before anything is written to it, so a
    foreign or corrupt file is reported and left untouched.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "study.db")
        >>> s = SQLiteStorage(path)
        >>> s.set_meta("name", "demo"); s.get_meta("name")
        'demo'
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            if existed:
                self._check_existing()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            if not existed:
                self._conn.executescript(_SCHEMA)
                self._write_meta("format", _FORMAT)
                self._write_meta("version", _VERSION)
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise StorageError(f"{self.path} is not a readable SQLite study file ({e})") from None

    def _check_existing(self) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "trials"} <= tables:
            raise StorageError(
                f"{self.path} is an SQLite file but not an hwnas study (tables: {sorted(tables) or 'none'})"
            )
        fmt = self.get_meta("format")
        version = self.get_meta("version")
        if fmt != _FORMAT:
            raise StorageError(f"{self.path} is not an hwnas study (format {fmt!r})")
        if version != _VERSION:
            raise StorageError(
                f"{self.path} is a version {version} study; this hwnas reads version {_VERSION}"
            )

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _write_meta(self, key: str, value: Any) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def set_meta(self, key: str, value: Any) -> None:
        self._write_meta(key, value)

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def add_trial(self, trial: Trial) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO trials VALUES (?,?,?,?,?,?,?,?,?,?,?)", _row(trial))

    def update_trial(self, trial: Trial) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO trials VALUES (?,?,?,?,?,?,?,?,?,?,?)", _row(trial))

    def trials(self) -> list[Trial]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
        try:
            return [_trial(r) for r in rows]
        except (ValueError, TypeError, KeyError) as e:
            raise StorageError(f"{self.path} holds a trial that cannot be read ({e})") from None

    def get_trial(self, number: int) -> Trial:
        with self._lock:
            row = self._conn.execute("SELECT * FROM trials WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise KeyError(f"no trial {number}")
        return _trial(row)

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _row(t: Trial) -> tuple[Any, ...]:
    return (
        t.number,
        json.dumps(dict(t.params)),
        t.fidelity,
        t.state.value,
        None if t.values is None else json.dumps(list(t.values)),
        json.dumps(dict(t.metrics)),
        t.violation,
        t.error,
        t.started_at,
        t.finished_at,
        json.dumps(dict(t.attrs)),
    )


def _trial(r: tuple[Any, ...]) -> Trial:
    return Trial(
        number=int(r[0]),
        params=json.loads(r[1]),
        fidelity=float(r[2]),
        state=TrialState(r[3]),
        values=None if r[4] is None else tuple(json.loads(r[4])),
        metrics=json.loads(r[5]),
        violation=r[6],
        error=r[7],
        started_at=r[8],
        finished_at=r[9],
        attrs=json.loads(r[10]),
    )
