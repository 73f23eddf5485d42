"""A new device from a few measurements: ``hwnas profile-device --few N --from TABLE [TABLE...]``.

N archs of the search space (a seeded sample) are measured on this machine with the chosen profile, and
:func:`profilers.fit_latency_transfer` fits the new device's log-latency as a non-negative combination of
the source tables' log-latencies on those archs. The result is a *transfer table*, a JSON file that a
profile names as its ``lut`` and that a search predicts from like any lookup table.

Source tables (``--from``), each one of:

- a lookup table of parts (``{"format": "hwnas-lut", ...}``, written by ``hwnas profile-device --out``):
  predicts any arch of its space, so the transfer does too;
- a measured table of whole archs: ``{"format": "hwnas-arch-latency", "version": 1, "latency_ms":
  {ARCH_KEY: ms, ...}, "meta": {...}}``, or simply a JSON object ``{ARCH_KEY: ms, ...}``, where ARCH_KEY is
  the arch as canonical JSON (``nas.spaces.arch_key``: keys sorted, no spaces). It covers its own archs only:
  the N archs are then drawn among the archs every such table holds, and the transfer predicts those;
- a transfer table of an earlier ``--few`` run: predicts whatever its own sources and measurements cover.

The transfer table (``{"format": "hwnas-transfer", "version": 1}``) holds the fit (weights, intercept,
leave-one-out error), its sources (paths, relative to the table's folder when beside it), the N measured
archs (``measured``, arch key -> ms, also a measured table in the sense above), the predictions for every
arch the whole-arch sources cover (``latency_ms``), and ``meta`` (profile, machine, input shape, space).
An arch is predicted as its measurement where it was measured, from ``latency_ms`` where listed, and
otherwise from the sources. The profile written beside it states the leave-one-out error in its
description; the run's ``pareto.json`` (``latency_transfer``) and report repeat it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from hardware_profiles import HardwareProfile
from nas.run._export import export_onnx
from nas.run._lut import machine_id, predict_latency
from nas.spaces import Arch, SearchSpace, arch_key, space_ref
from profilers import (
    LatencyTable,
    LutError,
    TorchLatency,
    TransferError,
    fit_latency_transfer,
    latency_profiler_from_profile,
)

__all__ = [
    "ARCH_TABLE_FORMAT",
    "TRANSFER_FORMAT",
    "TransferTable",
    "fit_few_shot",
    "is_transfer_table",
    "load_source",
    "load_transfer_table",
]

TRANSFER_FORMAT = "hwnas-transfer"
ARCH_TABLE_FORMAT = "hwnas-arch-latency"


class _Source:
    """A source of latencies: ``latency(spec, arch, input_shape)`` in ms, or ``None`` where not covered."""

    name: str
    #: arch key -> ms where the source is a table of whole archs (``None``: it predicts any arch)
    archs: Mapping[str, float] | None = None

    def latency(self, spec: SearchSpace, arch: Arch, input_shape: Sequence[int]) -> float | None:
        raise NotImplementedError


@dataclass
class _LutSource(_Source):
    name: str
    table: LatencyTable

    def latency(self, spec: SearchSpace, arch: Arch, input_shape: Sequence[int]) -> float | None:
        try:
            return predict_latency(self.table, spec, arch, input_shape)
        except LutError:
            return None


@dataclass
class _ArchSource(_Source):
    name: str
    archs: Mapping[str, float] | None = None

    def latency(self, spec: SearchSpace, arch: Arch, input_shape: Sequence[int]) -> float | None:
        assert self.archs is not None
        return self.archs.get(arch_key(arch))


@dataclass(frozen=True)
class TransferTable:
    """A new device's latency predictor written by ``hwnas profile-device --few`` (see the module doc).

    ``predict_arch`` is what the candidate evaluator calls in place of a lookup table's prediction.
    """

    path: Path
    intercept: float
    weights: Mapping[str, float]
    sources: Mapping[str, Any] = field(repr=False)
    measured: Mapping[str, float] = field(repr=False)
    latency_ms: Mapping[str, float] = field(repr=False)
    fit: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def predict_arch(self, spec: SearchSpace, arch: Arch, input_shape: Sequence[int]) -> float:
        """Latency (ms) of ``arch`` on the new device.

        Raises:
            LutError: the arch was not measured and a source with weight lacks it.
        """
        key = arch_key(arch)
        if key in self.measured:
            return float(self.measured[key])
        if key in self.latency_ms:
            return float(self.latency_ms[key])
        log_ms = self.intercept
        for name, weight in self.weights.items():
            if weight <= 0.0:
                continue
            value = self.sources[name].latency(spec, arch, input_shape)
            if value is None or not value > 0:
                raise LutError(
                    f"transfer table {self.path.name}: source {name!r} has no latency for arch {key}; a search "
                    "predicts any arch only from lookup tables of parts (hwnas profile-device --out)"
                )
            log_ms += weight * math.log(value)
        return math.exp(log_ms)

    def latency(self, spec: SearchSpace, arch: Arch, input_shape: Sequence[int]) -> float | None:
        """As a source of a later fit: :meth:`predict_arch`, ``None`` where it cannot predict."""
        try:
            return self.predict_arch(spec, arch, input_shape)
        except LutError:
            return None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def archs(self) -> Mapping[str, float] | None:
        """Whole archs it covers, when all its weighted sources are tables of whole archs (else ``None``)."""
        used = [self.sources[n] for n, w in self.weights.items() if w > 0]
        if any(s.archs is None for s in used):
            return None
        return {**self.latency_ms, **self.measured}

    def describe(self) -> dict[str, Any]:
        """What ``pareto.json`` and the report state: the fit, its leave-one-out error, the table's path."""
        return {**dict(self.fit), "table": str(self.path), "sources": sorted(self.sources)}


def is_transfer_table(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a transfer table (a quick look at its ``format``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(200)
    except OSError:
        return False
    return f'"format": "{TRANSFER_FORMAT}"' in head or f'"format":"{TRANSFER_FORMAT}"' in head


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise LutError(f"latency table {path} cannot be read: {e.strerror or e}") from None
    except ValueError as e:
        raise LutError(f"latency table {path} is not valid JSON ({e})") from None


def load_transfer_table(path: str | os.PathLike[str]) -> TransferTable:
    """Reads a transfer table and, recursively, its sources."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != TRANSFER_FORMAT:
        raise LutError(f"{path} is not a transfer table (format {TRANSFER_FORMAT!r})")
    sources = {}
    for name, where in data.get("sources", {}).items():
        p = Path(where)
        sources[name] = load_source(p if p.is_absolute() else path.parent / p, name=name)
    return TransferTable(
        path=path,
        intercept=float(data["fit"]["intercept"]),
        weights={k: float(v) for k, v in data["fit"]["source_weights"].items()},
        sources=sources,
        measured={k: float(v) for k, v in data.get("measured", {}).items()},
        latency_ms={k: float(v) for k, v in data.get("latency_ms", {}).items()},
        fit=data["fit"],
        meta=data.get("meta", {}),
    )


def load_source(path: str | os.PathLike[str], *, name: str | None = None) -> Any:
    """A source table for a transfer fit: a lookup table of parts, a measured table of whole archs, or a
    transfer table (see the module doc).

    Raises:
        LutError: the file is not one of these.
    """
    path = Path(path)
    name = name or path.stem
    data = _read_json(path)
    if not isinstance(data, dict):
        raise LutError(f"{path}: a latency table is a JSON object")
    fmt = data.get("format")
    if fmt == "hwnas-lut":
        return _LutSource(name, LatencyTable.load(path))
    if fmt == TRANSFER_FORMAT:
        return load_transfer_table(path)
    table = data.get("latency_ms") if fmt == ARCH_TABLE_FORMAT else data
    if not isinstance(table, dict) or not table:
        raise LutError(f"{path}: a measured table maps arch keys to latencies (ms); it holds none")
    bad = [k for k, v in table.items() if not isinstance(v, (int, float)) or not v > 0]
    if bad:
        raise LutError(
            f"{path}: {bad[0]!r} is not an arch key with a positive latency in ms; valid formats: "
            f"hwnas-lut, {ARCH_TABLE_FORMAT}, {TRANSFER_FORMAT}, or a JSON object arch key -> ms"
        )
    return _ArchSource(name, {str(k): float(v) for k, v in table.items()})


def fit_few_shot(
    spec: SearchSpace,
    profile: HardwareProfile,
    input_shape: Sequence[int],
    source_paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    n: int,
    seed: int = 0,
    measure: Callable[[Arch], float] | None = None,
    on_arch: Callable[[int, int, float], None] | None = None,
) -> tuple[TransferTable, Path]:
    """Measures ``n`` archs here, fits the transfer from ``source_paths``, writes the transfer table ``out``
    and a profile ``<out stem>.profile.yaml`` beside it; returns the table and the profile's path.

    ``measure`` replaces the measurement on this machine (arch -> ms), e.g. for tests.

    Raises:
        LutError: a source cannot be read or covers too few archs.
        TransferError: the fit is not possible (fewer than 3 archs, a latency that is not positive).
    """
    out = Path(out)
    names = [Path(p).stem for p in source_paths]
    if len(set(names)) != len(names):
        raise LutError(f"source tables need distinct file names (they name the sources), got {names}")
    sources = {name: load_source(p, name=name) for name, p in zip(names, source_paths, strict=True)}
    rng = np.random.default_rng(seed)
    archs = _sample_archs(spec, sources, n, rng)
    shape = tuple(int(d) for d in input_shape)
    if measure is None:
        measure = _measurer(spec, profile, shape, seed=seed)
    measured: dict[str, float] = {}
    by_key: dict[str, Arch] = {}
    for i, arch in enumerate(archs, start=1):
        ms = float(measure(arch))
        measured[arch_key(arch)] = ms
        by_key[arch_key(arch)] = arch
        if on_arch is not None:
            on_arch(i, len(archs), ms)
    columns: dict[str, dict[str, float]] = {}
    for name, source in sources.items():
        column = {}
        for key, arch in by_key.items():
            value = source.latency(spec, arch, shape)
            if value is None:
                raise LutError(f"source table {name!r} has no latency for measured arch {key}")
            column[key] = float(value)
        if source.archs is not None:  # a whole-arch table: predictions for every arch it covers too
            column = {**source.archs, **column}
        columns[name] = column
    transfer = fit_latency_transfer(measured, sources=columns)
    # archs every weighted source covers: the measured ones, plus all of the whole-arch tables' common archs
    covered = {k: v for k, v in transfer.predict_table().items() if k not in measured}
    fit = transfer.fit.to_dict()
    where = {
        name: os.path.relpath(Path(p).resolve(), out.resolve().parent)
        for name, p in zip(names, source_paths, strict=True)
    }
    doc = {
        "format": TRANSFER_FORMAT,
        "version": 1,
        "fit": fit,
        "sources": where,
        "measured": measured,
        "archs": {k: by_key[k] for k in measured},
        "latency_ms": covered,
        "meta": {
            "profile": profile.name,
            "device": profile.device,
            "providers": list(profile.providers),
            "threads": [profile.intra_op_threads, profile.inter_op_threads],
            "batch_size": profile.batch_size,
            "input_shape": list(shape),
            "space": space_ref(spec),
            "supernet": spec.to_dict(),
            "machine": machine_id(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "method": "transfer (non-negative least squares of log-latency on the source tables)",
            "seed": seed,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    table = load_transfer_table(out)
    return table, _write_profile(profile, out, fit, names)


def few_shot_command(
    n: int | None,
    sources: Sequence[str] | None,
    spec: SearchSpace,
    profile: HardwareProfile,
    input_shape: Sequence[int],
    out: Path,
    *,
    seed: int = 0,
) -> int:
    """``hwnas profile-device --few N --from TABLE...``: fits, writes, and says how well the fit predicts.

    Raises:
        LutError: ``--few`` without ``--from`` (or the reverse), a table that cannot be used, or a fit that
            is not possible; the command line reports it in one line with status 2.
    """
    if n is None or not sources:
        raise LutError(
            "--few N and --from TABLE [TABLE...] go together: N archs measured here, fitted from the tables"
        )
    print(f"measuring {n} archs on this machine with profile {profile.name!r} ...")

    def progress(i: int, total: int, ms: float) -> None:
        print(f"  {i}/{total}  {ms:.4f} ms", flush=True)

    try:
        table, profile_path = fit_few_shot(
            spec, profile, input_shape, sources, out, n=n, seed=seed, on_arch=progress
        )
    except TransferError as e:
        raise LutError(str(e)) from None
    weights = ", ".join(f"{k} {v:.2f}" for k, v in table.weights.items() if v > 0) or "none"
    print(f"transfer fitted (weights: {weights}); {describe_fit(table.fit)}")
    print(f"table: {out}\nprofile: {profile_path}  (search with it: hwnas search --profile {profile_path})")
    return 0


def describe_fit(fit: Mapping[str, Any]) -> str:
    """The leave-one-out error of a fit in words."""
    rho = fit.get("loo_spearman")
    return (
        f"leave-one-out on {fit['n_points']} measured archs: mean abs error {fit['loo_mape_pct']:.1f}%, "
        f"{100 * fit['loo_within_10pct']:.0f}% within 10%, Spearman "
        + ("n/a" if rho is None else f"{rho:.2f}")
    )


def _write_profile(profile: HardwareProfile, out: Path, fit: Mapping[str, Any], names: Sequence[str]) -> Path:
    import yaml

    fields = {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
        for k, v in profile.model_dump().items()
    }
    fields["provider_options"] = [dict(o) for o in profile.provider_options]
    fields.update(
        name=out.stem,
        description=f"{profile.description} (latency by transfer from {', '.join(names)}; {describe_fit(fit)})",
        lut=out.name,
    )
    path = out.with_name(f"{out.stem}.profile.yaml")
    header = f"# Written by hwnas profile-device --few. Latency error, {describe_fit(fit)}.\n"
    path.write_text(header + yaml.safe_dump(fields, sort_keys=False))
    return path


def _sample_archs(
    spec: SearchSpace, sources: Mapping[str, Any], n: int, rng: np.random.Generator
) -> list[Arch]:
    """``n`` distinct archs: drawn among those every whole-arch table covers, else from the space (its
    largest and smallest first, so the fit spans the range)."""
    tables = [s.archs for s in sources.values() if s.archs is not None]
    if tables:
        common = sorted(set(tables[0]).intersection(*tables[1:]))
        if len(common) < n:
            raise LutError(
                f"the whole-arch tables share {len(common)} archs; --few {n} needs at least that many"
            )
        return [json.loads(common[i]) for i in sorted(rng.choice(len(common), n, replace=False))]
    archs = [spec.largest_arch(), spec.smallest_arch()]
    seen = {arch_key(a) for a in archs}
    tries = 0
    while len(archs) < n and tries < 100 * n:
        tries += 1
        arch = spec.random_arch(rng)
        if arch_key(arch) not in seen:
            seen.add(arch_key(arch))
            archs.append(arch)
    return archs[:n]


def _measurer(
    spec: SearchSpace, profile: HardwareProfile, shape: tuple[int, ...], *, seed: int
) -> Callable[[Arch], float]:
    """Exports an arch of a seeded supernet (weights do not change latency) and times it with the profile."""
    supernet = spec.build_supernet(seed=seed).eval()
    latency = latency_profiler_from_profile(profile)

    def measure(arch: Arch) -> float:
        model = supernet.subnet(arch).eval()
        if profile.runtime == "torch":
            torch_latency = cast(TorchLatency, latency)  # a torch profile's backend, which measures modules
            return float(torch_latency.measure(model, shape, batch_size=profile.batch_size).median_ms)
        with tempfile.TemporaryDirectory(prefix="hwnas-few-") as tmp:
            path = export_onnx(model, Path(tmp) / "arch.onnx", shape, batch_size=profile.batch_size)
            return float(latency.measure(path, shape, batch_size=profile.batch_size).median_ms)

    return measure
