"""Pareto front plots (matplotlib, no display needed)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator, ScalarFormatter

from nas._atomic import atomic_write
from nas.report._units import _ENERGY, axis_scale, scale_for
from search import Objective, Study, Trial, TrialState


def _values(trial: Trial) -> tuple[float, ...]:
    """The objective values of a completed trial (the plots keep only trials that have them)."""
    assert trial.values is not None
    return trial.values


def plot_front(study: Study, path: str | Path, *, highlight: Collection[int] = ()) -> Path:
    """Scatter of every completed trial for each pair of objectives, Pareto trials joined by a step line.

    Trials in ``highlight`` (the exported models) are drawn as large red dots; infeasible trials are
    hollow. With one objective the plot shows it over trials instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = study.objectives
    done = [t for t in study.trials if t.state is TrialState.COMPLETE and t.values is not None]
    front = {t.number for t in study.best_trials}
    pairs = list(itertools.combinations(range(len(objectives)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.2), squeeze=False)
    scales = [axis_scale(o, [_values(t)[k] for t in done]) for k, o in enumerate(objectives)]
    done = [t.replace(values=tuple(v * s[1] for v, s in zip(_values(t), scales))) for t in done]
    for ax, (i, j) in zip(axes[0], pairs):

        def label(k: int) -> str:
            return scales[k][0]

        if i == j:
            ax.plot([t.number for t in done], [_values(t)[i] for t in done], ".", color="0.6")
            ax.set_xlabel("trial")
            ax.set_ylabel(label(i))
            tidy_ticks(ax, y_counts=scales[i][2])
            continue
        feas = [t for t in done if t.violation == 0.0]
        infeas = [t for t in done if t.violation != 0.0]
        ax.scatter(
            [_values(t)[j] for t in feas],
            [_values(t)[i] for t in feas],
            s=12,
            color="0.65",
            label="evaluated",
        )
        if infeas:
            ax.scatter(
                [_values(t)[j] for t in infeas],
                [_values(t)[i] for t in infeas],
                s=12,
                facecolors="none",
                edgecolors="0.65",
                label="infeasible",
            )
        pts = sorted((_values(t)[j], _values(t)[i]) for t in done if t.number in front)
        if pts:
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="tab:red", lw=1, alpha=0.6)
        hi = [t for t in done if t.number in highlight]
        ax.scatter(
            [_values(t)[j] for t in hi],
            [_values(t)[i] for t in hi],
            s=40,
            color="tab:red",
            zorder=3,
            label="Pareto (exported)",
        )
        for t in hi:
            _id_label(ax, _values(t)[j], _values(t)[i], t.number)
        ax.set_xlabel(label(j))
        ax.set_ylabel(label(i))
        tidy_ticks(ax, x_counts=scales[j][2], y_counts=scales[i][2])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{len(done)} trials, {len(front)} on the Pareto front")
    fig.tight_layout()
    path = Path(path)
    try:  # atomically: a failed write keeps the previous plot and leaves no temporary file
        kind = path.suffix.lstrip(".") or "png"
        atomic_write(path, lambda fh: fig.savefig(fh, format=kind, dpi=110), mode="wb")
    finally:
        plt.close(fig)
    return path


def tidy_ticks(ax: Axes, *, x_counts: bool = False, y_counts: bool = False) -> None:
    """At most six ticks per axis, counts with SI prefixes (``1.2M``), no offset: labels that never overlap."""
    for axis, counts in ((ax.xaxis, x_counts), (ax.yaxis, y_counts)):
        axis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=3))
        axis.set_major_formatter(EngFormatter(sep="") if counts else ScalarFormatter(useOffset=False))


def _id_label(ax: Axes, x: float, y: float, ident: int) -> None:
    """The model id next to its point on the front."""
    ax.annotate(
        str(ident), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8, color="0.15", zorder=5
    )


def _label(name: str, unit: str) -> str:
    """``error (%)``; a unit already in the name (``latency_ms``) is not repeated."""
    return name if not unit or name.endswith(f"_{unit}") else f"{name} ({unit})"


# -- report figures: plain data in, a matplotlib Figure out (no pyplot state, no display) -----------------


@dataclass(frozen=True)
class FrontSeries:
    """The evaluated points of one run, in the objectives' own directions.

    Attributes:
        name: run name, shown in legends when several runs are overlaid.
        values: ``n x m`` objective values of the COMPLETE trials.
        feasible: ``n`` booleans, False for trials that violate a constraint.
        on_front: ``n`` booleans, True for the Pareto-optimal feasible trials.
        exported: ``n`` booleans, True for the trials exported as models.
    """

    name: str
    values: np.ndarray
    feasible: np.ndarray
    on_front: np.ndarray
    exported: np.ndarray
    #: ``n`` trial numbers (the exported models' ids)
    ids: np.ndarray | None = None


@dataclass(frozen=True)
class HypervolumeCurve:
    """Hypervolume after each finished trial, optionally against the cumulative energy spent (kWh)."""

    name: str
    trials: np.ndarray
    hypervolume: np.ndarray
    energy_kwh: np.ndarray | None = None


def figure_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def fronts_figure(series: Sequence[FrontSeries], objectives: Sequence[Objective]) -> Figure:
    """One panel per pair of objectives: every evaluated point, the Pareto points, the exported models.

    With one series, evaluated points are grey, the front red and exported models ringed; with several,
    each run has its own colour and the legend names the runs. With two objectives the front is joined by
    a step line. With one objective the panel shows it over trials.
    """
    m = len(objectives)
    pairs = list(itertools.combinations(range(m), 2)) or [(0, 0)]
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = Figure(figsize=(5.0 * cols, 4.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    overlay = len(series) > 1
    scales = [axis_scale(o, np.concatenate([s.values[:, k] for s in series])) for k, o in enumerate(objectives)]
    factors = np.array([f for _, f, _ in scales])
    step = m == 2 and all(o.direction == "minimize" for o in objectives)
    for ax, (i, j) in zip(axes, pairs):
        for k, s in enumerate(series):
            colour = _COLOURS[k % len(_COLOURS)] if overlay else "tab:red"
            other = colour if overlay else "0.65"
            prefix = f"{s.name}: " if overlay else ""
            v, feas, front, exp = s.values * factors, s.feasible, s.on_front, s.exported
            if i == j:
                ax.plot(np.arange(len(v)), v[:, i], ".", color=other, alpha=0.5 if overlay else 1.0)
                ax.plot(np.flatnonzero(exp), v[exp, i], "o", color=colour, label=f"{prefix}exported")
                ax.set_xlabel("complete trial")
                ax.set_ylabel(scales[i][0])
                tidy_ticks(ax, y_counts=scales[i][2])
                continue
            alpha = 0.3 if overlay else 1.0
            ax.scatter(
                v[feas, j], v[feas, i], s=10, color=other, alpha=alpha, label=None if overlay else "evaluated"
            )
            if (~feas).any():
                ax.scatter(
                    v[~feas, j], v[~feas, i], s=10, facecolors="none", edgecolors=other, alpha=alpha,
                    label=None if overlay else "infeasible",
                )  # fmt: skip
            if step and front.any():
                pts = sorted(zip(v[front, j], v[front, i]))
                ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color=colour, lw=1, alpha=0.7)
            ax.scatter(v[front, j], v[front, i], s=22, color=colour, zorder=3, label=f"{prefix}Pareto front")
            if not overlay and exp.any():
                ax.scatter(
                    v[exp, j], v[exp, i], s=90, facecolors="none", edgecolors="black", lw=1.2, zorder=4,
                    label="exported model (id)",
                )  # fmt: skip
                if s.ids is not None:
                    for row in np.flatnonzero(exp):
                        _id_label(ax, v[row, j], v[row, i], int(s.ids[row]))
        if i != j:
            ax.set_xlabel(scales[j][0])
            ax.set_ylabel(scales[i][0])
            tidy_ticks(ax, x_counts=scales[j][2], y_counts=scales[i][2])
            ax.margins(0.1)  # room for the id labels of the extreme points
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def parallel_figure(series: FrontSeries, objectives: Sequence[Objective]) -> Figure:
    """Parallel coordinates of the feasible points: one axis per objective, scaled to its observed range."""
    m = len(objectives)
    fig = Figure(figsize=(max(6.0, 2.2 * m), 4.2))
    ax = fig.subplots()
    v = series.values
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (v - lo) / span
    x = np.arange(m)
    for row in scaled[series.feasible & ~series.on_front]:
        ax.plot(x, row, color="0.7", lw=0.6, alpha=0.6)
    for row in scaled[series.on_front]:
        ax.plot(x, row, color="tab:red", lw=1.6, alpha=0.9)
    ax.plot([], [], color="0.7", label="evaluated")
    ax.plot([], [], color="tab:red", label="Pareto front")
    scales = [axis_scale(o, v[:, k]) for k, o in enumerate(objectives)]
    ax.set_xticks(x, [label.replace(" (", "\n(", 1) for label, _, _ in scales], fontsize=9)
    for k in range(m):
        ax.axvline(k, color="0.3", lw=0.8)
        f = scales[k][1]
        ax.annotate(f"{lo[k] * f:.4g}", (k, 0), xytext=(3, -12), textcoords="offset points", fontsize=7)
        ax.annotate(f"{hi[k] * f:.4g}", (k, 1), xytext=(3, 4), textcoords="offset points", fontsize=7)
    ax.set_yticks([0, 1], ["min", "max"])
    ax.set_ylim(-0.08, 1.1)
    ax.set_xlim(-0.1, m - 0.6)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def hypervolume_figure(curves: Sequence[HypervolumeCurve]) -> Figure:
    """Hypervolume over finished trials (left) and over cumulative search energy (right)."""
    fig = Figure(figsize=(10.4, 3.8))
    left, right = fig.subplots(1, 2)
    overlay = len(curves) > 1
    unit, size = scale_for(
        [float(c.energy_kwh[-1]) for c in curves if c.energy_kwh is not None and len(c.energy_kwh)], _ENERGY
    )
    for k, c in enumerate(curves):
        colour = _COLOURS[k % len(_COLOURS)] if overlay else "tab:blue"
        left.step(c.trials, c.hypervolume, where="post", color=colour, label=c.name)
        if c.energy_kwh is not None:
            right.step(c.energy_kwh / size, c.hypervolume, where="post", color=colour, label=c.name)
    left.set_xlabel("Finished trials")
    left.set_ylabel("Hypervolume (share of the box)")
    right.set_xlabel(f"Energy spent evaluating candidates ({unit})")
    right.set_ylabel("Hypervolume (share of the box)")
    for ax in (left, right):
        tidy_ticks(ax)
        ax.set_ylim(bottom=0)
    left.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, min_n_ticks=2))
    if not any(c.energy_kwh is not None for c in curves):
        right.text(
            0.5, 0.5, "energy per trial not recorded", ha="center", va="center", transform=right.transAxes
        )
        right.set_xticks([])
        right.set_yticks([])
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if overlay and ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def importance_figure(importance: Mapping[str, Mapping[str, float]]) -> Figure:
    """One horizontal bar chart per objective: ``{objective: {name: importance}}``."""
    n = max(1, len(importance))
    height = max(2.4, 0.32 * max((len(v) for v in importance.values()), default=1) + 1.2)
    fig = Figure(figsize=(min(4.2 * n, 14.0), height))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (objective, values) in zip(axes, importance.items()):
        names = list(values)[::-1]
        ax.barh(names, [values[k] for k in names], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_title(objective, fontsize=10)
        ax.set_xlabel("share of variance")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def energy_figure(bars: Sequence[tuple[str, float, str]]) -> Figure:
    """Horizontal bars of energy, each ``(label, kWh, method)``, in the unit that suits the largest; the method
    is written on the bar."""
    fig = Figure(figsize=(8.0, max(2.0, 0.45 * len(bars) + 1.0)))
    ax = fig.subplots()
    unit, size = scale_for([b[1] for b in bars], _ENERGY)
    labels = [b[0] for b in bars][::-1]
    values = [b[1] / size for b in bars][::-1]
    methods = [b[2] for b in bars][::-1]
    colours = ["tab:orange" if "estimate" in mth else "tab:green" for mth in methods]
    ax.barh(labels, values, color=colours)
    top = max(values, default=0.0) or 1.0
    for y, (value, method) in enumerate(zip(values, methods)):
        ax.text(value + 0.01 * top, y, f"{value:.3g} {unit} ({method})", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel(f"Energy ({unit})")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=3))  # the y axis names the phases
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


_COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
)
