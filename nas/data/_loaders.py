"""Datasets: the built-in ``digits`` and ``digits-hard``, CIFAR-10 from a local folder, or any torch ``Dataset``.

Every loader returns a :class:`DataSplits`: train, validation and test datasets that yield
``(image, label)`` pairs, where ``image`` is a float32 tensor of shape ``C x H x W`` (square) and ``label``
an ``int`` in ``[0, num_classes)``. Built-in loaders scale pixels to ``[0, 1]`` and then normalise each
channel with the mean and standard deviation of the *training* split only, so that no statistic of the
validation or test images leaks into training. Splits are stratified by class and fixed by a seed.

Nothing is ever downloaded: ``digits`` ships with scikit-learn (``digits-hard`` is made from it) and CIFAR-10 is read from a folder the user
already has.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

__all__ = [
    "AVAILABLE_DATASETS",
    "DataSplits",
    "DatasetError",
    "from_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_digits_hard",
]

AVAILABLE_DATASETS: tuple[str, ...] = ("digits", "digits-hard", "cifar10")
"""Names accepted by :func:`load_dataset`."""

ImageDataset = Dataset[tuple[torch.Tensor, int]]
"""A map-style dataset yielding ``(float32 tensor C x H x W, int label)``."""

_CIFAR_DIRNAME = "cifar-10-batches-py"
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch"
_CIFAR_META_FILE = "batches.meta"
_CIFAR_FILES = (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE, _CIFAR_META_FILE)
_CIFAR_SIDE = 32
_CIFAR_CHANNELS = 3
_CIFAR_CLASSES = 10


class DatasetError(ValueError):
    """A dataset cannot be found, read or used; the message says what is wrong and what is expected."""


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
            produced as ``(pixel / max_pixel - mean) / std``.
        std: Per-channel standard deviation the images were divided by, same units as ``mean``.
        class_names: One name per class, in label order.

    Example:
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
    return len(dataset)  # type: ignore[arg-type]


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


# --------------------------------------------------------------------------------------------- splitting


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


# ------------------------------------------------------------------------------------------------ digits


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

    def make(indices: np.ndarray) -> _LabelledTensorDataset:
        return _LabelledTensorDataset(
            torch.from_numpy(normalised[indices]), torch.from_numpy(labels[indices]), indices
        )

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
    )


# ---------------------------------------------------------------------------------------------- CIFAR-10


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
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


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
    )


# ------------------------------------------------------------------------------------- custom datasets


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
        if len(dataset) == 0:  # type: ignore[arg-type]
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
    )


# ------------------------------------------------------------------------------------------- dispatch

_LOADERS: dict[str, Callable[..., DataSplits]] = {
    "digits": load_digits,
    "digits-hard": load_digits_hard,
    "cifar10": load_cifar10,
}


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, seed: int = 0, **kw: Any
) -> DataSplits:
    """Loads a built-in dataset by name.

    Args:
        name: One of :data:`AVAILABLE_DATASETS` (``"digits"``, ``"digits-hard"``, ``"cifar10"``).
        root: Local folder of the data; required for ``cifar10`` (see :func:`load_cifar10`), not accepted
            for ``digits`` and ``digits-hard``, which are made from scikit-learn's digits.
        seed: Seed of the split.
        **kw: Further options of the loader: ``val_fraction``, ``test_fraction`` for digits (and
            ``copies``, ``noise`` for digits-hard);
            ``val_fraction``, ``limit`` for cifar10.

    Returns:
        The dataset's splits.

    Raises:
        DatasetError: Unknown name or option, ``root`` missing for cifar10 or given for digits, or any
            error of the loader.

    Example:
        >>> load_dataset("digits", seed=1).input_shape
        (1, 8, 8)
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key is None or key not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(AVAILABLE_DATASETS)}")
    loader = _LOADERS[key]
    options = [p for p in inspect.signature(loader).parameters if p not in ("root", "seed")]
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise DatasetError(
            f"unknown option(s) {', '.join(unknown)} for dataset {key!r}; valid: {', '.join(options)}"
        )
    if key == "cifar10":
        if root is None:
            raise DatasetError(
                "dataset 'cifar10' needs root: the local folder holding CIFAR-10's python batches "
                f"(or its parent containing {_CIFAR_DIRNAME}/); hwnas downloads nothing"
            )
        return load_cifar10(root, seed=seed, **kw)
    if root is not None:
        raise DatasetError(f"dataset {key!r} ships with scikit-learn and takes no root; got root={root!r}")
    return loader(seed=seed, **kw)


#: (channels, image size, classes) of the built-in datasets, known without reading them.
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 10),
    "digits-hard": (1, DIGITS_HARD_CANVAS, 10),
    "cifar10": (3, 32, 10),
}


def dataset_shape(name: str, *, root: str | os.PathLike[str] | None = None) -> tuple[int, int, int]:
    """``(channels, image size, classes)`` of a built-in dataset, without loading it.

    Example:
        >>> dataset_shape("digits")
        (1, 8, 10)
    """
    if name not in DATASET_SHAPES:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASET_SHAPES)}")
    return DATASET_SHAPES[name]
