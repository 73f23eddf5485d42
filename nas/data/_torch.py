"""Any map-style torch ``Dataset`` of ``(float32 image C x H x W, int label)`` as :class:`DataSplits`."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from nas.data._splits import DatasetError, DataSplits

__all__ = ["from_datasets"]


def _as_label(value: object) -> int | None:
    """``value`` as an int if it is int-like (int, numpy integer, one-element integer array or tensor)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        integer = not (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool)
        return int(value.item()) if integer else None
    if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.integer):
        return int(value.item())
    return None


def _check_item(item: object, split: str, index: int) -> tuple[tuple[int, int, int], int]:
    """Validates one ``(image, label)`` item; returns the image shape and the label."""
    expected = "items must be (float32 tensor C x H x W with H == W, int label)"
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DatasetError(
            f"{split}[{index}] is a {type(item).__name__}, not an (image, label) pair; {expected}"
        )
    image, raw_label = item
    if not isinstance(image, torch.Tensor):
        raise DatasetError(
            f"{split}[{index}]: image is a {type(image).__name__}, not a torch.Tensor; {expected} "
            "(convert with torch.as_tensor(...).float())"
        )
    if image.dtype != torch.float32:
        raise DatasetError(
            f"{split}[{index}]: image dtype is {image.dtype}, not torch.float32; {expected} "
            "(use image.float())"
        )
    if image.dim() != 3 or image.shape[1] != image.shape[2] or image.shape[0] < 1 or image.shape[1] < 1:
        raise DatasetError(f"{split}[{index}]: image shape is {tuple(image.shape)}; {expected}")
    label = _as_label(raw_label)
    if label is None or label < 0:
        raise DatasetError(f"{split}[{index}]: label {raw_label!r} is not a non-negative int; {expected}")
    c, h, w = image.shape
    return (int(c), int(h), int(w)), label


def _train_labels(dataset: Dataset[Any], split: str) -> list[int]:
    """All labels of ``dataset``, from a ``targets`` attribute when present, else by reading every item."""
    raw: Sequence[object] | None = None
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        raw = dataset.tensors[1].reshape(-1).tolist()
    elif hasattr(dataset, "targets"):
        targets = dataset.targets
        raw = targets.tolist() if isinstance(targets, (torch.Tensor, np.ndarray)) else list(targets)
    if raw is not None and len(raw) == len(dataset):  # type: ignore[arg-type]
        labels = []
        for i, value in enumerate(raw):
            label = _as_label(value)
            if label is None or label < 0:
                raise DatasetError(f"{split} label {i} is {value!r}, not a non-negative int")
            labels.append(label)
        return labels
    return [_check_item(dataset[i], split, i)[1] for i in range(len(dataset))]  # type: ignore[arg-type]


def from_datasets(
    train: Dataset[Any],
    val: Dataset[Any],
    test: Dataset[Any] | None = None,
    *,
    name: str = "custom",
    num_classes: int | None = None,
) -> DataSplits:
    """Wraps any map-style torch datasets of ``(float32 tensor C x H x W, int label)`` as :class:`DataSplits`.

    The image shape is read from the first training item, and the first item of every split is checked
    against it. Without ``num_classes``, the training labels are scanned once (from a ``targets`` attribute
    or a two-tensor ``TensorDataset`` if present, else item by item) and ``num_classes`` is the largest
    label plus one. Images are used as given: :attr:`DataSplits.mean` is 0 and :attr:`DataSplits.std` 1.

    Args:
        train: Training dataset.
        val: Validation dataset (the search's accuracy objective).
        test: Optional held-out test dataset.
        name: Name for reports.
        num_classes: Number of classes; inferred from the training labels when ``None``.

    Returns:
        The wrapped splits (``test`` is ``None`` when none was given).

    Raises:
        DatasetError: A dataset is empty or not map-style, an item is not an ``(image, label)`` pair of the
            expected kind, the splits disagree on the image shape, or a label is out of range.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> images, labels = torch.randn(20, 3, 16, 16), torch.arange(20) % 4
        >>> splits = from_datasets(TensorDataset(images, labels), TensorDataset(images, labels))
        >>> splits.input_shape, splits.num_classes, splits.test is None
        ((3, 16, 16), 4, True)
    """
    if not isinstance(name, str) or not name:
        raise DatasetError(f"name must be a non-empty string, got {name!r}")
    if num_classes is not None and (
        not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 1
    ):
        raise DatasetError(f"num_classes must be a positive int or None, got {num_classes!r}")

    splits = {"train": train, "val": val, "test": test}
    shape: tuple[int, int, int] | None = None
    max_label = -1
    for split, dataset in splits.items():
        if dataset is None:
            continue
        if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
            raise DatasetError(
                f"{split} must be a map-style torch Dataset with __len__ and __getitem__, "
                f"got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise DatasetError(f"{split} dataset is empty")
        item_shape, label = _check_item(dataset[0], split, 0)
        if shape is None:
            shape = item_shape
        elif item_shape != shape:
            raise DatasetError(
                f"{split}[0] has image shape {item_shape} but train[0] has {shape}; all splits must match"
            )
        max_label = max(max_label, label)
    assert shape is not None  # train is never None

    if num_classes is None:
        train_labels = _train_labels(train, "train")
        num_classes = max(train_labels) + 1
        if num_classes < 2:
            raise DatasetError(
                f"the training labels hold only class {train_labels[0]}; pass num_classes= if more exist"
            )
    if max_label >= num_classes:
        raise DatasetError(
            f"label {max_label} (in the first item of a split) is out of range for num_classes={num_classes}"
        )

    class_names = getattr(train, "classes", None)
    if not (isinstance(class_names, (list, tuple)) and len(class_names) == num_classes):
        class_names = [str(i) for i in range(num_classes)]
    channels, size, _ = shape
    return DataSplits(
        train=train,
        val=val,
        test=test,
        name=name,
        in_channels=channels,
        image_size=size,
        num_classes=int(num_classes),
        mean=(0.0,) * channels,
        std=(1.0,) * channels,
        class_names=tuple(str(n) for n in class_names),
        pixel_scale=1.0,
    )
