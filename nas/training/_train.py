"""Supernet training with the sandwich rule and in-place distillation, resumable from a checkpoint.

Every step trains the largest arch on the labels and, on the same batch, the smallest arch and
``num_random`` random archs on the largest one's detached predictions (BigNAS / Once-for-All style);
their gradients add up before one optimizer step. ``distill`` below 1 mixes the labels back into the
smaller archs' loss. ``average_last`` ends training with the uniform mean of the weights over the last
part of the schedule (stochastic weight averaging) instead of the last step's weights. ``shift`` and
``flip`` augment each batch (random translation, random horizontal flip) before every arch sees it.

Training runs on ``device`` (see :mod:`nas.training._device`) in ``precision`` (autocast; a gradient scaler
for fp16), and data-parallel over the ranks of an initialised ``torch.distributed`` process group (see
:mod:`nas.training._distributed_train`). Checkpoints hold CPU tensors, so a run trained on a GPU resumes or
exports on a machine without one.

Randomness is explicit and local: the batch order, the sampled archs, dropout and the augmentation of
epoch ``e`` are drawn from generators seeded from ``(seed, e)``, never from state carried over from earlier
epochs. That makes a run resumed from any epoch's checkpoint bit-identical (on CPU) to one that never
stopped, with no generator state to save; the global torch generator is restored after training.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from nas.spaces._protocol import ElasticSupernet
from nas.spaces._registry import space_ref
from nas.training._checkpoint import (
    _LATER_SETTINGS,  # noqa: F401 - the benchmarks read it from here
    CHECKPOINT_FORMAT,
    check_config,
    load_checkpoint,
    save_checkpoint,
    to_cpu,
)
from nas.training._device import grad_scaler, prepare_model, resolve_device, resolve_precision
from nas.training._distributed_train import broadcast_model, current_context
from nas.training._loader import batches_on, train_loader
from nas.training._step import (
    BatchCallback,
    EpochCallback,
    batch_reporter,
    end_of_epoch,
    sandwich_step,
    train_epoch,
)

__all__ = [
    "BatchCallback",
    "EpochCallback",
    "TrainResult",
    "augment_batch",
    "sandwich_step",
    "train_supernet",
]


@dataclass(frozen=True)
class TrainResult:
    """Summary of a supernet training.

    Attributes:
        epochs: Epochs completed (equal to the number asked for).
        loss: Mean cross-entropy of the largest arch over the last epoch.
        distill_loss: Mean KL divergence (nats) of the smaller archs from the largest over the last epoch.
        seconds: Wall time of all epochs, those of earlier interrupted runs included, in seconds.
        epoch_losses: ``loss`` of every epoch, first to last.
        epoch_seconds: Wall time of every epoch, in seconds.
        resumed_from: Epochs already done in the checkpoint this run started from (0 for a fresh start).
    """

    epochs: int
    loss: float
    distill_loss: float
    seconds: float
    epoch_losses: tuple[float, ...]
    epoch_seconds: tuple[float, ...]
    resumed_from: int


def train_supernet(
    supernet: ElasticSupernet,
    train_set: Dataset[tuple[torch.Tensor, int]],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-5,
    num_random: int = 2,
    distill: float = 1.0,
    average_last: float = 0.0,
    shift: int = 0,
    flip: bool = False,
    fill: float | Sequence[float] = 0.0,
    seed: int = 0,
    checkpoint_path: str | os.PathLike[str] | None = None,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    workers: int = 0,
) -> TrainResult:
    """Trains ``supernet`` in place with the sandwich rule and in-place distillation.

    Optimizer: SGD with Nesterov momentum; learning rate follows a cosine from ``lr`` to 0 over all steps.
    Weight decay applies to convolution and linear weights only (not to BN, biases or kernel transforms).
    The supernet is left in eval mode.

    With ``checkpoint_path``, a checkpoint (model, optimizer, scheduler, epoch, per-epoch losses and times)
    is written atomically after every epoch. If the file already exists, training resumes after its last
    epoch (a finished training only loads the weights and returns); it must come from a call with the same
    settings, or ``ValueError`` says which differ. Checkpoints are written with CPU tensors and read onto
    the training device, so training may resume on another device.

    Data-parallel: when a ``torch.distributed`` process group with more than one process is initialised (as
    ``torchrun`` and :func:`~nas.training._distributed_train.init_distributed` do), every rank trains on its
    share of each batch of ``batch_size`` images (the schedule is the same as in one process), ranks draw the
    same archs, gradients are averaged every step, and only rank 0 writes the checkpoint and calls
    ``on_epoch`` and ``on_batch``.

    Args:
        supernet: The supernet to train; it is moved to ``device``.
        train_set: Dataset of ``(image, label)``, ``image`` a float tensor ``C x H x W`` and ``label`` an int.
        epochs: Number of passes over ``train_set``.
        batch_size: Images per step.
        lr: Peak learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty on conv and linear weights.
        num_random: Random archs per step besides the largest and the smallest.
        distill: Weight of in-place distillation in the loss of the smaller archs, in ``[0, 1]``; the rest,
            ``1 - distill``, is cross-entropy with the labels. 1 (the default) is pure distillation from
            the largest; 0 trains every arch on the labels alone.
        average_last: Fraction of the steps, at the end, over which the weights are averaged (a running
            mean after every step); the supernet ends with that mean. 0 (the default) keeps the last
            step's weights. Batch-norm statistics are not averaged: subnets are recalibrated anyway.
        shift: Largest random translation, in pixels each way, applied to every training image (each
            image its own offset, the uncovered border set to ``fill``); 0 (the default) disables it.
            See :func:`augment_batch`.
        flip: Flip each training image left-right with probability 1/2 (right for natural images such
            as CIFAR-10, wrong for digits).
        fill: Value of the pixels a shift uncovers, in the units of the input (one per channel, or one
            for all): the normalised value of a black pixel, for example. Only used with ``shift``.
        seed: Seed of batch order, arch sampling, dropout and augmentation (weights are seeded by
            ``Supernet``).
        checkpoint_path: Where to checkpoint and resume from; ``None`` disables both.
        on_epoch: Called after every epoch as ``on_epoch(epoch, total, loss, seconds)``.
        on_batch: Called after every step with a :class:`~nas.training._log.BatchProgress` (images/s, ETA).
        device: Where to train: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``; ``None`` (the
            default) keeps the supernet where it is.
        precision: ``auto``, ``bf16``, ``fp16`` or ``fp32`` (see :func:`~nas.training._device.resolve_precision`;
            ``auto`` is fp32 on the CPU).
        workers: Data-loader worker processes (0: load in this process).

    Returns:
        A :class:`TrainResult`.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> from nas import Supernet, SupernetSpec
        >>> spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
        >>> data = TensorDataset(torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,)))
        >>> train_supernet(Supernet(spec), data, epochs=1, batch_size=16).epochs
        1
    """
    if (
        epochs < 1
        or batch_size < 1
        or num_random < 0
        or seed < 0
        or lr <= 0
        or not 0.0 <= distill <= 1.0
        or not 0.0 <= average_last <= 1.0
        or shift < 0
        or workers < 0
    ):
        raise ValueError(
            "train_supernet needs epochs >= 1, batch_size >= 1, num_random >= 0, seed >= 0, lr > 0, "
            f"0 <= distill <= 1, 0 <= average_last <= 1 and shift >= 0; got epochs={epochs}, "
            f"batch_size={batch_size}, num_random={num_random}, seed={seed}, lr={lr}, distill={distill}, "
            f"average_last={average_last}, shift={shift}"
        )
    num_samples = len(train_set)  # type: ignore[arg-type]
    if num_samples == 0:
        raise ValueError("train_set is empty")
    fills = None
    if shift:
        image = train_set[0][0]
        if shift >= min(image.shape[-2:]):
            raise ValueError(
                f"shift must be smaller than the images ({tuple(image.shape[-2:])} pixels), got {shift}"
            )
        fills = _fill_values(fill, shift, image.shape[0])  # one per channel, checked before any training
    config: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "num_random": num_random,
        "distill": distill,
        "average_last": average_last,
        "shift": shift,
        "flip": bool(flip),
        "fill": fills,
        "seed": seed,
        "num_samples": num_samples,
        "space": space_ref(supernet.space),
        "spec": supernet.space.to_dict(),
        # How the weights began: a resumed run must have begun the same way.
        "zero_init_residual": bool(getattr(supernet, "zero_init_residual", False)),
    }
    device = next(supernet.parameters()).device if device is None else resolve_device(device)
    precision = resolve_precision(precision, device)
    channels_last = prepare_model(supernet, device, precision)
    scaler = grad_scaler(device, precision)
    ctx = current_context()
    if ctx.active and min(batch_size, num_samples) < 2 * ctx.world_size:
        raise ValueError(
            f"data-parallel training over {ctx.world_size} processes needs batches of at least "
            f"{2 * ctx.world_size} images (2 per process, for batch norm), got {min(batch_size, num_samples)}"
        )
    # A last batch with a lone sample on some process would make batch norm fail: drop it (it is reshuffled
    # next epoch).
    rest = num_samples % batch_size
    drop_last = num_samples > batch_size and 0 < rest < 2 * ctx.world_size
    steps_per_epoch = num_samples // batch_size if drop_last else math.ceil(num_samples / batch_size)
    total_steps = epochs * steps_per_epoch

    optimizer = torch.optim.SGD(
        _param_groups(supernet, weight_decay), lr=lr, momentum=momentum, nesterov=momentum > 0
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )

    average = _WeightAverage(supernet, first_step=total_steps - round(average_last * total_steps))
    start_epoch, epoch_losses, epoch_seconds = 0, [], []
    last_distill = math.nan
    checkpoint = load_checkpoint(checkpoint_path, device)
    if checkpoint is not None:
        check_config(checkpoint["config"], config, checkpoint_path)
        supernet.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = int(checkpoint["epoch"])
        epoch_losses = [float(v) for v in checkpoint["epoch_losses"]]
        epoch_seconds = [float(v) for v in checkpoint["epoch_seconds"]]
        last_distill = float(checkpoint["distill_loss"])
        if "average" in checkpoint:
            average.load_state_dict(checkpoint["average"])
        if scaler is not None and "scaler" in checkpoint:
            scaler.load_state_dict(checkpoint["scaler"])
    if ctx.active:
        broadcast_model(supernet)  # identical starting weights whatever each rank loaded or seeded

    rng_devices = [device] if device.type != "cpu" else []
    with torch.random.fork_rng(devices=rng_devices, device_type=device.type):
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            states = np.random.SeedSequence([seed, epoch]).generate_state(4)
            loader_seed, arch_seed, dropout_seed, augment_seed = (int(v) for v in states)
            torch.manual_seed(dropout_seed + ctx.rank)  # ranks see other images: other dropout masks too
            loader = train_loader(
                train_set,
                batch_size=batch_size,
                seed=loader_seed,
                drop_last=drop_last,
                device=device,
                rank=ctx.rank,
                world_size=ctx.world_size,
                workers=workers,
            )
            batches = batches_on(loader, device, channels_last=channels_last)
            if shift or flip:
                augment_rng = torch.Generator().manual_seed(augment_seed)
                batches = (
                    (augment_batch(x, augment_rng, shift=shift, flip=flip, fill=fill), y) for x, y in batches
                )
            arch_rng = np.random.default_rng(arch_seed)  # the same on every rank: the same archs
            report = None
            if on_batch is not None and ctx.is_main:
                report = batch_reporter(on_batch, epoch + 1, epochs, steps_per_epoch, ctx.world_size, started)
            loss, last_distill = train_epoch(
                supernet,
                batches,
                optimizer,
                scheduler,
                num_random,
                distill,
                arch_rng,
                average.update,
                device=device,
                precision=precision,
                scaler=scaler,
                ctx=ctx,
                on_step=report,
            )
            epoch_losses.append(loss)
            epoch_seconds.append(time.perf_counter() - started)
            if epoch + 1 == epochs:
                # The trained supernet is the average: the last checkpoint holds it, so whatever loads the
                # run's weights later (a re-export, a resumed finished run) gets the scored model.
                average.copy_to_model()
            if checkpoint_path is not None and ctx.is_main:
                save_checkpoint(
                    checkpoint_path,
                    to_cpu(
                        {
                            "format": CHECKPOINT_FORMAT,
                            "config": config,
                            "epoch": epoch + 1,
                            "model": supernet.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "epoch_losses": epoch_losses,
                            "epoch_seconds": epoch_seconds,
                            "distill_loss": last_distill,
                            **({"average": average.state_dict()} if average.active else {}),
                            **({"scaler": scaler.state_dict()} if scaler is not None else {}),
                        }
                    ),
                )
            end_of_epoch(on_epoch, ctx, device, (epoch + 1, epochs, loss, epoch_seconds[-1]))
    supernet.eval()
    return TrainResult(
        epochs=epochs,
        loss=epoch_losses[-1],
        distill_loss=last_distill,
        seconds=float(sum(epoch_seconds)),
        epoch_losses=tuple(epoch_losses),
        epoch_seconds=tuple(epoch_seconds),
        resumed_from=start_epoch,
    )


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    shift: int = 0,
    flip: bool = False,
    fill: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """A randomly flipped and translated copy of a batch ``N x C x H x W``, each image drawn on its own.

    ``flip`` mirrors each image left-right with probability 1/2; ``shift`` then moves it by a random
    whole number of pixels in ``[-shift, shift]`` along each axis (the padding-and-random-crop of CIFAR
    training), the uncovered border set to ``fill`` (per channel, or one value for all). Random numbers come
    from ``generator`` (a CPU generator), so the same generator state gives the same batch on any device.

    Example:
        >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
        >>> moved = augment_batch(x, torch.Generator().manual_seed(0), shift=1, fill=-1.0)
        >>> sorted(set(moved.flatten().tolist()) - set(x.flatten().tolist()))
        [-1.0]
    """
    n, c, h, w = images.shape
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(images.device)
        images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
    if not shift:
        return images
    fills = torch.as_tensor(_fill_values(fill, shift, c), dtype=images.dtype, device=images.device)
    padded = fills.reshape(1, -1, 1, 1).expand(n, c, h + 2 * shift, w + 2 * shift).clone()
    padded[:, :, shift : shift + h, shift : shift + w] = images
    top = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(h)).to(images.device)
    cols = (left[:, None] + torch.arange(w)).to(images.device)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _fill_values(
    fill: float | Sequence[float], shift: int, channels: int | None = None
) -> list[float] | None:
    """``fill`` as a list of floats (one per channel when ``channels`` is given); ``None`` without a shift,
    where it does not matter (so it does not tell checkpoints apart)."""
    if not shift:
        return None
    values = [float(fill)] if isinstance(fill, (int, float)) else [float(v) for v in fill]
    if channels is not None:
        if len(values) == 1:
            values *= channels
        elif len(values) != channels:
            raise ValueError(f"fill has {len(values)} values for {channels} channels")
    return values


class _WeightAverage:
    """Running uniform mean of a model's parameters over the optimizer steps numbered ``first_step`` + 1
    onwards (stochastic weight averaging over the end of the schedule); inactive when no step is left."""

    def __init__(self, model: nn.Module, first_step: int) -> None:
        self.first_step = first_step
        self.params = list(model.parameters())
        self.count = 0
        self.mean: list[torch.Tensor] = []

    @property
    def active(self) -> bool:
        return self.count > 0

    def update(self, step: int) -> None:
        """Takes the weights after optimizer step ``step`` (1-based) into the mean, if it is in the window."""
        if step <= self.first_step:
            return
        current = [p.detach() for p in self.params]
        self.count += 1
        if self.count == 1:
            self.mean = [p.clone() for p in current]
        else:
            for mean, now in zip(self.mean, current):
                mean.lerp_(now, 1.0 / self.count)

    def copy_to_model(self) -> None:
        """Puts the mean into the model's parameters (nothing happens before the window opened)."""
        if not self.active:
            return
        with torch.no_grad():
            for param, mean in zip(self.params, self.mean):
                param.copy_(mean)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": [m.clone() for m in self.mean]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.mean = [m.to(p.device) for m, p in zip(state["mean"], self.params)]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay conv/linear weights only: decaying BN, biases or the identity-initialised kernel transforms
    would pull them towards zero, which is not a simpler model."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or ".transforms." in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
