"""Grid search: every combination of the parameters' values, once each."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search._base import Strategy, StrategyExhausted, Suggestion
from search._space import Space
from search._trial import Objective, Trial

__all__ = ["GridStrategy"]


class GridStrategy(Strategy):
    """Proposes every point of a grid over the space exactly once, shuffled by the seed or in order.

    Every value of a ``Choice`` and of an ``Integer`` is on the grid; a ``Float`` is discretised into
    ``points_per_float`` values evenly spaced in its encoding (log-spaced for ``Float(log=True)``), bounds
    included. Forbidden points are skipped, and so are points already told by someone else (enqueued by a
    person) and points whose identity (:meth:`Strategy.key`: the canonical architecture, when the study
    maps points to one) was proposed before. The grid is never repeated: once every point has been proposed, ``ask`` returns ``None``
    while some are still being evaluated, then raises :class:`search.StrategyExhausted`.

    Each suggestion's ``attrs["grid_index"]`` is the point's position in the grid in
    ``itertools.product`` order (the last parameter varies fastest).

    Args:
        points_per_float: values per ``Float`` parameter (at least 1; one is the middle of the range).
        shuffle: visit the grid in a random order drawn from ``seed`` (else in product order).
        max_points: largest grid accepted; :meth:`setup` refuses a larger one.
        seed: seed of the shuffle.

    Example:
        >>> from search import Choice, Float, Objective, Space
        >>> s = GridStrategy(points_per_float=3, shuffle=False)
        >>> s.setup(Space({"k": Choice([3, 5]), "lr": Float(1e-3, 1e-1, log=True)}), [Objective("error")])
        >>> [s.ask().params for _ in range(3)]
        [{'k': 3, 'lr': 0.001}, {'k': 3, 'lr': 0.01}, {'k': 3, 'lr': 0.1}]
    """

    name = "grid"

    def __init__(
        self,
        *,
        points_per_float: int = 5,
        shuffle: bool = True,
        max_points: int = 100_000,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if points_per_float < 1:
            raise ValueError(f"points_per_float must be at least 1, got {points_per_float}")
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        self.points_per_float = points_per_float
        self.shuffle = shuffle
        self.max_points = max_points
        self._seed = seed
        self._levels: list[list[Any]] = []
        self._order = np.zeros(0, dtype=np.int64)
        self._cursor = 0
        self._pending: set[int] = set()
        self._keys: set[Any] = set()  # identities proposed or told

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        self._levels = [p.grid(None if p.discrete else self.points_per_float) for p in space.values()]
        size = math.prod(len(v) for v in self._levels)
        if size > self.max_points:
            sizes = " x ".join(f"{n}={len(v)}" for n, v in zip(space, self._levels))
            raise ValueError(
                f"the grid has {size:,} points ({sizes}), more than max_points={self.max_points:,}; "
                "lower points_per_float, narrow the Integer ranges, or raise max_points"
            )
        rng = np.random.default_rng(self._seed)
        self._order = rng.permutation(size) if self.shuffle else np.arange(size)
        self._cursor = 0
        self._pending = set()
        self._keys = set()

    @property
    def size(self) -> int:
        """Number of points on the grid (forbidden ones included)."""
        return len(self._order)

    def point(self, index: int) -> dict[str, Any]:
        """The grid point at ``index`` (``itertools.product`` order)."""
        params: dict[str, Any] = {}
        for name, values in reversed(list(zip(self.space, self._levels))):
            index, k = divmod(index, len(values))
            params[name] = values[k]
        return {name: params[name] for name in self.space}

    def ask(self) -> Suggestion | None:
        space = self.space
        while self._cursor < len(self._order):
            index = int(self._order[self._cursor])
            params = self.point(index)
            if space.is_forbidden(params) or self.key(params) in self._keys:
                self._cursor += 1
                continue
            self._cursor += 1
            self._pending.add(index)
            self._keys.add(self.key(params))
            return Suggestion(params, attrs={"grid_index": index})
        if self._pending:
            return None
        raise StrategyExhausted(
            f"every point of the {len(self._order):,}-point grid has been proposed; "
            "raise points_per_float or widen the space to search further"
        )

    def tell(self, trial: Trial) -> None:
        index = trial.attrs.get("grid_index")
        if isinstance(index, int) and index in self._pending:
            self._pending.discard(index)
        else:  # someone else's point: never propose it again
            try:
                self._keys.add(self.key(trial.params))
            except (KeyError, ValueError, TypeError):
                pass
