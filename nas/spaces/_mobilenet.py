"""The elastic MobileNet-style search space, described as plain data.

An *architecture* (``arch``) is a JSON-ready dict in canonical form::

    {"width": 1.0,                      # width multiplier of stem, stages and head
     "depth": [2, 3, 1, 2],             # active blocks per stage
     "kernel": [[3, 5], [7, 3, 3], [5], [3, 3]],   # per active block, per stage
     "expand": [[4, 6], [3, 3, 4], [6], [4, 3]]}

Blocks beyond a stage's depth do not appear, so two equal networks always have equal archs. Search
strategies see a flat ``params`` dict instead (``width``, ``depth_<s>``, ``kernel_<s>_<b>``,
``expand_<s>_<b>`` for every possible block); :meth:`SupernetSpec.arch_from_params` maps one to the
other, dropping the choices of inactive blocks.

Three *presets* size the space for common inputs (:data:`PRESETS`); :meth:`SupernetSpec.for_input` picks one
from the image size, and ``space.options: {preset: NAME}`` names one:

- ``digits`` (images under 16 pixels, e.g. the 8x8 digits): four stages of 16-48 channels, depth 1-3; larger
  images get a stride-2 stem. The class defaults; specs built from it record no preset.
- ``cifar`` (16 to 127 pixels, e.g. 32x32): a stride-1 stem and five stages of 24-160 channels, depth 1-3,
  downsampling 8x.
- ``imagenet`` (128 pixels and more, e.g. 224x224): a stride-2 stem and five stages of 24-160 channels with
  depth 2-4, kernels 3/5/7 and expand ratios 3/4/6, downsampling 32x, as Once-for-All's MobileNetV3 space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar

import numpy as np

from nas.spaces._mobilenet_net import Supernet, build_part
from nas.spaces._protocol import Arch, ElasticSupernet, SearchSpace, arch_key
from search import Choice, Space

__all__ = ["PRESETS", "Arch", "SupernetSpec", "arch_key", "make_divisible", "preset_for_size"]


def make_divisible(value: float, divisor: int = 4) -> int:
    """Rounds a channel count to the nearest multiple of ``divisor`` (never below it, never 10% below)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


#: Named starting points of the space: field values over the class defaults (``digits`` is the defaults).
PRESETS: dict[str, dict[str, Any]] = {
    "digits": {},
    "cifar": {
        "stem_channels": 24,
        "stem_stride": 1,
        "stage_channels": (24, 40, 80, 112, 160),
        "stage_strides": (1, 2, 2, 1, 2),
        "depth_choices": (1, 2, 3),
        "head_channels": 640,
        "dropout": 0.2,
    },
    "imagenet": {
        "stem_channels": 16,
        "stem_stride": 2,
        "stage_channels": (24, 40, 80, 112, 160),
        "stage_strides": (2, 2, 2, 1, 2),
        "depth_choices": (2, 3, 4),
        "head_channels": 1280,
        "dropout": 0.2,
    },
}

#: The input side length (pixels) each preset is designed for (``hwnas spaces`` lists them).
PRESET_SIZES: dict[str, int] = {"digits": 8, "cifar": 32, "imagenet": 224}

# Choices that shape the stages: a spec given one of them without a preset keeps the digits layout, as
# configs written before the presets meant.
_LAYOUT = ("stage_channels", "stage_strides")


def preset_for_size(image_size: int) -> str:
    """The preset :meth:`SupernetSpec.for_input` picks for square images of ``image_size`` pixels.

    Example:
        >>> [preset_for_size(s) for s in (8, 32, 64, 224)]
        ['digits', 'cifar', 'cifar', 'imagenet']
    """
    if image_size < 16:
        return "digits"
    return "cifar" if image_size < 128 else "imagenet"


@dataclass(frozen=True)
class SupernetSpec(SearchSpace):
    """Shape of the supernet and its elastic choices.

    The defaults suit 8x8 grayscale digits (the ``digits`` preset); :meth:`for_input` picks a preset sized
    for the input (see the module docstring) and applies options over it.

    Example:
        >>> spec = SupernetSpec()
        >>> spec.num_subnets() >= 10**6
        True
        >>> spec.arch_from_params(spec.params_from_arch(spec.largest_arch())) == spec.largest_arch()
        True
    """

    name: ClassVar[str] = "mobilenet"
    input_sizes: ClassVar[tuple[int, ...]] = (8, 32, 224)
    #: preset name -> the input side length it is designed for
    presets: ClassVar[dict[str, int]] = PRESET_SIZES

    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 8
    stem_channels: int = 16
    stem_stride: int = 1
    stage_channels: tuple[int, ...] = (16, 24, 32, 48)
    stage_strides: tuple[int, ...] = (1, 2, 2, 1)
    depth_choices: tuple[int, ...] = (1, 2, 3)
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    width_choices: tuple[float, ...] = (0.5, 0.75, 1.0)
    head_channels: int = 128
    dropout: float = 0.1
    #: the preset the spec was built from (``None``: the digits defaults, as in runs made before presets)
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        if len(self.stage_channels) != len(self.stage_strides):
            raise ValueError("stage_channels and stage_strides must have the same length")
        for name in ("depth_choices", "kernel_choices", "expand_choices", "width_choices"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be a non-empty, strictly increasing tuple, got {values}")
        if any(k % 2 == 0 for k in self.kernel_choices):
            raise ValueError(f"kernel sizes must be odd, got {self.kernel_choices}")
        if min(self.depth_choices) < 1:
            raise ValueError("every stage needs at least one block")

    @classmethod
    def for_input(cls, in_channels: int, image_size: int, num_classes: int, **overrides: Any) -> SupernetSpec:
        """Spec for a dataset: a preset sized for ``image_size``, with ``overrides`` (any field) over it.

        ``preset`` names one of :data:`PRESETS`; without it the image size picks one
        (:func:`preset_for_size`), except that overrides of the stage layout (``stage_channels`` or
        ``stage_strides``) keep the ``digits`` layout they were written for. The ``digits`` preset gives a
        stride-2 stem to images of 16 pixels or more.

        Example:
            >>> spec = SupernetSpec.for_input(3, 224, 1000)
            >>> spec.preset, spec.stem_stride, spec.num_stages, spec.num_subnets() >= 10**12
            ('imagenet', 2, 5, True)
            >>> SupernetSpec.for_input(1, 8, 10) == SupernetSpec()
            True
        """
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        fields = {f.name for f in dataclass_fields(cls)} - {"in_channels", "num_classes", "image_size"}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(
                f"unknown option {unknown[0]!r} of the mobilenet space; valid: {', '.join(sorted(fields))}"
            )
        preset = options.pop("preset", None)
        if preset is None:
            preset = "digits" if any(k in options for k in _LAYOUT) else preset_for_size(image_size)
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} of the mobilenet space; valid: {', '.join(PRESETS)}")
        kwargs: dict[str, Any] = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "image_size": image_size,
        }
        if preset == "digits":  # the defaults, recorded as no preset so that older runs' specs compare equal
            kwargs["stem_stride"] = 2 if image_size >= 16 else 1
        else:
            kwargs.update(PRESETS[preset], preset=preset)
        kwargs.update(options)
        return cls(**kwargs)

    def build_supernet(
        self, *, seed: int = 0, zero_init_residual: bool = False, **options: Any
    ) -> ElasticSupernet:
        if options:
            raise TypeError(f"unknown mobilenet supernet option {min(options)!r}; valid: zero_init_residual")
        return Supernet(self, seed=seed, zero_init_residual=zero_init_residual)

    def describe(self) -> str:
        preset = f" ({self.preset} preset)" if self.preset else ""
        return (
            f"elastic MobileNet{preset}: {self.num_stages} stages of {list(self.stage_channels)} channels, depth "
            f"{list(self.depth_choices)}, kernel {list(self.kernel_choices)}, expand {list(self.expand_choices)}, "
            f"width {list(self.width_choices)}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if data["preset"] is None:  # specs without a preset keep the form runs stored before presets
            del data["preset"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupernetSpec:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    # -- sizes ---------------------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    def channels(self, width: float) -> tuple[int, list[int], int]:
        """(stem, per-stage, head) output channels at a width multiplier."""
        return (
            make_divisible(self.stem_channels * width),
            [make_divisible(c * width) for c in self.stage_channels],
            make_divisible(self.head_channels * width),
        )

    def num_subnets(self) -> int:
        """Number of distinct architectures (inactive choices do not count)."""
        per_block = len(self.kernel_choices) * len(self.expand_choices)
        per_stage = sum(per_block**d for d in self.depth_choices)
        return len(self.width_choices) * per_stage**self.num_stages

    # -- the search space ----------------------------------------------------------------------------
    def search_space(self) -> Space:
        """The flat space strategies search (a superset encoding of the archs)."""
        params: dict[str, Any] = {"width": Choice(self.width_choices)}
        for s in range(self.num_stages):
            params[f"depth_{s}"] = Choice(self.depth_choices)
        for s in range(self.num_stages):
            for b in range(self.max_depth):
                params[f"kernel_{s}_{b}"] = Choice(self.kernel_choices)
                params[f"expand_{s}_{b}"] = Choice(self.expand_choices)
        return Space(params)

    def arch_from_params(self, params: Mapping[str, Any]) -> Arch:
        """Flat params -> canonical arch (choices of inactive blocks are dropped)."""
        depth = [int(params[f"depth_{s}"]) for s in range(self.num_stages)]
        arch: Arch = {
            "width": float(params["width"]),
            "depth": depth,
            "kernel": [[int(params[f"kernel_{s}_{b}"]) for b in range(d)] for s, d in enumerate(depth)],
            "expand": [[int(params[f"expand_{s}_{b}"]) for b in range(d)] for s, d in enumerate(depth)],
        }
        self.validate_arch(arch)
        return arch

    def params_from_arch(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical arch -> flat params (inactive blocks take the smallest choice)."""
        self.validate_arch(arch)
        params: dict[str, Any] = {"width": float(arch["width"])}
        for s in range(self.num_stages):
            params[f"depth_{s}"] = int(arch["depth"][s])
        for s in range(self.num_stages):
            for b in range(self.max_depth):
                active = b < arch["depth"][s]
                params[f"kernel_{s}_{b}"] = arch["kernel"][s][b] if active else self.kernel_choices[0]
                params[f"expand_{s}_{b}"] = arch["expand"][s][b] if active else self.expand_choices[0]
        return params

    def validate_arch(self, arch: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` saying what is wrong with an arch."""
        if not isinstance(arch, Mapping):
            raise ValueError(f"an arch must be a dict, got {type(arch).__name__}")
        missing = {"width", "depth", "kernel", "expand"} - set(arch)
        if missing:
            raise ValueError(f"arch is missing {sorted(missing)}")
        extra = set(arch) - {"width", "depth", "kernel", "expand"}
        if extra:
            raise ValueError(f"arch has unknown keys {sorted(extra)}; valid: width, depth, kernel, expand")
        if not any(math.isclose(float(arch["width"]), w) for w in self.width_choices):
            raise ValueError(f"width {arch['width']} is not one of {list(self.width_choices)}")
        depth = arch["depth"]
        if len(depth) != self.num_stages:
            raise ValueError(f"depth needs {self.num_stages} stages, got {len(depth)}")
        for s, d in enumerate(depth):
            if d not in self.depth_choices:
                raise ValueError(f"depth of stage {s} is {d}; valid: {list(self.depth_choices)}")
            for key, valid in (("kernel", self.kernel_choices), ("expand", self.expand_choices)):
                row = arch[key][s] if s < len(arch[key]) else None
                if row is None or len(row) != d:
                    raise ValueError(f"{key} of stage {s} needs {d} values (its depth), got {row}")
                bad = [v for v in row if v not in valid]
                if bad:
                    raise ValueError(f"{key} values {bad} in stage {s} are not in {list(valid)}")

    def largest_arch(self) -> Arch:
        d = self.max_depth
        return {
            "width": float(max(self.width_choices)),
            "depth": [d] * self.num_stages,
            "kernel": [[max(self.kernel_choices)] * d for _ in range(self.num_stages)],
            "expand": [[max(self.expand_choices)] * d for _ in range(self.num_stages)],
        }

    def smallest_arch(self) -> Arch:
        d = min(self.depth_choices)
        return {
            "width": float(min(self.width_choices)),
            "depth": [d] * self.num_stages,
            "kernel": [[min(self.kernel_choices)] * d for _ in range(self.num_stages)],
            "expand": [[min(self.expand_choices)] * d for _ in range(self.num_stages)],
        }

    def random_arch(self, rng: np.random.Generator) -> Arch:
        """Uniform over choices (not over distinct archs), as the sandwich rule samples."""
        return self.arch_from_params(self.search_space().sample(rng))

    # -- lookup-table parts --------------------------------------------------------------------------
    def arch_parts(self, arch: Mapping[str, Any], input_shape: Sequence[int]) -> list[str]:
        """Stem, one key per active block, head; each key holds channels, stride, kernel, expand and the
        spatial size it runs at.

        Example:
            >>> spec = SupernetSpec()
            >>> parts = spec.arch_parts(spec.smallest_arch(), (1, 8, 8))
            >>> parts[0], parts[-1]
            ('stem|c=1|out=8|s=1|hw=8x8', 'head|in=24|out=64|classes=10|hw=2x2')
        """
        return _arch_parts(self, arch, input_shape)

    def distinct_parts(self, input_shape: Sequence[int]) -> dict[str, tuple[Any, ...]]:
        """Values are ``("stem", width)``, ``("block", width, stage, index, kernel, expand)`` or ``("head",
        width, last stage)``, each followed by the part's input shape ``(C, H, W)``."""
        return _distinct_parts(self, input_shape)

    def build_part(self, supernet: ElasticSupernet, how: tuple[Any, ...]) -> tuple[Any, tuple[int, int, int]]:
        assert isinstance(supernet, Supernet)
        return build_part(supernet, how)


def _out(size: int, stride: int) -> int:
    # every conv pads kernel // 2, so the output size depends on the stride only
    return (size - 1) // stride + 1


def _arch_parts(spec: SupernetSpec, arch: Mapping[str, Any], input_shape: Sequence[int]) -> list[str]:
    """See :meth:`SupernetSpec.arch_parts`."""
    c, h, w = (int(d) for d in input_shape)
    stem, stages, head = spec.channels(float(arch["width"]))
    h, w = _out(h, spec.stem_stride), _out(w, spec.stem_stride)
    parts = [f"stem|c={c}|out={stem}|s={spec.stem_stride}|hw={h}x{w}"]
    in_ch = stem
    for s in range(spec.num_stages):
        for b in range(int(arch["depth"][s])):
            stride = spec.stage_strides[s] if b == 0 else 1
            k, e = int(arch["kernel"][s][b]), int(arch["expand"][s][b])
            parts.append(f"block|in={in_ch}|out={stages[s]}|s={stride}|k={k}|e={e}|hw={h}x{w}")
            h, w = _out(h, stride), _out(w, stride)
            in_ch = stages[s]
    parts.append(f"head|in={in_ch}|out={head}|classes={spec.num_classes}|hw={h}x{w}")
    return parts


def _distinct_parts(spec: SupernetSpec, input_shape: Sequence[int]) -> dict[str, tuple[Any, ...]]:
    """Every part any arch of ``spec`` can contain, with what is needed to build it.

    Values are ``("stem", width)``, ``("block", width, stage, index, kernel, expand)`` or ``("head", width,
    last stage)`` and the part's input shape ``(C, H, W)`` as the last element.
    """
    c, h0, w0 = (int(d) for d in input_shape)
    out: dict[str, tuple[Any, ...]] = {}
    for width in spec.width_choices:
        stem, stages, head = spec.channels(float(width))
        h, w = _out(h0, spec.stem_stride), _out(w0, spec.stem_stride)
        out[f"stem|c={c}|out={stem}|s={spec.stem_stride}|hw={h}x{w}"] = ("stem", width, (c, h0, w0))
        in_ch = stem
        for s in range(spec.num_stages):
            # The first block of a stage changes channels and stride; the others repeat one shape.
            for b in range(min(2, max(spec.depth_choices))):
                stride = spec.stage_strides[s] if b == 0 else 1
                block_in = in_ch if b == 0 else stages[s]
                for k in spec.kernel_choices:
                    for e in spec.expand_choices:
                        key = f"block|in={block_in}|out={stages[s]}|s={stride}|k={k}|e={e}|hw={h}x{w}"
                        out[key] = ("block", width, s, b, k, e, (block_in, h, w))
                h, w = _out(h, stride), _out(w, stride)
            in_ch = stages[s]
            # A stage of depth d ends at the same size whatever d is; any stage may be the last one.
        out[f"head|in={in_ch}|out={head}|classes={spec.num_classes}|hw={h}x{w}"] = (
            "head", width, spec.num_stages - 1, (in_ch, h, w),
        )  # fmt: skip
    return out
