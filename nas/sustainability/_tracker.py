"""What a search itself costs: energy and CO2e of every phase, tracked by codecarbon, and the budgets.

One codecarbon ``OfflineEmissionsTracker`` runs for the whole run (online mode only when asked). Phases are
codecarbon tasks; a phase entered inside another pauses the outer one, so every second of the run is
counted once: supernet training, candidate evaluation, profiling (export and on-device timing), search
overhead (strategy, storage) and the final export. The run directory gets:

- ``emissions.csv``: codecarbon's own file (one row per session of the run, in its format);
- ``emissions_by_phase.csv``: one row per phase, codecarbon's task columns, summed over the phase's tasks;
- ``sustainability.json``: phases, totals, hardware, how each figure was obtained and codecarbon's own
  fallbacks (an unknown CPU, no RAPL counters...), which are reported, never hidden.

Every figure carries its method: ``measured-rapl`` (CPU energy from RAPL counters), ``measured-nvml`` (GPU
energy from NVML) or ``estimated`` (codecarbon's power models: CPU load x TDP, RAM by size).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas._atomic import atomic_write, atomic_write_text
from nas._schemas import SustainabilityFile
from profilers import cpu_model_name

if TYPE_CHECKING:
    from codecarbon.emissions_tracker import BaseEmissionsTracker

__all__ = ["BudgetExceeded", "Budgets", "PhaseTotals", "SearchTracker", "method_of"]

_CODECARBON_SAID: list[str] = []

PHASES = ("supernet_training", "candidate_evaluation", "profiling", "search_overhead", "export")
_ENERGY_FIELDS = ("cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "emissions", "water_consumed")


@dataclass
class PhaseTotals:
    """Sums over every task of one phase (energies in kWh, emissions in kg CO2e)."""

    duration_s: float = 0.0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    cpu_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    tasks: int = 0

    def add(self, other: PhaseTotals) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) if k != "tasks" else int(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class Budgets:
    """Limits of one run; ``None`` means no limit."""

    max_energy_kwh: float | None = None
    max_co2_kg: float | None = None
    max_time_s: float | None = None

    def exceeded(self, energy_kwh: float, emissions_kg: float, elapsed_s: float) -> dict[str, Any] | None:
        """The first budget reached, as ``{"budget", "limit", "value"}``, or ``None``."""
        for name, limit, value in (
            ("max_energy_kwh", self.max_energy_kwh, energy_kwh),
            ("max_co2_kg", self.max_co2_kg, emissions_kg),
            ("max_time", self.max_time_s, elapsed_s),
        ):
            if limit is not None and value >= limit:
                return {"budget": name, "limit": limit, "value": value}
        return None


class BudgetExceeded(Exception):
    """Raised between supernet epochs when a budget is reached; the search then stops cleanly."""

    def __init__(self, stop: Mapping[str, Any]) -> None:
        super().__init__(f"{stop['budget']} reached ({stop['value']:.4g} of {stop['limit']:.4g})")
        self.stop = dict(stop)


def method_of(hardware_description: str) -> str:
    """Method label of one codecarbon hardware description (``CPU(Intel Rapl)``, ``GPU``, ``RAM``...).

    Example:
        >>> method_of("CPU(Intel Rapl)"), method_of("CPU(Cpu Load)"), method_of("GPU"), method_of("RAM")
        ('measured-rapl', 'estimated', 'measured-nvml', 'estimated')
    """
    d = hardware_description.lower()
    if d.startswith("cpu") and "rapl" in d:
        return "measured-rapl"
    if d.startswith("gpu"):
        return "measured-nvml"
    return "estimated"


class _Capture(logging.Handler):
    """Keeps codecarbon's warnings (its fallbacks) instead of printing them over the progress bars."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = " ".join(record.getMessage().split())
        # Not a fallback: we run several trackers on purpose (one per run) and say so nowhere else.
        if "Multiple instances of codecarbon" in msg or msg in self.messages:
            return
        self.messages.append(msg)


class SearchTracker:
    """Energy and emissions of one run, phase by phase, with the running totals that budgets check.

    Args:
        run_dir: the run directory; files are written there.
        project: name recorded by codecarbon (the run name).
        enabled: without tracking, durations are still recorded and energy is reported as not measured.
        country_iso_code: grid for the carbon intensity (ISO 3166 alpha-3, e.g. ``"DEU"``); default: the
            profile's region, else ``"USA"``, and the report says it was a default.
        region: sub-national region codecarbon knows (e.g. ``"california"``).
        online: use codecarbon's online tracker (geolocation by IP) instead of the offline one.
        measure_power_secs: codecarbon's sampling interval.
        budgets: limits checked by :meth:`check_budgets`.
        profile_name: the hardware profile, recorded with the hardware.
        clock: seconds for the run's elapsed time and the ``max_time`` budget; ``None``: ``time.perf_counter``
            (looked up at each reading).

    Example:
        >>> import tempfile
        >>> t = SearchTracker(tempfile.mkdtemp(), project="doc", enabled=False)
        >>> with t.phase("search_overhead"):
        ...     pass
        >>> t.totals["search_overhead"].tasks
        1
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        project: str,
        enabled: bool = True,
        country_iso_code: str | None = None,
        region: str | None = None,
        online: bool = False,
        measure_power_secs: float = 5.0,
        budgets: Budgets | None = None,
        profile_name: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.project = project
        self.enabled = enabled
        self.country_given = country_iso_code is not None
        self.country_iso_code = (country_iso_code or "USA").upper()
        self.region = region
        self.online = online
        self.measure_power_secs = measure_power_secs
        self.budgets = budgets or Budgets()
        self.profile_name = profile_name
        self.clock = clock
        self.totals: dict[str, PhaseTotals] = {}
        self.previous: dict[str, PhaseTotals] = {}
        self.previous_elapsed_s = 0.0
        self.sessions = 0
        self.components: dict[str, str] = {}
        self.fallbacks: list[str] = []
        self.stopped_by: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}
        self._tracker: Any = None
        self._capture = _Capture()
        self._stack: list[str] = []
        self._task_started: float | None = None
        self._t0 = self._now()
        self._task_rows: dict[str, dict[str, Any]] = {}

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts codecarbon (when enabled) and reads the totals of earlier sessions of a resumed run."""
        self._load_previous()
        self._t0 = self._now()
        if not self.enabled:
            self.fallbacks.append("energy tracking is off (tracking.enabled: false): energy was not recorded")
            return
        try:
            import codecarbon
        except ImportError:
            self.enabled = False
            self.fallbacks.append(
                "codecarbon is not installed (pip install codecarbon): energy was not recorded"
            )
            return
        logger = logging.getLogger("codecarbon")
        self._saved = (list(logger.handlers), logger.level, logger.propagate)
        self._quiet(logger)
        kwargs: dict[str, Any] = {
            "project_name": self.project,
            "output_dir": str(self.run_dir),
            "output_file": "emissions.csv",
            "save_to_file": True,
            "measure_power_secs": self.measure_power_secs,
            "log_level": "warning",
            "allow_multiple_runs": True,
            "tracking_mode": "machine",
        }
        if not self.online and not self.country_given:
            self.fallbacks.append(
                "no carbon region given (tracking.country_iso_code or the profile's carbon_region): "
                "the USA average grid intensity is used"
            )
        with warnings.catch_warnings():
            # save_to_file is deprecated in codecarbon 3 but is the spelling every supported version reads.
            warnings.simplefilter("ignore", DeprecationWarning)
            tracker: BaseEmissionsTracker
            if self.online:
                tracker = codecarbon.EmissionsTracker(**kwargs)
            else:
                tracker = codecarbon.OfflineEmissionsTracker(
                    country_iso_code=self.country_iso_code, region=self.region, **kwargs
                )
        # codecarbon installs its own console handler: replace it, so its fallbacks land in the report.
        self._quiet(logger)
        tracker.start()
        self._tracker = tracker
        self.components = {d: method_of(d) for d in tracker._conf.get("hardware", [])}

    def _quiet(self, logger: logging.Logger) -> None:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.addHandler(self._capture)
        logger.setLevel(logging.WARNING)
        logger.propagate = False

    def stop(self) -> None:
        """Ends the open phases, stops codecarbon and writes the run's sustainability files."""
        while self._stack:
            self._end_task()
            self._stack.pop()
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                self._tracker.stop()
            logger = logging.getLogger("codecarbon")
            handlers, level, propagate = self._saved
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            self._tracker = None
        # codecarbon warns about its fallbacks once per process (its hardware detection is cached): keep
        # what it said for the later runs of this process, which fall back the same way.
        if self.enabled:
            _CODECARBON_SAID.extend(m for m in self._capture.messages if m not in _CODECARBON_SAID)
            self.fallbacks.extend(m for m in _CODECARBON_SAID if m not in self.fallbacks)
        self._gather_task_files()
        self.write()

    def _gather_task_files(self) -> None:
        """codecarbon writes every task of a session to ``emissions_<experiment>_<run id>.csv``; keep them
        in one ``emissions_tasks.csv`` (appended to by each session of a resumed run)."""
        target = self.run_dir / "emissions_tasks.csv"
        for path in sorted(self.run_dir.glob("emissions_*_*-*-*-*-*.csv")):
            lines = path.read_text().splitlines(keepends=True)
            with target.open("a") as fh:
                fh.writelines(lines if target.stat().st_size == 0 else lines[1:])
            path.unlink()

    # -- phases --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Counts what runs inside as ``name``; an outer phase is paused meanwhile."""
        if self._stack:
            self._end_task()
        self._stack.append(name)
        self._begin_task()
        try:
            yield
        finally:
            self._end_task()
            self._stack.pop()
            if self._stack:
                self._begin_task()

    def _begin_task(self) -> None:
        self._task_started = time.perf_counter()
        if self._tracker is not None:
            self._tracker.start_task(self._stack[-1])

    def _end_task(self) -> None:
        name = self._stack[-1]
        started = self._task_started if self._task_started is not None else time.perf_counter()
        part = PhaseTotals(duration_s=time.perf_counter() - started, tasks=1)
        if self._tracker is not None:
            data = self._tracker.stop_task()
            if data is not None:
                part.energy_kwh = float(data.energy_consumed)
                part.emissions_kg = float(data.emissions)
                part.cpu_energy_kwh = float(data.cpu_energy)
                part.gpu_energy_kwh = float(data.gpu_energy)
                part.ram_energy_kwh = float(data.ram_energy)
                self._remember_row(name, data)
        self.totals.setdefault(name, PhaseTotals()).add(part)
        self._task_started = None

    def _remember_row(self, name: str, data: Any) -> None:
        values = dict(data.values) if hasattr(data, "values") else dict(vars(data))
        row = self._task_rows.get(name)
        if row is None:
            self._task_rows[name] = {"task_name": name, **values}
            return
        for key in ("duration", *_ENERGY_FIELDS):
            if key in values and isinstance(values[key], (int, float)):
                row[key] = float(row.get(key) or 0.0) + float(values[key])
        row["timestamp"] = values.get("timestamp", row.get("timestamp"))

    # -- totals and budgets --------------------------------------------------------------------------
    @property
    def energy_kwh(self) -> float:
        """Energy of the whole run so far (all sessions), kWh."""
        return sum(t.energy_kwh for t in self._all().values())

    @property
    def emissions_kg(self) -> float:
        return sum(t.emissions_kg for t in self._all().values())

    @property
    def elapsed_s(self) -> float:
        """Wall time of the whole run so far (all sessions), seconds."""
        return self.previous_elapsed_s + self._now() - self._t0

    def _now(self) -> float:
        return (self.clock or time.perf_counter)()

    def _all(self) -> dict[str, PhaseTotals]:
        out = {k: PhaseTotals(**vars(v)) for k, v in self.previous.items()}
        for k, v in self.totals.items():
            out.setdefault(k, PhaseTotals()).add(v)
        return out

    def check_budgets(self) -> dict[str, Any] | None:
        """The budget reached so far, if any (remembered as what stopped the run)."""
        stop = self.budgets.exceeded(self.energy_kwh, self.emissions_kg, self.elapsed_s)
        if stop is not None and self.stopped_by is None:
            self.stopped_by = stop
        return stop

    @property
    def method(self) -> str | None:
        """How the search's energy was obtained: the weakest method of the parts that drew energy."""
        if not self.enabled or not self.components:
            return None
        methods = set(self.components.values())
        return "estimated" if "estimated" in methods else min(methods)

    # -- files ---------------------------------------------------------------------------------------
    def _load_previous(self) -> None:
        path = self.run_dir / "sustainability.json"
        if not path.is_file():
            return
        try:
            old = json.loads(path.read_text())
            self.previous = {p["name"]: _totals_from(p) for p in old.get("phases", [])}
            self.previous_elapsed_s = float(old.get("total", {}).get("elapsed_s", 0.0))
            self.sessions = int(old.get("sessions", 1))
        except (ValueError, KeyError, TypeError):
            self.fallbacks.append(
                f"{path.name} of the earlier session could not be read: its energy is not counted"
            )

    def summary(self) -> dict[str, Any]:
        """The content of ``sustainability.json``."""
        phases = self._all()
        order = [p for p in PHASES if p in phases] + sorted(set(phases) - set(PHASES))
        method = self.method
        total = PhaseTotals()
        for t in phases.values():
            total.add(t)
        return {
            "tracker": {
                "tool": "codecarbon",
                "version": _codecarbon_version(),
                "mode": "online" if self.online else "offline",
                "enabled": self.enabled,
                "country_iso_code": self.country_iso_code,
                "region": self.region,
                "components": self.components,
                "fallbacks": list(self.fallbacks),
            },
            "hardware": _hardware(self.profile_name),
            "phases": [
                {"name": p, **phases[p].to_dict(), "method": method if self.enabled else None} for p in order
            ],
            "total": {
                "duration_s": total.duration_s,
                "elapsed_s": self.elapsed_s,
                "energy_kwh": total.energy_kwh,
                "emissions_kg": total.emissions_kg,
                "method": method,
            },
            "sessions": self.sessions + 1,
            "stopped_by": self.stopped_by,
            **self.extra,
        }

    def write(self) -> None:
        """Writes ``sustainability.json`` and ``emissions_by_phase.csv`` (atomically; safe to call often)."""
        summary = SustainabilityFile.model_validate(self.summary()).to_json()
        atomic_write_text(self.run_dir / "sustainability.json", summary)
        rows = list(self._task_rows.values())
        if rows:
            fields = list(dict.fromkeys(k for r in rows for k in r))

            def write(fh: Any) -> None:
                w = csv.DictWriter(fh, fieldnames=fields)
                w.writeheader()
                for r in rows:
                    w.writerow({k: r.get(k, "") for k in fields})

            atomic_write(self.run_dir / "emissions_by_phase.csv", write, newline="")


def _totals_from(d: Mapping[str, Any]) -> PhaseTotals:
    return PhaseTotals(**{k: type(getattr(PhaseTotals(), k))(d.get(k, 0)) for k in vars(PhaseTotals())})


def _codecarbon_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("codecarbon")
    except Exception:  # noqa: BLE001 - not installed: say so with None
        return None


def _hardware(profile_name: str | None) -> dict[str, Any]:
    cpu_model = cpu_model_name()
    ram_gb = None
    try:
        import psutil

        ram_gb = round(psutil.virtual_memory().total / 2**30, 2)
    except ImportError:
        pass
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "gpu_model": _gpu_model(),
        "ram_gb": ram_gb,
        "profile": profile_name,
        "platform": platform.platform(),
    }


def _gpu_model() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # noqa: BLE001 - no usable GPU is an answer, not an error
        return None
    return None

