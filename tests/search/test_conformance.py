"""The contract of :class:`search.Strategy`, checked for every registered strategy (and a few variants).

A strategy added to ``search.STRATEGIES`` is covered here automatically.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest

import search
from search import (
    STRATEGIES,
    BayesStrategy,
    Choice,
    EvolutionStrategy,
    Float,
    GridStrategy,
    Integer,
    NSGA2Strategy,
    Objective,
    RLStrategy,
    Space,
    SQLiteStorage,
    Strategy,
    StrategyExhausted,
    Study,
    TrialState,
)

Factory = Callable[[int], Strategy]

# Every registered strategy with its defaults, plus variants whose other code paths need covering.
CASES: dict[str, Factory] = {name: (lambda seed, cls=cls: cls(seed=seed)) for name, cls in STRATEGIES.items()}
CASES.update(
    {
        "nsga2[small]": lambda seed: NSGA2Strategy(population_size=4, seed=seed),
        "grid[ordered]": lambda seed: GridStrategy(shuffle=False, points_per_float=3, seed=seed),
        "evolution[small]": lambda seed: EvolutionStrategy(population_size=4, sample_size=2, seed=seed),
        "rl[hypervolume]": lambda seed: RLStrategy(reward="hypervolume", seed=seed),
        "bayes[multi-fidelity]": lambda seed: BayesStrategy(min_fidelity=1 / 9, n_initial=4, seed=seed),
        "bayes[minmax]": lambda seed: BayesStrategy(scaling="minmax", n_initial=4, seed=seed),
        "auto": lambda seed: search.make_strategy("auto", seed=seed, budget=100),
        "auto[large budget]": lambda seed: search.make_strategy("auto", seed=seed, budget=1000),
    }
)
if importlib.util.find_spec("optuna") is not None:  # the wrapped samplers, where Optuna is installed
    CASES.update(
        {
            name: (lambda seed, name=name: search.make_strategy(name, seed=seed))
            for name in ("optuna:tpe", "optuna:nsga2", "optuna:auto")
        }
    )
IDS = sorted(CASES)
SEED_INDEPENDENT = {"grid[ordered]"}  # proposals that do not depend on the seed by design

MIXED = Space(
    {
        "kernel": Choice([3, 5, 7]),
        "act": Choice(["relu", "gelu", "silu", None]),
        "depth": Integer(1, 9, step=2),
        "lr": Float(1e-4, 1e-1, log=True),
        "dropout": Float(0.0, 0.5),
    }
)
DISCRETE = Space(
    {"a": Integer(0, 5), "b": Choice(["x", "y", "z"]), "c": Choice([True, False])},
    forbid=[{"a": [0, 1, 2], "b": ["x", "y"]}, {"c": True, "b": "z"}, {"a": 5}],
)
FLOATS = Space({"x": Float(-2.0, 2.0), "y": Float(1e-3, 10.0, log=True)})


_MIX = np.random.default_rng(12345).uniform(0.5, 3.0, size=(8, 3))


def _x(params) -> np.ndarray:
    """Any point -> three numbers in [0, 1] that depend on every parameter: the test objectives' inputs."""
    v = []
    for value in params.values():
        if isinstance(value, bool) or value is None:
            v.append(float(bool(value)))
        elif isinstance(value, str):
            v.append((sum(map(ord, value)) % 7) / 6)
        else:
            v.append(abs(math.sin(float(value))))
    return (np.array(v) @ _MIX[: len(v)]) % 1.0


def metrics(trial) -> dict[str, float]:
    x = _x(trial.params)
    return {
        "f0": float(x[0] + 0.1 * x[1]),
        "f1": float((1 - x[0]) ** 2 + x[2]),
        "f2": float(x[1] * x[2] + 0.3 * x[0]),
        "g": float(x.sum()),
    }


def flaky(trial) -> dict[str, float]:
    """Fails (an exception, or a NaN objective) on part of the space; infeasible on another part."""
    x = _x(trial.params)
    if x[0] > 0.85:
        raise RuntimeError("out of memory")
    out = metrics(trial)
    if x[1] > 0.9:
        out["f0"] = math.nan
    return out


def strategy_attrs(trial) -> dict:
    return {k: v for k, v in trial.attrs.items() if k not in ("told_before", "tell_index", "attempts")}


def history(study: Study) -> list[tuple]:
    return [
        (t.number, dict(t.params), t.fidelity, strategy_attrs(t), t.state.value, t.values)
        for t in study.trials
    ]


def make_study(
    case: str, seed: int = 0, space: Space = MIXED, directions=("minimize", "minimize"), **kw
) -> Study:
    objectives = [Objective(f"f{i}", d) for i, d in enumerate(directions)]
    return Study(space=space, objectives=objectives, strategy=CASES[case](seed), **kw)


def check_trial(space: Space, trial) -> None:
    space.validate(trial.params)  # in range, and not forbidden
    assert not space.is_forbidden(trial.params)
    assert 0.0 < trial.fidelity <= 1.0
    for value in trial.params.values():  # JSON-ready plain Python, no numpy scalars
        assert value is None or type(value) in (int, float, str, bool), (trial.params, type(value))
    json.dumps(dict(trial.params), allow_nan=False)
    json.dumps(dict(trial.attrs), allow_nan=False)


def run(study: Study, objective=metrics, n: int = 30) -> Study:
    try:
        study.optimize(objective, n_trials=n)
    except StrategyExhausted:
        assert isinstance(study.strategy, GridStrategy), "only a finite grid may run out of points"
    for t in study.trials:
        check_trial(study.space, t)
    return study


# -- the registry --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_registered_strategies_have_a_name_keyword_only_arguments_and_a_seed(name):
    cls = STRATEGIES[name]
    assert issubclass(cls, Strategy) and cls.name == name
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert "seed" in [p.name for p in params]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), params
    assert cls.__name__ in search.__all__
    with pytest.raises(RuntimeError, match="setup"):
        cls(seed=0).ask()


# -- proposals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", IDS)
@pytest.mark.parametrize(
    "space, directions",
    [
        (MIXED, ("minimize",)),
        (DISCRETE, ("maximize", "minimize")),
        (FLOATS, ("minimize", "maximize", "minimize")),
    ],
    ids=["mixed-1obj", "discrete-forbid-2obj", "floats-3obj"],
)
def test_proposals_are_valid_json_ready_points_of_the_space(case, space, directions):
    study = run(make_study(case, space=space, directions=directions), n=24)
    assert len(study.trials) == 24 or isinstance(study.strategy, GridStrategy)
    assert all(t.state is TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("case", IDS)
def test_forbidden_combinations_are_never_proposed(case):
    space = Space(
        {"a": Integer(0, 9), "b": Choice(["x", "y", "z"]), "w": Float(0.0, 1.0)},
        forbid=[{"a": [0, 1, 2, 3, 4, 5, 6], "b": ["x", "y"]}, {"b": "z", "a": [7, 8]}],
    )
    study = run(make_study(case, space=space), n=40)
    assert len(study.trials) >= 20
    assert not any(space.is_forbidden(t.params) for t in study.trials)


# -- determinism and resuming --------------------------------------------------------------------------
@pytest.mark.parametrize("case", IDS)
def test_the_same_seed_and_results_give_the_same_proposals(case):
    a = run(make_study(case, seed=7, constraints=[search.Constraint.parse("g <= 1.5")]), flaky, n=30)
    b = run(make_study(case, seed=7, constraints=[search.Constraint.parse("g <= 1.5")]), flaky, n=30)
    assert history(a) == history(b)
    if case not in SEED_INDEPENDENT:
        c = run(make_study(case, seed=8, constraints=[search.Constraint.parse("g <= 1.5")]), flaky, n=30)
        assert [t.params for t in c.trials] != [t.params for t in a.trials]


@pytest.mark.parametrize("case", IDS)
@pytest.mark.parametrize("stop_after", [5, 17])
def test_a_stored_study_resumes_as_if_never_interrupted(tmp_path, case, stop_after):
    constraints = [search.Constraint.parse("g <= 1.5")]
    reference = run(
        make_study(case, constraints=constraints, storage=SQLiteStorage(tmp_path / "ref.db")), flaky, 26
    )

    crashed = run(
        make_study(case, constraints=constraints, storage=SQLiteStorage(tmp_path / "run.db")),
        flaky,
        stop_after,
    )
    assert crashed.ask() is not None  # asked, never told: the process dies while evaluating it
    crashed.storage.close()

    resumed = make_study(case, constraints=constraints, storage=SQLiteStorage(tmp_path / "run.db"))
    run(resumed, flaky, 26 - stop_after)
    assert history(resumed) == history(reference)


def _drive(study: Study, rng: np.random.Generator, n_asks: int, pending: list, objective=flaky) -> None:
    """Up to three trials in flight, told in a random order; checks that ``ask`` waits only with work pending."""
    asked = 0
    while asked < n_asks:
        while len(pending) < 3 and asked < n_asks:
            trial = study.ask()
            if trial is None:
                assert pending, f"{type(study.strategy).__name__}.ask() returned None with nothing pending"
                break
            check_trial(study.space, trial)
            pending.append(trial)
            asked += 1
        trial = pending.pop(int(rng.integers(len(pending))))
        try:
            study.tell(trial, objective(trial))
        except Exception as e:  # noqa: BLE001 - the objective's failure becomes a FAILED trial
            study.tell(trial, error=str(e))


@pytest.mark.parametrize("case", IDS)
def test_resuming_after_out_of_order_tells_and_waiting_asks_gives_the_same_proposals(tmp_path, case):
    """Asks that return ``None`` leave no trace in the storage: they must change nothing in the strategy."""
    space = MIXED
    a = make_study(case, space=space, storage=SQLiteStorage(tmp_path / "a.db"))
    pending_a: list = []
    _drive(a, np.random.default_rng(1), 14, pending_a)

    b = make_study(case, space=space, storage=SQLiteStorage(tmp_path / "b.db"))
    pending_b: list = []
    _drive(b, np.random.default_rng(1), 14, pending_b)
    assert history(a) == history(b)
    b.storage.close()
    resumed = make_study(case, space=space, storage=SQLiteStorage(tmp_path / "b.db"))
    assert [t.number for t in resumed.pending] == [t.number for t in pending_a]
    pending_r = [resumed.ask() for _ in resumed.pending]

    for study, pending in ((a, pending_a), (resumed, pending_r)):
        try:
            _drive(study, np.random.default_rng(2), 10, pending)
        except StrategyExhausted:
            assert isinstance(study.strategy, GridStrategy)
    assert history(resumed) == history(a)


# -- failures, constraints, directions -----------------------------------------------------------------
@pytest.mark.parametrize("case", IDS)
def test_failed_and_nan_trials_never_reach_a_model_as_nan(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NaN arithmetic in numpy warns
        study = run(make_study(case, constraints=[search.Constraint.parse("g <= 1.5")]), flaky, n=30)
    states = {t.state for t in study.trials}
    assert TrialState.FAILED in states and TrialState.COMPLETE in states


@pytest.mark.parametrize("case", IDS)
def test_a_search_where_everything_fails_or_nothing_differs_goes_on(case):
    def always_fails(trial):
        raise ValueError("broken evaluator")

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        failing = run(make_study(case), always_fails, n=20)
        constant = run(make_study(case), lambda t: {"f0": 1.0, "f1": 2.0}, n=20)
    assert len(failing.trials) == 20 and all(t.state is TrialState.FAILED for t in failing.trials)
    assert len(constant.trials) == 20


@pytest.mark.parametrize("case", IDS)
def test_maximizing_is_minimizing_the_negation(case):
    maxi = make_study(case, directions=("maximize", "minimize"))
    mini = make_study(case, directions=("minimize", "minimize"))
    run(maxi, lambda t: {"f0": -metrics(t)["f0"], "f1": metrics(t)["f1"]}, n=26)
    run(mini, lambda t: {"f0": metrics(t)["f0"], "f1": metrics(t)["f1"]}, n=26)
    assert [(t.params, t.fidelity) for t in maxi.trials] == [(t.params, t.fidelity) for t in mini.trials]


@pytest.mark.parametrize("case", IDS)
def test_enqueued_and_pruned_trials_are_accepted(case):
    study = make_study(case, space=DISCRETE)
    study.enqueue({"a": 3, "b": "x", "c": False})
    study.enqueue({"a": 4, "b": "z", "c": False})
    run(study, n=4)
    trial = study.ask()
    study.tell(trial, state=TrialState.PRUNED)
    run(study, n=10)
    assert [t.params for t in study.trials[:2]] == [
        {"a": 3, "b": "x", "c": False},
        {"a": 4, "b": "z", "c": False},
    ]
    assert study.trials[4].state is TrialState.PRUNED


@pytest.mark.parametrize("case", IDS)
def test_a_space_smaller_than_the_budget(case):
    space = Space({"a": Choice([1, 2]), "b": Integer(0, 1)})
    study = run(make_study(case, space=space), n=12)
    keys = [tuple(t.params.values()) for t in study.trials]
    if isinstance(study.strategy, GridStrategy):
        assert sorted(keys) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    else:
        assert len(keys) == 12 and set(keys) <= {(1, 0), (1, 1), (2, 0), (2, 1)} and len(set(keys)) >= 3


# -- no evaluation spent twice -------------------------------------------------------------------------
# 300 points, 252 candidates: when ``a`` is 0, ``b`` changes nothing (an unused choice, as a skipped layer's
# kernel in a supernet), so points that differ only there are one canonical candidate.
NINE_TENTHS = Space(
    {
        "a": Choice([0, 1, 2, 3, 4]),
        "b": Choice(["p", "q", "r", "s", "t"]),
        "c": Integer(0, 5),
        "d": Choice([True, False]),
    }
)


def canonical(params) -> tuple:
    return (params["a"], None if params["a"] == 0 else params["b"], params["c"], params["d"])


@pytest.mark.parametrize("case", IDS)
@pytest.mark.parametrize("with_canonical", [False, True], ids=["points", "canonical"])
def test_no_point_is_proposed_twice_while_unseen_ones_remain(case, with_canonical):
    key = canonical if with_canonical else (lambda p: tuple(p.values()))
    study = make_study(case, space=NINE_TENTHS, canonical=canonical if with_canonical else None)
    study.enqueue({"a": 0, "b": "p", "c": 1, "d": True})
    study.enqueue({"a": 2, "b": "q", "c": 3, "d": False})
    run(study, flaky, n=70)  # failed trials included: a point that failed is not tried again either
    seen = [(key(t.params), t.fidelity) for t in study.trials]
    assert len(seen) == 70
    assert len(set(seen)) == len(seen), [k for k in seen if seen.count(k) > 1][:5]
    if with_canonical:  # the enqueued twin of a canonical candidate is never proposed
        assert all(
            key(t.params) != (0, None, 1, True)
            for t in study.trials[2:]
            if t.fidelity == study.trials[0].fidelity
        )
    # a configuration first proposed at any fidelity is new: it has not been seen at any other fidelity
    first = {}
    for t in study.trials:
        first.setdefault(key(t.params), t.number)
    rung0 = [t for t in study.trials if t.attrs.get("rung", 0) == 0]
    assert all(first[key(t.params)] == t.number for t in rung0)


@pytest.mark.parametrize("case", IDS)
def test_a_small_space_is_covered_before_any_point_repeats(case):
    space = Space({"a": Choice([1, 2, 3]), "b": Integer(0, 2)})
    study = run(make_study(case, space=space), n=9)
    keys = [tuple(t.params.values()) for t in study.trials if t.attrs.get("rung", 0) == 0]
    assert len(set(keys)) == len(keys) >= 3


def test_repeats_are_proposed_only_when_asked_for():
    space = Space({"a": Integer(0, 19)})

    def keys(repeats: bool) -> list:
        study = make_study("random", space=space, repeats=repeats)
        run(study, n=20)
        assert study.strategy.repeats is repeats
        return [t.params["a"] for t in study.trials]

    assert sorted(keys(False)) == list(range(20))
    assert len(set(keys(True))) < 20  # 20 uniform draws of 20 values: all distinct with probability 2e-8
