"""Bayesian multi-fidelity search: beats random search, successive halving promotes the right configurations,
infeasible regions are avoided, and the optional BoTorch backend is optional."""

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from zdt import SPACE as ZDT_SPACE
from zdt import hypervolume_after, zdt

from search import (
    BayesStrategy,
    Choice,
    Constraint,
    Float,
    Integer,
    Objective,
    RandomStrategy,
    Space,
    Study,
    TrialState,
    non_dominated_mask,
)
from search._gp import GaussianProcess, normal_cdf
from search._hyperband import hyperband_schedule
from search._ranking import feasible_first_order


@pytest.mark.parametrize("kind", [1, 2])
def test_bayes_beats_random_search_on_zdt_at_a_fixed_budget(kind):
    for seed in (0, 1):
        bayes = hypervolume_after(BayesStrategy(seed=seed), 40, kind)
        rand = hypervolume_after(RandomStrategy(seed=seed), 40, kind)
        assert bayes > rand + 0.3, (seed, bayes, rand)


def test_multi_fidelity_bayes_beats_random_search_at_the_same_evaluation_cost():
    """Low fidelities are cheap and biased (as a validation subset is): fidelity 1 is the truth.

    Both searches get the same cost (the sum of the fidelities of their trials); the hypervolume counts
    full-fidelity results only.
    """

    def evaluate(trial):
        out = zdt(trial)
        bias = (1.0 - trial.fidelity) * 0.3 * math.sin(7.0 * trial.params["x1"])
        return {"f1": out["f1"], "f2": out["f2"] + bias}

    def full_fidelity_hv(study):
        F = np.array([t.values for t in study.trials if t.state is TrialState.COMPLETE and t.fidelity == 1.0])
        from search import hypervolume

        return hypervolume(F[non_dominated_mask(F)], [1.1, 11.0])

    for seed in (0, 1):
        study = Study(
            space=ZDT_SPACE,
            objectives=[Objective("f1"), Objective("f2")],
            strategy=BayesStrategy(min_fidelity=1 / 9, eta=3, seed=seed),
        )
        cost = 0.0
        while cost < 30.0:
            trial = study.ask()
            study.tell(trial, evaluate(trial))
            cost += trial.fidelity
        rand = Study(
            space=ZDT_SPACE, objectives=[Objective("f1"), Objective("f2")], strategy=RandomStrategy(seed=seed)
        )
        rand.optimize(evaluate, n_trials=30)
        assert full_fidelity_hv(study) > full_fidelity_hv(rand), seed


# -- successive halving --------------------------------------------------------------------------------
def test_hyperband_brackets_follow_li_et_al():
    assert hyperband_schedule(1 / 9, 3) == [
        ([1 / 9, 1 / 3, 1.0], [9, 3, 1]),
        ([1 / 3, 1.0], [5, 1]),
        ([1.0], [3]),
    ]
    assert hyperband_schedule(1.0, 3) == [([1.0], [1])]
    assert hyperband_schedule(0.25, 2)[0] == ([0.25, 0.5, 1.0], [4, 2, 1])


SH_SPACE = Space({"x": Integer(0, 30), "y": Integer(0, 30), "c": Choice(["a", "b"])})


def sh_objective(trial):
    x, y = trial.params["x"] / 30, trial.params["y"] / 30
    return {"f1": x + 0.1 * y, "f2": (1 - x) ** 2 + 0.2 * y, "latency_ms": 10 * y}


def rung(study, bracket, r):
    return [t for t in study.trials if t.attrs.get("bracket") == bracket and t.attrs.get("rung") == r]


@pytest.mark.parametrize("seed, promotion", [(0, "crowding"), (1, "crowding"), (2, "hypervolume")])
def test_successive_halving_promotes_the_non_dominated_configurations_and_the_right_number_per_rung(
    seed, promotion
):
    strategy = BayesStrategy(min_fidelity=1 / 9, eta=3, n_initial=100, promotion=promotion, seed=seed)
    study = Study(space=SH_SPACE, objectives=[Objective("f1"), Objective("f2")], strategy=strategy)
    study.optimize(sh_objective, n_trials=9 + 3 + 1 + 5 + 1 + 3)
    for bracket, (fidelities, sizes) in enumerate(hyperband_schedule(1 / 9, 3)):
        for r, (fidelity, size) in enumerate(zip(fidelities, sizes)):
            members = rung(study, bracket, r)
            assert len(members) == size and all(t.fidelity == fidelity for t in members)
            if r == 0:
                continue
            below = rung(study, bracket, r - 1)
            F = np.array([t.values for t in below])
            front = [dict(t.params) for t, keep in zip(below, non_dominated_mask(F)) if keep]
            promoted = [dict(t.params) for t in members]
            assert all(p in [dict(t.params) for t in below] for p in promoted)  # same params, higher fidelity
            if len(front) <= size:
                assert all(p in promoted for p in front)
            else:
                assert all(p in front for p in promoted)


def test_promotion_puts_feasible_configurations_first_and_never_promotes_failed_ones():
    def evaluate(trial):
        if trial.params["c"] == "b" and trial.params["x"] > 15:
            raise RuntimeError("diverged")
        return sh_objective(trial)

    strategy = BayesStrategy(min_fidelity=1 / 9, eta=3, n_initial=100, seed=4)
    study = Study(
        space=SH_SPACE,
        objectives=[Objective("f1"), Objective("f2")],
        strategy=strategy,
        constraints=[Constraint.parse("latency_ms <= 5")],
    )
    study.optimize(evaluate, n_trials=40)
    for bracket in range(4):
        for r in (1, 2):
            below, members = rung(study, bracket, r - 1), rung(study, bracket, r)
            if not members:
                continue
            by_params = {tuple(t.params.values()): t for t in below}
            chosen = [by_params[tuple(t.params.values())] for t in members]
            assert all(t.state is TrialState.COMPLETE for t in chosen)
            complete = [t for t in below if t.state is TrialState.COMPLETE]
            order = feasible_first_order([t.values for t in complete], [t.violation for t in complete])
            expected = {tuple(complete[i].params.values()) for i in order[: len(members)]}
            assert {tuple(t.params.values()) for t in chosen} == expected
            n_feasible = sum(t.feasible for t in complete)
            assert sum(t.feasible for t in chosen) == min(n_feasible, len(members))


def test_min_fidelity_one_is_plain_bayesian_optimisation():
    study = Study(space=SH_SPACE, objectives=[Objective("f1")], strategy=BayesStrategy(n_initial=3, seed=0))
    study.optimize(sh_objective, n_trials=8)
    assert all(t.fidelity == 1.0 and t.attrs["rung"] == 0 for t in study.trials)
    assert len({tuple(t.params.values()) for t in study.trials}) == 8


# -- the surrogate and the acquisition -----------------------------------------------------------------
def test_the_acquisition_leaves_the_infeasible_region():
    """Minimising ``x`` pulls to 0; the constraint ``x >= 0.6`` makes 0.6 the best feasible point."""
    space = Space({"x": Float(0.0, 1.0), "k": Choice([1, 2, 3])})

    def evaluate(trial):
        return {"f": trial.params["x"] + 0.01 * trial.params["k"], "x": trial.params["x"]}

    def search(strategy):
        study = Study(
            space=space,
            objectives=[Objective("f")],
            strategy=strategy,
            constraints=[Constraint.parse("x >= 0.6")],
        )
        study.optimize(evaluate, n_trials=25)
        best = min(t.values[0] for t in study.trials if t.feasible)
        return best, np.mean([t.violation for t in study.trials[10:]])

    for seed in (0, 1):
        best, violation = search(BayesStrategy(n_initial=8, seed=seed))
        best_random, violation_random = search(RandomStrategy(seed=seed))
        # it closes in on the boundary from both sides, infeasible by small margins only
        assert best < 0.63 and best <= best_random, (seed, best, best_random)
        assert violation < 0.2 * violation_random, (seed, violation, violation_random)


def test_the_gp_fits_a_smooth_function_and_its_likelihood_gradient_is_exact():
    rng = np.random.default_rng(0)
    X = rng.random((25, 2))

    def f(X):
        return np.sin(5 * X[:, 0]) + X[:, 1] ** 2

    gp = GaussianProcess(2).fit(X, f(X))
    Xt = rng.random((200, 2))
    mean, var = gp.predict(Xt)
    assert np.sqrt(np.mean((mean - f(Xt)) ** 2)) < 0.1 * np.std(f(Xt))
    _, var_seen = gp.predict(X)
    assert np.all(var_seen < 1e-2) and np.all(var > 0)
    assert np.array_equal(gp.predict_mean(Xt), mean)  # the mean alone is the same mean
    z = (f(X) - f(X).mean()) / f(X).std()
    theta = np.array([-1.0, 0.5, 0.2, -4.0])
    _, grad = gp._objective(theta, X, z)
    numeric = [
        (gp._objective(theta + e, X, z)[0] - gp._objective(theta - e, X, z)[0]) / 2e-6
        for e in np.eye(4) * 1e-6
    ]
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_hyperparameters_of_many_points_are_estimated_on_a_reproducible_subset_and_conditioned_on_all():
    rng = np.random.default_rng(1)
    X = rng.random((60, 2))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2
    seen: list[int] = []
    gp = GaussianProcess(2)
    objective = gp._objective

    def counting(theta, Xf, zf):
        seen.append(len(Xf))
        return objective(theta, Xf, zf)

    gp._objective = counting  # type: ignore[method-assign]
    gp.fit(X, y, max_fit_points=25)
    assert seen and max(seen) == 25  # every likelihood evaluation on 25 of the 60 points
    mean, var = gp.predict(X)
    assert np.max(np.abs(mean - y)) < 0.05 and np.all(var < 1e-2)  # conditioned on all 60
    again = GaussianProcess(2).fit(X, y, max_fit_points=25)
    assert np.array_equal(again.theta, gp.theta)  # the subset is the same each time
    whole = GaussianProcess(2).fit(X, y, max_fit_points=None)
    assert not np.array_equal(whole.theta, gp.theta)


def test_normal_cdf_matches_erf():
    z = np.linspace(-6, 6, 121)
    exact = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    assert np.max(np.abs(normal_cdf(z) - exact)) < 2e-7


def test_bad_settings_are_refused():
    for kwargs, message in [
        ({"min_fidelity": 0.0}, "min_fidelity"),
        ({"min_fidelity": 1.5}, "min_fidelity"),
        ({"eta": 1}, "eta"),
        ({"eta": 2.5}, "eta"),
        ({"n_initial": 0}, "n_initial"),
        ({"n_candidates": 0}, "n_candidates"),
        ({"backend": "sklearn"}, "backend"),
        ({"promotion": "random"}, "promotion"),
        ({"ehvi_many": "yes"}, "ehvi_many"),
        ({"mc_samples": 0}, "mc_samples"),
        ({"mc_samples": 512.0}, "mc_samples"),
    ]:
        with pytest.raises(ValueError, match=message):
            BayesStrategy(**kwargs)


# -- the optional BoTorch backend ----------------------------------------------------------------------
def test_the_botorch_backend_names_the_extra_when_botorch_is_missing():
    code = (
        "import sys; sys.modules['botorch'] = None\n"
        "from search import BayesStrategy\n"
        "try:\n    BayesStrategy(backend='botorch')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "pip install hwnas[bayes]" in out.stdout, out.stdout + out.stderr


@pytest.mark.slow  # imports torch and BoTorch and fits Gaussian processes: about a minute on 2 cores
def test_the_botorch_backend_proposes_valid_points():
    pytest.importorskip("botorch")
    space = Space({"x": Float(0.0, 1.0), "k": Choice([1, 2, 3])}, forbid=[{"k": 3}])
    strategy = BayesStrategy(backend="botorch", n_initial=4, n_candidates=32, seed=0)
    study = Study(space=space, objectives=[Objective("f1"), Objective("f2", "maximize")], strategy=strategy)
    study.optimize(lambda t: {"f1": t.params["x"] * t.params["k"], "f2": t.params["x"]}, n_trials=6)
    for t in study.trials:
        space.validate(t.params)
    assert len({tuple(t.params.values()) for t in study.trials}) == 6


def test_the_botorch_backend_never_compiles_a_cpp_kernel_in_the_search(monkeypatch):
    # BoTorch 0.17+ builds a fused C++ kernel on first use: minutes of compiling, and a wait without end
    # behind the lock file of a process killed while compiling. The search takes the pure-Python path.
    pytest.importorskip("botorch")
    import importlib

    import torch.utils.cpp_extension

    logei = importlib.import_module("botorch.acquisition.multi_objective.logei")
    if not hasattr(logei, "_load_attempted"):
        pytest.skip("this BoTorch has no fused kernel")
    monkeypatch.setattr(logei, "_load_attempted", False)  # as in a fresh process

    def _refuse(*args, **kwargs):
        raise AssertionError("a C++ extension was compiled")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", _refuse)
    from search._botorch import select

    rng = np.random.default_rng(0)
    X = rng.random((6, 2))
    F = np.column_stack([X[:, 0], 1 - X[:, 0] * X[:, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # BoTorch's fallback warns when the compile fails
        k = select(X, F, rng.random((8, 2)), X, seed=0)
    assert 0 <= k < 8


# -- objective scaling, acquisition ------------------------------------------------------------------------
def test_objective_scalings_keep_the_order_and_tame_bad_outliers_only():
    from search._bayes import _clip_outliers, _normal_scores

    rng = np.random.default_rng(0)
    err = np.concatenate([rng.normal(10.0, 1.0, 95), [90.0] * 5])  # five degenerate cells at 90 % error
    F = np.column_stack([err, rng.random(100)])
    ranks = _normal_scores(F)
    assert np.array_equal(np.argsort(ranks[:, 0], kind="stable"), np.argsort(F[:, 0], kind="stable"))
    assert np.allclose(ranks[err == 90.0, 0], ranks[err == 90.0, 0][0])  # ties share one score
    good = err < 50
    spread = ranks[good, 0].max() - ranks[good, 0].min()
    assert spread > 0.8 * (ranks[:, 0].max() - ranks[:, 0].min())  # the outliers no longer take the range
    clipped = _clip_outliers(F)
    assert clipped[:, 0].max() < 20.0 and np.array_equal(clipped[good, 0], F[good, 0])
    assert np.array_equal(clipped[:, 1], F[:, 1])  # no outliers: unchanged
    flat = np.column_stack([np.r_[np.zeros(90), np.arange(10.0)], np.zeros(100)])
    assert np.array_equal(_clip_outliers(flat), flat)  # IQR 0: nothing to measure outliers by


def test_the_2d_hypervolume_improvement_is_exact():
    from search import hypervolume
    from search._bayes import _hypervolume_improvement_2d

    front = np.array([[0.2, 0.8], [0.5, 0.4], [0.9, 0.1]])
    points = np.random.default_rng(1).random((300, 2)) * 1.3
    exact = [
        hypervolume(np.vstack([front, p]), [1.1, 1.1]) - hypervolume(front, [1.1, 1.1])
        if np.all(p < 1.1)
        else 0.0
        for p in points
    ]
    assert np.allclose(_hypervolume_improvement_2d(points, front, 1.1), exact, atol=1e-12)
    assert np.all(_hypervolume_improvement_2d(front, front, 1.1) == 0.0)


def test_the_monte_carlo_hypervolume_improvement_of_three_objectives_matches_the_exact_one():
    from scipy.stats import spearmanr

    from search import hypervolume
    from search._bayes import _MonteCarloImprovement

    rng = np.random.default_rng(3)
    front = rng.random((8, 3))
    front = front[non_dominated_mask(front)]
    points = np.vstack([rng.random((40, 3)) * 1.2 - 0.1, front[:2]])  # some outside the box, two on the front
    low = np.minimum(points.min(axis=0), front.min(axis=0))
    estimate = _MonteCarloImprovement(front, 1.1, low, np.random.default_rng(0))(points[None])[0]
    exact = np.array(
        [
            hypervolume(np.vstack([front, p]), [1.1] * 3) - hypervolume(front, [1.1] * 3) if np.all(p < 1.1) else 0.0
            for p in points
        ]
    )
    box = float(np.prod(1.1 - low))
    assert np.max(np.abs(estimate - exact)) < 0.03 * box, (estimate, exact)
    assert np.all(estimate[-2:] == 0.0)  # a point of the front adds nothing
    # the order the acquisition acts on: the estimate ranks the improving points as the exact values do
    improving = exact > 0
    assert improving.sum() >= 10
    assert spearmanr(estimate[improving], exact[improving])[0] > 0.9


def test_the_monte_carlo_improvement_counts_exactly_the_free_samples_a_point_dominates():
    from search._bayes import _MonteCarloImprovement

    rng = np.random.default_rng(5)
    for m in (3, 4):
        front = rng.integers(0, 4, size=(6, m)) / 4.0  # ties between points and samples on a grid
        improvement = _MonteCarloImprovement(front, 1.1, np.zeros(m), np.random.default_rng(1))
        improvement._free = np.vstack([improvement._free, rng.integers(0, 4, size=(50, m)) / 4.0])
        points = rng.integers(0, 5, size=(2, 300, m)) / 4.0  # more than one block of 256, two batches
        counts = np.all(points[..., None, :] <= improvement._free, axis=-1).sum(axis=-1)
        assert np.array_equal(improvement(points), counts * improvement._cell)


def test_scalings_and_the_categorical_kernel_are_options():
    with pytest.raises(ValueError, match="scaling must be one of"):
        BayesStrategy(scaling="ranks")
    with pytest.raises(ValueError, match="categorical must be one of"):
        BayesStrategy(categorical="onehot")
    with pytest.raises(ValueError, match="acquisition must be one of"):
        BayesStrategy(acquisition="ei")
    gp = GaussianProcess(5, groups=[0, 0, 0, 1, 2])
    assert gp.lengthscales.shape == (5,) and gp.lengthscales[0] == gp.lengthscales[2]
    with pytest.raises(ValueError, match="groups must give"):
        GaussianProcess(3, groups=[0, 2, 2])


def test_the_likelihood_gradient_is_exact_with_shared_lengthscales():
    rng = np.random.default_rng(2)
    X = np.column_stack([np.eye(3)[rng.integers(3, size=20)], rng.random(20)])  # a one-hot block and a number
    z = rng.standard_normal(20)
    gp = GaussianProcess(4, groups=[0, 0, 0, 1])
    theta = np.array([-0.5, 0.3, 0.1, -3.0])
    _, grad = gp._objective(theta, X, z)
    numeric = [
        (gp._objective(theta + e, X, z)[0] - gp._objective(theta - e, X, z)[0]) / 2e-6
        for e in np.eye(4) * 1e-6
    ]
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_automatic_scaling_uses_ranks_wherever_the_acquisition_is_the_hypervolume_improvement():
    from search._bayes import _clip_outliers, _normal_scores

    def scaled(n_objectives, **options):
        s = BayesStrategy(seed=0, **options)
        s.setup(Space({"x": Choice(["a", "b", "c"])}), [Objective(f"f{i}") for i in range(n_objectives)])
        s._X = [[0.0]] * 8
        F = np.column_stack([np.r_[np.arange(7.0), 90.0]] * n_objectives)  # one outlier at 90
        return s._scaled(F)[1], F

    for n_objectives, options, transform in (
        (2, {}, _normal_scores),
        (3, {}, _clip_outliers),  # ParEGO
        (3, {"ehvi_many": True}, _normal_scores),
        (3, {"ehvi_many": True, "acquisition": "parego"}, _clip_outliers),
        (3, {"ehvi_many": True, "scaling": "robust"}, _clip_outliers),
    ):
        got, F = scaled(n_objectives, **options)
        assert np.array_equal(got, transform(F)), (n_objectives, options)


# -- the network map: objectives of the network modelled over the networks -------------------------------

_GATE_SPACE = Space({"gate": Choice(["off", "on"]), "op": Choice(["a", "b", "c", "d", "e"])})
_OP_VALUE = {"a": 0.1, "b": 0.9, "c": 0.4, "d": 0.7, "e": 0.2}


def _gate_network(params):
    """``op`` is inactive while the gate is off: the network is then the one with ``op`` at ``"a"``."""
    return {"gate": params["gate"], "op": params["op"] if params["gate"] == "on" else "a"}


def _gate_values(params):
    on = params["gate"] == "on"
    return {"error": _OP_VALUE[params["op"]] if on else 0.5, "latency": 1.0 + 0.1 * "abcde".index(params["op"])}


def _gate_strategy(network, latency_of_network=False):
    objectives = [Objective("error"), Objective("latency", of_network=latency_of_network)]
    strategy = BayesStrategy(seed=0, n_initial=3)
    study = Study(space=_GATE_SPACE, objectives=objectives, strategy=strategy, network=network)
    for gate, op in [("off", "b"), ("off", "c"), ("off", "d"), ("on", "a"), ("on", "b"), ("on", "c")]:
        study.enqueue({"gate": gate, "op": op})
    for _ in range(6):
        trial = study.ask()
        study.tell(trial, _gate_values(trial.params))
    return strategy


def _predict(strategy, j, points):
    """Posterior mean and variance of objective ``j`` at ``points``, as the strategy's acquisition sees them."""
    X = np.array(strategy._X)
    F = strategy._scaled(np.array(strategy._F))[1]
    net = strategy._of_network[j]
    gp = strategy._fit(j, np.array(strategy._Xn) if net else X, F[:, j])
    Xc = strategy._encoder.encode(points, [1.0] * len(points))
    return gp.predict(strategy._encode_networks(points, [1.0] * len(points)) if net else Xc)


def test_with_a_network_map_points_of_one_network_are_one_input_to_the_models_of_the_network():
    strategy = _gate_strategy(_gate_network)
    assert strategy._of_network == [True, False]
    unseen = [{"gate": "off", "op": "e"}, {"gate": "off", "op": "a"}]  # both the network ("off", "a")
    mean, var = _predict(strategy, 0, unseen)
    assert mean[0] == pytest.approx(mean[1]) and var[0] == pytest.approx(var[1])
    # three gate-off points were told: their network is known, so an unseen gate-off point is certain
    _, var_without = _predict(_gate_strategy(None), 0, unseen)
    assert var[0] < 0.2 * var_without[0], (var, var_without)
    # latency is not of the network here: the two points stay apart
    lat_mean, _ = _predict(strategy, 1, unseen)
    assert abs(lat_mean[0] - lat_mean[1]) > 1e-3
    # and with of_network=True it too is modelled over the networks
    tied = _gate_strategy(_gate_network, latency_of_network=True)
    lat_mean, _ = _predict(tied, 1, unseen)
    assert lat_mean[0] == pytest.approx(lat_mean[1])


def test_the_network_map_changes_the_proposals_and_is_ignored_without_one():
    def run(network):
        study = Study(
            space=_GATE_SPACE,
            objectives=[Objective("error"), Objective("latency", of_network=False)],
            strategy=BayesStrategy(seed=1, n_initial=3),
            network=network,
        )
        out = []
        for _ in range(8):
            trial = study.ask()
            out.append((trial.params["gate"], trial.params["op"]))
            study.tell(trial, _gate_values(trial.params))
        return out

    assert run(_gate_network) != run(None)
    # an identity map sends every point to itself: exactly the proposals without a map
    assert run(lambda p: dict(p)) == run(None)


@pytest.mark.parametrize(
    "network, message",
    [
        (lambda p: {**p, "op": "z"}, "network map failed"),
        (lambda p: {"gate": p["gate"]}, "missing"),
        (lambda p: {**p, "op": "b" if p["op"] == "a" else "a"}, "not idempotent"),
        ("a string", "must be a function"),
    ],
)
def test_a_bad_network_map_is_refused_before_anything_runs(network, message):
    with pytest.raises(ValueError, match=message):
        Study(
            space=_GATE_SPACE,
            objectives=[Objective("error")],
            strategy=BayesStrategy(seed=0),
            network=network,
        )


def test_auto_hands_the_network_map_to_the_strategy_it_picks():
    from search import make_strategy

    strategy = make_strategy("auto", seed=0, budget=50)
    Study(space=_GATE_SPACE, objectives=[Objective("error"), Objective("latency")], strategy=strategy, network=_gate_network)
    assert strategy.chosen == "bayes"
    assert strategy._inner.network is _gate_network and strategy._inner._of_network == [True, True]
