"""CIFAR-10 from a local folder in its python-pickle format (nothing is downloaded)."""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from nas.data._splits import (
    DatasetError,
    DataSplits,
    _channel_stats,
    _check_fraction,
    _check_limit,
    _split_sizes,
    _stratified_order,
    _Uint8ImageDataset,
)

__all__ = ["CIFAR_DIRNAME", "load_cifar10"]

_CIFAR_DIRNAME = "cifar-10-batches-py"
CIFAR_DIRNAME = _CIFAR_DIRNAME
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch"
_CIFAR_META_FILE = "batches.meta"
_CIFAR_FILES = (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE, _CIFAR_META_FILE)
_CIFAR_SIDE = 32
_CIFAR_CHANNELS = 3
_CIFAR_CLASSES = 10


class _ForbiddenPickle(pickle.UnpicklingError):
    """A pickle names a callable that a CIFAR-10 file never contains."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch contains (dicts, lists, bytes and numpy arrays).

    ``pickle`` runs any callable a file names; refusing everything else means a stray file in the data
    folder cannot execute code.
    """

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes into protocol-2 pickles
    }

    def find_class(self, module: str, name: str) -> Callable[..., object]:
        if (module, name) not in self._ALLOWED:
            raise _ForbiddenPickle(f"it references {module}.{name}, which a CIFAR-10 file never does")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy 2 moved numpy.core
        return getattr(importlib.import_module(module), name)


def _resolve_cifar_folder(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    expected = (
        f"expected the folder holding the python version of CIFAR-10 ({', '.join(_CIFAR_FILES)}; "
        f"from cifar-10-python.tar.gz) or its parent containing {_CIFAR_DIRNAME}/. "
        "hwnas downloads nothing: fetch and extract the archive yourself"
    )
    if not path.is_dir():
        problem = "CIFAR-10 root is a file, not a folder" if path.exists() else "CIFAR-10 folder not found"
        raise DatasetError(f"{problem}: {path}; {expected}")
    if not any((path / name).exists() for name in _CIFAR_FILES) and (path / _CIFAR_DIRNAME).is_dir():
        path = path / _CIFAR_DIRNAME
    missing = [name for name in _CIFAR_FILES if not (path / name).is_file()]
    if missing:
        raise DatasetError(f"CIFAR-10 file(s) missing in {path}: {', '.join(missing)}; {expected}")
    return path


def _read_pickle(path: Path) -> dict[bytes, object]:
    hint = "the file may be truncated or corrupt; extract cifar-10-python.tar.gz again"
    try:
        with path.open("rb") as f:
            content = _CifarUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DatasetError(f"cannot read CIFAR-10 file {path}: {exc}") from exc
    except _ForbiddenPickle as exc:
        raise DatasetError(f"refusing to unpickle CIFAR-10 file {path}: {exc}") from exc
    except Exception as exc:  # unpickling fails in many ways (EOFError, UnpicklingError, ValueError, ...)
        raise DatasetError(f"cannot unpickle CIFAR-10 file {path} ({exc}); {hint}") from exc
    if not isinstance(content, dict):
        raise DatasetError(f"CIFAR-10 file {path} holds a {type(content).__name__}, not a dict; {hint}")
    return content


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``(N x 3 x 32 x 32 uint8 images, N int64 labels)``."""
    batch = _read_pickle(path)
    missing = [key.decode() for key in (b"data", b"labels") if key not in batch]
    if missing:
        raise DatasetError(
            f"CIFAR-10 file {path} lacks the key(s) {missing}; a batch is a dict with b'data' and b'labels'"
        )
    data, labels = batch[b"data"], batch[b"labels"]
    row = _CIFAR_CHANNELS * _CIFAR_SIDE * _CIFAR_SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        described = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DatasetError(f"CIFAR-10 file {path}: b'data' must be a uint8 array N x {row}, got {described}")
    try:
        labels_arr = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"CIFAR-10 file {path}: b'labels' must be a list of ints ({exc})") from exc
    if labels_arr.shape != (len(data),):
        raise DatasetError(
            f"CIFAR-10 file {path}: b'labels' must hold one int per image ({len(data)}), "
            f"got shape {labels_arr.shape}"
        )
    if len(labels_arr) and (labels_arr.min() < 0 or labels_arr.max() >= _CIFAR_CLASSES):
        raise DatasetError(
            f"CIFAR-10 file {path}: labels must be in 0..{_CIFAR_CLASSES - 1}, "
            f"got {labels_arr.min()}..{labels_arr.max()}"
        )
    # Each row is channel-major: 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    return data.reshape(-1, _CIFAR_CHANNELS, _CIFAR_SIDE, _CIFAR_SIDE), labels_arr


def _read_cifar_class_names(path: Path) -> tuple[str, ...]:
    meta = _read_pickle(path)
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != _CIFAR_CLASSES:
        raise DatasetError(
            f"CIFAR-10 file {path}: b'label_names' must be a list of {_CIFAR_CLASSES} names, "
            f"got {names!r:.80}"
        )
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    limit: int | None = None,
) -> DataSplits:
    """CIFAR-10 read from a local folder in its standard python-pickle format; nothing is downloaded.

    The training batches are split into train and validation, stratified by class and fixed by ``seed``;
    ``test_batch`` is the test split. Pixels are divided by 255 and each channel normalised with the mean
    and std of the training split. Images stay ``uint8`` in memory and are normalised as they are read.
    Each split's ``indices`` attribute holds, per item, its index in the concatenated training batches
    (train, val) or in ``test_batch`` (test).

    Args:
        root: The folder holding ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``
            (as extracted from ``cifar-10-python.tar.gz``), or its parent containing
            ``cifar-10-batches-py/``.
        seed: Seed of the train/validation split (and of the test subset when ``limit`` is set).
        val_fraction: Fraction of the training batches held out for validation, in ``(0, 1)``.
        limit: If given, keep at most this many samples in each split, still stratified, for quick runs.
            The split is made first, so a limited validation set is a subset of the full one.

    Returns:
        The splits, ``input_shape == (3, 32, 32)``, ``num_classes == 10``.

    Raises:
        DatasetError: The folder or a file is missing, a file cannot be unpickled, or its arrays have the
            wrong type or shape; or an argument is out of range.

    Example:
        >>> splits = load_cifar10("~/data/cifar-10-batches-py", limit=1000)  # doctest: +SKIP
        >>> splits.input_shape, len(splits.train), len(splits.test)  # doctest: +SKIP
        ((3, 32, 32), 1000, 1000)
    """
    fraction = _check_fraction("val_fraction", val_fraction)
    limit = _check_limit(limit)
    folder = _resolve_cifar_folder(root)

    batches = [_read_cifar_batch(folder / name) for name in _CIFAR_TRAIN_FILES]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    test_images, test_labels = _read_cifar_batch(folder / _CIFAR_TEST_FILE)
    class_names = _read_cifar_class_names(folder / _CIFAR_META_FILE)
    if len(test_labels) == 0:
        raise DatasetError(f"CIFAR-10 file {folder / _CIFAR_TEST_FILE} holds no images")

    rng = np.random.default_rng(seed)
    sizes = _split_sizes(len(labels), {"val": fraction})
    order = _stratified_order(labels, rng)
    parts = {"train": order[: sizes["train"]], "val": order[sizes["train"] :]}
    # Every prefix of a stratified order is stratified, so truncating keeps the class balance.
    parts["test"] = _stratified_order(test_labels, rng) if limit is not None else np.arange(len(test_labels))
    if limit is not None:
        parts = {split: indices[:limit] for split, indices in parts.items()}

    max_pixel = 255.0
    mean, std = _channel_stats(images[parts["train"]], max_pixel)

    def make(source: np.ndarray, source_labels: np.ndarray, indices: np.ndarray) -> _Uint8ImageDataset:
        return _Uint8ImageDataset(
            source[indices], source_labels[indices], indices, mean=mean, std=std, max_pixel=max_pixel
        )

    return DataSplits(
        train=make(images, labels, parts["train"]),
        val=make(images, labels, parts["val"]),
        test=make(test_images, test_labels, parts["test"]),
        name="cifar10",
        in_channels=_CIFAR_CHANNELS,
        image_size=_CIFAR_SIDE,
        num_classes=_CIFAR_CLASSES,
        mean=mean,
        std=std,
        class_names=class_names,
        pixel_scale=255.0,
    )
