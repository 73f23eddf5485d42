"""Multi-objective search over plain-data spaces: spaces, strategies (ask/tell), Pareto tools, studies.

This package speaks numpy and plain Python only: it never imports torch, onnx, ``nas`` or ``profilers``.

Example:
    >>> from search import Choice, NSGA2Strategy, Space, optimize
    >>> space = Space({"k": Choice([3, 5, 7]), "e": Choice([3, 4, 6])})
    >>> study = optimize(lambda p: (p["k"] * p["e"], -p["k"]), space, ["minimize", "minimize"],
    ...                  NSGA2Strategy(population_size=4, seed=0), budget=8)
    >>> len(study.trials)
    8
"""

from search._base import Strategy, StrategyExhausted, Suggestion
from search._bayes import BayesStrategy
from search._evolution import EvolutionStrategy
from search._grid import GridStrategy
from search._nsga2 import NSGA2Strategy
from search._pareto import hypervolume, non_dominated_mask, pareto_trials
from search._random import RandomStrategy
from search._rl import RLStrategy
from search._space import Choice, Float, Integer, Param, Space
from search._storage import InMemoryStorage, SQLiteStorage, Storage, StorageError
from search._study import Study, optimize
from search._trial import Constraint, Objective, Trial, TrialState

#: Strategies selectable by name (``hwnas search --strategy NAME``).
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (NSGA2Strategy, RandomStrategy, GridStrategy, EvolutionStrategy, RLStrategy, BayesStrategy)
}

__all__ = [
    "STRATEGIES",
    "BayesStrategy",
    "Choice",
    "Constraint",
    "EvolutionStrategy",
    "Float",
    "GridStrategy",
    "InMemoryStorage",
    "Integer",
    "NSGA2Strategy",
    "Objective",
    "Param",
    "RLStrategy",
    "RandomStrategy",
    "SQLiteStorage",
    "Space",
    "Storage",
    "StorageError",
    "Strategy",
    "StrategyExhausted",
    "Study",
    "Suggestion",
    "Trial",
    "TrialState",
    "hypervolume",
    "non_dominated_mask",
    "optimize",
    "pareto_trials",
]
