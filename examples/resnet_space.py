"""An elastic ResNet on hwnas's search-space protocol: your own space, searched like a built-in one.

Each stage of bottleneck blocks has an elastic depth; each block an elastic bottleneck width (a share of the
stage's channels) and kernel size. The supernet holds the largest weights and slices them; ``subnet(arch)``
copies the slices into plain ``torch.nn`` layers. Search it from the repository's root with::

    hwnas search --config examples/resnet.yaml          # space: {name: "examples.resnet_space:ResNetSpace"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces import ElasticSupernet, SearchSpace
from search import Choice, Space


@dataclass(frozen=True)
class ResNetSpace(SearchSpace):
    """Arch: ``{"depth": [2, 1, 2], "width": [[0.5, 0.25], ...], "kernel": [[3, 5], ...]}`` (active blocks)."""

    in_channels: int = 1
    num_classes: int = 10
    stem_stride: int = 1
    stage_channels: tuple[int, ...] = (16, 32, 64)
    depth_choices: tuple[int, ...] = (1, 2, 3)
    width_choices: tuple[float, ...] = (0.25, 0.5)
    kernel_choices: tuple[int, ...] = (3, 5)

    @classmethod
    def for_input(cls, in_channels: int, image_size: int, num_classes: int, **options: Any) -> ResNetSpace:
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        return cls(in_channels, num_classes, 2 if image_size >= 32 else 1, **options)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResNetSpace:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def build_supernet(self, *, seed: int = 0, **options: Any) -> ResNetSupernet:
        with torch.random.fork_rng():  # seeded weights, the caller's random state untouched
            torch.manual_seed(seed)
            return ResNetSupernet(self)

    def search_space(self) -> Space:
        params: dict[str, Any] = {}
        for s in range(len(self.stage_channels)):
            params[f"depth_{s}"] = Choice(self.depth_choices)
            for b in range(max(self.depth_choices)):
                params[f"width_{s}_{b}"] = Choice(self.width_choices)
                params[f"kernel_{s}_{b}"] = Choice(self.kernel_choices)
        return Space(params)

    def arch_from_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        depth = [int(params[f"depth_{s}"]) for s in range(len(self.stage_channels))]
        return {
            "depth": depth,
            "width": [[float(params[f"width_{s}_{b}"]) for b in range(d)] for s, d in enumerate(depth)],
            "kernel": [[int(params[f"kernel_{s}_{b}"]) for b in range(d)] for s, d in enumerate(depth)],
        }

    def params_from_arch(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        self.validate_arch(arch)
        params: dict[str, Any] = {}
        for s, d in enumerate(arch["depth"]):
            params[f"depth_{s}"] = d
            for b in range(max(self.depth_choices)):  # inactive blocks take the first choice
                params[f"width_{s}_{b}"] = arch["width"][s][b] if b < d else self.width_choices[0]
                params[f"kernel_{s}_{b}"] = arch["kernel"][s][b] if b < d else self.kernel_choices[0]
        return params

    def validate_arch(self, arch: Mapping[str, Any]) -> None:
        if set(arch) != {"depth", "width", "kernel"} or len(arch["depth"]) != len(self.stage_channels):
            raise ValueError(f"an arch has depth, width and kernel for {len(self.stage_channels)} stages")
        for s, d in enumerate(arch["depth"]):
            w, k = arch["width"][s], arch["kernel"][s]
            if d not in self.depth_choices or len(w) != d or len(k) != d:
                raise ValueError(
                    f"stage {s}: depth {d} must be one of {self.depth_choices}, with one width and kernel per block"
                )
            if not set(w) <= set(self.width_choices) or not set(k) <= set(self.kernel_choices):
                raise ValueError(f"stage {s}: widths {w} or kernels {k} are not among the choices")

    def _uniform(self, d: int, w: float, k: int) -> dict[str, Any]:
        n = len(self.stage_channels)
        return {"depth": [d] * n, "width": [[w] * d] * n, "kernel": [[k] * d] * n}

    def largest_arch(self) -> dict[str, Any]:
        return self._uniform(max(self.depth_choices), max(self.width_choices), max(self.kernel_choices))

    def smallest_arch(self) -> dict[str, Any]:
        return self._uniform(min(self.depth_choices), min(self.width_choices), min(self.kernel_choices))

    def num_subnets(self) -> int:
        per_block = len(self.width_choices) * len(self.kernel_choices)
        return sum(per_block**d for d in self.depth_choices) ** len(self.stage_channels)

    def describe(self) -> str:
        return f"elastic ResNet: stages {list(self.stage_channels)}, depth {list(self.depth_choices)}"


class _ConvBN(nn.Module):
    """The largest conv and batch norm; runs any leading slice of channels and centred crop of the kernel."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn, self.relu = nn.BatchNorm2d(cout), relu

    def _weight(self, cin: int, cout: int, k: int) -> torch.Tensor:
        c = (self.conv.kernel_size[0] - k) // 2
        return self.conv.weight[:cout, :cin, c : c + k, c : c + k]

    def forward(self, x: torch.Tensor, cout: int, k: int) -> torch.Tensor:
        bn = self.bn
        x = F.conv2d(x, self._weight(x.shape[1], cout, k), None, self.conv.stride, k // 2)
        x = F.batch_norm(x, bn.running_mean[:cout], bn.running_var[:cout], bn.weight[:cout], bn.bias[:cout],
                         self.training, bn.momentum or 0.1, bn.eps)  # fmt: skip
        return F.relu(x) if self.relu else x

    def static(self, cin: int, cout: int, k: int) -> nn.Sequential:
        conv, bn = nn.Conv2d(cin, cout, k, self.conv.stride, k // 2, bias=False), nn.BatchNorm2d(cout)
        with torch.no_grad():
            conv.weight.copy_(self._weight(cin, cout, k))
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(getattr(self.bn, name)[:cout])
        return nn.Sequential(conv, bn, nn.ReLU()) if self.relu else nn.Sequential(conv, bn)


class Residual(nn.Module):
    """A static bottleneck block: ``relu(body(x) + shortcut(x))``."""

    def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, space: ResNetSpace) -> None:
        super().__init__()
        mid, k = int(cout * max(space.width_choices)), max(space.kernel_choices)
        self.cout = cout
        self.reduce, self.conv = _ConvBN(cin, mid, 1), _ConvBN(mid, mid, k, stride)
        self.expand = _ConvBN(mid, cout, 1, relu=False)
        self.short = None if stride == 1 and cin == cout else _ConvBN(cin, cout, 1, stride, relu=False)

    def forward(self, x: torch.Tensor, width: float, k: int) -> torch.Tensor:
        mid = int(self.cout * width)
        out = self.expand(self.conv(self.reduce(x, mid, 1), mid, k), self.cout, 1)
        return F.relu(out + (x if self.short is None else self.short(x, self.cout, 1)))

    def static(self, cin: int, width: float, k: int) -> Residual:
        mid = int(self.cout * width)
        body = nn.Sequential(self.reduce.static(cin, mid, 1), self.conv.static(mid, mid, k),
                             self.expand.static(mid, self.cout, 1))  # fmt: skip
        return Residual(body, nn.Identity() if self.short is None else self.short.static(cin, self.cout, 1))


class ResNetSupernet(ElasticSupernet):
    def __init__(self, space: ResNetSpace) -> None:
        super().__init__()
        self.space = space
        channels = space.stage_channels
        self.stem = _ConvBN(space.in_channels, channels[0], 3, space.stem_stride)
        self.stages = nn.ModuleList(
            nn.ModuleList(
                _Bottleneck(channels[max(s - 1, 0)] if b == 0 else c, c, 2 if s and not b else 1, space)
                for b in range(max(space.depth_choices))
            )
            for s, c in enumerate(channels)
        )
        self.fc = nn.Linear(channels[-1], space.num_classes)

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any] | None = None) -> torch.Tensor:
        arch = arch or self.space.largest_arch()
        x = self.stem(x, self.space.stage_channels[0], 3)
        for s, blocks in enumerate(self.stages):
            for b in range(arch["depth"][s]):
                x = blocks[b](x, arch["width"][s][b], arch["kernel"][s][b])
        return self.fc(x.mean((2, 3)))

    def subnet(self, arch: Mapping[str, Any]) -> nn.Module:
        self.space.validate_arch(arch)
        channels = self.space.stage_channels
        layers: list[nn.Module] = [self.stem.static(self.space.in_channels, channels[0], 3)]
        for s, blocks in enumerate(self.stages):
            for b in range(arch["depth"][s]):
                cin = channels[max(s - 1, 0)] if b == 0 else channels[s]
                layers.append(blocks[b].static(cin, arch["width"][s][b], arch["kernel"][s][b]))
        fc = nn.Linear(channels[-1], self.space.num_classes)
        fc.load_state_dict(self.fc.state_dict())
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc]
        return nn.Sequential(*layers).train(self.training)
