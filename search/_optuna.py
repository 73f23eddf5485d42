"""Optuna's samplers as strategies: ``optuna:tpe``, ``optuna:gp``, ``optuna:nsga2``, ``optuna:auto``.

Optuna is imported when a strategy is set up, never by ``import search``; without it, the constructor
raises an ``ImportError`` that names the extra to install.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from search._base import Strategy, Suggestion
from search._operators import mutate, sample_new
from search._space import Choice, Float, Integer, Space
from search._trial import Objective, Trial, TrialState

__all__ = ["OptunaStrategy", "require_optuna"]

SAMPLERS = ("tpe", "gp", "nsga2", "auto")
_TRIAL = "optuna_trial"  # the suggestion attribute that carries Optuna's trial number
_VIOLATION = "hwnas_violation"


def require_optuna() -> None:
    """Raises ``ImportError`` naming the extra to install when Optuna cannot be imported."""
    try:
        import optuna  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "the optuna:* strategies need Optuna: pip install 'hwnas[bench]' (or pip install optuna)"
        ) from e


class OptunaStrategy(Strategy):
    """One of Optuna's samplers behind the ask/tell contract, with hwnas's storage, resume and constraints.

    ``sampler`` picks it: ``"tpe"`` is ``TPESampler(multivariate=True)``, ``"gp"`` ``GPSampler`` (which
    imports torch through Optuna), ``"nsga2"`` ``NSGAIISampler`` and ``"auto"`` the sampler
    ``optuna.create_study`` uses when given none (a univariate ``TPESampler`` in Optuna 5), each seeded
    with ``seed`` and given ``sampler_options`` as keyword arguments. Every objective is handed to
    Optuna minimized; constraint violations reach the sampler as one constraint (``set_constraint``; a
    ``constraints_func`` before Optuna 5).

    The space becomes Optuna distributions: a ``Choice`` of increasing numbers an integer index (ordinal,
    as hwnas encodes it), any other ``Choice`` a categorical distribution, ``Integer`` and ``Float`` their
    counterparts (log scale kept). A point the space forbids, or one proposed or told before (by
    :meth:`Strategy.key`, so by canonical architecture when the study gives one), is not evaluated:
    Optuna is told it failed and asked again, up to ``max_retries`` times, after which an unseen neighbour
    of its last proposal (one gene or more changed, as :func:`search._operators.mutate`), or failing that
    an unseen uniform draw, is evaluated instead and given to Optuna as its trial. Late in a TPE search
    most proposals are known points: retrying the sampler ten times cost 15x TPE's own time per trial
    at 500 trials, one retry and a neighbour keep it close (BENCHMARKS.md (l)).

    Trials the strategy did not propose (enqueued by a person, or evaluated before a resume) are added
    to Optuna's study as finished trials.

    Args:
        sampler: ``"tpe"``, ``"gp"``, ``"nsga2"`` or ``"auto"``.
        max_retries: Optuna proposals tried again per ask before an unseen neighbour is taken.
        seed: seed of the sampler and of the fallback draws.
        sampler_options: keyword arguments of the Optuna sampler (``n_startup_trials=20``, ...).

    Example:
        >>> from search import Choice, OptunaStrategy, Space, optimize
        >>> space = Space({"k": Choice([3, 5, 7]), "e": Choice(["a", "b"])})
        >>> study = optimize(lambda p: (p["k"], p["e"] == "a"), space, ["minimize", "minimize"],
        ...                  OptunaStrategy(sampler="nsga2", seed=0), budget=5)  # doctest: +SKIP
    """

    name = "optuna"

    def __init__(
        self,
        *,
        sampler: str = "tpe",
        max_retries: int = 1,
        seed: int | None = None,
        sampler_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        require_optuna()
        self.sampler = sampler
        self.name = f"optuna:{sampler}"  # type: ignore[misc]  # the study records it, per sampler
        self.max_retries = max_retries
        self.sampler_options = dict(sampler_options or {})
        self._seed = seed
        self._make_sampler(1)  # a wrong option fails here, with Optuna's own message

    def _make_sampler(self, n_objectives: int) -> Any:
        import optuna

        options = dict(self.sampler_options)
        if not _has_set_constraint(optuna):  # before Optuna 5, constraints reach samplers through a function
            options.setdefault("constraints_func", _constraints)
        try:
            if self.sampler == "tpe":
                options.setdefault("multivariate", True)
                return optuna.samplers.TPESampler(seed=self._seed, **options)
            if self.sampler == "gp":
                return optuna.samplers.GPSampler(seed=self._seed, **options)
            if self.sampler == "nsga2":
                return optuna.samplers.NSGAIISampler(seed=self._seed, **options)
            default = type(
                _quiet(lambda: optuna.create_study(directions=["minimize"] * n_objectives)).sampler
            )
            return default(seed=self._seed, **options)
        except TypeError as e:
            raise ValueError(f"optuna:{self.sampler}: {e}") from None

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._dists, self._decoders, self._encoders = _distributions(space)
        self._study = _quiet(
            lambda: optuna.create_study(
                directions=["minimize"] * len(objectives), sampler=self._make_sampler(len(objectives))
            )
        )
        self._rng = np.random.default_rng(self._seed)
        self._seen: set[Any] = set()
        self._open: dict[int, Any] = {}  # Optuna trial number -> its trial, while hwnas evaluates it

    # -- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> Suggestion:
        import optuna

        space = self.space
        last: dict[str, Any] | None = None
        params: dict[str, Any] | None
        for _ in range(self.max_retries + 1):
            ot = _quiet(lambda: self._study.ask(self._dists))
            params = {name: self._decoders[name](ot.params[name]) for name in space}
            if not space.is_forbidden(params) and (self.repeats or self.key(params) not in self._seen):
                return self._hand_out(ot, params)
            self._study.tell(ot, state=optuna.trial.TrialState.FAIL)
            last = params
        seen = () if self.repeats else self._seen
        # the sampler insists on known points: an unseen neighbour of its proposal (it wanted that region),
        # else an unseen uniform draw
        params = mutate(space, last, self._rng, seen=seen, key=self.key) if last is not None else None
        if params is None:
            params = sample_new(space, self._rng, seen, key=self.key, tries=1000)
        self._study.enqueue_trial({name: self._encoders[name](params[name]) for name in space})
        ot = _quiet(lambda: self._study.ask(self._dists))
        return self._hand_out(ot, params)

    def _hand_out(self, ot: Any, params: dict[str, Any]) -> Suggestion:
        self._seen.add(self.key(params))
        self._open[ot.number] = ot
        return Suggestion(params, attrs={_TRIAL: ot.number})

    def tell(self, trial: Trial) -> None:
        import optuna

        try:
            key = self.key(trial.params)
            encoded = {name: self._encoders[name](trial.params[name]) for name in self.space}
        except (KeyError, ValueError, TypeError):
            return  # not a point of this space
        self._seen.add(key)
        complete = trial.state is TrialState.COMPLETE and trial.values is not None
        values = list(trial.minimized(self.objectives)) if complete else None
        violation = float(trial.violation or 0.0) if complete else math.inf
        number = trial.attrs.get(_TRIAL)
        ot = self._open.pop(number, None) if isinstance(number, int) else None
        if ot is None:  # someone else's trial: add it to Optuna's history as finished
            state = optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL
            extra: dict[str, Any] = (
                {"constraints": {"hwnas": _finite(violation)}} if _has_set_constraint(optuna) else {}
            )
            frozen = optuna.trial.create_trial(
                params=encoded,
                distributions=self._dists,
                values=values if complete else None,
                state=state,
                user_attrs={_VIOLATION: _finite(violation)},
                **extra,
            )
            self._study.add_trial(frozen)
            return
        ot.set_user_attr(_VIOLATION, _finite(violation))
        if _has_set_constraint(optuna):
            ot.set_constraint("hwnas", _finite(violation))
        if complete:
            self._study.tell(ot, values)
        else:
            self._study.tell(ot, state=optuna.trial.TrialState.FAIL)


def _has_set_constraint(optuna: Any) -> bool:
    return hasattr(optuna.trial.Trial, "set_constraint")


def _constraints(frozen: Any) -> Sequence[float]:
    """Optuna's view of hwnas's constraints: one value, feasible when <= 0."""
    return [float(frozen.user_attrs.get(_VIOLATION, 0.0))]


def _finite(v: float) -> float:
    return 1e30 if math.isinf(v) else v


def _quiet(fn: Callable[[], Any]) -> Any:
    """Runs ``fn`` with Optuna's experimental-feature warnings silenced."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return fn()


def _at_index(values: Sequence[Any], i: Any) -> Any:
    return values[int(i)]


def _choice_value(p: Choice, v: Any) -> Any:
    return p.values[p.index(v)]


def _distributions(
    space: Space,
) -> tuple[dict[str, Any], dict[str, Callable[[Any], Any]], dict[str, Callable[[Any], Any]]]:
    """Optuna distributions of the space, with decoders (Optuna's value -> ours) and encoders."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists: dict[str, Any] = {}
    dec: dict[str, Callable[[Any], Any]] = {}
    enc: dict[str, Callable[[Any], Any]] = {}
    for name, p in space.items():
        if isinstance(p, Choice):
            vals = p.values
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
            if len(vals) > 1 and numeric and all(a < b for a, b in itertools.pairwise(vals)):
                dists[name] = IntDistribution(0, len(vals) - 1)
                dec[name] = functools.partial(_at_index, vals)
                enc[name] = p.index
            else:
                dists[name] = CategoricalDistribution(list(vals))
                dec[name] = functools.partial(_choice_value, p)
                enc[name] = functools.partial(_choice_value, p)
        elif isinstance(p, Integer):
            dists[name] = IntDistribution(p.low, p.high, step=p.step)
            dec[name] = enc[name] = int
        elif isinstance(p, Float):
            dists[name] = FloatDistribution(p.low, p.high, log=p.log)
            dec[name] = enc[name] = float
        else:  # pragma: no cover - every Param is one of the three
            raise TypeError(f"no Optuna distribution for {type(p).__name__}")
    return dists, dec, enc
