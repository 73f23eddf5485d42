"""Summary of a GPU check run (see gpu_check.sh): every figure with how it was obtained.

.venv/bin/python benchmarks/gpu_check.py RUN_DIR [--pytest FILE --pytest-status N] [--throughput MD...]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--pytest", type=Path)
    p.add_argument("--pytest-status", type=int)
    p.add_argument("--throughput", type=Path, nargs="*", default=[])
    args = p.parse_args()
    run = args.run
    log = (run / "train.log").read_text().splitlines() if (run / "train.log").is_file() else []
    pareto = json.loads((run / "pareto.json").read_text())
    rows = list(csv.DictReader((run / "trials.csv").open())) if (run / "trials.csv").is_file() else []
    energy_methods = sorted({r.get("energy_method", "") for r in rows} - {""})
    latency_predicted = sorted({r.get("latency_predicted", "") for r in rows} - {""})
    timings = json.loads((run / "timings.json").read_text()) if (run / "timings.json").is_file() else {}

    print(f"## GPU check: {run.name}\n")
    print(
        f"- training: {next((line.split('  ', 1)[-1] for line in log if 'training on' in line), 'not logged')}"
    )
    epochs = [line.split("  ", 1)[-1] for line in log if " done " in line]
    print(f"- epochs: {'; '.join(epochs) or 'none logged'} (wall time and images/s: train.log, measured)")
    print(
        f"- supernet training {timings.get('supernet_training', float('nan')):.1f} s, search "
        f"{timings.get('search', float('nan')):.1f} s, export {timings.get('export', float('nan')):.1f} s "
        "(timings.json, wall clock)"
    )
    print(
        "- latency_ms: ONNX Runtime, CUDAExecutionProvider (profile local-cuda), median of timed runs; "
        f"latency_predicted values in trials: {latency_predicted or ['n/a']}"
    )
    print(
        f"- energy_mj per inference: method(s) {energy_methods or ['not recorded']} "
        "(measured-nvml: NVML energy counter over a sustained loop)"
    )
    print(f"- Pareto front: {len(pareto['models'])} models in {run / 'models'}")
    names = [o["name"] for o in pareto["objectives"]]
    for m in pareto["models"]:
        print("  - id {:>3}  ".format(m["id"]) + "  ".join(f"{n}={m['metrics'][n]:.4g}" for n in names))
    reexported = run / "reexported.onnx"
    print(f"- re-export with hwnas export: {'ok' if reexported.is_file() else 'MISSING'}")
    for md in args.throughput:
        text = md.read_text() if md.is_file() else ""
        found = re.search(r"costs ([0-9.]+)x the plain step", text)
        size = re.search(r"of 3x(\d+)x\d+ images", text)
        print(
            f"- training throughput (g) at {size.group(1) if size else '?'}px: sandwich step / plain step = "
            f"{found.group(1) + 'x' if found else 'not measured'} (images/s, wall clock, CUDA synchronised)"
        )
    if args.pytest is not None:
        tail = args.pytest.read_text().strip().splitlines()[-1:] if args.pytest.is_file() else ["no output"]
        print(f"- pytest -m 'gpu or nvml': exit {args.pytest_status}; {tail[0] if tail else ''}")


if __name__ == "__main__":
    main()
