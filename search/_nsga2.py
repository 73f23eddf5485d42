"""NSGA-II from pymoo, driven one point at a time through ask/tell."""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from search._base import Strategy, Suggestion
from search._space import Space
from search._trial import Objective, Trial, TrialState

__all__ = ["NSGA2Strategy"]

# What a FAILED trial looks like to pymoo: worst on every objective and far outside every constraint,
# so survival ranks it last; NaN never reaches the algorithm.
_FAILED_VALUE = 1e30
# Generations in a row made only of points evaluated before, after which the population starts afresh.
_MAX_KNOWN_GENERATIONS = 2


class _SpaceProblem(Problem):  # type: ignore[misc]  # pymoo has no type information
    """A pymoo problem that only declares the encoded space; evaluation happens outside, through tell."""

    def __init__(self, space: Space, n_obj: int) -> None:
        xl, xu = space.bounds()
        super().__init__(n_var=len(space), n_obj=n_obj, n_ieq_constr=1, xl=xl, xu=xu)


class _SpaceSampling(Sampling):  # type: ignore[misc]  # pymoo has no type information
    """Initial population drawn from the space itself (log scale and steps honoured)."""

    def __init__(self, space: Space) -> None:
        super().__init__()
        self._space = space

    def _do(
        self,
        problem: Problem,
        n_samples: int,
        random_state: np.random.Generator | None = None,
        **kwargs: object,
    ) -> np.ndarray:
        rng = random_state if random_state is not None else np.random.default_rng()
        return np.array([self._space.encode(self._space.sample(rng)) for _ in range(n_samples)], dtype=float)


class _SnapToSpace(Repair):  # type: ignore[misc]  # pymoo has no type information
    """Rounds discrete dimensions to the nearest valid value after crossover and mutation, and replaces a
    point that the space forbids by a fresh draw from the space (with the algorithm's random state)."""

    def __init__(self, space: Space) -> None:
        super().__init__()
        self._space = space

    def _do(self, problem: Problem, X: np.ndarray, **kwargs: object) -> np.ndarray:
        rng = kwargs.get("random_state")
        out = []
        for x in X:
            params = self._space.decode(x)
            if self._space.is_forbidden(params):
                if not isinstance(rng, np.random.Generator):  # pymoo always passes one; stay deterministic
                    rng = np.random.default_rng(zlib.crc32(np.asarray(x, dtype=float).tobytes()))
                params = self._space.sample(rng)
            out.append(self._space.encode(params))
        return np.array(out, dtype=float).reshape(len(X), -1)


class NSGA2Strategy(Strategy):
    """NSGA-II (Deb et al. 2002) from pymoo: non-dominated sorting and crowding distance survival.

    Points are encoded as vectors (choice index, integer value, real value), recombined by simulated
    binary crossover and polynomial mutation, then snapped back into the space (a child that the space
    forbids is replaced by a fresh draw from the space). Duplicates of earlier points are eliminated by
    pymoo. A generation of ``population_size`` points is asked one by one; the next generation is bred
    when all of them have been told, so ``ask`` returns ``None`` while some are still pending.

    Args:
        population_size: points per generation (the first one is sampled uniformly).
        crossover_prob: probability that a pair of parents is recombined.
        crossover_eta: SBX distribution index (smaller spreads children further from parents).
        mutation_eta: polynomial mutation distribution index.
        seed: seed of the algorithm's random state.

    Example:
        >>> from search import Choice, Objective, Space
        >>> s = NSGA2Strategy(population_size=4, seed=0)
        >>> s.setup(Space({"k": Choice([3, 5, 7]), "e": Choice([3, 4, 6])}), [Objective("a"), Objective("b")])
        >>> s.ask().params["k"] in (3, 5, 7)
        True
    """

    name = "nsga2"

    def __init__(
        self,
        *,
        population_size: int = 16,
        crossover_prob: float = 0.9,
        crossover_eta: float = 3.0,
        mutation_eta: float = 3.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {population_size}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self._crossover_prob = crossover_prob
        self._crossover_eta = crossover_eta
        self._mutation_eta = mutation_eta
        self._seed = seed
        self._algorithm: object | None = None
        self._batch: Population | None = None
        self._queue: deque[int] = deque()
        self._told: dict[int, tuple[np.ndarray, float]] = {}
        self._memory: dict[Any, tuple[np.ndarray, float]] = {}  # identity -> told result
        self._alias: dict[int, int] = {}  # member -> the member of its generation with the same identity
        self.generation = 0

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.termination import get_termination

        repair = _SnapToSpace(space)
        algorithm = NSGA2(
            pop_size=self.population_size,
            sampling=_SpaceSampling(space),
            crossover=SBX(prob=self._crossover_prob, eta=self._crossover_eta, vtype=float, repair=repair),
            mutation=PM(eta=self._mutation_eta, vtype=float, repair=repair),
            repair=repair,
            eliminate_duplicates=True,
            seed=self._seed,
        )
        # In a small discrete space pymoo may retry mating up to 100 times to fill a generation with children
        # new to the population; one round is enough, as ask() skips children evaluated before anyway (this
        # cut the cost per trial 3x on a 3,072-point space, with a better front: BENCHMARKS.md (d)).
        algorithm.mating.n_max_iterations = 1
        # The study decides when to stop; pymoo's own termination must never end the run first.
        algorithm.setup(_SpaceProblem(space, len(objectives)), termination=get_termination("n_gen", 10**9))
        self._algorithm = algorithm
        self._batch, self._queue, self._told, self._memory = None, deque(), {}, {}
        self._alias = {}
        self.generation = 0

    def ask(self) -> Suggestion | None:
        if self._algorithm is None:
            raise RuntimeError("NSGA2Strategy.setup(space, objectives) has not been called")
        known_generations = 0
        while not self._queue:
            if self._batch is not None:
                return None  # this generation still has members in flight
            batch = self._algorithm.ask()  # type: ignore[attr-defined]
            exhausted = known_generations >= _MAX_KNOWN_GENERATIONS
            if batch is None or len(batch) == 0 or exhausted:
                # No new child (duplicate elimination, or only points seen before): the population has
                # converged. Start afresh.
                rng = self._algorithm.random_state  # type: ignore[attr-defined]
                fresh, keys = [], set()
                for _ in range(4 * self.population_size):  # new points first, while the space has some
                    point = self.space.sample(rng)
                    key = self.key(point)
                    if key not in self._memory and key not in keys:
                        fresh.append(self.space.encode(point))
                        keys.add(key)
                        if len(fresh) == self.population_size:
                            break
                exhausted = not fresh
                while len(fresh) < (self.population_size if exhausted else 1):
                    fresh.append(self.space.encode(self.space.sample(rng)))
                batch = Population.new(X=np.array(fresh))
                known_generations = 0
            self._batch = batch
            self._queue = deque()
            self._told = {}
            self._alias = {}
            # pymoo removes duplicates within a generation only; a child evaluated in an earlier one gets
            # its stored result instead of a trial, so the budget goes to new points. Children with the same
            # identity (canonical architecture) share one trial.
            queued: dict[Any, int] = {}
            for i in range(len(batch)):
                key = self.key(self.space.decode(batch[i].X))
                seen = self._memory.get(key)
                if exhausted or self.repeats:  # a small space may hold nothing new: repeat points then
                    self._queue.append(i)
                elif seen is not None:
                    self._told[i] = seen
                elif key in queued:
                    self._alias[i] = queued[key]
                else:
                    queued[key] = i
                    self._queue.append(i)
            if not self._queue:
                known_generations += 1
                self._finish_generation()
        index = self._queue.popleft()
        assert self._batch is not None  # the loop above leaves a generation with a queue
        x = self._batch[index].X
        return Suggestion(self.space.decode(x), attrs={"generation": self.generation, "member": index})

    def tell(self, trial: Trial) -> None:
        if trial.state is TrialState.COMPLETE and trial.values is not None:
            f = np.asarray(trial.minimized(self.objectives), dtype=float)
            violation = float(trial.violation or 0.0)
        else:
            f = np.full(len(self.objectives), _FAILED_VALUE)
            violation = _FAILED_VALUE
        result = (f, min(violation, _FAILED_VALUE))
        if trial.state is not TrialState.PRUNED and trial.fidelity >= 1.0:
            try:
                self._memory[self.key(trial.params)] = result  # never proposed again: its result is known
            except (KeyError, ValueError, TypeError):
                pass  # not a point of this space
        index = trial.attrs.get("member")
        if self._batch is None or index is None or trial.attrs.get("generation") != self.generation:
            return  # a point this strategy did not ask for (enqueued by a person): remembered only
        self._told[index] = result
        for member, twin in self._alias.items():
            if twin == index:
                self._told[member] = result
        if len(self._told) == len(self._batch) and not self._queue:
            self._finish_generation()

    def _finish_generation(self) -> None:
        """Hands the generation's results to pymoo (survival of the fittest) and moves on."""
        assert self._batch is not None and self._algorithm is not None
        F = np.array([self._told[i][0] for i in range(len(self._batch))])
        G = np.array([[self._told[i][1]] for i in range(len(self._batch))])
        self._batch.set("F", F, "G", G)
        for ind in self._batch:
            ind.evaluated.update({"F", "G", "H"})  # pymoo derives CV and feasibility from G
        self._algorithm.tell(infills=self._batch)  # type: ignore[attr-defined]
        self._batch = None
        self.generation += 1
