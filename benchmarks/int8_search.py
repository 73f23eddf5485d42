"""(k) on the front of a CIFAR-sized search: ``hwnas search --quantize int8`` on 32 x 32 RGB images.

Builds a CIFAR-10-format dataset (python-pickle batches, as ``hwnas search --dataset cifar10`` reads them)
from scikit-learn's 1,797 digits, upscaled to 32 x 32 (bilinear) and repeated over three channels, as
``benchmarks/int8.py`` does (no download): a stratified 20 % goes to ``test_batch``, the rest to
``data_batch_1`` .. ``data_batch_5``, of which the search holds out ``--val-fraction`` for validation. The
space is sized from the images, so the MobileNet space's ``cifar`` preset (stem stride 1, 5 stages of
24-160 channels, depth 1-3, 8x downsampling). Then it runs

    hwnas search --config CONFIG --dataset cifar10 --data-root DATA --quantize int8 --epochs E --trials T
        --population P --seed S --threads N --out OUT/runs --name int8_search

(the config only sets the validation fraction), reads the run's ``pareto.json`` and reports, per front
model: parameters and MACs (counted on the float ONNX file, :func:`profilers.count_params_and_flops`),
float and INT8 validation error and the drop, float and INT8 latency on the ``local-cpu`` profile as the
search measured them (one after the other), the same measured again here ``--repeats`` times alternately
(median), and both file sizes. The load average is sampled every 30 s during the search.

Beside the INT8 twin the search deploys (int8 weights and int8 activations, ONNX Runtime's default for QDQ),
each front model is also quantized here with uint8 activations (``quantize_int8(...,
activation_type="uint8")``, same calibration images: the run's seeded sample of 256 training images), and
its validation error and latency are measured the same way; the JSON also lists the operator types each
file runs as after ONNX Runtime's graph optimisations on this CPU (where DequantizeLinear and float Conv
remain, part of the model runs in float).

    nice -n 10 .venv/bin/python benchmarks/int8_search.py [--quick] [--out benchmarks/out] [--epochs 10]
        [--trials 60] [--population 12] [--repeats 3] [--threads 2] [--seed 0] [--val-fraction 0.2]

The dataset and the run directory stay under ``--out`` (``int8_search-data/``, ``runs/int8_search``);
the figures go to ``int8_search.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hardware_profiles import load_profile
from nas import load_dataset
from nas.run._int8 import split_arrays
from profilers import OnnxRuntimeLatency, compare_int8_accuracy, count_params_and_flops, quantize_int8

NAME = "int8_search"
REPO = Path(__file__).resolve().parent.parent
SHAPE = (3, 32, 32)
CALIBRATION = 256  # evaluation.int8_calibration's default, which the search uses


def write_digits_cifar(folder: Path, seed: int = 0) -> dict[str, int]:
    """scikit-learn's digits as a CIFAR-10 python-pickle folder of 32 x 32 RGB uint8 images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    images = torch.from_numpy(x.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0)
    images = torch.nn.functional.interpolate(images, size=SHAPE[1:], mode="bilinear", align_corners=False)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).numpy()
    rows = pixels.reshape(len(pixels), -1)  # channel-major rows of 3 x 1024 values, as CIFAR-10 stores them
    pool_x, test_x, pool_y, test_y = train_test_split(rows, y, test_size=0.2, random_state=seed, stratify=y)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    def dump(name: str, data: np.ndarray, labels: np.ndarray) -> None:
        batch = {b"batch_label": name.encode(), b"data": np.ascontiguousarray(data),
                 b"labels": [int(v) for v in labels]}  # fmt: skip
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)

    for i, part in enumerate(np.array_split(np.arange(len(pool_y)), 5), start=1):
        dump(f"data_batch_{i}", pool_x[part], pool_y[part])
    dump("test_batch", test_x, test_y)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [str(d).encode() for d in range(10)], b"num_vis": 3072}, f, protocol=2)
    return {"pool": len(pool_y), "test": len(test_y)}


class LoadSampler:
    """The 1-minute load average every ``every`` seconds, in a background thread."""

    def __init__(self, every: float = 30.0) -> None:
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def arch_summary(arch: dict[str, Any]) -> str:
    """Width and blocks per stage of a MobileNet arch, e.g. ``w0.75 d2-1-3-1-2``."""
    depth = arch.get("depth")
    if not isinstance(depth, list):
        return json.dumps(arch)[:40]
    return f"w{arch.get('width')} d{'-'.join(str(d) for d in depth)}"


def _op_types(path: Path) -> dict[str, int]:
    """Operator types of an ONNX file, with their counts, as ONNX Runtime runs it on this CPU (after its
    graph optimisations)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="hwnas-ops-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        nodes = onnx.load(options.optimized_model_filepath).graph.node
        return dict(sorted(Counter(node.op_type for node in nodes).items()))


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], threads=False)
    p.add_argument("--epochs", type=int, default=10, help="supernet training epochs")
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--population", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the search (--threads)")
    p.add_argument("--repeats", type=int, default=3, help="alternating float/int8 re-measurements")
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of the training batches validated on"
    )
    args = p.parse_args()
    if args.quick:
        args.epochs, args.trials, args.population, args.repeats = 1, 4, 4, 1
    tag = "-quick" if args.quick else ""
    info = common.header()
    data_root = args.out / f"{NAME}-data" / "cifar-10-batches-py"
    sizes = write_digits_cifar(data_root, seed=args.seed)
    common.log(f"digits as CIFAR-10 pickles in {data_root}: {sizes['pool']} in the training batches, "
               f"{sizes['test']} in test_batch")  # fmt: skip
    runs = args.out / "runs"
    name = f"{NAME}{tag}"
    if (runs / name).exists():
        shutil.rmtree(runs / name)
    config = args.out / f"{NAME}{tag}-config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({"data": {"options": {"val_fraction": args.val_fraction}}}))
    cmd = [str(REPO / ".venv" / "bin" / "hwnas"), "search", "--config", str(config), "--dataset", "cifar10",
           "--data-root", str(data_root), "--quantize", "int8", "--epochs", str(args.epochs),
           "--trials", str(args.trials), "--population", str(args.population), "--seed", str(args.seed),
           "--threads", str(args.threads), "--out", str(runs), "--name", name]  # fmt: skip
    common.log("running " + " ".join(cmd))
    t0 = time.perf_counter()
    with LoadSampler() as load:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    wall = time.perf_counter() - t0
    run_dir = runs / name
    pareto = json.loads((run_dir / "pareto.json").read_text())
    phases = json.loads((run_dir / "timings.json").read_text()).get("seconds", {})
    common.log(f"search done in {wall:.0f} s; {len(pareto['models'])} front models; re-measuring")

    profiler = OnnxRuntimeLatency.from_profile(load_profile("local-cpu"))
    data = load_dataset("cifar10", root=data_root, seed=args.seed, val_fraction=args.val_fraction)
    calibration = split_arrays(data.train, limit=CALIBRATION, seed=args.seed)[0]  # as the search calibrates
    val_x, val_y = split_arrays(data.val)
    rows: list[dict[str, Any]] = []
    for m in pareto["models"]:
        q = m["int8"]
        float_path, int8_path = run_dir / m["onnx"], run_dir / q["onnx"]
        u8_path = float_path.with_name(f"{float_path.stem}.u8.onnx")  # uint8 activations, int8 weights
        u8 = quantize_int8(float_path, u8_path, calibration, activation_type="uint8")
        u8_acc = compare_int8_accuracy(float_path, u8_path, val_x, val_y)
        cost = count_params_and_flops(float_path, SHAPE)
        again: dict[str, list[float]] = {"float": [], "int8": [], "u8": []}
        for _ in range(args.repeats):
            for kind, path in (("float", float_path), ("int8", int8_path), ("u8", u8_path)):
                again[kind].append(profiler.measure(path, SHAPE).median_ms)
        rows.append({
            "id": m["id"], "arch": m["arch"], "arch_summary": arch_summary(m["arch"]),
            "params": cost.params, "macs": cost.macs, "search_error": m["metrics"].get("error"),
            "search_latency_ms": m["metrics"].get("latency_ms"), "test_error": m.get("test_error"),
            "float_error_pct": q["float_error"], "int8_error_pct": q["error"], "drop_pct": q["drop_pct"],
            "flagged": q["flagged"], "agreement": q["agreement"],
            "float_ms": q["float_latency_ms"], "int8_ms": q["latency_ms"],
            "float_ms_again": float(np.median(again["float"])), "int8_ms_again": float(np.median(again["int8"])),
            "u8_ms_again": float(np.median(again["u8"])), "ms_repeats": again,
            "float_bytes": q["float_size_bytes"], "int8_bytes": q["size_bytes"], "u8_bytes": u8.int8_bytes,
            "u8_float_error_pct": u8_acc.float_error_pct, "u8_error_pct": u8_acc.int8_error_pct,
            "u8_drop_pct": u8_acc.drop_pct, "u8_agreement": u8_acc.agreement,
            "int8_op_types": _op_types(int8_path), "u8_op_types": _op_types(u8_path),
        })  # fmt: skip
        common.log(f"model {m['id']}: float {rows[-1]['float_ms_again']:.3f} ms, int8 "
                   f"{rows[-1]['int8_ms_again']:.3f} ms, uint8 activations {rows[-1]['u8_ms_again']:.3f} ms")  # fmt: skip
    rows.sort(key=lambda r: r["macs"])

    print(f"Command: `{info['command']}`, {info['date']}; {common.machine_line(info)}; load average "
          f"(1 min) during the search {min(load.samples):.2f}-{max(load.samples):.2f}.\n")  # fmt: skip
    print(f"Search: {wall:.0f} s wall; {sizes['pool']} images in the training batches "
          f"({len(val_y)} of them validation), {sizes['test']} test; phases (s): "
          + ", ".join(f"{k} {v:.0f}" for k, v in phases.items() if "." not in k) + "\n")  # fmt: skip
    headers = ["id", "arch", "params", "MMACs", "float / int8 val. error %", "drop (points)", "agreement",
               "float / int8 KiB", "uint8-act. error % / drop"]  # fmt: skip
    body = [[
        r["id"], r["arch_summary"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}",
        f"{r['float_error_pct']:.2f} / {r['int8_error_pct']:.2f}", f"{r['drop_pct']:+.2f}",
        f"{r['agreement'] * 100:.1f} %", f"{r['float_bytes'] / 1024:,.0f} / {r['int8_bytes'] / 1024:,.0f}",
        f"{r['u8_error_pct']:.2f} / {r['u8_drop_pct']:+.2f}",
    ] for r in rows]  # fmt: skip
    print(common.table(headers, body) + "\n")
    headers = ["id", "MMACs", "float / int8 ms (search)", f"float / int8 / uint8-act. ms (median of {args.repeats})",
               "int8 / float", "uint8-act. / float"]  # fmt: skip
    body = [[
        r["id"], f"{r['macs'] / 1e6:.1f}", f"{r['float_ms']:.3f} / {r['int8_ms']:.3f}",
        f"{r['float_ms_again']:.3f} / {r['int8_ms_again']:.3f} / {r['u8_ms_again']:.3f}",
        f"{r['int8_ms_again'] / r['float_ms_again']:.2f}", f"{r['u8_ms_again'] / r['float_ms_again']:.2f}",
    ] for r in rows]  # fmt: skip
    print(common.table(headers, body))
    out = common.write_json(
        args.out / f"{NAME}{tag}.json",
        {**info, "args": {k: str(v) for k, v in vars(args).items()}, "search_command": cmd, "wall_s": wall,
         "phases_s": phases, "load_average_1min_samples": load.samples, "data": sizes,
         "run_dir": str(run_dir), "models": rows},
    )  # fmt: skip
    common.log(f"wrote {out}")


if __name__ == "__main__":
    main()
