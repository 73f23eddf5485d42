"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search._base import Strategy, Suggestion
from search._space import Space
from search._trial import Objective, Trial

__all__ = ["RandomStrategy"]


class RandomStrategy(Strategy):
    """Draws points uniformly at random, avoiding repeats while the space has unseen points.

    Example:
        >>> from search import Choice, Objective, Space
        >>> s = RandomStrategy(seed=0)
        >>> s.setup(Space({"k": Choice([3, 5])}), [Objective("error")])
        >>> s.ask().params["k"] in (3, 5)
        True
    """

    name = "random"

    def __init__(self, *, seed: int | None = None, max_retries: int = 100) -> None:
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._max_retries = max_retries
        self._seen: set[object] = set()

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        self._seen.clear()

    def ask(self) -> Suggestion:
        space = self.space
        params = space.sample(self._rng)
        if not self.repeats:
            for _ in range(self._max_retries):
                if self.key(params) not in self._seen:
                    break
                params = space.sample(self._rng)
        self._seen.add(self.key(params))
        return Suggestion(params)

    def tell(self, trial: Trial) -> None:
        try:
            self._seen.add(self.key(trial.params))  # an enqueued point is not drawn again either
        except (KeyError, ValueError, TypeError):
            pass  # not a point of this space
