"""How long does the built-in demo take? Wall time of ``hwnas search`` with no arguments, phase by phase.

Runs the demo search exactly as ``hwnas search`` does: the same config (``load_config(None, {"name": ...,
"out": ...})``, i.e. every default) through ``Experiment(...).run()``, only without progress bars. The run
directory goes to ``OUT/runs/``. Reports the seconds of every phase: start-up (imports), data, supernet
training, search (split into accuracy scoring, ONNX export and latency measurement, and the rest: the
strategy, the study storage and the caches), export of the Pareto front, writing the outputs, and
the total, against the target of 5 minutes on 2 cores.

``--quick`` overrides the budget (2 epochs, 16 trials, population 8) to check the script works; its
figures say nothing about the target.

    .venv/bin/python benchmarks/demo_time.py [--quick] [--out benchmarks/out]
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import os
import sys
from pathlib import Path

# As the hwnas command line does, before torch loads: OpenMP threads that spin while they wait slow
# training down several times over as soon as another process shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from nas import Experiment, load_config

NAME = "demo_time"
TARGET_S = 300.0
QUICK = {"supernet.epochs": 2, "search.trials": 16, "search.population": 8}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], threads=False)
    args = p.parse_args()
    startup = time.perf_counter() - _T_START
    info = common.header()

    name = time.strftime("demo-%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    overrides = {"name": name, "out": str(args.out / "runs"), **(QUICK if args.quick else {})}
    cfg = load_config(None, overrides)
    common.log(
        f"running the demo: {cfg.supernet.epochs} epochs, {cfg.search.trials} trials, "
        f"{cfg.data.name}, profile {cfg.profile} -> {args.out / 'runs' / name}"
    )
    t0 = time.perf_counter()
    result = Experiment(cfg).run()
    run_wall = time.perf_counter() - t0
    total = time.perf_counter() - _T_START

    ph = dict(result.phase_seconds)
    split = {k: ph.get(f"search.{k}", 0.0) for k in ("accuracy", "export", "latency")}
    search_rest = ph["search"] - sum(split.values())
    outputs = run_wall - sum(ph[k] for k in ("data", "supernet_training", "search", "export"))
    rows_spec = [
        ("start-up (python, imports)", startup),
        ("data", ph["data"]),
        ("supernet training", ph["supernet_training"]),
        ("search", ph["search"]),
        ("  of which accuracy (BN recalibration + validation)", split["accuracy"]),
        ("  of which ONNX export", split["export"]),
        ("  of which latency measurement (and params/FLOPs)", split["latency"]),
        ("  of which the rest (strategy, study storage, caches)", search_rest),
        ("export of the Pareto front", ph["export"]),
        ("run directory, pareto.json, trials.csv, plot", outputs),
        ("**total**", total),
    ]
    meets = total <= TARGET_S
    payload = {
        **info,
        "benchmark": NAME,
        "quick": args.quick,
        "config": cfg.model_dump(mode="json"),
        "run_dir": str(result.run_dir),
        "n_trials": result.n_trials,
        "n_failed": result.n_failed,
        "front_size": len(result.models),
        "hypervolume": result.hypervolume,
        "phase_seconds": ph,
        "seconds": {label.strip("* "): round(v, 2) for label, v in rows_spec},
        "total_seconds": round(total, 2),
        "target_seconds": TARGET_S,
        "meets_target": meets if not args.quick else None,
    }
    path = common.write_json(args.out / f"{NAME}{'-quick' if args.quick else ''}.json", payload)

    print(f"## Demo wall time{' (quick: not the demo budget)' if args.quick else ''}\n")
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {common.machine_line(info)}")
    print(
        f"- config: {cfg.data.name}, {cfg.supernet.epochs} epochs (batch {cfg.supernet.batch_size}), "
        f"{cfg.search.strategy} {cfg.search.trials} trials (population {cfg.search.population}), "
        f"{result.n_failed} failed, {len(result.models)} models on the front, HV {result.hypervolume:.4g}\n"
    )
    print(
        common.table(
            ["phase", "seconds", "share"],
            [[label, f"{v:.1f}", f"{100 * v / total:.0f}%"] for label, v in rows_spec],
        )
    )
    if args.quick:
        print(f"\ntotal {total:.0f}s (quick run: the 5-minute target applies to the full demo only)")
    else:
        print(f"\ntotal {total:.0f}s against a target of {TARGET_S:.0f}s: {'met' if meets else 'NOT met'}")
    print(f"figures in {path}")


if __name__ == "__main__":
    main()
