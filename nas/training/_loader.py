"""The training data loader, in one place: batching, shuffling, sharding over ranks, workers, pinned memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from nas.training._distributed_train import ShardedBatchSampler

__all__ = ["batches_on", "train_loader"]


def train_loader(
    dataset: Dataset[tuple[torch.Tensor, int]],
    *,
    batch_size: int,
    seed: int,
    drop_last: bool,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
) -> DataLoader[tuple[torch.Tensor, int]]:
    """One epoch's shuffled batches of ``dataset``, the order drawn from ``seed`` alone.

    With ``world_size > 1`` this rank gets its share of each global batch of ``batch_size`` images (see
    :class:`~nas.training._distributed_train.ShardedBatchSampler`). ``workers`` decode in worker processes;
    on CUDA the batches are put in pinned memory so that copies to the GPU can overlap computation.
    """
    pin = device.type == "cuda"
    extra: dict[str, Any] = {"num_workers": workers, "persistent_workers": False} if workers else {}
    if world_size > 1:
        sampler = ShardedBatchSampler(
            len(dataset),  # type: ignore[arg-type]
            batch_size,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )
        return DataLoader(dataset, batch_sampler=sampler, pin_memory=pin, **extra)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin,
        **extra,
    )


def batches_on(
    loader: DataLoader[tuple[torch.Tensor, int]], device: torch.device, *, channels_last: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches as ``(float32 images, int64 labels)`` on ``device`` (non-blocking copies from
    pinned memory on CUDA)."""
    non_blocking = device.type == "cuda"
    fmt = torch.channels_last if channels_last else torch.preserve_format
    for x, y in loader:
        x = x.to(device, torch.float32, non_blocking=non_blocking, memory_format=fmt)
        yield x, torch.as_tensor(y).to(device, torch.long, non_blocking=non_blocking)
