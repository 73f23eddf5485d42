"""Non-dominated sorting and hypervolume, delegated to pymoo."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search._trial import Objective, Trial

__all__ = ["hypervolume", "non_dominated_mask", "pareto_trials"]


def non_dominated_mask(F: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Boolean mask of the rows of ``F`` (``n x m``, all minimized) that no other row dominates.

    Duplicated rows are all kept.

    Example:
        >>> non_dominated_mask([[1, 2], [2, 1], [2, 2]]).tolist()
        [True, True, False]
    """
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, dtype=float)
    mask = np.zeros(len(F), dtype=bool)
    if len(F):
        mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def hypervolume(F: np.ndarray | Sequence[Sequence[float]], reference: np.ndarray | Sequence[float]) -> float:
    """Hypervolume dominated by the rows of ``F`` (``n x m``, minimized) up to ``reference`` (``m``).

    Points not strictly better than the reference on every objective add nothing.

    Example:
        >>> hypervolume([[1.0, 2.0], [2.0, 1.0]], reference=[3.0, 3.0])
        3.0
    """
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float).reshape(-1, len(reference))
    ref = np.asarray(reference, dtype=float)
    F = F[np.all(F < ref, axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref)(F))


def pareto_trials(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """The feasible COMPLETE trials that no other feasible COMPLETE trial dominates.

    When no trial is feasible, the least-violating COMPLETE trials are returned instead (ranked the
    same way), so a search always has something to show.
    """
    done = [t for t in trials if t.values is not None and t.violation is not None]
    feasible = [t for t in done if t.violation == 0.0]
    if not feasible and done:
        least = min(t.violation for t in done)  # type: ignore[type-var]
        feasible = [t for t in done if t.violation == least]
    if not feasible:
        return []
    F = np.array([t.minimized(objectives) for t in feasible])
    return [t for t, keep in zip(feasible, non_dominated_mask(F)) if keep]
