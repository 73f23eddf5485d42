"""One search run: config, candidate evaluation, distributed evaluation, front export, the run directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_exports

if TYPE_CHECKING:
    from nas._errors import RunError
    from nas.run._api import search
    from nas.run._config import ConfigError, SearchConfig, load_config, resume_config
    from nas.run._distributed import EvaluationPool, executor_for
    from nas.run._evaluator import CandidateEvaluator
    from nas.run._experiment import Experiment, SearchResult
    from nas.run._export import export_onnx, read_metadata, verify_onnx
    from nas.run._front import ModelRecord, export_model, load_trained_members, reexport
    from nas.run._locks import ClusterError, MeasureLock
    from nas.run._lut import arch_parts, measure_table, predict_latency
    from nas.run._recipe import EvaluatorRecipe

# Names are imported on first use, so that `import nas` (and `hwnas --help`) does not load torch.
_EXPORTS: dict[str, str] = {
    "CandidateEvaluator": "nas.run._evaluator",
    "ClusterError": "nas.run._locks",
    "ConfigError": "nas.run._config",
    "EvaluationPool": "nas.run._distributed",
    "EvaluatorRecipe": "nas.run._recipe",
    "Experiment": "nas.run._experiment",
    "MeasureLock": "nas.run._locks",
    "ModelRecord": "nas.run._front",
    "RunError": "nas._errors",
    "SearchConfig": "nas.run._config",
    "SearchResult": "nas.run._experiment",
    "search": "nas.run._api",
    "arch_parts": "nas.run._lut",
    "executor_for": "nas.run._distributed",
    "export_model": "nas.run._front",
    "export_onnx": "nas.run._export",
    "load_config": "nas.run._config",
    "load_trained_members": "nas.run._front",
    "measure_table": "nas.run._lut",
    "predict_latency": "nas.run._lut",
    "read_metadata": "nas.run._export",
    "reexport": "nas.run._front",
    "resume_config": "nas.run._config",
    "verify_onnx": "nas.run._export",
}

__all__ = [
    "CandidateEvaluator",
    "ClusterError",
    "ConfigError",
    "EvaluationPool",
    "EvaluatorRecipe",
    "Experiment",
    "MeasureLock",
    "ModelRecord",
    "RunError",
    "SearchConfig",
    "SearchResult",
    "arch_parts",
    "executor_for",
    "export_model",
    "export_onnx",
    "load_config",
    "load_trained_members",
    "measure_table",
    "predict_latency",
    "read_metadata",
    "reexport",
    "resume_config",
    "search",
    "verify_onnx",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
