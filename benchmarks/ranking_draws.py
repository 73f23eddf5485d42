"""Compares supernet training draws of the ranking-fidelity benchmark: which part of the shortfall is noise.

Reads the JSON files that ``ranking_fidelity.py --eval-renders N`` wrote for the same subnets and stand-alone
nets (several ``--supernet-seed`` draws, or variants), and prints, on the held-out renders:

- per file: Kendall tau against the stand-alone means, how strongly the inherited error follows width
  and first-stage depth (least-squares slopes beside those of the stand-alone errors), and its scale and
  scatter against the stand-alone means: the slope of inherited on stand-alone error (below 1: the
  supernet compresses the differences) and the scatter about that line in stand-alone points, to read
  beside the stand-alone nets' own seed-to-seed scatter;
- proxies that need no training at all (FLOPs, parameters), as a floor;
- per pair of files: how well the two supernets' inherited errors agree with each other, and the tau of
  their averaged errors against the stand-alone means (what an ensemble of the two would reach);
- with ``--ensembles K [K ...]``: every distinct supernet the files hold (a file written with
  ``--supernet-members`` holds each member's errors) split into ensembles of K, as ``supernet.members: K``
  ranks: the tau of every K-combination's mean error (mean, range, share at 0.8 or more), and of the
  disjoint ensembles taken in seed order.

Usage::

    .venv/bin/python benchmarks/ranking_draws.py benchmarks/out/ranking_fidelity-digits-hard-*r16.json

No training or scoring happens here; it takes a second.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    held = data.get("held_out_renders")
    if not held:
        raise SystemExit(f"{path} has no held-out scores: run ranking_fidelity.py with --eval-renders")
    return data


def slopes(errors: np.ndarray, subnets: list[dict[str, Any]]) -> tuple[float, float]:
    """Least-squares slopes of ``errors`` on width and on the depth of each stage: (width, first stage)."""
    x = np.array([[1.0, s["arch"]["width"], *s["arch"]["depth"]] for s in subnets])
    coef = np.linalg.lstsq(x, errors, rcond=None)[0]
    return float(coef[1]), float(coef[2])


def scale_and_scatter(errors: np.ndarray, alone: np.ndarray) -> tuple[float, float]:
    """Slope of ``errors`` on the stand-alone means, and the std of the residuals divided by that slope
    (the scatter in stand-alone percentage points)."""
    slope, intercept = np.polyfit(alone, errors, 1)
    return float(slope), float((errors - (slope * alone + intercept)).std() / slope)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, help="ranking_fidelity JSON files (two or more)")
    p.add_argument(
        "--ensembles",
        type=int,
        nargs="+",
        default=[],
        metavar="K",
        help="also rank on the mean of every K distinct supernets in the files (e.g. 1 2 3)",
    )
    args = p.parse_args()
    if len(args.files) < 2:
        p.error("give at least two files")
    runs = {f.name.removeprefix("ranking_fidelity-").removesuffix(".json"): load(f) for f in args.files}
    first = next(iter(runs.values()))
    archs = [s["arch"] for s in first["subnets"]]
    alone_per_seed = np.array(first["held_out_renders"]["standalone_errors"])
    for name, data in runs.items():
        if [s["arch"] for s in data["subnets"]] != archs or not np.allclose(
            np.array(data["held_out_renders"]["standalone_errors"]), alone_per_seed
        ):
            raise SystemExit(f"{name} scored other subnets or other stand-alone nets than the first file")
    alone = alone_per_seed.mean(axis=1)
    inherited = {n: np.array(d["held_out_renders"]["inherited_errors"]) for n, d in runs.items()}

    w, d1 = slopes(alone, first["subnets"])
    seed_scatter = alone_per_seed.std(axis=1, ddof=1).mean()
    print(
        "| run | tau vs stand-alone | slope on width (pp per 1.0) | slope on stage-1 depth (pp per block) "
        "| slope on stand-alone error | scatter (stand-alone pp) |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| stand-alone means | | {w:.2f} | {d1:.2f} | 1 | {seed_scatter:.2f} (one seed) |")
    for name, errors in inherited.items():
        w, d1 = slopes(errors, first["subnets"])
        scale, scatter = scale_and_scatter(errors, alone)
        print(
            f"| {name} | {kendalltau(errors, alone).statistic:.3f} | {w:.2f} | {d1:.2f} | {scale:.2f} "
            f"| {scatter:.2f} |"
        )
    for proxy in ("flops", "params"):
        size = np.array([float(s[proxy]) for s in first["subnets"]])
        print(f"\n{proxy} alone (more is better): tau {kendalltau(-size, alone).statistic:.3f}", end="")
    print()

    print("\n| run A | run B | tau A vs B (inherited) | tau of (A + B) / 2 vs stand-alone |")
    print("|---|---|---|---|")
    pair_agree, pair_mean = [], []
    for a, b in itertools.combinations(inherited, 2):
        agree = kendalltau(inherited[a], inherited[b]).statistic
        mean = kendalltau((inherited[a] + inherited[b]) / 2, alone).statistic
        pair_agree.append(agree)
        pair_mean.append(mean)
        print(f"| {a} | {b} | {agree:.2f} | {mean:.3f} |")
    everything = np.mean(list(inherited.values()), axis=0)
    print(
        f"\nover {len(pair_agree)} pairs: inherited agreement {min(pair_agree):.2f}-{max(pair_agree):.2f}"
        f" (mean {np.mean(pair_agree):.2f}); tau of the pair average {min(pair_mean):.3f}-{max(pair_mean):.3f}"
        f" (mean {np.mean(pair_mean):.3f}); all {len(inherited)} averaged: "
        f"{kendalltau(everything, alone).statistic:.3f}"
    )
    if args.ensembles:
        ensembles(runs, alone, args.ensembles)


def single_supernets(runs: dict[str, dict[str, Any]]) -> dict[int, np.ndarray]:
    """Held-out inherited errors of every distinct supernet in ``runs``, by supernet seed (a file written
    with ``--supernet-members`` gives one entry per member)."""
    singles: dict[int, np.ndarray] = {}
    for data in runs.values():
        held = data["held_out_renders"]
        records = data.get("supernet_members") or [data["supernet"]]
        errors = held.get("member_inherited_errors") or [held["inherited_errors"]]
        for record, e in zip(records, errors, strict=True):
            seed = record["settings"].get("supernet_seed", record["settings"]["seed"])
            singles.setdefault(seed, np.array(e))
    return singles


def ensembles(runs: dict[str, dict[str, Any]], alone: np.ndarray, sizes: list[int]) -> None:
    """Tau of the mean error of K supernets against the stand-alone means, for each K in ``sizes``."""
    singles = single_supernets(runs)
    seeds = sorted(singles)
    print(f"\n{len(seeds)} distinct supernets (seeds {', '.join(map(str, seeds))})\n")
    print(
        "| K | K-combinations | tau mean | tau range | share >= 0.8 | disjoint ensembles in seed order: tau |"
    )
    print("|---|---|---|---|---|---|")
    for k in sizes:
        if not 1 <= k <= len(seeds):
            raise SystemExit(f"--ensembles {k}: the files hold {len(seeds)} supernets")
        taus = np.array(
            [
                kendalltau(np.mean([singles[s] for s in combo], axis=0), alone).statistic
                for combo in itertools.combinations(seeds, k)
            ]
        )
        disjoint = [
            kendalltau(np.mean([singles[s] for s in seeds[i : i + k]], axis=0), alone).statistic
            for i in range(0, len(seeds) - k + 1, k)
        ]
        print(
            f"| {k} | {len(taus)} | {taus.mean():.3f} | {taus.min():.3f}-{taus.max():.3f} "
            f"| {np.mean(taus >= 0.8 - 1e-9):.0%} | {', '.join(f'{t:.3f}' for t in disjoint)} "
            f"(mean {np.mean(disjoint):.3f}) |"
        )


if __name__ == "__main__":
    main()
