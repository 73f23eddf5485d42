"""Regularised (aging) evolution with multi-objective tournament selection."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from search._base import Strategy, Suggestion
from search._operators import mutate, sample_new
from search._ranking import feasible_first_order
from search._space import Space
from search._trial import Objective, Trial, TrialState

__all__ = ["EvolutionStrategy"]


class EvolutionStrategy(Strategy):
    """Regularised evolution (Real et al. 2019), made multi-objective by its tournament.

    The population is the last ``population_size`` trials told (aging: the oldest leaves whatever its
    quality, which keeps the search exploring). The first ``population_size`` proposals are drawn
    uniformly. After that, each proposal samples ``sample_size`` members of the population, takes the best
    of them and mutates it: feasible before infeasible, then lower non-dominated rank, then larger crowding
    distance, all computed over the whole population (infeasible members ranked by violation; FAILED
    trials are infeasible and age out like any other). A mutation changes each gene with probability
    ``mutation_rate`` (at least one gene; see :func:`search._operators.mutate`). Points already proposed
    are not proposed again while unseen mutants or unseen random points can be found. PRUNED trials (no
    values) do not join the population.

    Args:
        population_size: members kept (P); also the number of random proposals that start the search.
        sample_size: tournament size (S), at most ``population_size``; ``None`` is ``min(5, population_size)``.
        mutation_rate: probability that each gene mutates; ``None`` is ``1 / number of parameters``.
        seed: seed of the strategy's random state.

    Example:
        >>> from search import Choice, EvolutionStrategy, Integer, Space, optimize
        >>> space = Space({"k": Choice([3, 5, 7]), "d": Integer(1, 8)})
        >>> study = optimize(lambda p: (p["k"] * p["d"], -p["d"]), space, ["minimize", "minimize"],
        ...                  EvolutionStrategy(population_size=6, sample_size=3, seed=0), budget=20)
        >>> len(study.trials)
        20
    """

    name = "evolution"

    def __init__(
        self,
        *,
        population_size: int = 20,
        sample_size: int | None = None,
        mutation_rate: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {population_size}")
        if sample_size is None:
            sample_size = min(5, population_size)
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"sample_size must be in [1, population_size={population_size}], got {sample_size}"
            )
        if mutation_rate is not None and not 0.0 < mutation_rate <= 1.0:
            raise ValueError(f"mutation_rate must be in (0, 1] or None, got {mutation_rate}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_rate = mutation_rate
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        # (params, minimized values or zeros, violation) of the last P trials told.
        self._population: deque[tuple[dict[str, Any], np.ndarray, float]] = deque(maxlen=population_size)
        self._order: np.ndarray | None = None  # rank position of each member; None when stale
        self._seen: set[Any] = set()
        self._asked = 0

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        self._rng = np.random.default_rng(self._seed)
        self._population.clear()
        self._order, self._seen, self._asked = None, set(), 0

    @property
    def population(self) -> list[dict[str, Any]]:
        """The current members' params, oldest first."""
        return [dict(p) for p, _, _ in self._population]

    def ask(self) -> Suggestion:
        space = self.space
        self._asked += 1
        child: dict[str, Any] | None = None
        seen = () if self.repeats else self._seen
        if self._asked > self.population_size and self._population:
            parent = self._tournament()
            child = mutate(space, parent, self._rng, rate=self.mutation_rate, seen=seen, key=self.key)
            if child is None and not self.repeats:  # the parent's neighbourhood is used up: try the others
                for other in self._ranked_members():
                    child = mutate(
                        space, other, self._rng, rate=self.mutation_rate, seen=seen, key=self.key, tries=5
                    )
                    if child is not None:
                        break
        if child is None:
            child = sample_new(space, self._rng, seen, key=self.key, tries=1000 if seen else 1)
        self._seen.add(self.key(child))
        return Suggestion(child)

    def tell(self, trial: Trial) -> None:
        if trial.state is TrialState.COMPLETE and trial.values is not None:
            f = np.asarray(trial.minimized(self.objectives), dtype=float)
            violation = float(trial.violation or 0.0)
        elif trial.state is TrialState.FAILED:
            f, violation = np.zeros(len(self.objectives)), float("inf")
        else:
            return
        self._population.append((dict(trial.params), f, violation))
        self._seen.add(self.key(trial.params))
        self._order = None

    def _ranked_members(self) -> list[dict[str, Any]]:
        """The population's params, best first (the tournament's order)."""
        self._rank()
        assert self._order is not None
        return [self._population[i][0] for i in np.argsort(self._order, kind="stable").tolist()]

    def _rank(self) -> None:
        if self._order is None:
            F = np.array([f for _, f, _ in self._population])
            v = np.array([v for _, _, v in self._population])
            ranked = feasible_first_order(F, v)
            self._order = np.empty(len(ranked), dtype=int)
            self._order[ranked] = np.arange(len(ranked))

    def _tournament(self) -> dict[str, Any]:
        self._rank()
        assert self._order is not None
        n = len(self._population)
        contestants = self._rng.choice(n, size=min(self.sample_size, n), replace=False)
        winner = int(contestants[np.argmin(self._order[contestants])])
        return self._population[winner][0]
