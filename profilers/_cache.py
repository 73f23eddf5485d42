"""A thread-safe cache of measurements, optionally persisted as JSON."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

__all__ = ["JsonValue", "MeasurementCache"]

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
_Default = TypeVar("_Default")

_FORMAT = "hwnas-measurement-cache"
_VERSION = 1


def _encode_key(key: object) -> str:
    try:
        return json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cache keys must be built from strings, numbers, booleans, None and tuples/lists of these, "
            f"got {key!r}"
        ) from exc


def _encode_value(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cache values must be JSON-ready (numbers, strings, lists, dicts with string keys), got "
            f"{type(value).__name__}; convert results first, e.g. LatencyResult.to_dict()"
        ) from exc


class MeasurementCache:
    """Measurements keyed by what determines them, so each architecture is measured once per device.

    The caller builds the key from everything the measurement depends on, typically
    ``(arch_key, profile_name, batch_size, input_shape)``. Keys are made of strings, numbers, booleans, None
    and tuples or lists of these (a tuple and a list with the same items are the same key). Values must be
    JSON-ready; they are stored encoded, so :meth:`get` returns a fresh copy, with tuples turned into lists,
    exactly as it would after a reload from disk.

    With a ``path``, existing entries are loaded at construction and, with ``autosave``, every :meth:`put`
    rewrites the file atomically (a temporary file in the same folder, then a rename), so a crash never
    leaves a half-written cache. All methods are thread-safe.

    Args:
        path: JSON file to load from and save to, or ``None`` for an in-memory cache.
        autosave: Save after every :meth:`put` (only with a ``path``).

    Raises:
        ValueError: ``path`` exists but is not a cache file written by this class.

    Example:
        >>> cache = MeasurementCache()
        >>> key = ('{"width":1.0}', "local-cpu", 1, (1, 8, 8))
        >>> cache.get(key) is None
        True
        >>> cache.put(key, {"latency_ms": 0.12})
        >>> cache.get(key)
        {'latency_ms': 0.12}
        >>> (cache.hits, cache.misses)
        (1, 1)
    """

    def __init__(self, *, path: str | os.PathLike[str] | None = None, autosave: bool = True) -> None:
        self._lock = threading.RLock()
        _CACHES.add(self)
        self._entries: dict[str, str] = {}
        self._hits = 0
        self._misses = 0
        self.path: Path | None = Path(path) if path is not None else None
        self.autosave = autosave
        self._relay: Callable[[object, JsonValue], None] | None = None
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"measurement cache {path} could not be read ({exc}); delete it or pass another path"
            ) from exc
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("entries"), dict)
        ):
            raise ValueError(
                f"{path} is not a measurement cache written by hwnas; delete it or pass another path"
            )
        if data.get("version") != _VERSION:
            raise ValueError(
                f"measurement cache {path} has version {data.get('version')!r}, this hwnas reads version "
                f"{_VERSION}; delete it to measure afresh"
            )
        self._entries = {str(k): _encode_value(v) for k, v in data["entries"].items()}

    @property
    def hits(self) -> int:
        """Lookups (:meth:`get`, :meth:`get_or_compute`) that found their key."""
        return self._hits

    @property
    def misses(self) -> int:
        """Lookups that did not find their key."""
        return self._misses

    def get(self, key: object, default: JsonValue | _Default = None) -> JsonValue | _Default:
        """The value stored under ``key`` (a fresh copy), or ``default``; counts a hit or a miss."""
        encoded_key = _encode_key(key)
        with self._lock:
            encoded = self._entries.get(encoded_key)
            if encoded is None:
                self._misses += 1
                return default
            self._hits += 1
        return json.loads(encoded)

    def put(self, key: object, value: JsonValue) -> None:
        """Stores ``value`` under ``key``, replacing any earlier value; saves when autosaving.

        Raises:
            TypeError: The key or value cannot be encoded as JSON.
        """
        encoded_key = _encode_key(key)
        encoded = _encode_value(value)
        with self._lock:
            self._entries[encoded_key] = encoded
            if self._relay is not None:
                self._relay(key, json.loads(encoded))
            elif self.autosave and self.path is not None:
                self._save_locked(self.path)

    def relay(self, send: Callable[[object, JsonValue], None]) -> None:
        """From now on, hands every :meth:`put` to ``send(key, value)`` as soon as it is stored, and leaves the
        file to the process ``send`` reaches (no autosave here).

        For a child process that measures for its parent (a forked copy of the parent's cache): each finished
        measurement reaches the parent, which stores and saves it, even when the child is killed later.
        ``send`` is called under the cache's lock, in the order of the puts.
        """
        with self._lock:
            self._relay = send

    def get_or_compute(self, key: object, compute: Callable[[], JsonValue]) -> JsonValue:
        """The cached value for ``key``, or ``compute()`` stored and returned.

        ``compute`` runs without holding the cache's lock, so slow measurements of different keys proceed in
        parallel; two threads missing the same key at once may both compute it (the last one is kept).
        """
        found = self.get(key, default=_MISSING)
        if not isinstance(found, _Missing):
            return found
        value = compute()
        self.put(key, value)
        return self.get_quietly(key)

    def get_quietly(self, key: object) -> JsonValue:
        """Like :meth:`get` but counts neither a hit nor a miss; ``None`` when absent."""
        with self._lock:
            encoded = self._entries.get(_encode_key(key))
        return None if encoded is None else json.loads(encoded)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return _encode_key(key) in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        """Iterates over the encoded (JSON string) keys."""
        with self._lock:
            return iter(list(self._entries))

    def clear(self) -> None:
        """Removes every entry (and resets the counters); saves when autosaving."""
        with self._lock:
            self._entries.clear()
            self._hits = self._misses = 0
            if self.autosave and self.path is not None:
                self._save_locked(self.path)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Writes the cache atomically to ``path`` (default: the cache's own path) and returns that path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("this cache has no path; pass one to save(path) or construct it with path=...")
        with self._lock:
            self._save_locked(target)
        return target

    def _save_locked(self, path: Path) -> None:
        entries = ",".join(f"{json.dumps(k)}:{v}" for k, v in sorted(self._entries.items()))
        text = f'{{"format":"{_FORMAT}","version":{_VERSION},"entries":{{{entries}}}}}\n'
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:
        return (
            f"MeasurementCache(path={self.path!r}, entries={len(self)}, hits={self.hits}, "
            f"misses={self.misses})"
        )


class _Missing:
    pass


_MISSING = _Missing()


#: every cache of this process, so that a forked child gets fresh locks (see _after_fork_in_child)
_CACHES: weakref.WeakSet[MeasurementCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child starts with one thread; a cache lock that another thread of the parent held at the fork
    (storing or saving an entry) would never be released there, so each cache gets a fresh lock."""
    for cache in list(_CACHES):
        cache._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
