"""The front of a run: exporting its models, the files derived from the study, re-exporting one model."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas._errors import RunError
from nas._schemas import ModelEntry, ObjectiveEntry, ParetoFile
from nas.data import DataSplits, load_dataset
from nas.run._config import (
    SearchConfig,
    data_root,
    loader_options,
)
from nas.run._evaluator import CandidateEvaluator
from nas.run._export import export_onnx, verify_onnx
from nas.run._rebuild import atomic_write, atomic_write_text, state_of
from nas.spaces import Arch, ElasticSupernet, arch_key, space_from_dict, space_ref
from nas.training._evaluate import evaluate_error
from search import (
    SQLiteStorage,
    Study,
    Trial,
    TrialState,
)

__all__ = ["ModelRecord", "export_front", "export_model", "load_trained_members", "member_checkpoint", "reexport", "write_outputs", "write_trials_csv"]


@dataclass(frozen=True)
class ModelRecord:
    """One exported Pareto model, as ``pareto.json`` lists it."""

    id: int
    arch: Arch
    metrics: Mapping[str, float]
    onnx: str
    test_error: float | None
    max_abs_diff: float
    #: the exported model's own top-1 error (%) on the whole validation split; ``metrics["error"]`` is the
    #: search's estimate (the members' mean, or a share of the split at low fidelity)
    validation_error: float | None = None
    #: the ensemble member whose subnet was exported (0 without an ensemble)
    member: int = 0
    #: fine-tuning steps the model had before export (``evaluation.export_finetune_steps``)
    finetune_steps: int = 0
    #: the INT8 twin's figures (``evaluation.quantize: int8``; see ``nas/run/_int8.py``)
    int8: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "arch": self.arch,
            "metrics": dict(self.metrics),
            "onnx": self.onnx,
            "test_error": self.test_error,
            "validation_error": self.validation_error,
            "member": self.member,
            "finetune_steps": self.finetune_steps,
            "max_abs_diff": self.max_abs_diff,
        }
        return out if self.int8 is None else {**out, "int8": dict(self.int8)}


def export_front(study: Study, evaluator: CandidateEvaluator, run_dir: Path) -> list[ModelRecord]:
    """Exports every distinct Pareto arch of ``study`` to ``run_dir/models/<trial>.onnx``, verified."""
    spec = evaluator.spec
    models: list[ModelRecord] = []
    seen: set[str] = set()
    (run_dir / "models").mkdir(exist_ok=True)
    for trial in sorted(study.best_trials, key=lambda t: t.values or ()):
        arch = spec.arch_from_params(trial.params)
        if arch_key(arch) in seen:
            continue
        seen.add(arch_key(arch))
        models.append(export_model(trial, arch, evaluator, run_dir, [o.name for o in study.objectives]))
    return models


def export_model(
    trial: Trial,
    arch: Arch,
    evaluator: CandidateEvaluator,
    run_dir: Path,
    objective_names: list[str],
    *,
    path: Path | None = None,
) -> ModelRecord:
    """Exports one trial's arch as a standalone ONNX model, checks it against PyTorch, scores it on the
    validation and test splits.

    With an ensemble of supernets, the subnet of the member that scored best for this arch is exported;
    with ``export_finetune_steps``, after that many steps of fine-tuning.
    """
    member = int(trial.metrics.get("member", 0))
    if member >= len(evaluator.members):
        raise RunError(
            f"trial {trial.number} was scored best by supernet member {member}, and this run has "
            f"{len(evaluator.members)} member(s)"
        )
    model = evaluator.export_subnet(arch, member=member)
    validation_error = float(evaluate_error(model, evaluator.data.val))
    # A dataset given through the Python API may have no test split: the model then has no test error.
    test_error = None if evaluator.data.test is None else float(evaluate_error(model, evaluator.data.test))
    target = path if path is not None else run_dir / "models" / f"{trial.number}.onnx"
    rel = os.path.relpath(target, run_dir)
    metrics = {k: float(v) for k, v in trial.metrics.items() if isinstance(v, (int, float))}
    data = evaluator.data
    metadata = {
        "hwnas.arch": json.dumps(arch),
        "hwnas.trial": str(trial.number),
        "hwnas.metrics": json.dumps(metrics),
        "hwnas.test_error": json.dumps(test_error),
        "hwnas.validation_error": json.dumps(validation_error),
        "hwnas.member": str(member),
        "hwnas.export_finetune_steps": str(evaluator.export_finetune_steps),
        "hwnas.space": space_ref(evaluator.space),
        "hwnas.supernet": json.dumps(evaluator.space.to_dict()),
        "hwnas.dataset": data.name,
        "hwnas.input_shape": json.dumps(list(data.input_shape)),
        "hwnas.normalize": json.dumps({"mean": list(data.mean), "std": list(data.std)}),
        # input = (pixel / pixel_scale - mean) / std; output k is class_names[k]
        "hwnas.pixel_scale": json.dumps(float(data.pixel_scale)),
        "hwnas.class_names": json.dumps(list(data.class_names)),
        "hwnas.profile": evaluator.profile.name,
    }
    path = export_onnx(model, target, data.input_shape, metadata=metadata, exporter=evaluator.exporter)
    check = verify_onnx(model, path, data.input_shape)
    return ModelRecord(
        id=trial.number,
        arch=arch,
        metrics={n: metrics[n] for n in objective_names}
        | {k: v for k, v in metrics.items() if k not in objective_names},
        onnx=rel,
        test_error=test_error,
        max_abs_diff=float(check.max_abs_diff),
        validation_error=validation_error,
        member=member,
        finetune_steps=evaluator.export_finetune_steps,
    )


def write_outputs(
    run_dir: Path,
    study: Study,
    models: list[ModelRecord],
    *,
    energy_detail: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """``pareto.json``, ``trials.csv`` and ``pareto.png``, all derived from the study.

    ``pareto.json`` records the study it was derived from (``study``: its trials and finished trials, so a
    resume can tell when it is behind) and feasibility: ``feasible`` at the top says whether any trial met
    the constraints, and each model says whether it meets them.
    """
    objectives = study.objectives
    trials = study.trials
    methods = {t.number: t.metrics.get("energy_method") for t in trials}
    violation = {t.number: t.violation for t in trials}
    feasible_any = any(t.state is TrialState.COMPLETE and not t.violation for t in trials)
    pareto = ParetoFile(
        objectives=[ObjectiveEntry.model_validate(o.to_dict()) for o in objectives],
        hypervolume=study.hypervolume(),
        reference={o.name: o.reference for o in objectives},
        models=[
            ModelEntry.model_validate(
                {
                    **m.to_dict(),
                    **({"energy_method": methods[m.id]} if methods.get(m.id) else {}),
                    "feasible": not violation.get(m.id),
                }
            )
            for m in models
        ],
        energy=None if energy_detail is None else {"per": "inference", "unit": "mJ", "detail": energy_detail},
        feasible=feasible_any,
        study=state_of(trials).signature(),
        warnings=list(study.storage.get_meta("warnings") or []),
        **(extra or {}),  # fields of ParetoFile other writers fill: fronts per profile, latency transfer
    )
    atomic_write_text(run_dir / "pareto.json", pareto.to_json())
    write_trials_csv(run_dir / "trials.csv", study)
    from nas.report._plots import plot_front

    plot_front(study, run_dir / "pareto.png", highlight={m.id for m in models})


def write_trials_csv(path: Path, study: Study) -> None:
    """One row per trial: state, fidelity, objectives, other metrics, violation, duration, the energy the search
    spent on it (``search_energy_kwh`` and its method), failure, arch."""
    trials = study.trials
    names = [o.name for o in study.objectives]
    extra = sorted({k for t in trials for k in t.metrics} - set(names))

    def write(fh: Any) -> None:
        w = csv.writer(fh)
        w.writerow([
            "number", "state", "fidelity", *names, *extra, "violation", "duration_s",
            "search_energy_kwh", "search_energy_method", "failure", "arch",
        ])  # fmt: skip
        for t in trials:
            arch = t.attrs.get("arch", dict(t.params))
            w.writerow([
                t.number, t.state.value, t.fidelity, *[_fmt(t.metrics.get(n)) for n in [*names, *extra]],
                _fmt(t.violation), _fmt(t.duration_s), _fmt(t.attrs.get("energy_kwh")),
                t.attrs.get("energy_method") or "", t.error or "", json.dumps(arch, separators=(",", ":")),
            ])  # fmt: skip

    atomic_write(path, write, newline="", encoding="utf-8")


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back as the same float
    return str(v)


def member_checkpoint(run_dir: Path, member: int) -> Path:
    """Where supernet ``member`` of a run is checkpointed: ``supernet.pt`` for the first (the only one
    without an ensemble), ``supernet-<k>.pt`` for member k >= 1."""
    return run_dir / ("supernet.pt" if member == 0 else f"supernet-{member}.pt")


def load_trained_members(
    run_dir: str | Path, *, data: DataSplits | None = None
) -> tuple[SearchConfig, DataSplits, tuple[ElasticSupernet, ...]]:
    """The config, data and trained supernets of a run directory: one, or ``supernet.members`` of them."""
    from nas.run._config import ConfigError, load_config

    run = Path(run_dir)
    if not (run / "config.yaml").is_file() or not (run / "study.db").is_file():
        raise RunError(f"{run} is not an hwnas run directory (it needs config.yaml and study.db)")
    try:
        config = load_config(run / "config.yaml")
    except ConfigError as e:
        raise RunError(f"{run}/config.yaml cannot be used: {e}") from None
    members = []
    for k in range(config.supernet.members):
        ckpt_path = member_checkpoint(run, k)
        if not ckpt_path.is_file():
            raise RunError(
                f"{run} has no checkpoint of supernet member {k} ({ckpt_path.name}): its training never "
                "finished an epoch"
                if k
                else f"{run} has no supernet checkpoint (supernet.pt): its training never finished an epoch"
            )
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            stored = ckpt["config"]
            space = space_from_dict({"space": stored.get("space", "mobilenet"), "options": stored["spec"]})
            supernet = space.build_supernet(seed=config.seed + k)
            supernet.load_state_dict(ckpt["model"])
        except Exception as e:  # noqa: BLE001 - a damaged file, whatever torch raises: say so in one line
            raise RunError(f"{ckpt_path} cannot be read ({type(e).__name__}: {e})") from None
        members.append(supernet.eval())
    if data is None:
        data = load_dataset(config.data.name, root=data_root(config), seed=config.seed, **loader_options(config))
    return config, data, tuple(members)


def reexport(
    run_dir: str | Path, trial_id: int, *, out: str | Path | None = None, data: DataSplits | None = None
) -> tuple[Path, float]:
    """Re-exports the model of one COMPLETE trial of a finished run; returns its path and max |ONNX - torch|.

    ``data`` is the run's data when it was given from Python; a named dataset is read again by itself.
    """
    run = Path(run_dir)
    config, data, members = load_trained_members(run, data=data)
    storage = SQLiteStorage(run / "study.db")
    try:
        try:
            trial = storage.get_trial(trial_id)
        except KeyError:
            raise RunError(
                f"{run} has no trial {trial_id} (it has {storage.count()} trials: 0 to {storage.count() - 1})"
            ) from None
        if trial.state is not TrialState.COMPLETE:
            raise RunError(
                f"trial {trial_id} of {run} is {trial.state.value}, not COMPLETE: nothing to export"
            )
        names = [o["name"] for o in storage.get_meta("objectives", [])]
    finally:
        storage.close()
    evaluator = CandidateEvaluator.from_config(config, supernet=members, data=data, measuring=False)
    arch = evaluator.spec.arch_from_params(trial.params)
    target = Path(out) if out is not None else run / "models" / f"{trial_id}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    record = export_model(trial, arch, evaluator, run, names, path=target)
    return target, record.max_abs_diff

