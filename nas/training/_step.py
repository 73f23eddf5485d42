"""One sandwich step and one epoch of them, on any device and precision, over one or several ranks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nas.spaces._protocol import Arch, ElasticSupernet
from nas.training._device import autocast
from nas.training._distributed_train import (
    DistributedContext,
    TrainingStopped,
    all_reduce_gradients,
    all_reduce_sum,
    average_buffers,
)
from nas.training._log import BatchProgress

__all__ = ["BatchCallback", "EpochCallback", "batch_reporter", "end_of_epoch", "sandwich_step", "train_epoch"]

#: ``on_epoch(epoch, total, loss, seconds)``: epochs done so far (1-based), epochs in all, mean loss of the
#: largest arch over that epoch, and its wall time in seconds.
EpochCallback = Callable[[int, int, float, float], None]
#: ``on_batch(progress)``: called after every optimizer step with a :class:`~nas.training._log.BatchProgress`.
BatchCallback = Callable[[BatchProgress], None]

_SINGLE = DistributedContext()


def train_epoch(
    supernet: ElasticSupernet,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    num_random: int,
    distill: float,
    rng: np.random.Generator,
    after_step: Callable[[int], None],
    *,
    device: torch.device,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    ctx: DistributedContext = _SINGLE,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[float, float]:
    """One epoch of sandwich steps; returns mean (cross-entropy of the largest, KL of the others), over all
    ranks. Sums stay on the device until the end of the epoch: no step waits for the GPU to report a loss."""
    spec = supernet.spec
    largest, smallest = spec.largest_arch(), spec.smallest_arch()
    supernet.train()
    ce_sum = torch.zeros((), dtype=torch.float64, device=device)
    kd_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = kd_terms = 0
    for step, (x, y) in enumerate(batches, start=1):
        archs = [largest, smallest] + [spec.random_arch(rng) for _ in range(num_random)]
        ce, kd = sandwich_step(
            supernet, x, y, archs, optimizer, distill=distill, precision=precision, scaler=scaler, ctx=ctx
        )
        scheduler.step()
        after_step(scheduler.last_epoch)  # LambdaLR counts steps in last_epoch
        ce_sum += ce.double() * len(y)
        seen += len(y)
        if len(archs) > 1:
            kd_sum += kd.double() * len(y)
            kd_terms += len(y) * (len(archs) - 1)
        if on_step is not None:
            on_step(step, len(y))
    sums = [float(ce_sum), float(kd_sum), float(seen), float(kd_terms)]
    if ctx.active:
        average_buffers(supernet, ctx.world_size)
        sums = all_reduce_sum(sums, device)
    ce_total, kd_total, seen_total, kd_count = sums
    return ce_total / max(seen_total, 1.0), kd_total / kd_count if kd_count else math.nan


def sandwich_step(
    supernet: ElasticSupernet,
    x: torch.Tensor,
    y: torch.Tensor,
    archs: Sequence[Arch],
    optimizer: torch.optim.Optimizer,
    *,
    distill: float = 1.0,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    ctx: DistributedContext = _SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of the sandwich rule on one batch ``x`` (``N x C x H x W``), labels ``y`` (``N``).

    ``archs[0]`` (the largest) learns from the labels; every other arch from its detached predictions
    (in-place distillation, mixed with the labels when ``distill < 1``). Each arch's backward pass runs right
    after its forward pass, so gradients accumulate while only one graph is alive. Over several ranks the
    gradients are averaged before the step.

    Returns:
        The largest arch's cross-entropy and the sum of the other archs' KL divergences (0-d tensors on the
        device, detached; reading them waits for the device).
    """
    optimizer.zero_grad(set_to_none=True)
    device = x.device
    scale: Callable[[torch.Tensor], torch.Tensor] = scaler.scale if scaler is not None else (lambda t: t)
    with autocast(device, precision):
        logits = supernet(x, archs[0])
        loss = F.cross_entropy(logits.float(), y)
    scale(loss).backward()
    teacher = logits.detach().float().softmax(dim=1)
    kd_total = torch.zeros((), device=device)
    for arch in archs[1:]:
        with autocast(device, precision):
            student = supernet(x, arch).float().log_softmax(dim=1)
        kd = F.kl_div(student, teacher, reduction="batchmean")
        sub_loss = kd if distill == 1.0 else distill * kd + (1.0 - distill) * F.nll_loss(student, y)
        scale(sub_loss).backward()
        kd_total += kd.detach()
    if ctx.active:
        all_reduce_gradients(supernet.parameters(), ctx.world_size)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach(), kd_total


def batch_reporter(
    on_batch: BatchCallback, epoch: int, epochs: int, steps: int, world_size: int, started: float
) -> Callable[[int, int], None]:
    images = 0

    def report(step: int, batch: int) -> None:
        nonlocal images
        images += batch * world_size  # the ranks' shares are (nearly) equal
        on_batch(BatchProgress(epoch, epochs, step, steps, images, time.perf_counter() - started))

    return report


def end_of_epoch(
    on_epoch: EpochCallback | None,
    ctx: DistributedContext,
    device: torch.device,
    args: tuple[int, int, float, float],
) -> None:
    """Calls ``on_epoch`` on rank 0; over several ranks, a stop there (an exception) stops every rank."""
    stop: BaseException | None = None
    if on_epoch is not None and ctx.is_main:
        try:
            on_epoch(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the other ranks heard of it
            stop = e
    if ctx.active and all_reduce_sum([float(stop is not None)], device)[0] and stop is None:
        raise TrainingStopped(f"rank 0 stopped the training after epoch {args[0]}")
    if stop is not None:
        raise stop
