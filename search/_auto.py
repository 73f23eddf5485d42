"""``auto``: the strategy that the benchmarks show best for a budget and a space, chosen at setup."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from search._base import Strategy, Suggestion
from search._encoding import unordered_choice
from search._space import Space
from search._trial import Objective, Trial

__all__ = ["AutoStrategy", "choose"]

#: Budget assumed when none is given: the number of trials ``hwnas search`` runs by default.
DEFAULT_BUDGET = 120
#: Largest budget at which the Gaussian-process strategy is picked: for one to three objectives, and for more
#: in a space with unordered choices; otherwise the smaller one (see BENCHMARKS.md (l)).
GP_MAX_BUDGET = 500
GP_MAX_BUDGET_MANY_OBJECTIVES = 200
#: Uniform draws before the GPs take over when ``auto`` runs the hypervolume improvement for three objectives
#: or more (``bayes``'s own default is 10): lower regret at 50, 100 and 200 evaluations on the three- and
#: four-objective NAS-Bench-201 problems, level at 500 (BENCHMARKS.md (l)).
MANY_OBJECTIVES_INITIAL = 20


def choose(space: Space, n_objectives: int, budget: int | None) -> tuple[str, dict[str, Any], str]:
    """The strategy ``auto`` runs: ``(name, options, why)``.

    From the NAS-Bench-201 and ZDT/DTLZ figures in BENCHMARKS.md (d) and (l):

    - one or two objectives and a budget of at most 500 evaluations (or none given: 120 assumed):
      ``bayes``, the lowest median regret of every strategy, ours and Optuna's, at 50, 100, 200 and 500
      evaluations on the five two-objective device problems, and best or level with the best on the tabular
      problem and ZDT;
    - three objectives or more and a space with an unordered choice (a ``Choice`` of more than two values
      that are not increasing numbers, such as operations), at most 500 evaluations: ``bayes`` with the
      hypervolume improvement (``ehvi_many=True``, and so ranks as its scaling), after 20 uniform draws
      instead of 10. On the three- and the four-objective NAS-Bench-201 problems (six choices of operation)
      it has the lowest regret of every strategy measured at 50, 100, 200 and 500 evaluations (at 500: 0.08,
      0.08 and 0.17 %, ``nsga2`` 0.30, 0.20 and 0.47 %);
    - three objectives and numbers only, at most 500 evaluations: ``bayes`` with its random scalarisations,
      the lowest regret at every budget on DTLZ2, below ``nsga2`` at 500 there;
    - four objectives or more and numbers only: ``bayes`` up to 200 evaluations (not measured beyond);
    - a larger budget: ``nsga2``, whose cost per trial stays flat (the GP's grows with the data; beyond 500
      it was not measured).

    Every strategy covers a space smaller than the budget before repeating a point, so a small space
    needs no rule of its own.
    """
    b = DEFAULT_BUDGET if budget is None else budget
    given = "" if budget is not None else f" (none given: {DEFAULT_BUDGET} assumed)"
    with_objectives = f"{n_objectives} objective{'s' if n_objectives != 1 else ''}"
    unordered = [name for name, p in space.items() if unordered_choice(p)] if n_objectives >= 3 else []
    limit = GP_MAX_BUDGET if n_objectives <= 3 or unordered else GP_MAX_BUDGET_MANY_OBJECTIVES
    if b > limit:
        return "nsga2", {}, f"a budget of {b} evaluations{given} is over {limit} for {with_objectives}"
    why = f"a budget of {b} evaluations{given} is at most {limit} for {with_objectives}"
    if n_objectives < 3:
        return "bayes", {}, why
    if unordered:
        more = f" and {len(unordered) - 1} more" if len(unordered) > 1 else ""
        options = {"ehvi_many": True, "n_initial": MANY_OBJECTIVES_INITIAL}
        return "bayes", options, f"{why}; unordered choices ({unordered[0]}{more})"
    return "bayes", {}, f"{why}; no unordered choice"


class AutoStrategy(Strategy):
    """Runs the strategy that fits the budget and the space, as :func:`choose` picks it at setup.

    What it picked is its :attr:`chosen` name, the :attr:`options` it was made with and :meth:`describe` (a
    line for logs and the report); every ask and tell goes to that strategy, which gets this one's seed and,
    from the study, the same canonical map and ``repeats`` setting.

    Args:
        budget: evaluations the search will run (``None``: 120 assumed).
        seed: seed of the chosen strategy.
        population_size: passed to the chosen strategy where it has a population (``nsga2``), else unused.

    Example:
        >>> from search import AutoStrategy, Choice, Objective, Space
        >>> s = AutoStrategy(budget=100, seed=0)
        >>> s.setup(Space({f"e{i}": Choice(list(range(5))) for i in range(6)}), [Objective("a"), Objective("b")])
        >>> s.chosen
        'bayes'
    """

    name = "auto"

    def __init__(
        self, *, budget: int | None = None, seed: int | None = None, population_size: int | None = None
    ) -> None:
        super().__init__()
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ValueError(f"budget must be a positive integer or None, got {budget!r}")
        if population_size is not None and (
            isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2
        ):
            raise ValueError(f"population_size must be an integer of at least 2 or None, got {population_size!r}")
        self.budget = budget
        self.population_size = population_size
        self._seed = seed
        self._inner: Strategy | None = None
        self.chosen: str | None = None
        self.options: dict[str, Any] = {}
        self._why = ""

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        from search._factory import STRATEGIES, make_strategy

        name, options, why = choose(space, len(objectives), self.budget)
        if self.population_size is not None and "population_size" in inspect.signature(STRATEGIES[name]).parameters:
            options = {**options, "population_size": self.population_size}
        inner = make_strategy(name, seed=self._seed, **options)
        inner.configure(canonical=self._canonical, repeats=self.repeats, network=self.network)
        inner.setup(space, objectives)
        self._inner, self.chosen, self._why = inner, name, why
        self.options = dict(options)

    def describe(self) -> str:
        """``"auto: bayes (a budget of 100 evaluations is at most 500 for 2 objectives)"``, with the options
        after the name where there are some (``"auto: bayes, ehvi_many=True (...)"``), or a note before
        setup."""
        if self.chosen is None:
            return "auto: nothing chosen yet (the strategy is chosen when the study sets it up)"
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"auto: {self.chosen}{options} ({self._why})"

    @property
    def inner(self) -> Strategy:
        if self._inner is None:
            raise RuntimeError("AutoStrategy.setup(space, objectives) has not been called")
        return self._inner

    def ask(self) -> Suggestion | None:
        return self.inner.ask()

    def tell(self, trial: Trial) -> None:
        self.inner.tell(trial)

    def __getattr__(self, name: str) -> Any:
        # brackets, population, policy(): what the chosen strategy offers, read through
        if name.startswith("_") or self.__dict__.get("_inner") is None:
            raise AttributeError(name)
        return getattr(self.__dict__["_inner"], name)
