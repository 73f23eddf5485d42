"""A study: one search, driven by ask/tell, with ``optimize`` written on top of them."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from search._base import Canonical, NetworkMap, Strategy, StrategyExhausted, Suggestion
from search._pareto import hypervolume, pareto_trials
from search._space import Space
from search._storage import InMemoryStorage, Storage, StorageError
from search._threads import one_blas_thread
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
    new trial (a supernet search stores the canonical arch this way). ``canonical``, when given, maps
    params to a hashable identity (the canonical architecture): the strategy then never proposes a point
    whose identity has been proposed or told before, while unseen ones remain; ``repeats=True`` lets it
    propose points again (repeated measurements of a noisy objective). ``network``, when given, maps params
    to the params of the network they compute, with every choice that cannot change it at a fixed value
    (the operations on dead paths of a cell set to ``"none"``, the kernel of a layer past the depth to the
    first choice). Model-based strategies (``bayes``) then model each objective that is
    :attr:`Objective.of_network` over the mapped points, so points that compute one network share what
    was learnt about it; identity and duplicates stay with ``canonical``. It is checked on a few points
    of the space before anything runs: it must return a point of the space, and mapping twice must give
    the same point as mapping once. A stored study records whether it had one: it resumes without a map if
    it was searched without (or before maps were recorded), and refuses to resume without one if it had one.

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
        canonical: Canonical | None = None,
        repeats: bool = False,
        network: NetworkMap | None = None,
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
        self._rerun: deque[Trial] = deque()
        self._n_told = 0
        if network is not None:
            _check_network(space, network)
        resuming = bool(self.storage.count())
        if resuming:
            network = self._stored_network(network)
        strategy.configure(canonical=canonical, repeats=repeats, network=network)
        strategy.setup(space, self.objectives)
        if resuming:
            self._check_same_study()
            self._replay()
        else:
            self.storage.set_meta("network", network is not None)
            self.storage.set_meta("space", space.to_dict())
            self.storage.set_meta("objectives", [o.to_dict() for o in self.objectives])
            self.storage.set_meta("constraints", [str(c) for c in self.constraints])
            self.storage.set_meta("strategy", self._strategy_name)

    @property
    def _strategy_name(self) -> str:
        return self.strategy.name or type(self.strategy).__name__

    # -- resuming ------------------------------------------------------------------------------------
    def _stored_network(self, network: NetworkMap | None) -> NetworkMap | None:
        """The network map a stored study resumes with: its history was proposed with a map or without one,
        and its replay must be too. A study stored before maps existed, or without one, resumes without
        (a map given now is set aside); one searched with a map needs one."""
        used = self.storage.get_meta("network")
        if used and network is None:
            where = getattr(self.storage, "path", "the storage")
            raise StorageError(
                f"cannot resume {where}: it was searched with a network map; give the same one (the supernet "
                "flow passes its space's)"
            )
        return network if used else None

    def _check_same_study(self) -> None:
        """Refuses to continue a stored study with another space, objectives, constraints or strategy."""
        where = getattr(self.storage, "path", "the storage")
        stored_space = self.storage.get_meta("space")
        if stored_space != json.loads(json.dumps(self.space.to_dict())):
            diff = _space_difference(stored_space or {}, self.space.to_dict())
            raise StorageError(
                f"cannot resume {where}: the search space changed since the study ran ({diff}); "
                "resume with the settings it was started with, or start a new run"
            )
        stored = [(o.get("name"), o.get("direction")) for o in self.storage.get_meta("objectives") or []]
        now = [(o.name, o.direction) for o in self.objectives]
        if stored != now:
            raise StorageError(f"cannot resume {where}: objectives changed from {stored} to {now}")
        constraints = self.storage.get_meta("constraints") or []
        if constraints != [str(c) for c in self.constraints]:
            raise StorageError(
                f"cannot resume {where}: constraints changed from {constraints} to "
                f"{[str(c) for c in self.constraints]}"
            )
        strategy = self.storage.get_meta("strategy")
        if strategy != self._strategy_name:
            raise StorageError(
                f"cannot resume {where}: it was searched with {strategy!r}, not {self._strategy_name!r}"
            )

    def _replay(self) -> None:
        """Brings a fresh strategy to the state it had when the stored study stopped.

        Every strategy is deterministic given its seed and the results it was told (the contract of
        :class:`Strategy`), so replaying the stored asks and tells in their original order rebuilds its
        state (population, brackets, random state) exactly. Trials that were RUNNING when the study stopped
        are evaluated again, first, under their own numbers.
        """
        trials = self.storage.trials()
        told = sorted(
            (t for t in trials if t.state.finished),
            key=lambda t: (t.attrs.get(_TELL_INDEX, math.inf), t.finished_at or 0.0, t.number),
        )
        done = 0
        with one_blas_thread():  # the whole replay: one limit, not one per ask and tell
            for trial in trials:
                before = int(trial.attrs.get(_TOLD_BEFORE, done))
                while done < min(before, len(told)):
                    self.strategy.tell(told[done])
                    done += 1
                if trial.attrs.get(_ENQUEUED):
                    continue
                suggestion = self.strategy.ask()
                if suggestion is None or not _same_point(suggestion, trial):
                    where = getattr(self.storage, "path", "the storage")
                    raise StorageError(
                        f"cannot resume {where}: replaying its history, the {self._strategy_name} strategy "
                        f"proposed {None if suggestion is None else dict(suggestion.params)} where trial "
                        f"{trial.number} has {dict(trial.params)}; was the seed or a strategy setting changed?"
                    )
            for trial in told[done:]:
                self.strategy.tell(trial)
        self._n_told = len(told)
        self._rerun.extend(t for t in trials if t.state is TrialState.RUNNING)

    @property
    def pending(self) -> list[Trial]:
        """Trials that were RUNNING when a stored study stopped; ``ask()`` hands them out again first."""
        return list(self._rerun)

    # -- ask / tell ----------------------------------------------------------------------------------
    def enqueue(self, params: Mapping[str, Any], *, fidelity: float = 1.0) -> None:
        """Evaluates ``params`` next, before anything the strategy proposes."""
        self.space.validate(params)
        self._enqueued.append(Suggestion(dict(params), fidelity, {_ENQUEUED: True}))

    def ask(self) -> Trial | None:
        """A new RUNNING trial, or ``None`` when the strategy waits for pending results.

        After a resume, trials that were RUNNING when the study stopped come first, under their own numbers.
        """
        if self._rerun:
            old = self._rerun.popleft()
            again = old.replace(
                started_at=time.time(), attrs={**old.attrs, "attempts": int(old.attrs.get("attempts", 1)) + 1}
            )
            self.storage.update_trial(again)
            return again
        if self._enqueued:
            suggestion: Suggestion | None = self._enqueued.popleft()
        else:
            with one_blas_thread():
                suggestion = self.strategy.ask()
        if suggestion is None:
            return None
        trial = Trial(
            number=self.storage.count(),
            params=dict(suggestion.params),
            fidelity=suggestion.fidelity,
            started_at=time.time(),
            attrs={
                **suggestion.attrs,
                **(self._annotate(suggestion.params) if self._annotate else {}),
                _TOLD_BEFORE: self._n_told,
            },
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
            attrs={**current.attrs, **(attrs or {}), _TELL_INDEX: self._n_told},
        )
        self.storage.update_trial(done)
        self._n_told += 1
        with one_blas_thread():
            self.strategy.tell(done)
        return done

    # -- results -------------------------------------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        return self.storage.trials()

    @property
    def best_trials(self) -> list[Trial]:
        """The Pareto-optimal trials (see :func:`search.pareto_trials`), at full fidelity.

        Results at a lower fidelity are cheaper estimates (a multi-fidelity strategy's early rungs): they
        stand for the front only while no trial has been evaluated at fidelity 1.
        """
        trials = self.trials
        full = [t for t in trials if t.fidelity >= 1.0 and t.state is TrialState.COMPLETE]
        return pareto_trials(full if full else trials, self.objectives)

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
        trial_timeout_s: float | None = None,
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
            trial_timeout_s: a trial that takes longer fails with a message saying so. With an executor its
                evaluation is cancelled and the search goes on at once; in this process, an evaluation
                cannot be interrupted, so its result is discarded when it ends late.
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
                try:
                    trial = self.ask()
                except StrategyExhausted:  # a finite strategy (grid) has proposed everything
                    return
                if trial is None:
                    raise RuntimeError(
                        f"{type(self.strategy).__name__} proposed nothing with no trial in flight"
                    )
                t0 = time.monotonic()
                result, err = _run(objective, trial)
                elapsed = time.monotonic() - t0
                if err is None and trial_timeout_s is not None and elapsed > trial_timeout_s:
                    result, err = None, _late(elapsed, trial_timeout_s)
                finish(trial, result, err)
            return

        if n_parallel < 1:
            raise ValueError(f"n_parallel must be >= 1, got {n_parallel}")
        in_flight: dict[cf.Future[Mapping[str, Any]], Trial] = {}
        deadline: dict[cf.Future[Mapping[str, Any]], float] = {}
        exhausted = False
        started = 0
        while started < n_trials or in_flight:
            stopping = exhausted or (should_stop is not None and should_stop())
            while not stopping and started < n_trials and len(in_flight) < n_parallel:
                try:
                    trial = self.ask()
                except StrategyExhausted:  # nothing left to propose: finish the trials in flight
                    exhausted = stopping = True
                    break
                if trial is None:
                    break
                future = executor.submit(objective, trial)
                in_flight[future] = trial
                deadline[future] = time.monotonic() + (trial_timeout_s or math.inf)
                started += 1
            if not in_flight:
                if stopping or exhausted or started >= n_trials:
                    return
                raise RuntimeError(f"{type(self.strategy).__name__} proposed nothing with no trial in flight")
            wait_s = max(0.0, min(deadline[f] for f in in_flight) - time.monotonic())
            done, _ = cf.wait(
                in_flight, timeout=None if math.isinf(wait_s) else wait_s, return_when=cf.FIRST_COMPLETED
            )
            now = time.monotonic()
            for future in list(in_flight):
                if future in done:
                    trial = in_flight.pop(future)
                    del deadline[future]
                    exc = future.exception()
                    if exc is None:
                        finish(trial, future.result(), None)
                    else:
                        finish(trial, None, _describe(exc))
                elif now >= deadline[future]:
                    trial = in_flight.pop(future)
                    future.cancel()
                    limit = float(trial_timeout_s or 0.0)
                    finish(trial, None, _late(now - deadline.pop(future) + limit, limit))


# Trial attributes that record the order of asks and tells, so that a stored study can be replayed.
_TOLD_BEFORE = "told_before"
_TELL_INDEX = "tell_index"
_ENQUEUED = "enqueued"


def _same_point(suggestion: Suggestion, trial: Trial) -> bool:
    # Stored params went through JSON; compare the suggestion the same way.
    params = json.loads(json.dumps(dict(suggestion.params), default=_plain))
    return params == dict(trial.params) and abs(suggestion.fidelity - trial.fidelity) < 1e-12


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-ready")


def _space_difference(stored: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    a, b = dict(stored.get("params", stored)), dict(now.get("params", now))
    if a.pop("$forbid", None) != b.pop("$forbid", None):
        return "its forbidden combinations changed"
    added, removed = sorted(set(b) - set(a)), sorted(set(a) - set(b))
    changed = sorted(k for k in set(a) & set(b) if a[k] != json.loads(json.dumps(b[k])))
    parts = []
    if added:
        parts.append(f"new parameters {added[:5]}")
    if removed:
        parts.append(f"parameters gone {removed[:5]}")
    if changed:
        parts.append(f"parameters changed {changed[:5]}")
    return ", ".join(parts) or "its description differs"


def _late(elapsed_s: float, limit_s: float) -> str:
    return f"TimeoutError: the evaluation took {elapsed_s:.1f} s, over the per-trial limit of {limit_s:g} s"


def _run(objective: ObjectiveFn, trial: Trial) -> tuple[Mapping[str, Any] | None, str | None]:
    try:
        result = objective(trial)
    except Exception as e:  # noqa: BLE001 - one failing candidate never ends a search
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
        values = list(out)
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


def _check_network(space: Space, network: NetworkMap, samples: int = 8) -> None:
    """Raises ``ValueError`` unless ``network`` sends a few points of ``space`` to points of it, and is
    idempotent on them (the network of a network's point is that point)."""
    if not callable(network):
        raise ValueError(f"network must be a function of the params, got {type(network).__name__}")
    rng = np.random.default_rng(0)
    for _ in range(samples):
        params = space.sample(rng)
        try:
            mapped = dict(network(params))
            space.validate(mapped, forbid=False)  # a network's point may be one the search skips
            again = dict(network(mapped))
        except Exception as e:  # noqa: BLE001 - the message names the map and the point
            raise ValueError(
                f"the network map failed on {params}: {type(e).__name__}: {e}; it must return the params of a "
                f"point of the space ({', '.join(space)})"
            ) from None
        if again != mapped:
            raise ValueError(
                f"the network map is not idempotent: {params} -> {mapped} -> {again}; mapping a network's "
                "own point must return it unchanged"
            )
