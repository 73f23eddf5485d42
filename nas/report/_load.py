"""Reading a run directory for the report: the study, pareto.json, sustainability.json, emissions and timings, with a note for every file that is missing or unreadable."""


from __future__ import annotations

import csv
import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from nas._errors import RunError
from nas._schemas import ParetoFile, RunFileError, SustainabilityFile, TimingsFile
from search import (
    Objective,
    Space,
    SQLiteStorage,
    StorageError,
    Trial,
    TrialState,
)

__all__ = ["NOT_RECORDED", "PHASES", "ReportError"]


NOT_RECORDED = "not recorded"


#: Phases of ``sustainability.json``, in the order they happen.
PHASES = ("supernet_training", "candidate_evaluation", "profiling", "search_overhead", "export")


class ReportError(RunError):
    """Runs that cannot be reported as asked; the message says what is wrong and what is valid."""


@dataclass(frozen=True)
class Run:
    """Everything the report reads from one run directory."""

    path: Path
    name: str
    config: Mapping[str, Any]
    objectives: tuple[Objective, ...]
    reference: tuple[float, ...]
    reference_source: str
    trials: tuple[Trial, ...]
    constraints: tuple[str, ...]
    strategy: str
    profile: str
    space: Space | None
    models: tuple[Mapping[str, Any], ...]
    pareto_recorded: bool
    timings: Mapping[str, float]
    sustainability: Mapping[str, Any] | None
    emissions: tuple[Mapping[str, Any], ...] | None
    notes: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def complete(self) -> list[Trial]:
        return [t for t in self.trials if t.state is TrialState.COMPLETE and self._has_values(t)]

    def _has_values(self, t: Trial) -> bool:
        return all(number(t.metrics.get(n)) for n in self.names)

    def count(self, state: TrialState) -> int:
        return sum(t.state is state for t in self.trials)

    @property
    def dataset(self) -> str:
        data = self.config.get("data") or {}
        name = data.get("name") if isinstance(data, Mapping) else None
        if not name:
            return NOT_RECORDED
        limit = data.get("limit")
        return f"{name} (first {limit} images)" if limit else str(name)

    @property
    def started(self) -> str:
        times = [t.started_at for t in self.trials if t.started_at is not None]
        stamp = min(times) if times else (self.path / "study.db").stat().st_mtime
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))

    @property
    def total_energy(self) -> tuple[float | None, float | None, str]:
        """Total energy (kWh), CO2e (kg) and where they come from."""
        s = self.sustainability
        if s is not None and isinstance(s.get("total"), Mapping):
            total = s["total"]
            return opt(total.get("energy_kwh")), opt(total.get("emissions_kg")), "sustainability.json"
        if self.emissions:
            energy = [opt(r.get("energy_consumed")) for r in self.emissions]
            kg = [opt(r.get("emissions")) for r in self.emissions]
            return (
                sum(e for e in energy if e is not None) if any(e is not None for e in energy) else None,
                sum(k for k in kg if k is not None) if any(k is not None for k in kg) else None,
                "emissions.csv",
            )
        return None, None, NOT_RECORDED


def load_run(path: str | Path) -> Run:
    run = Path(path)
    what = "a run directory written by 'hwnas search' (runs/<name>, holding study.db and pareto.json)"
    if not run.exists():
        raise ReportError(f"{run} does not exist; give {what}")
    if not run.is_dir():
        raise ReportError(f"{run} is a file, not a run directory; give {what}")
    db = run / "study.db"
    if not db.is_file():
        raise ReportError(f"{run} is not an hwnas run directory: it has no study.db; give {what}")
    if db.stat().st_size == 0:
        raise ReportError(f"{db} is empty: the search of {run} never started; give {what}")
    notes: list[str] = []
    try:
        storage = SQLiteStorage(db)
    except StorageError as e:
        raise ReportError(f"{e}; give {what}") from None
    try:
        trials = storage.trials()
        meta = {
            k: storage.get_meta(k)
            for k in ("objectives", "constraints", "strategy", "strategy_described", "profile", "space")
        }
        meta_config = storage.get_meta("config")
    except (StorageError, OSError, ValueError) as e:
        raise ReportError(f"{db} cannot be read ({e}); give {what}") from None
    except sqlite3.DatabaseError as e:  # a damaged file
        raise ReportError(f"{db} cannot be read ({type(e).__name__}: {e}); give {what}") from None
    finally:
        storage.close()

    pareto: Mapping[str, Any] = {}
    pareto_path = run / "pareto.json"
    if pareto_path.is_file():
        try:
            pareto = ParetoFile.read_text(pareto_path.read_text(), name=str(pareto_path)).model_dump(mode="json")
        except RunFileError as e:
            raise ReportError(f"{e}; rebuild it with 'hwnas report' after 'hwnas search --resume', or re-run the search") from None
    else:
        notes.append("pareto.json is missing: the search has not finished, so no model was exported.")
    # what the search itself warned of (an undertrained supernet) comes first
    notes[:0] = [f"Warning: {w[:1].upper()}{w[1:]}." for w in pareto.get("warnings") or []]

    raw = meta["objectives"] or pareto.get("objectives")
    if not raw:
        raise ReportError(
            f"{run} records no objectives (neither in study.db nor in pareto.json); give {what}"
        )
    try:
        objectives = tuple(
            Objective(str(o["name"]), str(o.get("direction", "minimize")), str(o.get("unit", "")))
            for o in raw
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ReportError(f"{run} lists objectives that cannot be read ({e}): {raw}") from None

    trials = sorted(trials, key=lambda t: t.number)
    reference, source = _reference(objectives, raw, pareto, trials)
    space = None
    if isinstance(meta["space"], Mapping):
        try:
            space = Space.from_dict(meta["space"])
        except (ValueError, TypeError, KeyError):
            space = None
    config: Mapping[str, Any] = meta_config if isinstance(meta_config, Mapping) else {}
    cfg_path = run / "config.yaml"
    if cfg_path.is_file():
        try:
            loaded = yaml.safe_load(cfg_path.read_text())
            if isinstance(loaded, Mapping):
                config = loaded
        except yaml.YAMLError:
            notes.append("config.yaml cannot be read; settings come from study.db.")
    timings = _read_file(run / "timings.json", TimingsFile, notes)
    sustainability = _read_file(run / "sustainability.json", SustainabilityFile, notes)
    models = pareto.get("models") or []
    return Run(
        path=run,
        name=str(config.get("name") or run.resolve().name),
        config=config,
        objectives=objectives,
        reference=reference,
        reference_source=source,
        trials=tuple(trials),
        constraints=tuple(str(c) for c in meta["constraints"] or ()),
        strategy=str(
            meta["strategy_described"] or meta["strategy"] or (config.get("search") or {}).get("strategy") or NOT_RECORDED
        ),
        profile=str(meta["profile"] or config.get("profile") or NOT_RECORDED),
        space=space,
        models=tuple(m for m in models if isinstance(m, Mapping) and "id" in m),
        pareto_recorded=bool(pareto),
        timings=dict((timings or {}).get("seconds", {})),
        sustainability=sustainability,
        emissions=_read_emissions(run / "emissions.csv", notes),
        notes=tuple(notes),
    )


def _reference(
    objectives: Sequence[Objective], raw: Sequence[Any], pareto: Mapping[str, Any], trials: Sequence[Trial]
) -> tuple[tuple[float, ...], str]:
    """Hypervolume reference, in the objectives' own directions, and where it comes from."""
    from_meta = [o.get("reference") if isinstance(o, Mapping) else None for o in raw]
    if all(number(r) for r in from_meta):
        return tuple(float(r) for r in from_meta if number(r)), "recorded in study.db"
    ref = submap(pareto, "reference")
    if all(number(ref.get(o.name)) for o in objectives):
        return tuple(float(ref[o.name]) for o in objectives), "recorded in pareto.json"
    # Nothing recorded: 10% beyond the worst value seen, so every evaluated point counts.
    out = []
    for o in objectives:
        seen = [float(t.metrics[o.name]) for t in trials if number(t.metrics.get(o.name))]
        if not seen:
            out.append(0.0)
            continue
        worst = max(o.sign * v for v in seen)
        out.append(o.sign * (worst + 0.1 * abs(worst) + 1e-12))
    return tuple(out), "not recorded; 10% beyond the worst value of the trials"


def _read_file(path: Path, schema: type[SustainabilityFile | TimingsFile], notes: list[str]) -> dict[str, Any] | None:
    """A run file read through its schema, as a dict; ``None`` with a note when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return dict(schema.read_text(path.read_text(), name=path.name).model_dump(mode="json"))
    except (RunFileError, OSError) as e:
        notes.append(f"{path.name} cannot be read ({e}); its figures are not shown.")
        return None


def _read_emissions(path: Path, notes: list[str]) -> tuple[dict[str, Any], ...] | None:
    """Rows of codecarbon's ``emissions.csv``, numbers converted; ``None`` when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        notes.append(f"emissions.csv cannot be read ({e}); its figures are not shown.")
        return None
    out = []
    for row in rows:
        converted: dict[str, Any] = {}
        for k, v in row.items():
            if k is None:
                continue
            try:
                converted[k] = float(v) if v not in ("", None) and k not in _TEXT_COLUMNS else (v or None)
            except ValueError:
                converted[k] = v
        out.append(converted)
    return tuple(out)


_TEXT_COLUMNS = {
    "timestamp", "project_name", "run_id", "experiment_id", "country_name", "country_iso_code", "region",
    "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version", "cpu_model", "gpu_model",
    "tracking_mode", "on_cloud", "task_name",
}  # fmt: skip


def number(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def submap(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``data[key]`` where it is a mapping (a JSON object), else an empty one."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def opt(v: Any) -> float | None:
    return float(v) if number(v) else None
