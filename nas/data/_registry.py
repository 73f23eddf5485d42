"""Datasets by name: what ``data.name`` in a config and ``--dataset`` on the command line select."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from nas.data._cifar import CIFAR_DIRNAME, load_cifar10
from nas.data._digits import DIGITS_HARD_CANVAS, load_digits, load_digits_hard
from nas.data._folder import folder_shape, load_folder
from nas.data._splits import DatasetError, DataSplits

__all__ = ["AVAILABLE_DATASETS", "DATASET_SHAPES", "PYTHON_DATASET", "dataset_shape", "load_dataset"]

AVAILABLE_DATASETS: tuple[str, ...] = ("digits", "digits-hard", "cifar10", "folder")
"""Names accepted by :func:`load_dataset`."""

#: ``data.name`` of a run whose data was passed from Python (any torch datasets): recorded, never loaded by name
PYTHON_DATASET = "python"

_LOADERS: dict[str, Callable[..., DataSplits]] = {
    "digits": load_digits,
    "digits-hard": load_digits_hard,
    "cifar10": load_cifar10,
    "folder": load_folder,
}

#: datasets read from a folder the user has, and what that folder must hold
_NEEDS_ROOT = {
    "cifar10": f"the local folder holding CIFAR-10's python batches (or its parent containing {CIFAR_DIRNAME}/)",
    "folder": "the folder of images, one sub-folder per class (root/<class>/<image>)",
}


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, seed: int = 0, **kw: Any
) -> DataSplits:
    """Loads a built-in dataset by name.

    Args:
        name: One of :data:`AVAILABLE_DATASETS` (``"digits"``, ``"digits-hard"``, ``"cifar10"``,
            ``"folder"``).
        root: Local folder of the data; required for ``cifar10`` (see :func:`load_cifar10`) and ``folder``
            (see :func:`load_folder`), not accepted for ``digits`` and ``digits-hard``, which are made from
            scikit-learn's digits.
        seed: Seed of the split.
        **kw: Further options of the loader: ``val_fraction``, ``test_fraction`` for digits (and
            ``copies``, ``noise`` for digits-hard); ``val_fraction``, ``limit`` for cifar10;
            ``image_size``, ``val_fraction``, ``test_fraction``, ``limit``, ``augment``, ``min_scale``,
            ``workers``, ``cache_mb``, ``stats_images`` for folder.

    Returns:
        The dataset's splits.

    Raises:
        DatasetError: Unknown name or option, ``root`` missing for cifar10 or folder or given for digits,
            or any error of the loader.

    Example:
        >>> load_dataset("digits", seed=1).input_shape
        (1, 8, 8)
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key == PYTHON_DATASET:
        raise DatasetError(
            "this run's data was given from Python, so it cannot be read again from a name: pass it again "
            "(nas.search(data=...) or nas.load_run(RUN, data=...))"
        )
    if key is None or key not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(AVAILABLE_DATASETS)}")
    loader = _LOADERS[key]
    options = [p for p in inspect.signature(loader).parameters if p not in ("root", "seed")]
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise DatasetError(
            f"unknown option(s) {', '.join(unknown)} for dataset {key!r}; valid: {', '.join(options)}"
        )
    if key in _NEEDS_ROOT:
        if root is None:
            raise DatasetError(f"dataset {key!r} needs root: {_NEEDS_ROOT[key]}; hwnas downloads nothing")
        return loader(root, seed=seed, **kw)
    if root is not None:
        raise DatasetError(f"dataset {key!r} ships with scikit-learn and takes no root; got root={root!r}")
    return loader(seed=seed, **kw)


#: (channels, image size, classes) of the built-in datasets of fixed shape, known without reading them.
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 10),
    "digits-hard": (1, DIGITS_HARD_CANVAS, 10),
    "cifar10": (3, 32, 10),
}


def dataset_shape(
    name: str, *, root: str | os.PathLike[str] | None = None, image_size: int | None = None
) -> tuple[int, int, int]:
    """``(channels, image size, classes)`` of a built-in dataset, without loading it.

    For ``folder`` the class folders are listed and the image headers read (nothing is decoded);
    ``image_size`` is the side the images are resized to (32 when ``None``).

    Example:
        >>> dataset_shape("digits")
        (1, 8, 10)
    """
    if name == "folder":
        if root is None:
            raise DatasetError(f"dataset 'folder' needs root: {_NEEDS_ROOT['folder']}")
        return folder_shape(root, image_size=32 if image_size is None else image_size)
    if name not in DATASET_SHAPES:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(AVAILABLE_DATASETS)}")
    return DATASET_SHAPES[name]
