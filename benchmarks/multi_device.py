"""(j) Several devices in one search against one search per device, on a tabular problem and on the supernet flow.

Part 1, tabular (``--part table``): NAS-Bench-201 with latencies measured on real devices
(``../shared/data/nb201_help.csv``, as in ``benchmarks/nb201.py``). Three devices: an RTX 2080 Ti at batch 1,
a Xeon Gold 6226 and a Pixel 2. With a total budget of B evaluations:

- *joint*: one search of B evaluations on four objectives (error and the three latencies), as
  ``hwnas search --profile a,b,c`` searches; each device's front is then error against that device's latency
  among all B evaluations (accuracy is evaluated once per arch and shared);
- *separate*: three searches of B/3 evaluations each, one per device, on error and that device's latency.

Figure: hypervolume regret ``1 - HV / HV(true front)`` of each device's front (reference: nadir of that
device's true front + 10 % of its range, as in (d)), median [Q1, Q3] over seeds, for each strategy.

Part 2, supernet flow (``--part supernet``): wall time of one ``hwnas search`` on three CPU profiles
(profile files that differ in threads and batch size) against three ``hwnas search`` runs, one per profile,
each with the same trials: digits, 1 supernet epoch, few trials. Phase times from each run's ``timings.json``.

    nice -n 10 .venv/bin/python benchmarks/multi_device.py [--part table|supernet|both] [--seeds 10]
        [--budgets 150 300 600] [--strategies nsga2 random] [--trials 12] [--out benchmarks/out]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driving as sb
import nb201

from search import hypervolume, non_dominated_mask

NAME = "multi_device"
REPO = Path(__file__).resolve().parent.parent
DEVICES = ("2080ti_1", "gold_6226", "pixel2")


def device_regret(F: np.ndarray, column: int, problem: sb.Problem) -> float:
    """Regret of the front of error (column 0) against one latency column, on that device's problem."""
    G = F[:, [0, column]]
    if len(G) == 0:
        return 1.0
    return 1.0 - hypervolume(G[non_dominated_mask(G)], problem.reference) / problem.true_hv


def table_part(args: argparse.Namespace) -> dict[str, Any]:
    ops, error, latency = nb201.load_table(args.data)
    singles = {d: nb201.make_problem(d, ops, error, latency) for d in DEVICES}
    joint = nb201.make_problem("+".join(DEVICES), ops, error, latency)
    rows: list[dict[str, Any]] = []
    for strategy in args.strategies:
        for budget in args.budgets:
            for seed in range(args.seeds):
                t = sb.drive(joint, strategy, seed, budget)
                F = np.array(t.F, dtype=float).reshape(-1, 1 + len(DEVICES))
                for i, d in enumerate(DEVICES):
                    regret = device_regret(F, 1 + i, singles[d])
                    rows.append(_row(strategy, budget, seed, d, "joint", regret, t.status))
                for d in DEVICES:
                    t = sb.drive(singles[d], strategy, seed, budget // len(DEVICES))
                    F1 = np.array(t.F, dtype=float).reshape(-1, 2)
                    rows.append(
                        _row(
                            strategy, budget, seed, d, "separate", device_regret(F1, 1, singles[d]), t.status
                        )
                    )
                sb.log(f"{strategy} B={budget} seed {seed} done")
    return {"rows": rows, "devices": {d: nb201.DEVICES[d] for d in DEVICES}, "attribution": nb201.ATTRIBUTION}


def _row(
    strategy: str, budget: int, seed: int, device: str, mode: str, regret: float, status: str
) -> dict[str, Any]:
    return {"strategy": strategy, "budget": budget, "seed": seed, "device": device, "mode": mode, "regret": regret,
            "status": status}  # fmt: skip


def table_report(part: Mapping[str, Any]) -> str:
    rows = part["rows"]
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    out = []
    header = ["strategy", "budget B", *(f"{d}: joint / separate" for d in DEVICES), "joint better (of 3)"]
    body = []
    for s in strategies:
        for b in budgets:
            cells, better = [], 0
            for d in DEVICES:
                q = {
                    m: sb.quartiles([r["regret"] for r in rows if (r["strategy"], r["budget"], r["device"], r["mode"]) == (s, b, d, m)])
                    for m in ("joint", "separate")
                }  # fmt: skip
                better += q["joint"]["median"] < q["separate"]["median"]
                cells.append(f"{sb.cell(q['joint'])} / {sb.cell(q['separate'])}")
            body.append([s, b, *cells, better])
    out.append(sb.table(header, body))
    return "\n".join(out)


def supernet_part(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="hwnas-multi-"))
    profiles = []
    for name, threads, batch in (("cpu-t1-b1", 1, 1), ("cpu-t2-b1", 2, 1), ("cpu-t1-b4", 1, 4)):
        path = folder / f"{name}.yaml"
        path.write_text(
            f"name: {name}\ndescription: this CPU, {threads} thread(s), batch {batch}\ndevice: cpu\n"
            f"intra_op_threads: {threads}\nbatch_size: {batch}\n"
        )
        profiles.append(str(path))
    common = ["--out", str(folder / "runs"), "--epochs", "1", "--trials", str(args.trials), "--population", "4",
              "--seed", "0", "--threads", "1"]  # fmt: skip
    runs: dict[str, dict[str, Any]] = {}

    def search(name: str, profile: str) -> None:
        cmd = [str(REPO / ".venv" / "bin" / "hwnas"), "search", "--name", name, "--profile", profile, *common]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        timings = json.loads((folder / "runs" / name / "timings.json").read_text())["seconds"]
        runs[name] = {"wall_s": wall, "phases": timings, "profile": profile}
        sb.log(f"{name}: {wall:.0f} s")

    for r in range(1, args.rounds + 1):  # rounds in turn, so that both see the machine's changing load
        search(f"joint-r{r}", ",".join(profiles))
        for p in profiles:
            search(f"single-{Path(p).stem}-r{r}", p)
    return {"runs": runs, "trials": args.trials, "rounds": args.rounds, "folder": str(folder)}


def supernet_report(part: Mapping[str, Any]) -> str:
    runs = part["runs"]
    keys = (
        "data",
        "supernet_training",
        "search",
        "search.accuracy",
        "search.export",
        "search.latency",
        "export",
    )
    body = []
    ratios = []
    for r in range(1, int(part.get("rounds", 1)) + 1):
        mine = {n: v for n, v in runs.items() if n.endswith(f"-r{r}")}
        for name, v in mine.items():
            body.append([name, f"{v['wall_s']:.0f}", *(f"{v['phases'].get(k, 0.0):.1f}" for k in keys)])
        singles = [v for n, v in mine.items() if n.startswith("single-")]
        total = {"wall_s": sum(v["wall_s"] for v in singles)}
        total |= {k: sum(v["phases"].get(k, 0.0) for v in singles) for k in keys}
        body.append(
            [
                f"round {r}: 3 single searches, summed",
                f"{total['wall_s']:.0f}",
                *(f"{total[k]:.1f}" for k in keys),
            ]
        )
        joint = mine[f"joint-r{r}"]
        ratios.append((joint["wall_s"] / total["wall_s"], joint["phases"]["search"] / total["search"]))
    text = sb.table(["run", "wall (s)", *(f"{k} (s)" for k in keys)], body)
    shown = "; ".join(f"round {i}: wall {w:.2f}, search phase {s:.2f}" for i, (w, s) in enumerate(ratios, 1))
    return text + f"\n\none 3-profile search / three single-profile searches: {shown}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("table", "supernet", "both"), default="both")
    p.add_argument("--data", type=Path, default=nb201.DEFAULT_DATA)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budgets", type=int, nargs="+", default=[150, 300, 600])
    p.add_argument("--strategies", nargs="+", default=["nsga2", "random"])
    p.add_argument("--trials", type=int, default=12, help="trials of each supernet-flow search")
    p.add_argument(
        "--rounds", type=int, default=2, help="rounds of the supernet flow (joint, then the singles)"
    )
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = p.parse_args()
    payload: dict[str, Any] = {"header": sb.header(), "args": {k: str(v) for k, v in vars(args).items()}}
    text = []
    if args.part in ("table", "both"):
        payload["table"] = table_part(args)
        text.append(table_report(payload["table"]))
    if args.part in ("supernet", "both"):
        payload["supernet"] = supernet_part(args)
        text.append(supernet_report(payload["supernet"]))
    path = sb.write_json(args.out / f"{NAME}-{args.part}.json", payload)
    print(sb.machine_line(payload["header"]))
    print("\n\n".join(text))
    print(f"raw figures: {path}")


if __name__ == "__main__":
    main()
