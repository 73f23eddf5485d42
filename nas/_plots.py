"""Pareto front plots (matplotlib, no display needed)."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from pathlib import Path

from search import Study, TrialState


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
    for ax, (i, j) in zip(axes[0], pairs):
        label = lambda k: (
            f"{objectives[k].name} ({objectives[k].unit})" if objectives[k].unit else objectives[k].name
        )  # noqa: E731
        if i == j:
            ax.plot([t.number for t in done], [t.values[i] for t in done], ".", color="0.6")
            ax.set_xlabel("trial")
            ax.set_ylabel(label(i))
            continue
        feas = [t for t in done if t.violation == 0.0]
        infeas = [t for t in done if t.violation != 0.0]
        ax.scatter(
            [t.values[j] for t in feas], [t.values[i] for t in feas], s=12, color="0.65", label="evaluated"
        )
        if infeas:
            ax.scatter(
                [t.values[j] for t in infeas],
                [t.values[i] for t in infeas],
                s=12,
                facecolors="none",
                edgecolors="0.65",
                label="infeasible",
            )
        pts = sorted((t.values[j], t.values[i]) for t in done if t.number in front)
        if pts:
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="tab:red", lw=1, alpha=0.6)
        hi = [t for t in done if t.number in highlight]
        ax.scatter(
            [t.values[j] for t in hi],
            [t.values[i] for t in hi],
            s=40,
            color="tab:red",
            zorder=3,
            label="Pareto (exported)",
        )
        ax.set_xlabel(label(j))
        ax.set_ylabel(label(i))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{len(done)} trials, {len(front)} on the Pareto front")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(name: str, unit: str) -> str:
    """``error (%)``; a unit already in the name (``latency_ms``) is not repeated."""
    return name if not unit or name.endswith(f"_{unit}") else f"{name} ({unit})"
