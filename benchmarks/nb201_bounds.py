"""What the NAS-Bench-201 regret targets ask of a search: the structure of the true fronts, and two bounds.

``nb201.py`` scores a search by its hypervolume regret against the true front of the table. This script
asks where that front comes from and what a surrogate would have to know to reach it:

- **front**: how many true-front rows belong to a class of functionally equal cells (the same network once
  operations on dead paths are dropped and the terms of each sum are sorted: isomorphic cells and cells that
  differ only on edges that cannot reach the output), the class sizes, and how far below its class mean each
  front row's error lies. The table's noise is estimated from the spread of error within classes whose mean
  error is below 10 %: members of one class are one network trained separately, so their spread is
  training noise.
- **perfect mean** (two-objective problems): a search that knows the mean error of every cell exactly and
  picks, one evaluation at a time, the cell of largest expected hypervolume improvement (exact, latency
  known, error Gaussian around the mean with that noise), on tables drawn as ``table error + noise``;
  regret against each drawn table's own front. It bounds what a perfect model could reach at that noise.
- **class mean** (two-objective problems): the same search on the table itself, knowing only the mean
  error of each cell's class of functionally equal cells (and every latency): regret against the table's
  own front. It is what a perfect model of the network a cell computes could reach; ties between equal
  gains are broken at random (``--class-seeds`` draws).
- **warm start**: ``bayes`` given ``W`` uniformly drawn evaluations for free (told to it before it starts),
  then ``+50`` and ``+100`` evaluations of its own; regret of everything evaluated. It shows how far more
  data moves the model-based search.

    nice -n 10 .venv/bin/python benchmarks/nb201_bounds.py [--problems P ...] [--seeds N]
        [--class-seeds N] [--warm W ...] [--warm-seeds N] [--workers N] [--data CSV]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import collections
import multiprocessing
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driving as sb
import nb201

from search import BayesStrategy, Objective, Study, hypervolume, non_dominated_mask

NAMES = ("none", "skip", "c1", "c3", "pool")  # short names of nb201.OPS, in the same order
EDGE_NODES = nb201.EDGE_NODES
BUDGETS = (50, 100, 200)
CLASS_BUDGETS = (50, 100, 200, 500)


def cell_function(ops: Sequence[int]) -> str | None:
    """The network a cell computes, as a canonical expression of its output (``None``: no path from input
    to output). ``skip`` is the identity, ``none`` drops its edge, each node sums its inputs (sorted)."""
    expr: dict[int, str | None] = {0: "x"}
    for node in (1, 2, 3):
        terms = []
        for (to, src), op in zip(EDGE_NODES, ops):
            if to != node or op == 0 or expr[src] is None:
                continue
            terms.append(expr[src] if op == 1 else f"{NAMES[op]}({expr[src]})")
        terms.sort()
        expr[node] = None if not terms else terms[0] if len(terms) == 1 else "[" + "+".join(terms) + "]"
    return expr[3]


def classes(ops: np.ndarray) -> list[str | None]:
    return [cell_function(tuple(int(v) for v in row)) for row in ops]


def members(keys: Sequence[str | None]) -> dict[str | None, list[int]]:
    """Rows of each class (``None``: the cells with no path from input to output)."""
    groups: dict[str | None, list[int]] = collections.defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    return groups


def noise_sd(error: np.ndarray, keys: Sequence[str | None]) -> float:
    """Spread of error within classes of functionally equal cells whose mean error is below 10 %."""
    dev = [
        error[m] - error[m].mean()
        for k, m in members(keys).items()
        if k is not None and len(m) > 1 and error[m].mean() < 10
    ]
    d = np.concatenate(dev)
    return float(np.sqrt(np.sum(d**2) / (len(d) - len(dev))))  # pooled, one degree of freedom per class


def front_structure(
    name: str, error: np.ndarray, latency: Mapping[str, np.ndarray], keys: Sequence[str | None]
) -> dict[str, float]:
    F = np.column_stack([error, *(latency[d] for d in name.split("+"))])
    front = np.flatnonzero(non_dominated_mask(F))
    groups = members(keys)
    sizes = np.array([len(groups[keys[i]]) for i in front])
    shared = [i for i in front if len(groups[keys[i]]) > 1]
    below = [float(error[i] - error[groups[keys[i]]].mean()) for i in shared]
    return {
        "front": len(front),
        "in_shared_class": len(shared),
        "median_class_size": float(np.median(sizes)),
        "mean_below_class_mean": float(np.mean(below)) if below else 0.0,
    }


def _expected_gain(
    front: np.ndarray, ref: np.ndarray, mu: np.ndarray, sd: float, lat: np.ndarray
) -> np.ndarray:
    """Expected hypervolume improvement of cells with error ~ N(mu, sd^2) and known latency over ``front``
    (two objectives, both minimised): E[int_e^ref0 max(0, phi(x) - lat) dx], phi the front's staircase."""
    pts = front[np.argsort(front[:, 0])]
    es, steps, best = [], [], ref[1]
    for e, lv in pts:
        if lv < best:
            best = lv
            es.append(e)
            steps.append(lv)
    bounds = np.concatenate([[mu.min() - 10 * sd], es, [ref[0]]])
    heights = np.concatenate([[ref[1]], steps])

    def integral(x: float) -> np.ndarray:  # int_-inf^x Phi((t - mu) / sd) dt
        z = (x - mu) / sd
        out: np.ndarray = sd * (z * norm.cdf(z) + norm.pdf(z))
        return out

    total = np.zeros_like(mu)
    for k, h in enumerate(heights):
        a, b = bounds[k], bounds[k + 1]
        if b > a:
            total += np.maximum(0.0, h - lat) * (integral(b) - integral(a))
    return total


def _greedy(
    F: np.ndarray, mean: np.ndarray, sd: float, budgets: Sequence[int], jitter: np.ndarray | float = 0.0
) -> dict[str, float]:
    """One evaluation at a time the unseen cell of largest expected hypervolume improvement (error
    ~ N(mean, sd^2), latency ``F[:, 1]`` known); regret against the front of ``F`` after each budget."""
    true_front = F[non_dominated_mask(F)]
    ref = np.asarray(sb.reference_for(true_front))
    true_hv = hypervolume(true_front, ref)
    seen = np.zeros(len(F), dtype=bool)
    chosen: list[int] = []
    regret = {}
    for t in range(max(budgets)):
        gain = _expected_gain(F[chosen] if chosen else np.zeros((0, 2)), ref, mean, sd, F[:, 1]) + jitter
        gain[seen] = -1.0
        i = int(np.argmax(gain))
        seen[i] = True
        chosen.append(i)
        if t + 1 in budgets:
            G = F[chosen]
            regret[str(t + 1)] = 100.0 * (1.0 - hypervolume(G[non_dominated_mask(G)], ref) / true_hv)
    return regret


def perfect_mean(job: tuple[str, int, float, tuple[int, ...]]) -> dict[str, float]:
    """The greedy search on a table drawn as ``table error + noise``, its model the table's error."""
    name, seed, sd, budgets = job
    _, error, latency = _TABLE
    rng = np.random.default_rng(seed)
    return _greedy(
        np.column_stack([error + rng.normal(0.0, sd, len(error)), latency[name]]), error, sd, budgets
    )


def class_mean(job: tuple[str, int, float, tuple[int, ...]]) -> dict[str, float]:
    """The greedy search on the table, its model the mean error of each cell's class."""
    name, seed, sd, budgets = job
    ops, error, latency = _TABLE
    mean = np.empty_like(error)
    for rows in members(classes(ops)).values():
        mean[rows] = error[rows].mean()
    jitter = np.random.default_rng(seed).uniform(0.0, 1e-9, len(error))  # breaks ties between equal gains
    return _greedy(np.column_stack([error, latency[name]]), mean, sd, budgets, jitter)


def warm_start(job: tuple[str, int, int]) -> dict[str, float]:
    name, warm, seed = job
    problem = _PROBLEMS[name]
    ops = _TABLE[0]
    study = Study(
        space=problem.space,
        objectives=[Objective(o, "minimize") for o in problem.objectives],
        strategy=BayesStrategy(seed=seed, n_initial=1 if warm else 10),
    )
    rng = np.random.default_rng(1000 + seed)
    for i in rng.choice(len(ops), warm, replace=False):
        study.enqueue({e: nb201.OPS[ops[i, k]] for k, e in enumerate(nb201.EDGES)})
    F = []
    for _ in range(warm + 100):
        trial = study.ask()
        values = problem.evaluate(trial.params)
        study.tell(trial, dict(zip(problem.objectives, values)))
        F.append(values)
    G = np.array(F)

    def regret(g: np.ndarray) -> float:
        return 100.0 * (1.0 - hypervolume(g[non_dominated_mask(g)], problem.reference) / problem.true_hv)

    return {
        "warm only": regret(G[:warm]) if warm else float("nan"),
        "+50": regret(G[: warm + 50]),
        "+100": regret(G),
    }


_TABLE: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]
_PROBLEMS: dict[str, sb.Problem] = {}


def main() -> None:
    global _TABLE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=nb201.DEFAULT_DATA)
    p.add_argument(
        "--problems", nargs="+", default=["2080ti_1", "titan_rtx_256", "gold_6226", "pixel2", "samsung_a50"]
    )
    p.add_argument("--seeds", type=int, default=5, help="drawn tables per problem for the perfect-mean bound")
    p.add_argument("--class-seeds", type=int, default=3, help="tie-break draws of the class-mean search")
    p.add_argument(
        "--warm", type=int, nargs="*", default=[0, 300, 1000], help="free evaluations before bayes"
    )
    p.add_argument("--warm-problems", nargs="+", default=["pixel2"])
    p.add_argument("--warm-seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if not args.data.is_file():
        p.error(f"no table at {args.data}; give its path with --data")
    for name in [*args.problems, *args.warm_problems]:
        if name.count("+") or name not in nb201.DEVICES:
            p.error(f"{name!r}: this script takes two-objective problems, one of {', '.join(nb201.DEVICES)}")
    _TABLE = nb201.load_table(args.data)
    ops, error, latency = _TABLE
    keys = classes(ops)
    sd = noise_sd(error, keys)
    print(
        f"{len(set(keys))} classes of functionally equal cells among {len(keys)} rows; "
        f"error noise (pooled sd within classes of mean error < 10 %): {sd:.3f}"
    )
    print("\nTrue fronts: rows in a class of several cells, median class size, mean (row - class mean) error")
    rows = []
    for name in args.problems:
        s = front_structure(name, error, latency, keys)
        rows.append(
            [
                name,
                s["front"],
                s["in_shared_class"],
                f"{s['median_class_size']:g}",
                f"{s['mean_below_class_mean']:.3f}",
            ]
        )
    print(
        sb.table(
            ["problem", "front rows", "in a shared class", "median class size", "row - class mean"], rows
        )
    )
    for name in {*args.problems, *args.warm_problems}:
        _PROBLEMS[name] = nb201.make_problem(name, ops, error, latency)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        for title, fn, n_seeds, budgets in (
            (
                f"Perfect mean, noise sd {sd:.3f}: median regret % over {args.seeds} drawn tables",
                perfect_mean,
                args.seeds,
                BUDGETS,
            ),
            (
                f"Class mean, noise sd {sd:.3f}, on the table: median regret % over {args.class_seeds} tie-breaks",
                class_mean,
                args.class_seeds,
                CLASS_BUDGETS,
            ),
        ):
            jobs = [(n, s, sd, budgets) for n in args.problems for s in range(n_seeds)]
            if not jobs:
                continue
            results = pool.map(fn, jobs)
            print(f"\n{title}")
            rows = []
            for n in args.problems:
                rs = [r for (jn, *_), r in zip(jobs, results) if jn == n]
                rows.append([n, *(f"{np.median([r[str(b)] for r in rs]):.2f}" for b in budgets)])
            print(sb.table(["problem", *(f"@{b}" for b in budgets)], rows))
        wjobs = [(n, w, s) for n in args.warm_problems for w in args.warm for s in range(args.warm_seeds)]
        wres = pool.map(warm_start, wjobs)
    if not wjobs:
        return
    print(f"\nbayes after W free uniform evaluations: median regret % over {args.warm_seeds} seeds")
    rows = []
    for n in args.warm_problems:
        for w in args.warm:
            rs = [r for (jn, jw, _), r in zip(wjobs, wres) if jn == n and jw == w]
            rows.append(
                [n, w, *(f"{np.median([r[k] for r in rs]):.2f}" for k in ("warm only", "+50", "+100"))]
            )
    print(sb.table(["problem", "W", "the W alone", "W + 50", "W + 100"], rows))


if __name__ == "__main__":
    main()
