"""Ask+tell time of ``bayes`` with BLAS on its default pool of threads against one thread, beside busy cores.

A study runs its strategy's ``ask`` and ``tell`` with BLAS limited to one thread
(``search._threads.one_blas_thread``). This script measures what that buys: the ``bayes`` strategy on
NAS-Bench-201 (``2080ti_1``, seed 0, ``--trials`` evaluations) in a fresh process per setting, with BLAS
either on the pool it starts with (``pool``: the limit replaced by a no-op) or limited (``one thread``),
each with 0 and then ``--burners`` CPU-bound processes beside it. The runs propose the same points either
way; only the time differs.

    .venv/bin/python benchmarks/blas_threads.py [--trials N] [--burners N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driving as sb
import nb201


def _child(mode: str, trials: int, data: Path) -> None:
    import search._study

    if mode == "pool":
        search._study.one_blas_thread = contextlib.nullcontext  # type: ignore[assignment]
    from threadpoolctl import threadpool_info

    pool = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=0)
    ops, err, lat = nb201.load_table(data)
    problem = nb201.make_problem("2080ti_1", ops, err, lat)
    trace = sb.drive(problem, "bayes", 0, trials)
    ms = 1e3 * np.array(trace.overhead_s)
    print(
        json.dumps(
            {
                "blas_pool": pool,
                "mean_ms": float(ms.mean()),
                "max_ms": float(ms.max()),
                "status": trace.status,
                "points": [list(map(float, f)) for f in trace.F[:5]],
            }
        )
    )


def _burn() -> None:  # pragma: no cover - runs until terminated
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=150)
    p.add_argument("--burners", type=int, default=1)
    p.add_argument("--data", type=Path, default=nb201.DEFAULT_DATA)
    p.add_argument("--child", choices=("pool", "one"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args.child, args.trials, args.data)
        return
    info = sb.header()
    # the child starts with BLAS as a user's process would: without the one-thread settings nb201 makes
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    rows, results = [], {}
    for burners in (0, args.burners):
        for mode in ("pool", "one"):
            procs = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(burners)]
            for q in procs:
                q.start()
            try:
                start = time.perf_counter()
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        "--trials",
                        str(args.trials),
                        "--data",
                        str(args.data),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                wall = time.perf_counter() - start
            finally:
                for q in procs:
                    q.terminate()
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[(burners, mode)] = r
            sb.log(f"burners {burners}, {mode}: {r['mean_ms']:.1f} ms per ask+tell, wall {wall:.1f} s")
            rows.append(
                [
                    burners,
                    "default pool" if mode == "pool" else "one thread",
                    r["blas_pool"],
                    f"{r['mean_ms']:.1f}",
                    f"{r['max_ms']:.0f}",
                    f"{wall:.1f}",
                ]
            )
    for burners in (0, args.burners):
        same = results[(burners, "pool")]["points"] == results[(burners, "one")]["points"]
        ratio = results[(burners, "pool")]["mean_ms"] / results[(burners, "one")]["mean_ms"]
        rows.append(
            [burners, "ratio pool / one", "", f"{ratio:.2f}", "", "same points" if same else "POINTS DIFFER"]
        )
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {sb.machine_line(info)}\n")
    print(
        sb.table(
            [
                "CPU burners beside",
                "BLAS",
                "threads at start",
                "ms per ask+tell",
                "slowest, ms",
                "run wall, s",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
