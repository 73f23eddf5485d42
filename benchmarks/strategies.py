"""Every search strategy against Optuna's samplers, on problems whose true Pareto front is known.

Strategies: every entry of ``search.STRATEGIES`` with its default settings and a seed (``bayes``: its
default backend and ``min_fidelity``), and, in the same run, Optuna's ``NSGAIISampler``,
``TPESampler(multivariate=True)`` and ``RandomSampler`` (defaults apart from the seed), all driven one
trial at a time through ask/tell: ``search.Study.ask`` / ``tell`` and Optuna's ``study.ask`` / ``tell``
(in-memory storages).

Problems (all objectives minimised):

- ``tabular``: every canonical subnet of a reduced digits supernet, scored ahead (``benchmarks/tabular.py``,
  shipped as ``benchmarks/data/tabular_digits.csv``): objectives ``error`` (%) and ``latency_ms``. The
  strategies search the flat space ``spec.search_space()`` (11 parameters, 3,072 points); a proposal is
  looked up by its canonical arch (1,200 of them). True front: the non-dominated rows of the whole table.
- ``zdt1``, ``zdt2``: 6 variables, each a ``Choice`` of the 21 values 0, 0.05, ..., 1. True front: the
  non-dominated set of the whole grid, which is the analytic front at the grid's 21 values of ``x1``
  (every other point has ``g > 1`` and is dominated by the point with the same ``x1`` and ``g = 1``).
- ``dtlz2``: 3 objectives, 5 variables, each a ``Choice`` of the same 21 values. True front: the
  non-dominated set of the grid, the 441 points with ``x3 = x4 = x5 = 0.5`` (``g = 0``).
- ``zdt1-float`` (only with ``--problems``): ZDT1 over ``Float(0, 1)`` variables. True front: the
  analytic one; its hypervolume is exact (``r1 * r2 - 1/3``).

The grid fronts are checked against a brute-force enumeration of smaller grids at every start.

Hypervolume regret ``1 - HV / HV(true front)`` uses a fixed reference per problem: the nadir of the true
front plus 10 % of its range on every objective (``(1.1, 1.1)`` for ZDT, ``(1.1, 1.1, 1.1)`` for DTLZ2).
Each seed is one run of ``max(BUDGETS)`` evaluations; the regret is read off after 50, 100, 200 and 500
evaluations and summarised as median [Q1, Q3] over seeds. Every proposal counts as one evaluation, a
repeated one included (a strategy that proposes a point twice pays twice); a lower-fidelity proposal would
be evaluated at full fidelity and counted as one. The runs are spread over ``--workers`` processes.

Ask+tell overhead: the wall time of the ask/evaluate/tell loop minus the objective's time, per trial,
averaged over the first 100 and over all 1,000 trials of a run on a trivial objective (a table look-up in
the tabular problem's space), in this one process after the searches, every strategy in turn and
``--overhead-repeats`` times (median reported; the GP strategy once). The machine may be shared: absolute
times move with its load; the ratios to Optuna's NSGA-II measured in the same run are what compares.

    nice -n 10 .venv/bin/python benchmarks/strategies.py [--quick] [--out benchmarks/out] [--seeds N]
        [--workers N] [--problems P ...] [--strategies S ...] [--overhead-repeats N] [--rebuild]
    .venv/bin/python benchmarks/strategies.py --report benchmarks/out/strategies.json   # re-print a report
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per process: the runs are spread over processes instead.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import itertools
import json
import math
import multiprocessing
import re
import sys
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import tabular
from _driving import (
    Problem,
    cell,
    drive,
    parse_variant,
    quartiles,
    reference_for,
    summarise_run,
)

import search
from search import (
    Choice,
    Float,
    Space,
    hypervolume,
    non_dominated_mask,
)

NAME = "strategies"
BUDGETS = (50, 100, 200, 500)
QUICK_BUDGETS = (50, 100)
OVERHEAD_TRIALS = (100, 1000)
QUICK_OVERHEAD_TRIALS = (50, 100)
OPTUNA = ("optuna-nsga2", "optuna-tpe", "optuna-random")
DEFAULT_PROBLEMS = ("tabular", "zdt1", "zdt2", "dtlz2")
ALL_PROBLEMS = (*DEFAULT_PROBLEMS, "zdt1-float")
GRID_VALUES = tuple(i / 20 for i in range(21))
GP = "bayes"


# -- problems ------------------------------------------------------------------------------------------


def zdt_values(which: int, x: np.ndarray) -> tuple[float, float]:
    """ZDT1 (``which=1``) or ZDT2 (``which=2``) of a point ``x`` in ``[0, 1]^n`` (n >= 2)."""
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(np.sum(x[1:])) / (len(x) - 1)
    h = 1.0 - math.sqrt(f1 / g) if which == 1 else 1.0 - (f1 / g) ** 2
    return f1, g * h


def dtlz2_values(x: np.ndarray, n_obj: int) -> tuple[float, ...]:
    """DTLZ2 with ``n_obj`` objectives of a point ``x`` in ``[0, 1]^n`` (n >= n_obj)."""
    g = float(np.sum((x[n_obj - 1 :] - 0.5) ** 2))
    angles = x[: n_obj - 1] * (math.pi / 2)
    f = []
    for i in range(n_obj):
        v = 1.0 + g
        v *= float(np.prod(np.cos(angles[: n_obj - 1 - i])))
        if i > 0:
            v *= math.sin(float(angles[n_obj - 1 - i]))
        f.append(v)
    return tuple(f)


def grid_front_zdt(which: int, n_var: int, values: Sequence[float]) -> np.ndarray:
    """True front of ZDT on a grid: the analytic front (other variables 0) at every grid value of ``x1``."""
    return np.array([zdt_values(which, np.array([v] + [0.0] * (n_var - 1))) for v in values])


def grid_front_dtlz2(n_var: int, n_obj: int, values: Sequence[float]) -> np.ndarray:
    """True front of DTLZ2 on a grid holding 0.5: the position variables over the grid, the rest 0.5."""
    if 0.5 not in values:
        raise ValueError("the DTLZ2 grid front needs 0.5 among the values")
    rows = [
        dtlz2_values(np.array([*pos, *([0.5] * (n_var - n_obj + 1))]), n_obj)
        for pos in itertools.product(values, repeat=n_obj - 1)
    ]
    return np.array(rows)


def check_grid_fronts() -> None:
    """Brute force on small grids: the constructed fronts equal the non-dominated set of every point."""
    values = [i / 5 for i in range(6)]
    cases: list[tuple[str, Callable[[np.ndarray], tuple[float, ...]], int, np.ndarray]] = [
        ("zdt1", lambda x: zdt_values(1, x), 4, grid_front_zdt(1, 4, values)),
        ("zdt2", lambda x: zdt_values(2, x), 4, grid_front_zdt(2, 4, values)),
    ]
    dvalues = [i / 4 for i in range(5)]
    cases.append(("dtlz2", lambda x: dtlz2_values(x, 3), 4, grid_front_dtlz2(4, 3, dvalues)))
    for name, fn, n_var, front in cases:
        grid = dvalues if name == "dtlz2" else values
        F = np.array([fn(np.array(p)) for p in itertools.product(grid, repeat=n_var)])
        brute = {tuple(np.round(r, 12)) for r in F[non_dominated_mask(F)]}
        built = {tuple(np.round(r, 12)) for r in front}
        if brute != built:
            raise RuntimeError(
                f"{name}: the constructed grid front ({len(built)} points) differs from brute force "
                f"({len(brute)} points)"
            )


def _grid_problem(
    name: str,
    description: str,
    n_var: int,
    objectives: tuple[str, ...],
    fn: Callable[[np.ndarray], tuple[float, ...]],
    front: np.ndarray,
    note: str,
) -> Problem:
    space = Space({f"x{i}": Choice(GRID_VALUES) for i in range(n_var)})
    names = tuple(space)

    def evaluate(params: Mapping[str, Any]) -> tuple[float, ...]:
        return fn(np.array([params[n] for n in names], dtype=float))

    def key(params: Mapping[str, Any]) -> Hashable:
        return tuple(params[n] for n in names)

    ref = reference_for(front)
    return Problem(
        name, description, space, objectives, evaluate, key, front, note, ref, hypervolume(front, ref)
    )


def make_problem(name: str, table: Path | None = None) -> Problem:
    """The problem called ``name`` (one of ``ALL_PROBLEMS``)."""
    if name in ("zdt1", "zdt2"):
        which = int(name[-1])
        front = grid_front_zdt(which, 6, GRID_VALUES)
        return _grid_problem(
            name,
            f"ZDT{which}, 6 variables, each a Choice of 21 values in [0, 1] (21^6 points)",
            6,
            ("f1", "f2"),
            lambda x: zdt_values(which, x),
            front,
            "non-dominated set of the whole grid = analytic front at the 21 grid values of x1 (21 points)",
        )
    if name == "dtlz2":
        front = grid_front_dtlz2(5, 3, GRID_VALUES)
        return _grid_problem(
            name,
            "DTLZ2, 3 objectives, 5 variables, each a Choice of 21 values in [0, 1] (21^5 points)",
            5,
            ("f1", "f2", "f3"),
            lambda x: dtlz2_values(x, 3),
            front,
            "non-dominated set of the whole grid = x3..x5 = 0.5, x1, x2 over the grid (441 points)",
        )
    if name == "zdt1-float":
        space = Space({f"x{i}": Float(0.0, 1.0) for i in range(6)})
        names = tuple(space)
        f1 = np.linspace(0.0, 1.0, 1001)
        front = np.column_stack([f1, 1.0 - np.sqrt(f1)])
        ref = reference_for(front)
        return Problem(
            name,
            "ZDT1, 6 Float(0, 1) variables (continuous)",
            space,
            ("f1", "f2"),
            lambda p: zdt_values(1, np.array([p[n] for n in names], dtype=float)),
            lambda p: tuple(p[n] for n in names),
            front,
            "analytic front; HV exact: r1 * r2 - 1/3",
            ref,
            ref[0] * ref[1] - 1.0 / 3.0,
        )
    if name == "tabular":
        table_problem = tabular.load(table)
        spec, space = table_problem.spec, table_problem.space
        # Every flat point, looked up once here, so that runs never need the nas package.
        from nas import arch_key

        names = tuple(space)
        lookup: dict[tuple[Any, ...], tuple[tuple[float, ...], str]] = {}
        for values in itertools.product(*(p.values for p in space.values())):  # type: ignore[attr-defined]
            params = dict(zip(names, values))
            k = arch_key(spec.arch_from_params(params))
            row = table_problem.rows[k]
            lookup[values] = (tuple(row[o] for o in tabular.OBJECTIVES), k)
        front = table_problem.true_front()
        ref = reference_for(front)
        return Problem(
            name,
            f"every canonical subnet of the reduced digits supernet ({len(table_problem.rows):,} archs, "
            f"{len(lookup):,} flat points), error % and latency_ms",
            space,
            tabular.OBJECTIVES,
            lambda p: lookup[tuple(p[n] for n in names)][0],
            lambda p: lookup[tuple(p[n] for n in names)][1],
            front,
            f"non-dominated rows of the whole table ({len(front)} points)",
            ref,
            hypervolume(front, ref),
        )
    raise ValueError(f"unknown problem {name!r}; valid: {', '.join(ALL_PROBLEMS)}")


# The problems, built before the worker processes fork so that they inherit them.
_PROBLEMS: dict[str, Problem] = {}


def _job(job: tuple[str, str, int, tuple[int, ...]]) -> dict[str, Any]:
    name, strategy, seed, budgets = job
    problem = _PROBLEMS[name]
    return summarise_run(problem, strategy, seed, drive(problem, strategy, seed, max(budgets)), budgets)


# -- overhead on a trivial objective --------------------------------------------------------------------


def measure_overhead(
    problem: Problem, strategies: Sequence[str], n_trials: Sequence[int], repeats: int
) -> dict[str, Any]:
    """Ask+tell seconds per trial, every strategy in turn, ``repeats`` times (the GP strategy once)."""
    n = max(n_trials)
    marks = sorted({*n_trials, *(b for b in BUDGETS if b <= n)})
    out: dict[str, Any] = {s: [] for s in strategies}
    for rep in range(repeats):
        order = strategies[rep % len(strategies) :] + strategies[: rep % len(strategies)]
        for s in order:
            if s == GP and rep > 0:
                continue
            trace = drive(problem, s, rep, n)
            if not trace.overhead_s:
                out[s].append({"status": trace.status})
                continue
            ov = np.array(trace.overhead_s)
            rec: dict[str, Any] = {"status": trace.status, "trials": len(ov)}
            for k in marks:
                if len(ov) >= k:
                    rec[f"mean_ms_{k}"] = 1e3 * float(ov[:k].mean())
                    rec[f"last10pct_ms_{k}"] = 1e3 * float(ov[k - k // 10 : k].mean())
            rec["objective_us_per_trial"] = 1e6 * float(np.mean(trace.objective_s))
            out[s].append(rec)
            common.log(
                f"overhead {s} rep {rep}: "
                + ", ".join(f"{k}: {rec.get(f'mean_ms_{k}', math.nan):.3f} ms" for k in n_trials)
            )
    return out


# -- report ---------------------------------------------------------------------------------------------


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], threads=False)
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per strategy and problem (default 10, quick 2)"
    )
    p.add_argument("--workers", type=int, default=2, help="processes the runs are spread over (default 2)")
    p.add_argument(
        "--problems", nargs="+", default=None, choices=ALL_PROBLEMS, help="default: all but zdt1-float"
    )
    p.add_argument("--strategies", nargs="+", default=None, help="default: every strategy and Optuna sampler")
    p.add_argument(
        "--overhead-repeats", type=int, default=None, help="overhead runs per strategy (default 3; 0: none)"
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild benchmarks/data/tabular_digits.csv first")
    p.add_argument(
        "--report", type=Path, default=None, help="only print the report of an earlier result file"
    )
    args = p.parse_args()
    if args.report is not None:
        print(report(json.loads(args.report.read_text()), args.report))
        return
    info = common.header()
    mtimes_at_start = _strategy_mtimes()
    started = time.perf_counter()
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    overhead_trials = QUICK_OVERHEAD_TRIALS if args.quick else OVERHEAD_TRIALS
    n_seeds = args.seeds or (2 if args.quick else 10)
    repeats = args.overhead_repeats if args.overhead_repeats is not None else (1 if args.quick else 3)
    strategies = list(args.strategies or [*search.STRATEGIES, *OPTUNA])
    known = {*search.STRATEGIES, *OPTUNA, *getattr(search, "strategy_names", list)()}
    unknown = {s for s in strategies if parse_variant(s)[0] not in known}
    if unknown:
        p.error(f"unknown strategies {sorted(unknown)}; valid: {', '.join([*search.STRATEGIES, *OPTUNA])}")
    problems = list(args.problems or DEFAULT_PROBLEMS)

    if args.rebuild:
        tabular.build(args.out)
    check_grid_fronts()
    common.log("grid fronts checked against brute force on small grids")
    for name in dict.fromkeys([*problems, "tabular"]):
        _PROBLEMS[name] = make_problem(name)
        pr = _PROBLEMS[name]
        common.log(
            f"{name}: {len(pr.front)} front points, reference {pr.reference}, true HV {pr.true_hv:.6g}"
        )

    # Costliest runs first, so that the processes finish together.
    cost = {GP: 0, "optuna-tpe": 1}
    jobs = [
        (pr, s, seed, budgets)
        for s in sorted(strategies, key=lambda s: cost.get(s, 2))
        for pr in problems
        for seed in range(n_seeds)
    ]
    common.log(f"{len(jobs)} runs of {max(budgets)} evaluations in {args.workers} processes")
    runs: list[dict] = []
    t_search = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        for i, r in enumerate(pool.imap_unordered(_job, jobs)):
            runs.append(r)
            last = r["regret"][str(max(budgets))]
            common.log(
                f"[{i + 1}/{len(jobs)}] {r['problem']} {r['strategy']} seed {r['seed']}: regret@{max(budgets)} "
                f"{last:.4f}, {r['wall_s']:.1f}s, {r['status'][:100]}"
            )
    search_s = time.perf_counter() - t_search

    common.log("overhead on a trivial objective (table look-up), one process")
    t_over = time.perf_counter()
    overhead = measure_overhead(_PROBLEMS["tabular"], strategies, overhead_trials, repeats)
    overhead_s = time.perf_counter() - t_over

    # -- summaries
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for pr in problems:
        summary[pr] = {}
        for s in strategies:
            mine = [r for r in runs if r["problem"] == pr and r["strategy"] == s]
            ok = [r for r in mine if r["evaluations"] > 0]
            summary[pr][s] = {
                "regret": {
                    str(b): quartiles([r["regret"][str(b)] for r in ok]) if ok else None for b in budgets
                },
                "distinct": {
                    str(b): quartiles([r["distinct"][str(b)] for r in ok]) if ok else None for b in budgets
                },
                "statuses": sorted({r["status"] for r in mine}),
                "evaluations": quartiles([r["evaluations"] for r in mine]) if mine else None,
            }
    over_summary: dict[str, dict[str, float]] = {}
    for s, recs in overhead.items():
        row: dict[str, float] = {}
        for k in overhead_trials:
            vals = [r[f"mean_ms_{k}"] for r in recs if f"mean_ms_{k}" in r]
            if vals:
                row[f"mean_ms_{k}"] = float(np.median(vals))
                row[f"last10pct_ms_{k}"] = float(
                    np.median([r[f"last10pct_ms_{k}"] for r in recs if f"mean_ms_{k}" in r])
                )
        over_summary[s] = row
    # The GP strategy's ask+tell near the end of the search runs (trials (0.9 B, B] of B = max budget).
    b_max = str(max(budgets))
    gp_tail = {
        pr: quartiles(
            [r["overhead_last10pct_ms"][b_max] for r in runs if r["problem"] == pr and r["strategy"] == GP]
        )
        for pr in problems
        if any(r["problem"] == pr and r["strategy"] == GP and r["evaluations"] for r in runs)
    }
    gp_max_ms = max((r["overhead_max_ms"] for r in runs if r["strategy"] == GP), default=math.nan)
    gp_alone = [r.get(f"last10pct_ms_{b_max}") for r in overhead.get(GP, [])]
    gp_alone_ms = gp_alone[0] if gp_alone and gp_alone[0] is not None else None

    # -- targets
    targets: dict[str, Any] = {}
    b100 = "100"
    if GP in strategies and b100 in {str(b) for b in budgets}:
        per_problem = {}
        for pr in problems:
            g = summary[pr][GP]["regret"][b100]
            rivals = {
                s: summary[pr][s]["regret"][b100] for s in ("optuna-tpe", "optuna-nsga2") if s in strategies
            }
            per_problem[pr] = {
                "bayes": g["median"] if g else None,
                **{s: (q["median"] if q else None) for s, q in rivals.items()},
                "met": bool(g and all(q and g["median"] < q["median"] for q in rivals.values())),
                # one-sided Mann-Whitney U: are bayes's regrets at 100 smaller than the rival's?
                "p_value": {s: _less_p(runs, pr, GP, s, b100) for s in rivals},
            }
        targets["bayes_beats_tpe_and_nsga2_at_100"] = per_problem
    k_big = str(max(overhead_trials))
    if "optuna-nsga2" in over_summary and f"mean_ms_{k_big}" in over_summary["optuna-nsga2"]:
        base = over_summary["optuna-nsga2"][f"mean_ms_{k_big}"]
        targets["overhead_vs_optuna_nsga2"] = {
            s: {
                "mean_ms": row.get(f"mean_ms_{k_big}"),
                "ratio": (row[f"mean_ms_{k_big}"] / base) if f"mean_ms_{k_big}" in row else None,
                "met": bool(f"mean_ms_{k_big}" in row and row[f"mean_ms_{k_big}"] <= base),
            }
            for s, row in over_summary.items()
            if s in search.STRATEGIES and s != GP
        }
    if gp_tail:
        worst = max([q["median"] for q in gp_tail.values()] + ([gp_alone_ms] if gp_alone_ms else []))
        targets["gp_under_1s_per_trial_at_max_budget"] = {
            "median_ms_by_problem": {pr: q["median"] for pr, q in gp_tail.items()},
            "overhead_run_ms": gp_alone_ms,
            "max_single_trial_ms": gp_max_ms,
            "met": worst < 1000.0,
        }

    payload = {
        **info,
        "benchmark": NAME,
        "quick": args.quick,
        "budgets": list(budgets),
        "seeds": list(range(n_seeds)),
        "workers": args.workers,
        "strategies": strategies,
        "search_files_mtime_at_start": mtimes_at_start,
        "search_files_changed_during_run": sorted(
            f for f, t in _strategy_mtimes().items() if mtimes_at_start.get(f) != t
        ),
        "low_fidelity_proposals": sum(r["low_fidelity_proposals"] for r in runs),
        "problems": {
            pr: {
                "description": _PROBLEMS[pr].description,
                "objectives": list(_PROBLEMS[pr].objectives),
                "reference": list(_PROBLEMS[pr].reference),
                "true_hv": _PROBLEMS[pr].true_hv,
                "front_points": len(_PROBLEMS[pr].front),
                "front": _PROBLEMS[pr].front_note,
            }
            for pr in problems
        },
        "summary": summary,
        "overhead": {
            "trials": list(overhead_trials),
            "repeats": repeats,
            "runs": overhead,
            "median": over_summary,
        },
        "gp_ask_tell_ms_last10pct_of_search": gp_tail,
        "targets": targets,
        "runs": runs,
        "seconds": {
            "search": round(search_s, 1),
            "overhead": round(overhead_s, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    tag = "" if problems == list(DEFAULT_PROBLEMS) else "-" + "+".join(problems)
    path = common.write_json(args.out / f"{NAME}{'-quick' if args.quick else ''}{tag}.json", payload)
    print(report(payload, path))


def _less_p(runs: Sequence[Mapping[str, Any]], problem: str, a: str, b: str, budget: str) -> float | None:
    """One-sided Mann-Whitney U p-value that strategy ``a``'s regrets are smaller than ``b``'s."""
    from scipy.stats import mannwhitneyu

    x = [
        r["regret"][budget]
        for r in runs
        if r["problem"] == problem and r["strategy"] == a and r["evaluations"]
    ]
    y = [
        r["regret"][budget]
        for r in runs
        if r["problem"] == problem and r["strategy"] == b and r["evaluations"]
    ]
    if len(x) < 2 or len(y) < 2:
        return None
    return float(mannwhitneyu(x, y, alternative="less").pvalue)


def _strategy_mtimes() -> dict[str, str]:
    root = Path(search.__file__).resolve().parent
    return {
        f.name: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.stat().st_mtime))
        for f in sorted(root.glob("_*.py"))
    }


def report(payload: Mapping[str, Any], path: Path) -> str:
    """The Markdown report of a result file's payload."""
    budgets = payload["budgets"]
    strategies = payload["strategies"]
    lines = [
        f"## Search strategies against Optuna on problems with a known front{' (quick)' if payload['quick'] else ''}\n"
    ]
    lines.append(f"- command: `{payload['command']}`")
    lines.append(f"- date: {payload['date']}")
    lines.append(f"- machine: {common.machine_line(payload)}")
    lines.append(
        f"- seeds: {len(payload['seeds'])} per strategy and problem, one run of {max(budgets)} evaluations each, "
        f"in {payload['workers']} processes"
    )
    lines.append("")
    for pr, meta in payload["problems"].items():
        ref = ", ".join(f"{v:.4g}" for v in meta["reference"])
        lines.append(f"### {pr}: {meta['description']}\n")
        lines.append(
            f"True front: {meta['front']}; reference point ({ref}); true HV {meta['true_hv']:.6g}. "
            "Hypervolume regret 1 - HV / HV(true front), median [Q1, Q3] over seeds (lower is better).\n"
        )
        rows = []
        for s in strategies:
            q = payload["summary"][pr][s]
            statuses = [st for st in q["statuses"] if st != "ok"]
            row = [s, *[cell(q["regret"][str(b)]) for b in budgets]]
            d = q["distinct"][str(max(budgets))]
            row.append("n/a" if d is None else f"{d['median']:.0f}")
            row.append("; ".join(_short(st) for st in statuses) if statuses else "")
            rows.append(row)
        lines.append(
            common.table(
                [
                    "strategy",
                    *[f"regret @{b}" for b in budgets],
                    f"distinct {'archs' if pr == 'tabular' else 'points'} of {max(budgets)}",
                    "note",
                ],
                rows,
            )
        )
        lines.append("")

    ov = payload["overhead"]
    ks = ov["trials"]
    med = ov["median"]
    base = med.get("optuna-nsga2", {}).get(f"mean_ms_{ks[-1]}")
    if ov["repeats"]:
        lines.extend(_overhead_table(payload))
    lines.extend(_targets(payload, base, ks))
    s = payload["seconds"]
    lines.append(
        f"\nrun time: {s['total']:.0f}s (searches {s['search']:.0f}s, overhead {s['overhead']:.0f}s); "
        f"figures in {path}"
    )
    return "\n".join(lines)


def _short(status: str) -> str:
    """A run's status, cut for a table cell."""
    grid = re.match(r"refused: the grid has ([\d,]+) points .*more than max_points=([\d,]+)", status)
    if grid:
        return f"refused: {grid[1]}-point grid > max_points={grid[2]}"
    return status.split(";")[0][:160]


def _overhead_table(payload: Mapping[str, Any]) -> list[str]:
    ov = payload["overhead"]
    ks = ov["trials"]
    med = ov["median"]
    base = med.get("optuna-nsga2", {}).get(f"mean_ms_{ks[-1]}")
    strategies = payload["strategies"]
    lines = []
    lines.append(
        f"### Ask+tell overhead per trial, trivial objective (tabular space, look-up), one process, "
        f"median of {ov['repeats']} runs (the GP strategy: 1 run)\n"
    )
    rows = []
    for s in strategies:
        m = med.get(s, {})
        r = [s]
        for k in ks:
            r.append(f"{m[f'mean_ms_{k}']:.3f}" if f"mean_ms_{k}" in m else "n/a")
        r.append(f"{m[f'last10pct_ms_{ks[-1]}']:.3f}" if f"last10pct_ms_{ks[-1]}" in m else "n/a")
        r.append(f"{m[f'mean_ms_{ks[-1]}'] / base:.2f}" if base and f"mean_ms_{ks[-1]}" in m else "n/a")
        each = [f"{x[f'mean_ms_{ks[-1]}']:.3g}" for x in ov["runs"].get(s, []) if f"mean_ms_{ks[-1]}" in x]
        r.append(", ".join(each) or "n/a")
        rows.append(r)
    lines.append(
        common.table(
            [
                "strategy",
                *[f"ms/trial, mean of {k}" for k in ks],
                f"ms/trial, trials {ks[-1] - ks[-1] // 10 + 1}-{ks[-1]}",
                f"ratio to optuna-nsga2 @{ks[-1]}",
                f"each run @{ks[-1]}, by seed",
            ],
            rows,
        )
    )
    lines.append("")
    return lines


def _targets(payload: Mapping[str, Any], base: float | None, ks: Sequence[int]) -> list[str]:
    budgets = payload["budgets"]
    lines: list[str] = []
    t = payload["targets"]
    lines.append("### Targets\n")
    if "bayes_beats_tpe_and_nsga2_at_100" in t:
        per = t["bayes_beats_tpe_and_nsga2_at_100"]
        met = sum(v["met"] for v in per.values())
        parts = []
        for pr, v in per.items():
            rivals = ", ".join(
                f"{s} {v[s]:.3g} (p = {v['p_value'][s]:.2g})"
                if v["p_value"].get(s) is not None
                else f"{s} {v[s]:.3g}"
                for s in ("optuna-tpe", "optuna-nsga2")
                if s in v and v[s] is not None
            )
            parts.append(f"{pr}: bayes {v['bayes']:.3g} vs {rivals} -> {'met' if v['met'] else 'UNMET'}")
        lines.append(
            f"- `bayes` beats Optuna TPE and NSGA-II at 100 evaluations (median regret; p: one-sided "
            f"Mann-Whitney U over seeds): met on {met} of {len(per)} problems. " + "; ".join(parts)
        )
    if "overhead_vs_optuna_nsga2" in t:
        per = t["overhead_vs_optuna_nsga2"]
        parts = [
            f"{s} {v['ratio']:.2f}x ({'met' if v['met'] else 'UNMET'})" for s, v in per.items() if v["ratio"]
        ]
        lines.append(
            f"- every non-GP strategy's overhead <= Optuna NSGA-II's at {ks[-1]} trials "
            f"({base:.3f} ms/trial in this run): {'met' if all(v['met'] for v in per.values()) else 'UNMET'}; "
            + ", ".join(parts)
        )
    if "gp_under_1s_per_trial_at_max_budget" in t:
        g = t["gp_under_1s_per_trial_at_max_budget"]
        parts = ", ".join(f"{pr} {v:.0f} ms" for pr, v in g["median_ms_by_problem"].items())
        alone = g.get("overhead_run_ms")
        lines.append(
            f"- the GP strategy under 1 s per trial at {max(budgets)} trials (mean ask+tell over trials "
            f"{max(budgets) - max(budgets) // 10 + 1}-{max(budgets)}): {'met' if g['met'] else 'UNMET'}; "
            f"search runs (median over seeds, {payload['workers']} processes at once): {parts}"
            + (f"; overhead run (one process): {alone:.0f} ms" if alone else "")
            + f"; slowest single trial of the search runs {g['max_single_trial_ms']:.0f} ms"
        )
    lines.append(
        f"- proposals below fidelity 1 (evaluated at full fidelity, counted as one): "
        f"{payload['low_fidelity_proposals']}"
    )
    changed = payload["search_files_changed_during_run"]
    lines.append("- `search/` files modified during the run: " + (", ".join(changed) if changed else "none"))
    return lines


if __name__ == "__main__":
    main()
