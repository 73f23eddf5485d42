"""Ask+tell overhead per trial on NAS-Bench-201, every strategy in turn in one process, same problem and seed.

The searches of ``nb201.py`` run side by side in several processes on a shared machine, so their times are
comparable only within one run. This script runs each strategy for ``--trials`` evaluations (default 500)
on the ``2080ti_1`` problem with seed 0, one after the other in this process, strategies interleaved over
``--repeats`` rounds (the GP strategies once), and reports the mean ask+tell time per trial over the first
100 and all trials, the mean over the last 10 %, and the slowest single ask+tell.

    nice -n 10 .venv/bin/python benchmarks/nb201_overhead.py [--trials N] [--repeats N] [--strategies S ...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driving as sb
import nb201

DEFAULT = ("nsga2", "evolution", "random", "rl", "optuna-nsga2", "optuna-tpe", "optuna:tpe", "bayes")
ONCE = {"bayes", "optuna-gp", "optuna:gp"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=nb201.DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=nb201.DEFAULT_OUT)
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--problem", default="2080ti_1", choices=nb201.PROBLEMS)
    p.add_argument("--strategies", nargs="+", default=list(DEFAULT))
    args = p.parse_args()
    info = sb.header()
    ops, err, lat = nb201.load_table(args.data)
    problem = nb201.make_problem(args.problem, ops, err, lat)
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in args.strategies}
    for rep in range(args.repeats):
        order = args.strategies[rep % len(args.strategies) :] + args.strategies[: rep % len(args.strategies)]
        for s in order:
            if rep and s in ONCE:
                continue
            trace = sb.drive(problem, s, 0, args.trials)
            ov = 1e3 * np.array(trace.overhead_s)
            k = len(ov)
            rec = {
                "status": trace.status,
                "mean_ms_100": float(ov[:100].mean()),
                f"mean_ms_{k}": float(ov.mean()),
                "last10pct_ms": float(ov[k - k // 10 :].mean()),
                "max_ms": float(ov.max()),
            }
            runs[s].append(rec)
            sb.log(f"{s} round {rep}: {rec}")
    rows = []
    base = np.median([r[f"mean_ms_{args.trials}"] for r in runs.get("optuna-nsga2", [])] or [np.nan])
    tpe = np.median([r[f"mean_ms_{args.trials}"] for r in runs.get("optuna-tpe", [])] or [np.nan])
    for s, recs in runs.items():
        med = {key: float(np.median([r[key] for r in recs])) for key in recs[0] if key != "status"}
        rows.append(
            [
                s,
                f"{med['mean_ms_100']:.2f}",
                f"{med[f'mean_ms_{args.trials}']:.2f}",
                f"{med['last10pct_ms']:.2f}",
                f"{med['max_ms']:.0f}",
                f"{med[f'mean_ms_{args.trials}'] / base:.2f}",
                f"{med[f'mean_ms_{args.trials}'] / tpe:.2f}",
                str(len(recs)),
            ]
        )
    path = sb.write_json(args.out / "nb201-overhead.json", {**info, "runs": runs, "trials": args.trials})
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {sb.machine_line(info)}\n")
    print(
        sb.table(
            [
                "strategy",
                "ms/trial, first 100",
                f"ms/trial, all {args.trials}",
                "ms/trial, last 10 %",
                "slowest ask+tell, ms",
                "ratio to optuna-nsga2",
                "ratio to optuna-tpe",
                "runs",
            ],
            rows,
        )
    )
    print(f"\nfigures in {path}")


if __name__ == "__main__":
    main()
