"""Several target devices in one search: per-profile metrics, one front per profile, each model exported once."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from nas import Experiment, load_config
from nas.run._config import ConfigError
from nas.run._multi import device_fronts
from search import Trial, TrialState, non_dominated_mask

TINY = {
    "seed": 0,
    "threads": 1,
    "supernet.epochs": 1,
    "supernet.stage_channels": [8, 12],
    "supernet.stage_strides": [1, 2],
    "search.trials": 6,
    "search.population": 4,
    "evaluation.calib_samples": 32,
    "tracking.enabled": False,
}


def _profile(folder, name, threads, batch):
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndevice: cpu\nintra_op_threads: {threads}\nbatch_size: {batch}\n"
        "timed_runs: 30\nwarmup_runs: 2\n"
    )
    return str(path)


# -- the config ----------------------------------------------------------------------------------------------


def test_one_profile_keeps_its_config_exactly():
    cfg = load_config(overrides={"profile": "local-cpu"})
    assert cfg.profile == "local-cpu"
    assert cfg.search.objectives == ("error", "latency_ms")
    assert cfg.profiles() == ("local-cpu",)


def test_comma_separated_profiles_search_each_latency_by_default():
    cfg = load_config(overrides={"profile": "local-cpu, prof/edge.yaml,x.yaml"})
    assert cfg.profiles() == ("local-cpu", "prof/edge.yaml", "x.yaml")
    assert cfg.profile_labels() == ("local-cpu", "edge", "x")
    assert cfg.search.objectives == ("error", "latency_ms@local-cpu", "latency_ms@edge", "latency_ms@x")


def test_given_objectives_are_kept_and_checked_against_the_profiles():
    cfg = load_config(
        overrides={"profile": ["a", "b"], "search.objectives": ["error", "latency_ms", "energy_mj@b"]}
    )
    assert cfg.search.objectives == ("error", "latency_ms", "energy_mj@b")
    with pytest.raises(ConfigError, match="names profile 'c', which is not searched; profiles: a, b"):
        load_config(overrides={"profile": "a,b", "search.objectives": ["error", "latency_ms@c"]})
    with pytest.raises(ConfigError, match="unknown objective 'params@a'"):
        load_config(overrides={"profile": "a,b", "search.objectives": ["error", "params@a"]})
    with pytest.raises(ConfigError, match="distinct names"):
        load_config(overrides={"profile": "a,x/a.yaml"})


# -- the fronts ----------------------------------------------------------------------------------------------


def _trial(number, error, a, b, fidelity=1.0):
    return Trial(
        number=number,
        params={"x": number},
        fidelity=fidelity,
        state=TrialState.COMPLETE,
        values=(error, a, b),
        metrics={"error": error, "latency_ms@a": a, "latency_ms@b": b},
        violation=0.0,
        attrs={"arch": {"x": number}},
    )


def test_each_profile_front_is_error_against_that_profiles_latency():
    cfg = load_config(overrides={"profile": "a,b"})
    trials = [
        _trial(0, 10.0, 1.0, 9.0),  # accurate, fast on a, slow on b
        _trial(1, 20.0, 2.0, 1.0),  # fast on b
        _trial(2, 30.0, 3.0, 2.0),  # beaten everywhere by 1
        _trial(3, 5.0, 5.0, 5.0),  # the most accurate: on both fronts
        _trial(4, 1.0, 0.1, 0.1, fidelity=0.5),  # low fidelity: not a full-fidelity result
    ]
    fronts, costs = device_fronts(trials, cfg)
    assert costs == {"a": "latency_ms@a", "b": "latency_ms@b"}
    assert [t.number for t in fronts["a"]] == [0, 3]
    assert [t.number for t in fronts["b"]] == [1, 3]
    assert device_fronts(trials, load_config()) == ({}, {})


# -- a search on three profiles ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    profiles = [_profile(folder, "one", 1, 1), _profile(folder, "two", 2, 1), _profile(folder, "four", 1, 4)]
    cfg = load_config(overrides={**TINY, "name": "m", "out": str(folder), "profile": ",".join(profiles)})
    return Experiment(cfg).run()


@pytest.mark.slow
def test_every_trial_is_measured_on_every_profile(run):
    rows = list(csv.DictReader((run.run_dir / "trials.csv").open()))
    assert len(rows) == 6
    for r in rows:
        assert r["state"] == "COMPLETE", r["failure"]
        assert float(r["latency_ms"]) == float(r["latency_ms@one"])  # plain latency_ms: the first profile's
        for label in ("one", "two", "four"):
            assert float(r[f"latency_ms@{label}"]) > 0
            assert float(r[f"peak_memory_mb@{label}"]) > 0
    # batch 4 holds four images' activations at once: more memory than batch 1, for every arch
    assert all(float(r["peak_memory_mb@four"]) > float(r["peak_memory_mb@one"]) for r in rows)


@pytest.mark.slow
def test_each_profile_keeps_its_front_and_every_model_is_exported_once(run):
    pareto = json.loads((run.run_dir / "pareto.json").read_text())
    assert [o["name"] for o in pareto["objectives"]] == [
        "error",
        "latency_ms@one",
        "latency_ms@two",
        "latency_ms@four",
    ]
    fronts = pareto["fronts"]
    assert set(fronts) == {"one", "two", "four"}
    models = {m["id"]: m for m in pareto["models"]}
    assert len(models) == len(pareto["models"])  # no model listed twice
    onnx = sorted(p.name for p in (run.run_dir / "models").glob("*.onnx"))
    assert onnx == sorted(f"{i}.onnx" for i in models)  # one file per model, none for a front it is not on
    archs = [json.dumps(m["arch"], sort_keys=True) for m in models.values()]
    assert len(set(archs)) == len(archs)
    rows = [r for r in csv.DictReader((run.run_dir / "trials.csv").open()) if r["state"] == "COMPLETE"]
    for label, ids in fronts.items():
        assert ids and set(ids) <= set(models)
        # recomputed from trials.csv: the archs not beaten on both error and this profile's latency
        F = np.array([[float(r["error"]), float(r[f"latency_ms@{label}"])] for r in rows])
        expected = {r["arch"] for r, keep in zip(rows, non_dominated_mask(F)) if keep}
        got = {json.dumps(models[i]["arch"], separators=(",", ":")) for i in ids}
        assert {json.dumps(json.loads(a), sort_keys=True) for a in got} == {
            json.dumps(json.loads(a), sort_keys=True) for a in expected
        }
        costs = [models[i]["metrics"][f"latency_ms@{label}"] for i in ids]
        assert costs == sorted(costs)


@pytest.mark.slow
def test_the_report_shows_the_fronts_side_by_side(run):
    md = (run.run_dir / "report.md").read_text()
    assert "Fronts per profile" in md
    assert "latency_ms@two" in md
    pareto = json.loads((run.run_dir / "pareto.json").read_text())
    everywhere = sorted(set.intersection(*(set(v) for v in pareto["fronts"].values())))
    if everywhere:
        assert "Good everywhere: model" in md
        assert ", ".join(map(str, everywhere)) in md
    else:
        assert "No model is on every profile's front" in md


def test_measurements_of_one_device_share_one_lock(tmp_path):
    from hardware_profiles import load_profile
    from nas.data import load_dataset
    from nas.run._locks import MeasureLock
    from nas.run._multi import build_evaluator
    from nas.spaces import space_for_input

    profiles = [_profile(tmp_path, "p", 1, 1), _profile(tmp_path, "q", 2, 1)]
    cfg = load_config(overrides={**TINY, "profile": profiles})
    data = load_dataset("digits", seed=0)
    spec = space_for_input("mobilenet", 1, 8, 10, cfg.space_options())
    ev = build_evaluator(
        cfg, supernet=spec.build_supernet(seed=0), data=data, profile=load_profile(profiles[0])
    )
    labels = [label for label, _ in ev.devices]
    assert labels == ["p", "q"]
    locks = [ev.measure_lock, ev.devices[1][1].measure_lock]
    assert all(isinstance(lock, MeasureLock) for lock in locks)
    assert {lock.name() for lock in locks} == {MeasureLock("cpu").name()}  # both CPU profiles: one lock
    with pytest.raises(ConfigError, match="leave out --workers"):
        build_evaluator(
            load_config(overrides={**TINY, "profile": profiles, "execution.workers": 2}),
            supernet=spec.build_supernet(seed=0),
            data=data,
            profile=load_profile(profiles[0]),
        )
