"""The results and sustainability report of one run, or the comparison of several: HTML and Markdown.

The HTML page is self-contained: every figure is an embedded PNG, the style sheet is inline and there is no
script, so it opens offline and can be mailed or archived as one file. The Markdown summary holds the same
tables, with relative links to the same figures written as PNG files next to it.

What a run directory holds is described in docs/architecture.md. Everything the report shows comes from files of the
run; what a run did not record (energy, emissions, per-trial energy) is said to be "not recorded".
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.report._analysis import front_series, hypervolume_curve, reference_box
from nas.report._doc import CSS, FIGURES_DIR, Doc, Table, atomic_write
from nas.report._glance import section_glance
from nas.report._load import ReportError, Run, load_run
from nas.report._plots import (
    fronts_figure,
    parallel_figure,
)
from nas.report._sections import (
    _section_energy,
    _section_header,
    _section_hypervolume,
    _section_importance,
    _section_models,
    _section_scratch,
)
from nas.report._units import energy_text, mass_text
from search import (
    Objective,
    TrialState,
)

__all__ = ["ReportFiles", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: the HTML page, the Markdown summary and the figures as PNG."""

    html: Path
    md: Path
    figures: tuple[Path, ...] = ()


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
        nas.report._load.ReportError: no/such/run does not exist; give a run directory written by 'hwnas search' ...
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
    runs = [load_run(p) for p in run_dirs]
    out = Path(out_dir) if out_dir is not None else runs[0].path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create the report folder {out}: {e.strerror or e}") from None
    doc = Doc(out_dir=out)
    if len(runs) == 1:
        title = f"hwnas report: {runs[0].name}"
        _single(doc, runs[0])
    else:
        names = _unique_names(runs)
        title = "hwnas comparison: " + ", ".join(names)
        _overlay(doc, runs, names)
    return _write(doc, title)


def _single(doc: Doc, run: Run) -> None:
    section_glance(doc, run)
    doc.heading("Run")
    _section_header(doc, run)
    doc.heading("Pareto fronts")
    series = front_series(run, run.name)
    if len(series.values):
        pairs = "each pair of objectives" if len(run.objectives) > 1 else "the objective over trials"
        doc.figure(
            "fronts.png",
            fronts_figure([series], run.objectives),
            f"All complete trials for {pairs}; Pareto front in red, exported models ringed and labelled with "
            "their ids",
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


def _unique_names(runs: Sequence[Run]) -> list[str]:
    names = [r.name for r in runs]
    if len(set(names)) == len(names):
        return names
    return [str(r.path) for r in runs]


def _common_objectives(runs: Sequence[Run]) -> None:
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


def _overlay(doc: Doc, runs: list[Run], names: list[str]) -> None:
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
    _, common_box = reference_box(runs, reference)
    for run, name in zip(runs, names):
        curve, _ = hypervolume_curve(run, reference, name)
        own, _ = hypervolume_curve(run, run.reference, name)
        _, own_box = reference_box([run], run.reference)
        energy, kg, source = run.total_energy
        search_kwh = curve.energy_kwh[-1] if curve.energy_kwh is not None and len(curve.energy_kwh) else None
        rows.append([
            name, run.dataset, run.strategy, run.profile, str(len(run.trials)),
            str(run.count(TrialState.COMPLETE)), str(run.count(TrialState.FAILED)),
            str(run.count(TrialState.PRUNED)), str(len(run.models)),
            _share(curve.hypervolume, common_box), _share(own.hypervolume, own_box),
            energy_text(energy), mass_text(kg), energy_text(search_kwh), source, run.started,
        ])  # fmt: skip
    headers = [
        "run", "dataset", "strategy", "profile", "trials", "complete", "failed", "pruned", "models",
        "hypervolume (common box)", "hypervolume (own box)", "energy", "CO2e",
        "scoring candidates", "energy source", "started",
    ]  # fmt: skip
    numeric = [False] * 4 + [True] * 10 + [False, False]
    attrs = [f'data-run="{html.escape(n, quote=True)}"' for n in names]
    doc.table(Table(headers, rows, attrs, numeric))
    ref_text = ", ".join(f"{o.name} = {r:.4g}" for o, r in zip(objectives, reference))
    doc.para(f"Common reference point: {ref_text} (per objective, the worst of the runs' references).")
    doc.heading("Pareto fronts")
    series = [front_series(run, name) for run, name in zip(runs, names)]
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


def _share(hv: np.ndarray | Sequence[float], volume: float | None) -> str:
    """The final hypervolume as a share of its reference box (0..1)."""
    last = float(hv[-1]) if len(hv) else 0.0
    return f"{last:.6g}" if volume is None else f"{last / volume:.3f}"


def _reordered(run: Run, objectives: tuple[Objective, ...], reference: list[float]) -> Run:
    from dataclasses import replace

    return replace(run, objectives=objectives, reference=tuple(reference))


def _write(doc: Doc, title: str) -> ReportFiles:
    out = doc.out_dir
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = "\n".join(doc.html_parts)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f'<p class="small">Generated {stamp} by hwnas.</p>\n{body}\n</body></html>\n'
    )
    md = f"# {title}\n\nGenerated {stamp} by hwnas.\n\n" + "\n\n".join(doc.md_parts) + "\n"
    figures = []
    if doc.figures:
        fig_dir = out / FIGURES_DIR
        fig_dir.mkdir(exist_ok=True)
        for name, png in doc.figures.items():
            figures.append(atomic_write(fig_dir / name, png))
    html_path = atomic_write(out / "report.html", page.encode("utf-8"))
    md_path = atomic_write(out / "report.md", md.encode("utf-8"))
    return ReportFiles(html=html_path, md=md_path, figures=tuple(figures))
