"""Errors shared by the layers of ``nas`` (a leaf module: it imports nothing of ``nas``)."""

__all__ = ["RunError"]


class RunError(RuntimeError):
    """A run directory that cannot be used as asked (exists already, not writable, not a run...)."""

