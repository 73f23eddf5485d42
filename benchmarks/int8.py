"""INT8 against float on this CPU: latency, size and accuracy of statically quantized CNNs of increasing size.

Four plain CNNs for 3 x 32 x 32 images (CIFAR's shape), widths (w, 2w, 4w) for w = 8, 16, 32, 64
(stem, two stride-2 stages of two 3x3 convolutions with batch norm and ReLU, global pooling, linear head),
are trained for ``--epochs`` epochs on scikit-learn's digits, upscaled to 32 x 32 and repeated over three
channels (no download). Each is exported to ONNX as the search exports models (TorchScript exporter, opset
17, symbolic batch), quantized with :func:`profilers.quantize_int8` (QDQ, per-channel int8 weights, int8
activations, MinMax calibration on ``--calibration`` training images) and then:

- accuracy: top-1 error of both on the held-out test split (:func:`profilers.compare_int8_accuracy`);
- latency: both measured with the ``local-cpu`` profile's ONNX Runtime profiler (1 thread, batch 1, quiet
  gate, 300 timed runs, best of 2 sessions), alternately ``--repeats`` times; the median of the repeats;
- size of both files.

    .venv/bin/python benchmarks/int8.py [--quick] [--out benchmarks/out] [--epochs 4] [--repeats 3]
        [--calibration 256] [--threads N]

Needs torch and scikit-learn, not the ``nas`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hardware_profiles import load_profile
from profilers import OnnxRuntimeLatency, compare_int8_accuracy, count_params_and_flops, quantize_int8

NAME = "int8"
ROOT = Path(__file__).resolve().parents[1]
SHAPE = (3, 32, 32)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def header() -> dict[str, Any]:
    import onnxruntime

    argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()[:10]
    return {
        "command": shlex.join(argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu_model": next(
                (line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")), "unknown"
            ),
            "cores": os.cpu_count(),
            "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "lscpu_head": lscpu,
        },
    }


def digits_32() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as 3 x 32 x 32 float32 images, normalised; a stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    images = torch.from_numpy(x.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0)
    images = nn.functional.interpolate(images, size=SHAPE[1:], mode="bilinear", align_corners=False)
    images = ((images - images.mean()) / images.std()).repeat(1, 3, 1, 1).numpy()
    x_train, x_test, y_train, y_test = train_test_split(images, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def cnn(width: int, classes: int = 10) -> nn.Module:
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    w = width
    layers = [
        *block(3, w, 1),
        *block(w, 2 * w, 2),
        *block(2 * w, 2 * w, 1),
        *block(2 * w, 4 * w, 2),
        *block(4 * w, 4 * w, 1),
    ]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, classes))


def train(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
    net.eval()


def export(net: nn.Module, path: Path, width: int) -> Path:
    import onnx

    torch.onnx.export(
        net,
        (torch.zeros((1, *SHAPE)),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "hwnas.arch", json.dumps({"width": width})
    onnx.save_model(model, str(path))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two small models, 1 epoch, 1 repeat")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="alternating float/int8 latency measurements")
    p.add_argument("--calibration", type=int, default=256, help="training images to calibrate on")
    p.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--threads", type=int, default=2, help="torch threads for training")
    args = p.parse_args()
    if args.quick:
        args.widths, args.epochs, args.repeats = [8, 16], 1, 1
    torch.set_num_threads(args.threads)
    info = header()
    x_train, y_train, x_test, y_test = digits_32()
    log(f"digits at 32x32: {len(x_train)} training, {len(x_test)} test images")
    profiler = OnnxRuntimeLatency.from_profile(load_profile("local-cpu"))
    calibration = x_train[np.random.default_rng(0).choice(len(x_train), args.calibration, replace=False)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-bench-") as tmp:
        for width in args.widths:
            net = cnn(width)
            t0 = time.perf_counter()
            train(net, x_train, y_train, args.epochs, seed=width)
            train_s = time.perf_counter() - t0
            float_path = export(net, Path(tmp) / f"cnn{width}.onnx", width)
            t0 = time.perf_counter()
            q = quantize_int8(float_path, Path(tmp) / f"cnn{width}.int8.onnx", calibration)
            quantize_s = time.perf_counter() - t0
            acc = compare_int8_accuracy(float_path, q.int8_path, x_test, y_test)
            cost = count_params_and_flops(float_path, SHAPE)
            latency: dict[str, list[float]] = {"float": [], "int8": []}
            for _ in range(args.repeats):
                for kind, path in (("float", float_path), ("int8", q.int8_path)):
                    latency[kind].append(profiler.measure(path, SHAPE).median_ms)
            row = {
                "width": width,
                "params": cost.params,
                "macs": cost.macs,
                "train_s": train_s,
                "quantize_s": quantize_s,
                "float_bytes": q.float_bytes,
                "int8_bytes": q.int8_bytes,
                "float_error_pct": acc.float_error_pct,
                "int8_error_pct": acc.int8_error_pct,
                "agreement": acc.agreement,
                "float_ms": float(np.median(latency["float"])),
                "int8_ms": float(np.median(latency["int8"])),
                "float_ms_repeats": latency["float"],
                "int8_ms_repeats": latency["int8"],
                "quantized_op_types": list(q.op_types),
            }
            rows.append(row)
            log(
                f"w={width}: float {row['float_ms']:.3f} ms / int8 {row['int8_ms']:.3f} ms, error "
                f"{acc.float_error_pct:.1f} / {acc.int8_error_pct:.1f} %"
            )
    m = info["machine"]
    print(
        f"Command: `{info['command']}`, {info['date']}; {m['cpu_model']}, {m['cores']} cores, torch "
        f"{m['torch']}, onnxruntime {m['onnxruntime']}, load average at start {m['load_average_1_5_15min']}.\n"
    )
    headers = [
        "widths",
        "params",
        "MMACs",
        "float ms",
        "int8 ms",
        "int8 / float latency",
        "float / int8 KiB",
        "float error %",
        "int8 error %",
        "top-1 agreement",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        w = r["width"]
        cells = [
            f"{w}-{2 * w}-{4 * w}",
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:.1f}",
            f"{r['float_ms']:.3f}",
            f"{r['int8_ms']:.3f}",
            f"{r['int8_ms'] / r['float_ms']:.2f}",
            f"{r['float_bytes'] / 1024:.0f} / {r['int8_bytes'] / 1024:.0f}",
            f"{r['float_error_pct']:.1f}",
            f"{r['int8_error_pct']:.1f}",
            f"{r['agreement'] * 100:.1f} %",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{NAME}{'-quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps({**info, "args": {k: str(v) for k, v in vars(args).items()}, "models": rows}, indent=1)
    )
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
