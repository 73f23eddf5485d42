"""Objective names: the plain ones, one per profile with several profiles (``latency_ms@NAME``), and INT8's.

A leaf module (it imports nothing of hwnas), so that the config and the report-side code can share it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "DEVICE_METRICS",
    "INT8_OBJECTIVES",
    "OBJECTIVE_UNITS",
    "check_device_objectives",
    "objective_unit",
    "profile_label",
    "several_profiles",
]

#: Objectives a search can optimise, with their units.
OBJECTIVE_UNITS: dict[str, str] = {
    "error": "%",
    "latency_ms": "ms",
    "energy_mj": "mJ",
    "peak_memory_mb": "MiB",
    "params": "count",
    "flops": "FLOPs",
}
#: Metrics that depend on the device a model runs on: with several profiles, ``latency_ms@NAME`` and the
#: like name one profile's figure (the plain name keeps meaning the first profile's).
DEVICE_METRICS = ("latency_ms", "energy_mj", "peak_memory_mb")
#: Objectives of ``evaluation.quantize_candidates``: the INT8 model's error and latency.
INT8_OBJECTIVES = {"error_int8": "%", "latency_ms_int8": "ms"}


def objective_unit(name: str) -> str:
    """The unit of an objective, ``latency_ms@NAME`` included (``KeyError`` for unknown names).

    Example:
        >>> objective_unit("latency_ms@edge"), objective_unit("error")
        ('ms', '%')
    """
    base, _, device = name.partition("@")
    if device and base not in DEVICE_METRICS:
        raise KeyError(name)
    return {**OBJECTIVE_UNITS, **INT8_OBJECTIVES}[base]


def profile_label(entry: str) -> str:
    """How a profile of ``profile:`` is named in objectives (``latency_ms@LABEL``): a file by its stem.

    Example:
        >>> profile_label("profiles/edge.yaml"), profile_label("local-cpu")
        ('edge', 'local-cpu')
    """
    text = entry.strip()
    if "/" in text or os.sep in text or text.endswith((".yaml", ".yml")):
        return Path(text).stem
    return text


def several_profiles(data: Any) -> Any:
    """A raw config with ``profile: a,b,c`` read as a list (one name stays a string); with several profiles
    and no objectives given, the search minimises error and each profile's latency."""
    if not isinstance(data, dict):
        return data
    profile = data.get("profile")
    if isinstance(profile, str) and "," in profile:
        profile = [p.strip() for p in profile.split(",") if p.strip()]
    if isinstance(profile, (list, tuple)):
        profile = list(profile)
        if not profile or not all(isinstance(p, str) and p.strip() for p in profile):
            raise ValueError(f"profile must name one or more hardware profiles, got {profile!r}")
        labels = [profile_label(p) for p in profile]
        if len(set(labels)) != len(labels):
            raise ValueError(f"profiles must have distinct names, got {labels}")
        data = {**data, "profile": profile[0] if len(profile) == 1 else profile}
        search = data.get("search") or {}
        if len(profile) > 1 and isinstance(search, dict) and search.get("objectives") is None:
            data["search"] = {**search, "objectives": ["error", *(f"latency_ms@{label}" for label in labels)]}
    return data


def check_device_objectives(config: Any) -> None:
    """Every ``@NAME`` in the objectives and constraints of a ``SearchConfig`` names one of its profiles, and
    INT8 objectives come with ``evaluation.quantize_candidates``.

    Raises:
        ValueError: saying which name is wrong and what is valid.
    """
    from search import Constraint

    labels = config.profile_labels()
    names = [*config.search.objectives, *(Constraint.parse(c).metric for c in config.search.constraints)]
    for name in names:
        _, at, label = name.partition("@")
        if at and label not in labels:
            raise ValueError(
                f"{name!r} names profile {label!r}, which is not searched; profiles: {', '.join(labels)}"
            )
        if name in INT8_OBJECTIVES and not config.evaluation.quantize_candidates:
            raise ValueError(
                f"objective {name!r} needs evaluation.quantize: int8 and quantize_candidates: true"
            )
