"""Importance of each searched choice for an objective: a functional ANOVA of a random forest.

A random forest (scikit-learn) is fitted on the encoded parameters of the complete trials. For every tree,
the variance of the tree's prediction over the whole space (each parameter uniform over its domain) is split
into the variances of its one-parameter marginals, as in fANOVA (Hutter, Hoos and Leyton-Brown, ICML 2014).
A parameter's importance is the share of the variance its marginal explains, averaged over the trees and
normalized so that the importances of all parameters sum to 1.

Works for any study: plain hyperparameters (``lr``, ``batch_size``) as well as the many flat choices of a
supernet space (``width``, ``depth_<s>``, ``kernel_<s>_<b>``, ``expand_<s>_<b>``), which
:func:`group_importance` sums into one figure per kind of choice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from search import Choice, Float, Integer, Space, Trial, TrialState

__all__ = ["MIN_IMPORTANCE_TRIALS", "group_importance", "param_group", "param_importance"]

#: Fewest complete trials with a finite objective value that an importance is computed from.
MIN_IMPORTANCE_TRIALS = 10

_INDEXED_SUFFIX = re.compile(r"(_\d+)+$")


def param_group(name: str) -> str:
    """The group of a parameter: its name without trailing ``_<index>`` parts.

    Example:
        >>> [param_group(n) for n in ("kernel_2_1", "depth_0", "width", "batch_size")]
        ['kernel', 'depth', 'width', 'batch_size']
    """
    return _INDEXED_SUFFIX.sub("", name) or name


def group_importance(
    importance: Mapping[str, float], group: Callable[[str], str] | Mapping[str, str] = param_group
) -> dict[str, float]:
    """Sums the importances of the parameters of each group, largest first.

    Args:
        importance: ``{param: importance}``, as :func:`param_importance` returns it.
        group: maps a parameter name to its group name (a function, or a dict; names it lacks are their
            own group). By default trailing indices are dropped (``kernel_2_1`` -> ``kernel``).

    Example:
        >>> group_importance({"kernel_0_0": 0.25, "kernel_1_0": 0.25, "width": 0.5})
        {'kernel': 0.5, 'width': 0.5}
    """
    of = (lambda n: group.get(n, n)) if isinstance(group, Mapping) else group
    out: dict[str, float] = {}
    for name, value in importance.items():
        key = of(name)
        out[key] = out.get(key, 0.0) + float(value)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def param_importance(
    trials: Sequence[Trial],
    objective: str,
    *,
    space: Space | None = None,
    n_trees: int = 64,
    seed: int = 0,
    min_trials: int = MIN_IMPORTANCE_TRIALS,
) -> dict[str, float]:
    """Share of the variance of ``objective`` that each parameter explains alone, largest first.

    Only COMPLETE trials whose metrics hold a finite ``objective`` are used, and only the parameters that
    every one of them has. Importances are non-negative and sum to 1.

    Args:
        trials: trials of one study (any order).
        objective: name of a metric of the trials (an objective or any other reported number).
        space: the study's space; it fixes each parameter's encoding and domain. Without it, numeric values
            are used as they are over their observed range and other values by their sorted position.
        n_trees: trees of the random forest.
        seed: seed of the random forest.
        min_trials: fewest usable trials; fewer raise ``ValueError``.

    Raises:
        ValueError: too few usable trials, no parameters, or an objective that never varies.

    Example:
        >>> from search import Trial, TrialState
        >>> trials = [Trial(i, {"x": i % 4, "y": i % 3}, state=TrialState.COMPLETE,
        ...                 metrics={"loss": float(i % 4)}) for i in range(24)]
        >>> imp = param_importance(trials, "loss")
        >>> max(imp, key=imp.get), round(sum(imp.values()), 6)
        ('x', 1.0)
    """
    if n_trees < 1:
        raise ValueError(f"n_trees must be at least 1, got {n_trees}")
    if min_trials < 2:
        raise ValueError(f"min_trials must be at least 2, got {min_trials}")
    used = [t for t in trials if t.state is TrialState.COMPLETE and _finite(t.metrics.get(objective))]
    if len(used) < min_trials:
        raise ValueError(
            f"importance of {objective!r} needs at least {min_trials} complete trials with that metric, "
            f"got {len(used)}"
        )
    names = [n for n in used[0].params if all(n in t.params for t in used)]
    if not names:
        raise ValueError("the trials share no parameter: nothing to rank")
    X, lo, hi = _encode(used, names, space)
    y = np.array([float(t.metrics[objective]) for t in used])
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        raise ValueError(f"{objective!r} has the same value in every trial: no parameter explains it")

    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(
        n_estimators=n_trees, max_depth=64, min_samples_leaf=1, bootstrap=True, random_state=seed, n_jobs=1
    )
    forest.fit(X, y)
    totals = np.zeros(len(names))
    counted = 0
    for estimator in forest.estimators_:
        shares = _tree_main_effects(estimator.tree_, lo, hi)
        if shares is not None:
            totals += shares
            counted += 1
    if counted == 0 or totals.sum() <= 0.0:
        raise ValueError(f"no parameter explains any variance of {objective!r} in these trials")
    shares = totals / totals.sum()
    return dict(sorted(zip(names, shares.tolist()), key=lambda kv: -kv[1]))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _encode(trials: Sequence[Trial], names: Sequence[str], space: Space | None) -> tuple[np.ndarray, ...]:
    """Encoded params (``n x d``) and the lower / upper bounds (``d``) of each parameter's domain."""
    X = np.empty((len(trials), len(names)))
    lo = np.empty(len(names))
    hi = np.empty(len(names))
    for j, name in enumerate(names):
        values = [t.params[name] for t in trials]
        param = space.get(name) if space is not None else None
        encoded = _encode_with(param, values) if param is not None else None
        if encoded is None:
            encoded = _encode_observed(values)
        X[:, j], lo[j], hi[j] = encoded
        if hi[j] <= lo[j]:
            lo[j], hi[j] = lo[j] - 0.5, hi[j] + 0.5
    return X, lo, hi


def _encode_with(param: Any, values: Sequence[Any]) -> tuple[np.ndarray, float, float] | None:
    """Values encoded as the space encodes them, with the domain of the encoding; ``None`` if they do not fit."""
    try:
        x = np.array([param.encode(v) for v in values], dtype=float)
    except (ValueError, TypeError):
        return None
    lo, hi = param.bounds()
    if isinstance(param, Choice):  # every index owns a unit-wide cell: uniform over the choices
        return x, lo - 0.5, hi + 0.5
    if isinstance(param, Integer):
        return x, lo - 0.5 * param.step, hi + 0.5 * param.step
    return (x, lo, hi) if isinstance(param, Float) else None


def _encode_observed(values: Sequence[Any]) -> tuple[np.ndarray, float, float]:
    if all(_finite(v) for v in values):
        x = np.array(values, dtype=float)
        return x, float(x.min()), float(x.max())
    levels = sorted({repr(v) for v in values})
    index = {level: i for i, level in enumerate(levels)}
    return np.array([index[repr(v)] for v in values], dtype=float), -0.5, len(levels) - 0.5


def _tree_main_effects(tree: Any, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """Variance share of each feature's marginal in one fitted sklearn tree; ``None`` for a constant tree.

    The tree is read as a partition of the box ``[lo, hi]`` into leaf boxes. The marginal of feature ``i``
    at ``x_i`` is the volume-weighted mean of the leaves whose box contains ``x_i``; it is piecewise
    constant between the tree's split points on ``i``.
    """
    left, right = tree.children_left, tree.children_right
    feature, threshold = tree.feature, tree.threshold
    value = tree.value[:, 0, 0]
    d = len(lo)
    leaf_lo: list[np.ndarray] = []
    leaf_hi: list[np.ndarray] = []
    leaf_v: list[float] = []
    stack = [(0, lo.copy(), hi.copy())]
    while stack:
        node, blo, bhi = stack.pop()
        if left[node] == right[node]:  # a leaf
            leaf_lo.append(blo)
            leaf_hi.append(bhi)
            leaf_v.append(float(value[node]))
            continue
        f, t = int(feature[node]), float(threshold[node])
        lhi, rlo = bhi.copy(), blo.copy()
        lhi[f] = min(bhi[f], t)  # x <= t goes left
        rlo[f] = max(blo[f], t)
        stack.append((int(left[node]), blo, lhi))
        stack.append((int(right[node]), rlo, bhi))
    llo, lhi_, v = np.array(leaf_lo), np.array(leaf_hi), np.array(leaf_v)
    widths = np.clip(lhi_ - llo, 0.0, None) / (hi - lo)  # n_leaves x d, shares of each domain
    weight = widths.prod(axis=1)
    if weight.sum() <= 0.0:
        return None
    weight = weight / weight.sum()
    mean = float(weight @ v)
    total = float(weight @ (v - mean) ** 2)
    if total <= 1e-14 * max(1.0, mean * mean):
        return None
    shares = np.zeros(d)
    for i in np.unique(feature[feature >= 0]):
        cuts = threshold[feature == i]
        edges = np.unique(np.concatenate([[lo[i], hi[i]], cuts[(cuts > lo[i]) & (cuts < hi[i])]]))
        mids = 0.5 * (edges[:-1] + edges[1:])
        lengths = np.diff(edges) / (hi[i] - lo[i])
        others = np.prod(np.delete(widths, i, axis=1), axis=1)  # share of the other dimensions
        inside = (llo[:, i][None, :] < mids[:, None]) & (mids[:, None] < lhi_[:, i][None, :])
        marginal = inside @ (others * v) / np.maximum(inside @ others, 1e-300)
        shares[i] = float(lengths @ (marginal - mean) ** 2) / total
    return shares
