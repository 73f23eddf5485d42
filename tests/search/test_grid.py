"""Grid search enumerates exactly the product of the parameters' values, once, then says it is done."""

import itertools

import pytest

from search import (
    Choice,
    Float,
    GridStrategy,
    Integer,
    Objective,
    Space,
    StrategyExhausted,
    Study,
)

SPACE = Space({"k": Choice([3, 5, 7]), "d": Integer(1, 5, step=2), "lr": Float(1e-3, 1e-1, log=True)})
PRODUCT = list(itertools.product([3, 5, 7], [1, 3, 5], [1e-3, 1e-2, 1e-1]))


def objective(trial):
    return {"f": trial.params["k"] * trial.params["lr"]}


def proposals(strategy, space=SPACE, n=100):
    study = Study(space=space, objectives=[Objective("f")], strategy=strategy)
    study.optimize(objective, n_trials=n)  # ends cleanly when the grid is exhausted
    with pytest.raises(StrategyExhausted, match="every point"):
        study.ask()
    return [tuple(t.params.values()) for t in study.trials]


def test_in_order_it_is_itertools_product_with_log_spaced_floats():
    got = proposals(GridStrategy(points_per_float=3, shuffle=False))
    assert [(k, d) for k, d, _ in got] == [(k, d) for k, d, _ in PRODUCT]
    assert [lr for *_, lr in got] == pytest.approx([lr for *_, lr in PRODUCT])


@pytest.mark.parametrize("seed", [0, 1])
def test_shuffled_it_enumerates_exactly_the_product_without_repeats(seed):
    got = proposals(GridStrategy(points_per_float=3, seed=seed))
    assert len(got) == len(PRODUCT) == len(set(got))
    assert sorted((k, d, round(lr, 9)) for k, d, lr in got) == sorted(
        (k, d, round(lr, 9)) for k, d, lr in PRODUCT
    )
    assert got != proposals(GridStrategy(points_per_float=3, shuffle=False))


def test_forbidden_points_are_skipped():
    space = Space(dict(SPACE.items()), forbid=[{"k": 7, "d": [1, 3]}])
    got = proposals(GridStrategy(points_per_float=3, seed=0), space)
    assert len(got) == len(PRODUCT) - 2 * 3
    assert not any(k == 7 and d in (1, 3) for k, d, _ in got)


def test_when_exhausted_it_waits_for_pending_trials_then_raises():
    space = Space({"a": Choice([1, 2]), "b": Choice(["x", "y"])})
    study = Study(space=space, objectives=[Objective("f")], strategy=GridStrategy(seed=0))
    running = [study.ask() for _ in range(4)]
    assert study.ask() is None  # every point proposed, some still running
    for t in running[:3]:
        study.tell(t, {"f": 1.0})
    assert study.ask() is None
    study.tell(running[3], {"f": 1.0})
    with pytest.raises(StrategyExhausted):
        study.ask()


def test_a_point_enqueued_by_a_person_is_not_proposed_again():
    space = Space({"a": Choice([1, 2]), "b": Choice(["x", "y"])})
    study = Study(space=space, objectives=[Objective("f")], strategy=GridStrategy(shuffle=False))
    study.enqueue({"a": 1, "b": "y"})
    study.optimize(lambda t: {"f": 0.0}, n_trials=10)
    assert [tuple(t.params.values()) for t in study.trials] == [(1, "y"), (1, "x"), (2, "x"), (2, "y")]


def test_a_grid_over_the_cap_is_refused_with_what_to_change():
    big = Space({"a": Integer(0, 999), "b": Integer(0, 999)})
    with pytest.raises(ValueError, match=r"1,000,000 points \(a=1000 x b=1000\).*max_points=100,000"):
        Study(space=big, objectives=[Objective("f")], strategy=GridStrategy())
    Study(space=big, objectives=[Objective("f")], strategy=GridStrategy(max_points=1_000_000))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="points_per_float"):
        GridStrategy(points_per_float=0)
    with pytest.raises(ValueError, match="max_points"):
        GridStrategy(max_points=0)
