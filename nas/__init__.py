"""Orchestration: supernet search spaces, training, evaluation, export, experiments and the CLI.

Example:
    >>> from nas import SupernetSpec
    >>> SupernetSpec().num_subnets() > 10**6
    True
"""

from nas._config import ConfigError, SearchConfig, load_config
from nas._data import (
    AVAILABLE_DATASETS,
    DatasetError,
    DataSplits,
    from_datasets,
    load_cifar10,
    load_dataset,
    load_digits,
    load_digits_hard,
)
from nas._distributed import ClusterError, EvaluationPool, EvaluatorRecipe, MeasureLock, executor_for
from nas._evaluate import evaluate_error, evaluate_subnet, recalibrate_bn
from nas._experiment import CandidateEvaluator, Experiment, ModelRecord, RunError, SearchResult, reexport
from nas._export import export_onnx, read_metadata, verify_onnx
from nas._importance import group_importance, param_importance
from nas._lut import arch_parts, measure_table, predict_latency
from nas._report import ReportError, ReportFiles, write_report
from nas._space import Arch, SupernetSpec, arch_key, make_divisible
from nas._supernet import Subnet, Supernet
from nas._sustainability import Budgets, SearchTracker
from nas._train import TrainResult, augment_batch, train_supernet

__all__ = [
    "AVAILABLE_DATASETS",
    "Arch",
    "Budgets",
    "CandidateEvaluator",
    "ClusterError",
    "ConfigError",
    "DataSplits",
    "DatasetError",
    "EvaluationPool",
    "EvaluatorRecipe",
    "Experiment",
    "MeasureLock",
    "ModelRecord",
    "ReportError",
    "ReportFiles",
    "RunError",
    "SearchConfig",
    "SearchResult",
    "SearchTracker",
    "Subnet",
    "Supernet",
    "SupernetSpec",
    "TrainResult",
    "arch_key",
    "arch_parts",
    "augment_batch",
    "evaluate_error",
    "evaluate_subnet",
    "executor_for",
    "export_onnx",
    "from_datasets",
    "group_importance",
    "load_cifar10",
    "load_config",
    "load_dataset",
    "load_digits",
    "load_digits_hard",
    "make_divisible",
    "measure_table",
    "param_importance",
    "predict_latency",
    "read_metadata",
    "recalibrate_bn",
    "reexport",
    "train_supernet",
    "verify_onnx",
    "write_report",
]
