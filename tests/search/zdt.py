"""Discretised ZDT1 / ZDT2 (Zitzler, Deb and Thiele 2000): two objectives, a known front, integer genes."""

import numpy as np

from search import Integer, Objective, Space, Study

N_VAR, STEPS = 5, 20
SPACE = Space({f"x{i}": Integer(0, STEPS) for i in range(N_VAR)})
OBJECTIVES = [Objective("f1"), Objective("f2")]
REFERENCE = [1.1, 11.0]  # worse than any point on both objectives, so every evaluated point counts


def zdt(trial, kind: int = 1) -> dict[str, float]:
    x = np.array([trial.params[f"x{i}"] for i in range(N_VAR)], dtype=float) / STEPS
    g = 1 + 9 * x[1:].mean()
    h = 1 - np.sqrt(x[0] / g) if kind == 1 else 1 - (x[0] / g) ** 2
    return {"f1": float(x[0]), "f2": float(g * h)}


def hypervolume_after(strategy, n_trials: int, kind: int = 1) -> float:
    study = Study(space=SPACE, objectives=OBJECTIVES, strategy=strategy)
    study.optimize(lambda t: zdt(t, kind), n_trials=n_trials)
    return study.hypervolume(REFERENCE)
