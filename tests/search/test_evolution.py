"""Aging evolution: beats random search, keeps the last P trials, and its tournament puts feasible first."""

import numpy as np
import pytest
from zdt import hypervolume_after

from search import Choice, EvolutionStrategy, Integer, Objective, RandomStrategy, Space, Trial, TrialState


@pytest.mark.parametrize("kind", [1, 2])
def test_evolution_beats_random_search_on_zdt_at_a_fixed_budget(kind):
    for seed in (0, 1):
        evo = hypervolume_after(EvolutionStrategy(population_size=20, sample_size=5, seed=seed), 150, kind)
        rand = hypervolume_after(RandomStrategy(seed=seed), 150, kind)
        assert evo > rand + 0.3, (seed, evo, rand)


SPACE = Space({"a": Integer(0, 9), "b": Integer(0, 9), "c": Choice(["x", "y", "z"])})
OBJECTIVES = [Objective("f1"), Objective("f2")]


def told(number, params, values=None, violation=0.0, state=TrialState.COMPLETE):
    return Trial(number=number, params=params, state=state, values=values, violation=violation)


def genes_changed(a, b):
    return sum(a[k] != b[k] for k in a)


def test_the_population_is_the_last_p_trials_told_failed_ones_included():
    s = EvolutionStrategy(population_size=3, sample_size=2, seed=0)
    s.setup(SPACE, OBJECTIVES)
    points = [{"a": i, "b": 0, "c": "x"} for i in range(5)]
    for i, p in enumerate(points):
        state = TrialState.FAILED if i == 3 else TrialState.COMPLETE
        s.tell(told(i, p, None if i == 3 else (float(i), 0.0), state=state))
    s.tell(told(5, {"a": 9, "b": 9, "c": "z"}, state=TrialState.PRUNED))  # no values: not a member
    assert s.population == points[2:]


@pytest.mark.parametrize("bad", ["infeasible", "failed"])
def test_the_tournament_prefers_a_feasible_member_to_dominating_infeasible_or_failed_ones(bad):
    s = EvolutionStrategy(population_size=4, sample_size=4, mutation_rate=1e-9, seed=0)
    s.setup(SPACE, OBJECTIVES)
    for _ in range(4):  # the random start
        s.ask()
    feasible = {"a": 0, "b": 0, "c": "x"}
    others = [{"a": 9, "b": 9, "c": "z"}, {"a": 9, "b": 8, "c": "z"}, {"a": 8, "b": 9, "c": "z"}]
    s.tell(told(0, feasible, (10.0, 10.0)))
    for i, p in enumerate(others, start=1):
        if bad == "failed":
            s.tell(told(i, p, state=TrialState.FAILED))
        else:
            s.tell(told(i, p, (0.0, 0.0), violation=0.1 * i))
    for _ in range(5):
        child = dict(s.ask().params)
        assert genes_changed(child, feasible) == 1  # a one-gene mutant of the feasible member


def test_among_feasible_members_the_tournament_picks_the_non_dominated_one():
    s = EvolutionStrategy(population_size=4, sample_size=4, mutation_rate=1e-9, seed=1)
    s.setup(SPACE, OBJECTIVES)
    for _ in range(4):
        s.ask()
    best = {"a": 0, "b": 0, "c": "x"}
    s.tell(told(0, best, (1.0, 1.0)))
    for i, p in enumerate(
        [{"a": 9, "b": 9, "c": "z"}, {"a": 9, "b": 0, "c": "z"}, {"a": 0, "b": 9, "c": "z"}], 1
    ):
        s.tell(told(i, p, (2.0 + i, 2.0)))
    children = [dict(s.ask().params) for _ in range(5)]
    assert all(genes_changed(c, best) == 1 for c in children)


def test_mutants_respect_forbidden_combinations_and_are_not_repeats():
    space = Space({"a": Integer(0, 3), "c": Choice(["x", "y", "z"])}, forbid=[{"a": [0, 1], "c": ["y", "z"]}])
    s = EvolutionStrategy(population_size=2, sample_size=2, seed=3)
    s.setup(space, [Objective("f")])
    seen = set()
    for i in range(8):  # 12 points, 4 forbidden: 8 allowed, each proposed once
        params = dict(s.ask().params)
        assert not space.is_forbidden(params)
        key = tuple(params.values())
        assert key not in seen
        seen.add(key)
        s.tell(told(i, params, (float(params["a"]),)))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="population_size"):
        EvolutionStrategy(population_size=1)
    with pytest.raises(ValueError, match="sample_size"):
        EvolutionStrategy(population_size=4, sample_size=5)
    with pytest.raises(ValueError, match="mutation_rate"):
        EvolutionStrategy(mutation_rate=0.0)


def test_a_seed_gives_the_same_random_start():
    a, b = EvolutionStrategy(seed=5), EvolutionStrategy(seed=5)
    a.setup(SPACE, OBJECTIVES)
    b.setup(SPACE, OBJECTIVES)
    assert [a.ask().params for _ in range(10)] == [b.ask().params for _ in range(10)]
    assert np.unique([tuple(a.ask().params.values()) for _ in range(10)], axis=0).shape[0] == 10
