"""Feasible-first multi-objective ranking: non-dominated rank, then crowding distance or hypervolume share.

Shared by the strategies that select (evolution's tournament, successive halving's promotions). Values
are minimized; a row is feasible when its violation is exactly 0.0 and infeasible rows (FAILED trials
carry ``inf``) always come after every feasible row, least violating first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search._pareto import hypervolume

__all__ = ["crowding_distance", "feasible_first_order", "hypervolume_contributions", "pareto_ranks"]

TIE_BREAKS = ("crowding", "hypervolume")


def pareto_ranks(F: np.ndarray) -> np.ndarray:
    """Front index of each row of ``F`` (``n x m``, minimized): 0 for the non-dominated rows, and so on.

    pymoo's (compiled) non-dominated sorting where every value is finite; otherwise (a FAILED row's
    ``inf``, a ``nan``) a dominance matrix in numpy, where ``inf`` is compared as a number and a row with
    ``nan`` neither dominates nor is dominated.
    """
    F = np.asarray(F, dtype=float)
    n = len(F)
    ranks = np.zeros(n, dtype=int)
    if n <= 1:
        return ranks
    if np.isfinite(F).all():
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        for r, front in enumerate(NonDominatedSorting().do(F)):
            ranks[front] = r
        return ranks
    # dominates[i, j]: row i is no worse than row j everywhere and better somewhere
    dominates = np.all(F[:, None, :] <= F[None, :, :], axis=2) & np.any(F[:, None, :] < F[None, :, :], axis=2)
    count = dominates.sum(axis=0)  # rows dominating each row, among those not yet ranked
    ranks[:] = -1
    front = np.flatnonzero(count == 0)
    r = 0
    while front.size:
        ranks[front] = r
        count = count - dominates[front].sum(axis=0)
        count[front] = -1
        front = np.flatnonzero(count == 0)
        r += 1
    return ranks


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance (Deb et al. 2002) of each row of ``F`` (``n x m``), within this set of rows.

    Boundary rows get ``inf``; an objective on which all rows agree adds nothing.

    Example:
        >>> crowding_distance(np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])).tolist()
        [inf, 2.0, inf]
    """
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        f = F[order, j]
        span = f[-1] - f[0]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (f[2:] - f[:-2]) / span
    return d


def hypervolume_contributions(F: np.ndarray) -> np.ndarray:
    """Exclusive hypervolume contribution of each row of ``F`` (``n x m``), after normalising the rows to
    ``[0, 1]`` per objective, with the reference point at 1.1 on every objective."""
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    if n == 1:
        return np.array([np.inf])
    lo, hi = F.min(axis=0), F.max(axis=0)
    G = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
    ref = [1.1] * m
    total = hypervolume(G, ref)
    return np.array([total - hypervolume(np.delete(G, i, axis=0), ref) for i in range(n)])


def feasible_first_order(
    F: np.ndarray | Sequence[Sequence[float]],
    violation: np.ndarray | Sequence[float],
    *,
    tie_break: str = "crowding",
) -> np.ndarray:
    """Indices of the rows best first: feasible rows by non-dominated rank, then by ``tie_break`` (larger
    crowding distance or hypervolume contribution first) within a front; then infeasible rows by violation.

    Ties keep the row order. ``F`` of infeasible rows is ignored (it may hold anything finite).

    Example:
        >>> feasible_first_order([[1, 1], [0, 0], [2, 0], [0, 2]], [0.0, 5.0, 0.0, 0.0]).tolist()
        [2, 3, 0, 1]
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    F = np.asarray(F, dtype=float)
    v = np.asarray(violation, dtype=float)
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=int)
    F = F.reshape(n, -1)
    feasible = np.flatnonzero(v == 0.0)
    infeasible = np.flatnonzero(v != 0.0)
    order: list[np.ndarray] = []
    if len(feasible):
        ranks = pareto_ranks(F[feasible])
        for r in range(int(ranks.max()) + 1):
            members = feasible[ranks == r]
            if len(members) > 2 or (len(members) == 2 and tie_break == "hypervolume"):
                spread = (
                    crowding_distance(F[members])
                    if tie_break == "crowding"
                    else hypervolume_contributions(F[members])
                )
                members = members[np.argsort(-spread, kind="stable")]
            order.append(members)
    order.append(infeasible[np.argsort(v[infeasible], kind="stable")])
    return np.concatenate(order).astype(int)
