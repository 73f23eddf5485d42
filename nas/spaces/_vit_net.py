"""The elastic vision-transformer supernet and its static subnets.

``VitSupernet(space)`` holds the weights of the largest network of a :class:`~nas.spaces.VitSpace`. Any arch
runs directly on slices of them (``supernet(x, arch)``), as in AutoFormer: every linear layer and layer
norm keeps the *leading* rows and columns of its largest weight, so an arch of embedding dimension ``d``
uses the first ``d`` features of every token everywhere, a layer with ``h`` heads uses the first ``h`` heads
of query, key and value (each ``head_dim`` wide), and an MLP of ``m`` hidden features its first ``m``.
``supernet.subnet(arch)`` copies those slices into a standalone :class:`VitSubnet` of plain ``torch.nn``
layers (``nn.Conv2d``, ``nn.Linear``, ``nn.LayerNorm``, ``nn.GELU``) that computes the same function.

Attention is written with ``matmul`` and ``softmax`` (not ``nn.MultiheadAttention`` or
``scaled_dot_product_attention``), so the static subnets export to plain ONNX operators (``MatMul``,
``Softmax``, ``LayerNormalization``, ``Erf``, ``Reshape``, ``Transpose``) that every runtime runs.

Layout (``d`` the arch's embedding dimension, ``T`` the tokens)::

    patch   conv p x p / stride p (C -> d) - flatten to tokens [- class token first] - + position embedding
    layer   x + proj(attention(qkv(LN(x))))      (h heads of head_dim each)
            x + fc2(GELU(fc1(LN(x))))            (fc1: d -> round(mlp_ratio * d))
    head    LN - class token or mean of tokens - dropout - linear (d -> classes)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.spaces._ops import _blank
from nas.spaces._protocol import Arch, ElasticSupernet

#: The space this network is built from (``nas.spaces._vit.VitSpace``). It is not imported, not even for type
#: checking: the space module builds this network, and the network only reads the space's fields.
_Space = Any

__all__ = [
    "Attention",
    "EncoderLayer",
    "PatchEmbed",
    "VitHead",
    "VitSubnet",
    "VitSupernet",
    "build_part",
    "mlp_hidden",
]

#: Epsilon of every layer norm (that of ``nn.LayerNorm``).
LN_EPS = 1e-5


def mlp_hidden(embed: int, ratio: float) -> int:
    """Hidden features of an MLP with ``ratio`` at embedding dimension ``embed`` (rounded, at least 1).

    Example:
        >>> mlp_hidden(192, 3.5), mlp_hidden(48, 2.0)
        (672, 96)
    """
    return max(1, round(ratio * embed))


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Softmax attention on ``N x heads x T x head_dim`` tensors, as plain ``matmul`` and ``softmax``."""
    weights = torch.softmax(torch.matmul(q * scale, k.transpose(-2, -1)), dim=-1)
    return torch.matmul(weights, v)


def _split_heads(qkv: Tensor, heads: int, head_dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """``N x T x 3*heads*head_dim`` (query, key, value blocks, each head-major) -> three
    ``N x heads x T x head_dim`` tensors."""
    n, t = qkv.shape[0], qkv.shape[1]
    parts = qkv.reshape(n, t, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    return parts[0], parts[1], parts[2]


def _merge_heads(x: Tensor) -> Tensor:
    """``N x heads x T x head_dim`` -> ``N x T x heads*head_dim``."""
    n, h, t, hd = x.shape
    return x.transpose(1, 2).reshape(n, t, h * hd)


def _prepend_zero_token(x: Tensor) -> Tensor:
    """``N x T x d`` -> ``N x (T + 1) x d`` with a zero token first (exported as ``ConstantOfShape`` of a
    slice's shape and ``Concat``, whose shapes ONNX shape inference follows; ``F.pad`` exports its pads as a
    computation it cannot)."""
    return torch.cat([torch.zeros_like(x[:, :1]), x], dim=1)


def _pool(x: Tensor, pool: str) -> Tensor:
    return x[:, 0] if pool == "cls" else x.mean(dim=1)


# -- static modules (the subnet's parts) -----------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Patches to tokens: ``N x C x H x W`` -> ``N x T x d``, plus the position embedding.

    With a class token, a zero token is put first and the class token is folded into the first row of
    ``pos_embed`` (the encoder only ever sees their sum): the export then needs no batch-sized ``Expand``,
    whose output shape ONNX shape inference cannot work out.
    """

    def __init__(self, conv: nn.Conv2d, pos_embed: Tensor, class_token: bool) -> None:
        super().__init__()
        self.conv = conv
        self.pos_embed = nn.Parameter(pos_embed)
        self.class_token = class_token

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x).flatten(2).transpose(1, 2)
        if self.class_token:
            x = _prepend_zero_token(x)
        return x + self.pos_embed


class Attention(nn.Module):
    """Multi-head self-attention ``N x T x d`` -> ``N x T x d`` with ``heads`` heads of ``head_dim``."""

    def __init__(self, qkv: nn.Linear, proj: nn.Linear, heads: int, head_dim: int) -> None:
        super().__init__()
        self.qkv, self.proj = qkv, proj
        self.heads, self.head_dim = heads, head_dim
        self.scale = head_dim**-0.5

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = _split_heads(self.qkv(x), self.heads, self.head_dim)
        return self.proj(_merge_heads(attend(q, k, v, self.scale)))


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, norm1: nn.LayerNorm, attn: Attention, norm2: nn.LayerNorm, mlp: nn.Sequential) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = norm1, attn, norm2, mlp

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VitHead(nn.Module):
    """Final layer norm, pooling (class token or mean), dropout and classifier: ``N x T x d`` -> logits."""

    def __init__(self, norm: nn.LayerNorm, classifier: nn.Linear, pool: str, dropout: float) -> None:
        super().__init__()
        self.norm, self.classifier, self.pool = norm, classifier, pool
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(_pool(self.norm(x), self.pool)))


class VitSubnet(nn.Module):
    """A standalone vision transformer with the weights of one supernet arch; built by
    :meth:`VitSupernet.subnet`.

    Attributes:
        arch: The canonical arch dict it was built from.
        spec: The space of the supernet it came from.
    """

    def __init__(
        self, patch_embed: PatchEmbed, layers: nn.Sequential, head: VitHead, *, arch: Arch, spec: _Space
    ) -> None:
        super().__init__()
        self.patch_embed, self.layers, self.head = patch_embed, layers, head
        self.arch, self.spec = arch, spec

    def forward(self, x: Tensor) -> Tensor:
        """Images ``N x in_channels x H x W`` -> class logits ``N x num_classes``."""
        return self.head(self.layers(self.patch_embed(x)))


# -- elastic layers --------------------------------------------------------------------------------------


class ElasticLinear(nn.Module):
    """Linear layer with elastic input and output features: uses ``weight[:out, :in]`` and ``bias[:out]``.

    Example:
        >>> fc = ElasticLinear(8, 6)
        >>> fc(torch.zeros(2, 5, 4), 3).shape
        torch.Size([2, 5, 3])
    """

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.max_in, self.max_out = max_in, max_out
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out))

    def _check(self, in_features: int, out_features: int) -> None:
        if not (0 < in_features <= self.max_in and 0 < out_features <= self.max_out):
            raise ValueError(
                f"features {in_features}->{out_features} exceed the maximum {self.max_in}->{self.max_out}"
            )

    def forward(self, x: Tensor, out_features: int) -> Tensor:
        self._check(x.shape[-1], out_features)
        return F.linear(x, self.weight[:out_features, : x.shape[-1]], self.bias[:out_features])

    def static(self, in_features: int, out_features: int) -> nn.Linear:
        """A plain ``nn.Linear`` holding a copy of the active slice."""
        self._check(in_features, out_features)
        linear = _blank(nn.Linear, self.weight, in_features, out_features)
        with torch.no_grad():
            linear.weight.copy_(self.weight[:out_features, :in_features])
            linear.bias.copy_(self.bias[:out_features])
        return linear


class ElasticQKV(nn.Module):
    """The query, key and value projections of attention with elastic input features and heads.

    The weight is ``3 x max_heads*head_dim`` rows (query, key, value blocks, each head-major) by
    ``max_in`` columns; ``h`` heads use the first ``h*head_dim`` rows of each block, so the heads an arch
    keeps are the same in query, key and value.
    """

    def __init__(self, max_in: int, max_heads: int, head_dim: int) -> None:
        super().__init__()
        self.max_in, self.max_heads, self.head_dim = max_in, max_heads, head_dim
        self.weight = nn.Parameter(torch.empty(3 * max_heads * head_dim, max_in))
        self.bias = nn.Parameter(torch.zeros(3 * max_heads * head_dim))

    def active(self, in_features: int, heads: int) -> tuple[Tensor, Tensor]:
        """Weight ``3*heads*head_dim x in_features`` and bias of ``heads`` heads."""
        if not (0 < in_features <= self.max_in and 0 < heads <= self.max_heads):
            raise ValueError(
                f"{in_features} features and {heads} heads exceed the maximum {self.max_in} and {self.max_heads}"
            )
        width = heads * self.head_dim
        weight = self.weight.view(3, -1, self.max_in)[:, :width, :in_features].reshape(3 * width, in_features)
        return weight, self.bias.view(3, -1)[:, :width].reshape(3 * width)

    def forward(self, x: Tensor, heads: int) -> Tensor:
        weight, bias = self.active(x.shape[-1], heads)
        return F.linear(x, weight, bias)

    def static(self, in_features: int, heads: int) -> nn.Linear:
        weight, bias = self.active(in_features, heads)
        linear = _blank(nn.Linear, self.weight, in_features, weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        return linear


class ElasticLayerNorm(nn.Module):
    """Layer norm over the first ``d`` features: normalises them with ``weight[:d]`` and ``bias[:d]``."""

    def __init__(self, max_features: int) -> None:
        super().__init__()
        self.max_features = max_features
        self.weight = nn.Parameter(torch.ones(max_features))
        self.bias = nn.Parameter(torch.zeros(max_features))

    def forward(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        if d > self.max_features:
            raise ValueError(f"{d} features exceed the maximum of {self.max_features}")
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], LN_EPS)

    def static(self, features: int) -> nn.LayerNorm:
        norm = _blank(nn.LayerNorm, self.weight, features, eps=LN_EPS)
        with torch.no_grad():
            norm.weight.copy_(self.weight[:features])
            norm.bias.copy_(self.bias[:features])
        return norm


class _ElasticPatchEmbed(nn.Module):
    def __init__(self, space: _Space) -> None:
        super().__init__()
        p, e = space.patch_size, space.max_embed
        self.patch_size, self.pool = p, space.pool
        self.weight = nn.Parameter(torch.empty(e, space.in_channels, p, p))
        self.bias = nn.Parameter(torch.zeros(e))
        self.pos_embed = nn.Parameter(torch.zeros(1, space.num_tokens, e))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e)) if space.pool == "cls" else None

    def position(self, d: int) -> Tensor:
        """``1 x T x d``: the position embedding, with the class token added to its first row."""
        pos = self.pos_embed[..., :d]
        if self.cls_token is None:
            return pos
        return torch.cat([pos[:, :1] + self.cls_token[..., :d], pos[:, 1:]], dim=1)

    def forward(self, x: Tensor, d: int) -> Tensor:
        x = F.conv2d(x, self.weight[:d], self.bias[:d], stride=self.patch_size).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = _prepend_zero_token(x)  # the class token's place; its value comes with the position
        return x + self.position(d)

    def static(self, in_channels: int, d: int) -> PatchEmbed:
        p = self.patch_size
        conv = _blank(nn.Conv2d, self.weight, in_channels, d, p, p)
        with torch.no_grad():
            conv.weight.copy_(self.weight[:d])
            conv.bias.copy_(self.bias[:d])  # type: ignore[union-attr]
            pos = self.position(d).detach().clone()
        return PatchEmbed(conv, pos, self.cls_token is not None)


class _ElasticLayer(nn.Module):
    """Elastic encoder layer: elastic embedding dimension, heads and MLP hidden features."""

    def __init__(self, space: _Space) -> None:
        super().__init__()
        e, hd = space.max_embed, space.head_dim
        self.head_dim, self.scale = hd, hd**-0.5
        self.norm1 = ElasticLayerNorm(e)
        self.qkv = ElasticQKV(e, space.max_heads, hd)
        self.proj = ElasticLinear(space.max_heads * hd, e)
        self.norm2 = ElasticLayerNorm(e)
        self.fc1 = ElasticLinear(e, space.max_hidden)
        self.fc2 = ElasticLinear(space.max_hidden, e)

    def forward(self, x: Tensor, heads: int, hidden: int) -> Tensor:
        d = x.shape[-1]
        q, k, v = _split_heads(self.qkv(self.norm1(x), heads), heads, self.head_dim)
        x = x + self.proj(_merge_heads(attend(q, k, v, self.scale)), d)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x), hidden)), d)

    def static(self, d: int, heads: int, hidden: int) -> EncoderLayer:
        width = heads * self.head_dim
        attn = Attention(self.qkv.static(d, heads), self.proj.static(width, d), heads, self.head_dim)
        mlp = nn.Sequential(self.fc1.static(d, hidden), nn.GELU(), self.fc2.static(hidden, d))
        return EncoderLayer(self.norm1.static(d), attn, self.norm2.static(d), mlp)


class _ElasticHead(nn.Module):
    def __init__(self, space: _Space) -> None:
        super().__init__()
        self.pool, self.num_classes = space.pool, space.num_classes
        self.norm = ElasticLayerNorm(space.max_embed)
        self.dropout = nn.Dropout(space.dropout)
        self.classifier = ElasticLinear(space.max_embed, space.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(_pool(self.norm(x), self.pool)), self.num_classes)

    def static(self, d: int) -> VitHead:
        return VitHead(
            self.norm.static(d), self.classifier.static(d, self.num_classes), self.pool, self.dropout.p
        )


class VitSupernet(ElasticSupernet):
    """Weight-sharing vision transformer over every arch of a :class:`VitSpace`.

    Weights are initialised from ``seed`` alone (the global random generator is neither read nor changed),
    so two supernets with the same space and seed are identical. There is no batch norm: batch-norm
    recalibration leaves its subnets as they are.

    Args:
        space: Shape of the supernet and its elastic choices.
        seed: Seed of the weight initialisation.
        zero_init_residual: Start the output projections of every layer (attention ``proj`` and ``fc2``) at
            zero, so that each layer begins as the identity and a deeper arch starts out computing what a
            shallower one does.

    Example:
        >>> from nas.spaces import VitSpace
        >>> space = VitSpace()
        >>> net = VitSupernet(space).eval()
        >>> x = torch.randn(2, 1, 8, 8)
        >>> arch = space.smallest_arch()
        >>> bool(torch.allclose(net.subnet(arch)(x), net(x, arch), atol=1e-5))
        True
    """

    def __init__(self, space: _Space, *, seed: int = 0, zero_init_residual: bool = False) -> None:
        super().__init__()
        self.space: _Space = space
        self.zero_init_residual = bool(zero_init_residual)
        self.patch_embed = _ElasticPatchEmbed(space)
        self.layers = nn.ModuleList(_ElasticLayer(space) for _ in range(space.max_depth))
        self.head = _ElasticHead(space)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int) -> None:
        """Re-initialises every weight from ``seed``.

        Linear and patch-embedding weights: truncated normal with std ``1 / sqrt(fan_in)`` of the largest
        layer (LeCun normal, cut at two standard deviations; the std 0.02 of ViT and AutoFormer suits their
        192-768 features but leaves these small supernets nearly silent, and SGD then barely moves them).
        Classifier: N(0, 0.01^2); position embedding: N(0, 0.02^2); class token, biases: zero; layer norms:
        identity. With ``zero_init_residual``, the output projections of every layer are zero.
        """
        gen = torch.Generator(device="cpu").manual_seed(seed)

        def lecun(param: Tensor) -> None:
            std = param[0].numel() ** -0.5
            w = torch.empty(param.shape)
            nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=gen)
            param.copy_(w)

        with torch.no_grad():
            embed = self.patch_embed
            lecun(embed.weight)
            embed.bias.zero_()
            embed.pos_embed.copy_(torch.randn(embed.pos_embed.shape, generator=gen) * 0.02)
            if embed.cls_token is not None:
                embed.cls_token.zero_()
            for module in self.modules():
                if isinstance(module, (ElasticLinear, ElasticQKV)):
                    lecun(module.weight)
                    module.bias.zero_()
                elif isinstance(module, ElasticLayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            classifier = self.head.classifier
            classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=gen) * 0.01)
            if self.zero_init_residual:
                for layer in self._layers():
                    layer.proj.weight.zero_()
                    layer.fc2.weight.zero_()

    def _layers(self) -> list[_ElasticLayer]:
        return [cast(_ElasticLayer, m) for m in self.layers]

    def _resolve(self, arch: Mapping[str, Any] | None) -> Arch:
        if arch is None:
            arch = self.space.largest_arch()
        self.space.validate_arch(arch)
        return copy.deepcopy(dict(arch))

    def forward(self, x: Tensor, arch: Mapping[str, Any] | None = None) -> Tensor:
        """Runs one arch on the shared weights.

        Args:
            x: Images, ``N x in_channels x image_size x image_size``.
            arch: Canonical arch dict; ``None`` runs the largest.

        Returns:
            Class logits, ``N x num_classes``.
        """
        arch = self._resolve(arch)
        d = int(arch["embed"])
        x = self.patch_embed(x, d)
        layers = self._layers()
        for i, (heads, ratio) in enumerate(zip(arch["heads"], arch["mlp_ratio"])):
            x = layers[i](x, int(heads), mlp_hidden(d, float(ratio)))
        return cast(Tensor, self.head(x))

    def subnet(self, arch: Mapping[str, Any] | None = None) -> VitSubnet:
        """A standalone static copy of one arch.

        The result holds plain ``nn.Conv2d`` / ``nn.Linear`` / ``nn.LayerNorm`` layers with only the active
        features, heads and layers, the sliced weights copied in, on the supernet's device and in its
        train/eval mode. It shares no storage with the supernet.

        Args:
            arch: Canonical arch dict; ``None`` means the largest.

        Returns:
            A :class:`VitSubnet` whose ``forward(x)`` equals ``self(x, arch)``.
        """
        arch = self._resolve(arch)
        d = int(arch["embed"])
        layers = self._layers()
        statics = [
            layers[i].static(d, int(heads), mlp_hidden(d, float(ratio)))
            for i, (heads, ratio) in enumerate(zip(arch["heads"], arch["mlp_ratio"]))
        ]
        net = VitSubnet(
            self.patch_embed.static(self.space.in_channels, d),
            nn.Sequential(*statics),
            self.head.static(d),
            arch=arch,
            spec=self.space,
        )
        return net.train(self.training)

    def sample_arch(self, rng: np.random.Generator) -> Arch:
        """A random arch of this supernet's space (uniform over choices); see ``VitSpace.random_arch``."""
        return self.space.random_arch(rng)


def build_part(supernet: VitSupernet, how: tuple[Any, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    """The static module of one lookup-table part and its input shape (see ``VitSpace.distinct_parts``)."""
    kind, d, shape = how[0], int(how[1]), tuple(how[-1])
    if kind == "patch":
        return supernet.patch_embed.static(supernet.space.in_channels, d).eval(), shape
    if kind == "layer":
        _, _, index, heads, ratio, _ = how
        layer = supernet._layers()[int(index)]
        return layer.static(d, int(heads), mlp_hidden(d, float(ratio))).eval(), shape
    if kind == "head":
        return supernet.head.static(d).eval(), shape
    raise ValueError(f"unknown vit part kind {kind!r}")
