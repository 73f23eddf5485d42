"""Datasets: the built-in digits and digits-hard, CIFAR-10 from its pickles, and any torch ``Dataset``."""

from nas.data._loaders import (
    AVAILABLE_DATASETS,
    DatasetError,
    DataSplits,
    dataset_shape,
    from_datasets,
    load_cifar10,
    load_dataset,
    load_digits,
    load_digits_hard,
)

__all__ = [
    "AVAILABLE_DATASETS",
    "dataset_shape",
    "DatasetError",
    "DataSplits",
    "from_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_digits_hard",
]
