"""Search spaces: the protocol every space meets, the built-in families, and user spaces by name.

Example:
    >>> from nas.spaces import space_for_input, space_from_dict, space_to_dict
    >>> space = space_for_input("mobilenet", 3, 32, 10)
    >>> space_from_dict(space_to_dict(space)) == space
    True
"""

from nas.spaces._mobilenet import SupernetSpec, make_divisible
from nas.spaces._mobilenet_net import Subnet, Supernet
from nas.spaces._protocol import Arch, ElasticSupernet, SearchSpace, arch_key, network_map
from nas.spaces._registry import (
    BUILTIN_SPACES,
    SpaceError,
    SpaceVariant,
    builtin_space_names,
    resolve_space,
    space_for_input,
    space_from_dict,
    space_ref,
    space_to_dict,
    space_variants,
)
from nas.spaces._vit import VitSpace

#: The MobileNet family under its family name.
MobileNetSpace = SupernetSpec

__all__ = [
    "BUILTIN_SPACES",
    "Arch",
    "ElasticSupernet",
    "MobileNetSpace",
    "SearchSpace",
    "SpaceError",
    "SpaceVariant",
    "Subnet",
    "Supernet",
    "SupernetSpec",
    "VitSpace",
    "arch_key",
    "builtin_space_names",
    "make_divisible",
    "network_map",
    "resolve_space",
    "space_for_input",
    "space_from_dict",
    "space_ref",
    "space_to_dict",
    "space_variants",
]
