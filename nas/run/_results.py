"""The results of a search derived from its study: the front exported (or, when no trial meets the
constraints, only what the user asked for), the files of ``nas/run/_front.py`` written, stale models removed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nas.run._config import SearchConfig
from nas.run._evaluator import CandidateEvaluator
from nas.run._front import ModelRecord, write_outputs
from nas.run._multi import export_all
from nas.run._rebuild import prune_models
from search import Study, TrialState

__all__ = ["export_results", "has_feasible", "infeasible_lines", "least_violating"]


def has_feasible(study: Study) -> bool:
    """Whether any COMPLETE trial meets every constraint (any COMPLETE trial, without constraints)."""
    return any(t.state is TrialState.COMPLETE and not t.violation for t in study.trials)


def least_violating(study: Study) -> tuple[int, float] | None:
    """The COMPLETE trial that violates the constraints least, as ``(number, violation)``."""
    done = [t for t in study.trials if t.state is TrialState.COMPLETE and t.violation is not None]
    if not done:
        return None
    best = min(done, key=lambda t: (float(t.violation or 0.0), t.number))
    return best.number, float(best.violation or 0.0)


def infeasible_lines(run_dir: Path, *, n_trials: int, constraints: Sequence[str], exported: bool) -> list[str]:
    """What the command line says when no trial met the constraints: that, the least-violating trial, where
    the results are."""
    from search import SQLiteStorage

    storage = SQLiteStorage(run_dir / "study.db")
    try:
        done = [t for t in storage.trials() if t.state is TrialState.COMPLETE and t.violation is not None]
    finally:
        storage.close()
    lines = [f"hwnas: no feasible model: none of {n_trials} trials met the constraints ({'; '.join(constraints)})"]
    if done:
        best = min(done, key=lambda t: (float(t.violation or 0.0), t.number))
        lines.append(
            f"  least-violating: trial {best.number} (violation {float(best.violation or 0.0):.4g}), "
            f"{'exported (marked infeasible)' if exported else 'not exported'}; loosen the constraints, "
            f"or export it with: hwnas export {run_dir} --id {best.number}"
        )
    lines.append(f"results: {run_dir}/pareto.json (feasible: false), trials.csv, study.db")
    return lines


def export_results(
    study: Study,
    evaluator: CandidateEvaluator,
    run_dir: Path,
    config: SearchConfig,
    *,
    energy_detail: str | None = None,
) -> list[ModelRecord]:
    """Exports the front and writes ``pareto.json``, ``trials.csv`` and ``pareto.png``; ONNX files of models
    no longer on the front are removed.

    When no trial meets the constraints, no model is exported unless ``search.export_infeasible`` asks for the
    least-violating ones; ``pareto.json`` says ``feasible: false`` either way.
    """
    if has_feasible(study) or config.search.export_infeasible or not config.search.constraints:
        models = export_all(study, evaluator, run_dir, config, energy_detail=energy_detail)
    else:
        models = []
        write_outputs(run_dir, study, models, energy_detail=energy_detail)
    prune_models(run_dir, models)
    return models
