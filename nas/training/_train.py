"""Supernet training with the sandwich rule and in-place distillation, resumable from a checkpoint.

Every step trains the largest arch on the labels and, on the same batch, the smallest arch and
``num_random`` random archs on the largest one's detached predictions (BigNAS / Once-for-All style);
their gradients add up before one optimizer step. ``distill`` below 1 mixes the labels back into the
smaller archs' loss. ``average_last`` ends training with the uniform mean of the weights over the last
part of the schedule (stochastic weight averaging) instead of the last step's weights. ``shift`` and
``flip`` augment each batch (random translation, random horizontal flip) before every arch sees it.

Randomness is explicit and local: the batch order, the sampled archs, dropout and the augmentation of
epoch ``e`` are drawn from generators seeded from ``(seed, e)``, never from state carried over from earlier
epochs. That makes a run resumed from any epoch's checkpoint bit-identical (on CPU) to one that never
stopped, with no generator state to save; the global torch generator is restored after training.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nas.spaces._protocol import ElasticSupernet
from nas.spaces._registry import space_ref

__all__ = ["TrainResult", "augment_batch", "train_supernet"]

_CHECKPOINT_FORMAT = 1

#: ``on_epoch(epoch, total, loss, seconds)``: epochs done so far (1-based), epochs in all, mean loss of the
#: largest arch over that epoch, and its wall time in seconds.
EpochCallback = Callable[[int, int, float, float], None]


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
) -> TrainResult:
    """Trains ``supernet`` in place with the sandwich rule and in-place distillation.

    Optimizer: SGD with Nesterov momentum; learning rate follows a cosine from ``lr`` to 0 over all steps.
    Weight decay applies to convolution and linear weights only (not to BN, biases or kernel transforms).
    The supernet is left in eval mode.

    With ``checkpoint_path``, a checkpoint (model, optimizer, scheduler, epoch, per-epoch losses and times)
    is written atomically after every epoch. If the file already exists, training resumes after its last
    epoch (a finished training only loads the weights and returns); it must come from a call with the same
    settings, or ``ValueError`` says which differ.

    Args:
        supernet: The supernet to train; its device is used for the computation.
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
    device = next(supernet.parameters()).device
    # A lone sample in the last batch would make batch norm fail; drop it (it is reshuffled next epoch).
    drop_last = num_samples > batch_size and num_samples % batch_size == 1
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
    checkpoint = _load_checkpoint(checkpoint_path, device)
    if checkpoint is not None:
        _check_config(checkpoint["config"], config, checkpoint_path)
        supernet.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = int(checkpoint["epoch"])
        epoch_losses = [float(v) for v in checkpoint["epoch_losses"]]
        epoch_seconds = [float(v) for v in checkpoint["epoch_seconds"]]
        last_distill = float(checkpoint["distill_loss"])
        if "average" in checkpoint:
            average.load_state_dict(checkpoint["average"])

    rng_devices = [device] if device.type != "cpu" else []
    with torch.random.fork_rng(devices=rng_devices, device_type=device.type):
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            states = np.random.SeedSequence([seed, epoch]).generate_state(4)
            loader_seed, arch_seed, dropout_seed, augment_seed = (int(v) for v in states)
            torch.manual_seed(dropout_seed)
            loader = DataLoader(
                train_set,
                batch_size=batch_size,
                shuffle=True,
                drop_last=drop_last,
                generator=torch.Generator().manual_seed(loader_seed),
            )
            batches = _to_device(loader, device)
            if shift or flip:
                augment_rng = torch.Generator().manual_seed(augment_seed)
                batches = (
                    (augment_batch(x, augment_rng, shift=shift, flip=flip, fill=fills), y) for x, y in batches
                )
            arch_rng = np.random.default_rng(arch_seed)
            loss, last_distill = _train_epoch(
                supernet, batches, optimizer, scheduler, num_random, distill, arch_rng, average
            )
            epoch_losses.append(loss)
            epoch_seconds.append(time.perf_counter() - started)
            if epoch + 1 == epochs:
                # The trained supernet is the average: the last checkpoint holds it, so whatever loads the
                # run's weights later (a re-export, a resumed finished run) gets the scored model.
                average.copy_to_model()
            if checkpoint_path is not None:
                _save_checkpoint(
                    checkpoint_path,
                    {
                        "format": _CHECKPOINT_FORMAT,
                        "config": config,
                        "epoch": epoch + 1,
                        "model": supernet.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch_losses": epoch_losses,
                        "epoch_seconds": epoch_seconds,
                        "distill_loss": last_distill,
                        **({"average": average.state_dict()} if average.active else {}),
                    },
                )
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs, loss, epoch_seconds[-1])
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


def _train_epoch(
    supernet: ElasticSupernet,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    num_random: int,
    distill: float,
    rng: np.random.Generator,
    average: _WeightAverage,
) -> tuple[float, float]:
    """One epoch of sandwich steps; returns mean (cross-entropy of the largest, KL of the others)."""
    spec = supernet.spec
    largest, smallest = spec.largest_arch(), spec.smallest_arch()
    supernet.train()
    ce_sum = kd_sum = 0.0
    seen = kd_terms = 0
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        logits = supernet(x, largest)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        teacher = logits.detach().softmax(dim=1)
        # Backward after each arch: gradients accumulate while only one graph is alive at a time.
        for arch in [smallest] + [spec.random_arch(rng) for _ in range(num_random)]:
            student = supernet(x, arch).log_softmax(dim=1)
            kd = F.kl_div(student, teacher, reduction="batchmean")
            sub_loss = kd if distill == 1.0 else distill * kd + (1.0 - distill) * F.nll_loss(student, y)
            sub_loss.backward()
            kd_sum += kd.item() * len(y)
            kd_terms += len(y)
        optimizer.step()
        scheduler.step()
        average.update(scheduler.last_epoch)  # LambdaLR counts steps in last_epoch
        ce_sum += loss.item() * len(y)
        seen += len(y)
    return ce_sum / max(seen, 1), kd_sum / kd_terms if kd_terms else math.nan


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
        self.params = [p for p in model.parameters()]
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


def _to_device(
    loader: DataLoader[tuple[torch.Tensor, int]], device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for x, y in loader:
        yield x.to(device, torch.float32), torch.as_tensor(y).to(device, torch.long)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay conv/linear weights only: decaying BN, biases or the identity-initialised kernel transforms
    would pull them towards zero, which is not a simpler model."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or ".transforms." in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _load_checkpoint(path: str | os.PathLike[str] | None, device: torch.device) -> dict[str, Any] | None:
    if path is None or not Path(path).exists():
        return None
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is not worth failing a run for: start afresh
        warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", RuntimeWarning, stacklevel=3)
        return None
    keys = {"format", "config", "epoch", "model", "optimizer", "scheduler"}
    keys |= {"epoch_losses", "epoch_seconds", "distill_loss"}
    if (
        not isinstance(checkpoint, dict)
        or not keys <= set(checkpoint)
        or checkpoint["format"] != _CHECKPOINT_FORMAT
    ):
        warnings.warn(f"ignoring incomplete checkpoint {path}", RuntimeWarning, stacklevel=3)
        return None
    return checkpoint


#: Settings added after the checkpoint format was fixed, with the value older checkpoints were trained with.
_LATER_SETTINGS: dict[str, Any] = {
    "distill": 1.0,
    "average_last": 0.0,
    "shift": 0,
    "flip": False,
    "fill": None,
    "zero_init_residual": False,
    "space": "mobilenet",
}


def _check_config(
    saved: dict[str, Any], current: dict[str, Any], path: str | os.PathLike[str] | None
) -> None:
    saved = {**_LATER_SETTINGS, **saved}
    differ = sorted(k for k in current if saved.get(k) != current[k])
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {current[k]!r} now" for k in differ if k != "spec")
        if "spec" in differ:
            detail = ", ".join(filter(None, ["the supernet spec differs", detail]))
        raise ValueError(
            f"checkpoint {path} was written with other settings ({detail}); "
            "use the same settings or another checkpoint_path"
        )


def _save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Writes to a temporary file in the same folder, then renames it over ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
