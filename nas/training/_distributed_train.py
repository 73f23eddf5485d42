"""Data-parallel supernet training over ``torch.distributed`` processes, as ``torchrun`` starts them.

Every process (rank) holds the whole supernet and trains it on its share of each batch: the global batch of
``batch_size`` images is drawn from one seeded permutation that every rank computes alike, and rank ``r``
takes every ``world_size``-th image of it from position ``r``. Ranks draw the same sandwich archs in every
step (the arch generator is seeded alike), run the four forward/backward passes locally, and then average
their gradients with one bucketed all-reduce per step, so every rank takes the same optimizer step and the
weights stay identical. Averaging once per step, after all the sandwich's backward passes, is why this
does not wrap the supernet in ``DistributedDataParallel``: its reducer would all-reduce after each of the
four backward passes, and would have to search the graph for the parameters a subnet leaves unused.

Only rank 0 writes checkpoints and calls the progress callbacks; batch-norm running statistics are averaged
over the ranks at the end of every epoch. On CUDA each rank uses ``cuda:<LOCAL_RANK>`` and NCCL; on the CPU,
gloo.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from nas.training._device import resolve_device

__all__ = [
    "DistributedContext",
    "TrainingStopped",
    "all_reduce_gradients",
    "broadcast_model",
    "current_context",
    "init_distributed",
    "shutdown_distributed",
]

#: Bytes of gradients per all-reduce call (DDP's default bucket size).
_BUCKET_BYTES = 25 * 2**20


class TrainingStopped(RuntimeError):
    """Raised on the other ranks when rank 0 stopped a data-parallel training (a budget, an interrupt)."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel training: its rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes checkpoints, logs and the run."""
        return self.rank == 0


def current_context() -> DistributedContext:
    """The context of the initialised default process group, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local)


def launched_distributed(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``torchrun`` (or an equivalent launcher) started this process as one of several.

    Example:
        >>> launched_distributed({"WORLD_SIZE": "2", "RANK": "1"})
        True
    """
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE", "1")) > 1


def init_distributed(
    device: str = "auto", env: Mapping[str, str] | None = None
) -> tuple[DistributedContext, torch.device]:
    """Joins the process group ``torchrun`` set up (when it did) and picks this rank's device.

    Without a launcher (``WORLD_SIZE`` unset or 1) this is a single process on ``resolve_device(device)``.
    Under ``torchrun`` a CUDA request gives rank ``r`` the GPU ``cuda:<LOCAL_RANK>`` (NCCL); a CPU request
    uses gloo.

    Raises:
        DeviceError: the device is not here (e.g. fewer GPUs than processes per node).
    """
    env = os.environ if env is None else env
    if not launched_distributed(env):
        return DistributedContext(), resolve_device(device)
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    local = int(env.get("LOCAL_RANK", rank))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = resolve_device(f"cuda:{local}")
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistributedContext(rank, world, local), chosen


def shutdown_distributed() -> None:
    """Leaves the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_model(model: nn.Module) -> None:
    """Copies rank 0's parameters and buffers to every rank (they start identical whatever their seeds)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_reduce_gradients(params: Iterable[nn.Parameter], world_size: int) -> None:
    """Replaces every gradient by its mean over the ranks, in buckets of about 25 MiB.

    Every rank must hold gradients for the same parameters (they train the same archs each step).
    """
    grads = [p.grad for p in params if p.grad is not None]
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def average_buffers(model: nn.Module, world_size: int) -> None:
    """Averages floating-point buffers (batch-norm running statistics) over the ranks."""
    with torch.no_grad():
        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= world_size


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Sums of ``values`` over the ranks (one all-reduce)."""
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


def _buckets(grads: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for g in grads:
        if bucket and (size + g.numel() * g.element_size() > _BUCKET_BYTES or g.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel() * g.element_size()
    if bucket:
        yield bucket


class ShardedBatchSampler(Sampler[list[int]]):
    """Rank ``rank``'s share of each global batch of one seeded permutation of ``range(num_samples)``.

    The global batches are those a single process would take (``batch_size`` images, the last one dropped
    when ``drop_last``); rank ``r`` takes positions ``r, r + world_size, ...`` of each. Every rank computes
    the same permutation from ``seed``.

    Example:
        >>> [len(b) for b in ShardedBatchSampler(6, 4, seed=0, rank=1, world_size=2, drop_last=False)]
        [2, 1]
    """

    def __init__(
        self, num_samples: int, batch_size: int, *, seed: int, rank: int, world_size: int, drop_last: bool
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed)).tolist()
        for step in range(len(self)):
            chunk = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield chunk[self.rank :: self.world_size]
