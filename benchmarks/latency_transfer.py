"""Latency of an unseen device from N measurements: transfer from other devices' tables against N points alone.

On ``nb201_help.csv`` (every NAS-Bench-201 cell with its latency on 23 devices; see that folder's README),
each device in turn is left out. The transfer predictor (:func:`profilers.fit_latency_transfer`) gets the
full latency tables of the other 22 devices and N measured archs of the left-out one, drawn at random
(``--draws`` draws per N, seeds fixed); it predicts every other arch of the left-out device. Against it:

- ``points alone``: the same fit from the N points and a one-hot encoding of the cell's six operations
  (30 features, ridge regression with the strength chosen by leave-one-out), no other device;
- ``transfer + one-hot``: the tables and the one-hot features together (``--with-features``; slow at N = 50);
- ``ceiling``: the transfer model fitted on all archs of the left-out device, the best any N could reach.

``--exclude-same-hardware`` makes it stricter: the tables of the same GPU at its other batch sizes are left
out too (predicting ``2080ti_256`` from the other GPUs, CPUs and phones only).

For each device and N: Spearman rho between predicted and true latency over the archs not measured, and
the share predicted within +-10 %, each averaged over the draws; also the fit's own leave-one-out error on
the N points against the error it then makes on the rest.

    .venv/bin/python benchmarks/latency_transfer.py [--quick] [--out benchmarks/out]
        [--data ../shared/data/nb201_help.csv] [--n 5 10 20 50] [--draws 10] [--with-features]
        [--exclude-same-hardware]

Needs no torch and no nas: only NumPy, SciPy and ``profilers``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from profilers import fit_latency_transfer
from profilers._transfer import _nnls_with_intercept

NAME = "latency_transfer"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nb201_help.csv"
OPS = 5  # none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3
EDGES = 6


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def header() -> dict[str, Any]:
    argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()[
            :10
        ]
    except OSError:
        lscpu = []
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")), "unknown"
    )
    return {
        "command": shlex.join(argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu_model": model,
            "cores": os.cpu_count(),
            "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "lscpu_head": lscpu,
        },
    }


def load(path: Path) -> tuple[list[str], list[str], np.ndarray, dict[str, list[float]]]:
    """Arch keys, device names, latencies (archs x devices, ms) and one-hot features per arch."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c.startswith("help_") and c.endswith("_latency")]
    devices = [c.removeprefix("help_").removesuffix("_latency") for c in columns]
    keys = [r["arch"] for r in rows]
    latency = np.array([[float(r[c]) for c in columns] for r in rows])
    features = {}
    for r in rows:
        onehot = [0.0] * (EDGES * OPS)
        for edge in range(EDGES):
            onehot[edge * OPS + int(r[f"op{edge}"])] = 1.0
        features[r["arch"]] = onehot
    return keys, devices, latency, features


def hardware(device: str) -> str:
    """The machine of a device column: ``"2080ti"`` for ``"2080ti_256"`` (GPUs carry their batch size)."""
    name, _, batch = device.rpartition("_")
    return name if batch in ("1", "32", "256") else device


def score(predicted: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Spearman rho and the share within +-10 %."""
    rho = float(spearmanr(predicted, true).statistic)
    within = float(np.mean(np.abs(predicted / true - 1.0) <= 0.1))
    return rho, within


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 devices, 2 draws: checks the script works")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--n", type=int, nargs="+", default=[5, 10, 20, 50], help="measured archs per fit")
    p.add_argument("--draws", type=int, default=10, help="random draws of the N archs per device and N")
    p.add_argument("--with-features", action="store_true", help="also fit tables and one-hot together")
    p.add_argument(
        "--exclude-same-hardware",
        action="store_true",
        help="leave out the left-out GPU's tables at other batch sizes too",
    )
    args = p.parse_args()
    info = header()
    keys, devices, latency, features = load(args.data)
    log(f"{len(keys)} archs, {len(devices)} devices from {args.data}")
    targets = devices[:3] if args.quick else devices
    draws = 2 if args.quick else args.draws
    tables = {d: dict(zip(keys, latency[:, j].tolist(), strict=True)) for j, d in enumerate(devices)}
    methods = ["transfer", "points alone"] + (["transfer + one-hot"] if args.with_features else [])
    results: list[dict[str, Any]] = []
    ceiling: dict[str, tuple[float, float]] = {}
    t0 = time.perf_counter()
    for target in targets:
        j = devices.index(target)
        true = latency[:, j]
        others = [
            i
            for i in range(len(devices))
            if i != j and not (args.exclude_same_hardware and hardware(devices[i]) == hardware(target))
        ]
        s = np.log(latency[:, others])
        weights, intercept = _nnls_with_intercept(s, np.log(true))
        ceiling[target] = score(np.exp(intercept + s @ weights), true)
        sources = {devices[i]: tables[devices[i]] for i in others}
        for n in args.n:
            for draw in range(draws):
                rng = np.random.default_rng([j, n, draw])
                chosen = rng.choice(len(keys), size=n, replace=False)
                measured = {keys[i]: float(true[i]) for i in chosen}
                rest = np.setdiff1d(np.arange(len(keys)), chosen)
                rest_keys = [keys[i] for i in rest]
                for method in methods:
                    t = time.perf_counter()
                    if method == "transfer":
                        fitted = fit_latency_transfer(measured, sources=sources)
                    elif method == "points alone":
                        fitted = fit_latency_transfer(measured, features=features)
                    else:
                        fitted = fit_latency_transfer(measured, sources=sources, features=features)
                    fit_s = time.perf_counter() - t
                    predicted = fitted.predict_many(rest_keys)
                    rho, within = score(predicted, true[rest])
                    results.append(
                        {
                            "device": target,
                            "n": n,
                            "draw": draw,
                            "method": method,
                            "spearman": rho,
                            "within_10pct": within,
                            "mape_pct": float(np.mean(np.abs(predicted / true[rest] - 1.0)) * 100),
                            "fit_s": fit_s,
                            "fit": fitted.fit.to_dict(),
                        }
                    )
        log(f"{target} done ({time.perf_counter() - t0:.0f} s)")

    def mean(method: str, n: int, field: str, device: str | None = None) -> float:
        vals = [
            r[field]
            for r in results
            if r["method"] == method and r["n"] == n and (device is None or r["device"] == device)
        ]
        return float(np.mean(vals))

    def loo(method: str, n: int) -> tuple[float, float]:
        vals = [r for r in results if r["method"] == method and r["n"] == n]
        return (
            float(np.mean([r["fit"]["loo_mape_pct"] for r in vals])),
            float(np.mean([r["mape_pct"] for r in vals])),
        )

    print(
        f"Command: `{info['command']}`, {info['date']}; {info['machine']['cpu_model']}, "
        f"load average at start {info['machine']['load_average_1_5_15min']}. {draws} draws per device and N.\n"
    )
    headers = [
        "N",
        *(f"{m}: Spearman / within +-10 %" for m in methods),
        "transfer: LOO MAPE on the N / MAPE on the rest",
        "fit s (transfer)",
    ]
    rows = []
    for n in args.n:
        row: list[Any] = [n]
        for m in methods:
            row.append(f"{mean(m, n, 'spearman'):.3f} / {mean(m, n, 'within_10pct') * 100:.0f} %")
        a, b = loo("transfer", n)
        row += [f"{a:.1f} / {b:.1f} %", f"{mean('transfer', n, 'fit_s'):.3f}"]
        rows.append(row)
    print(markdown(headers, rows))
    print()
    print(
        f"Mean ceiling (transfer fitted on all archs): Spearman {np.mean([c[0] for c in ceiling.values()]):.3f}, "
        f"within +-10 % {np.mean([c[1] for c in ceiling.values()]) * 100:.0f} %\n"
    )
    headers = ["device", *(f"N={n}" for n in args.n), "points alone N=10 / N=50", "ceiling"]
    rows = []
    for d in targets:
        row = [d]
        for n in args.n:
            row.append(
                f"{mean('transfer', n, 'spearman', d):.3f} / {mean('transfer', n, 'within_10pct', d) * 100:.0f} %"
            )
        alone = [f"{mean('points alone', n, 'spearman', d):.3f}" if n in args.n else "-" for n in (10, 50)]
        row += [" / ".join(alone), f"{ceiling[d][0]:.3f} / {ceiling[d][1] * 100:.0f} %"]
        rows.append(row)
    print("Transfer, per left-out device: Spearman / within +-10 %, mean over the draws\n")
    print(markdown(headers, rows))
    args.out.mkdir(parents=True, exist_ok=True)
    variant = "-same-hardware-out" if args.exclude_same_hardware else ""
    out = args.out / f"{NAME}{variant}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps({**info, "ceiling": ceiling, "results": results}, indent=1))
    log(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


if __name__ == "__main__":
    main()
