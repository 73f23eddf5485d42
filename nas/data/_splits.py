"""What every loader returns (:class:`DataSplits`), the in-memory datasets, and the seeded stratified split.

Every loader returns a :class:`DataSplits`: train, validation and test datasets that yield
``(image, label)`` pairs, where ``image`` is a float32 tensor of shape ``C x H x W`` (square) and ``label``
an ``int`` in ``[0, num_classes)``. Built-in loaders scale pixels to ``[0, 1]`` and then normalise each
channel with the mean and standard deviation of the *training* split only, so that no statistic of the
validation or test images leaks into training. Splits are stratified by class and fixed by a seed.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

__all__ = ["DataSplits", "DatasetError", "ImageDataset"]

ImageDataset = Dataset[tuple[torch.Tensor, int]]
"""A map-style dataset yielding ``(float32 tensor C x H x W, int label)``."""


class DatasetError(ValueError):
    """A dataset cannot be found, read or used; the message says what is wrong and what is expected."""

    def __init__(self, *args: object) -> None:
        message = args[0] if len(args) == 1 else None
        if isinstance(message, str) and message.startswith("Caught DatasetError in DataLoader worker"):
            # Raised again in the main process with the worker's traceback: keep the worker's own line.
            args = (message.rstrip().splitlines()[-1].split("DatasetError: ", 1)[-1],)
        super().__init__(*args)


@dataclass(frozen=True, repr=False)
class DataSplits:
    """Train, validation and test datasets of one image-classification task, with their shape.

    Every dataset yields ``(image, label)``: ``image`` a float32 tensor of shape :attr:`input_shape`,
    ``label`` an ``int`` in ``[0, num_classes)``.

    Attributes:
        train: Dataset the weights are trained on.
        val: Dataset used for model selection (the search's accuracy objective).
        test: Held-out dataset for final reporting; ``None`` when :func:`from_datasets` got none.
        name: Short name of the dataset, e.g. ``"digits"``.
        in_channels: Number of image channels ``C``.
        image_size: Side ``H == W`` of the square images, in pixels.
        num_classes: Number of classes.
        mean: Per-channel mean subtracted from the images, in units of the pixel range scaled to
            ``[0, 1]`` (``pixel / 16`` for digits, ``pixel / 255`` for CIFAR-10). An image ``x`` was
            produced as ``(pixel / pixel_scale - mean) / std``.
        std: Per-channel standard deviation the images were divided by, same units as ``mean``.
        class_names: One name per class, in label order.
        pixel_scale: The largest raw pixel value, which the images were divided by before ``mean`` and
            ``std`` were applied: 16 for digits, 255 for 8-bit images (CIFAR-10, image folders), 1 for
            :func:`from_datasets`, whose images are taken as given. A model's input is
            ``(pixel / pixel_scale - mean) / std``.

    Example:
        >>> from nas.data import load_digits
        >>> splits = load_digits(seed=0)
        >>> splits.input_shape, splits.num_classes
        ((1, 8, 8), 10)
        >>> image, label = splits.train[0]
        >>> tuple(image.shape), isinstance(label, int)
        ((1, 8, 8), True)
    """

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    name: str
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = field(default=())
    pixel_scale: float = 1.0

    def __post_init__(self) -> None:
        for attr in ("in_channels", "image_size", "num_classes"):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DatasetError(f"DataSplits.{attr} must be a positive int, got {value!r}")
        for attr in ("mean", "std"):
            values = getattr(self, attr)
            if len(values) != self.in_channels:
                raise DatasetError(
                    f"DataSplits.{attr} must have one value per channel ({self.in_channels}), got {values!r}"
                )
        if any(not s > 0 for s in self.std):
            raise DatasetError(f"DataSplits.std must be positive for every channel, got {self.std!r}")
        if not self.pixel_scale > 0:
            raise DatasetError(f"DataSplits.pixel_scale must be positive, got {self.pixel_scale!r}")
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.num_classes)))
        elif len(self.class_names) != self.num_classes:
            raise DatasetError(
                f"DataSplits.class_names must have num_classes={self.num_classes} entries, "
                f"got {len(self.class_names)}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        return (self.in_channels, self.image_size, self.image_size)

    @property
    def black(self) -> tuple[float, ...]:
        """The normalised value of a black (zero) pixel, per channel: what a shifted image's uncovered
        border is filled with in training. Zero for :func:`from_datasets`, whose images are taken as given."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the data a model needs to be used: shape, classes and preprocessing.

        Example:
            >>> from nas.data import load_digits
            >>> info = load_digits().describe()
            >>> info["class_names"][:3], info["pixel_scale"]
            (['0', '1', '2'], 16.0)
        """
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "pixel_scale": float(self.pixel_scale),
            "mean": list(self.mean),
            "std": list(self.std),
            "sizes": {split: _len_or_none(getattr(self, split)) for split in ("train", "val", "test")},
        }

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{split}={_len_or_none(getattr(self, split))}" for split in ("train", "val", "test")
        )
        return (
            f"DataSplits(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, {sizes})"
        )


def _len_or_none(dataset: object) -> int | None:
    if dataset is None or not hasattr(dataset, "__len__"):
        return None
    return len(dataset)


class _LabelledTensorDataset(TensorDataset):
    """An in-memory ``TensorDataset`` of ``(image, label)`` that yields labels as plain ``int``.

    Attributes:
        indices: For each item, its index in the source the split was drawn from.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: np.ndarray) -> None:
        super().__init__(images, labels)
        self.indices = indices

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:  # type: ignore[override]
        image, label = super().__getitem__(index)
        return image, int(label)

    @property
    def targets(self) -> list[int]:
        """Every label in item order (read without touching the images)."""
        return [int(y) for y in self.tensors[1].tolist()]


class _Uint8ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images kept as ``uint8`` (4x less memory than float32) and normalised when an item is read.

    Attributes:
        indices: For each item, its index in the source the split was drawn from.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        max_pixel: float,
    ) -> None:
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self._labels = np.asarray(labels, dtype=np.int64)
        self.indices = indices
        channels = images.shape[1]
        # Folding the [0, 1] scaling into the affine map keeps __getitem__ to one multiply-add.
        std_t = torch.tensor(std, dtype=torch.float32).view(channels, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(channels, 1, 1)
        self._scale = 1.0 / (max_pixel * std_t)
        self._shift = -mean_t / std_t

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self._images[index].to(torch.float32) * self._scale + self._shift
        return image, int(self._labels[index])

    @property
    def targets(self) -> list[int]:
        """Every label in item order (read without touching the images)."""
        return self._labels.tolist()


# ----------------------------------------------------------------------------------------- splitting


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(len(labels))`` in which every prefix is stratified by class.

    Each sample gets the key ``(rank + u) / n_c``, where ``rank`` is its position in a random shuffle of its
    class (``n_c`` members) and ``u ~ U[0, 1)``; sorting by key interleaves the classes evenly, so any
    contiguous slice holds each class in proportion to its frequency, to within one sample.
    """
    keys = np.empty(len(labels), dtype=np.float64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        ranks = rng.permutation(len(members))
        keys[members] = (ranks + rng.random(len(members))) / len(members)
    return np.argsort(keys, kind="stable")


def _split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Rounds each fraction of ``n`` to a sample count; the rest goes to ``train``."""
    sizes = {split: round(frac * n) for split, frac in fractions.items()}
    for split, size in sizes.items():
        if size < 1:
            raise DatasetError(
                f"{split}_fraction={fractions[split]} of {n} samples leaves the {split} split empty; "
                f"use a fraction of at least {1 / n:.2g}"
            )
    train = n - sum(sizes.values())
    if train < 1:
        raise DatasetError(f"fractions {fractions} of {n} samples leave no training samples")
    return {"train": train, **sizes}


def _check_fraction(name: str, value: float) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 < float(value) < 1.0:
        raise DatasetError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if not isinstance(limit, numbers.Integral) or isinstance(limit, bool) or limit < 1:
        raise DatasetError(f"limit must be a positive int (samples per split) or None, got {limit!r}")
    return int(limit)


def _channel_stats(images: np.ndarray, max_pixel: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``N x C x H x W`` uint8 pixels, scaled to ``[0, 1]``.

    Works from a histogram of pixel values, which is exact and needs no float copy of the images; counting
    in chunks of rows keeps the temporary integer copies that ``np.bincount`` makes small.
    """
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / max_pixel
    for c in range(images.shape[1]):
        counts = np.zeros(256, dtype=np.int64)
        for start in range(0, len(images), 4096):
            counts += np.bincount(images[start : start + 4096, c].ravel(), minlength=256)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        means.append(mean)
        # A constant channel carries no information; dividing by 1 keeps it finite.
        stds.append(var**0.5 if var > 0 else 1.0)
    return tuple(means), tuple(stds)
