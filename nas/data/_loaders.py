"""The names this package's modules had when they were one file (``from nas.data._loaders import ...``).

Prefer ``from nas.data import ...``; the loaders live in ``_splits``, ``_digits``, ``_cifar``, ``_folder``,
``_torch`` and ``_registry``.
"""

from nas.data._cifar import load_cifar10
from nas.data._digits import DIGITS_HARD_CANVAS, load_digits, load_digits_hard
from nas.data._folder import load_folder
from nas.data._registry import _LOADERS, AVAILABLE_DATASETS, DATASET_SHAPES, dataset_shape, load_dataset
from nas.data._splits import DatasetError, DataSplits
from nas.data._torch import from_datasets

__all__ = [
    "AVAILABLE_DATASETS",
    "DATASET_SHAPES",
    "DIGITS_HARD_CANVAS",
    "_LOADERS",
    "DataSplits",
    "DatasetError",
    "dataset_shape",
    "from_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_digits_hard",
    "load_folder",
]
