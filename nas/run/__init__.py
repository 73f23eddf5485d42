"""One search run: config, candidate evaluation, distributed evaluation, front export, the run directory."""

from nas._errors import RunError
from nas.run._config import ConfigError, SearchConfig, load_config, resume_config
from nas.run._distributed import EvaluationPool, executor_for
from nas.run._evaluator import CandidateEvaluator
from nas.run._experiment import Experiment, SearchResult
from nas.run._export import export_onnx, read_metadata, verify_onnx
from nas.run._front import ModelRecord, export_model, load_trained_members, reexport
from nas.run._locks import ClusterError, MeasureLock
from nas.run._lut import arch_parts, measure_table, predict_latency
from nas.run._recipe import EvaluatorRecipe

__all__ = [
    "arch_parts",
    "CandidateEvaluator",
    "ClusterError",
    "ConfigError",
    "EvaluationPool",
    "EvaluatorRecipe",
    "executor_for",
    "Experiment",
    "export_model",
    "export_onnx",
    "load_config",
    "load_trained_members",
    "measure_table",
    "MeasureLock",
    "ModelRecord",
    "predict_latency",
    "read_metadata",
    "reexport",
    "resume_config",
    "RunError",
    "SearchConfig",
    "SearchResult",
    "verify_onnx",
]
