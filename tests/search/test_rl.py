"""REINFORCE: the policy concentrates on the optimum, learns to avoid infeasible points, and is validated."""

import numpy as np
import pytest

from search import Choice, Constraint, Float, Integer, Objective, RLStrategy, Space, Study, Trial, TrialState

TOY = Space({"a": Choice([0, 1, 2, 3]), "b": Choice(["p", "q", "r", "s"]), "c": Choice([16, 32, 64])})


def toy(trial):
    p = trial.params
    return {"err": abs(p["a"] - 2) + (p["b"] != "r") + abs(np.log2(p["c"]) - 5)}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_policy_concentrates_on_the_optimum_of_a_toy_problem(seed):
    s = RLStrategy(seed=seed)
    study = Study(space=TOY, objectives=[Objective("err")], strategy=s)
    study.optimize(toy, n_trials=150)
    policy = s.policy()
    assert policy["a"][2] > 0.6 and policy["b"]["r"] > 0.5 and policy["c"][32] > 0.6, policy
    late = [t.values[0] for t in study.trials[-30:]]
    early = [t.values[0] for t in study.trials[:30]]
    assert np.mean(late) < 0.5 * np.mean(early)


def test_a_maximized_objective_and_the_hypervolume_reward_learn_too():
    s = RLStrategy(reward="hypervolume", seed=0)
    objectives = [Objective("score", "maximize"), Objective("size")]
    study = Study(space=TOY, objectives=objectives, strategy=s)
    study.optimize(lambda t: {"score": -toy(t)["err"], "size": 0.0}, n_trials=150)
    assert max(s.policy()["a"], key=s.policy()["a"].get) == 2


def test_the_policy_learns_to_stay_feasible():
    """Minimising ``a`` pulls towards 0, the constraint ``a >= 2`` forbids 0 and 1: 2 is the best feasible."""
    space = Space({"a": Choice([0, 1, 2, 3, 4, 5])})
    s = RLStrategy(seed=0)
    study = Study(
        space=space, objectives=[Objective("a")], strategy=s, constraints=[Constraint.parse("a >= 2")]
    )
    study.optimize(lambda t: {"a": float(t.params["a"])}, n_trials=150)
    policy = s.policy()["a"]
    assert max(policy, key=policy.get) == 2
    assert policy[0] + policy[1] < 0.15


def test_a_failed_trial_is_punished_more_than_an_infeasible_one_and_that_more_than_a_feasible_one():
    space = Space({"a": Choice(["x", "y", "z"])})
    outcomes = {
        "feasible": {"state": TrialState.COMPLETE, "values": (1.0,), "violation": 0.0},
        "infeasible": {"state": TrialState.COMPLETE, "values": (0.0,), "violation": 3.0},
        "failed": {"state": TrialState.FAILED, "values": None, "violation": None},
    }
    after = {}
    for name, outcome in outcomes.items():
        s = RLStrategy(seed=0)
        s.setup(space, [Objective("f")])
        s.tell(Trial(number=0, params={"a": "x"}, state=TrialState.COMPLETE, values=(1.0,), violation=0.0))
        s.tell(Trial(number=1, params={"a": "y"}, **outcome))
        after[name] = s.policy()["a"]["y"]
    assert after["feasible"] > after["infeasible"] > after["failed"], after


def test_integers_and_floats_are_binned_log_aware():
    s = RLStrategy(bins=4, seed=0)
    s.setup(
        Space({"n": Integer(0, 90), "k": Integer(1, 3), "lr": Float(1e-4, 1e-1, log=True)}), [Objective("f")]
    )
    policy = s.policy()
    assert list(policy["n"]) == [0, 30, 60, 90]
    assert list(policy["k"]) == [1, 2, 3]
    assert list(policy["lr"]) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert all(p == pytest.approx(1 / 4) for p in policy["lr"].values())


def test_bad_settings_are_refused():
    for kwargs, message in [
        ({"lr": 0.0}, "lr"),
        ({"entropy": -1.0}, "entropy"),
        ({"baseline_decay": 1.0}, "baseline_decay"),
        ({"bins": 1}, "bins"),
        ({"reward": "accuracy"}, "reward"),
    ]:
        with pytest.raises(ValueError, match=message):
            RLStrategy(**kwargs)
