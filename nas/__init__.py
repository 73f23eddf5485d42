"""Orchestration: supernet search spaces, training, evaluation, export, experiments and the CLI."""

from nas._space import Arch, SupernetSpec, arch_key, make_divisible

__all__ = ["Arch", "SupernetSpec", "arch_key", "make_divisible"]
