"""A candidate killed by ``--trial-timeout`` keeps what it measured: its child process relays every cache entry
to the searching process as soon as it is made, so the latency is cached for the next candidate and a resume."""

from __future__ import annotations

import json
import threading
import time
import types

import search._study as study_module
from hardware_profiles import load_profile
from nas import CandidateEvaluator, Supernet, SupernetSpec, load_dataset
from nas.run._killable import KillableExecutor
from profilers import MeasurementCache
from search import Objective, RandomStrategy, Study, TrialState


def evaluator(cache: MeasurementCache) -> CandidateEvaluator:
    spec = SupernetSpec.for_input(1, 8, 10, stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
    return CandidateEvaluator(
        supernet=Supernet(spec, seed=0).eval(),
        data=load_dataset("digits", seed=0),
        profile=load_profile("local-cpu"),
        calib_samples=32,
        cache=cache,
    )


def test_a_candidate_killed_after_its_latency_was_measured_leaves_the_latency_cached(tmp_path, monkeypatch):
    path = tmp_path / "latency_cache.json"
    cache = MeasurementCache(path=path)
    ev = evaluator(cache)
    hung = tmp_path / "hung"

    def hang_after_measuring(arch, model, fidelity):  # a step after the latency (as the INT8 twin's) hangs
        hung.write_text("measured")
        threading.Event().wait()
        return {}

    ev.extra_scores = (hang_after_measuring,)
    # The trial's time runs out once it hangs, not after a guessed delay: the study's clock jumps then.
    clock = types.SimpleNamespace(**{**vars(time), "monotonic": lambda: 1e9 if hung.is_file() else 0.0})
    monkeypatch.setattr(study_module, "time", clock)
    study = Study(
        space=ev.spec.search_space(),
        objectives=[Objective("error"), Objective("latency_ms")],
        strategy=RandomStrategy(seed=0),
    )
    with KillableExecutor(caches=(cache,)) as ex:
        study.optimize(ev, n_trials=1, executor=ex, n_parallel=1, trial_timeout_s=0.05)
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED and "TimeoutError" in (trial.error or "") and hung.is_file()

    assert len(cache) == 1  # the killed child's measurement reached this process's cache...
    (key,) = list(cache)
    entry = cache.get_quietly(json.loads(key))
    assert entry["latency_ms"] > 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    reloaded = MeasurementCache(path=path)  # ...and its file, which a resume reads
    assert len(reloaded) == 1
    again = evaluator(reloaded)
    measured = []
    real = again.latency.measure
    monkeypatch.setattr(again.latency, "measure", lambda *a, **k: measured.append(1) or real(*a, **k))
    metrics = again.score(ev.spec.arch_from_params(trial.params))
    assert measured == [] and metrics["latency_ms"] == entry["latency_ms"]  # not measured again


def test_a_relaying_cache_hands_each_put_on_at_once_and_leaves_its_file_alone(tmp_path):
    cache = MeasurementCache(path=tmp_path / "c.json")
    sent = []
    cache.relay(lambda key, value: sent.append((key, value)))
    cache.put(("arch", "local-cpu", 1, (1, 8, 8)), {"latency_ms": 0.5})
    assert sent == [(("arch", "local-cpu", 1, (1, 8, 8)), {"latency_ms": 0.5})]
    assert cache.get_quietly(("arch", "local-cpu", 1, [1, 8, 8])) == {"latency_ms": 0.5}
    assert not (tmp_path / "c.json").exists()  # the process relayed to saves it


def _depthwise_conv_sum() -> float:
    import torch

    weight = torch.ones(64, 1, 3, 3)
    return float(torch.nn.functional.conv2d(torch.ones(8, 64, 64, 64), weight, groups=64).sum())


def test_a_child_runs_torch_after_the_parent_used_several_threads():
    # The searching process trains on --threads N before it forks each evaluation; torch's OpenMP pool
    # cannot be used in a forked child, so a child that ran torch on several threads would wait for ever.
    import torch

    from nas.run._killable import KillableExecutor

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _depthwise_conv_sum()  # the parent runs a parallel region
        with KillableExecutor() as ex:
            future = ex.submit(_depthwise_conv_sum)
            try:
                value = future.result(timeout=60)  # microseconds of work; without the fix, never
            finally:
                future.cancel()
    finally:
        torch.set_num_threads(before)
    assert value == _depthwise_conv_sum()
