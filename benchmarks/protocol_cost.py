"""What does the search-space protocol cost? A candidate's scoring time on the MobileNet space, before and after.

``before`` is commit d8d5e7e, the last one before ``nas/`` was laid out by concern and the MobileNet space
moved onto the space protocol (``nas.spaces``); ``after`` is this working tree. The script checks the old
commit out into a temporary git worktree and, in alternating rounds (before, after, before, ...), runs one
child process per round with ``PYTHONPATH`` at that tree's root, so that ``import nas`` (and ``profilers``,
``search``, ``hardware_profiles``) resolves to that version; each child prints the ``nas.__file__`` it used.

Each child builds the demo's digits space (``SupernetSpec.for_input(1, 8, 10)``), an untrained supernet of
seed 0 (scoring time does not depend on the weights), and the CandidateEvaluator of a default search the
way its own version builds it (before: the constructor call of ``Experiment.run``; after:
``build_evaluator``, which goes through ``CandidateEvaluator.from_config``), with a fresh in-memory
measurement cache, so nothing is cached between candidates or rounds. It scores one warm-up arch, then
times ``evaluator.score(arch)`` (BN recalibration and validation, ONNX export, ONNX Runtime latency with the
profile's quiet gate, size) once for each of ``--archs`` archs drawn by ``random_arch`` from a generator of
seed ``--seed`` (the same archs in both versions: the parent checks their keys). Torch runs one thread.

Prints, per round, the median seconds per candidate and the seconds per candidate in accuracy, export and
latency (``evaluator.seconds``), then the ratio after/before of the medians and its spread over the rounds.

    nice -n 10 .venv/bin/python benchmarks/protocol_cost.py [--rounds 3] [--archs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BEFORE = "d8d5e7e"
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"


def child(version: str, n_archs: int, seed: int) -> None:
    """One round in this process: score ``n_archs`` seeded random archs with a fresh evaluator, print JSON."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import nas
    from hardware_profiles import load_profile
    from profilers import MeasurementCache

    cfg = nas.load_config()
    data = nas.load_digits(seed=cfg.seed)
    spec = nas.SupernetSpec.for_input(1, 8, 10)
    supernet = nas.Supernet(spec, seed=0).eval()
    work = tempfile.mkdtemp(prefix="hwnas-protocol-cost-")

    def evaluator() -> Any:
        if version == "before":  # as nas/_experiment.py of d8d5e7e builds it (Experiment.run)
            from nas._experiment import _wants, load_lut

            profile = load_profile(cfg.profile)
            return nas.CandidateEvaluator(
                supernet=[supernet],
                data=data,
                profile=profile,
                calib_samples=cfg.evaluation.calib_samples,
                exporter=cfg.evaluation.exporter,
                cache=MeasurementCache(),
                work_dir=work,
                lut=load_lut(profile),
                latency_mode=cfg.evaluation.latency,
                energy=_wants(cfg, "energy_mj"),
                finetune_steps=cfg.evaluation.finetune_steps,
                finetune_lr=cfg.evaluation.finetune_lr,
                export_finetune_steps=cfg.evaluation.export_finetune_steps,
            )
        from nas.run._multi import build_evaluator  # as nas/run/_experiment.py builds it

        return build_evaluator(
            cfg,
            supernet=[supernet],
            data=data,
            profile=load_profile(cfg.profiles()[0]),
            cache=MeasurementCache(),
            work_dir=work,
            device=cfg.supernet.device,
        )

    rng = np.random.default_rng(seed)
    archs = [spec.random_arch(rng) for _ in range(n_archs)]
    evaluator().score(spec.largest_arch())  # warm-up: lazy imports, first ONNX Runtime session
    ev = evaluator()
    seconds = []
    for arch in archs:
        t0 = time.perf_counter()
        ev.score(arch)
        seconds.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "nas_file": nas.__file__,
                "arch_keys": [nas.arch_key(a) for a in archs],
                "seconds": seconds,
                "phase_seconds": dict(ev.seconds),
            }
        )
    )


def run_round(version: str, tree: Path, n_archs: int, seed: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", version, "--archs", str(n_archs)]
    cmd += ["--seed", str(seed)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise SystemExit(f"{version} round failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = (tree / "nas" / "__init__.py").resolve()
    if Path(result["nas_file"]).resolve() != expected:
        raise SystemExit(f"{version}: imported nas from {result['nas_file']}, expected {expected}")
    result["version"], result["wall_s"] = version, time.perf_counter() - t0
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds of each version, alternating (default 3)")
    p.add_argument("--archs", type=int, default=20, help="archs scored per round (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random archs (default 0)")
    p.add_argument(
        "--worktree", type=Path, default=Path("/tmp/hwnas-before"), help="where to check out the old commit"
    )
    p.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.archs, args.seed)
        return

    load = os.getloadavg()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "nas", "profilers", "search", "hardware_profiles"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"# Scoring time per candidate, before ({BEFORE}) and after ({head.stdout.strip()}"
          f"{', with uncommitted changes' if dirty else ''})")  # fmt: skip
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, nice {os.nice(0)}, {args.archs} archs (seed {args.seed}), "
          f"{args.rounds} rounds of each version\n")  # fmt: skip
    tree = args.worktree
    if tree.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), BEFORE], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    results: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for version, root in (("before", tree), ("after", ROOT)):
                res = run_round(version, root, args.archs, args.seed)
                res["round"] = r + 1
                results.append(res)
                print(f"[{time.strftime('%H:%M:%S')}] round {r + 1} {version}: median "
                      f"{statistics.median(res['seconds']):.4f} s, wall {res['wall_s']:.1f} s, load "
                      f"{os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    keys = {json.dumps(res["arch_keys"]) for res in results}
    if len(keys) != 1:
        raise SystemExit("the two versions drew different archs from the same seed")

    print("| round | version | median s per candidate | mean s | accuracy s | export s | latency s |")
    print("|---|---|---|---|---|---|---|")
    for res in results:
        n, ph = len(res["seconds"]), res["phase_seconds"]
        print(f"| {res['round']} | {res['version']} | {statistics.median(res['seconds']):.4f} | "
              f"{statistics.fmean(res['seconds']):.4f} | {ph['accuracy'] / n:.4f} | {ph['export'] / n:.4f} | "
              f"{ph['latency'] / n:.4f} |")  # fmt: skip
    med = {
        v: [statistics.median(r["seconds"]) for r in results if r["version"] == v]
        for v in ("before", "after")
    }
    ratios = [a / b for a, b in zip(med["after"], med["before"], strict=True)]
    overall = statistics.median(med["after"]) / statistics.median(med["before"])
    per_arch = [
        statistics.median([r["seconds"][i] for r in results if r["version"] == "after"])
        / statistics.median([r["seconds"][i] for r in results if r["version"] == "before"])
        for i in range(args.archs)
    ]
    print(f"\nMedian s per candidate over the rounds' medians: before {statistics.median(med['before']):.4f} "
          f"(rounds {min(med['before']):.4f}-{max(med['before']):.4f}), after {statistics.median(med['after']):.4f} "
          f"(rounds {min(med['after']):.4f}-{max(med['after']):.4f})")  # fmt: skip
    print(
        f"Ratio after/before of the medians: **{overall:.3f}**; per round (after_i / before_i): "
        + ", ".join(f"{x:.3f}" for x in ratios)
        + f" (range {min(ratios):.3f}-{max(ratios):.3f})"
    )
    print(f"Per arch (its median after / its median before): median {statistics.median(per_arch):.3f}, "
          f"range {min(per_arch):.3f}-{max(per_arch):.3f}")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "protocol_cost.json").write_text(json.dumps({"load_avg_start": load, "rounds": results}, indent=1))


if __name__ == "__main__":
    main()
