"""The elastic MobileNetV2-style supernet and its static subnets.

``Supernet(spec)`` holds the weights of the largest network of a :class:`~nas.SupernetSpec`. Any arch of the
spec runs directly on slices of them (``supernet(x, arch)``), and ``supernet.subnet(arch)`` copies those
slices into a standalone :class:`Subnet` of plain ``torch.nn`` layers that computes the same function and
exports to ONNX.

Layout (channels at the arch's width; ``s`` is a stride)::

    stem   conv3x3/s(stem) - BN - ReLU6
    stage  depth x inverted residual: conv1x1 (C_in -> C_in * expand) - BN - ReLU6
                                      depthwise kxk/s (first block of the stage only) - BN - ReLU6
                                      conv1x1 (-> C_out) - BN  (+ input when s == 1 and C_in == C_out)
    head   conv1x1 - BN - ReLU6 - global average pool - dropout - linear
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from nas.spaces._ops import DynamicBatchNorm2d, DynamicConv2d, DynamicDepthwiseConv2d, DynamicLinear
from nas.spaces._protocol import Arch, ElasticSupernet

#: The space this network is built from (``nas.spaces._mobilenet.SupernetSpec``). It is not imported, not even for type
#: checking: the space module builds this network, and the network only reads the space's fields.
_Space = Any

__all__ = ["InvertedResidual", "Subnet", "Supernet"]


class InvertedResidual(nn.Module):
    """Static MobileNetV2 block (the twin of one active supernet block).

    Args:
        expand: 1x1 conv ``C_in -> hidden``, its BN and activation.
        depthwise: depthwise conv ``hidden -> hidden``, its BN and activation.
        project: 1x1 conv ``hidden -> C_out`` and its BN.
        residual: Add the input to the output (stride 1 and ``C_in == C_out``).
    """

    def __init__(
        self, expand: nn.Sequential, depthwise: nn.Sequential, project: nn.Sequential, residual: bool
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.project = project
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        """``N x C_in x H x W`` -> ``N x C_out x H' x W'``."""
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class Subnet(nn.Module):
    """A standalone network with the weights of one supernet arch; built by :meth:`Supernet.subnet`.

    Attributes:
        arch: The canonical arch dict it was built from.
        spec: The spec of the supernet it came from.
    """

    def __init__(
        self,
        stem: nn.Sequential,
        blocks: nn.Sequential,
        head: nn.Sequential,
        dropout: float,
        classifier: nn.Linear,
        *,
        arch: Arch,
        spec: _Space,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = blocks
        self.head = head
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier
        self.arch = arch
        self.spec = spec

    def forward(self, x: Tensor) -> Tensor:
        """Images ``N x in_channels x H x W`` -> class logits ``N x num_classes``."""
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))


class _ConvBN(nn.Module):
    """Dynamic conv, BN and optional activation with the static twin ``nn.Sequential(conv, bn[, act])``."""

    def __init__(self, conv: DynamicConv2d | DynamicDepthwiseConv2d, channels: int, act: bool) -> None:
        super().__init__()
        self.conv = conv
        self.bn = DynamicBatchNorm2d(channels)
        self.act = nn.ReLU6() if act else None

    def forward(self, x: Tensor, size: int) -> Tensor:
        """``size`` is the output channels (dense conv) or the kernel size (depthwise conv)."""
        if isinstance(self.conv, DynamicDepthwiseConv2d):
            x = self.bn(self.conv(x, kernel_size=size))
        else:
            x = self.bn(self.conv(x, out_channels=size))
        return x if self.act is None else self.act(x)

    def static(self, in_channels: int, size: int) -> nn.Sequential:
        if isinstance(self.conv, DynamicDepthwiseConv2d):
            layers: list[nn.Module] = [self.conv.static(in_channels, size), self.bn.static(in_channels)]
        else:
            layers = [self.conv.static(in_channels, size), self.bn.static(size)]
        if self.act is not None:
            layers.append(nn.ReLU6())
        return nn.Sequential(*layers)


class _DynamicBlock(nn.Module):
    """Elastic inverted residual: elastic input/output channels, expand ratio and kernel size."""

    def __init__(self, max_in: int, max_out: int, stride: int, spec: _Space) -> None:
        super().__init__()
        max_hidden = max_in * max(spec.expand_choices)
        self.stride = stride
        self.expand = _ConvBN(DynamicConv2d(max_in, max_hidden), max_hidden, act=True)
        self.depthwise = _ConvBN(
            DynamicDepthwiseConv2d(max_hidden, spec.kernel_choices, stride), max_hidden, act=True
        )
        self.project = _ConvBN(DynamicConv2d(max_hidden, max_out), max_out, act=False)

    def _residual(self, in_channels: int, out_channels: int) -> bool:
        return self.stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor, out_channels: int, kernel_size: int, expand: int) -> Tensor:
        in_channels = x.shape[1]
        out = self.expand(x, in_channels * expand)
        out = self.project(self.depthwise(out, kernel_size), out_channels)
        return x + out if self._residual(in_channels, out_channels) else out

    def static(self, in_channels: int, out_channels: int, kernel_size: int, expand: int) -> InvertedResidual:
        hidden = in_channels * expand
        return InvertedResidual(
            self.expand.static(in_channels, hidden),
            self.depthwise.static(hidden, kernel_size),
            self.project.static(hidden, out_channels),
            self._residual(in_channels, out_channels),
        )


class Supernet(ElasticSupernet):
    """Weight-sharing MobileNetV2-style supernet over every arch of a spec.

    Weights are initialised from ``seed`` alone (the global random generator is neither read nor changed),
    so two supernets with the same spec and seed are identical.

    Args:
        spec: Shape of the supernet and its elastic choices.
        seed: Seed of the weight initialisation.
        zero_init_residual: Start the last batch norm of every block that always adds its input (all but
            the first block of each stage) with a zero scale, so that each such block begins as the
            identity and a deeper arch starts out computing what a shallower one does (as BigNAS does).

    Example:
        >>> from nas.spaces import SupernetSpec
        >>> spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
        >>> net = Supernet(spec).eval()
        >>> x = torch.randn(2, 1, 8, 8)
        >>> arch = spec.smallest_arch()
        >>> sub = net.subnet(arch).eval()
        >>> bool(torch.allclose(sub(x), net(x, arch), atol=1e-5))
        True
    """

    def __init__(self, spec: _Space, *, seed: int = 0, zero_init_residual: bool = False) -> None:
        super().__init__()
        self.space: _Space = spec
        self.zero_init_residual = bool(zero_init_residual)
        stem, stages, head = self.max_channels
        self.stem = _ConvBN(DynamicConv2d(spec.in_channels, stem, 3, spec.stem_stride), stem, act=True)
        self.stages = nn.ModuleList()
        in_channels = stem
        for out_channels, stride in zip(stages, spec.stage_strides):
            blocks = [
                _DynamicBlock(
                    in_channels if b == 0 else out_channels, out_channels, stride if b == 0 else 1, spec
                )
                for b in range(spec.max_depth)
            ]
            self.stages.append(nn.ModuleList(blocks))
            in_channels = out_channels
        self.head = _ConvBN(DynamicConv2d(in_channels, head), head, act=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = DynamicLinear(head, spec.num_classes)
        self.reset_parameters(seed)

    @property
    def max_channels(self) -> tuple[int, list[int], int]:
        """(stem, per-stage, head) channels of the largest width: the sizes of the stored weights."""
        sizes = [self.space.channels(w) for w in self.space.width_choices]
        return (
            max(s[0] for s in sizes),
            [max(s[1][i] for s in sizes) for i in range(self.space.num_stages)],
            max(s[2] for s in sizes),
        )

    def reset_parameters(self, seed: int) -> None:
        """Re-initialises every weight from ``seed``.

        Convolutions: He normal (fan-out); BN and kernel transforms: identity; classifier: N(0, 0.01^2).
        With ``zero_init_residual``, the scale of the last BN of every block after the first of a stage is 0.
        """
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (DynamicConv2d, DynamicDepthwiseConv2d)):
                    w = torch.empty(module.weight.shape)
                    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=gen)
                    module.weight.copy_(w)
                    for matrix in getattr(module, "transforms", {}).values():
                        matrix.copy_(torch.eye(matrix.shape[0]))
                elif isinstance(module, DynamicBatchNorm2d):
                    module.reset_parameters()
                elif isinstance(module, DynamicLinear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.01)
                    module.bias.zero_()
            if self.zero_init_residual:
                # Blocks after the first of a stage have stride 1 and equal channels at every width: their
                # output is always input + branch, so a zero scale makes the branch (and the block) vanish.
                for s in range(self.space.num_stages):
                    for b in range(1, self.space.max_depth):
                        self._block(s, b).project.bn.weight.zero_()

    def _block(self, stage: int, index: int) -> _DynamicBlock:
        return cast(_DynamicBlock, cast(nn.ModuleList, self.stages[stage])[index])

    def _resolve(self, arch: Mapping[str, Any] | None) -> tuple[Arch, tuple[int, list[int], int]]:
        if arch is None:
            arch = self.space.largest_arch()
        self.space.validate_arch(arch)
        return copy.deepcopy(dict(arch)), self.space.channels(float(arch["width"]))

    def forward(self, x: Tensor, arch: Mapping[str, Any] | None = None) -> Tensor:
        """Runs one arch on the shared weights.

        Args:
            x: Images, ``N x in_channels x H x W``.
            arch: Canonical arch dict; ``None`` runs the largest.

        Returns:
            Class logits, ``N x num_classes``.
        """
        arch, (stem, stages, head) = self._resolve(arch)
        if x.device.type == "cpu":
            # oneDNN trains these small depthwise nets about twice as fast on channels-last tensors.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x, stem)
        for s in range(self.space.num_stages):
            for b in range(arch["depth"][s]):
                x = self._block(s, b)(x, stages[s], arch["kernel"][s][b], arch["expand"][s][b])
        x = self.head(x, head)
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))

    def subnet(self, arch: Mapping[str, Any] | None = None) -> Subnet:
        """A standalone static copy of one arch.

        The result holds plain ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` layers with only the active
        channels and blocks, the sliced weights and batch-norm running statistics copied in, on the
        supernet's device and in its train/eval mode. It shares no storage with the supernet.

        Args:
            arch: Canonical arch dict; ``None`` means the largest.

        Returns:
            A :class:`Subnet` whose ``forward(x)`` equals ``self(x, arch)``.
        """
        arch, (stem, stages, head) = self._resolve(arch)
        blocks: list[nn.Module] = []
        in_channels = stem
        for s in range(self.space.num_stages):
            for b in range(arch["depth"][s]):
                block = self._block(s, b)
                blocks.append(
                    block.static(in_channels, stages[s], arch["kernel"][s][b], arch["expand"][s][b])
                )
                in_channels = stages[s]
        net = Subnet(
            self.stem.static(self.space.in_channels, stem),
            nn.Sequential(*blocks),
            self.head.static(in_channels, head),
            self.space.dropout,
            self.classifier.static(head),
            arch=arch,
            spec=self.space,
        )
        return net.train(self.training)

    def sample_arch(self, rng: np.random.Generator) -> Arch:
        """A random arch of this supernet's spec (uniform over choices); see ``SupernetSpec.random_arch``."""
        return self.space.random_arch(rng)


class _Head(nn.Module):
    """The head of a subnet as a lookup-table part: conv, pooling and classifier (dropout is off in eval)."""

    def __init__(self, head: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.head, self.pool, self.classifier = head, nn.AdaptiveAvgPool2d(1), classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.head(x)), 1))


def build_part(supernet: Supernet, how: tuple[Any, ...]) -> tuple[nn.Module, tuple[int, int, int]]:
    """The static module of one lookup-table part and its input shape (see ``SupernetSpec.distinct_parts``)."""
    spec = supernet.space
    kind, width = how[0], float(how[1])
    stem, stages, head = spec.channels(width)
    if kind == "stem":
        return supernet.stem.static(spec.in_channels, stem).eval(), how[-1]
    if kind == "block":
        _, _, s, b, k, e, shape = how
        return supernet._block(s, b).static(shape[0], stages[s], k, e).eval(), shape
    shape = how[-1]
    return _Head(supernet.head.static(shape[0], head), supernet.classifier.static(head)).eval(), shape
