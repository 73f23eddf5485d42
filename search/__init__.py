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

from search._auto import AutoStrategy
from search._base import Canonical, NetworkMap, Strategy, StrategyExhausted, Suggestion
from search._bayes import BayesStrategy
from search._evolution import EvolutionStrategy
from search._factory import STRATEGIES, make_strategy, strategy_names
from search._grid import GridStrategy
from search._nsga2 import NSGA2Strategy
from search._optuna import OptunaStrategy
from search._pareto import hypervolume, non_dominated_mask, pareto_trials
from search._random import RandomStrategy
from search._rl import RLStrategy
from search._space import Choice, Float, Integer, Param, Space
from search._storage import InMemoryStorage, SQLiteStorage, Storage, StorageError
from search._study import Study, optimize
from search._trial import Constraint, Objective, Trial, TrialState

__all__ = [
    "STRATEGIES",
    "AutoStrategy",
    "BayesStrategy",
    "Canonical",
    "Choice",
    "Constraint",
    "EvolutionStrategy",
    "Float",
    "GridStrategy",
    "InMemoryStorage",
    "Integer",
    "NSGA2Strategy",
    "NetworkMap",
    "Objective",
    "OptunaStrategy",
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
    "make_strategy",
    "non_dominated_mask",
    "optimize",
    "pareto_trials",
    "strategy_names",
]
