"""Small operators on points of a space shared by the strategies: keys, fresh samples, mutation."""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable, Mapping
from typing import Any, cast

import numpy as np

from search._space import Choice, Float, Integer, Space

__all__ = ["mutate", "point_key", "sample_many", "sample_new"]

# Local steps of Integer and Float genes: a normal step with this share of the range as its deviation.
_STEP_SHARE = 0.15


def point_key(space: Space, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """A hashable key of a point (1 and 1.0 agree; True and 1 do not)."""
    return tuple([(v is True or v is False, v) for v in map(params.__getitem__, space)])


Key = Callable[[Mapping[str, Any]], Hashable]


def sample_new(
    space: Space,
    rng: np.random.Generator,
    seen: Container[Hashable],
    *,
    tries: int = 100,
    key: Key | None = None,
) -> dict[str, Any]:
    """A uniformly drawn allowed point whose key (``key(params)``, by default :func:`point_key`) is not in
    ``seen``; after ``tries`` draws, the last one drawn."""
    key = key or (lambda q: point_key(space, q))
    params = space.sample(rng)
    for _ in range(tries - 1):
        if key(params) not in seen:
            break
        params = space.sample(rng)
    return params


def sample_many(space: Space, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """``n`` uniform draws at once (as :meth:`Space.sample`, vectorised), forbidden ones left out."""
    columns: list[list[Any]] = []
    for p in space.values():
        if isinstance(p, Choice):
            columns.append([p.values[i] for i in rng.integers(len(p.values), size=n).tolist()])
        elif isinstance(p, Integer):
            columns.append((p.low + p.step * rng.integers(int(p.cardinality()), size=n)).tolist())
        else:
            p = cast(Float, p)  # the only other kind of parameter
            lo, hi = p.bounds()
            x = rng.uniform(lo, hi, size=n)
            if p.log:
                x = np.clip(np.exp(x), p.low, p.high)
            columns.append(np.clip(x, p.low, p.high).astype(float).tolist())
    points = [dict(zip(space, values)) for values in zip(*columns)]
    return [q for q in points if not space.is_forbidden(q)] if space.forbid else points


def mutate(
    space: Space,
    params: Mapping[str, Any],
    rng: np.random.Generator,
    *,
    rate: float | None = None,
    seen: Container[Hashable] = (),
    tries: int = 20,
    key: Key | None = None,
) -> dict[str, Any] | None:
    """A mutant of ``params``: each gene changes with probability ``rate`` (``1 / len(space)`` by default),
    at least one. A ``Choice`` gene takes another value uniformly; an ``Integer`` or ``Float`` gene takes a
    normal step (15% of its encoded range, so log-scaled for ``Float(log=True)``).

    Returns an allowed point different from ``params`` whose key (``key(child)``, by default
    :func:`point_key`) is not in ``seen``, or ``None`` when ``tries`` attempts found none (every gene
    fixed, or the neighbourhood used up).
    """
    key = key or (lambda q: point_key(space, q))
    names = [n for n in space if space[n].cardinality() > 1]
    if not names:
        return None
    p_gene = 1.0 / len(names) if rate is None else rate
    parent = dict(params)
    for _ in range(tries):
        flips = [n for n in names if rng.random() < p_gene]
        if not flips:
            flips = [names[int(rng.integers(len(names)))]]
        child = dict(parent)
        for name in flips:
            child[name] = _mutate_gene(space[name], child[name], rng)
        if child != parent and not space.is_forbidden(child) and (not seen or key(child) not in seen):
            return child
    return None


def _mutate_gene(p: Any, value: Any, rng: np.random.Generator) -> Any:
    if isinstance(p, Choice):
        i = p.index(value)
        j = int(rng.integers(len(p.values) - 1))
        return p.values[j + (j >= i)]
    if isinstance(p, Integer):
        n = int(p.cardinality())
        k = (value - p.low) // p.step
        step = round(float(rng.normal(0.0, max(1.0, _STEP_SHARE * (n - 1)))))
        if step == 0:
            step = 1 if rng.random() < 0.5 else -1
        k2 = int(np.clip(k + step, 0, n - 1))
        if k2 == k:  # clipped back onto the parent at a bound: step the other way
            k2 = int(np.clip(k - step, 0, n - 1))
        return p.low + p.step * k2
    if isinstance(p, Float):
        lo, hi = p.bounds()
        return p.decode(float(np.clip(p.encode(value) + rng.normal(0.0, _STEP_SHARE * (hi - lo)), lo, hi)))
    raise TypeError(f"cannot mutate a {type(p).__name__}")
