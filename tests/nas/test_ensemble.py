"""An ensemble of supernets (``supernet.members``): candidates ranked on the members' mean error, the best
member's subnet exported, each member trained and checkpointed like the plain supernet."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
from epoch_clock import run_on_epoch_clock

from hardware_profiles import load_profile
from nas import CandidateEvaluator, Experiment, RunError, Supernet, SupernetSpec, load_config, load_dataset
from nas.run._front import reexport
from nas.run._recipe import EvaluatorRecipe
from nas.training._train import train_supernet
from profilers import MeasurementCache

TINY = {
    "seed": 0,
    "threads": 1,
    "supernet.epochs": 1,
    "supernet.stage_channels": [8, 12],
    "supernet.stage_strides": [1, 2],
    "search.trials": 8,
    "search.population": 4,
    "evaluation.calib_samples": 32,
    "tracking.enabled": False,
}
SPEC = SupernetSpec.for_input(1, 8, 10, stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def evaluator(supernet, digits, cache: MeasurementCache | None = None) -> CandidateEvaluator:
    return CandidateEvaluator(
        supernet=supernet, data=digits, profile=load_profile("local-cpu"), calib_samples=64, cache=cache
    )


def archs() -> list[dict]:
    rng = np.random.default_rng(0)
    return [SPEC.largest_arch(), SPEC.smallest_arch(), SPEC.random_arch(rng)]


def test_the_error_is_the_members_mean_and_the_best_member_is_named(digits):
    nets = [Supernet(SPEC, seed=s).eval() for s in (0, 1, 2)]
    cache = MeasurementCache()  # each arch's latency is measured once, for all four evaluators
    alone = [evaluator(n, digits, cache) for n in nets]
    ensemble = evaluator(nets, digits, cache)
    differed = False
    for arch in archs():
        errors = [e.score(arch)["error"] for e in alone]
        m = ensemble.score(arch)
        assert m["error"] == pytest.approx(sum(errors) / 3, abs=1e-9)
        assert m["model_error"] == pytest.approx(min(errors), abs=1e-9)
        assert errors[int(m["member"])] == min(errors)
        assert m["latency_ms"] > 0 and m["params"] == alone[0].score(arch)["params"]
        differed |= len(set(errors)) > 1
    assert differed  # otherwise the mean could not be told from any one member


def test_one_supernet_in_a_list_scores_as_the_supernet_alone(digits):
    net = Supernet(SPEC, seed=0).eval()
    arch = SPEC.largest_arch()
    plain, listed = evaluator(net, digits).score(arch), evaluator([net], digits).score(arch)
    assert plain["error"] == listed["error"]
    assert "member" not in listed and "model_error" not in listed


def test_members_must_exist_and_share_one_spec(digits):
    other = SupernetSpec.for_input(1, 8, 10, stage_channels=(8, 16), stage_strides=(1, 2), head_channels=32)
    with pytest.raises(ValueError, match="share one supernet spec"):
        evaluator([Supernet(SPEC), Supernet(other)], digits)
    with pytest.raises(ValueError, match="at least one supernet"):
        evaluator([], digits)
    with pytest.raises(ValueError, match=r"member must be in \[0, 1\]"):
        evaluator([Supernet(SPEC), Supernet(SPEC, seed=1)], digits).calibrated_subnet(
            SPEC.largest_arch(), member=2
        )


def test_a_distributed_recipe_carries_every_member(digits):
    nets = [Supernet(SPEC, seed=s).eval() for s in (0, 1)]
    local = evaluator(nets, digits)
    built = EvaluatorRecipe.from_evaluator(local).build()
    assert len(built.members) == 2 and "members=2" in repr(EvaluatorRecipe.from_evaluator(local))
    arch = SPEC.smallest_arch()
    a, b = local.score(arch), built.score(arch)
    assert (a["error"], a["member"], a["model_error"]) == (b["error"], b["member"], b["model_error"])


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble")
    cfg = load_config(overrides={**TINY, "name": "ens", "out": str(out), "supernet.members": 2})
    return Experiment(cfg).run()


@pytest.mark.slow
def test_each_member_trains_like_the_plain_supernet_from_its_own_seed(ensemble_run, digits):
    run = ensemble_run.run_dir
    first = torch.load(run / "supernet.pt", weights_only=True)
    second = torch.load(run / "supernet-1.pt", weights_only=True)
    assert first["epoch"] == second["epoch"] == 1
    assert any(not torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    # Member 1 is exactly a supernet initialised and trained with seed + 1 on the run's data.
    cfg = load_config(run / "config.yaml")
    spec = SupernetSpec.from_dict(second["config"]["spec"])
    net = Supernet(spec, seed=1)
    train_supernet(net, digits.train, **cfg.supernet.train_kwargs(), fill=digits.black, seed=1)
    assert all(torch.equal(v, second["model"][k]) for k, v in net.state_dict().items())
    training = json.loads((run / "sustainability.json").read_text())["training"]
    assert training["members"] == 2 and training["completed_epochs"] == 2


@pytest.mark.slow
def test_front_models_are_the_subnets_of_the_member_that_scored_best(ensemble_run):
    run = ensemble_run.run_dir
    pareto = json.loads((run / "pareto.json").read_text())
    trials = {int(r["number"]): r for r in _csv(run / "trials.csv")}
    assert pareto["models"]
    for m in pareto["models"]:
        row = trials[m["id"]]
        assert m["member"] == int(float(row["member"])) in (0, 1)
        # The exported model's own validation error is the best member's, not the ensemble's mean.
        assert m["validation_error"] == pytest.approx(float(row["model_error"]), abs=1e-9)
        assert m["metrics"]["error"] == pytest.approx(float(row["error"]))
        assert m["validation_error"] <= m["metrics"]["error"] + 1e-9
        meta = ort.InferenceSession(str(run / m["onnx"])).get_modelmeta().custom_metadata_map
        assert int(meta["hwnas.member"]) == m["member"]
        assert json.loads(meta["hwnas.validation_error"]) == pytest.approx(m["validation_error"])
        assert m["max_abs_diff"] < 1e-3
    md = (run / "report.md").read_text()
    assert "model's validation error (%)" in md  # the report shows both errors
    for m in pareto["models"]:
        assert f"{m['validation_error']:.4g}" in md


@pytest.mark.slow
def test_reexport_loads_every_member_and_names_a_missing_one(ensemble_run, tmp_path):
    run = ensemble_run.run_dir
    model = next(m for m in json.loads((run / "pareto.json").read_text())["models"])
    path, diff = reexport(run, model["id"], out=tmp_path / "again.onnx")
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert int(meta["hwnas.member"]) == model["member"] and diff < 1e-3
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "supernet-1.pt").unlink()
    with pytest.raises(RunError, match=r"no checkpoint of supernet member 1 \(supernet-1.pt\)"):
        reexport(copy, model["id"], out=tmp_path / "x.onnx")


@pytest.mark.slow
def test_a_budget_stop_inside_the_ensemble_resumes_with_the_members_left(tmp_path):
    cfg = load_config(
        overrides={
            **TINY,
            "name": "r",
            "out": str(tmp_path),
            "supernet.members": 2,
            "search.trials": 2,
            "budget.max_time": 0.5,  # elapsed time counted in epochs: over after member 0's only epoch
        }
    )
    stopped = run_on_epoch_clock(Experiment(cfg))
    assert stopped.stopped_by == {"budget": "max_time", "limit": 0.5, "value": 1.0} and stopped.n_trials == 0
    assert not (stopped.run_dir / "supernet-1.pt").exists()
    resumed = Experiment(
        cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"max_time": None})}), resume=True
    ).run()
    assert resumed.n_trials == 2
    for name in ("supernet.pt", "supernet-1.pt"):
        assert torch.load(resumed.run_dir / name, weights_only=True)["epoch"] == 1


def _csv(path):
    import csv

    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_the_members_of_a_run_cannot_change_on_resume(ensemble_run):
    from nas.run._config import ConfigError, resume_config

    with pytest.raises(ConfigError, match=r"supernet.members: 2 -> 3"):
        resume_config(ensemble_run.run_dir, {"supernet.members": 3})


@pytest.mark.parametrize(
    "epochs, members, expected",
    [
        (1, 1, "training the supernet for 1 epoch (sandwich"),
        (6, 3, "training 3 supernets (an ensemble) one after another, 2 epochs each"),
    ],
)
def test_progress_names_the_members_and_counts_epochs_over_all_of_them(epochs, members, expected):
    from rich.console import Console

    from nas.run._progress import ProgressReporter

    console = Console(record=True, force_terminal=False, width=200)
    reporter = ProgressReporter(console, every=1)
    reporter.start_training(epochs, members=members)
    reporter.epoch(epochs, epochs, 0.5, 1.0)
    text = console.export_text()
    assert expected in text and f"epoch {epochs}/{epochs}" in text
