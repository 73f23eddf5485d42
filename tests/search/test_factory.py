"""Strategies by name: ``make_strategy``, ``strategy_names``, ``auto`` and the wrapped Optuna samplers."""

import subprocess
import sys
import textwrap

import pytest

import search
from search import (
    AutoStrategy,
    BayesStrategy,
    Choice,
    Constraint,
    Float,
    Integer,
    NSGA2Strategy,
    Objective,
    Space,
    Study,
    make_strategy,
    strategy_names,
)

NB = Space({f"e{i}": Choice(["none", "skip", "conv1", "conv3", "pool"]) for i in range(6)})


def test_every_name_is_made_and_unknown_names_and_options_are_refused_with_the_valid_ones():
    assert strategy_names()[: len(search.STRATEGIES)] == list(search.STRATEGIES)
    assert {"auto", "optuna:tpe", "optuna:gp", "optuna:nsga2", "optuna:auto"} <= set(strategy_names())
    for name in strategy_names():
        s = make_strategy(name, seed=3, budget=50)
        assert s.name == name
    assert isinstance(make_strategy("nsga2", seed=0, population_size=8), NSGA2Strategy)
    assert make_strategy("nsga2", seed=0, population_size=8).population_size == 8
    with pytest.raises(ValueError, match=r"unknown strategy 'bayse'; did you mean 'bayes'\?.*valid: nsga2"):
        make_strategy("bayse", seed=0)
    with pytest.raises(ValueError, match=r"has no option 'populaton_size'; did you mean 'population_size'"):
        make_strategy("evolution", seed=0, populaton_size=4)
    with pytest.raises(ValueError, match="strategy 'auto' has no option 'eta'"):
        make_strategy("auto", seed=0, eta=3)
    with pytest.raises(ValueError, match="n_startup_trials|unexpected keyword"):
        make_strategy("optuna:tpe", seed=0, n_startup_trial=3)
    with pytest.raises(ValueError, match="min_fidelity must be in"):
        make_strategy("bayes", seed=0, min_fidelity=2.0)


# -- auto ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "budget, chosen, cls",
    [
        (50, "bayes", BayesStrategy),
        (200, "bayes", BayesStrategy),
        (500, "bayes", BayesStrategy),
        (None, "bayes", BayesStrategy),
        (501, "nsga2", NSGA2Strategy),
        (1000, "nsga2", NSGA2Strategy),
    ],
)
def test_auto_picks_by_budget_and_says_what_it_picked(budget, chosen, cls):
    s = make_strategy("auto", seed=0, budget=budget)
    assert "nothing chosen yet" in s.describe()
    study = Study(space=NB, objectives=[Objective("a"), Objective("b")], strategy=s)
    assert s.chosen == chosen and isinstance(s.inner, cls)
    assert s.describe().startswith(f"auto: {chosen} (")
    assert (str(budget) if budget else "120 assumed") in s.describe()
    study.optimize(lambda t: {"a": len(t.params["e0"]), "b": len(t.params["e1"])}, n_trials=12)
    assert len(study.trials) == 12


def test_auto_runs_exactly_what_it_picked():
    """Same seed, same results: auto's proposals are those of the strategy it chose."""

    def run(strategy):
        study = Study(space=NB, objectives=[Objective("a"), Objective("b")], strategy=strategy)
        study.optimize(lambda t: {"a": hash(t.params["e0"]) % 7, "b": len(t.params["e2"])}, n_trials=20)
        return [t.params for t in study.trials]

    assert run(make_strategy("auto", seed=5, budget=1000)) == run(make_strategy("nsga2", seed=5))
    assert run(make_strategy("auto", seed=5, budget=60)) == run(make_strategy("bayes", seed=5))


NUMBERS = Space({f"x{i}": Choice([0.0, 0.25, 0.5, 0.75, 1.0]) for i in range(4)} | {"n": Integer(1, 8)})


@pytest.mark.parametrize(
    "space, n_objectives, budget, chosen, ehvi_many",
    [
        (NB, 3, 50, "bayes", True),
        (NB, 3, 500, "bayes", True),
        (NB, 3, 501, "nsga2", None),
        (NUMBERS, 3, 50, "bayes", False),
        (NUMBERS, 3, 500, "bayes", False),
        (NUMBERS, 3, 501, "nsga2", None),
        (NB, 4, 500, "bayes", True),
        (NB, 4, 501, "nsga2", None),
        (NUMBERS, 4, 200, "bayes", False),
        (NUMBERS, 4, 201, "nsga2", None),
    ],
)
def test_auto_with_three_objectives_or_more(space, n_objectives, budget, chosen, ehvi_many):
    """Three objectives or more in a space with unordered choices (operations): the hypervolume improvement
    up to 500 evaluations; numbers only: random scalarisations, up to 500 evaluations for three objectives
    and 200 for more."""
    s = make_strategy("auto", seed=0, budget=budget)
    Study(space=space, objectives=[Objective(f"f{i}") for i in range(n_objectives)], strategy=s)
    assert s.chosen == chosen and f"for {n_objectives} objectives" in s.describe()
    if ehvi_many is None:
        assert isinstance(s.inner, NSGA2Strategy)
    else:
        assert s.inner.ehvi_many is ehvi_many
        assert s.inner.n_initial == (20 if ehvi_many else 10)
        assert ("ehvi_many=True" in s.describe()) is ehvi_many
        assert ("unordered choices (e0 and 5 more)" in s.describe()) is ehvi_many


def test_auto_with_the_hypervolume_improvement_runs_exactly_that_bayes():
    three = [Objective("a"), Objective("b"), Objective("c")]

    def run(strategy):
        study = Study(space=NB, objectives=three, strategy=strategy)
        study.optimize(
            lambda t: {"a": hash(t.params["e0"]) % 7, "b": len(t.params["e2"]), "c": len(t.params["e3"])},
            n_trials=26,
        )
        return [t.params for t in study.trials]

    picked = run(make_strategy("auto", seed=3, budget=100))
    assert picked == run(make_strategy("bayes", seed=3, ehvi_many=True, n_initial=20))
    # each option changes the proposals
    assert picked != run(make_strategy("bayes", seed=3, n_initial=20))
    assert picked != run(make_strategy("bayes", seed=3, ehvi_many=True))


def test_auto_gives_its_population_size_to_a_strategy_that_has_one():
    big = make_strategy("auto", seed=0, budget=1000, population_size=6)
    Study(space=NB, objectives=[Objective("a"), Objective("b")], strategy=big)
    assert big.chosen == "nsga2" and big.inner.population_size == 6
    small = make_strategy("auto", seed=0, budget=50, population_size=6)
    Study(space=NB, objectives=[Objective("a"), Objective("b")], strategy=small)
    assert small.chosen == "bayes"  # no population: unused
    with pytest.raises(ValueError, match="population_size must be an integer of at least 2"):
        make_strategy("auto", seed=0, population_size=1)


def test_auto_passes_the_canonical_map_to_what_it_picked():
    def canonical(p):
        return tuple(v for k, v in sorted(p.items()) if k != "e5")  # e5 changes nothing

    study = Study(
        space=NB, objectives=[Objective("a")], strategy=AutoStrategy(budget=1000, seed=0), canonical=canonical
    )
    study.optimize(lambda t: {"a": len(t.params["e0"]) + len(t.params["e1"])}, n_trials=60)
    keys = [canonical(t.params) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_a_bad_budget_is_refused():
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        AutoStrategy(budget=0)


# -- Optuna's samplers -----------------------------------------------------------------------------------
optuna = pytest.importorskip("optuna")


def test_the_wrapped_tpe_finds_what_optunas_own_loop_finds():
    """Our ask/tell around TPE proposes what Optuna's own ask/tell proposes (minimised values, same seed),
    as long as it repeats nothing."""
    space = Space({"x": Float(0.0, 1.0), "k": Integer(1, 5), "c": Choice(["a", "b", "c"])})

    def f(p):
        return (p["x"] - 0.3) ** 2 + (p["k"] - 2) ** 2 + (p["c"] != "b")

    ours = Study(
        space=space, objectives=[Objective("f", "maximize")], strategy=make_strategy("optuna:tpe", seed=1)
    )
    ours.optimize(lambda t: {"f": -f(t.params)}, n_trials=25)
    theirs = optuna.create_study(sampler=optuna.samplers.TPESampler(multivariate=True, seed=1))
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists = {
        "x": FloatDistribution(0.0, 1.0),
        "k": IntDistribution(1, 5),
        "c": CategoricalDistribution(["a", "b", "c"]),
    }
    for _ in range(25):
        t = theirs.ask(dists)
        theirs.tell(t, f(t.params))
    assert [t.params for t in ours.trials] == [t.params for t in theirs.trials]


def test_optuna_never_spends_an_evaluation_twice_and_learns_enqueued_and_failed_trials():
    space = Space({"a": Choice([1, 2, 3]), "b": Choice(["x", "y"])})
    s = make_strategy("optuna:tpe", seed=0, n_startup_trials=2)
    study = Study(space=space, objectives=[Objective("f")], strategy=s)
    study.enqueue({"a": 2, "b": "y"})
    study.optimize(lambda t: {"f": t.params["a"]} if t.params["b"] == "x" else 1 / 0, n_trials=6)
    keys = [tuple(t.params.values()) for t in study.trials]
    assert sorted(keys) == sorted({(a, b) for a in (1, 2, 3) for b in ("x", "y")})  # all 6, once each
    states = [t.state.name for t in s._study.get_trials(deepcopy=False) if t.state.name != "FAIL"]
    assert states.count("COMPLETE") == 3  # the enqueued trial too, added to Optuna's history


def test_optuna_sees_constraints():
    space = Space({"x": Float(0.0, 1.0)})
    s = make_strategy("optuna:nsga2", seed=0, population_size=4)
    study = Study(
        space=space,
        objectives=[Objective("a"), Objective("b")],
        strategy=s,
        constraints=[Constraint.parse("a >= 0.5")],
    )
    study.optimize(lambda t: {"a": t.params["x"], "b": 1 - t.params["x"]}, n_trials=8)
    frozen = s._study.get_trials(deepcopy=False)
    violations = [
        t.system_attrs.get("constraints:hwnas", t.user_attrs.get("hwnas_violation")) for t in frozen
    ]
    assert any(v and v > 0 for v in violations) and any(v == 0 for v in violations)


def test_optuna_gp_runs_a_few_trials():
    space = Space({"x": Float(0.0, 1.0), "c": Choice(["a", "b"])})
    study = Study(
        space=space,
        objectives=[Objective("a"), Objective("b")],
        strategy=make_strategy("optuna:gp", seed=0, n_startup_trials=3),
    )
    study.optimize(lambda t: {"a": t.params["x"], "b": (1 - t.params["x"]) ** 2}, n_trials=5)
    assert len({t.params["x"] for t in study.trials}) == 5


BLOCKED = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoOptuna(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "optuna":
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoOptuna())
    import search
    print("names:", " ".join(search.strategy_names()))
    search.make_strategy("evolution", seed=0)
    try:
        search.make_strategy("optuna:tpe", seed=0)
    except ImportError as e:
        print("optuna:", e)
    """
)


def test_search_works_without_optuna_and_the_wrapped_samplers_name_the_extra():
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "optuna:tpe" in out.stdout
    assert "optuna: the optuna:* strategies need Optuna: pip install 'hwnas[bench]'" in out.stdout
