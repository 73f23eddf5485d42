"""A study: one search, driven by ask/tell, with ``optimize`` written on top of them."""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from search._base import Strategy, Suggestion
from search._pareto import hypervolume, pareto_trials
from search._space import Space
from search._storage import InMemoryStorage, Storage
from search._trial import Constraint, Objective, Trial, TrialState

__all__ = ["Study", "optimize"]

ObjectiveFn = Callable[[Trial], Mapping[str, Any]]
Callback = Callable[["Study", Trial], None]


class Study:
    """Asks a strategy for points, records their results, and knows the Pareto front so far.

    ``ask()`` hands out a RUNNING trial; ``tell(trial, metrics)`` finishes it. Metrics are a dict of
    numbers that must contain every objective's name (other metrics are stored too). A missing,
    NaN or infinite objective value makes the trial FAILED with that reason; the strategy then sees a
    failed trial, never a NaN. ``annotate(params)``, when given, adds JSON-ready attributes to each
    new trial (a supernet search stores the canonical arch this way).

    Example:
        >>> from search import Choice, Objective, RandomStrategy, Space, Study
        >>> study = Study(space=Space({"x": Choice([1, 2, 3])}),
        ...               objectives=[Objective("a"), Objective("b")], strategy=RandomStrategy(seed=0))
        >>> study.optimize(lambda t: {"a": t.params["x"], "b": -t.params["x"]}, n_trials=3)
        >>> len(study.best_trials)
        3
    """

    def __init__(
        self,
        *,
        space: Space,
        objectives: Sequence[Objective],
        strategy: Strategy,
        constraints: Sequence[Constraint] = (),
        storage: Storage | None = None,
        annotate: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        if not objectives:
            raise ValueError("a study needs at least one objective")
        names = [o.name for o in objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must be distinct, got {names}")
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.strategy = strategy
        self.storage = storage if storage is not None else InMemoryStorage()
        self._annotate = annotate
        self._enqueued: deque[Suggestion] = deque()
        strategy.setup(space, self.objectives)
        self.storage.set_meta("space", space.to_dict())
        self.storage.set_meta("objectives", [o.to_dict() for o in self.objectives])
        self.storage.set_meta("constraints", [str(c) for c in self.constraints])
        self.storage.set_meta("strategy", strategy.name or type(strategy).__name__)

    # -- ask / tell ----------------------------------------------------------------------------------
    def enqueue(self, params: Mapping[str, Any], *, fidelity: float = 1.0) -> None:
        """Evaluates ``params`` next, before anything the strategy proposes."""
        self.space.validate(params)
        self._enqueued.append(Suggestion(dict(params), fidelity))

    def ask(self) -> Trial | None:
        """A new RUNNING trial, or ``None`` when the strategy waits for pending results."""
        suggestion = self._enqueued.popleft() if self._enqueued else self.strategy.ask()
        if suggestion is None:
            return None
        trial = Trial(
            number=self.storage.count(),
            params=dict(suggestion.params),
            fidelity=suggestion.fidelity,
            started_at=time.time(),
            attrs={**suggestion.attrs, **(self._annotate(suggestion.params) if self._annotate else {})},
        )
        self.storage.add_trial(trial)
        return trial

    def tell(
        self,
        trial: Trial | int,
        metrics: Mapping[str, Any] | None = None,
        *,
        state: TrialState | None = None,
        error: str | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Trial:
        """Finishes a trial with its metrics (COMPLETE) or an error (FAILED), and informs the strategy."""
        number = trial if isinstance(trial, int) else trial.number
        current = self.storage.get_trial(number)
        if current.state.finished:
            raise ValueError(f"trial {number} is already {current.state.value}")
        metrics = dict(metrics or {})
        values: tuple[float, ...] | None = None
        violation: float | None = None
        if state is None:
            state = TrialState.FAILED if error else TrialState.COMPLETE
        if state is TrialState.COMPLETE:
            problem = _check_values(metrics, self.objectives)
            if problem:
                state, error = TrialState.FAILED, problem
            else:
                values = tuple(float(metrics[o.name]) for o in self.objectives)
                violation = float(sum(c.violation(metrics) for c in self.constraints))
        done = current.replace(
            state=state,
            values=values,
            metrics=metrics,
            violation=violation,
            error=error,
            finished_at=time.time(),
            attrs={**current.attrs, **(attrs or {})},
        )
        self.storage.update_trial(done)
        self.strategy.tell(done)
        return done

    # -- results -------------------------------------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        return self.storage.trials()

    @property
    def best_trials(self) -> list[Trial]:
        """The Pareto-optimal feasible trials (see :func:`search.pareto_trials`)."""
        return pareto_trials(self.trials, self.objectives)

    def hypervolume(self, reference: Sequence[float] | None = None) -> float:
        """Hypervolume of the feasible front, in minimized objective space.

        ``reference`` is given in the objectives' own directions; by default each objective's
        ``reference`` attribute is used.
        """
        if reference is None:
            if any(o.reference is None for o in self.objectives):
                raise ValueError("give a reference point, or set Objective.reference on every objective")
            reference = [float(o.reference) for o in self.objectives]  # type: ignore[arg-type]
        ref = [o.sign * r for o, r in zip(self.objectives, reference)]
        front = [t for t in self.best_trials if t.feasible]
        if not front:
            return 0.0
        return hypervolume(np.array([t.minimized(self.objectives) for t in front]), ref)

    # -- the loop ------------------------------------------------------------------------------------
    def optimize(
        self,
        objective: ObjectiveFn,
        *,
        n_trials: int,
        executor: cf.Executor | None = None,
        n_parallel: int = 1,
        callbacks: Iterable[Callback] = (),
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Runs ``n_trials`` more trials through ask/tell.

        Args:
            objective: maps a RUNNING trial to its metrics. An exception, or a NaN / infinite / missing
                objective value, fails that trial only; the search goes on.
            n_trials: trials to run in this call.
            executor: where evaluations run; ``None`` runs them in this process, one at a time.
            n_parallel: evaluations in flight at once when an executor is given.
            callbacks: called as ``callback(study, finished_trial)`` after each trial.
            should_stop: polled between trials; returning True ends the loop after the trials in flight.
        """
        if n_trials < 0:
            raise ValueError(f"n_trials must be >= 0, got {n_trials}")
        callbacks = tuple(callbacks)

        def finish(trial: Trial, result: Mapping[str, Any] | None, err: str | None) -> None:
            done = self.tell(trial, result, error=err) if err is None else self.tell(trial, error=err)
            for cb in callbacks:
                cb(self, done)

        if executor is None:
            for _ in range(n_trials):
                if should_stop is not None and should_stop():
                    return
                trial = self.ask()
                if trial is None:
                    raise RuntimeError(f"{type(self.strategy).__name__} proposed nothing with no trial in flight")
                result, err = _run(objective, trial)
                finish(trial, result, err)
            return

        if n_parallel < 1:
            raise ValueError(f"n_parallel must be >= 1, got {n_parallel}")
        in_flight: dict[cf.Future[Mapping[str, Any]], Trial] = {}
        started = 0
        while started < n_trials or in_flight:
            stopping = should_stop is not None and should_stop()
            while not stopping and started < n_trials and len(in_flight) < n_parallel:
                trial = self.ask()
                if trial is None:
                    break
                in_flight[executor.submit(objective, trial)] = trial
                started += 1
            if not in_flight:
                if stopping or started >= n_trials:
                    return
                raise RuntimeError(f"{type(self.strategy).__name__} proposed nothing with no trial in flight")
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for future in done:
                trial = in_flight.pop(future)
                exc = future.exception()
                if exc is None:
                    finish(trial, future.result(), None)
                else:
                    finish(trial, None, _describe(exc))


def _run(objective: ObjectiveFn, trial: Trial) -> tuple[Mapping[str, Any] | None, str | None]:
    try:
        result = objective(trial)
    except Exception as e:  # one failing candidate never ends a search
        return None, _describe(e)
    if not isinstance(result, Mapping):
        return None, f"the objective returned {type(result).__name__}, expected a dict of metrics"
    return result, None


def _describe(e: BaseException) -> str:
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"


def _check_values(metrics: Mapping[str, Any], objectives: Sequence[Objective]) -> str | None:
    for o in objectives:
        if o.name not in metrics:
            return f"objective {o.name!r} missing from the metrics {sorted(metrics)}"
        v = metrics[o.name]
        try:
            v = float(v)
        except (TypeError, ValueError):
            return f"objective {o.name!r} is not a number: {v!r}"
        if not math.isfinite(v):
            return f"objective {o.name!r} is {v}"
    return None


def optimize(
    objective: Callable[[Mapping[str, Any]], Mapping[str, Any] | Sequence[float]],
    space: Space,
    directions: Mapping[str, str] | Sequence[str],
    strategy: Strategy,
    budget: int,
    *,
    constraints: Sequence[Constraint | str] = (),
    storage: Storage | None = None,
) -> Study:
    """Minimal entry point: optimizes ``objective(params)`` over ``space`` for ``budget`` trials.

    ``directions`` is either ``{"name": "minimize" | "maximize", ...}`` (the objective then returns a
    dict with those names) or a list of directions (the objective returns a sequence of values, named
    ``f0``, ``f1``, ...).

    Example:
        >>> from search import Float, NSGA2Strategy, Space, optimize
        >>> study = optimize(lambda p: (p["x"] ** 2, (p["x"] - 2) ** 2), Space({"x": Float(-1, 3)}),
        ...                  ["minimize", "minimize"], NSGA2Strategy(population_size=8, seed=1), budget=24)
        >>> all(0 <= t.params["x"] <= 2.01 for t in study.best_trials)
        True
    """
    if isinstance(directions, Mapping):
        objectives = [Objective(n, d) for n, d in directions.items()]
    else:
        objectives = [Objective(f"f{i}", d) for i, d in enumerate(directions)]
    names = [o.name for o in objectives]

    def wrapped(trial: Trial) -> Mapping[str, Any]:
        out = objective(dict(trial.params))
        if isinstance(out, Mapping):
            return out
        values = list(out)  # type: ignore[arg-type]
        if len(values) != len(names):
            raise ValueError(f"the objective returned {len(values)} values, expected {len(names)}")
        return dict(zip(names, values))

    study = Study(
        space=space,
        objectives=objectives,
        strategy=strategy,
        constraints=[Constraint.parse(c) if isinstance(c, str) else c for c in constraints],
        storage=storage,
    )
    study.optimize(wrapped, n_trials=budget)
    return study
