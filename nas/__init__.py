"""Orchestration: supernet search spaces, training, evaluation, export, experiments and the CLI.

Example:
    >>> from nas import SupernetSpec
    >>> SupernetSpec().num_subnets() > 10**6
    True
"""

from nas.data._loaders import (
    AVAILABLE_DATASETS,
    DatasetError,
    DataSplits,
    from_datasets,
    load_cifar10,
    load_dataset,
    load_digits,
    load_digits_hard,
)
from nas.report._importance import group_importance, param_importance
from nas.report._report import ReportError, ReportFiles, write_report
from nas._errors import RunError
from nas.data import (
    AVAILABLE_DATASETS,
    DatasetError,
    DataSplits,
    from_datasets,
    load_cifar10,
    load_dataset,
    load_digits,
    load_digits_hard,
)
from nas.report import ReportError, ReportFiles, group_importance, param_importance, write_report
from nas.run import (
    CandidateEvaluator,
    ClusterError,
    ConfigError,
    EvaluationPool,
    EvaluatorRecipe,
    Experiment,
    MeasureLock,
    ModelRecord,
    SearchConfig,
    SearchResult,
    arch_parts,
    executor_for,
    export_onnx,
    load_config,
    measure_table,
    predict_latency,
    read_metadata,
    reexport,
    verify_onnx,
)
from nas.spaces import Arch, Subnet, Supernet, SupernetSpec, arch_key, make_divisible
from nas.sustainability import Budgets, SearchTracker
from nas.training import TrainResult, augment_batch, evaluate_error, evaluate_subnet, recalibrate_bn, train_supernet

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
