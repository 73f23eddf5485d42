"""Accuracy of subnets: batch-norm recalibration and top-1 error.

Running statistics in a supernet's batch norms mix every arch trained, so a subnet's statistics are
re-estimated on a few training images before it is validated. Data arguments are torch ``Dataset``\\ s of
``(image, label)``; subsets are evenly spaced over the dataset (deterministic, and every class appears
even when the data is sorted by class).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import Dataset, TensorDataset

from nas.spaces._protocol import ElasticSupernet

__all__ = ["evaluate_error", "evaluate_subnet", "finetune", "recalibrate_bn"]

ImageDataset = Dataset[tuple[Tensor, int]]


def recalibrate_bn(
    model: nn.Module, data: ImageDataset, *, num_samples: int = 256, batch_size: int = 256
) -> None:
    """Re-estimates the running statistics of every batch norm of ``model`` and leaves it in eval mode.

    Statistics are reset, then accumulated as a cumulative average (``momentum=None``) over near-equal
    batches of ``num_samples`` evenly spaced images, with only the batch norms in train mode (dropout off)
    and no gradients. Each layer's ``momentum`` is restored afterwards.

    Args:
        model: A network whose ``forward`` takes only images (e.g. a :class:`~nas.Subnet`; a
            :class:`~nas.Supernet` runs its largest arch).
        data: Dataset of ``(image C x H x W, label)``, usually from the training split.
        num_samples: Images to use (all of them when the dataset is smaller).
        batch_size: Images per forward pass.

    Example:
        >>> from nas import Supernet, SupernetSpec
        >>> spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
        >>> net = Supernet(spec).subnet(spec.smallest_arch())
        >>> recalibrate_bn(net, TensorDataset(torch.randn(64, 1, 8, 8), torch.zeros(64, dtype=torch.long)))
        >>> net.training
        False
    """
    batches = list(_batches(data, _spread(len(data), num_samples), batch_size, _device(model)))  # type: ignore[arg-type]
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in norms]
    if not batches or not norms:
        model.eval()
        return
    with _trimmed_kernels(model, batches[0][0]):
        model.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
            norm.train()
        try:
            with torch.no_grad():
                for x, _ in batches:
                    model(x)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
            model.eval()


def evaluate_error(
    model: nn.Module, data: ImageDataset, *, batch_size: int = 256, fraction: float = 1.0
) -> float:
    """Top-1 error of ``model`` on ``data``, in percent.

    The model runs in eval mode without gradients; its train/eval mode is restored afterwards.

    Args:
        model: Network mapping images ``N x C x H x W`` to logits ``N x num_classes``.
        data: Dataset of ``(image C x H x W, label)``.
        batch_size: Images per forward pass.
        fraction: Share of ``data`` to use, in ``(0, 1]``: a low-fidelity estimate on evenly spaced images
            (the same images on every call).

    Returns:
        Percentage of misclassified images, in ``[0, 100]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    count = len(data)  # type: ignore[arg-type]
    if count == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    batches = list(
        _batches(data, _spread(count, max(1, round(fraction * count))), batch_size, _device(model))
    )
    was_training = model.training
    wrong = 0
    try:
        model.eval()
        with _trimmed_kernels(model, batches[0][0]), torch.no_grad():
            for x, y in batches:
                wrong += int((model(x).argmax(dim=1) != y).sum())
    finally:
        model.train(was_training)
    return 100.0 * wrong / sum(len(y) for _, y in batches)


def evaluate_subnet(
    supernet: ElasticSupernet,
    arch: Mapping[str, Any],
    calib_data: ImageDataset,
    val_data: ImageDataset,
    *,
    fraction: float = 1.0,
    calib_samples: int = 256,
    batch_size: int = 256,
) -> float:
    """Validation error of one arch: static subnet, batch-norm recalibration, top-1 error.

    The supernet is not modified.

    Args:
        supernet: Trained supernet.
        arch: Canonical arch dict of ``supernet.spec``.
        calib_data: Images for batch-norm recalibration (from the training split, never the validation one).
        val_data: Validation dataset.
        fraction: Share of ``val_data`` to evaluate on, in ``(0, 1]`` (the fidelity).
        calib_samples: Images used for recalibration.
        batch_size: Images per forward pass.

    Returns:
        Top-1 validation error, in percent.
    """
    subnet = supernet.subnet(arch)
    recalibrate_bn(subnet, calib_data, num_samples=calib_samples, batch_size=batch_size)
    return evaluate_error(subnet, val_data, batch_size=batch_size, fraction=fraction)


@contextlib.contextmanager
def _trimmed_kernels(model: nn.Module, images: Tensor) -> Iterator[None]:
    """Temporarily crops every "same"-padded convolution kernel larger than its feature map to the part
    the map can reach (``2 * side - 1`` taps): outputs for images shaped like ``images`` stay the same.

    oneDNN's CPU convolutions are very slow when the kernel exceeds the map (a 7x7 depthwise kernel on 2x2
    maps is common in late stages); cropping makes evaluation two to three times faster. The original weights
    (the same ``Parameter`` objects) and kernel sizes are put back on exit, so exported models keep the
    kernels their arch names.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if images.device.type != "cpu" or not convs:
        yield
        return
    sides: dict[nn.Conv2d, int] = {}

    def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        sides[module] = max(args[0].shape[-2:])  # type: ignore[index]

    hooks = [conv.register_forward_pre_hook(record) for conv in convs]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()  # a probe in eval mode leaves batch-norm statistics untouched
        with torch.no_grad():
            model(images[:1])
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes:
            module.training = training
    saved = []
    for conv, side in sides.items():
        k = conv.kernel_size[0]
        reach = 2 * side - 1
        if reach >= k or conv.kernel_size != (k, k) or conv.padding != (k // 2, k // 2):
            continue
        if conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            continue
        saved.append((conv, conv.weight, conv.kernel_size, conv.padding))
        start = (k - reach) // 2
        conv.weight = nn.Parameter(conv.weight.detach()[..., start : start + reach, start : start + reach])
        conv.kernel_size = (reach, reach)
        conv.padding = (reach // 2, reach // 2)
    try:
        yield
    finally:
        for conv, weight, kernel_size, padding in saved:
            conv.weight, conv.kernel_size, conv.padding = weight, kernel_size, padding


def _spread(count: int, num: int) -> np.ndarray:
    """``min(num, count)`` distinct indices evenly spaced over ``range(count)``, ascending."""
    num = max(0, min(num, count))
    return (np.arange(num) * count) // max(num, 1)


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return torch.device("cpu") if param is None else param.device


def _batches(
    data: ImageDataset, indices: np.ndarray, batch_size: int, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """Near-equal batches of ``data[indices]`` as ``(images N x C x H x W float32, labels N int64)``.

    Equal sizes matter for recalibration, where every batch weighs the same in the cumulative average.
    """
    if len(indices) == 0:
        return
    for chunk in np.array_split(indices, -(-len(indices) // batch_size)):
        if isinstance(data, TensorDataset):  # index the tensors at once instead of item by item
            index = torch.as_tensor(chunk)
            x, y = data.tensors[0][index], data.tensors[1][index]
        else:
            items = [data[int(i)] for i in chunk]
            x = torch.stack([item[0] for item in items])
            y = torch.as_tensor([int(item[1]) for item in items])
        yield x.to(device, torch.float32), y.to(device, torch.long)


def finetune(
    model: nn.Module,
    data: ImageDataset,
    *,
    steps: int,
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    calib_samples: int = 256,
) -> nn.Module:
    """Fine-tunes a standalone subnet for ``steps`` SGD steps on ``data``, then re-estimates its batch norms.

    The batches are drawn with ``seed`` (the same seed gives the same model), with momentum 0.9 and a cosine
    learning rate from ``lr`` to 0. With ``steps == 0`` the model is returned untouched. Left in eval mode.

    Example:
        >>> from nas import Supernet, SupernetSpec
        >>> spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
        >>> net = Supernet(spec).subnet(spec.smallest_arch())
        >>> data = TensorDataset(torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,)))
        >>> finetune(net, data, steps=3).training
        False
    """
    if steps <= 0:
        return model.eval()
    gen = torch.Generator().manual_seed(seed)
    n = len(data)  # type: ignore[arg-type]
    device = _device(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    # Dropout draws from torch's global generator: fork it, so the result depends on ``seed`` only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).tolist()
            items = [data[i] for i in idx]
            x = torch.stack([it[0] for it in items]).to(device)
            y = torch.tensor([int(it[1]) for it in items], device=device)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()
    recalibrate_bn(model, data, num_samples=calib_samples)
    return model.eval()
