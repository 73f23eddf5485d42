"""Images of the user's own classes from a folder in the ImageFolder layout, read with Pillow.

Layouts (class names are the folder names, labels their sorted order, as torchvision's ``ImageFolder``)::

    root/<class>/<image>                     split by ``seed`` into train, val and test, stratified by class
    root/train/<class>/<image>               the given split: train/ and val/ (or valid/, validation/),
    root/val/<class>/<image>                 and test/ when present (else the splits have no test set)
    root/test/<class>/<image>

Images are found in any depth below a class folder and may be of any size and of the common formats
(:data:`IMAGE_EXTENSIONS`); hidden files and folders are skipped. Only the file list is kept in memory:
every image is decoded when it is read, in the DataLoader worker processes during training
(``workers``), so a dataset of any size fits. Evaluation images (a deterministic transform) are cached
after their first decoding, up to ``cache_mb``.

Preprocessing:

- Colour: every image is converted to RGB (the alpha channel is dropped), or to grayscale when every
  image of the folder is grayscale. A folder that mixes both is read as RGB, with a warning that names one
  grayscale file.
- Evaluation (validation, test, batch-norm recalibration, fine-tuning and ``DataSplits.train`` itself):
  the largest centred square, resized to ``image_size x image_size`` (a resize of the shorter side
  followed by a centre crop).
- Training: the dataset the training loop reads, ``DataSplits.train.for_training``, takes a random
  resized crop (``min_scale`` to all of the image's area, aspect ratio 3/4 to 4/3) resized to
  ``image_size`` and flips it left-right with probability 1/2: the augmentation of Inception and
  ImageNet training. This is the augmentation of folder data; ``supernet.shift`` and ``supernet.flip``,
  which translate and flip whole batches in :mod:`nas.training`, stay off for it (a search refuses both
  at once).
- Pixels are divided by 255 and each channel normalised with the mean and std of a sample of training
  images (``stats_images``, evaluation transform).

Random numbers of the augmentation come from torch's generator of the process that reads the image: the
training loop seeds it per epoch, and the DataLoader seeds each worker from the loader's generator, so a
training run is reproducible for a given ``workers``.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np

from nas.data._images import PIXEL_SCALE, _decode, _FolderDataset, _Listing
from nas.data._splits import (
    DatasetError,
    DataSplits,
    _channel_stats,
    _check_fraction,
    _check_limit,
    _split_sizes,
    _stratified_order,
)

__all__ = ["IMAGE_EXTENSIONS", "folder_shape", "load_folder"]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp",
)  # fmt: skip
"""File name endings (any case) read as images."""

_SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
#: 16-bit and float pixels: converting them to 8 bits would clip, not scale, so they are refused
_WIDE_MODES = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_LAYOUT = "expected root/<class>/<image> (or root/train/<class>/<image> and root/val/<class>/<image>)"


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p.name))


def _images_below(folder: Path) -> list[str]:
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        found += [
            os.path.join(parent, f)
            for f in sorted(files)
            if _visible(f) and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return found


def _split_layout(root: Path) -> dict[str, Path] | None:
    """The split folders when ``root`` holds train/ and val/ (and maybe test/) and nothing else."""
    dirs = {p.name.lower(): p for p in _class_dirs(root)}
    known = {name: split for split, names in _SPLIT_DIRS.items() for name in names}
    if not dirs or not set(dirs) <= set(known):
        return None
    found = {known[name]: path for name, path in dirs.items()}
    if "train" not in found:
        return None
    if "val" not in found:
        raise DatasetError(
            f"{root} holds {found['train'].name}/ but no val/ (or valid/, validation/) beside it; "
            f"add one, or put the class folders directly in {root} to have them split"
        )
    return found


def _scan(folder: Path, classes: Sequence[str] | None) -> tuple[tuple[str, ...], _Listing]:
    """Class names and the image files of ``folder/<class>/...``; ``classes`` fixes them (val/, test/)."""
    dirs = _class_dirs(folder)
    if not dirs:
        loose = any(p.is_file() and p.name.lower().endswith(IMAGE_EXTENSIONS) for p in folder.iterdir())
        problem = "its images are not sorted into class folders" if loose else "it is empty"
        raise DatasetError(f"no class folders in {folder}: {problem}; {_LAYOUT}")
    names = [d.name for d in dirs]
    if classes is None:
        if len(dirs) < 2:
            raise DatasetError(
                f"{folder} holds one class folder ({names[0]}); a classifier needs at least two: {_LAYOUT}"
            )
        classes = names
    else:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise DatasetError(
                f"class folder {folder / unknown[0]} has no counterpart in the training folder "
                f"(its classes: {', '.join(classes)})"
            )
    paths: list[str] = []
    labels: list[int] = []
    for d in dirs:
        images = _images_below(d)
        if not images:
            raise DatasetError(
                f"class folder {d} holds no images (read: {', '.join(IMAGE_EXTENSIONS)}); "
                "remove it or add its images"
            )
        paths += images
        labels += [list(classes).index(d.name)] * len(images)
    return tuple(classes), _Listing(
        np.array([os.fsencode(p) for p in paths]), np.array(labels, dtype=np.int64)
    )


def _probe(path: str) -> str | Exception:
    """The pixel mode of an image from its header (nothing is decoded), or why it cannot be opened."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return str(image.mode)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return exc


def _probe_all(listings: Sequence[_Listing], root: Path) -> str:
    """Opens every image's header; returns the mode all are read in ("L" or "RGB")."""
    paths = [os.fsdecode(p) for listing in listings for p in listing.paths]
    if len(paths) > 256:  # reading headers waits on the disk: threads overlap the waits
        with ThreadPoolExecutor(max_workers=8) as pool:
            modes = list(pool.map(_probe, paths, chunksize=64))
    else:
        modes = [_probe(p) for p in paths]
    gray = []
    for path, mode in zip(paths, modes):
        if isinstance(mode, Exception):
            raise DatasetError(f"cannot read image {path}: {mode}; remove or replace the file")
        if mode in _WIDE_MODES:
            raise DatasetError(
                f"image {path} has {mode} pixels (16-bit or floating point); hwnas reads 8-bit images: "
                "convert it to 8 bits per channel"
            )
        if mode in _GRAY_MODES:
            gray.append(path)
    if len(gray) == len(paths):
        return "L"
    if gray:
        warnings.warn(
            f"{len(gray)} of {len(paths)} images in {root} are grayscale and the others colour; all are read "
            f"as RGB (e.g. {gray[0]})",
            UserWarning,
            stacklevel=3,
        )
    return "RGB"


def _check_options(
    image_size: object,
    workers: object,
    augment: object,
    min_scale: object,
    cache_mb: object,
    stats_images: object,
) -> tuple[int, int, bool, float, int, int]:
    def positive_int(name: str, value: object, low: int) -> int:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise DatasetError(f"{name} must be an integer >= {low}, got {value!r}")
        return int(value)

    if augment not in (0, 1, True, False) or isinstance(augment, float):
        raise DatasetError(f"augment must be 1 (random resized crop and flip) or 0 (none), got {augment!r}")
    if (
        not isinstance(min_scale, numbers.Real)
        or isinstance(min_scale, bool)
        or not 0 < cast(float, min_scale) <= 1  # typeshed's Real lacks __gt__, which `0 < x` calls
    ):
        raise DatasetError(
            f"min_scale must be a number in (0, 1] (share of the image's area), got {min_scale!r}"
        )
    return (
        positive_int("image_size", image_size, 4),
        positive_int("workers", workers, 0),
        bool(augment),
        float(min_scale),
        positive_int("cache_mb", cache_mb, 0),
        positive_int("stats_images", stats_images, 1),
    )


def _resolve_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"image folder not found: {path}; {_LAYOUT}")
    if not path.is_dir():
        raise DatasetError(f"image folder {path} is a file, not a folder; {_LAYOUT}")
    return path


def _listings(root: Path) -> tuple[tuple[str, ...], dict[str, _Listing], bool]:
    """Class names, the listing of each split folder (or of ``root`` as "all"), and whether split."""
    layout = _split_layout(root)
    if layout is None:
        classes, listing = _scan(root, None)
        return classes, {"all": listing}, False
    classes, train = _scan(layout["train"], None)
    listings = {"train": train}
    for split in ("val", "test"):
        if split in layout:
            listings[split] = _scan(layout[split], classes)[1]
    return classes, listings, True


def folder_shape(root: str | os.PathLike[str], *, image_size: int = 32) -> tuple[int, int, int]:
    """``(channels, image size, classes)`` of an image folder, from its listing and image headers.

    Raises:
        DatasetError: As :func:`load_folder` for a bad folder.
    """
    path = _resolve_root(root)
    classes, listings, _ = _listings(path)
    mode = _probe_all(list(listings.values()), path)
    return (1 if mode == "L" else 3), int(image_size), len(classes)


def load_folder(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    image_size: int = 32,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    limit: int | None = None,
    augment: int = 1,
    min_scale: float = 0.25,
    workers: int = 0,
    cache_mb: int = 256,
    stats_images: int = 512,
) -> DataSplits:
    """Images of the user's own classes in the ImageFolder layout (see the module docstring).

    Every image's header is read once here, so that an unreadable file is named before training starts;
    pixels are decoded only when an item is read.

    Args:
        root: The folder: ``root/<class>/<image>``, or ``root/train/...`` and ``root/val/...``.
        seed: Seed of the split (and of the subsets ``limit`` keeps).
        image_size: Side of the square images the model sees, in pixels.
        val_fraction: Share of all images held out for validation, when the folder is split here.
        test_fraction: Share of all images held out for testing, when the folder is split here.
        limit: If given, keep at most this many images in each split, still stratified, for quick runs.
        augment: 1 to give the training loop random resized crops and flips, 0 for none.
        min_scale: Smallest share of an image's area a random resized crop keeps, in ``(0, 1]``.
        workers: DataLoader worker processes that decode training images (0: the training process).
        cache_mb: Memory for decoded evaluation images (MiB per split); 0 decodes them at every read.
        stats_images: Training images the per-channel mean and std are computed on.

    Returns:
        The splits, ``input_shape == (C, image_size, image_size)`` with ``C`` 1 (every image grayscale)
        or 3, ``class_names`` the class folders' names, ``pixel_scale == 255``.

    Raises:
        DatasetError: The folder is missing or empty, holds one class only, a class folder holds no
            images, an image cannot be read (the file is named), or an option is out of range.

    Example:
        >>> splits = load_folder("~/data/flowers", image_size=64, workers=4)  # doctest: +SKIP
        >>> splits.class_names, splits.input_shape  # doctest: +SKIP
        (('daisy', 'rose', 'tulip'), (3, 64, 64))
    """
    size, workers, augment_on, min_scale, cache_mb, stats_images = _check_options(
        image_size, workers, augment, min_scale, cache_mb, stats_images
    )
    limit = _check_limit(limit)
    path = _resolve_root(root)
    classes, listings, given = _listings(path)
    mode = _probe_all(list(listings.values()), path)
    rng = np.random.default_rng(seed)

    parts: dict[str, tuple[_Listing, np.ndarray]] = {}
    if given:
        for split, listing in listings.items():
            order = (
                _stratified_order(listing.labels, rng)
                if limit is not None
                else np.arange(len(listing.labels))
            )
            parts[split] = (listing, order)
    else:
        listing = listings["all"]
        fractions = {
            "val": _check_fraction("val_fraction", val_fraction),
            "test": _check_fraction("test_fraction", test_fraction),
        }
        sizes = _split_sizes(len(listing.labels), fractions)
        order = _stratified_order(listing.labels, rng)
        bounds = np.cumsum([0, sizes["train"], sizes["val"], sizes["test"]])
        for i, split in enumerate(("train", "val", "test")):
            parts[split] = (listing, order[bounds[i] : bounds[i + 1]])
    if limit is not None:
        parts = {split: (listing, indices[:limit]) for split, (listing, indices) in parts.items()}
    for split, (_, indices) in parts.items():
        if len(indices) == 0:
            raise DatasetError(f"the {split} split of {path} holds no images")

    # Statistics from evenly spaced members of a stratified order of the training images: every class.
    train_listing, train_indices = parts["train"]
    spread = _stratified_order(train_listing.labels[train_indices], np.random.default_rng([seed, 1]))
    sample = train_indices[np.sort(spread[:stats_images])]
    pixels = np.stack(
        [
            _decode(os.fsdecode(train_listing.paths[i]), mode, size, augment=False, min_scale=1.0).numpy()
            for i in sample
        ]
    )
    mean, std = _channel_stats(pixels, PIXEL_SCALE)

    def make(split: str) -> _FolderDataset:
        listing, indices = parts[split]
        return _FolderDataset(
            listing,
            indices,
            classes=classes,
            mode=mode,
            image_size=size,
            mean=mean,
            std=std,
            augment=False,
            trains_augmented=augment_on,
            min_scale=min_scale,
            workers=workers,
            cache_bytes=cache_mb << 20,
        )

    return DataSplits(
        train=make("train"),
        val=make("val"),
        test=make("test") if "test" in parts else None,
        name="folder",
        in_channels=1 if mode == "L" else 3,
        image_size=size,
        num_classes=len(classes),
        mean=mean,
        std=std,
        class_names=classes,
        pixel_scale=PIXEL_SCALE,
    )
