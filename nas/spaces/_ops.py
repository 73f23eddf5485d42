"""Dynamic layers: each holds the largest weight and slices it on the forward pass.

Active sizes are explicit: they come from the input's channel count or from forward arguments, never from
mutable ``active_*`` attributes, so one module can run several architectures in the same step. Every layer
has a *static twin*: ``static(...)`` returns a plain ``torch.nn`` layer holding a copy of exactly the slice
that ``forward`` would use, so a subnet built from twins computes the same function.

Channel slices always keep the *first* channels; kernel slices keep the centre of the largest kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init

__all__ = ["DynamicBatchNorm2d", "DynamicConv2d", "DynamicDepthwiseConv2d", "DynamicLinear"]

_M = TypeVar("_M", bound=nn.Module)


#: Feature maps of at most this many pixels take the matrix path of ``DynamicDepthwiseConv2d`` on CPU.
_SMALL_MAP = 4


@functools.lru_cache(maxsize=256)
def _pixel_map(height: int, width: int, kernel_size: int, stride: int) -> tuple[Tensor, int, int]:
    """Which kernel tap links each output pixel to each input pixel of a "same"-padded convolution.

    Returns:
        ``(index, out_h, out_w)``: ``index`` is ``out_h*out_w x height*width`` (int64), holding the flat tap
        ``ky * kernel_size + kx`` or ``kernel_size**2`` where the input pixel lies outside the kernel.
    """
    pad = kernel_size // 2
    out_h = (height + 2 * pad - kernel_size) // stride + 1
    out_w = (width + 2 * pad - kernel_size) // stride + 1
    index = torch.full((out_h * out_w, height * width), kernel_size * kernel_size, dtype=torch.long)
    for oy in range(out_h):
        for ox in range(out_w):
            for iy in range(max(0, oy * stride - pad), min(height, oy * stride - pad + kernel_size)):
                for ix in range(max(0, ox * stride - pad), min(width, ox * stride - pad + kernel_size)):
                    ky, kx = iy - oy * stride + pad, ix - ox * stride + pad
                    index[oy * out_w + ox, iy * width + ix] = ky * kernel_size + kx
    return index, out_h, out_w


def _centre(weight: Tensor, kernel_size: int) -> Tensor:
    """Centre ``kernel_size x kernel_size`` crop of ``weight`` (``out x in x K x K``)."""
    start = (weight.shape[-1] - kernel_size) // 2
    return weight[..., start : start + kernel_size, start : start + kernel_size]


def _blank(cls: type[_M], like: Tensor, *args: Any, **kwargs: Any) -> _M:
    """``cls(*args, **kwargs)`` on ``like``'s device and dtype, left uninitialised.

    Twins overwrite every parameter and buffer, so default initialisation would only waste time and,
    worse, draw from the global random generator.
    """
    return cast(_M, skip_init(cls, *args, device=like.device, dtype=like.dtype, **kwargs))


class DynamicConv2d(nn.Module):
    """Dense convolution with elastic input and output channels (no bias).

    The kernel size is fixed at construction; padding is ``kernel_size // 2`` ("same" at stride 1).

    Args:
        max_in_channels: Input channels of the largest network.
        max_out_channels: Output channels of the largest network.
        kernel_size: Odd kernel size.
        stride: Convolution stride.

    Example:
        >>> conv = DynamicConv2d(8, 16, kernel_size=3)
        >>> conv(torch.zeros(2, 4, 5, 5), out_channels=12).shape
        torch.Size([2, 12, 5, 5])
    """

    def __init__(
        self, max_in_channels: int, max_out_channels: int, kernel_size: int = 1, stride: int = 1
    ) -> None:
        super().__init__()
        self.max_in_channels = max_in_channels
        self.max_out_channels = max_out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_out_channels, max_in_channels, kernel_size, kernel_size))

    def active_weight(self, in_channels: int, out_channels: int) -> Tensor:
        """Weight slice, shape ``out_channels x in_channels x k x k``."""
        if not (0 < in_channels <= self.max_in_channels and 0 < out_channels <= self.max_out_channels):
            raise ValueError(
                f"channels {in_channels}->{out_channels} exceed the maximum "
                f"{self.max_in_channels}->{self.max_out_channels}"
            )
        return self.weight[:out_channels, :in_channels]

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        """Convolves ``x`` (``N x C_in x H x W``, any ``C_in`` up to the maximum) to ``N x out x H' x W'``."""
        weight = self.active_weight(x.shape[1], out_channels)
        return F.conv2d(x, weight, None, self.stride, self.kernel_size // 2)

    def static(self, in_channels: int, out_channels: int) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` holding a copy of the active weight."""
        conv = _blank(
            nn.Conv2d,
            self.weight,
            in_channels,
            out_channels,
            self.kernel_size,
            self.stride,
            self.kernel_size // 2,
            bias=False,
        )
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(in_channels, out_channels))
        return conv


class DynamicDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic channels and elastic kernel size (no bias).

    A smaller kernel is the centre of the next larger one passed through a learned ``k^2 x k^2`` matrix
    (Once-for-All's kernel transformation), shared by all channels and initialised to the identity, so a
    small kernel starts as a plain centre crop but may drift from it as training requires.

    Args:
        max_channels: Channels of the largest network.
        kernel_sizes: Kernel sizes that may be asked for (odd, any order); the largest is stored.
        stride: Convolution stride.
        transform: Learn the kernel transformation; ``False`` uses plain centre crops.

    Example:
        >>> conv = DynamicDepthwiseConv2d(16, (3, 5, 7))
        >>> conv(torch.zeros(2, 12, 6, 6), kernel_size=5).shape
        torch.Size([2, 12, 6, 6])
    """

    def __init__(
        self, max_channels: int, kernel_sizes: Sequence[int], stride: int = 1, *, transform: bool = True
    ) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.max_channels = max_channels
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_channels, 1, self.kernel_sizes[-1], self.kernel_sizes[-1]))
        # One matrix per step down the ladder of kernel sizes, e.g. "7to5" and "5to3".
        self.transforms = nn.ParameterDict()
        if transform:
            for small, large in zip(self.kernel_sizes[:-1], self.kernel_sizes[1:]):
                self.transforms[f"{large}to{small}"] = nn.Parameter(torch.eye(small * small))

    def active_weight(self, channels: int, kernel_size: int) -> Tensor:
        """Effective weight, shape ``channels x 1 x kernel_size x kernel_size``."""
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel size {kernel_size} is not one of {list(self.kernel_sizes)}")
        if not 0 < channels <= self.max_channels:
            raise ValueError(f"{channels} channels exceed the maximum of {self.max_channels}")
        weight = self.weight[:channels]
        for large in reversed(self.kernel_sizes):
            if large == kernel_size:
                break
            small = self.kernel_sizes[self.kernel_sizes.index(large) - 1]
            weight = _centre(weight, small)
            key = f"{large}to{small}"
            if key in self.transforms:
                flat = F.linear(weight.reshape(channels, small * small), self.transforms[key])
                weight = flat.reshape(channels, 1, small, small)
        return weight

    def forward(self, x: Tensor, kernel_size: int) -> Tensor:
        """Convolves ``x`` (``N x C x H x W``) with a ``kernel_size`` kernel to ``N x C x H' x W'``."""
        n, channels, height, width = x.shape
        weight = self.active_weight(channels, kernel_size)
        if x.device.type != "cpu" or height * width > _SMALL_MAP:
            return F.conv2d(x, weight, None, self.stride, kernel_size // 2, 1, channels)
        # On CPU, oneDNN's depthwise backward is slow on tiny maps (several ms at 2x2); there, the
        # convolution as a per-channel matrix over pixels (N x C x out x in products) is several times faster.
        index, out_h, out_w = _pixel_map(height, width, kernel_size, self.stride)
        taps = torch.cat([weight.reshape(channels, -1), weight.new_zeros(channels, 1)], dim=1)
        matrix = taps[:, index.to(x.device)]  # C x out_pixels x in_pixels
        out = (x.reshape(n, channels, 1, height * width) * matrix).sum(dim=-1)
        return out.reshape(n, channels, out_h, out_w)

    def static(self, channels: int, kernel_size: int) -> nn.Conv2d:
        """A plain depthwise ``nn.Conv2d`` holding the effective weight."""
        conv = _blank(
            nn.Conv2d,
            self.weight,
            channels,
            channels,
            kernel_size,
            self.stride,
            kernel_size // 2,
            groups=channels,
            bias=False,
        )
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(channels, kernel_size))
        return conv


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation over the first ``C`` features, ``C`` taken from the input.

    Running statistics are updated in place on their slice, in train mode, with ``momentum`` or, when it is
    ``None``, as a cumulative average (what BN recalibration uses). Being an ``nn.BatchNorm2d``, it is
    found and reset by code that walks a model's batch-norm layers.

    Args:
        max_features: Features of the largest network.
        eps: Added to the variance for numerical stability.
        momentum: Running-average factor, or ``None`` for a cumulative average.
    """

    def __init__(self, max_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(max_features, eps=eps, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        """Normalises ``x`` (``N x C x H x W``, ``C`` up to ``num_features``); same shape out."""
        c = x.shape[1]
        if c > self.num_features:
            raise ValueError(f"{c} features exceed the maximum of {self.num_features}")
        mean, var, tracked = self.running_mean, self.running_var, self.num_batches_tracked
        factor = 0.0
        if self.training and tracked is not None:
            tracked.add_(1)
            factor = 1.0 / float(tracked) if self.momentum is None else self.momentum
        # Slices are views, so batch_norm's in-place running-stat update lands in the full buffers.
        return F.batch_norm(
            x,
            None if mean is None else mean[:c],
            None if var is None else var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training or mean is None,
            factor,
            self.eps,
        )

    def static(self, num_features: int) -> nn.BatchNorm2d:
        """A plain ``nn.BatchNorm2d`` holding the sliced affine parameters and running statistics."""
        bn = _blank(nn.BatchNorm2d, self.weight, num_features, eps=self.eps, momentum=self.momentum)
        pairs: list[tuple[Tensor | None, Tensor | None]] = [(bn.weight, self.weight), (bn.bias, self.bias)]
        pairs += [(bn.running_mean, self.running_mean), (bn.running_var, self.running_var)]
        with torch.no_grad():
            for target, source in pairs:
                if target is None or source is None:  # never: this layer always tracks statistics
                    raise RuntimeError("batch norm without running statistics cannot be copied")
                target.copy_(source[:num_features])
            if bn.num_batches_tracked is not None and self.num_batches_tracked is not None:
                bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class DynamicLinear(nn.Module):
    """Fully connected layer with elastic input features and fixed output features.

    Args:
        max_in_features: Input features of the largest network.
        out_features: Output features (e.g. the number of classes).
    """

    def __init__(self, max_in_features: int, out_features: int) -> None:
        super().__init__()
        self.max_in_features = max_in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, max_in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``x`` (``N x F_in``, ``F_in`` up to the maximum) to ``N x out_features``."""
        if x.shape[1] > self.max_in_features:
            raise ValueError(f"{x.shape[1]} features exceed the maximum of {self.max_in_features}")
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)

    def static(self, in_features: int) -> nn.Linear:
        """A plain ``nn.Linear`` holding the sliced weight and the bias."""
        linear = _blank(nn.Linear, self.weight, in_features, self.out_features)
        with torch.no_grad():
            linear.weight.copy_(self.weight[:, :in_features])
            linear.bias.copy_(self.bias)
        return linear
