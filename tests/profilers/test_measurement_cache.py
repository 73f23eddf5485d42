"""Tests of MeasurementCache: lookups, counters, persistence, thread safety."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from profilers import LatencyResult, MeasurementCache

KEY = ('{"depth":[1,2]}', "local-cpu", 1, (1, 8, 8))


def test_hits_and_misses_are_counted() -> None:
    cache = MeasurementCache()
    assert cache.get(KEY) is None
    assert (cache.hits, cache.misses) == (0, 1)
    cache.put(KEY, {"latency_ms": 1.5})
    assert cache.get(KEY) == {"latency_ms": 1.5}
    assert cache.get(KEY) == {"latency_ms": 1.5}
    assert cache.get(("other", "local-cpu", 1, (1, 8, 8)), default=-1.0) == -1.0
    assert (cache.hits, cache.misses) == (2, 2)
    assert KEY in cache and len(cache) == 1
    assert (cache.hits, cache.misses) == (2, 2)  # membership tests are not lookups


def test_keys_differing_in_any_part_are_distinct() -> None:
    cache = MeasurementCache()
    cache.put(KEY, 1.0)
    for other in [
        ('{"depth":[1,3]}', "local-cpu", 1, (1, 8, 8)),
        ('{"depth":[1,2]}', "gpu", 1, (1, 8, 8)),
        ('{"depth":[1,2]}', "local-cpu", 8, (1, 8, 8)),
        ('{"depth":[1,2]}', "local-cpu", 1, (3, 32, 32)),
    ]:
        assert other not in cache
    assert len(cache) == 1


def test_tuple_and_list_keys_are_the_same_key() -> None:
    cache = MeasurementCache()
    cache.put(KEY, 2.0)
    assert cache.get(['{"depth":[1,2]}', "local-cpu", 1, [1, 8, 8]]) == 2.0


def test_put_replaces_and_get_returns_a_copy() -> None:
    cache = MeasurementCache()
    cache.put(KEY, {"samples_ms": [1.0, 2.0]})
    got = cache.get(KEY)
    assert isinstance(got, dict)
    got["samples_ms"].append(3.0)
    assert cache.get(KEY) == {"samples_ms": [1.0, 2.0]}
    cache.put(KEY, {"samples_ms": []})
    assert cache.get(KEY) == {"samples_ms": []}


def test_unencodable_keys_and_values_are_rejected() -> None:
    cache = MeasurementCache()
    with pytest.raises(TypeError, match="cache keys"):
        cache.put(frozenset({1}), 1.0)
    with pytest.raises(TypeError, match="to_dict"):
        cache.put(KEY, object())  # type: ignore[arg-type]
    assert len(cache) == 0


def test_get_or_compute_computes_once() -> None:
    cache = MeasurementCache()
    calls = []

    def compute() -> float:
        calls.append(1)
        return 3.25

    assert cache.get_or_compute(KEY, compute) == 3.25
    assert cache.get_or_compute(KEY, compute) == 3.25
    assert len(calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)


def test_persistence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.json"
    result = LatencyResult(
        median_ms=1.0, iqr_ms=0.1, mean_ms=1.05, min_ms=0.9, max_ms=1.4, timed_runs=30, warmup_runs=10,
        batch_size=1, input_shape=(1, 8, 8), provider="CPUExecutionProvider", intra_op_threads=1,
        inter_op_threads=1, samples_ms=(1.0,) * 30,
    )  # fmt: skip
    cache = MeasurementCache(path=path)
    cache.put(KEY, result.to_dict())
    cache.put(("b", "local-cpu", 2, (1, 8, 8)), 7)
    assert path.is_file()
    reloaded = MeasurementCache(path=path)
    assert len(reloaded) == 2
    assert LatencyResult.from_dict(reloaded.get(KEY)) == result  # type: ignore[arg-type]
    assert reloaded.get(["b", "local-cpu", 2, [1, 8, 8]]) == 7
    assert (reloaded.hits, reloaded.misses) == (2, 0)
    assert [p.name for p in path.parent.iterdir()] == ["cache.json"]  # no temporary files left behind


def test_without_autosave_only_save_writes(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = MeasurementCache(path=path, autosave=False)
    cache.put(KEY, 1.0)
    assert not path.exists()
    assert cache.save() == path
    assert MeasurementCache(path=path).get(KEY) == 1.0
    other = cache.save(tmp_path / "copy.json")
    assert MeasurementCache(path=other).get(KEY) == 1.0


def test_in_memory_cache_cannot_save_without_a_path() -> None:
    with pytest.raises(ValueError, match="no path"):
        MeasurementCache().save()


def test_corrupt_or_foreign_file_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        MeasurementCache(path=broken)
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a measurement cache"):
        MeasurementCache(path=foreign)


def test_clear_empties_the_file_too(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = MeasurementCache(path=path)
    cache.put(KEY, 1.0)
    cache.clear()
    assert len(cache) == 0 and len(MeasurementCache(path=path)) == 0


def test_concurrent_use_loses_nothing(tmp_path: Path) -> None:
    cache = MeasurementCache(path=tmp_path / "cache.json")
    n_threads, n_keys = 4, 50
    start = threading.Barrier(n_threads)

    def work(worker: int) -> None:
        start.wait()
        for i in range(n_keys):
            key = (f"arch{i}", "local-cpu", 1, (1, 8, 8))
            if cache.get(key) is None:
                cache.put(key, {"i": i, "worker": worker})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == n_keys
    assert cache.hits + cache.misses == n_threads * n_keys
    assert cache.misses >= n_keys
    reloaded = MeasurementCache(path=tmp_path / "cache.json")
    assert len(reloaded) == n_keys
    for i in range(n_keys):
        value = reloaded.get_quietly((f"arch{i}", "local-cpu", 1, (1, 8, 8)))
        assert isinstance(value, dict) and value["i"] == i


def _put_in_forked_child(cache):
    cache.put("k", 1)
    os._exit(0 if cache.get("k") == 1 else 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_a_cache_whose_lock_another_thread_held_at_the_fork():
    # The searching process forks each evaluation under --trial-timeout while another of its threads may be
    # storing a killed child's measurement under the cache's lock: the child must not inherit a held lock.
    import multiprocessing

    cache = MeasurementCache()
    held, release = threading.Event(), threading.Event()

    def hold():
        with cache._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    child = multiprocessing.get_context("fork").Process(target=_put_in_forked_child, args=(cache,))
    child.start()
    child.join(30)  # a put takes microseconds; without fresh locks the child waits for ever
    stuck = child.is_alive()
    if stuck:
        child.kill()
        child.join()
    release.set()
    holder.join()
    assert not stuck and child.exitcode == 0
