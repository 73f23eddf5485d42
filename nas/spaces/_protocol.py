"""The search-space protocol: what every space gives training, scoring, export, lookup tables and workers.

A *space* is a family of networks that share weights. It is plain data (its options) plus the rules that
turn a strategy's flat ``params`` into a canonical *arch* (a JSON-ready dict), and it builds the
weight-sharing *supernet* that runs any arch on slices of its largest weights. Everything above the space
(sandwich training, batch-norm recalibration, scoring, ONNX export, lookup tables, Dask workers, the report)
speaks to it only through this contract, so a space written in a user's own module works everywhere.

Lifecycle of a space in a run::

    space = Space.for_input(in_channels, image_size, num_classes, **options)  # sized for the data
    strategy searches space.search_space()          # flat params, pure data (search/ never sees torch)
    arch = space.arch_from_params(params)           # canonical: inactive choices dropped
    supernet = space.build_supernet(seed=0)         # an ElasticSupernet
    supernet(x, arch)                               # sandwich training: largest, smallest, random_arch(rng)
    model = supernet.subnet(arch)                   # a plain nn.Module with the shared weights copied in
    space_from_dict(space_to_dict(space)) == space  # a resume, ``hwnas export`` and workers rebuild it

Optional, for lookup tables (``hwnas profile-device``): :meth:`SearchSpace.arch_parts`,
:meth:`SearchSpace.distinct_parts` and :meth:`SearchSpace.build_part`; :attr:`SearchSpace.supports_lut`
says whether a space defines them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from search import Space

__all__ = ["Arch", "ElasticSupernet", "SearchSpace", "arch_key", "network_map"]

#: An architecture: a JSON-ready dict in the space's canonical form.
Arch = dict[str, Any]


def arch_key(arch: Mapping[str, Any]) -> str:
    """A canonical string for an arch, usable as a cache or database key.

    Example:
        >>> arch_key({"b": [1, 2], "a": 1.0})
        '{"a":1.0,"b":[1,2]}'
    """
    return json.dumps(arch, sort_keys=True, separators=(",", ":"))


class ElasticSupernet(nn.Module):
    """A weight-sharing network of a :class:`SearchSpace`: runs any of its archs on shared weights.

    Subclasses hold the largest weights and implement :meth:`forward` (``N x C x H x W`` images and an arch
    -> ``N x num_classes`` logits) and :meth:`subnet` (the static twin). They keep the space they were built
    from in :attr:`space`.
    """

    space: SearchSpace

    @property
    def spec(self) -> SearchSpace:
        """The space this supernet was built from (the name older code and checkpoints use)."""
        return self.space

    def forward(self, x: Tensor, arch: Mapping[str, Any]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def subnet(self, arch: Mapping[str, Any]) -> nn.Module:  # pragma: no cover - abstract
        """A standalone module of plain ``torch.nn`` layers with the arch's weights copied in; it computes
        the same function as ``self(x, arch)`` in eval mode and exports to ONNX."""
        raise NotImplementedError


class SearchSpace(ABC):
    """The contract of a search space (see the module docstring for the lifecycle).

    A space is immutable and compares equal to another with the same options. ``name`` is how configs
    and run directories refer to a built-in space; a user's space is referred to as ``"module:Class"``.
    """

    #: registry name of a built-in space ("mobilenet", "vit"); user spaces keep the default
    name: ClassVar[str] = ""
    #: input side lengths (pixels) the space is designed for, shown by ``hwnas spaces``
    input_sizes: ClassVar[tuple[int, ...]] = ()

    # -- building ------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def for_input(cls, in_channels: int, image_size: int, num_classes: int, **options: Any) -> SearchSpace:
        """The space sized for images of ``in_channels x image_size x image_size`` and ``num_classes``.

        ``options`` are the space's own settings (from the config's ``space.options``); an unknown one
        raises ``TypeError`` or ``ValueError`` naming it.
        """

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options such that ``type(self).from_dict(self.to_dict()) == self``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Inverse of :meth:`to_dict`."""

    @abstractmethod
    def build_supernet(self, *, seed: int = 0, **options: Any) -> ElasticSupernet:
        """A freshly initialised supernet (weights seeded by ``seed``); ``options`` are training-time
        initialisation settings the space supports (e.g. ``zero_init_residual``)."""

    # -- the archs -----------------------------------------------------------------------------------
    @abstractmethod
    def search_space(self) -> Space:
        """The flat space strategies search (a superset encoding of the archs)."""

    @abstractmethod
    def arch_from_params(self, params: Mapping[str, Any]) -> Arch:
        """Flat params -> canonical arch: inactive choices dropped, so equal networks have equal archs."""

    @abstractmethod
    def params_from_arch(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical arch -> flat params (inactive choices take a fixed value)."""

    @abstractmethod
    def validate_arch(self, arch: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` saying what is wrong with an arch."""

    @abstractmethod
    def largest_arch(self) -> Arch:
        """The arch with every choice at its largest (the sandwich rule's teacher)."""

    @abstractmethod
    def smallest_arch(self) -> Arch:
        """The arch with every choice at its smallest."""

    def random_arch(self, rng: np.random.Generator) -> Arch:
        """Uniform over choices (not over distinct archs), as the sandwich rule samples."""
        return self.arch_from_params(self.search_space().sample(rng))

    @abstractmethod
    def num_subnets(self) -> int:
        """Number of distinct archs (inactive choices do not count)."""

    def describe(self) -> str:
        """One line for people: the family and its main dimensions."""
        return type(self).__name__

    # -- lookup tables (optional) --------------------------------------------------------------------
    @property
    def supports_lut(self) -> bool:
        """Whether the space names the parts of an arch, so that latency can be looked up part by part."""
        return type(self).arch_parts is not SearchSpace.arch_parts

    def arch_parts(self, arch: Mapping[str, Any], input_shape: Sequence[int]) -> list[str]:
        """The part keys a model of ``arch`` is made of, in order; a key holds everything its latency
        depends on, so that equal keys time alike on one device."""
        raise NotImplementedError(f"{type(self).__name__} defines no lookup-table parts")

    def distinct_parts(self, input_shape: Sequence[int]) -> dict[str, tuple[Any, ...]]:
        """Every part any arch can contain, mapped to what :meth:`build_part` needs to build it; the last
        element of each value is the part's input shape ``(C, H, W)``."""
        raise NotImplementedError(f"{type(self).__name__} defines no lookup-table parts")

    def build_part(
        self, supernet: ElasticSupernet, how: tuple[Any, ...]
    ) -> tuple[nn.Module, tuple[int, int, int]]:
        """The static module of one part (as :meth:`distinct_parts` describes it) and its input shape."""
        raise NotImplementedError(f"{type(self).__name__} defines no lookup-table parts")


def network_map(space: SearchSpace) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A study's ``network`` map for ``space``: params -> the params of their canonical arch (every inactive
    choice at its fixed value), so a search's models see two points that build one network as one."""

    def network(params: Mapping[str, Any]) -> dict[str, Any]:
        return space.params_from_arch(space.arch_from_params(params))

    return network


#: The methods a class must define to be used as a space (checked when a user names one).
REQUIRED_METHODS: tuple[str, ...] = (
    "for_input",
    "to_dict",
    "from_dict",
    "build_supernet",
    "search_space",
    "arch_from_params",
    "params_from_arch",
    "validate_arch",
    "largest_arch",
    "smallest_arch",
    "num_subnets",
)
