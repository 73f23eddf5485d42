"""Strategies by name: the registry, ``strategy_names()`` and ``make_strategy()``."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from search._auto import AutoStrategy
from search._base import Strategy
from search._bayes import BayesStrategy
from search._evolution import EvolutionStrategy
from search._grid import GridStrategy
from search._nsga2 import NSGA2Strategy
from search._optuna import SAMPLERS, OptunaStrategy
from search._random import RandomStrategy
from search._rl import RLStrategy

__all__ = ["STRATEGIES", "make_strategy", "strategy_names"]

#: hwnas's own strategies by name (each a class whose constructor takes keyword options and ``seed``).
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (NSGA2Strategy, RandomStrategy, GridStrategy, EvolutionStrategy, RLStrategy, BayesStrategy)
}
OPTUNA_NAMES = tuple(f"optuna:{s}" for s in SAMPLERS)


def strategy_names() -> list[str]:
    """Every name :func:`make_strategy` accepts: the registered strategies, ``auto`` and ``optuna:NAME``
    (these need Optuna installed only when made)."""
    return [*STRATEGIES, AutoStrategy.name, *OPTUNA_NAMES]


def make_strategy(
    name: str, *, seed: int | None = None, budget: int | None = None, **options: Any
) -> Strategy:
    """The strategy called ``name``, with ``seed`` and its keyword ``options``.

    Args:
        name: one of :func:`strategy_names`: a key of ``STRATEGIES``, ``"auto"`` (picks by ``budget`` and
            the space, see :class:`search.AutoStrategy`) or ``"optuna:tpe"``, ``"optuna:gp"``,
            ``"optuna:nsga2"``, ``"optuna:auto"`` (see :class:`search.OptunaStrategy`; options other than
            ``max_retries`` go to the Optuna sampler).
        seed: seed of the strategy's random state.
        budget: evaluations the search will run; only ``auto`` uses it (others ignore it).
        options: the strategy's constructor options.

    Raises:
        ValueError: an unknown name or option, naming the valid ones; or an option value the strategy
            refuses, with its message.
        ImportError: ``optuna:*`` without Optuna installed, naming the extra to install.

    Example:
        >>> from search import make_strategy
        >>> make_strategy("evolution", seed=0, population_size=10).population_size
        10
        >>> make_strategy("auto", seed=0, budget=500).name
        'auto'
    """
    if name in STRATEGIES:
        cls = STRATEGIES[name]
        _check_options(name, options, [p for p in inspect.signature(cls.__init__).parameters if p != "self"])
        return cls(seed=seed, **options)  # type: ignore[call-arg]
    if name == AutoStrategy.name:
        _check_options(name, options, ["budget", "seed", "population_size"])
        return AutoStrategy(budget=budget, seed=seed, **options)
    if name in OPTUNA_NAMES:
        retries = options.pop("max_retries", 1)
        return OptunaStrategy(
            sampler=name.split(":", 1)[1], seed=seed, max_retries=retries, sampler_options=options
        )
    names = strategy_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown strategy {name!r}{hint} (valid: {', '.join(names)})")


def _check_options(name: str, options: dict[str, Any], params: list[str]) -> None:
    unknown = sorted(set(options) - set(params))
    if unknown:
        valid = [p for p in params if p not in ("seed", "budget")]
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"strategy {name!r} has no option {unknown[0]!r}{hint} (valid: {', '.join(valid) or 'none'})"
        )
