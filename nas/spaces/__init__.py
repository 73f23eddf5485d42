"""Search spaces: the elastic MobileNet family."""

from nas.spaces._mobilenet import Arch, SupernetSpec, arch_key, make_divisible
from nas.spaces._mobilenet_net import Subnet, Supernet

__all__ = [
    "Arch",
    "arch_key",
    "make_divisible",
    "Subnet",
    "Supernet",
    "SupernetSpec",
]
