"""Fidelity in the supernet flow: fine-tuning steps and the validation share grow with it."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
import torch

from hardware_profiles import load_profile
from nas import CandidateEvaluator, Supernet, SupernetSpec, load_dataset
from nas.run._front import export_model
from search import Trial, TrialState


def evaluator(steps: int, export_steps: int = 0) -> CandidateEvaluator:
    spec = SupernetSpec.for_input(1, 8, 10, stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
    return CandidateEvaluator(
        supernet=Supernet(spec, seed=0).eval(),
        data=load_dataset("digits", seed=0),
        profile=load_profile("local-cpu"),
        calib_samples=64,
        finetune_steps=steps,
        finetune_lr=0.05,
        export_finetune_steps=export_steps,
    )


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


@pytest.mark.slow
def test_fine_tuning_is_seeded_by_the_arch_and_scaled_by_fidelity():
    ev = evaluator(40)
    arch = ev.spec.largest_arch()
    a, b = ev.calibrated_subnet(arch, 1.0), ev.calibrated_subnet(arch, 1.0)
    assert all(
        torch.equal(x, y) for x, y in zip(weights(a), weights(b))
    )  # the exported model is the scored one
    plain = evaluator(0).calibrated_subnet(arch, 1.0)
    quarter = ev.calibrated_subnet(arch, 0.25)
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(plain)))
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(quarter)))


@pytest.mark.slow
def test_fine_tuning_an_untrained_supernet_lowers_its_error():
    arch = evaluator(0).spec.largest_arch()
    before = evaluator(0).score(arch)["error"]
    after = evaluator(60).score(arch)["error"]
    assert after < before - 10  # 60 steps on digits take an untrained net far from chance (about 90% error)


@pytest.mark.slow
def test_front_models_fine_tuned_before_export_are_better_and_reexport_alike(tmp_path):
    plain, tuned = evaluator(0), evaluator(0, export_steps=60)
    arch = plain.spec.largest_arch()
    trial = Trial(number=7, params=plain.spec.params_from_arch(arch), state=TrialState.COMPLETE)
    trial = trial.replace(metrics=plain.score(arch))
    before = export_model(trial, arch, plain, tmp_path, ["error"], path=tmp_path / "plain.onnx")
    after = export_model(trial, arch, tuned, tmp_path, ["error"], path=tmp_path / "tuned.onnx")
    again = export_model(trial, arch, tuned, tmp_path, ["error"], path=tmp_path / "again.onnx")
    assert before.validation_error == pytest.approx(trial.metrics["error"])  # untouched: what was scored
    assert after.validation_error < before.validation_error - 10  # an untrained supernet: far better after
    assert (after.finetune_steps, before.finetune_steps) == (60, 0)
    assert again.validation_error == after.validation_error and again.test_error == after.test_error
    meta = ort.InferenceSession(str(tmp_path / "tuned.onnx")).get_modelmeta().custom_metadata_map
    assert meta["hwnas.export_finetune_steps"] == "60"
    assert json.loads(meta["hwnas.validation_error"]) == pytest.approx(after.validation_error)
