"""Several target devices in one search, and the files the front leaves behind.

With ``profile: [a, b, c]`` (``--profile a,b,c``), each candidate is scored once for accuracy, and its
calibrated subnet is then measured (or predicted from each profile's lookup table) on every profile: the
metrics gain ``latency_ms@a``, ``latency_ms@b``, ... (and ``energy_mj@X``, ``peak_memory_mb@X``), while the
plain ``latency_ms`` keeps meaning the first profile's. A profile given as a file is named by its stem.

The study searches its objectives (by default ``error`` and every profile's latency: the joint front), and
the run also keeps one front per profile: the trials that no other trial beats on both error and that
profile's cost (``latency_ms@X``, or ``energy_mj@X`` where that is an objective). Every model of any of these
fronts is exported once, whatever the number of fronts it is on; ``pareto.json`` lists each profile's front
under ``fronts`` (model ids) and the cost it ranks by under ``front_costs``.

Measurements of one device never overlap: each profile's evaluator holds the :class:`MeasureLock` of the
device it measures on, so two profiles of the same CPU wait for each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardware_profiles import HardwareProfile, load_profile
from nas.run._config import DEVICE_METRICS, ConfigError, SearchConfig
from nas.run._evaluator import CandidateEvaluator
from nas.run._front import ModelRecord, export_front, export_model, write_outputs
from nas.run._locks import MeasureLock
from nas.spaces import ElasticSupernet, arch_key
from search import Study, Trial, TrialState, non_dominated_mask

__all__ = ["build_evaluator", "device_fronts", "export_all", "front_cost"]


def build_evaluator(
    config: SearchConfig,
    *,
    supernet: ElasticSupernet | Sequence[ElasticSupernet],
    data: Any,
    profile: HardwareProfile,
    **overrides: Any,
) -> CandidateEvaluator:
    """The evaluator of a run: :meth:`CandidateEvaluator.from_config`, measuring on every profile of the
    config, and scoring INT8 candidates when ``evaluation.quantize_candidates`` asks for it.

    Raises:
        ConfigError: several profiles with distributed workers, or two profiles with one name.
    """
    labels = config.profile_labels()
    several = len(labels) > 1
    energy = config.wants("energy_mj") or config.wants(f"energy_mj@{labels[0]}")
    evaluator = CandidateEvaluator.from_config(
        config, supernet=supernet, data=data, profile=profile, **{"energy": energy, **overrides}
    )
    if several:
        if config.execution.workers or config.execution.scheduler:
            raise ConfigError(
                "several profiles are measured in the searching process; leave out --workers and --scheduler "
                "(or search one profile at a time with workers)"
            )
        names = {profile.name: labels[0]}
        evaluator.measure_lock = MeasureLock.for_profile(profile)
        devices: list[tuple[str, CandidateEvaluator | None]] = [(labels[0], None)]
        shared = {k: overrides[k] for k in ("cache", "work_dir", "phase") if k in overrides}
        for entry, label in zip(config.profiles()[1:], labels[1:], strict=True):
            other_profile = load_profile(entry)
            if other_profile.name in names:
                raise ConfigError(
                    f"profiles {names[other_profile.name]!r} and {label!r} are both named "
                    f"{other_profile.name!r}; give each profile file its own name"
                )
            names[other_profile.name] = label
            other = CandidateEvaluator.from_config(
                config,
                supernet=supernet,
                data=data,
                profile=other_profile,
                energy=config.wants(f"energy_mj@{label}"),
                measure_lock=MeasureLock.for_profile(other_profile),
                **shared,
            )
            other.seconds = evaluator.seconds  # the run's phase times count every profile's measurements
            devices.append((label, other))
        evaluator.devices = tuple(devices)
    if config.evaluation.quantize_candidates:
        from nas.run._int8 import CandidateInt8

        evaluator.extra_scores = (CandidateInt8(evaluator, config),)
    return evaluator


def front_cost(config: SearchConfig, label: str) -> str:
    """The metric a profile's front ranks cost by: the first objective naming the profile (``energy_mj@X``
    where energy is searched), else ``latency_ms@X``.

    Example:
        >>> from nas.run._config import load_config
        >>> front_cost(load_config(overrides={"profile": "a,b"}), "b")
        'latency_ms@b'
    """
    for name in config.search.objectives:
        base, _, at = name.partition("@")
        if at == label and base in DEVICE_METRICS:
            return name
    return f"latency_ms@{label}"


def device_fronts(
    trials: Sequence[Trial], config: SearchConfig
) -> tuple[dict[str, list[Trial]], dict[str, str]]:
    """Each profile's front among ``trials``: complete, feasible trials at full fidelity (at any fidelity
    while none reached it) that no other beats on both error and the profile's cost; one trial per arch.

    Returns the fronts (trials by ascending cost) and the cost metric of each, both keyed by profile label;
    empty with a single profile.
    """
    labels = config.profile_labels()
    if len(labels) < 2:
        return {}, {}
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    full = [t for t in done if t.fidelity >= 1.0]
    pool = full if full else done
    feasible = [t for t in pool if t.violation in (None, 0.0)]
    pool = feasible if feasible else pool
    fronts: dict[str, list[Trial]] = {}
    costs: dict[str, str] = {}
    for label in labels:
        cost = front_cost(config, label)
        costs[label] = cost
        rows = [t for t in pool if _number(t.metrics.get("error")) and _number(t.metrics.get(cost))]
        if not rows:
            fronts[label] = []
            continue
        F = np.array([[float(t.metrics["error"]), float(t.metrics[cost])] for t in rows])
        front = [t for t, keep in zip(rows, non_dominated_mask(F), strict=True) if keep]
        seen: set[str] = set()
        unique = []
        for t in sorted(front, key=lambda t: (float(t.metrics[cost]), float(t.metrics["error"]), t.number)):
            key = arch_key(t.attrs.get("arch", dict(t.params)))
            if key not in seen:
                seen.add(key)
                unique.append(t)
        fronts[label] = unique
    return fronts, costs


def export_all(
    study: Study,
    evaluator: CandidateEvaluator,
    run_dir: Path,
    config: SearchConfig,
    *,
    energy_detail: str | None = None,
) -> list[ModelRecord]:
    """Exports the joint front and every profile's front (each model once), quantizes them when
    ``evaluation.quantize`` asks for it, and writes ``pareto.json``, ``trials.csv`` and ``pareto.png``."""
    models = export_front(study, evaluator, run_dir)
    fronts, costs = device_fronts(study.trials, config)
    by_arch = {arch_key(m.arch): m.id for m in models}
    names = [o.name for o in study.objectives]
    front_ids: dict[str, list[int]] = {}
    for label, trials in fronts.items():
        ids = []
        for trial in trials:
            arch = evaluator.spec.arch_from_params(trial.params)
            key = arch_key(arch)
            if key not in by_arch:  # on this profile's front only: exported now, once
                models.append(export_model(trial, arch, evaluator, run_dir, names))
                by_arch[key] = trial.number
            ids.append(by_arch[key])
        front_ids[label] = ids
    if config.evaluation.quantize == "int8":
        from nas.run._int8 import quantize_front

        models = quantize_front(models, evaluator, run_dir, config)
    extra: dict[str, Any] = {}
    if front_ids:
        extra |= {"fronts": front_ids, "front_costs": costs}
    transfer = latency_transfer_info(evaluator)
    if transfer:
        extra["latency_transfer"] = transfer
    write_outputs(run_dir, study, models, energy_detail=energy_detail, extra=extra)
    return models


def latency_transfer_info(evaluator: CandidateEvaluator) -> dict[str, dict[str, Any]]:
    """The transfer fits (``hwnas profile-device --few``) behind the latencies of each profile, by name."""
    evaluators = [evaluator, *(other for _, other in evaluator.devices if other is not None)]
    out = {}
    for ev in evaluators:
        describe = getattr(ev.lut, "describe", None)
        if describe is not None:
            out[ev.profile.name] = describe()
    return out


def good_everywhere(fronts: Mapping[str, Sequence[int]]) -> list[int]:
    """Model ids on every profile's front."""
    sets = [set(ids) for ids in fronts.values()]
    return sorted(set.intersection(*sets)) if sets else []


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))
