"""Orchestration: supernet search spaces, training, evaluation, export, experiments and the CLI.

Example:
    >>> from nas import SupernetSpec
    >>> SupernetSpec().num_subnets() > 10**6
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from nas.deploy import LoadedRun, load_run
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
        search,
        verify_onnx,
    )
    from nas.spaces import (
        Arch,
        ElasticSupernet,
        SearchSpace,
        SpaceError,
        Subnet,
        Supernet,
        SupernetSpec,
        arch_key,
        make_divisible,
        space_for_input,
        space_from_dict,
        space_to_dict,
    )
    from nas.sustainability import Budgets, SearchTracker
    from nas.training import (
        TrainResult,
        augment_batch,
        evaluate_error,
        evaluate_subnet,
        recalibrate_bn,
        train_supernet,
    )

# Names are imported on first use, so that `import nas` (and `hwnas --help`) does not load torch.
_EXPORTS: dict[str, str] = {
    "AVAILABLE_DATASETS": "nas.data",
    "Arch": "nas.spaces",
    "Budgets": "nas.sustainability",
    "CandidateEvaluator": "nas.run",
    "ClusterError": "nas.run",
    "ConfigError": "nas.run",
    "DataSplits": "nas.data",
    "DatasetError": "nas.data",
    "ElasticSupernet": "nas.spaces",
    "EvaluationPool": "nas.run",
    "EvaluatorRecipe": "nas.run",
    "Experiment": "nas.run",
    "LoadedRun": "nas.deploy",
    "MeasureLock": "nas.run",
    "ModelRecord": "nas.run",
    "ReportError": "nas.report",
    "ReportFiles": "nas.report",
    "RunError": "nas._errors",
    "SearchConfig": "nas.run",
    "SearchResult": "nas.run",
    "search": "nas.run",
    "SearchSpace": "nas.spaces",
    "SearchTracker": "nas.sustainability",
    "SpaceError": "nas.spaces",
    "Subnet": "nas.spaces",
    "Supernet": "nas.spaces",
    "SupernetSpec": "nas.spaces",
    "TrainResult": "nas.training",
    "arch_key": "nas.spaces",
    "arch_parts": "nas.run",
    "augment_batch": "nas.training",
    "evaluate_error": "nas.training",
    "evaluate_subnet": "nas.training",
    "executor_for": "nas.run",
    "export_onnx": "nas.run",
    "from_datasets": "nas.data",
    "group_importance": "nas.report",
    "load_cifar10": "nas.data",
    "load_config": "nas.run",
    "load_dataset": "nas.data",
    "load_digits": "nas.data",
    "load_digits_hard": "nas.data",
    "load_run": "nas.deploy",
    "make_divisible": "nas.spaces",
    "measure_table": "nas.run",
    "param_importance": "nas.report",
    "predict_latency": "nas.run",
    "read_metadata": "nas.run",
    "recalibrate_bn": "nas.training",
    "reexport": "nas.run",
    "space_for_input": "nas.spaces",
    "space_from_dict": "nas.spaces",
    "space_to_dict": "nas.spaces",
    "train_supernet": "nas.training",
    "verify_onnx": "nas.run",
    "write_report": "nas.report",
}

__all__ = [
    "AVAILABLE_DATASETS",
    "Arch",
    "Budgets",
    "CandidateEvaluator",
    "ClusterError",
    "ConfigError",
    "DataSplits",
    "DatasetError",
    "ElasticSupernet",
    "EvaluationPool",
    "EvaluatorRecipe",
    "Experiment",
    "LoadedRun",
    "MeasureLock",
    "ModelRecord",
    "ReportError",
    "ReportFiles",
    "RunError",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "SearchTracker",
    "SpaceError",
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
    "load_run",
    "make_divisible",
    "measure_table",
    "param_importance",
    "predict_latency",
    "read_metadata",
    "recalibrate_bn",
    "reexport",
    "search",
    "space_for_input",
    "space_from_dict",
    "space_to_dict",
    "train_supernet",
    "verify_onnx",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
