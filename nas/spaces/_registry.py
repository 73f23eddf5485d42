"""Finding a space by name: the built-in families, or a user's class given as ``"package.module:Class"``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from nas.spaces._protocol import REQUIRED_METHODS, SearchSpace

__all__ = [
    "BUILTIN_SPACES",
    "SpaceError",
    "SpaceVariant",
    "builtin_space_names",
    "resolve_space",
    "space_for_input",
    "space_from_dict",
    "space_ref",
    "space_to_dict",
    "space_variants",
]

#: Built-in families, imported only when used (the transformer family pulls in its own modules).
BUILTIN_SPACES: dict[str, str] = {
    "mobilenet": "nas.spaces._mobilenet:SupernetSpec",
    "vit": "nas.spaces._vit:VitSpace",
}


class SpaceError(ValueError):
    """A space that cannot be found or does not meet the protocol; the message says what to do."""


def builtin_space_names() -> list[str]:
    return list(BUILTIN_SPACES)


def _import(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise SpaceError(
            f"space {ref!r} is neither a built-in space ({', '.join(BUILTIN_SPACES)}) nor a class given as "
            "'package.module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SpaceError(
            f"space {ref!r}: cannot import module {module_name!r} ({e}); it must be importable from the "
            "current directory or PYTHONPATH"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure of the user's module is reported in one line
        raise SpaceError(
            f"space {ref!r}: importing module {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpaceError(f"space {ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def check_space_class(cls: Any, ref: str) -> type[SearchSpace]:
    """``cls`` if it is a class meeting the protocol; else a :class:`SpaceError` naming what is missing."""
    if not inspect.isclass(cls):
        raise SpaceError(f"space {ref!r} is a {type(cls).__name__}, not a class")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    missing += [m for m in abstract if m not in missing]
    if missing:
        raise SpaceError(
            f"space {ref!r} does not meet the search-space protocol: it lacks {', '.join(missing)} "
            "(subclass nas.spaces.SearchSpace and define them)"
        )
    return cast("type[SearchSpace]", cls)  # checked above: it has every method the protocol requires


def resolve_space(space: str | type[SearchSpace] | SearchSpace) -> type[SearchSpace]:
    """The space class for a built-in name, a ``"module:Class"`` reference, a class or an instance."""
    if isinstance(space, SearchSpace):
        return type(space)
    if inspect.isclass(space):
        return check_space_class(space, f"{space.__module__}:{space.__qualname__}")
    if not isinstance(space, str):
        raise SpaceError(
            f"a space is a name, a 'module:Class' reference or a class, got {type(space).__name__}"
        )
    ref = BUILTIN_SPACES.get(space, space)
    if ":" not in ref:
        raise SpaceError(
            f"unknown space {space!r}; built-in: {', '.join(BUILTIN_SPACES)}, or your own as 'package.module:Class'"
        )
    return check_space_class(_import(ref), space)


def space_ref(space: SearchSpace) -> str:
    """How configs and run directories name the space: its built-in name, else ``module:Class``."""
    cls = type(space)
    for name, ref in BUILTIN_SPACES.items():
        if cls.name == name and ref == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return f"{cls.__module__}:{cls.__qualname__}"


def space_for_input(
    space: str | type[SearchSpace] | SearchSpace,
    in_channels: int,
    image_size: int,
    num_classes: int,
    options: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """The space sized for a dataset; an instance is returned as it is (the user sized it)."""
    if isinstance(space, SearchSpace):
        return space
    cls = resolve_space(space)
    try:
        built = cls.for_input(in_channels, image_size, num_classes, **dict(options or {}))
    except (TypeError, ValueError) as e:
        raise SpaceError(f"space {space if isinstance(space, str) else cls.__name__!r}: {e}") from None
    if not isinstance(built, SearchSpace):
        check_space_class(type(built), f"{type(built).__module__}:{type(built).__qualname__}")
    return built


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """``{"space": ref, "options": ...}``: what :func:`space_from_dict` rebuilds the space from."""
    return {"space": space_ref(space), "options": space.to_dict()}


def space_from_dict(data: Mapping[str, Any]) -> SearchSpace:
    """Inverse of :func:`space_to_dict`; a dict without ``"space"`` is a MobileNet spec (older runs)."""
    if "space" not in data:
        ref, options = "mobilenet", data
    else:
        ref, options = str(data["space"]), data.get("options", {})
    cls = resolve_space(ref)
    try:
        return cls.from_dict(options)
    except (TypeError, ValueError) as e:
        raise SpaceError(f"space {ref!r} cannot be rebuilt from its stored options: {e}") from None


@dataclass(frozen=True)
class SpaceVariant:
    """One sizing of a space, as ``hwnas spaces`` lists it."""

    #: the preset the space picks (or was asked for) at this size; ``None`` for a space without presets
    preset: str | None
    #: input side length in pixels
    image_size: int
    #: number of distinct subnets
    subnets: int
    #: the space's one-line description at this size
    description: str


def space_variants(space: str | type[SearchSpace]) -> list[SpaceVariant]:
    """The sizings of a space: one per preset when the class names them in ``presets`` (preset -> input
    side length), else one per entry of ``input_sizes``; each built for 10 classes (1 channel below 16
    pixels, else 3).

    Example:
        >>> [(v.preset, v.image_size) for v in space_variants("mobilenet")]
        [('digits', 8), ('cifar', 32), ('imagenet', 224)]
    """
    cls = resolve_space(space)
    presets: Mapping[str, int] | None = getattr(cls, "presets", None)
    sizes: list[tuple[str | None, int]] = (
        [(name, int(size)) for name, size in presets.items()]
        if isinstance(presets, Mapping)
        else [(None, int(size)) for size in cls.input_sizes]
    )
    out = []
    for preset, size in sizes:
        options = {} if preset is None else {"preset": preset}
        built = cls.for_input(1 if size < 16 else 3, size, 10, **options)
        named = getattr(built, "preset", None) or preset
        out.append(
            SpaceVariant(
                named if isinstance(named, str) else None, size, built.num_subnets(), built.describe()
            )
        )
    return out
