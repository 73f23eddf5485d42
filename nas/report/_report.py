"""The results and sustainability report of one run, or the comparison of several: HTML and Markdown.

The HTML page is self-contained: every figure is an embedded PNG, the style sheet is inline and there is no
script, so it opens offline and can be mailed or archived as one file. The Markdown summary holds the same
tables, with relative links to the same figures written as PNG files next to it.

What a run directory holds is described in DESIGN.md. Everything the report shows comes from files of the
run; what a run did not record (energy, emissions, per-trial energy) is said to be "not recorded".
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nas._errors import RunError
from nas.report._importance import MIN_IMPORTANCE_TRIALS, group_importance, param_group, param_importance
from nas.report._plots import (
    FrontSeries,
    HypervolumeCurve,
    energy_figure,
    figure_png,
    fronts_figure,
    hypervolume_figure,
    importance_figure,
    parallel_figure,
)
from nas.spaces._mobilenet import arch_key
from search import (
    Objective,
    Space,
    SQLiteStorage,
    StorageError,
    Trial,
    TrialState,
    hypervolume,
    non_dominated_mask,
)

__all__ = ["FromScratchEstimate", "ReportError", "ReportFiles", "estimate_from_scratch", "write_report"]

NOT_RECORDED = "not recorded"
#: Phases of ``sustainability.json``, in the order they happen.
PHASES = ("supernet_training", "candidate_evaluation", "profiling", "search_overhead", "export")
FIGURES_DIR = "report_figures"
_MAX_FAILURES_SHOWN = 50
#: Fewer complete trials than this make the importance figures rough; the report says so.
ROUGH_IMPORTANCE_TRIALS = 50


class ReportError(RunError):
    """Runs that cannot be reported as asked; the message says what is wrong and what is valid."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: the HTML page, the Markdown summary and the figures as PNG."""

    html: Path
    md: Path
    figures: tuple[Path, ...] = ()


@dataclass(frozen=True)
class FromScratchEstimate:
    """What training every distinct evaluated arch from scratch would have cost, against the supernet.

    Each arch ``a`` is charged ``energy_kwh_per_epoch * epochs * macs(a) / macs_per_step_sample``: the
    measured energy of one supernet epoch, scaled by the arch's forward MACs relative to the MACs the
    supernet trains per sample per step (the sum over the subnets of the sandwich rule).

    Attributes:
        n_archs: distinct archs with known MACs that were evaluated.
        n_without_macs: distinct archs left out because their MACs were not recorded.
        epochs: training epochs, the same as the supernet's.
        energy_kwh_per_epoch: measured (or estimated) supernet energy per epoch.
        macs_per_step_sample: MACs of one forward pass summed over the subnets trained per sample per step.
        energy_kwh: total from-scratch training energy of the ``n_archs`` archs.
        supernet_energy_kwh: energy of training the supernet once.
        kg_per_kwh: emission intensity used for the CO2e figures (``None`` when not recorded).
    """

    n_archs: int
    n_without_macs: int
    epochs: int
    energy_kwh_per_epoch: float
    macs_per_step_sample: float
    energy_kwh: float
    supernet_energy_kwh: float
    kg_per_kwh: float | None = None

    @property
    def saved_kwh(self) -> float:
        """Energy the supernet saved: from-scratch training minus training the supernet once."""
        return self.energy_kwh - self.supernet_energy_kwh

    @property
    def ratio(self) -> float:
        """From-scratch training energy over supernet training energy (``inf`` for a free supernet)."""
        return self.energy_kwh / self.supernet_energy_kwh if self.supernet_energy_kwh > 0 else math.inf

    @property
    def emissions_kg(self) -> float | None:
        return None if self.kg_per_kwh is None else self.energy_kwh * self.kg_per_kwh

    @property
    def saved_kg(self) -> float | None:
        return None if self.kg_per_kwh is None else self.saved_kwh * self.kg_per_kwh


def estimate_from_scratch(
    trials: Sequence[Trial],
    *,
    epochs: int,
    energy_kwh_per_epoch: float,
    macs_per_step_sample: float,
    supernet_energy_kwh: float | None = None,
    kg_per_kwh: float | None = None,
) -> FromScratchEstimate:
    """Estimates the energy of training every distinct evaluated arch from scratch for ``epochs`` epochs.

    Archs are told apart by ``attrs["arch"]`` (the params when a trial has no arch); each counts once,
    with the ``macs`` metric of its first trial that reports one.

    Args:
        trials: trials of the search.
        epochs: epochs of the supernet training, used for every arch.
        energy_kwh_per_epoch: energy of one supernet training epoch (kWh).
        macs_per_step_sample: forward MACs summed over the subnets trained per sample per step.
        supernet_energy_kwh: energy of the whole supernet training; ``epochs * energy_kwh_per_epoch`` if None.
        kg_per_kwh: emission intensity (kg CO2e per kWh) for the CO2e figures, if known.

    Example:
        >>> from search import Trial, TrialState
        >>> trials = [Trial(i, {"w": w}, state=TrialState.COMPLETE, metrics={"macs": m})
        ...           for i, (w, m) in enumerate([(1, 100.0), (2, 300.0), (1, 100.0)])]
        >>> e = estimate_from_scratch(trials, epochs=10, energy_kwh_per_epoch=0.002, macs_per_step_sample=400.0)
        >>> e.n_archs, round(e.energy_kwh, 6), round(e.ratio, 3)
        (2, 0.02, 1.0)
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a whole number of at least 1, got {epochs!r}")
    if not (math.isfinite(energy_kwh_per_epoch) and energy_kwh_per_epoch >= 0):
        raise ValueError(f"energy_kwh_per_epoch must be a finite number >= 0, got {energy_kwh_per_epoch!r}")
    if not (math.isfinite(macs_per_step_sample) and macs_per_step_sample > 0):
        raise ValueError(f"macs_per_step_sample must be a finite number > 0, got {macs_per_step_sample!r}")
    macs: dict[str, float] = {}
    without: set[str] = set()
    for t in trials:
        if t.state is TrialState.RUNNING:
            continue
        key = arch_key(t.attrs.get("arch", t.params))
        value = t.metrics.get("macs")
        if _number(value) and value >= 0:
            macs.setdefault(key, float(value))
        else:
            without.add(key)
    total = sum(energy_kwh_per_epoch * epochs * m / macs_per_step_sample for m in macs.values())
    supernet = epochs * energy_kwh_per_epoch if supernet_energy_kwh is None else float(supernet_energy_kwh)
    return FromScratchEstimate(
        n_archs=len(macs),
        n_without_macs=len(without - set(macs)),
        epochs=epochs,
        energy_kwh_per_epoch=float(energy_kwh_per_epoch),
        macs_per_step_sample=float(macs_per_step_sample),
        energy_kwh=float(total),
        supernet_energy_kwh=supernet,
        kg_per_kwh=kg_per_kwh,
    )


# -- reading a run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
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
        return all(_number(t.metrics.get(n)) for n in self.names)

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
            return _opt(total.get("energy_kwh")), _opt(total.get("emissions_kg")), "sustainability.json"
        if self.emissions:
            energy = [_opt(r.get("energy_consumed")) for r in self.emissions]
            kg = [_opt(r.get("emissions")) for r in self.emissions]
            return (
                sum(e for e in energy if e is not None) if any(e is not None for e in energy) else None,
                sum(k for k in kg if k is not None) if any(k is not None for k in kg) else None,
                "emissions.csv",
            )
        return None, None, NOT_RECORDED


def _load_run(path: str | Path) -> _Run:
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
        meta = {k: storage.get_meta(k) for k in ("objectives", "constraints", "strategy", "profile", "space")}
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
            pareto = json.loads(pareto_path.read_text())
        except ValueError as e:
            raise ReportError(
                f"{pareto_path} is not valid JSON ({e}); delete it or re-run the search"
            ) from None
        if not isinstance(pareto, Mapping):
            raise ReportError(f"{pareto_path} does not hold a JSON object; delete it or re-run the search")
    else:
        notes.append("pareto.json is missing: the search has not finished, so no model was exported.")

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
    timings = _read_json(run / "timings.json", notes)
    sustainability = _read_json(run / "sustainability.json", notes)
    models = pareto.get("models") or []
    return _Run(
        path=run,
        name=str(config.get("name") or run.resolve().name),
        config=config,
        objectives=objectives,
        reference=reference,
        reference_source=source,
        trials=tuple(trials),
        constraints=tuple(str(c) for c in meta["constraints"] or ()),
        strategy=str(meta["strategy"] or (config.get("search") or {}).get("strategy") or NOT_RECORDED),
        profile=str(meta["profile"] or config.get("profile") or NOT_RECORDED),
        space=space,
        models=tuple(m for m in models if isinstance(m, Mapping) and "id" in m),
        pareto_recorded=bool(pareto),
        timings={k: float(v) for k, v in (timings or {}).items() if _number(v)},
        sustainability=sustainability,
        emissions=_read_emissions(run / "emissions.csv", notes),
        notes=tuple(notes),
    )


def _reference(
    objectives: Sequence[Objective], raw: Sequence[Any], pareto: Mapping[str, Any], trials: Sequence[Trial]
) -> tuple[tuple[float, ...], str]:
    """Hypervolume reference, in the objectives' own directions, and where it comes from."""
    from_meta = [o.get("reference") if isinstance(o, Mapping) else None for o in raw]
    if all(_number(r) for r in from_meta):
        return tuple(float(r) for r in from_meta), "recorded in study.db"
    ref = pareto.get("reference") if isinstance(pareto.get("reference"), Mapping) else {}
    if all(_number(ref.get(o.name)) for o in objectives):
        return tuple(float(ref[o.name]) for o in objectives), "recorded in pareto.json"
    # Nothing recorded: 10% beyond the worst value seen, so every evaluated point counts.
    out = []
    for o in objectives:
        seen = [float(t.metrics[o.name]) for t in trials if _number(t.metrics.get(o.name))]
        if not seen:
            out.append(0.0)
            continue
        worst = max(o.sign * v for v in seen)
        out.append(o.sign * (worst + 0.1 * abs(worst) + 1e-12))
    return tuple(out), "not recorded; 10% beyond the worst value of the trials"


def _read_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        notes.append(f"{path.name} cannot be read ({e}); its figures are not shown.")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path.name} does not hold a JSON object; its figures are not shown.")
        return None
    return data


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


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt(v: Any) -> float | None:
    return float(v) if _number(v) else None


# -- derived figures ---------------------------------------------------------------------------------------


def _finish_order(run: _Run) -> list[Trial]:
    done = [t for t in run.trials if t.state.finished]
    return sorted(done, key=lambda t: (t.finished_at if t.finished_at is not None else math.inf, t.number))


def _hypervolume_curve(run: _Run, reference: Sequence[float], name: str) -> tuple[HypervolumeCurve, int]:
    """Hypervolume after each finished trial; also the number of trials without a recorded energy."""
    signs = np.array([o.sign for o in run.objectives])
    ref = signs * np.asarray(reference, dtype=float)
    front = np.empty((0, len(ref)))
    hv, hvs, energy, missing = 0.0, [], [], 0
    spent = 0.0
    for t in _finish_order(run):
        e = t.attrs.get("energy_kwh")
        if _number(e):
            spent += float(e)
        else:
            missing += 1
        energy.append(spent)
        # Lower-fidelity results are estimates of a multi-fidelity search, not points of the front.
        if t.state is TrialState.COMPLETE and t.violation == 0.0 and t.fidelity >= 1.0 and run._has_values(t):
            p = signs * np.array([float(t.metrics[n]) for n in run.names])
            if not np.any(np.all(front <= p, axis=1)):
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
                hv = _hv(front, ref)
        hvs.append(hv)
    n = len(hvs)
    recorded = n > 0 and missing < n
    curve = HypervolumeCurve(
        name=name,
        trials=np.arange(1, n + 1),
        hypervolume=np.array(hvs),
        energy_kwh=np.array(energy) if recorded else None,
    )
    return curve, missing


def _hv(front: np.ndarray, ref: np.ndarray) -> float:
    if front.shape[1] == 1:
        return float(max(0.0, ref[0] - front[:, 0].min()))
    return hypervolume(front, ref)


def _front_series(run: _Run, name: str) -> FrontSeries:
    done = run.complete
    values = np.array([[float(t.metrics[n]) for n in run.names] for t in done]).reshape(-1, len(run.names))
    feasible = np.array([t.violation == 0.0 for t in done], dtype=bool)
    on_front = np.zeros(len(done), dtype=bool)
    # The front is made of full-fidelity results when there are any (lower fidelities are estimates).
    top = 1.0 if any(t.fidelity >= 1.0 for t in done) else max((t.fidelity for t in done), default=1.0)
    eligible = feasible & np.array([t.fidelity >= top for t in done], dtype=bool)
    if eligible.any():  # values are read by name, so the objectives' order in the study does not matter
        signs = np.array([o.sign for o in run.objectives])
        on_front[eligible] = non_dominated_mask(values[eligible] * signs)
    exported = {int(m["id"]) for m in run.models if _number(m.get("id"))}
    return FrontSeries(
        name=name,
        values=values,
        feasible=feasible,
        on_front=on_front,
        exported=np.array([t.number in exported for t in done], dtype=bool),
    )


def _scratch(run: _Run) -> tuple[FromScratchEstimate | None, str]:
    """The from-scratch estimate of a run, or why there is none."""
    s = run.sustainability
    if s is None:
        return None, "Energy was not recorded for this run (no sustainability.json): no estimate can be made."
    training = s.get("training")
    if not isinstance(training, Mapping):
        return None, "sustainability.json records no training energy: no estimate can be made."
    epochs = training.get("epochs")
    per_epoch = _opt(training.get("energy_kwh_per_epoch"))
    total = _opt(training.get("energy_kwh"))
    if per_epoch is None and total is not None and isinstance(epochs, int) and epochs > 0:
        per_epoch = total / epochs
    macs = _opt(training.get("macs_per_step_sample"))
    if not isinstance(epochs, int) or epochs < 1 or per_epoch is None or macs is None or macs <= 0:
        return None, (
            "sustainability.json lacks training epochs, energy per epoch or macs_per_step_sample: "
            "no estimate can be made."
        )
    estimate = estimate_from_scratch(
        run.trials,
        epochs=epochs,
        energy_kwh_per_epoch=per_epoch,
        macs_per_step_sample=macs,
        supernet_energy_kwh=total,
        kg_per_kwh=_intensity(s),
    )
    if estimate.n_archs == 0:
        return None, "No evaluated arch recorded its MACs: no estimate can be made."
    return estimate, ""


def _intensity(s: Mapping[str, Any]) -> float | None:
    """kg CO2e per kWh of the supernet training phase, else of the whole run."""
    for phase in s.get("phases") or []:
        if isinstance(phase, Mapping) and phase.get("name") == "supernet_training":
            e, kg = _opt(phase.get("energy_kwh")), _opt(phase.get("emissions_kg"))
            if e and kg is not None:
                return kg / e
    total = s.get("total") if isinstance(s.get("total"), Mapping) else {}
    e, kg = _opt(total.get("energy_kwh")), _opt(total.get("emissions_kg"))
    return kg / e if e and kg is not None else None


# -- rendering: tables and sections ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    text: str
    href: str


Cell = str | _Link


@dataclass(frozen=True)
class _Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    row_attrs: Sequence[str] = ()  # one HTML attribute string per row (e.g. 'data-model="3"'), optional
    numeric: Sequence[bool] = ()

    def html(self) -> str:
        num = list(self.numeric) or [False] * len(self.headers)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = []
        for i, row in enumerate(self.rows):
            attrs = f" {self.row_attrs[i]}" if i < len(self.row_attrs) and self.row_attrs[i] else ""
            cells = "".join(
                f"<td{' class=num' if k < len(num) and num[k] else ''}>{_cell_html(c)}</td>"
                for k, c in enumerate(row)
            )
            body.append(f"<tr{attrs}>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def md(self) -> str:
        num = list(self.numeric) or [False] * len(self.headers)
        lines = [
            "| " + " | ".join(_md_escape(h) for h in self.headers) + " |",
            "|"
            + "|".join("---:" if k < len(num) and num[k] else "---" for k in range(len(self.headers)))
            + "|",
        ]
        lines += ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


def _cell_html(c: Cell) -> str:
    if isinstance(c, _Link):
        return f'<a href="{html.escape(c.href, quote=True)}">{html.escape(c.text)}</a>'
    return html.escape(c)


def _cell_md(c: Cell) -> str:
    if isinstance(c, _Link):
        return f"[{_md_escape(c.text)}]({c.href.replace(' ', '%20')})"
    return _md_escape(c)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


@dataclass
class _Doc:
    """The report being built: HTML and Markdown side by side, and the figures to write."""

    out_dir: Path
    html_parts: list[str] = field(default_factory=list)
    md_parts: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor, quote=True)}"' if anchor else ""
        self.html_parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        self.md_parts.append(f"{'#' * level} {text}")

    def para(self, text: str, *, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.html_parts.append(f"<p{cls}>{html.escape(text)}</p>")
        self.md_parts.append(f"> {text}" if note else text)

    def facts(self, items: Sequence[tuple[str, str]]) -> None:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
        self.html_parts.append(f'<table class="facts">{rows}</table>')
        self.md_parts.append("\n".join(f"- **{k}:** {v}" for k, v in items))

    def bullets(self, items: Sequence[str]) -> None:
        self.html_parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        self.md_parts.append("\n".join(f"- {i}" for i in items))

    def table(self, table: _Table, *, details: str | None = None) -> None:
        if details is None:
            self.html_parts.append(table.html())
            self.md_parts.append(table.md())
            return
        self.html_parts.append(f"<details><summary>{html.escape(details)}</summary>{table.html()}</details>")
        self.md_parts.append(f"<details><summary>{details}</summary>\n\n{table.md()}\n\n</details>")

    def pre(self, text: str) -> None:
        self.html_parts.append(f"<pre>{html.escape(text)}</pre>")
        self.md_parts.append("```\n" + text.replace("```", "'''") + "\n```")

    def figure(self, name: str, fig: Any, caption: str) -> None:
        png = figure_png(fig)
        self.figures[name] = png
        data = base64.b64encode(png).decode("ascii")
        alt = html.escape(caption, quote=True)
        self.html_parts.append(
            f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.md_parts.append(f"![{caption}]({FIGURES_DIR}/{name})")


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return NOT_RECORDED
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    if _number(v):
        return f"{v:.{digits}g}"
    return str(v)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _count(v: Any) -> str:
    if not _number(v):
        return "n/a"
    v = float(v)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    return f"{v:.0f}"


def _objective_header(o: Objective) -> str:
    arrow = "↓" if o.direction == "minimize" else "↑"
    unit = "" if not o.unit or o.name.endswith(f"_{o.unit}") else f" ({o.unit})"
    return f"{o.name}{unit} {arrow}"


def _counts(run: _Run) -> str:
    parts = [
        f"{len(run.trials)} in all",
        f"{run.count(TrialState.COMPLETE)} complete",
        f"{run.count(TrialState.FAILED)} failed",
        f"{run.count(TrialState.PRUNED)} pruned",
    ]
    if run.count(TrialState.RUNNING):
        parts.append(f"{run.count(TrialState.RUNNING)} unfinished")
    return ", ".join(parts)


def _hardware(run: _Run) -> str:
    s = run.sustainability
    hw = s.get("hardware") if s is not None and isinstance(s.get("hardware"), Mapping) else None
    if hw is None and run.emissions:
        last = run.emissions[-1]
        hw = {
            "cpu_model": last.get("cpu_model"),
            "cpu_count": last.get("cpu_count"),
            "gpu_model": last.get("gpu_model"),
            "ram_gb": last.get("ram_total_size"),
        }
    if hw is None:
        return NOT_RECORDED
    parts = []
    if hw.get("cpu_model"):
        count = hw.get("cpu_count")
        parts.append(f"CPU {hw['cpu_model']}" + (f" ({int(count)} cores)" if _number(count) else ""))
    parts.append(f"GPU {hw['gpu_model']}" if hw.get("gpu_model") else "no GPU")
    if _number(hw.get("ram_gb")):
        parts.append(f"{float(hw['ram_gb']):.3g} GB RAM")
    return ", ".join(parts)


def _section_header(doc: _Doc, run: _Run, *, level: int = 2) -> None:
    cfg_search = run.config.get("search") if isinstance(run.config.get("search"), Mapping) else {}
    strategy = run.strategy
    if strategy == "nsga2" and cfg_search.get("population"):
        strategy = f"nsga2 (population {cfg_search['population']})"
    epochs = (
        (run.config.get("supernet") or {}).get("epochs")
        if isinstance(run.config.get("supernet"), Mapping)
        else None
    )
    objectives = ", ".join(f"{o.name} ({o.direction})" for o in run.objectives)
    facts = [
        ("Run", f"{run.name} ({run.path})"),
        ("Started", run.started),
        ("Dataset", run.dataset),
        ("Strategy", strategy),
        ("Trials", _counts(run)),
        ("Objectives", objectives),
        ("Constraints", ", ".join(run.constraints) or "none"),
        ("Hardware profile", run.profile),
        ("Hardware", _hardware(run)),
    ]
    if epochs:
        facts.insert(4, ("Supernet training", _plural(int(epochs), "epoch")))
    if run.timings:
        wall = sum(v for k, v in run.timings.items() if "." not in k)
        facts.append(("Wall-clock time", f"{wall / 60:.1f} min (timings.json)"))
    doc.facts(facts)
    for note in run.notes:
        doc.para(note, note=True)
    failed = [t for t in run.trials if t.state is TrialState.FAILED]
    if failed:
        doc.heading(f"Failed trials ({len(failed)})", level + 1)
        shown = failed[:_MAX_FAILURES_SHOWN]
        doc.table(
            _Table(["trial", "error"], [[str(t.number), t.error or "no error text recorded"] for t in shown])
        )
        if len(failed) > len(shown):
            doc.para(f"{len(failed) - len(shown)} more failed trials are listed in trials.csv.", note=True)


def _section_models(doc: _Doc, run: _Run, *, level: int = 2) -> None:
    doc.heading(f"Pareto models ({len(run.models)})" if level == 2 else f"Pareto models of {run.name}", level)
    if not run.models:
        doc.para(
            "No model was exported."
            if run.pareto_recorded
            else "pareto.json is missing: no model was exported.",
            note=True,
        )
        return
    extra = [k for k in ("params", "flops") if k not in run.names]
    headers = ["id", *(_objective_header(o) for o in run.objectives)]
    headers += [{"params": "params", "flops": "FLOPs"}[k] for k in extra]
    # The model's own validation error, where it differs from the ranked one (an ensemble's mean, or a
    # model fine-tuned before export).
    own = any(
        _number(m.get("validation_error"))
        and isinstance(m.get("metrics"), Mapping)
        and _number(m["metrics"].get("error"))
        and abs(m["validation_error"] - m["metrics"]["error"]) > 1e-9
        for m in run.models
    )
    headers += [
        *(["model's validation error (%)"] if own else []),
        "test error (%)",
        "max |onnx − torch|",
        "ONNX",
    ]
    rows, attrs = [], []
    for m in run.models:
        metrics = m.get("metrics") if isinstance(m.get("metrics"), Mapping) else {}
        row: list[Cell] = [str(m["id"])]
        row += [
            _fmt(metrics.get(n)) if n not in ("params", "flops") else _count(metrics.get(n))
            for n in run.names
        ]
        row += [_count(metrics.get(k)) for k in extra]
        if own:
            row.append("n/a" if not _number(m.get("validation_error")) else _fmt(m.get("validation_error")))
        row += [
            "n/a" if m.get("test_error") is None else _fmt(m.get("test_error")),
            f"{m['max_abs_diff']:.1e}" if _number(m.get("max_abs_diff")) else "n/a",
        ]
        onnx = m.get("onnx")
        if isinstance(onnx, str) and onnx:
            target = run.path / onnx
            href = Path(os.path.relpath(target, doc.out_dir)).as_posix()
            row.append(_Link(onnx, href))
        else:
            row.append("not exported")
        rows.append(row)
        attrs.append(f'data-model="{html.escape(str(m["id"]), quote=True)}"')
    numeric = [False] + [True] * (len(headers) - 2) + [False]
    doc.table(_Table(headers, rows, attrs, numeric))
    doc.para("↓: lower is better, ↑: higher is better. Test error is measured on the held-out test split.")


def _section_energy(doc: _Doc, run: _Run, *, level: int = 2, figures: bool = True, prefix: str = "") -> None:
    doc.heading("Energy and CO2e" if level == 2 else f"Energy and CO2e of {run.name}", level)
    s = run.sustainability
    if s is None:
        doc.para(
            "Energy and CO2e: not recorded (this run has no sustainability.json)."
            + (" The codecarbon records of emissions.csv are listed below." if run.emissions else ""),
            note=True,
        )
        rows = [[k, f"{v:.1f}", NOT_RECORDED, NOT_RECORDED, NOT_RECORDED] for k, v in run.timings.items()]
        if rows:
            doc.para("Measured wall-clock time of each phase (timings.json):")
            doc.table(
                _Table(
                    ["phase", "duration (s)", "energy (kWh)", "CO2e (kg)", "method"],
                    rows,
                    numeric=[0, 1, 1, 1, 0],
                )
            )
    else:
        tracker = s.get("tracker") if isinstance(s.get("tracker"), Mapping) else {}
        where = (
            ", ".join(str(tracker[k]) for k in ("country_iso_code", "region") if tracker.get(k))
            or NOT_RECORDED
        )
        tool = " ".join(str(tracker[k]) for k in ("tool", "version") if tracker.get(k)) or NOT_RECORDED
        hw = s.get("hardware") if isinstance(s.get("hardware"), Mapping) else {}
        sessions = f", {_plural(int(s['sessions']), 'session')}" if _number(s.get("sessions")) else ""
        parts = tracker.get("components") if isinstance(tracker.get("components"), Mapping) else {}
        components = ", ".join(f"{k}: {v}" for k, v in parts.items()) or NOT_RECORDED
        doc.facts([
            ("Tracker", f"{tool}, mode {tracker.get('mode') or NOT_RECORDED}{sessions}"),
            ("Grid region", where),
            ("Measured components", components),
            ("Hardware", _hardware(run)),
            ("Profile", str(hw.get("profile") or run.profile)),
        ])  # fmt: skip
        phases = [p for p in s.get("phases") or [] if isinstance(p, Mapping)]
        order = {name: i for i, name in enumerate(PHASES)}
        phases.sort(key=lambda p: order.get(str(p.get("name")), len(order)))
        rows = []
        for p in phases:
            rows.append([
                str(p.get("name", "?")), _fmt(_opt(p.get("duration_s"))), _fmt(_opt(p.get("energy_kwh"))),
                _fmt(_opt(p.get("emissions_kg"))), str(p.get("method") or NOT_RECORDED),
                _fmt(_opt(p.get("cpu_energy_kwh"))), _fmt(_opt(p.get("gpu_energy_kwh"))),
                _fmt(_opt(p.get("ram_energy_kwh"))),
            ])  # fmt: skip
        total = s.get("total") if isinstance(s.get("total"), Mapping) else {}
        methods = sorted({str(p.get("method")) for p in phases if p.get("method")})
        rows.append([
            "total", _fmt(_opt(total.get("duration_s"))), _fmt(_opt(total.get("energy_kwh"))),
            _fmt(_opt(total.get("emissions_kg"))), str(total.get("method") or " + ".join(methods) or NOT_RECORDED), "", "", "",
        ])  # fmt: skip
        headers = [
            "phase",
            "duration (s)",
            "energy (kWh)",
            "CO2e (kg)",
            "method",
            "CPU (kWh)",
            "GPU (kWh)",
            "RAM (kWh)",
        ]
        numeric = [False, True, True, True, False, True, True, True]
        attrs = [f'data-phase="{html.escape(str(r[0]), quote=True)}"' for r in rows]
        doc.table(_Table(headers, rows, attrs, numeric))
        fallbacks = [str(f) for f in tracker.get("fallbacks") or []]
        if fallbacks:
            doc.para("codecarbon fell back to estimates for what it could not measure:")
            doc.bullets(fallbacks)
        else:
            doc.para("codecarbon recorded no fallback.")
        inference = s.get("inference_energy") if isinstance(s.get("inference_energy"), Mapping) else {}
        method = inference.get("method") or NOT_RECORDED
        text = f"Energy per inference (energy_mj): {method}."
        if inference.get("fallback_reason"):
            text += f" Fallback: {inference['fallback_reason']}."
        doc.para(text)
        stopped = s.get("stopped_by")
        if isinstance(stopped, Mapping):
            doc.para(
                f"The search was stopped by its {stopped.get('budget')} budget: "
                f"{_fmt(_opt(stopped.get('value')))} reached the limit {_fmt(_opt(stopped.get('limit')))}.",
                note=True,
            )
        if figures:
            bars = [
                (str(p.get("name")), _opt(p.get("energy_kwh")), str(p.get("method") or NOT_RECORDED))
                for p in phases
            ]
            bars_known = [(a, b, c) for a, b, c in bars if b is not None]
            if bars_known:
                doc.figure(
                    f"{prefix}energy.png",
                    energy_figure(bars_known),
                    "Energy of each phase (kWh), with its method",
                )
    if run.emissions:
        _emissions_table(doc, run)


def _emissions_table(doc: _Doc, run: _Run) -> None:
    rows = []
    for i, r in enumerate(run.emissions or ()):
        label = r.get("task_name") or f"session {i + 1}"
        rows.append([
            str(r.get("timestamp") or ""), str(label), _fmt(_opt(r.get("duration"))),
            _fmt(_opt(r.get("energy_consumed"))), _fmt(_opt(r.get("emissions"))),
            _fmt(_opt(r.get("cpu_energy"))), _fmt(_opt(r.get("gpu_energy"))), _fmt(_opt(r.get("ram_energy"))),
            str(r.get("tracking_mode") or ""), str(r.get("country_iso_code") or ""),
        ])  # fmt: skip
    headers = ["timestamp", "record", "duration (s)", "energy (kWh)", "CO2e (kg)", "CPU (kWh)", "GPU (kWh)",
               "RAM (kWh)", "tracking mode", "country"]  # fmt: skip
    doc.table(
        _Table(headers, rows, numeric=[False, False, True, True, True, True, True, True, False, False]),
        details=f"codecarbon records (emissions.csv, {_plural(len(rows), 'row')})",
    )


def _section_scratch(doc: _Doc, run: _Run, *, level: int = 2) -> None:
    title = "Without weight sharing (estimate)"
    doc.heading(title if level == 2 else f"{title}: {run.name}", level)
    estimate, reason = _scratch(run)
    if estimate is None:
        doc.para(reason, note=True)
        return
    doc.para(
        "Estimate of what training every distinct evaluated arch from scratch, for the same number of epochs "
        "as the supernet, would have cost. Evaluating the candidates costs the same either way and is left out."
    )
    doc.pre(
        "E_scratch(a) = E_epoch × epochs × MACs(a) / MACs_step\n"
        f"E_epoch   = {estimate.energy_kwh_per_epoch:.4g} kWh per supernet epoch (measured during training)\n"
        f"epochs    = {estimate.epochs}\n"
        f"MACs_step = {estimate.macs_per_step_sample:.4g} (forward MACs of the subnets trained per sample "
        "per step, sandwich rule)\n"
        f"MACs(a)   = forward MACs of arch a, for each of the {estimate.n_archs} distinct evaluated archs"
    )
    kg = estimate.kg_per_kwh

    def co2(kwh: float) -> str:
        return NOT_RECORDED if kg is None else _fmt(kwh * kg)

    rows = [
        [
            f"train {estimate.n_archs} archs from scratch (estimate)",
            _fmt(estimate.energy_kwh),
            co2(estimate.energy_kwh),
        ],
        ["train the supernet once", _fmt(estimate.supernet_energy_kwh), co2(estimate.supernet_energy_kwh)],
        ["saved by weight sharing", _fmt(estimate.saved_kwh), co2(estimate.saved_kwh)],
    ]
    doc.table(_Table(["", "energy (kWh)", "CO2e (kg)"], rows, numeric=[False, True, True]))
    if math.isfinite(estimate.ratio) and estimate.ratio > 0:
        doc.para(
            f"Training from scratch would have cost {estimate.ratio:.3g}× the energy of training the supernet "
            f"once: weight sharing saved {_fmt(estimate.saved_kwh)} kWh"
            + ("" if kg is None else f" and {_fmt(estimate.saved_kwh * kg)} kg CO2e")
            + f" ({100 * estimate.saved_kwh / estimate.energy_kwh:.3g}% of the from-scratch energy)."
        )
    else:
        doc.para("The supernet training recorded no energy: no ratio can be given.", note=True)
    if kg is not None:
        doc.para(f"CO2e uses the emission intensity of the supernet training: {kg:.4g} kg CO2e per kWh.")
    if estimate.n_without_macs:
        doc.para(
            f"{_plural(estimate.n_without_macs, 'arch')} without recorded MACs (failed trials, or no MACs "
            "measured) are not counted.",
            note=True,
        )
    training = (run.sustainability or {}).get("training") or {}
    if "completed_epochs" in training and training.get("completed_epochs") != estimate.epochs:
        doc.para(
            f"The supernet training finished {training.get('completed_epochs') or 'fewer'} of its "
            f"{estimate.epochs} epochs (stopped by a budget): the estimate uses the recorded energy per epoch.",
            note=True,
        )


def _section_importance(doc: _Doc, run: _Run, *, prefix: str = "") -> None:
    doc.heading("Importance of the searched choices", 2)
    done = run.complete
    top = max((t.fidelity for t in done), default=1.0)
    done = [t for t in done if t.fidelity == top]
    per_param: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    if len(done) < MIN_IMPORTANCE_TRIALS:
        doc.para(
            f"Too few trials: importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials, "
            f"this run has {len(done)}.",
            note=True,
        )
        return
    for o in run.objectives:
        try:
            per_param[o.name] = param_importance(done, o.name, space=run.space)
        except ValueError as e:
            problems.append(f"{o.name}: {e}")
    for p in problems:
        doc.para(p, note=True)
    if not per_param:
        return
    grouped = {name: group_importance(imp) for name, imp in per_param.items()}
    trivial = all(len(g) == len(per_param[n]) for n, g in grouped.items())
    doc.para(
        f"First-order functional ANOVA of a random forest (64 trees, seed 0) fitted on the encoded choices of "
        f"the {len(done)} complete trials: each figure is the share of an objective's variance that a choice "
        "explains alone; the figures of one objective sum to 1."
        + (
            ""
            if trivial
            else f" Choices are grouped by kind ({', '.join(sorted(next(iter(grouped.values()))))}): a group's "
            "figure is the sum over its per-stage and per-block choices."
        )
    )
    if len(done) < ROUGH_IMPORTANCE_TRIALS:
        doc.para(
            f"With {len(done)} trials the forest is a rough model (below {ROUGH_IMPORTANCE_TRIALS}): "
            "read the order of the large figures, not small differences.",
            note=True,
        )
    shown = per_param if trivial else grouped
    doc.figure(f"{prefix}importance.png", importance_figure(shown), "Importance of each choice per objective")
    names = list(next(iter(shown.values())))
    objectives = list(shown)
    rows = [[n, *(_fmt(shown[o].get(n, 0.0), 3) for o in objectives)] for n in names]
    doc.table(_Table(["choice", *objectives], rows, numeric=[False] + [True] * len(objectives)))
    if not trivial:
        params = list(next(iter(per_param.values())))
        rows = [[p, param_group(p), *(_fmt(per_param[o].get(p, 0.0), 3) for o in objectives)] for p in params]
        doc.table(
            _Table(
                ["parameter", "group", *objectives], rows, numeric=[False, False] + [True] * len(objectives)
            ),
            details="Importance of each single parameter",
        )


# -- the report --------------------------------------------------------------------------------------------


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{background:#f7f7f7;font-weight:600}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4em .8em}
.small{color:#666;font-size:.9em}pre{background:#f5f5f5;padding:.6em;overflow-x:auto}details{margin:.6em 0}summary{cursor:pointer}
"""


def write_report(run_dirs: Sequence[str | Path], *, out_dir: str | Path | None = None) -> ReportFiles:
    """Writes ``report.html`` and ``report.md`` for one run, or a comparison of several runs.

    With one run the report goes into that run directory (or ``out_dir``): its header, Pareto fronts,
    hypervolume over trials and over energy, the Pareto models, energy and CO2e by phase, the cost of the
    same search without weight sharing, and the importance of each searched choice. With several runs,
    ``out_dir`` is required and the report overlays their fronts and compares their hypervolume (at a common
    reference point: the worst of the runs' references), trials, energy and CO2e.

    The figures are also written as PNG files to ``<out>/report_figures/``, which the Markdown links to.

    Args:
        run_dirs: run directories written by ``hwnas search``.
        out_dir: where to write; required with several runs.

    Raises:
        ReportError: a path that is not a run directory, an unreadable study, objectives that differ
            between runs, or several runs without ``out_dir``.

    Example:
        >>> write_report(["no/such/run"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        nas.report._report.ReportError: no/such/run does not exist; give a run directory written by 'hwnas search' ...
        >>> files = write_report(["runs/demo"])  # doctest: +SKIP
        >>> files.html.name, files.md.name  # doctest: +SKIP
        ('report.html', 'report.md')
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ReportError("give at least one run directory (runs/<name>) to report on")
    if len(run_dirs) > 1 and out_dir is None:
        raise ReportError(
            f"{len(run_dirs)} runs are compared in one report: give the folder to write it to (--out DIR)"
        )
    seen: dict[Path, str] = {}
    for p in run_dirs:
        key = Path(p).resolve()
        if key in seen:
            raise ReportError(f"{p} is given twice (as {seen[key]} too); give each run directory once")
        seen[key] = str(p)
    runs = [_load_run(p) for p in run_dirs]
    out = Path(out_dir) if out_dir is not None else runs[0].path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create the report folder {out}: {e.strerror or e}") from None
    doc = _Doc(out_dir=out)
    if len(runs) == 1:
        title = f"hwnas report: {runs[0].name}"
        _single(doc, runs[0])
    else:
        names = _unique_names(runs)
        title = "hwnas comparison: " + ", ".join(names)
        _overlay(doc, runs, names)
    return _write(doc, title)


def _single(doc: _Doc, run: _Run) -> None:
    _section_header(doc, run)
    doc.heading("Pareto fronts")
    series = _front_series(run, run.name)
    if len(series.values):
        pairs = "each pair of objectives" if len(run.objectives) > 1 else "the objective over trials"
        doc.figure(
            "fronts.png",
            fronts_figure([series], run.objectives),
            f"All complete trials for {pairs}; Pareto front in red, exported models ringed",
        )
        if len(run.objectives) >= 3:
            doc.figure(
                "parallel.png",
                parallel_figure(series, run.objectives),
                "Parallel coordinates of the feasible trials (each axis scaled to its observed range)",
            )
    else:
        doc.para("No trial completed: there is no front to show.", note=True)
    _section_hypervolume(doc, [run], [run.name], list(run.reference))
    _section_models(doc, run)
    _section_energy(doc, run)
    _section_scratch(doc, run)
    _section_importance(doc, run)


def _section_hypervolume(
    doc: _Doc, runs: Sequence[_Run], names: Sequence[str], reference: Sequence[float]
) -> None:
    doc.heading("Hypervolume")
    curves, missing = [], []
    for run, name in zip(runs, names):
        curve, n_missing = _hypervolume_curve(run, reference, name)
        curves.append(curve)
        missing.append((name, n_missing, len(curve.trials), curve.energy_kwh is not None))
    ref_text = ", ".join(f"{o.name} = {r:.4g}" for o, r in zip(runs[0].objectives, reference))
    source = runs[0].reference_source if len(runs) == 1 else "the worst of the runs' references"
    doc.para(f"Reference point: {ref_text} ({source}). Only feasible trials count.")
    if any(len(c.trials) for c in curves):
        doc.figure(
            "hypervolume.png", hypervolume_figure(curves), "Hypervolume over finished trials and over energy"
        )
    for name, n_missing, n, recorded in missing:
        who = "" if len(runs) == 1 else f"{name}: "
        if not recorded:
            doc.para(
                f"{who}Energy per trial was not recorded (no trial has attrs energy_kwh): "
                "hypervolume over energy cannot be shown.",
                note=True,
            )
        elif n_missing:
            doc.para(f"{who}{n_missing} of {n} trials have no recorded energy and count as 0 kWh.", note=True)
    methods = sorted(
        {str(t.attrs["energy_method"]) for r in runs for t in r.trials if t.attrs.get("energy_method")}
    )
    if methods:
        doc.para(f"Energy per trial (attrs energy_kwh): {', '.join(methods)}.")
    if len(runs) == 1 and len(curves[0].hypervolume):
        doc.para(f"Final hypervolume: {curves[0].hypervolume[-1]:.6g}.")


def _unique_names(runs: Sequence[_Run]) -> list[str]:
    names = [r.name for r in runs]
    if len(set(names)) == len(names):
        return names
    return [str(r.path) for r in runs]


def _common_objectives(runs: Sequence[_Run]) -> None:
    first = {o.name: o.direction for o in runs[0].objectives}
    for run in runs[1:]:
        other = {o.name: o.direction for o in run.objectives}
        if other != first:
            listing = "; ".join(
                f"{r.path}: " + ", ".join(f"{o.name} ({o.direction})" for o in r.objectives) for r in runs
            )
            raise ReportError(
                f"runs can only be overlaid when they have the same objectives and directions; got {listing}"
            )


def _overlay(doc: _Doc, runs: list[_Run], names: list[str]) -> None:
    _common_objectives(runs)
    order = runs[0].names
    objectives = runs[0].objectives
    aligned = []
    for run in runs:  # same objectives in the first run's order (values are read by name)
        by_name = dict(zip(run.names, run.reference))
        aligned.append(
            run if run.names == order else _reordered(run, objectives, [by_name[n] for n in order])
        )
    runs = aligned
    reference = [
        (max if o.direction == "minimize" else min)(run.reference[k] for run in runs)
        for k, o in enumerate(objectives)
    ]
    doc.heading("Runs compared")
    rows = []
    for run, name in zip(runs, names):
        curve, _ = _hypervolume_curve(run, reference, name)
        own, _ = _hypervolume_curve(run, run.reference, name)
        energy, kg, source = run.total_energy
        search_kwh = curve.energy_kwh[-1] if curve.energy_kwh is not None and len(curve.energy_kwh) else None
        rows.append([
            name, run.dataset, run.strategy, run.profile, str(len(run.trials)),
            str(run.count(TrialState.COMPLETE)), str(run.count(TrialState.FAILED)),
            str(run.count(TrialState.PRUNED)), str(len(run.models)),
            _fmt(curve.hypervolume[-1] if len(curve.hypervolume) else 0.0, 6),
            _fmt(own.hypervolume[-1] if len(own.hypervolume) else 0.0, 6),
            _fmt(energy), _fmt(kg), _fmt(search_kwh), source, run.started,
        ])  # fmt: skip
    headers = [
        "run", "dataset", "strategy", "profile", "trials", "complete", "failed", "pruned", "models",
        "hypervolume (common ref.)", "hypervolume (own ref.)", "energy (kWh)", "CO2e (kg)",
        "candidate evaluation (kWh)", "energy source", "started",
    ]  # fmt: skip
    numeric = [False] * 4 + [True] * 10 + [False, False]
    attrs = [f'data-run="{html.escape(n, quote=True)}"' for n in names]
    doc.table(_Table(headers, rows, attrs, numeric))
    ref_text = ", ".join(f"{o.name} = {r:.4g}" for o, r in zip(objectives, reference))
    doc.para(f"Common reference point: {ref_text} (per objective, the worst of the runs' references).")
    doc.heading("Pareto fronts")
    series = [_front_series(run, name) for run, name in zip(runs, names)]
    if any(len(s.values) for s in series):
        doc.figure(
            "fronts.png",
            fronts_figure([s for s in series if len(s.values)], objectives),
            "Fronts of the runs overlaid, one colour per run",
        )
    _section_hypervolume(doc, runs, names, reference)
    for run, name in zip(runs, names):
        doc.heading(f"Run {name}")
        _section_header(doc, run, level=3)
        _section_models(doc, run, level=3)
        _section_energy(doc, run, level=3, figures=False)
        _section_scratch(doc, run, level=3)


def _reordered(run: _Run, objectives: tuple[Objective, ...], reference: list[float]) -> _Run:
    from dataclasses import replace

    return replace(run, objectives=objectives, reference=tuple(reference))


def _write(doc: _Doc, title: str) -> ReportFiles:
    out = doc.out_dir
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = "\n".join(doc.html_parts)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f'<p class="small">Generated {stamp} by hwnas.</p>\n{body}\n</body></html>\n'
    )
    md = f"# {title}\n\nGenerated {stamp} by hwnas.\n\n" + "\n\n".join(doc.md_parts) + "\n"
    figures = []
    if doc.figures:
        fig_dir = out / FIGURES_DIR
        fig_dir.mkdir(exist_ok=True)
        for name, png in doc.figures.items():
            figures.append(_atomic_write(fig_dir / name, png))
    html_path = _atomic_write(out / "report.html", page.encode("utf-8"))
    md_path = _atomic_write(out / "report.md", md.encode("utf-8"))
    return ReportFiles(html=html_path, md=md_path, figures=tuple(figures))


def _atomic_write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise ReportError(f"cannot write {path}: {e.strerror or e}") from None
    return path
