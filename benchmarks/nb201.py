"""Every search strategy against Optuna's samplers on NAS-Bench-201 with measured device latencies.

The problem is the field's standard cell space: NAS-Bench-201 (6 edges, each one of 5 unordered
operations, 15,625 architectures) with its CIFAR-10 validation accuracy (NATS-Bench) and inference
latency measured on real devices (HELP, BRP-NAS), read from ``../shared/data/nb201_help.csv`` (see
its README for sources and licences; ``--data`` points elsewhere). Every architecture of the space is
in the table, so the true Pareto front is known exactly.

Problems (all objectives minimised; ``error`` = 100 - validation accuracy, in %):

- ``2080ti_1``      error and latency (ms) on an RTX 2080 Ti desktop GPU at batch size 1;
- ``titan_rtx_256`` error and latency on a Titan RTX at batch size 256;
- ``gold_6226``     error and latency on a Xeon Gold 6226 server CPU;
- ``pixel2``        error and latency on a Pixel 2 phone (whole milliseconds: many ties);
- ``samsung_a50``   error and latency on a Samsung A50 phone (whole milliseconds);
- ``2080ti_1+pixel2`` three objectives: error, and latency on the GPU and on the phone at once.

The space is six ``Choice`` parameters (``e0`` .. ``e5``, edges in arch-string order) over the operation
names ``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``: unordered
categories, given to Optuna as ``CategoricalDistribution``. An architecture is its row: isomorphic cells
are separate rows with their own measured latencies, so a point of the space is a canonical architecture.
About a fifth of the cells have no path from input to output (90 % error): they stretch any
normalisation of the objectives, as degenerate candidates of real spaces do.

hwnas studies get the space's network map (:func:`network`: every operation on a dead path set to
``none``), with the error a property of the network and each latency not (NAS-Bench-201's code runs the
dead operations); ``bayes`` then models the error over the networks. Optuna's samplers have no such
input. ``--without-network`` leaves the map out.

Strategies: every name ``search.make_strategy`` knows (every entry of ``search.STRATEGIES`` with its
defaults, ``auto`` and the wrapped ``optuna:NAME`` when the package has them) and, in the same run,
Optuna's own ``TPESampler(multivariate=True)`` (``optuna-tpe``), ``NSGAIISampler`` (``optuna-nsga2``),
``RandomSampler``, ``GPSampler`` (``optuna-gp``, only up to ``--gp-budget`` evaluations: its cost per
trial grows fast) and the sampler ``optuna.create_study`` picks by default for several objectives
(``optuna-default``; in Optuna 5.1 a univariate ``TPESampler``), each seeded, driven one trial at a time
through ask/tell exactly as ``benchmarks/strategies.py`` drives them.

Figures, per problem and budget (50, 100, 200, 500 evaluations; every proposal counts as one, a
repeated one included), over ``--seeds`` seeds (default 10):

- hypervolume regret ``1 - HV / HV(true front)`` with the reference point at the nadir of the true front
  plus 10 % of its range, median [Q1, Q3];
- share of the true front's architectures evaluated, median;
- distinct architectures evaluated, median;
- ask+tell overhead per trial (mean over the run's first B trials; runs share the machine with each
  other, so ratios within the run are what compares);
- one-sided Mann-Whitney U p-value that a strategy's regrets are lower than those of the best Optuna
  sampler of that cell (lowest median), and the reverse one (``worse p``), over seeds.

    nice -n 10 .venv/bin/python benchmarks/nb201.py [--quick] [--data CSV] [--out benchmarks/out]
        [--seeds N] [--workers N] [--problems P ...] [--strategies S ...] [--gp-budget N] [--tag T]
        [--budgets B ...] [--without-network]   # a strategy may carry options for ablations: 'bayes[scaling=minmax]'
    .venv/bin/python benchmarks/nb201.py --report benchmarks/out/nb201.json   # re-print a report
    .venv/bin/python benchmarks/nb201.py --merge A.json B.json ...            # one report of several runs
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import json
import multiprocessing
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driving as sb

import search
from search import Choice, Space, hypervolume, non_dominated_mask

NAME = "nb201"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nb201_help.csv"
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
BUDGETS = (50, 100, 200, 500)
QUICK_BUDGETS = (50, 100)
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = tuple(f"e{i}" for i in range(6))
EDGE_NODES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from) of e0 .. e5; node 0 in, 3 out
DEVICES = {
    "2080ti_1": "RTX 2080 Ti, batch 1 (desktop GPU)",
    "titan_rtx_256": "Titan RTX, batch 256 (desktop GPU)",
    "gold_6226": "Xeon Gold 6226 (server CPU)",
    "pixel2": "Pixel 2 (phone)",
    "samsung_a50": "Samsung A50 (phone)",
}
PROBLEMS = (*DEVICES, "2080ti_1+pixel2")
OPTUNA = ("optuna-tpe", "optuna-nsga2", "optuna-random", "optuna-gp", "optuna-default")
ATTRIBUTION = (
    "NAS-Bench-201 accuracies from NATS-Bench (Dong et al.) via gabro8a/NAS-Landscapes (MIT); latencies "
    "from HELP (Lee et al., NeurIPS 2021; MIT) and BRP-NAS (Dudziak et al., NeurIPS 2020)"
)


# -- the table and its problems -----------------------------------------------------------------------


def live_edges(ops: Sequence[str]) -> tuple[bool, ...]:
    """Which edges can change the cell's output: an operation other than ``none`` on an edge whose source
    the input reaches and whose target reaches the output (``ops``: the operation of ``e0`` .. ``e5``)."""
    fed = {0}
    for node in (1, 2, 3):
        if any(to == node and src in fed and op != "none" for (to, src), op in zip(EDGE_NODES, ops)):
            fed.add(node)
    feeding = {3}
    for node in (2, 1, 0):
        if any(src == node and to in feeding and op != "none" for (to, src), op in zip(EDGE_NODES, ops)):
            feeding.add(node)
    return tuple(op != "none" and src in fed and to in feeding for (to, src), op in zip(EDGE_NODES, ops))


def network(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params of the network a cell computes: every operation on a dead path set to ``none``. The
    problems hand this to hwnas studies as their ``network`` map, with the error a property of the
    network and each latency not (NAS-Bench-201's code still runs the dead operations)."""
    ops = [params[e] for e in EDGES]
    return {e: op if live else "none" for e, op, live in zip(EDGES, ops, live_edges(ops))}


def load_table(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(ops, error, latency)``: ops ``15625 x 6`` (operation index per edge), error in % and latency
    in ms per device (HELP column ``help_<device>_latency``)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    ops = np.array([[int(r[f"op{i}"]) for i in range(6)] for r in rows], dtype=int)
    error = np.array([100.0 - float(r["cifar10_valid_acc"]) for r in rows])
    latency = {d: np.array([float(r[f"help_{d}_latency"]) for r in rows]) for d in DEVICES}
    return ops, error, latency


def make_problem(
    name: str,
    ops: np.ndarray,
    error: np.ndarray,
    latency: Mapping[str, np.ndarray],
    *,
    with_network: bool = True,
) -> sb.Problem:
    devices = name.split("+")
    unknown = [d for d in devices if d not in latency]
    if unknown:
        raise ValueError(f"unknown device {unknown[0]!r}; valid: {', '.join(latency)}")
    F = np.column_stack([error, *(latency[d] for d in devices)])
    index = {tuple(int(v) for v in row): i for i, row in enumerate(ops)}
    if len(index) != 15625:
        raise SystemExit(f"the table holds {len(index)} distinct cells, not the 15,625 of NAS-Bench-201")
    space = Space({e: Choice(OPS) for e in EDGES})
    op_index = {op: i for i, op in enumerate(OPS)}

    def row(params: Mapping[str, Any]) -> int:
        return index[tuple(op_index[params[e]] for e in EDGES)]

    mask = non_dominated_mask(F)
    front = F[mask]
    ref = sb.reference_for(front)
    objectives = ("error", *(f"latency_ms_{d}" for d in devices))
    problem = sb.Problem(
        name,
        "NAS-Bench-201 CIFAR-10 validation error (%) and latency (ms) on "
        + " and ".join(DEVICES[d] for d in devices),
        space,
        objectives,
        lambda p: tuple(float(v) for v in F[row(p)]),
        row,
        front,
        f"non-dominated rows of the whole table ({int(mask.sum())} archs)",
        ref,
        hypervolume(front, ref),
        network if with_network else None,
        (True, *(False for _ in devices)),
    )
    _FRONT_ROWS[name] = frozenset(int(i) for i in np.flatnonzero(mask))
    return problem


_PROBLEMS: dict[str, sb.Problem] = {}
_FRONT_ROWS: dict[str, frozenset[int]] = {}


def _job(job: tuple[str, str, int, tuple[int, ...]]) -> dict[str, Any]:
    name, strategy, seed, budgets = job
    problem = _PROBLEMS[name]
    trace = sb.drive(problem, strategy, seed, max(budgets))
    out = sb.summarise_run(problem, strategy, seed, trace, budgets)
    front = _FRONT_ROWS[name]
    out["front_share"] = {
        str(b): len(front.intersection(trace.keys[: min(b, len(trace.keys))])) / len(front) for b in budgets
    }
    out["describe"] = _describe(strategy, problem, seed, max(budgets))
    return out


def _describe(strategy: str, problem: sb.Problem, seed: int, budget: int) -> str:
    """What an ``auto`` strategy picks (its ``describe()``), else the empty string."""
    if strategy.startswith("optuna-"):
        return ""
    try:
        s = sb.make(strategy, problem.space, seed, budget)
        s.setup(problem.space, [search.Objective(o) for o in problem.objectives])
    except Exception:  # noqa: BLE001 - reported by the run itself
        return ""
    describe = getattr(s, "describe", None)
    return str(describe()) if callable(describe) else ""


# -- summaries and the report ---------------------------------------------------------------------------


def _p(x: Sequence[float], y: Sequence[float], alternative: str) -> float | None:
    from scipy.stats import mannwhitneyu

    if len(x) < 2 or len(y) < 2:
        return None
    return float(mannwhitneyu(x, y, alternative=alternative).pvalue)


def summarise(
    runs: Sequence[Mapping[str, Any]],
    problems: Sequence[str],
    strategies: Sequence[str],
    budgets: Sequence[int],
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for pr in problems:
        summary[pr] = {}
        for s in strategies:
            ok = [r for r in runs if r["problem"] == pr and r["strategy"] == s and r["evaluations"]]
            entry: dict[str, Any] = {"regret": {}, "front_share": {}, "distinct": {}, "overhead_ms": {}}
            for b in budgets:
                here = [r for r in ok if r["evaluations"] >= b]
                key = str(b)
                entry["regret"][key] = sb.quartiles([r["regret"][key] for r in here]) if here else None
                entry["front_share"][key] = (
                    float(np.median([r["front_share"][key] for r in here])) if here else None
                )
                entry["distinct"][key] = (
                    float(np.median([r["distinct"][key] for r in here])) if here else None
                )
                entry["overhead_ms"][key] = (
                    float(np.median([r["overhead_mean_ms"][key] for r in here])) if here else None
                )
            entry["statuses"] = sorted(
                {r["status"] for r in runs if r["problem"] == pr and r["strategy"] == s}
            )
            entry["describe"] = sorted({r.get("describe", "") for r in ok} - {""})
            summary[pr][s] = entry
        # best Optuna sampler per budget (lowest median regret) and p-values against it
        for b in budgets:
            key = str(b)
            rivals = {
                s: summary[pr][s]["regret"][key]["median"]
                for s in strategies
                if s in OPTUNA and summary[pr][s]["regret"][key] is not None
            }
            if not rivals:
                continue
            best = min(rivals, key=rivals.__getitem__)
            y = [
                r["regret"][key]
                for r in runs
                if r["problem"] == pr and r["strategy"] == best and r["evaluations"] >= b
            ]
            for s in strategies:
                x = [
                    r["regret"][key]
                    for r in runs
                    if r["problem"] == pr and r["strategy"] == s and r["evaluations"] >= b
                ]
                summary[pr][s].setdefault("vs_best_optuna", {})[key] = {
                    "best_optuna": best,
                    "p_better": _p(x, y, "less") if s != best else None,
                    "p_worse": _p(x, y, "greater") if s != best else None,
                }
    return summary


def _fmt(q: Mapping[str, float] | None) -> str:
    if q is None:
        return "n/a"
    return f"{100 * q['median']:.2f} [{100 * q['q1']:.2f}, {100 * q['q3']:.2f}]"


def _pfmt(p: float | None) -> str:
    return "" if p is None else (f"{p:.2g}" if p >= 0.001 else "<0.001")


def report(payload: Mapping[str, Any], path: Path) -> str:
    budgets = payload["budgets"]
    strategies = payload["strategies"]
    summary = payload["summary"]
    lines = [f"## NAS-Bench-201 with measured device latencies{' (quick)' if payload['quick'] else ''}\n"]
    for c in payload["commands"]:
        lines.append(f"- command: `{c}`")
    lines.append(f"- date: {payload['date']}")
    lines.append(f"- machine: {payload['machine_line']}")
    lines.append(f"- data: {payload['data']} ({ATTRIBUTION})")
    lines.append(
        f"- seeds: {len(payload['seeds'])} per strategy and problem, one run of up to {max(budgets)} evaluations "
        f"each (`optuna-gp` up to {payload['gp_budget']})"
    )
    lines.append(
        "- network map: hwnas studies model the error over each cell's network (dead-path operations set to "
        "`none`; latencies over the cell as given)"
        if payload.get("network", False)
        else "- network map: none (every model sees the cells as given)"
    )
    lines.append("")
    for pr, meta in payload["problems"].items():
        ref = ", ".join(f"{v:.4g}" for v in meta["reference"])
        lines.append(f"### {pr}: {meta['description']}\n")
        lines.append(
            f"True front: {meta['front']}; reference ({ref}); true HV {meta['true_hv']:.6g}. Regret in % "
            "(100 x (1 - HV / HV true)), median [Q1, Q3] over seeds; p: one-sided Mann-Whitney U against "
            "the best Optuna sampler of the column (marked *), `<` lower regret, `>` higher.\n"
        )
        rows = []
        for s in strategies:
            e = summary[pr][s]
            if not e["statuses"]:  # not run on this problem
                continue
            row = [s]
            for b in budgets:
                key = str(b)
                cellv = _fmt(e["regret"][key])
                vs = e.get("vs_best_optuna", {}).get(key)
                if vs and vs["best_optuna"] == s:
                    cellv += " *"
                elif vs and e["regret"][key] is not None:
                    pb, pw = vs["p_better"], vs["p_worse"]
                    if pb is not None and pb < 0.05:
                        cellv += f" (< p {_pfmt(pb)})"
                    elif pw is not None and pw < 0.05:
                        cellv += f" (> p {_pfmt(pw)})"
                row.append(cellv)
            bmax = str(max(budgets))
            fs, dist, ov = e["front_share"][bmax], e["distinct"][bmax], e["overhead_ms"][bmax]
            bgp = next((str(b) for b in reversed(budgets) if e["front_share"][str(b)] is not None), None)
            row.append("n/a" if fs is None else f"{100 * fs:.0f}%")
            row.append("n/a" if dist is None else f"{dist:.0f}")
            if ov is None and bgp is not None:
                ov = e["overhead_ms"][bgp]
                row.append(f"{ov:.2f} (@{bgp})")
            else:
                row.append("n/a" if ov is None else f"{ov:.2f}")
            notes = [st for st in e["statuses"] if st != "ok"] + [f"picked {d}" for d in e["describe"]]
            row.append("; ".join(n[:80] for n in notes))
            rows.append(row)
        lines.append(
            sb.table(
                [
                    "strategy",
                    *[f"regret % @{b}" for b in budgets],
                    f"front found @{max(budgets)}",
                    f"distinct @{max(budgets)}",
                    f"ms/trial @{max(budgets)}",
                    "note",
                ],
                rows,
            )
        )
        lines.append("")
    lines.append(_overview(payload))
    s = payload["seconds"]
    lines.append(f"\nrun time: {s:.0f}s; figures in {path}")
    return "\n".join(lines)


def _overview(payload: Mapping[str, Any]) -> str:
    """Median regret (%) of every strategy at every budget, over all problems: one row per strategy."""
    budgets = payload["budgets"]
    summary = payload["summary"]
    problems = list(payload["problems"])
    lines = [
        "### Overview: worst median regret (%) over the problems, and cells won\n",
        (
            "Per strategy and budget: the largest of its median regrets over the problems (lower is better), "
            "and in how many problems its median is the lowest of every strategy (ties count for each); a "
            "strategy run on some problems only is taken over those.\n"
        ),
    ]
    rows = []
    for s in payload["strategies"]:
        row = [s]
        for b in budgets:
            key = str(b)
            present = [pr for pr in problems if summary[pr][s]["regret"][key] is not None]
            if not present:
                row.append("n/a")
                continue
            worst = max(summary[pr][s]["regret"][key]["median"] for pr in present)
            wins = sum(
                summary[pr][s]["regret"][key]["median"]
                <= min(
                    summary[pr][t]["regret"][key]["median"]
                    for t in payload["strategies"]
                    if summary[pr][t]["regret"][key] is not None
                )
                + 1e-12
                for pr in present
            )
            only = f"; {len(present)} of {len(problems)} problems" if len(present) < len(problems) else ""
            row.append(f"{100 * worst:.2f} ({wins}{only})")
        rows.append(row)
    lines.append(sb.table(["strategy", *[f"@{b}" for b in budgets]], rows))
    return "\n".join(lines)


def _problem_name(name: str) -> str:
    devices = name.split("+")
    unknown = [d for d in devices if d not in DEVICES]
    if unknown or len(set(devices)) != len(devices):
        raise argparse.ArgumentTypeError(
            f"{name!r}: a device or distinct devices joined by +, from {', '.join(DEVICES)}"
        )
    return name


def default_strategies() -> list[str]:
    names = getattr(search, "strategy_names", None)
    ours = list(names()) if callable(names) else list(search.STRATEGIES)
    return [*ours, *OPTUNA]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="2 seeds, budgets 50 and 100: checks the script works"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the table (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON figures")
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per strategy and problem (default 10, quick 2)"
    )
    p.add_argument("--workers", type=int, default=2, help="processes the runs are spread over (default 2)")
    p.add_argument(
        "--problems",
        nargs="+",
        default=None,
        type=_problem_name,
        help=f"default: {' '.join(PROBLEMS)}; a device, or devices joined by + (error and each device's latency); "
        f"devices: {', '.join(DEVICES)}",
    )
    p.add_argument("--strategies", nargs="+", default=None, help="default: every strategy and Optuna sampler")
    p.add_argument("--gp-budget", type=int, default=100, help="evaluations per optuna-gp run (default 100)")
    p.add_argument("--budgets", type=int, nargs="+", default=None, help="default 50 100 200 500")
    p.add_argument("--tag", default="", help="suffix of the result file name")
    p.add_argument(
        "--report", type=Path, default=None, help="only print the report of an earlier result file"
    )
    p.add_argument("--merge", type=Path, nargs="+", default=None, help="one report of several result files")
    p.add_argument(
        "--without-network",
        action="store_true",
        help="hwnas studies get no network map (dead-path operations set to none) for the error",
    )
    args = p.parse_args()
    if args.report is not None:
        print(report(json.loads(args.report.read_text()), args.report))
        return
    if args.merge:
        payload = merge([json.loads(f.read_text()) for f in args.merge])
        path = sb.write_json(args.out / f"{NAME}-merged{args.tag}.json", payload)
        print(report(payload, path))
        return
    if not args.data.is_file():
        p.error(f"no table at {args.data}; give its path with --data")
    info = sb.header()
    started = time.perf_counter()
    budgets = tuple(args.budgets or (QUICK_BUDGETS if args.quick else BUDGETS))
    n_seeds = args.seeds or (2 if args.quick else 10)
    strategies = list(args.strategies or default_strategies())
    known = set(default_strategies())
    unknown = [s for s in strategies if sb.parse_variant(s)[0] not in known]
    if unknown:
        p.error(f"unknown strategies {unknown}; valid: {', '.join(default_strategies())}")
    problems = list(args.problems or PROBLEMS)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    default = type(optuna.create_study(directions=["minimize", "minimize"]).sampler).__name__
    if default != "TPESampler":
        raise SystemExit(
            f"Optuna's default multi-objective sampler is {default} here, not TPESampler: update OPTUNA"
        )

    ops, error, latency = load_table(args.data)
    for name in problems:
        _PROBLEMS[name] = make_problem(name, ops, error, latency, with_network=not args.without_network)
        pr = _PROBLEMS[name]
        sb.log(f"{name}: {len(pr.front)} front archs, reference {pr.reference}, true HV {pr.true_hv:.6g}")

    cost = {"bayes": 0, "auto": 0, "optuna-gp": 0, "optuna:gp": 0, "optuna-tpe": 1, "optuna:tpe": 1}
    jobs = []
    for s in sorted(strategies, key=lambda s: cost.get(s, 2)):
        bs = budgets
        if s in ("optuna-gp", "optuna:gp"):
            bs = tuple(b for b in budgets if b <= args.gp_budget) or (args.gp_budget,)
        for pr in problems:
            for seed in range(n_seeds):
                jobs.append((pr, s, seed, bs))
    # Every finished run is appended to a JSON-lines file as it ends; a rerun of the same command takes the
    # runs found there (same problem, strategy, seed and budgets) instead of running them again.
    tag = args.tag or (
        "" if problems == list(PROBLEMS) and strategies == default_strategies() else "-partial"
    )
    stem = f"{NAME}{'-quick' if args.quick else ''}{tag}"
    partial = args.out / f"{stem}.runs.jsonl"
    runs: list[dict[str, Any]] = []
    if partial.is_file():
        wanted = {(pr, s, seed, tuple(int(b) for b in bs)) for pr, s, seed, bs in jobs}
        for line in partial.read_text().splitlines():
            r = json.loads(line)
            k = (r["problem"], r["strategy"], r["seed"], tuple(int(b) for b in r["regret"]))
            if k in wanted and (r["status"] == "ok" or r["status"].startswith("exhausted")):
                runs.append(r)
                wanted.discard(k)
        jobs = [j for j in jobs if (j[0], j[1], j[2], tuple(j[3])) in wanted]
        sb.log(f"{len(runs)} runs taken from {partial}")
    partial.parent.mkdir(parents=True, exist_ok=True)
    sb.log(f"{len(jobs)} runs in {args.workers} processes")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers) as pool, partial.open("a") as sink:
        for i, r in enumerate(pool.imap_unordered(_job, jobs)):
            runs.append(r)
            sink.write(json.dumps(r) + "\n")
            sink.flush()
            last = max(int(k) for k in r["regret"])
            sb.log(
                f"[{i + 1}/{len(jobs)}] {r['problem']} {r['strategy']} seed {r['seed']}: regret@{last} "
                f"{r['regret'][str(last)]:.4f}, {r['wall_s']:.1f}s, {r['status'][:80]}"
            )
    payload = {
        "benchmark": NAME,
        "commands": [info["command"]],
        "date": info["date"],
        "machine": info["machine"],
        "machine_line": sb.machine_line(info),
        "data": str(args.data),
        "quick": args.quick,
        "budgets": list(budgets),
        "gp_budget": args.gp_budget,
        "network": not args.without_network,
        "seeds": list(range(n_seeds)),
        "strategies": strategies,
        "problems": {
            pr: {
                "description": _PROBLEMS[pr].description,
                "objectives": list(_PROBLEMS[pr].objectives),
                "reference": list(_PROBLEMS[pr].reference),
                "true_hv": _PROBLEMS[pr].true_hv,
                "front": _PROBLEMS[pr].front_note,
            }
            for pr in problems
        },
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    payload["summary"] = summarise(runs, problems, strategies, budgets)
    tag = args.tag or (
        "" if problems == list(PROBLEMS) and strategies == default_strategies() else "-partial"
    )
    path = sb.write_json(args.out / f"{NAME}{'-quick' if args.quick else ''}{tag}.json", payload)
    print(report(payload, path))


def _picks(picked: Mapping[int, str]) -> str:
    """``{50: "bayes", 100: "bayes", 500: "nsga2"}`` -> ``"bayes at 50 and 100, nsga2 at 500"``."""
    by: dict[str, list[int]] = {}
    for b, s in picked.items():
        by.setdefault(s, []).append(b)
    parts = []
    for s, bs in by.items():
        at = ", ".join(str(b) for b in bs[:-1]) + (" and " if len(bs) > 1 else "") + str(bs[-1])
        parts.append(f"{s} at {at}")
    return ", ".join(parts)


def merge(payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several result files (other strategies, problems or budgets, the same seeds) as one; a later file's
    runs of a (problem, strategy) replace an earlier file's. Budgets: the union; a run counts at the
    budgets it reached.

    An ``auto`` row is added when ``bayes`` and ``nsga2`` are both there: ``auto`` given a budget B runs
    exactly the strategy ``search._auto.choose`` picks for B, with its options and the same seed
    (``tests/search/test_factory.py`` checks the proposals are identical), so its regret at B is that
    strategy's regret at B, seed by seed; budgets whose pick was not run are left out.
    """
    first = payloads[0]
    runs: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    strategies: list[str] = []
    problems: dict[str, Any] = {}
    for pl in payloads:
        replaced = {(r["problem"], r["strategy"]) for r in pl["runs"]}
        runs = {k: v for k, v in runs.items() if (k[0], k[1]) not in replaced}
        runs.update({(r["problem"], r["strategy"], r["seed"]): r for r in pl["runs"]})
        strategies += [s for s in pl["strategies"] if s not in strategies]
        problems.update(pl["problems"])
    budgets = sorted({int(b) for pl in payloads for b in pl["budgets"]})
    out = dict(first)
    out["commands"] = [c for pl in payloads for c in pl["commands"]]
    out["date"] = ", ".join(sorted({pl["date"][:10] for pl in payloads}))
    out["budgets"] = budgets
    networks = {bool(pl.get("network", False)) for pl in payloads}
    if len(networks) > 1:
        raise SystemExit("cannot merge runs with and without the network map; merge each kind apart")
    out["network"] = networks.pop()
    out["gp_budget"] = (
        max(pl["gp_budget"] for pl in payloads if "optuna-gp" in pl["strategies"])
        if any("optuna-gp" in pl["strategies"] for pl in payloads)
        else first["gp_budget"]
    )
    all_runs = list(runs.values())
    if "bayes" in strategies and "nsga2" in strategies and "auto" not in strategies:
        from search._auto import choose

        space = Space({e: Choice(OPS) for e in EDGES})
        for pr, s, seed in list(runs):
            if s != "bayes" or (pr, "nsga2", seed) not in runs:
                continue
            n_objectives = 1 + len(pr.split("+"))
            # auto run with a budget B runs exactly the strategy choose() picks for B (a test checks it)
            picked: dict[int, Mapping[str, Any]] = {}
            for b in budgets:
                name, options, _ = choose(space, n_objectives, b)
                label = sb.format_variant(name, options)
                if (pr, label, seed) in runs:
                    picked[b] = runs[(pr, label, seed)]
            if not picked:
                continue
            composed: dict[str, Any] = {
                "problem": pr,
                "strategy": "auto",
                "seed": seed,
                "status": "ok",
                "evaluations": max(b for b, run in picked.items() if str(b) in run["regret"]),
                "describe": _picks({b: run["strategy"] for b, run in picked.items()}),
            }
            for field in ("regret", "front_share", "distinct", "overhead_mean_ms"):
                composed[field] = {
                    str(b): run[field][str(b)] for b, run in picked.items() if str(b) in run[field]
                }
            all_runs.append(composed)
        strategies.insert(strategies.index("bayes") + 1, "auto")
    order = [*default_strategies(), "auto"]
    strategies.sort(key=lambda s: order.index(s) if s in order else len(order))
    out["runs"] = all_runs
    out["strategies"] = strategies
    out["problems"] = problems
    out["seconds"] = sum(pl["seconds"] for pl in payloads)
    out["summary"] = summarise(out["runs"], list(problems), strategies, budgets)
    return out


if __name__ == "__main__":
    main()
