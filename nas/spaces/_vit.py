"""The elastic vision-transformer search space (weight-shared as AutoFormer and HAT do), as plain data.

An image is cut into ``patch_size x patch_size`` patches, each embedded by one convolution (kernel = stride
= patch size) into ``embed`` features; a class token (``pool="cls"``) or the mean of the tokens
(``pool="mean"``) feeds the classifier, and a learned position embedding is added to the tokens. Between
them sit ``depth`` pre-norm encoder layers, each multi-head self-attention and an MLP.

An *architecture* (``arch``) is a JSON-ready dict in canonical form::

    {"embed": 64,                       # embedding dimension, one per arch
     "depth": 3,                        # active encoder layers
     "heads": [2, 4, 1],                # attention heads, per active layer
     "mlp_ratio": [2.0, 4.0, 3.0]}      # MLP hidden features / embed, per active layer

Layers beyond ``depth`` do not appear, so two equal networks always have equal archs. Search strategies see
a flat ``params`` dict instead (``embed``, ``depth``, ``heads_<l>`` and ``mlp_ratio_<l>`` for every possible
layer); :meth:`VitSpace.arch_from_params` maps one to the other, dropping the choices of inactive layers.

Heads have a fixed width, ``head_dim`` (AutoFormer's choice, 64 in its ImageNet spaces): a layer with ``h``
heads attends with ``h * head_dim`` query/key/value features and projects them back to ``embed``. The
number of heads therefore never has to divide the embedding dimension, and every combination of the choice
lists is a valid network.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.spaces._protocol import Arch, ElasticSupernet, SearchSpace
from nas.spaces._vit_net import VitSupernet, build_part, mlp_hidden
from search import Choice, Space

__all__ = ["VIT_PRESETS", "VitSpace", "mlp_hidden"]

#: Choice lists by preset; ``patch_size`` is for the image size the preset is meant for (8, 32 and 224
#: pixels; :meth:`VitSpace.for_input` adapts it to other sizes). ``tiny`` and ``small`` are AutoFormer's
#: ImageNet spaces (``head_dim`` 64, patches of 16 pixels on 224x224 images).
VIT_PRESETS: dict[str, dict[str, Any]] = {
    "digits": {
        "patch_size": 2, "embed_choices": (32, 48, 64), "depth_choices": (2, 3, 4), "heads_choices": (1, 2, 4),
        "mlp_ratio_choices": (1.0, 2.0, 3.0), "head_dim": 16, "pool": "mean",
    },
    "cifar": {
        "patch_size": 4, "embed_choices": (96, 128, 192), "depth_choices": (4, 5, 6), "heads_choices": (2, 3, 4),
        "mlp_ratio_choices": (2.0, 3.0, 4.0), "head_dim": 32, "pool": "mean",
    },
    "tiny": {
        "patch_size": 16, "embed_choices": (192, 216, 240), "depth_choices": (12, 13, 14), "heads_choices": (3, 4),
        "mlp_ratio_choices": (3.5, 4.0), "head_dim": 64, "pool": "cls",
    },
    "small": {
        "patch_size": 16, "embed_choices": (320, 384, 448), "depth_choices": (12, 13, 14),
        "heads_choices": (5, 6, 7), "mlp_ratio_choices": (3.0, 3.5, 4.0), "head_dim": 64, "pool": "cls",
    },
}  # fmt: skip

_POOLS = ("cls", "mean")
_ARCH_KEYS = ("embed", "depth", "heads", "mlp_ratio")


def preset_for_size(image_size: int) -> str:
    """The preset :meth:`VitSpace.for_input` picks for square images of ``image_size`` pixels.

    Example:
        >>> [preset_for_size(s) for s in (8, 28, 32, 64, 224)]
        ['digits', 'cifar', 'cifar', 'cifar', 'tiny']
    """
    if image_size < 16:
        return "digits"
    return "cifar" if image_size < 96 else "tiny"


def _patch_for(image_size: int, preset: str) -> int:
    """The preset's patch size scaled to ``image_size`` (the same number of patches per side as on the
    images the preset is meant for), lowered to the nearest size that divides the image."""
    per_side = {"digits": 4, "cifar": 8, "tiny": 14, "small": 14}[preset]
    patch = max(1, image_size // per_side)
    while image_size % patch:
        patch -= 1
    return patch


@dataclass(frozen=True)
class VitSpace(SearchSpace):
    """Shape of the elastic vision transformer and its choices.

    The defaults suit 8x8 grayscale digits (patches of 2 pixels: 16 tokens, averaged for the classifier);
    :meth:`for_input` picks a preset from the image size (``digits`` below 16 pixels, ``cifar`` below 96,
    ``tiny`` above, AutoFormer-T-like at 224) and scales its patch size to the image.

    Attributes:
        in_channels: Image channels.
        num_classes: Classes of the classifier.
        image_size: Side of the square input images, in pixels.
        patch_size: Side of a patch (the patch embedding's kernel and stride); divides ``image_size``.
        embed_choices: Embedding dimensions (one per arch).
        depth_choices: Numbers of encoder layers.
        heads_choices: Attention heads per layer.
        mlp_ratio_choices: MLP hidden features per embedding feature, per layer.
        head_dim: Features of one attention head (fixed, so any number of heads fits any embedding).
        pool: ``"cls"`` (a class token feeds the classifier) or ``"mean"`` (the mean of the patch tokens).
            The digits and cifar presets average: a class token sees the image only through attention, and
            small supernets trained with SGD learn far more slowly that way. The ImageNet presets use a
            class token, as AutoFormer does.
        dropout: Dropout before the classifier.
        preset: The preset the choices started from (recorded for people; the fields are what counts).

    Example:
        >>> space = VitSpace()
        >>> space.num_subnets()
        22113
        >>> space.arch_from_params(space.params_from_arch(space.largest_arch())) == space.largest_arch()
        True
    """

    name: ClassVar[str] = "vit"
    input_sizes: ClassVar[tuple[int, ...]] = (8, 32, 224)
    #: preset -> the input side length it is designed for (``hwnas spaces`` lists one line per preset)
    presets: ClassVar[dict[str, int]] = {"digits": 8, "cifar": 32, "tiny": 224, "small": 224}

    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 8
    patch_size: int = 2
    embed_choices: tuple[int, ...] = (32, 48, 64)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    heads_choices: tuple[int, ...] = (1, 2, 4)
    mlp_ratio_choices: tuple[float, ...] = (1.0, 2.0, 3.0)
    head_dim: int = 16
    pool: str = "mean"
    dropout: float = 0.0
    preset: str | None = "digits"

    def __post_init__(self) -> None:
        for field in ("in_channels", "num_classes", "image_size", "patch_size", "head_dim"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        for field, kind in (
            ("embed_choices", int),
            ("depth_choices", int),
            ("heads_choices", int),
            ("mlp_ratio_choices", float),
        ):
            values = getattr(self, field)
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ValueError(f"{field} must be a non-empty list, got {values!r}")
            if kind is int and any(not isinstance(v, int) or isinstance(v, bool) for v in values):
                raise ValueError(f"{field} must hold integers, got {list(values)}")
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in values):
                raise ValueError(f"{field} must hold positive numbers, got {list(values)}")
            normal = tuple(kind(v) for v in values)
            if list(normal) != sorted(set(normal)):
                raise ValueError(f"{field} must be strictly increasing, got {list(values)}")
            object.__setattr__(self, field, normal)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"patch_size {self.patch_size} does not divide image_size {self.image_size}; pick a divisor, "
                f"e.g. {_patch_for(self.image_size, preset_for_size(self.image_size))}"
            )
        if self.preset is not None and self.preset not in VIT_PRESETS:
            raise ValueError(f"unknown vit preset {self.preset!r}; valid: {', '.join(VIT_PRESETS)}")
        if self.pool not in _POOLS:
            raise ValueError(f"pool must be one of {list(_POOLS)}, got {self.pool!r}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool):
            raise TypeError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "dropout", float(self.dropout))

    @classmethod
    def for_input(cls, in_channels: int, image_size: int, num_classes: int, **options: Any) -> VitSpace:
        """The space for images of ``in_channels x image_size x image_size`` and ``num_classes``.

        Options: ``preset`` (``digits``, ``cifar``, ``tiny``, ``small``; by default picked from the image
        size, see :data:`VIT_PRESETS`) and any field of the class (``patch_size``, ``embed_choices``,
        ``depth_choices``, ``heads_choices``, ``mlp_ratio_choices``, ``head_dim``, ``pool``, ``dropout``),
        which override the preset. The preset's patch size is scaled to the image: 2 for 8x8 digits, 4 for
        32x32, 16 for 224x224.

        Example:
            >>> VitSpace.for_input(3, 32, 10).patch_size, VitSpace.for_input(3, 224, 1000).patch_size
            (4, 16)
        """
        options = dict(options)
        preset = options.pop("preset", None) or preset_for_size(int(image_size))
        if preset not in VIT_PRESETS:
            raise ValueError(f"unknown vit preset {preset!r}; valid: {', '.join(VIT_PRESETS)}")
        fixed = {"in_channels", "image_size", "num_classes", "preset"}
        settable = {f.name for f in dataclasses.fields(cls)} - fixed
        unknown = sorted(set(options) - settable)
        if unknown:
            raise TypeError(
                f"unknown vit option {unknown[0]!r}; valid: preset, {', '.join(sorted(settable))}"
            )
        kwargs: dict[str, Any] = dict(VIT_PRESETS[preset], preset=preset)
        kwargs["patch_size"] = _patch_for(int(image_size), preset)
        kwargs.update(options)
        for key, value in kwargs.items():
            if key.endswith("_choices") and isinstance(value, list):
                kwargs[key] = tuple(value)
        return cls(in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VitSpace:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise TypeError(f"unknown vit field {unknown[0]!r}; valid: {', '.join(sorted(fields))}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def build_supernet(
        self, *, seed: int = 0, zero_init_residual: bool = False, **options: Any
    ) -> ElasticSupernet:
        """The weight-sharing supernet (see :class:`nas.spaces._vit_net.VitSupernet`)."""
        if options:
            raise TypeError(f"unknown vit supernet option {min(options)!r}; valid: zero_init_residual")

        return VitSupernet(self, seed=seed, zero_init_residual=zero_init_residual)

    def describe(self) -> str:
        preset = f"{self.preset} preset, " if self.preset else ""
        return (
            f"elastic ViT: {preset}{self.patch_size}x{self.patch_size} patches ({self.num_tokens} tokens), embed "
            f"{list(self.embed_choices)}, depth {list(self.depth_choices)}, heads {list(self.heads_choices)} "
            f"of {self.head_dim}, mlp ratio {list(self.mlp_ratio_choices)}"
        )

    # -- sizes ---------------------------------------------------------------------------------------
    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def max_embed(self) -> int:
        return max(self.embed_choices)

    @property
    def max_heads(self) -> int:
        return max(self.heads_choices)

    @property
    def max_hidden(self) -> int:
        """Hidden features of the widest MLP (the rows of the stored first MLP weight)."""
        return max(mlp_hidden(e, r) for e in self.embed_choices for r in self.mlp_ratio_choices)

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Tokens the encoder layers see: the patches, and the class token with ``pool="cls"``."""
        return self.grid**2 + (1 if self.pool == "cls" else 0)

    def num_subnets(self) -> int:
        """Number of distinct architectures (inactive choices do not count)."""
        per_layer = len(self.heads_choices) * len(self.mlp_ratio_choices)
        return len(self.embed_choices) * sum(per_layer**d for d in self.depth_choices)

    # -- the search space ----------------------------------------------------------------------------
    def search_space(self) -> Space:
        """The flat space strategies search (a superset encoding of the archs)."""
        params: dict[str, Any] = {"embed": Choice(self.embed_choices), "depth": Choice(self.depth_choices)}
        for layer in range(self.max_depth):
            params[f"heads_{layer}"] = Choice(self.heads_choices)
            params[f"mlp_ratio_{layer}"] = Choice(self.mlp_ratio_choices)
        return Space(params)

    def arch_from_params(self, params: Mapping[str, Any]) -> Arch:
        """Flat params -> canonical arch (choices of inactive layers are dropped)."""
        depth = int(params["depth"])
        arch: Arch = {
            "embed": int(params["embed"]),
            "depth": depth,
            "heads": [int(params[f"heads_{layer}"]) for layer in range(depth)],
            "mlp_ratio": [self._ratio(params[f"mlp_ratio_{layer}"]) for layer in range(depth)],
        }
        self.validate_arch(arch)
        return arch

    def params_from_arch(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical arch -> flat params (inactive layers take the smallest choices)."""
        self.validate_arch(arch)
        depth = int(arch["depth"])
        params: dict[str, Any] = {"embed": int(arch["embed"]), "depth": depth}
        for layer in range(self.max_depth):
            active = layer < depth
            params[f"heads_{layer}"] = int(arch["heads"][layer]) if active else self.heads_choices[0]
            params[f"mlp_ratio_{layer}"] = (
                self._ratio(arch["mlp_ratio"][layer]) if active else self.mlp_ratio_choices[0]
            )
        return params

    def _ratio(self, value: Any) -> float:
        """``value`` as the choice it is (ratios that differ only by rounding are the same choice)."""
        for ratio in self.mlp_ratio_choices:
            if math.isclose(float(value), ratio, rel_tol=1e-9, abs_tol=1e-12):
                return ratio
        return float(value)

    def validate_arch(self, arch: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` saying what is wrong with an arch."""
        if not isinstance(arch, Mapping):
            raise TypeError(f"an arch must be a dict, got {type(arch).__name__}")
        missing = [k for k in _ARCH_KEYS if k not in arch]
        if missing:
            raise ValueError(f"arch is missing {missing}")
        extra = sorted(set(arch) - set(_ARCH_KEYS))
        if extra:
            raise ValueError(f"arch has unknown keys {extra}; valid: {', '.join(_ARCH_KEYS)}")
        if arch["embed"] not in self.embed_choices:
            raise ValueError(f"embed {arch['embed']} is not one of {list(self.embed_choices)}")
        depth = arch["depth"]
        if depth not in self.depth_choices:
            raise ValueError(f"depth {depth} is not one of {list(self.depth_choices)}")
        for key, valid in (("heads", self.heads_choices), ("mlp_ratio", self.mlp_ratio_choices)):
            row = arch[key]
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != depth:
                raise ValueError(f"{key} needs {depth} values (one per active layer), got {row!r}")
            bad = [v for v in row if not any(math.isclose(float(v), c, rel_tol=1e-9) for c in valid)]
            if bad:
                raise ValueError(f"{key} values {bad} are not in {list(valid)}")

    def largest_arch(self) -> Arch:
        d = self.max_depth
        return {
            "embed": self.max_embed,
            "depth": d,
            "heads": [self.max_heads] * d,
            "mlp_ratio": [max(self.mlp_ratio_choices)] * d,
        }

    def smallest_arch(self) -> Arch:
        d = min(self.depth_choices)
        return {
            "embed": min(self.embed_choices),
            "depth": d,
            "heads": [min(self.heads_choices)] * d,
            "mlp_ratio": [min(self.mlp_ratio_choices)] * d,
        }

    # -- lookup-table parts --------------------------------------------------------------------------
    def _tokens_for(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = (int(d) for d in input_shape)
        if (c, h, w) != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"this vit space is sized for inputs {(self.in_channels, self.image_size, self.image_size)} "
                f"(its position embedding has {self.num_tokens} tokens), got {(c, h, w)}"
            )
        return c, h, w

    def arch_parts(self, arch: Mapping[str, Any], input_shape: Sequence[int]) -> list[str]:
        """Patch embedding, one key per active encoder layer, head; a layer's key holds the embedding
        dimension, heads, head width, MLP ratio and tokens, which is all its latency depends on.

        Example:
            >>> space = VitSpace()
            >>> space.arch_parts(space.smallest_arch(), (1, 8, 8))  # doctest: +NORMALIZE_WHITESPACE
            ['patch|c=1|out=32|p=2|hw=8x8|mean', 'layer|dim=32|heads=1|hd=16|mlp=1|tokens=16',
             'layer|dim=32|heads=1|hd=16|mlp=1|tokens=16', 'head|dim=32|classes=10|tokens=16|mean']
        """
        self.validate_arch(arch)
        c, h, w = self._tokens_for(input_shape)
        d = int(arch["embed"])
        parts = [self._patch_key(c, h, w, d)]
        parts += [
            self._layer_key(d, int(heads), float(ratio))
            for heads, ratio in zip(arch["heads"], arch["mlp_ratio"])
        ]
        parts.append(self._head_key(d))
        return parts

    def distinct_parts(self, input_shape: Sequence[int]) -> dict[str, tuple[Any, ...]]:
        """Values are ``("patch", embed)``, ``("layer", embed, index, heads, mlp_ratio)`` or ``("head",
        embed)``, each followed by the part's input shape: ``(C, H, W)`` for the patch embedding,
        ``(tokens, embed)`` for the others."""
        c, h, w = self._tokens_for(input_shape)
        t = self.num_tokens
        out: dict[str, tuple[Any, ...]] = {}
        for d in self.embed_choices:
            out[self._patch_key(c, h, w, d)] = ("patch", d, (c, h, w))
            for heads in self.heads_choices:
                for ratio in self.mlp_ratio_choices:
                    # Every layer of a given shape times alike: the first layer's weights stand for all.
                    out[self._layer_key(d, heads, ratio)] = ("layer", d, 0, heads, ratio, (t, d))
            out[self._head_key(d)] = ("head", d, (t, d))
        return out

    # The parts after the patch embedding take tokens, ``(T, d)``, not ``(C, H, W)``.
    def build_part(  # type: ignore[override]
        self, supernet: ElasticSupernet, how: tuple[Any, ...]
    ) -> tuple[Any, tuple[int, ...]]:
        assert isinstance(supernet, VitSupernet)
        return build_part(supernet, how)

    def _patch_key(self, c: int, h: int, w: int, d: int) -> str:
        return f"patch|c={c}|out={d}|p={self.patch_size}|hw={h}x{w}|{self.pool}"

    def _layer_key(self, d: int, heads: int, ratio: float) -> str:
        return f"layer|dim={d}|heads={heads}|hd={self.head_dim}|mlp={ratio:g}|tokens={self.num_tokens}"

    def _head_key(self, d: int) -> str:
        return f"head|dim={d}|classes={self.num_classes}|tokens={self.num_tokens}|{self.pool}"
