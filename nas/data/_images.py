"""Decoding one image of an image folder, and the lazily decoding dataset of a split (see ``_folder``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nas.data._splits import DatasetError

__all__ = ["PIXEL_SCALE"]

PIXEL_SCALE = 255.0
"""The largest value of an 8-bit pixel, which images are divided by."""


@dataclass(frozen=True)
class _Listing:
    """The image files of one split and their labels: paths as a numpy array of file-system bytes, which
    takes a byte per character (not four, as numpy's str) and which forked workers share without copying,
    where a list of Python strings is copied into every worker page by page as reference counts change."""

    paths: np.ndarray
    labels: np.ndarray


def _centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _random_box(width: int, height: int, min_scale: float) -> tuple[int, int, int, int]:
    """A random-resized-crop box (torchvision's algorithm), drawn from torch's generator."""
    area = width * height
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        u = torch.rand(4, dtype=torch.float64).tolist()
        target = area * (min_scale + (1.0 - min_scale) * u[0])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(u[2] * (width - w + 1)), int(u[3] * (height - h + 1))
            return left, top, left + w, top + h
    return _centre_box(width, height)


def _decode(path: str, mode: str, size: int, *, augment: bool, min_scale: float) -> torch.Tensor:
    """One image as a ``uint8`` tensor ``C x size x size`` (see the module docstring for the transform)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            # JPEG only: decode at a reduced scale that still leaves every crop at least ``size`` pixels.
            need = math.ceil(size / math.sqrt(min_scale)) if augment else size
            image.draft(mode, (need, need))
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")
            image = image.convert(mode)
            width, height = image.size
            box = _random_box(width, height, min_scale) if augment else _centre_box(width, height)
            image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
            if augment and float(torch.rand(1)) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            pixels = np.array(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}; remove or replace the file") from None
    tensor = torch.from_numpy(pixels)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


class _FolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """The images of one split, decoded when read; ``(float32 C x S x S normalised, int label)``.

    Attributes:
        indices: For each item, its index in the listing of the folder it was drawn from.
        classes: The class names, in label order.
        workers: DataLoader worker processes the training loop should decode this dataset in.
    """

    def __init__(
        self,
        listing: _Listing,
        indices: np.ndarray,
        *,
        classes: tuple[str, ...],
        mode: str,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        trains_augmented: bool = True,
        min_scale: float = 1.0,
        workers: int = 0,
        cache_bytes: int = 0,
    ) -> None:
        self._paths = listing.paths[indices]
        self._labels = listing.labels[indices]
        self.indices = indices
        self.classes = classes
        self.mode, self.image_size = mode, image_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment, self.min_scale, self.workers = augment, min_scale, workers
        self.trains_augmented = trains_augmented
        channels = 1 if mode == "L" else 3
        std_t = torch.tensor(self.std, dtype=torch.float32).view(channels, 1, 1)
        mean_t = torch.tensor(self.mean, dtype=torch.float32).view(channels, 1, 1)
        self._scale = 1.0 / (PIXEL_SCALE * std_t)
        self._shift = -mean_t / std_t
        self._cache_bytes = 0 if augment else cache_bytes
        self._cache: dict[int, torch.Tensor] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self._labels)

    def pixels(self, index: int) -> torch.Tensor:
        """Item ``index`` as ``uint8`` pixels ``C x S x S``, before normalisation."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        pixels = _decode(
            os.fsdecode(self._paths[index]),
            self.mode,
            self.image_size,
            augment=self.augment,
            min_scale=self.min_scale,
        )
        if self._cached_bytes + pixels.numel() <= self._cache_bytes:
            self._cache[index] = pixels
            self._cached_bytes += pixels.numel()
        return pixels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        return self.pixels(index).to(torch.float32) * self._scale + self._shift, int(self._labels[index])

    @property
    def targets(self) -> list[int]:
        """Every label in item order (read without touching the images)."""
        return self._labels.tolist()

    @property
    def paths(self) -> list[str]:
        """Every image file in item order."""
        return [os.fsdecode(p) for p in self._paths]

    @property
    def for_training(self) -> _FolderDataset:
        """The same images with training augmentation (random resized crop and flip), for the training
        loop; this dataset itself when augmentation is off or already on."""
        if self.augment or not self.trains_augmented:
            return self
        twin = _FolderDataset.__new__(_FolderDataset)
        twin.__dict__.update(self.__dict__)
        twin.augment, twin._cache, twin._cached_bytes, twin._cache_bytes = True, {}, 0, 0
        return twin

    def __getstate__(self) -> dict[str, Any]:
        # a worker process or a remote evaluator decodes again rather than receive the cache
        return {**self.__dict__, "_cache": {}, "_cached_bytes": 0}
