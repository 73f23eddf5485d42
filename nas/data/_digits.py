"""The built-in ``digits`` (scikit-learn's 8x8 handwritten digits) and ``digits-hard`` made from them.

Nothing is downloaded: scikit-learn ships the digits.
"""

from __future__ import annotations

import numbers
from typing import cast

import numpy as np
import torch
from torch.utils.data import Dataset

from nas.data._splits import (
    DatasetError,
    DataSplits,
    _channel_stats,
    _check_fraction,
    _LabelledTensorDataset,
    _split_sizes,
    _stratified_order,
)

__all__ = ["DIGITS_HARD_CANVAS", "load_digits", "load_digits_hard"]


def _digits_split(
    seed: int, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], tuple[str, ...]]:
    """scikit-learn's digits (``N x 1 x 8 x 8`` integers ``0..16``), labels, the stratified split by seed
    (indices per split) and the class names."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    fractions = {
        "val": _check_fraction("val_fraction", val_fraction),
        "test": _check_fraction("test_fraction", test_fraction),
    }
    if fractions["val"] + fractions["test"] >= 1.0:
        raise DatasetError(
            f"val_fraction + test_fraction must be below 1 to leave training samples, "
            f"got {val_fraction} + {test_fraction}"
        )
    bunch = sklearn_load_digits()
    pixels = np.asarray(bunch.data).astype(np.uint8).reshape(-1, 1, 8, 8)  # integers 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    sizes = _split_sizes(len(labels), fractions)
    order = _stratified_order(labels, np.random.default_rng(seed))
    bounds = np.cumsum([0, sizes["train"], sizes["val"], sizes["test"]])
    parts = {split: order[bounds[i] : bounds[i + 1]] for i, split in enumerate(("train", "val", "test"))}
    return pixels, labels, parts, tuple(str(int(name)) for name in bunch.target_names)


def load_digits(*, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> DataSplits:
    """The 8x8 grayscale handwritten digits bundled with scikit-learn (1797 images, 10 classes).

    The split is stratified by class and fixed by ``seed``: the same seed always gives the same split.
    Pixels (``0..16``) are divided by 16 and normalised with the mean and std of the training split.
    Each split is an in-memory ``TensorDataset`` whose ``indices`` attribute holds, per item, its index in
    ``sklearn.datasets.load_digits()``.

    Args:
        seed: Seed of the split.
        val_fraction: Fraction of all images in the validation split, in ``(0, 1)``.
        test_fraction: Fraction of all images in the test split, in ``(0, 1)``; the rest is for training.

    Returns:
        The splits, ``input_shape == (1, 8, 8)``, ``num_classes == 10``.

    Raises:
        DatasetError: A fraction is outside ``(0, 1)`` or the fractions leave a split empty.

    Example:
        >>> splits = load_digits(seed=0)
        >>> len(splits.train), len(splits.val), len(splits.test)
        (1079, 359, 359)
        >>> splits.mean == load_digits(seed=0).mean
        True
    """
    pixels, labels, parts, class_names = _digits_split(seed, val_fraction, test_fraction)
    max_pixel = 16.0
    mean, std = _channel_stats(pixels[parts["train"]], max_pixel)
    normalised = ((pixels / max_pixel - mean[0]) / std[0]).astype(np.float32)

    def make(indices: np.ndarray) -> Dataset[tuple[torch.Tensor, int]]:
        # Typed by torch as a TensorDataset (tuples of tensors); it yields (image, int label).
        dataset = _LabelledTensorDataset(
            torch.from_numpy(normalised[indices]), torch.from_numpy(labels[indices]), indices
        )
        return cast(Dataset[tuple[torch.Tensor, int]], dataset)

    return DataSplits(
        train=make(parts["train"]),
        val=make(parts["val"]),
        test=make(parts["test"]),
        name="digits",
        in_channels=1,
        image_size=8,
        num_classes=10,
        mean=mean,
        std=std,
        class_names=class_names,
        pixel_scale=16.0,
    )


DIGITS_HARD_CANVAS = 10
"""Side of a ``digits-hard`` image: an 8x8 digit placed at one of 3x3 offsets."""


def load_digits_hard(
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    copies: int = 2,
    noise: float = 0.2,
) -> DataSplits:
    """A harder task made from scikit-learn's digits: shifted, cluttered, noisy 10x10 images.

    On plain ``digits`` almost every subnet of the default space reaches 1-3 % error, so subnets are a
    validation image or two apart and neither search strategies nor supernet rankings can be told apart.
    Here each image is one digit at a random offset (0-2 pixels each way) in a 10x10 canvas, over which a
    random 4x4 fragment of another digit of the *same split* is laid (pixel-wise maximum), plus Gaussian
    noise; capacity, depth and kernel size now matter. Everything is drawn from ``seed``.

    The split of the 1797 source digits is exactly that of :func:`load_digits` with the same arguments, so
    no source digit appears in two splits; each split then holds ``copies`` variants of each of its digits.
    Pixels are scaled to ``[0, 1]`` (before noise) and normalised with the training split's statistics.
    The ``indices`` attribute of each split holds, per item, its source index in
    ``sklearn.datasets.load_digits()``.

    Args:
        seed: Seed of the split and of the placement, clutter and noise.
        val_fraction: As for :func:`load_digits`.
        test_fraction: As for :func:`load_digits`.
        copies: Variants of each source digit, in every split (>= 1).
        noise: Standard deviation of the Gaussian pixel noise, in units of the full pixel range (>= 0).

    Returns:
        The splits, ``input_shape == (1, 10, 10)``, ``num_classes == 10``.

    Raises:
        DatasetError: A fraction, ``copies`` or ``noise`` is out of range.

    Example:
        >>> splits = load_digits_hard(seed=0)
        >>> len(splits.train), len(splits.val), splits.input_shape
        (2158, 718, (1, 10, 10))
    """
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 1:
        raise DatasetError(f"copies must be an integer >= 1, got {copies!r}")
    if not isinstance(noise, numbers.Real) or isinstance(noise, bool) or not 0.0 <= float(noise) < 10.0:
        raise DatasetError(f"noise must be a number in [0, 10), got {noise!r}")
    pixels, labels, parts, class_names = _digits_split(seed, val_fraction, test_fraction)
    scaled = pixels[:, 0].astype(np.float32) / 16.0
    side, frag = DIGITS_HARD_CANVAS, 4
    rng = np.random.default_rng([seed, 0x6D68])  # its own stream: the split above is that of load_digits

    def variants(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        source = np.tile(indices, copies)
        n = len(source)
        images = np.zeros((n, side, side), dtype=np.float32)
        shift = rng.integers(0, side - 8 + 1, size=(n, 2))
        others = rng.choice(indices, size=n)  # clutter comes from the same split only
        crop = rng.integers(0, 8 - frag + 1, size=(n, 2))
        place = rng.integers(0, side - frag + 1, size=(n, 2))
        for i in range(n):
            y, x = place[i]
            cy, cx = crop[i]
            images[i, y : y + frag, x : x + frag] = scaled[others[i], cy : cy + frag, cx : cx + frag]
            y, x = shift[i]
            np.maximum(
                images[i, y : y + 8, x : x + 8], scaled[source[i]], out=images[i, y : y + 8, x : x + 8]
            )
        images += rng.normal(0.0, float(noise), size=images.shape).astype(np.float32)
        return images[:, None], source

    made = {split: variants(parts[split]) for split in ("train", "val", "test")}
    train_images = made["train"][0]
    mean, std = (float(train_images.mean()),), (float(train_images.std()),)

    def make(split: str) -> _LabelledTensorDataset:
        images, source = made[split]
        normalised = ((images - mean[0]) / std[0]).astype(np.float32)
        return _LabelledTensorDataset(torch.from_numpy(normalised), torch.from_numpy(labels[source]), source)

    return DataSplits(
        train=make("train"),
        val=make("val"),
        test=make("test"),
        name="digits-hard",
        in_channels=1,
        image_size=side,
        num_classes=10,
        mean=mean,
        std=std,
        class_names=class_names,
        pixel_scale=16.0,
    )
