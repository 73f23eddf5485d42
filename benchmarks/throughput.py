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

``--training`` runs only benchmark (g), training throughput: images/s of one supernet sandwich step (the
largest, the smallest and two random archs, in-place distillation, as ``train_supernet`` runs it) against a
plain PyTorch loop training the largest subnet alone as a static network (forward, cross-entropy, backward,
SGD step), same device, same batch of ``--batch-size`` random ``3 x S x S`` images (``--image-size``, 32 by
default) for the MobileNet space sized for that input and 10 classes, in one run. After warm-up steps the two
alternate in ``--rounds`` rounds of ``--steps`` steps each, so both see the same machine load; the ratio of
their images/s is the figure (target <= 4.6: four forward/backward passes plus at most 15 % for slicing).

    .venv/bin/python benchmarks/throughput.py [--quick] [--out benchmarks/out] [--threads N]
        [--candidates N] [--arch-seed S] [--storage-trials N]
    .venv/bin/python benchmarks/throughput.py --training [--device auto] [--precision auto]
        [--image-size 32] [--batch-size 128] [--rounds 3] [--steps 3]
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


def training_throughput(args: Any, info: dict[str, Any]) -> None:
    """Benchmark (g): a supernet sandwich step against a plain loop training the largest subnet alone."""
    import torch
    import torch.nn.functional as F

    from nas.spaces import space_for_input
    from nas.training import resolve_device, resolve_precision, sandwich_step
    from nas.training._device import autocast, grad_scaler, prepare_model

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    space = space_for_input("mobilenet", 3, args.image_size, 10, {})
    supernet = space.build_supernet(seed=0)
    static = supernet.subnet(space.largest_arch())  # its own copy of the largest arch's weights
    channels_last = prepare_model(supernet, device, precision)
    prepare_model(static, device, precision)
    gen = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.preserve_format
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=gen)
    x = x.to(device, memory_format=fmt)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)
    rng = np.random.default_rng(0)
    largest, smallest = space.largest_arch(), space.smallest_arch()
    super_opt = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    static_opt = torch.optim.SGD(static.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    super_scaler, static_scaler = grad_scaler(device, precision), grad_scaler(device, precision)
    supernet.train()
    static.train()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def sandwich(steps: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            archs = [largest, smallest, space.random_arch(rng), space.random_arch(rng)]
            sandwich_step(supernet, x, y, archs, super_opt, precision=precision, scaler=super_scaler)
        sync()
        return time.perf_counter() - t0

    def plain(steps: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            static_opt.zero_grad(set_to_none=True)
            with autocast(device, precision):
                loss = F.cross_entropy(static(x).float(), y)
            if static_scaler is not None:
                static_scaler.scale(loss).backward()
                static_scaler.step(static_opt)
                static_scaler.update()
            else:
                loss.backward()
                static_opt.step()
        sync()
        return time.perf_counter() - t0

    common.log(
        f"training throughput on {device} ({precision}), {args.image_size}x{args.image_size}, batch {args.batch_size}"
    )
    common.log(f"  space: {space.describe()}")
    sandwich(args.warmup)
    plain(args.warmup)
    times: dict[str, list[float]] = {"sandwich": [], "plain": []}
    for r in range(args.rounds):
        times["sandwich"].append(sandwich(args.steps))
        times["plain"].append(plain(args.steps))
        common.log(
            f"  round {r + 1}: sandwich {times['sandwich'][-1]:.2f} s, plain {times['plain'][-1]:.2f} s"
        )
    images = args.batch_size * args.steps * args.rounds
    rate = {k: images / sum(v) for k, v in times.items()}
    ratio = rate["plain"] / rate["sandwich"]
    payload = {
        **info,
        "benchmark": f"{NAME}-training",
        "quick": args.quick,
        "device": str(device),
        "precision": precision,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "space": space.to_dict(),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "seconds": times,
        "images_per_s": rate,
        "plain_over_sandwich": ratio,
    }
    path = common.write_json(
        args.out / f"{NAME}-training-{device.type}-{args.image_size}{'-quick' if args.quick else ''}.json",
        payload,
    )
    print(f"## Training throughput (g){' (quick: the figures mean nothing)' if args.quick else ''}\n")
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {common.machine_line(info)}")
    print(
        f"- {device} in {precision}, batch {args.batch_size} of 3x{args.image_size}x{args.image_size} images, "
        f"{space.describe()}; {args.rounds} alternating rounds of {args.steps} steps after {args.warmup} warm-up steps\n"
    )
    print(
        common.table(
            ["loop", "images/s", "s per step"],
            [
                [
                    "supernet sandwich step (largest, smallest, 2 random)",
                    f"{rate['sandwich']:.1f}",
                    f"{sum(times['sandwich']) / (args.steps * args.rounds):.3f}",
                ],
                [
                    "plain loop, largest subnet as a static network",
                    f"{rate['plain']:.1f}",
                    f"{sum(times['plain']) / (args.steps * args.rounds):.3f}",
                ],
            ],
        )
    )
    print(
        f"\nthe sandwich step costs {ratio:.2f}x the plain step (target <= 4.6x: {'met' if ratio <= 4.6 else 'NOT met'})"
    )
    print(f"\nfigures in {path}")


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=60, help="distinct archs scored in each mode")
    p.add_argument("--arch-seed", type=int, default=0, help="seed of the random archs")
    p.add_argument("--storage-trials", type=int, default=1000, help="trials of the storage comparison")
    p.add_argument("--training", action="store_true", help="run benchmark (g), training throughput, only")
    p.add_argument("--device", default="auto", help="(g) auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", help="(g) auto, bf16, fp16 or fp32")
    p.add_argument("--image-size", type=int, default=32, help="(g) side of the square input images")
    p.add_argument("--batch-size", type=int, default=128, help="(g) images per step")
    p.add_argument("--rounds", type=int, default=3, help="(g) alternating rounds")
    p.add_argument("--steps", type=int, default=3, help="(g) steps per round and loop")
    p.add_argument("--warmup", type=int, default=2, help="(g) untimed steps of each loop first")
    args = p.parse_args()
    if args.quick:
        args.candidates, args.storage_trials = 4, 100
        args.rounds, args.steps, args.warmup, args.batch_size = 1, 1, 1, 16
    common.apply_threads(args.threads)
    info = common.header()
    if args.training:
        training_throughput(args, info)
        return

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
