"""NSGA-II must find the known front of a small discretised problem, and beat random search doing so."""

import numpy as np

from search import Integer, NSGA2Strategy, Objective, RandomStrategy, Space, Study

N_VAR, STEPS = 5, 20
SPACE = Space({f"x{i}": Integer(0, STEPS) for i in range(N_VAR)})


def zdt1(trial):
    x = np.array([trial.params[f"x{i}"] for i in range(N_VAR)], dtype=float) / STEPS
    g = 1 + 9 * x[1:].mean()
    return {"f1": x[0], "f2": g * (1 - np.sqrt(x[0] / g))}


REF = [1.1, 1.1]
TRUE_FRONT = np.array([[i / STEPS, 1 - np.sqrt(i / STEPS)] for i in range(STEPS + 1)])


def run(strategy, n):
    study = Study(space=SPACE, objectives=[Objective("f1"), Objective("f2")], strategy=strategy)
    study.optimize(zdt1, n_trials=n)
    return study.hypervolume(REF)


def test_nsga2_reaches_the_known_front():
    from search import hypervolume

    true_hv = hypervolume(TRUE_FRONT, REF)
    hv_nsga = np.median([run(NSGA2Strategy(population_size=20, seed=s), 600) for s in range(3)])
    hv_rand = np.median([run(RandomStrategy(seed=s), 600) for s in range(3)])
    assert hv_nsga / true_hv > 0.97
    assert hv_nsga > hv_rand


def test_nsga2_is_deterministic_for_a_seed():
    a = Study(
        space=SPACE,
        objectives=[Objective("f1"), Objective("f2")],
        strategy=NSGA2Strategy(population_size=8, seed=3),
    )
    b = Study(
        space=SPACE,
        objectives=[Objective("f1"), Objective("f2")],
        strategy=NSGA2Strategy(population_size=8, seed=3),
    )
    a.optimize(zdt1, n_trials=40)
    b.optimize(zdt1, n_trials=40)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_failed_members_do_not_stall_a_generation():
    def sometimes_fails(trial):
        if trial.params["x1"] % 2:
            raise ValueError("odd")
        return zdt1(trial)

    s = NSGA2Strategy(population_size=6, seed=0)
    study = Study(space=SPACE, objectives=[Objective("f1"), Objective("f2")], strategy=s)
    study.optimize(sometimes_fails, n_trials=36)
    assert s.generation >= 5
    assert all(t.feasible for t in study.best_trials)


def test_a_point_evaluated_in_an_earlier_generation_is_not_proposed_again():
    from search import Choice, NSGA2Strategy, Objective, Space, Study

    space = Space(
        {"a": Choice(list(range(6))), "b": Choice(list(range(6))), "c": Choice([0, 1])}
    )  # 72 points
    study = Study(
        space=space,
        objectives=[Objective("f1"), Objective("f2")],
        strategy=NSGA2Strategy(population_size=8, seed=0),
    )
    study.optimize(
        lambda t: {"f1": t.params["a"] + t.params["c"], "f2": (5 - t.params["a"]) * t.params["b"]},
        n_trials=60,
    )
    keys = [tuple(t.params.values()) for t in study.trials]
    assert len(set(keys)) == len(keys) == 60  # the budget goes to new points only
    study.optimize(
        lambda t: {"f1": 0.0, "f2": 0.0}, n_trials=40
    )  # more than the space holds: repeats, no hang
    assert len({tuple(t.params.values()) for t in study.trials}) == 72
