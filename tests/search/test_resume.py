"""Resuming a stored study: replay rebuilds the strategy, RUNNING trials run again, nothing is lost."""

from __future__ import annotations

import sqlite3

import pytest

from search import (
    Choice,
    Integer,
    NSGA2Strategy,
    Objective,
    RandomStrategy,
    Space,
    SQLiteStorage,
    StorageError,
    Study,
    TrialState,
)

SPACE = Space({"a": Choice([1, 2, 3, 4, 5]), "b": Integer(0, 9), "c": Choice(["x", "y", "z"])})
OBJECTIVES = [Objective("f1"), Objective("f2")]


def evaluate(trial):
    p = trial.params
    bonus = {"x": 0.0, "y": 0.5, "z": 1.0}[p["c"]]
    return {"f1": p["a"] + 0.1 * p["b"] + bonus, "f2": (6 - p["a"]) ** 2 + 0.2 * (9 - p["b"]) + bonus}


def make_strategy(kind: str, seed: int = 3):
    return NSGA2Strategy(population_size=6, seed=seed) if kind == "nsga2" else RandomStrategy(seed=seed)


def make_study(path, kind: str, seed: int = 3, space: Space = SPACE) -> Study:
    return Study(
        space=space, objectives=OBJECTIVES, strategy=make_strategy(kind, seed), storage=SQLiteStorage(path)
    )


def history(study: Study) -> list[tuple]:
    return [(t.number, dict(t.params), t.state.value, t.values) for t in study.trials]


@pytest.mark.parametrize("kind", ["nsga2", "random"])
@pytest.mark.parametrize("stop_after", [0, 5, 6, 13])
def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, kind, stop_after):
    total = 30
    reference = make_study(tmp_path / "ref.db", kind)
    reference.optimize(evaluate, n_trials=total)

    crashed = make_study(tmp_path / "run.db", kind)
    crashed.optimize(evaluate, n_trials=stop_after)
    running = crashed.ask()  # asked, never told: the process dies while evaluating it
    assert running is not None
    crashed.storage.close()

    resumed = make_study(tmp_path / "run.db", kind)
    assert [t.number for t in resumed.pending] == [running.number]
    finished = sum(t.state.finished for t in resumed.trials)
    resumed.optimize(evaluate, n_trials=total - finished)
    assert history(resumed) == history(reference)
    assert {t.number for t in resumed.best_trials} == {t.number for t in reference.best_trials}
    rerun = resumed.storage.get_trial(running.number)
    assert rerun.state is TrialState.COMPLETE and rerun.attrs["attempts"] == 2


def test_enqueued_trials_are_replayed_without_asking_the_strategy(tmp_path):
    reference = make_study(tmp_path / "ref.db", "nsga2")
    reference.enqueue({"a": 5, "b": 0, "c": "x"})
    reference.optimize(evaluate, n_trials=20)

    first = make_study(tmp_path / "run.db", "nsga2")
    first.enqueue({"a": 5, "b": 0, "c": "x"})
    first.optimize(evaluate, n_trials=8)
    first.storage.close()
    resumed = make_study(tmp_path / "run.db", "nsga2")
    resumed.optimize(evaluate, n_trials=12)
    assert history(resumed) == history(reference)


def test_resume_with_another_space_is_refused_and_the_file_untouched(tmp_path):
    path = tmp_path / "run.db"
    study = make_study(path, "random")
    study.optimize(evaluate, n_trials=4)
    study.storage.close()
    before = path.read_bytes()
    other = Space({"a": Choice([1, 2, 3]), "b": Integer(0, 9), "c": Choice(["x", "y", "z"])})
    with pytest.raises(StorageError, match=r"search space changed .*parameters changed \['a'\]"):
        make_study(path, "random", space=other)
    assert path.read_bytes() == before


def test_resume_with_another_seed_says_what_went_wrong(tmp_path):
    path = tmp_path / "run.db"
    study = make_study(path, "random", seed=1)
    study.optimize(evaluate, n_trials=4)
    study.storage.close()
    with pytest.raises(StorageError, match="seed or a strategy setting"):
        make_study(path, "random", seed=2)


def test_resume_with_other_objectives_or_strategy_is_refused(tmp_path):
    path = tmp_path / "run.db"
    study = make_study(path, "random")
    study.optimize(evaluate, n_trials=3)
    study.storage.close()
    with pytest.raises(StorageError, match="objectives changed"):
        Study(
            space=SPACE,
            objectives=[Objective("f1")],
            strategy=RandomStrategy(seed=3),
            storage=SQLiteStorage(path),
        )
    with pytest.raises(StorageError, match="searched with 'random', not 'nsga2'"):
        make_study(path, "nsga2")


def test_tell_order_is_replayed_when_results_arrive_out_of_order(tmp_path):
    """Evaluations in parallel finish in any order; replay follows the order they were told in."""
    path = tmp_path / "run.db"
    study = make_study(path, "nsga2")
    asked = [study.ask() for _ in range(6)]
    for t in reversed(asked):
        study.tell(t, evaluate(t))
    study.optimize(evaluate, n_trials=7)
    expected = history(study)
    nxt = study.ask()
    study.storage.close()
    resumed = make_study(path, "nsga2")
    assert history(resumed)[: len(expected)] == expected
    again = resumed.ask()
    assert again.number == nxt.number and dict(again.params) == dict(nxt.params)


def test_a_study_file_edited_by_hand_is_reported(tmp_path):
    path = tmp_path / "run.db"
    study = make_study(path, "random")
    study.optimize(evaluate, n_trials=3)
    study.storage.close()
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE trials SET params = \'{"a": 99, "b": 0, "c": "x"}\' WHERE number = 1')
    with pytest.raises(StorageError, match="trial 1"):
        make_study(path, "random")


def test_a_study_resumes_with_the_network_map_it_was_searched_with(tmp_path):
    from search import BayesStrategy

    space = Space({"gate": Choice(["off", "on"]), "op": Choice(["a", "b", "c", "d", "e"])})

    def network(p):
        return {"gate": p["gate"], "op": p["op"] if p["gate"] == "on" else "a"}

    def values(trial):
        p = trial.params
        return {"f1": "abcde".index(p["op"]) * (p["gate"] == "on"), "f2": 1.0 + 0.1 * "abcde".index(p["op"])}

    def study(path, network_map):
        objectives = [Objective("f1"), Objective("f2", of_network=False)]
        strategy = BayesStrategy(seed=3, n_initial=3)
        return Study(space=space, objectives=objectives, strategy=strategy, storage=SQLiteStorage(path), network=network_map)

    path = tmp_path / "study.db"
    study(path, network).optimize(values, n_trials=6)
    resumed = study(path, network)  # the replay proposes what the stored history holds
    assert len(resumed.trials) == 6 and resumed.strategy.network is network
    resumed.optimize(values, n_trials=2)
    with pytest.raises(StorageError, match="searched with a network map"):
        study(path, None)
    # a study stored without a map (or before maps were recorded) resumes without one, a map given or not
    old = tmp_path / "old.db"
    study(old, None).optimize(values, n_trials=6)
    with sqlite3.connect(old) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'network'")
    again = study(old, network)
    assert len(again.trials) == 6 and again.strategy.network is None
    again.optimize(values, n_trials=2)
    assert len(again.trials) == 8
