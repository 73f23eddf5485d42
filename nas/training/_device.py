"""Where training and scoring run, and in what precision.

``--device`` / ``supernet.device`` takes ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``,
``cuda`` (the current GPU) or ``cuda:N``. ``supernet.precision`` takes ``auto``, ``bf16``, ``fp16`` or
``fp32``; ``auto`` is bf16 on GPUs that support it (Ampere and later), fp16 with a gradient scaler on older
GPUs, and fp32 on the CPU (CPU autocast to bf16 is allowed when asked for, but is rarely faster). Only
supernet training runs in reduced precision: batch-norm recalibration, validation and fine-tuning run in
fp32 on the same device, so scores do not depend on the precision of a card.

The measuring hardware profile is independent of all this: a supernet trained on a GPU is scored there and
its subnets are exported and timed on the profile's device.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEVICE_CHOICES",
    "PRECISIONS",
    "DeviceError",
    "autocast",
    "grad_scaler",
    "prepare_model",
    "resolve_device",
    "resolve_precision",
    "use_channels_last",
]

#: What ``--device`` accepts (``cuda:N`` for any N).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
#: What ``supernet.precision`` accepts.
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """A device or precision that cannot be used here, described in one line."""


def check_device_name(name: str) -> str:
    """``name`` if it is a valid device request, else ``DeviceError`` listing the valid ones.

    Example:
        >>> check_device_name("cuda:1")
        'cuda:1'
    """
    if not isinstance(name, str) or not _DEVICE_RE.match(name.strip()):
        raise DeviceError(f"unknown device {name!r}; valid: {', '.join(DEVICE_CHOICES)}")
    return name.strip()


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device a request names, checked to exist on this machine.

    ``auto`` (or ``None``) is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; ``cuda`` is the
    current GPU (``cuda:<current index>``).

    Raises:
        DeviceError: the request is malformed, or names a GPU this machine does not have.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = check_device_name("auto" if name is None else name)
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if available else torch.device("cpu")
    if not available:
        raise DeviceError(
            f"device {name!r} was asked for, but torch sees no CUDA GPU here "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    if name == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    index = int(name.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"device {name!r} was asked for, but this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision training uses on ``device``: ``bf16``, ``fp16`` or ``fp32``.

    Raises:
        DeviceError: the precision is unknown, fp16 is asked for on the CPU, or bf16 on a GPU without it.

    Example:
        >>> resolve_precision("auto", torch.device("cpu"))
        'fp32'
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision == "fp16":
            raise DeviceError("precision fp16 needs a CUDA device; on the CPU use fp32 (or bf16)")
        return "fp32" if precision == "auto" else precision
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"{torch.cuda.get_device_name(device)} does not support bf16; use fp16 or fp32")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``precision`` on ``device`` (nothing happens for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (whose small range underflows gradients), ``None`` otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def use_channels_last(model: nn.Module, device: torch.device, precision: str) -> bool:
    """Whether ``model`` should run in channels-last memory format: on CUDA in reduced precision, where
    tensor-core convolutions want NHWC, and only for networks that have 2-D convolutions."""
    return (
        device.type == "cuda"
        and precision != "fp32"
        and any(isinstance(m, nn.Conv2d) for m in model.modules())
    )


def prepare_model(model: nn.Module, device: torch.device, precision: str) -> bool:
    """Moves ``model`` to ``device`` (channels-last where :func:`use_channels_last` says it pays) and turns
    on cuDNN's autotuner on CUDA; returns whether inputs should be made channels-last too."""
    channels_last = use_channels_last(model, device, precision)
    if channels_last:
        # nn.Module.to accepts memory_format (documented), but torch's overloads for it leave it out.
        model.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    else:
        model.to(device)
    if device.type == "cuda":
        # Sandwich training draws from a finite set of layer shapes: each is tuned once, then reused.
        torch.backends.cudnn.benchmark = True
    return channels_last
