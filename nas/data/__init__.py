"""Datasets: the built-in digits and digits-hard, CIFAR-10 from its pickles, image folders of the user's own
classes, and any torch ``Dataset``.

Modules: ``_splits`` (:class:`DataSplits`, the seeded stratified split), ``_digits``, ``_cifar``, ``_folder``,
``_torch`` (:func:`from_datasets`) and ``_registry`` (datasets by name).
"""

from nas.data._cifar import load_cifar10
from nas.data._digits import load_digits, load_digits_hard
from nas.data._folder import IMAGE_EXTENSIONS, load_folder
from nas.data._registry import AVAILABLE_DATASETS, dataset_shape, load_dataset
from nas.data._splits import DatasetError, DataSplits
from nas.data._torch import from_datasets

__all__ = [
    "AVAILABLE_DATASETS",
    "IMAGE_EXTENSIONS",
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
