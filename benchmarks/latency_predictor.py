"""How well does a lookup table predict latency, how repeatable is a measurement, what does one cost?

1. Measures the lookup table of the demo's search space on this machine, as ``hwnas profile-device`` does
   (every part, then a calibration on ``--calibration`` whole archs), with the ``local-cpu`` profile.
2. Draws ``--subnets`` random archs (another seed than the calibration's), measures each whole model with
   ONNX Runtime and compares with the table's prediction: share within +-10 %, mean absolute percentage
   error, Kendall tau between predicted and measured.
3. Repeatability: ``--repeat-archs`` archs, each measured ``--repeats`` times in independent sessions (a
   fresh export and a fresh ONNX Runtime session each time); coefficient of variation of the median.
4. Cost of one measured candidate, split into ONNX export, session creation and timing, and the cost of
   one prediction from the table.

    .venv/bin/python benchmarks/latency_predictor.py [--quick] [--out benchmarks/out]
        [--profile-option KEY=VALUE ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hardware_profiles import load_profile
from nas import Supernet, export_onnx
from nas.run._lut import measure_table, predict_latency
from profilers import OnnxRuntimeLatency

NAME = "latency_predictor"


def kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--subnets", type=int, default=100)
    p.add_argument("--calibration", type=int, default=30)
    p.add_argument("--repeat-archs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--profile-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the local-cpu profile for this run, e.g. quiet_gate=false or "
        "timed_runs=300 (repeatable; VALUE is read as YAML)",
    )
    args = p.parse_args()
    if args.quick:
        args.subnets, args.calibration, args.repeat_archs, args.repeats = 10, 6, 3, 3
    common.apply_threads(args.threads or 1)
    info = common.header()
    cfg = common.demo_config()
    data = common.load_data(cfg)
    spec = common.supernet_spec(cfg, data)
    profile = load_profile("local-cpu")
    if args.profile_option:
        fields = list(type(profile).model_fields)
        changes = common.key_values(p, "--profile-option", args.profile_option, fields)
        profile = profile.replace(**changes)
    shape = tuple(data.input_shape)

    t0 = time.perf_counter()
    common.log(f"measuring the lookup table ({args.calibration} calibration archs)")
    table, calibration = measure_table(spec, profile, shape, calibration_archs=args.calibration, seed=0)
    table_s = time.perf_counter() - t0

    supernet = Supernet(spec, seed=0).eval()
    latency = OnnxRuntimeLatency.from_profile(profile)
    rng = np.random.default_rng(args.seed)
    archs = [spec.random_arch(rng) for _ in range(args.subnets)]
    measured, predicted, flagged = [], [], 0
    costs: dict[str, list[float]] = {"export_s": [], "session_and_timing_s": [], "predict_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        for i, arch in enumerate(archs, 1):
            a = time.perf_counter()
            export_onnx(supernet.subnet(arch).eval(), path, shape)
            b = time.perf_counter()
            r = latency.measure(path, shape)
            c = time.perf_counter()
            pred = predict_latency(table, spec, arch, shape)
            d = time.perf_counter()
            costs["export_s"].append(b - a)
            costs["session_and_timing_s"].append(c - b)
            costs["predict_s"].append(d - c)
            measured.append(r.median_ms)
            predicted.append(pred)
            flagged += r.quiet is False
            if i % 20 == 0:
                common.log(f"  {i}/{len(archs)} subnets measured")

        # Session creation alone, to split the measured cost.
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        starts = []
        for _ in range(10):
            a = time.perf_counter()
            ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            starts.append(time.perf_counter() - a)

        common.log(f"repeatability: {args.repeat_archs} archs x {args.repeats} independent measurements")
        cvs, repeat_rows = [], []
        for arch in archs[: args.repeat_archs]:
            medians, quiet = [], []
            for _ in range(args.repeats):
                export_onnx(supernet.subnet(arch).eval(), path, shape)
                r = latency.measure(path, shape)
                medians.append(r.median_ms)
                quiet.append(r.quiet)
            cv = float(np.std(medians, ddof=1) / np.mean(medians))
            cvs.append(cv)
            repeat_rows.append({"arch": arch, "medians_ms": medians, "quiet": quiet, "cv": cv})

    m, pr = np.array(measured), np.array(predicted)
    rel = np.abs(pr - m) / m
    within = float(np.mean(rel <= 0.10))
    result: dict[str, Any] = {
        **info,
        "table": {
            "parts": len(table.entries),
            "seconds": table_s,
            "calibration": table.meta["calibration"],
            "empty_ms": table.empty_ms,
        },
        "subnets": args.subnets,
        "profile": {
            "quiet_gate": profile.quiet_gate,
            "quiet_tolerance": profile.quiet_tolerance,
            "quiet_max_s": profile.quiet_max_s,
            "quiet_retries": profile.quiet_retries,
            "timing_rounds": profile.timing_rounds,
            "timed_runs": profile.timed_runs,
        },
        "disturbed_measurements": flagged + sum(q is False for row in repeat_rows for q in row["quiet"]),
        "within_10pct": within,
        "within_5pct": float(np.mean(rel <= 0.05)),
        "mape": float(np.mean(rel)),
        "kendall_tau": kendall_tau(list(m), list(pr)),
        "measured_ms": {"median": float(np.median(m)), "min": float(m.min()), "max": float(m.max())},
        "repeatability": {
            "cv_median": float(np.median(cvs)),
            "cv_max": float(np.max(cvs)),
            "cv_mean": float(np.mean(cvs)),
            "rows": repeat_rows,
        },
        "cost_s": {k: float(np.median(v)) for k, v in costs.items()}
        | {"session_create": float(np.median(starts))},
        "pairs": [
            {"arch": a, "measured_ms": x, "predicted_ms": y} for a, x, y in zip(archs, measured, predicted)
        ],
        "calibration_archs": calibration,
    }
    out = common.write_json(args.out / f"{NAME}{'-quick' if args.quick else ''}.json", result)
    print(common.machine_line(info))
    if args.profile_option:
        print(f"local-cpu profile changed for this run: {', '.join(args.profile_option)}")
    print()
    print(
        common.table(
            ["figure", "value", "target"],
            [
                ["parts in the table / time to measure it", f"{len(table.entries)} / {table_s:.0f} s", ""],
                [f"subnets within +-10 % ({args.subnets} random)", f"{100 * within:.1f} %", ">= 99 %"],
                ["subnets within +-5 %", f"{100 * result['within_5pct']:.1f} %", ""],
                ["mean absolute percentage error", f"{100 * result['mape']:.1f} %", ""],
                ["Kendall tau (predicted vs measured)", f"{result['kendall_tau']:.3f}", ""],
                [
                    f"CV of the median over {args.repeats} measurements (median / max of {args.repeat_archs})",
                    f"{100 * result['repeatability']['cv_median']:.2f} % / {100 * result['repeatability']['cv_max']:.2f} %",
                    "<= 2 %",
                ],
                [
                    "measurements the quiet gate flagged as disturbed"
                    + ("" if profile.quiet_gate else " (gate off)"),
                    f"{result['disturbed_measurements']} of {args.subnets + args.repeat_archs * args.repeats}",
                    "",
                ],
                ["one measured candidate: ONNX export", f"{1000 * result['cost_s']['export_s']:.0f} ms", ""],
                [
                    "one measured candidate: session, warm-up and timed runs",
                    f"{1000 * result['cost_s']['session_and_timing_s']:.0f} ms",
                    "",
                ],
                ["  of which session creation", f"{1000 * result['cost_s']['session_create']:.0f} ms", ""],
                ["one prediction from the table", f"{1e6 * result['cost_s']['predict_s']:.0f} us", ""],
            ],
        )
    )
    common.log(f"figures: {out}")


if __name__ == "__main__":
    main()
