import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from search import (
    Choice,
    Constraint,
    Integer,
    NSGA2Strategy,
    Objective,
    RandomStrategy,
    Space,
    SQLiteStorage,
    StorageError,
    Study,
    TrialState,
    hypervolume,
    non_dominated_mask,
)

SPACE = Space({"x": Integer(0, 20), "y": Choice([0, 1, 2])})
OBJ = [Objective("a"), Objective("b")]


def f(trial):
    x, y = trial.params["x"], trial.params["y"]
    return {"a": x + y, "b": 20 - x + y, "extra": 1.0}


def test_failures_are_isolated_and_never_reach_the_strategy_as_nan():
    seen = []

    class Spy(RandomStrategy):
        def tell(self, trial):
            seen.append(trial)

    def flaky(trial):
        x = trial.params["x"]
        if x % 3 == 0:
            raise RuntimeError("boom")
        if x % 3 == 1:
            return {"a": math.nan, "b": 1.0}
        return {"a": float(x), "b": 1.0}

    study = Study(space=SPACE, objectives=OBJ, strategy=Spy(seed=0))
    study.optimize(flaky, n_trials=30)
    states = {t.state for t in study.trials}
    assert states <= {TrialState.COMPLETE, TrialState.FAILED} and len(study.trials) == 30
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert failed and all(t.error for t in failed)
    assert any("boom" in t.error for t in failed) and any("nan" in t.error for t in failed)
    assert all(t.values is None for t in seen if t.state is TrialState.FAILED)
    assert all(t.params["x"] % 3 == 2 for t in study.best_trials)


def test_constraints_put_feasible_points_first():
    study = Study(
        space=SPACE, objectives=OBJ, strategy=RandomStrategy(seed=1), constraints=[Constraint.parse("a <= 5")]
    )
    study.optimize(f, n_trials=40)
    front = study.best_trials
    assert front and all(t.metrics["a"] <= 5 for t in front)
    assert any(t.violation > 0 for t in study.trials)


def test_constraint_parsing_errors():
    with pytest.raises(ValueError, match="METRIC <= NUMBER"):
        Constraint.parse("latency < 3")
    c = Constraint.parse("acc >= 0.9")
    assert c.violation({"acc": 0.8}) == pytest.approx(0.1) and c.violation({}) == math.inf


def test_enqueue_runs_first_and_validates():
    study = Study(space=SPACE, objectives=OBJ, strategy=RandomStrategy(seed=0))
    study.enqueue({"x": 7, "y": 2})
    with pytest.raises(ValueError):
        study.enqueue({"x": 99, "y": 0})
    study.optimize(f, n_trials=2)
    assert dict(study.trials[0].params) == {"x": 7, "y": 2}


def test_parallel_executor_runs_every_trial_once():
    study = Study(space=SPACE, objectives=OBJ, strategy=NSGA2Strategy(population_size=6, seed=0))
    with ThreadPoolExecutor(3) as ex:
        study.optimize(f, n_trials=20, executor=ex, n_parallel=3)
    assert len(study.trials) == 20 and all(t.state is TrialState.COMPLETE for t in study.trials)
    assert study.strategy.generation >= 2


def test_should_stop_ends_the_loop():
    study = Study(space=SPACE, objectives=OBJ, strategy=RandomStrategy(seed=0))
    study.optimize(f, n_trials=50, should_stop=lambda: len(study.trials) >= 7)
    assert len(study.trials) == 7


def test_maximize_direction_is_honoured():
    objs = [Objective("a", "maximize"), Objective("b")]
    study = Study(space=SPACE, objectives=objs, strategy=RandomStrategy(seed=0))
    study.optimize(f, n_trials=60)
    # maximizing a = x + y and minimizing b = 20 - x + y: the best point is x = 20, y = 0 or ties along y
    best = study.best_trials
    assert any(t.params["x"] == 20 for t in best) or max(t.params["x"] for t in best) >= 18


def test_sqlite_storage_round_trip(tmp_path):
    path = tmp_path / "study.db"
    study = Study(space=SPACE, objectives=OBJ, strategy=RandomStrategy(seed=0), storage=SQLiteStorage(path))
    study.optimize(f, n_trials=5)
    before = study.trials
    study.storage.close()
    again = SQLiteStorage(path)
    trials = again.trials()
    assert [t.number for t in trials] == list(range(5))
    assert trials[2].params == before[2].params and trials[2].values == before[2].values
    assert Space.from_dict(again.get_meta("space")) == SPACE
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_corrupt_and_foreign_study_files_are_refused_and_untouched(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    before = junk.read_bytes()
    with pytest.raises(StorageError, match="not a readable SQLite"):
        SQLiteStorage(junk)
    assert junk.read_bytes() == before
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(StorageError, match="not an hwnas study"):
        SQLiteStorage(foreign)


def test_hypervolume_and_non_dominated():
    F = np.array([[1, 3], [2, 2], [3, 1], [3, 3]])
    assert non_dominated_mask(F).tolist() == [True, True, True, False]
    assert hypervolume(F, [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[5, 5]], [4, 4]) == 0.0


def test_the_front_is_made_of_full_fidelity_trials_once_there_are_any():
    from search import Choice, Objective, RandomStrategy, Space, Study

    study = Study(
        space=Space({"x": Choice([1, 2, 3])}),
        objectives=[Objective("a"), Objective("b")],
        strategy=RandomStrategy(seed=0),
    )
    study.enqueue({"x": 1}, fidelity=0.25)
    cheap = study.ask()
    study.tell(cheap, {"a": 0.0, "b": 0.0})  # looks best, but only at a quarter of the budget
    assert [t.number for t in study.best_trials] == [cheap.number]
    study.enqueue({"x": 2})
    full = study.ask()
    study.tell(full, {"a": 1.0, "b": 1.0})
    assert [t.number for t in study.best_trials] == [full.number]


def test_a_grid_that_runs_out_ends_the_search_cleanly():
    import concurrent.futures as cf

    from search import Choice, GridStrategy, Objective, Space, Study

    for executor in (None, cf.ThreadPoolExecutor(2)):
        study = Study(
            space=Space({"x": Choice([1, 2, 3])}), objectives=[Objective("a")], strategy=GridStrategy(seed=0)
        )
        study.optimize(lambda t: {"a": t.params["x"]}, n_trials=10, executor=executor, n_parallel=2)
        assert sorted(t.params["x"] for t in study.trials) == [1, 2, 3]
