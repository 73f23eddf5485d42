"""Supernet checkpoints: written atomically with CPU tensors, read onto any device, checked against the settings."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from nas._atomic import atomic_replace

__all__ = ["CHECKPOINT_FORMAT", "check_config", "load_checkpoint", "save_checkpoint", "to_cpu"]

CHECKPOINT_FORMAT = 1


def load_checkpoint(path: str | os.PathLike[str] | None, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint at ``path`` with its tensors on ``device`` (whatever device wrote it), or ``None`` when
    there is none, or it is unreadable or incomplete (with a warning)."""
    if path is None or not Path(path).exists():
        return None
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is not worth failing a run for: start afresh
        warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", RuntimeWarning, stacklevel=3)
        return None
    keys = {"format", "config", "epoch", "model", "optimizer", "scheduler"}
    keys |= {"epoch_losses", "epoch_seconds", "distill_loss"}
    if (
        not isinstance(checkpoint, dict)
        or not keys <= set(checkpoint)
        or checkpoint["format"] != CHECKPOINT_FORMAT
    ):
        warnings.warn(f"ignoring incomplete checkpoint {path}", RuntimeWarning, stacklevel=3)
        return None
    return checkpoint


#: Settings added after the checkpoint format was fixed, with the value older checkpoints were trained with.
_LATER_SETTINGS: dict[str, Any] = {
    "distill": 1.0,
    "average_last": 0.0,
    "shift": 0,
    "flip": False,
    "fill": None,
    "zero_init_residual": False,
    "space": "mobilenet",
}


def check_config(saved: dict[str, Any], current: dict[str, Any], path: str | os.PathLike[str] | None) -> None:
    saved = {**_LATER_SETTINGS, **saved}
    differ = sorted(k for k in current if saved.get(k) != current[k])
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {current[k]!r} now" for k in differ if k != "spec")
        if "spec" in differ:
            detail = ", ".join(filter(None, ["the supernet spec differs", detail]))
        raise ValueError(
            f"checkpoint {path} was written with other settings ({detail}); "
            "use the same settings or another checkpoint_path"
        )


def to_cpu(state: Any) -> Any:
    """``state`` with every tensor copied to the CPU (a checkpoint any machine can read)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu")
    if isinstance(state, dict):
        return {k: to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_cpu(v) for v in state)
    return state


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Writes to a temporary file in the same folder, fsyncs it and renames it over ``path``
    (:func:`nas._atomic.atomic_replace`; errors are raised as they are)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_replace(path, lambda tmp: torch.save(state, tmp), error=None)
