"""How fast are candidates evaluated, in this process and on 1 or 2 Dask workers? And what does the study storage cost?

Part 1, evaluation throughput: the demo config's supernet (its spec, untrained: scoring costs the same
whatever the weights) and data, scored by the real evaluator (batch-norm recalibration, validation error,
ONNX export, latency on the demo's hardware profile) through ``search.Study.optimize``, for the same
``--candidates`` distinct random archs (seed ``--arch-seed``) in each mode: in this process (no executor),
then on a local Dask cluster of 1 and of 2 worker processes (one thread each), as
``nas.run._distributed.executor_for`` starts it. Each mode starts with empty caches. Every process pays once
for its first convolutions and exports, so each mode first scores 2 other archs per evaluation slot
(untimed apart from their total). Reported: seconds to start the cluster and send the evaluator to its
workers, seconds of the warm-up, seconds for the timed trials, trials per second, the speed-up over this
process, and how many evaluators each worker built (1: the weights reached it once).
Latency measurements of one device never overlap, so on one machine they run one at a time whatever the
number of workers, and a CPU measurement also waits for the other workers' scoring and exporting on its host.

Two workloads are run: ``measured`` (latency measured with ONNX Runtime, as the demo does) and
``evaluation-bound`` (latency predicted from a lookup table measured at the start, as a search for a device
elsewhere runs: every second goes to batch-norm recalibration, validation and export). The machine's own
ceiling is measured too: the same single-threaded torch work in one process alone, then in two processes at
once; the ratio of their throughputs is the most any two single-threaded workers can gain here.

Part 2, storage overhead: ``--storage-trials`` trials of a trivial objective (random search over a small
space) with ``InMemoryStorage`` and with ``SQLiteStorage`` (a file under ``OUT/tmp``); the difference per
trial is what the SQLite study database adds to every trial of a search.

``--quick`` scores 4 candidates and runs 100 storage trials to check that the script works; its figures
say nothing.

    .venv/bin/python benchmarks/throughput.py [--quick] [--out benchmarks/out] [--threads N]
        [--candidates N] [--arch-seed S] [--storage-trials N]
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# As the hwnas command line does, before torch loads: OpenMP threads that spin while they wait slow
# evaluation down several times over as soon as another process shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hardware_profiles import load_profile
from nas import Supernet, SupernetSpec, arch_key
from nas.run._distributed import executor_for
from nas.run._lut import measure_table
from nas.run._recipe import EvaluatorRecipe
from search import (
    Choice,
    InMemoryStorage,
    Integer,
    Objective,
    RandomStrategy,
    Space,
    SQLiteStorage,
    Storage,
    Study,
    TrialState,
)

NAME = "throughput"
WARMUP_PER_SLOT = 2
MODES: tuple[tuple[str, int | None], ...] = (
    ("in this process", None),
    ("1 Dask worker", 1),
    ("2 Dask workers", 2),
)


def candidates(spec: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct random archs of ``spec`` as search-space params, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < n:
        arch = spec.random_arch(rng)
        seen.setdefault(arch_key(arch), spec.params_from_arch(arch))
    return list(seen.values())


def evaluation_run(
    recipe: EvaluatorRecipe, warmup: list[dict[str, Any]], params: list[dict[str, Any]], workers: int | None
) -> dict[str, Any]:
    """Scores ``warmup`` (untimed, per slot) and then ``params`` (timed) through one study, in this process
    (``workers=None``) or on a fresh local cluster."""
    spec = SupernetSpec.from_dict(recipe.spec)
    t0 = time.perf_counter()
    with executor_for(workers=workers) as pool:
        objective = pool.objective(recipe)
        setup_s = time.perf_counter() - t0
        study = Study(
            space=spec.search_space(),
            objectives=[Objective("error"), Objective("latency_ms")],
            strategy=RandomStrategy(seed=0),
        )
        # Each process pays once for its first convolutions and exports: warm every slot up first.
        warm = warmup[: WARMUP_PER_SLOT * pool.n_parallel]
        for p in warm:
            study.enqueue(p)
        t1 = time.perf_counter()
        study.optimize(objective, n_trials=len(warm), executor=pool.executor, n_parallel=pool.n_parallel)
        warmup_s = time.perf_counter() - t1
        for p in params:
            study.enqueue(p)
        t2 = time.perf_counter()
        study.optimize(objective, n_trials=len(params), executor=pool.executor, n_parallel=pool.n_parallel)
        trials_s = time.perf_counter() - t2
        stats = pool.worker_stats(objective) if pool.client is not None else {}
    failed = [t.error for t in study.trials if t.state is not TrialState.COMPLETE]
    if failed:
        raise SystemExit(f"{len(failed)} evaluations failed, e.g. {failed[0]}")
    timed = study.trials[len(warm) :]
    return {
        "workers": workers,
        "n_parallel": pool.n_parallel,
        "setup_seconds": round(setup_s, 3),
        "warmup_trials": len(warm),
        "warmup_seconds": round(warmup_s, 3),
        "trials_seconds": round(trials_s, 3),
        "trials_per_second": round(len(params) / trials_s, 4),
        "builds_per_worker": sorted(s.builds for s in stats.values()),
        "trials_per_worker": sorted(s.trials for s in stats.values()),
        "worker_seconds": {a: dict(s.seconds) for a, s in stats.items()},
        "errors": [t.metrics["error"] for t in timed],
        "latency_ms": [round(t.metrics["latency_ms"], 5) for t in timed],
    }


def _ceiling_work(iterations: int) -> float:
    """Fixed single-threaded torch work (convolutions and their backward pass); returns its seconds."""
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(16, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 16, 3, padding=1)
    )
    x = torch.randn(32, 16, 8, 8, generator=gen)
    conv(x).sum().backward()  # first-call costs out of the timing
    t0 = time.perf_counter()
    for _ in range(iterations):
        conv(x).sum().backward()
    return time.perf_counter() - t0


def machine_ceiling(iterations: int = 600) -> dict[str, Any]:
    """Throughput of two single-threaded processes at once, relative to one alone (same work each)."""
    import concurrent.futures as cf
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        list(pool.map(_ceiling_work, [5, 5]))  # start both processes, import torch
        alone = pool.submit(_ceiling_work, iterations).result()
        t0 = time.perf_counter()
        together = list(pool.map(_ceiling_work, [iterations, iterations]))
        both_s = time.perf_counter() - t0
    return {
        "one_process_s": round(alone, 3),
        "two_processes_s": [round(t, 3) for t in together],
        "two_processes_wall_s": round(both_s, 3),
        "speedup": round(2 * alone / both_s, 3),
    }


def storage_run(storage: Storage, n_trials: int) -> float:
    """Seconds per trial of a random search with a trivial objective on ``storage``."""
    study = Study(
        space=Space({"x": Integer(0, 1000), "y": Choice([0, 1, 2, 3])}),
        objectives=[Objective("a"), Objective("b")],
        strategy=RandomStrategy(seed=0),
        storage=storage,
    )
    t0 = time.perf_counter()
    study.optimize(lambda t: {"a": float(t.params["x"]), "b": float(t.params["y"])}, n_trials=n_trials)
    return (time.perf_counter() - t0) / n_trials


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=60, help="distinct archs scored in each mode")
    p.add_argument("--arch-seed", type=int, default=0, help="seed of the random archs")
    p.add_argument("--storage-trials", type=int, default=1000, help="trials of the storage comparison")
    args = p.parse_args()
    if args.quick:
        args.candidates, args.storage_trials = 4, 100
    common.apply_threads(args.threads)
    info = common.header()

    cfg = common.demo_config()
    data = common.load_data(cfg)
    spec = common.supernet_spec(cfg, data)
    profile = load_profile(cfg.profile)
    supernet = Supernet(spec, seed=cfg.seed)
    common.log("machine ceiling: single-threaded work in one process, then in two at once")
    ceiling = machine_ceiling()
    common.log(f"  two processes: {ceiling['speedup']:.2f}x one")
    common.log("lookup table for the evaluation-bound workload")
    table, _ = measure_table(spec, profile, data.input_shape, calibration_archs=4, timed_runs=100, rounds=1)
    recipes = {
        "measured": EvaluatorRecipe.from_supernet(
            supernet,
            data=data,
            profile=profile,
            calib_samples=cfg.evaluation.calib_samples,
            exporter=cfg.evaluation.exporter,
        ),
        "evaluation-bound": EvaluatorRecipe.from_supernet(
            supernet,
            data=data,
            profile=profile,
            calib_samples=cfg.evaluation.calib_samples,
            exporter=cfg.evaluation.exporter,
            options={"lut": table, "latency_mode": "predict"},
        ),
    }
    recipe = recipes["measured"]
    drawn = candidates(
        spec, args.candidates + WARMUP_PER_SLOT * max(w or 1 for _, w in MODES), args.arch_seed
    )
    params, warmup = drawn[: args.candidates], drawn[args.candidates :]
    common.log(f"{len(params)} candidates of the demo supernet, profile {cfg.profile}")

    runs = []
    for workload, workload_recipe in recipes.items():
        for label, workers in MODES:
            common.log(f"{workload}: evaluating {len(params)} candidates {label}")
            run = evaluation_run(workload_recipe, warmup, params, workers)
            run["mode"] = label
            run["workload"] = workload
            runs.append(run)
            common.log(f"  {run['trials_per_second']:.3f} trials/s")
    base = {r["workload"]: r["trials_per_second"] for r in runs if r["workers"] is None}
    one = {r["workload"]: r["trials_per_second"] for r in runs if r["workers"] == 1}
    same_errors = all(r["errors"] == runs[0]["errors"] for r in runs)

    tmp = args.out / "tmp" / f"{NAME}-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        common.log(f"storage: {args.storage_trials} trials in memory, then in SQLite")
        memory_s = storage_run(InMemoryStorage(), args.storage_trials)
        sqlite = SQLiteStorage(tmp / "study.db")
        try:
            sqlite_s = storage_run(sqlite, args.storage_trials)
        finally:
            sqlite.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    payload = {
        **info,
        "benchmark": NAME,
        "quick": args.quick,
        "config": {
            "dataset": cfg.data.name,
            "profile": cfg.profile,
            "calib_samples": cfg.evaluation.calib_samples,
            "exporter": cfg.evaluation.exporter,
            "supernet": spec.to_dict(),
            "candidates": len(params),
            "arch_seed": args.arch_seed,
        },
        "recipe_bytes": len(pickle.dumps(recipe)),
        "machine_ceiling": ceiling,
        "evaluation": runs,
        "same_errors_in_every_mode": same_errors,
        "storage": {
            "trials": args.storage_trials,
            "in_memory_ms_per_trial": round(1e3 * memory_s, 4),
            "sqlite_ms_per_trial": round(1e3 * sqlite_s, 4),
            "sqlite_overhead_ms_per_trial": round(1e3 * (sqlite_s - memory_s), 4),
        },
    }
    path = common.write_json(args.out / f"{NAME}{'-quick' if args.quick else ''}.json", payload)

    print(f"## Evaluation throughput{' (quick: the figures mean nothing)' if args.quick else ''}\n")
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {common.machine_line(info)}")
    print(
        f"- {len(params)} distinct candidates of the demo supernet ({cfg.data.name}, profile {cfg.profile}, "
        f"{cfg.evaluation.calib_samples} calibration images); evaluator recipe "
        f"{payload['recipe_bytes'] / 1e6:.1f} MB, sent once per worker\n"
    )
    print(
        common.table(
            [
                "workload",
                "where",
                "set-up s",
                "warm-up s",
                "trials s",
                "trials/s",
                "speed-up",
                "evaluators built per worker",
            ],
            [
                [
                    r["workload"],
                    r["mode"],
                    f"{r['setup_seconds']:.1f}",
                    f"{r['warmup_seconds']:.1f} ({r['warmup_trials']} trials)",
                    f"{r['trials_seconds']:.1f}",
                    f"{r['trials_per_second']:.3f}",
                    f"{r['trials_per_second'] / base[r['workload']]:.2f}x"
                    + (
                        f" ({r['trials_per_second'] / one[r['workload']]:.2f}x 1 worker)"
                        if r["workers"] == 2
                        else ""
                    ),
                    ", ".join(map(str, r["builds_per_worker"])) or "-",
                ]
                for r in runs
            ],
        )
    )
    print(f"\nvalidation errors identical in every mode: {'yes' if same_errors else 'NO'}")
    print(
        f"machine ceiling: two single-threaded processes at once do {ceiling['speedup']:.2f}x the work of one "
        f"alone ({ceiling['one_process_s']:.2f} s alone; {ceiling['two_processes_wall_s']:.2f} s for both)\n"
    )
    s = payload["storage"]
    print(f"## Study storage overhead ({args.storage_trials} trials, trivial objective)\n")
    print(
        common.table(
            ["storage", "ms per trial"],
            [
                ["InMemoryStorage", f"{s['in_memory_ms_per_trial']:.3f}"],
                ["SQLiteStorage", f"{s['sqlite_ms_per_trial']:.3f}"],
                ["SQLite overhead", f"{s['sqlite_overhead_ms_per_trial']:.3f}"],
            ],
        )
    )
    print(f"\nfigures in {path}")


if __name__ == "__main__":
    main()
