"""Does NSGA-II beat random search? Hypervolume of both on the demo's supernet, same budget, several seeds.

Trains (or loads from ``OUT/cache``) the supernet of the demo config once, then runs NSGA-II (the demo's
population) and uniform random search through ``search.Study`` with the demo's budget of trials, for
several seeds each. Every study scores candidates with one shared ``CandidateEvaluator``: an arch seen by
both strategies gets the very same error and the very same latency measurement (one latency cache), so
the comparison is not blurred by timing noise. The two studies of a seed advance in lockstep, one trial
each in turn, so that both meet the same machine load while latencies are measured.

Hypervolume uses one reference point for every study, fixed before any search, as ``hwnas search`` fixes
it: error 100 % and twice the largest arch's latency (and twice its value for any other objective). It
is reported after 25 %, 50 % and 100 % of the budget (median and interquartile range over seeds), with
the ratio HV(NSGA-II) / HV(random). Because that reference is far from the front, hypervolumes differ
little in relative terms; the gap to the best front found by any study (the union of all evaluated
points) shows the difference more plainly.

    .venv/bin/python benchmarks/hv_vs_random.py [--quick] [--out benchmarks/out]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# As the hwnas command line does, before torch loads: OpenMP threads that spin while they wait slow
# training down several times over as soon as another process shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from nas import CandidateEvaluator, arch_key
from nas.run._config import OBJECTIVE_UNITS
from profilers import MeasurementCache
from search import NSGA2Strategy, Objective, RandomStrategy, Study, Trial, hypervolume, non_dominated_mask

NAME = "hv_vs_random"
FRACTIONS = (0.25, 0.5, 1.0)
ERROR_REFERENCE = 100.0


def front_hv(trials: list[Trial], objectives: tuple[Objective, ...], reference: list[float]) -> float:
    """Hypervolume of the COMPLETE trials among ``trials`` (all objectives minimised)."""
    F = np.array([t.minimized(objectives) for t in trials if t.values is not None])
    if len(F) == 0:
        return 0.0
    return hypervolume(F[non_dominated_mask(F)], reference)


def quartiles(values: list[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1)}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="search seeds per strategy (default 3, quick 2)")
    p.add_argument(
        "--dataset",
        default="digits",
        help="built-in dataset: digits (the demo's) or digits-hard (where subnets differ in accuracy)",
    )
    args = p.parse_args()
    common.apply_threads(args.threads)
    info = common.header()
    started = time.perf_counter()

    overrides: dict[str, Any] = {"data.name": args.dataset}
    if args.quick:
        overrides |= {"supernet.epochs": 2, "search.trials": 16, "search.population": 8}
    cfg = common.demo_config(overrides)
    n_seeds = args.seeds or (2 if args.quick else 3)
    seeds = [cfg.seed + i for i in range(n_seeds)]
    data, supernet, sn_record = common.trained_supernet(cfg, args.out)
    spec = supernet.spec

    work = args.out / "tmp" / NAME
    evaluator = CandidateEvaluator.from_config(
        cfg,
        supernet=supernet,
        data=data,
        measuring=False,
        cache=MeasurementCache(),  # in memory: every latency of this run is measured in this run
        work_dir=work,
    )
    largest = evaluator.score(spec.largest_arch())
    objectives = tuple(
        Objective(n, "minimize", OBJECTIVE_UNITS[n], ERROR_REFERENCE if n == "error" else 2.0 * largest[n])
        for n in cfg.search.objectives
    )
    reference = [float(o.reference) for o in objectives]  # type: ignore[arg-type]
    common.log(f"reference point {dict(zip(cfg.search.objectives, reference))}")

    budget = cfg.search.trials
    checkpoints = {f: max(1, round(f * budget)) for f in FRACTIONS}
    runs: list[dict[str, Any]] = []
    studies: list[Study] = []
    t_search = time.perf_counter()
    for seed in seeds:
        pair = {
            "nsga2": Study(
                space=spec.search_space(),
                objectives=objectives,
                strategy=NSGA2Strategy(population_size=cfg.search.population, seed=seed),
            ),
            "random": Study(
                space=spec.search_space(), objectives=objectives, strategy=RandomStrategy(seed=seed)
            ),
        }
        # The two studies advance in lockstep, one trial each in turn, so that both meet the same machine
        # load: latency measured while other work runs is slower, and a load that changes over time would
        # otherwise favour whichever strategy ran while the machine was quieter.
        for _ in range(budget):
            for study in pair.values():
                study.optimize(evaluator, n_trials=1)
        for name, study in pair.items():
            trials = study.trials
            hv = {str(f): front_hv(trials[:k], objectives, reference) for f, k in checkpoints.items()}
            distinct = len({arch_key(spec.arch_from_params(t.params)) for t in trials})
            failed = sum(t.values is None for t in trials)
            runs.append(
                {
                    "strategy": name,
                    "seed": seed,
                    "hv": hv,
                    "front_size": len(study.best_trials),
                    "distinct_archs": distinct,
                    "failed": failed,
                }
            )
            studies.append(study)
            common.log(
                f"{name} seed {seed}: HV {hv['1.0']:.4f}  front {len(study.best_trials)}  failed {failed}"
            )
    search_seconds = time.perf_counter() - t_search
    shutil.rmtree(work, ignore_errors=True)

    # The best front known: every point any study evaluated.
    union = [t for s in studies for t in s.trials]
    n_distinct = len({arch_key(spec.arch_from_params(t.params)) for t in union})
    best_hv = front_hv(union, objectives, reference)
    summary: dict[str, Any] = {}
    for name in ("nsga2", "random"):
        mine = [r for r in runs if r["strategy"] == name]
        summary[name] = {
            str(f): {
                "hv": quartiles([r["hv"][str(f)] for r in mine]),
                "gap_to_best": quartiles([best_hv - r["hv"][str(f)] for r in mine]),
            }
            for f in FRACTIONS
        }
    ratio = {
        str(f): summary["nsga2"][str(f)]["hv"]["median"] / summary["random"][str(f)]["hv"]["median"]
        for f in FRACTIONS
    }
    per_seed_ratio = {
        str(f): [
            next(r for r in runs if r["strategy"] == "nsga2" and r["seed"] == s)["hv"][str(f)]
            / next(r for r in runs if r["strategy"] == "random" and r["seed"] == s)["hv"][str(f)]
            for s in seeds
        ]
        for f in FRACTIONS
    }
    wins = sum(
        next(r for r in runs if r["strategy"] == "nsga2" and r["seed"] == s)["hv"]["1.0"]
        > next(r for r in runs if r["strategy"] == "random" and r["seed"] == s)["hv"]["1.0"]
        for s in seeds
    )
    payload = {
        **info,
        "benchmark": NAME,
        "quick": args.quick,
        "config": cfg.model_dump(mode="json"),
        "supernet": sn_record,
        "budget": budget,
        "population": cfg.search.population,
        "seeds": seeds,
        "objectives": [o.to_dict() for o in objectives],
        "reference": dict(zip(cfg.search.objectives, reference)),
        "largest_arch_metrics": largest,
        "best_known_hv": best_hv,
        "distinct_archs_scored": n_distinct,
        "summary": summary,
        "ratio_of_medians": ratio,
        "per_seed_ratio": per_seed_ratio,
        "nsga2_wins": wins,
        "runs": runs,
        "seconds": {
            "search": round(search_seconds, 1),
            "evaluator": {k: round(v, 1) for k, v in evaluator.seconds.items()},
            "total": round(time.perf_counter() - started, 1),
        },
    }
    variant = (f"-{args.dataset}" if args.dataset != "digits" else "") + ("-quick" if args.quick else "")
    path = common.write_json(args.out / f"{NAME}{variant}.json", payload)

    def cell(q: dict[str, float], scale: float = 1.0) -> str:
        return f"{q['median'] * scale:.4g} [{q['q1'] * scale:.4g}, {q['q3'] * scale:.4g}]"

    rows = []
    for f in FRACTIONS:
        k = checkpoints[f]
        n, r = summary["nsga2"][str(f)], summary["random"][str(f)]
        rows.append(
            [
                f"{int(f * 100)}% ({k})",
                cell(n["hv"]),
                cell(r["hv"]),
                f"{ratio[str(f)]:.4f}",
                cell(n["gap_to_best"]),
                cell(r["gap_to_best"]),
            ]
        )
    ref_text = ", ".join(f"{o.name} {o.reference:.4g} {o.unit}" for o in objectives)
    print(f"## Hypervolume: NSGA-II vs random search{' (quick)' if args.quick else ''}\n")
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {common.machine_line(info)}")
    print(
        f"- supernet: demo config on {cfg.data.name}, {cfg.supernet.epochs} epochs ({'cached' if sn_record['cached'] else 'trained now'}); "
        f"budget {budget} trials, NSGA-II population {cfg.search.population}, seeds {seeds}"
    )
    print(f"- reference point: {ref_text}; best-known HV (union of all studies) {best_hv:.4g}\n")
    print(
        common.table(
            [
                "trials",
                "HV NSGA-II, median [Q1, Q3]",
                "HV random, median [Q1, Q3]",
                "ratio of medians",
                "gap to best, NSGA-II",
                "gap to best, random",
            ],
            rows,
        )
    )
    print(
        f"\nNSGA-II beats random on full-budget HV in {wins} of {len(seeds)} seeds; per-seed ratios "
        + ", ".join(f"{v:.4f}" for v in per_seed_ratio["1.0"])
    )
    print(
        f"\nrun time: {payload['seconds']['total']:.0f}s (searches {search_seconds:.0f}s, "
        f"{n_distinct} distinct archs scored); figures in {path}"
    )


if __name__ == "__main__":
    main()
