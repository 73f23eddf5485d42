"""A tabular search problem: every subnet of a reduced digits supernet, scored ahead of time.

The reduced supernet has 2 stages (16 and 32 channels, strides 1 and 2), depth (1, 2) per stage, kernel
(3, 5), expand ratio (3, 6) and width (0.5, 0.75, 1.0): 3 x (4 + 4**2)**2 = 1,200 distinct canonical
architectures, reached from 3 x 2**10 = 3,072 points of the flat search space (the kernel and expand
choices of a stage's inactive second block do not change the network). It is trained exactly as the demo
trains its supernet (``nas.train_supernet`` with the demo config's epochs, batch size, learning rate and
seed; cached by ``_common.trained_supernet``), and every canonical arch is scored once by
``nas.CandidateEvaluator`` as a search scores it: validation error (%) after batch-norm recalibration,
``latency_ms`` measured with ONNX Runtime on the ``local-cpu`` profile (one thread, batch 1), ``params``
and ``flops``. Latency is measured in 5 passes (the evaluator's, then 4 passes over every exported arch,
each in a new random order) and the table keeps the median of the 5 medians: on a shared 2-core machine a
single measurement of a few milliseconds lands in a quiet or a busy moment (two modes about 2x apart).

The table is shipped as ``benchmarks/data/tabular_digits.csv`` (one row per canonical arch: the flat
params of its canonical representative, then ``error``, ``latency_ms``, ``params``, ``flops``) with
``tabular_digits.json`` beside it (how it was built: spec, training settings, profile, machine, date).
Rebuild it (about 10 minutes on 2 cores, most of it scoring, plus 2 to train the supernet) with::

    nice -n 10 .venv/bin/python benchmarks/tabular.py [--out benchmarks/out] [--data benchmarks/data]

or ``benchmarks/strategies.py --rebuild``. Latencies measured on another machine, or under another load,
differ; the table is a fixed problem, not a statement about this machine.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# As the hwnas command line does, before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import Space, non_dominated_mask

if TYPE_CHECKING:
    from nas import Arch, SupernetSpec

DATA_DIR = Path(__file__).resolve().parent / "data"
TABLE = "tabular_digits.csv"
METRICS = ("error", "latency_ms", "params", "flops")
OBJECTIVES = ("error", "latency_ms")

#: The reduced supernet: overrides of the demo config's ``supernet`` section.
SPEC_OVERRIDES: dict[str, tuple[Any, ...]] = {
    "stage_channels": (16, 32),
    "stage_strides": (1, 2),
    "depth_choices": (1, 2),
    "kernel_choices": (3, 5),
    "expand_choices": (3, 6),
    "width_choices": (0.5, 0.75, 1.0),
}


def reduced_spec() -> SupernetSpec:
    """The reduced ``nas.SupernetSpec`` for 8x8 grayscale digits (10 classes)."""
    from nas import SupernetSpec

    return SupernetSpec.for_input(1, 8, 10, **SPEC_OVERRIDES)


def canonical_archs(spec: SupernetSpec) -> list[Arch]:
    """Every distinct canonical arch of ``spec``, in a fixed order (width, then depths, then blocks)."""
    blocks = list(itertools.product(spec.kernel_choices, spec.expand_choices))
    per_stage: list[tuple[int, tuple[tuple[int, int], ...]]] = [
        (d, combo) for d in spec.depth_choices for combo in itertools.product(blocks, repeat=d)
    ]
    archs = []
    for width in spec.width_choices:
        for stages in itertools.product(per_stage, repeat=spec.num_stages):
            archs.append(
                {
                    "width": float(width),
                    "depth": [d for d, _ in stages],
                    "kernel": [[k for k, _ in combo] for _, combo in stages],
                    "expand": [[e for _, e in combo] for _, combo in stages],
                }
            )
    return archs


@dataclass(frozen=True)
class TabularProblem:
    """A table of every canonical arch's metrics, searched over the flat space of its supernet.

    Attributes:
        spec: the reduced ``nas.SupernetSpec``.
        space: the flat search space strategies see (``spec.search_space()``).
        rows: canonical arch key (``nas.arch_key``) -> metrics (``error`` %, ``latency_ms``, ``params``,
            ``flops``).
    """

    spec: SupernetSpec
    space: Space
    rows: Mapping[str, Mapping[str, float]]

    def lookup(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Metrics of the canonical arch that flat ``params`` describe."""
        from nas import arch_key

        return dict(self.rows[arch_key(self.spec.arch_from_params(params))])

    def objective_matrix(self, names: Sequence[str] = OBJECTIVES) -> np.ndarray:
        """Every row's values of ``names`` (``n x len(names)``, all minimized)."""
        return np.array([[row[n] for n in names] for row in self.rows.values()], dtype=float)

    def true_front(self, names: Sequence[str] = OBJECTIVES) -> np.ndarray:
        """The non-dominated rows of the whole table (``k x len(names)``, duplicates kept)."""
        F = self.objective_matrix(names)
        return F[non_dominated_mask(F)]


def load(path: Path | None = None) -> TabularProblem:
    """Reads the shipped table (``benchmarks/data/tabular_digits.csv`` by default).

    Raises:
        FileNotFoundError: the table is missing; build it with ``benchmarks/tabular.py``.
        ValueError: the table does not hold exactly one row per canonical arch of the reduced spec.
    """
    from nas import arch_key

    path = path or DATA_DIR / TABLE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; build it with: .venv/bin/python benchmarks/tabular.py")
    spec = reduced_spec()
    space = spec.search_space()
    rows: dict[str, dict[str, float]] = {}
    with path.open(newline="") as f:
        for line in csv.DictReader(f):
            params = {name: _parse(line[name]) for name in space}
            key = arch_key(spec.arch_from_params(params))
            if key in rows:
                raise ValueError(f"{path}: arch {key} appears twice")
            rows[key] = {m: float(line[m]) for m in METRICS}
    expected = {arch_key(a) for a in canonical_archs(spec)}
    if set(rows) != expected:
        raise ValueError(
            f"{path} has {len(rows)} archs, {len(set(rows) - expected)} unknown and "
            f"{len(expected - set(rows))} missing of the {len(expected)} of the reduced spec; rebuild it"
        )
    return TabularProblem(spec=spec, space=space, rows=rows)


def _parse(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def build(
    out: Path,
    data_dir: Path = DATA_DIR,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    latency_passes: int = 5,
) -> Path:
    """Trains (or loads from ``out/cache``) the reduced supernet, scores every canonical arch, writes the table.

    Args:
        out: folder of the benchmark caches (the trained supernet) and scratch files.
        data_dir: where ``tabular_digits.csv`` and ``tabular_digits.json`` are written.
        epochs: supernet epochs (default: the demo config's).
        limit: score only the first ``limit`` archs (to check the code; the table then fails :func:`load`).
        latency_passes: latency measurements of every arch (the evaluator's, then passes over the exported
            archs in shuffled orders); the table keeps their median.

    Returns:
        The path of the CSV table.
    """
    import _common as common

    from hardware_profiles import load_profile
    from nas import CandidateEvaluator, export_onnx
    from profilers import MeasurementCache

    info = common.header()
    overrides: dict[str, Any] = {f"supernet.{k}": list(v) for k, v in SPEC_OVERRIDES.items()}
    if epochs is not None:
        overrides["supernet.epochs"] = epochs
    cfg = common.demo_config(overrides)
    data, supernet, sn_record = common.trained_supernet(cfg, out)
    spec = supernet.spec
    if spec != reduced_spec():
        raise RuntimeError(f"the trained supernet's spec {spec} is not the reduced spec {reduced_spec()}")
    work = out / "tmp" / "tabular"
    evaluator = CandidateEvaluator.from_config(
        cfg,
        supernet=supernet,
        data=data,
        profile=load_profile("local-cpu"),
        measuring=False,
        cache=MeasurementCache(),  # in memory: every latency of the table is measured now
        work_dir=work,
    )
    archs = canonical_archs(spec)[:limit]
    names = list(spec.search_space())
    rows = []
    t0 = time.perf_counter()
    for i, arch in enumerate(archs):
        metrics = evaluator.score(arch)
        rows.append({**spec.params_from_arch(arch), **{m: metrics[m] for m in METRICS}})
        if (i + 1) % 100 == 0 or i + 1 == len(archs):
            rate = (time.perf_counter() - t0) / (i + 1)
            common.log(f"scored {i + 1}/{len(archs)} archs ({rate:.2f} s each)")
    # More latency passes, each over every arch in a new random order: on a shared machine one median of
    # a few milliseconds of runs can land in a quiet or a busy moment; the median over passes cannot.
    latencies = [[row["latency_ms"]] for row in rows]
    if latency_passes > 1:
        files = []
        for i, arch in enumerate(archs):
            onnx = work / f"arch{i}.onnx"
            export_onnx(
                supernet.subnet(arch),
                onnx,
                evaluator.input_shape,
                batch_size=evaluator.profile.batch_size,
                exporter=cfg.evaluation.exporter,
            )
            files.append(onnx)
        rng = np.random.default_rng(0)
        for p in range(1, latency_passes):
            for i in rng.permutation(len(archs)):
                lat = evaluator.latency.measure(
                    files[i], evaluator.input_shape, batch_size=evaluator.profile.batch_size
                )
                latencies[i].append(lat.median_ms)
            common.log(f"latency pass {p + 1}/{latency_passes} done")
        for row, values in zip(rows, latencies):
            row["latency_ms"] = float(np.median(values))
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TABLE
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*names, *METRICS])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (_fmt(v) if k in METRICS else v) for k, v in row.items()})
    os.replace(tmp, path)
    meta = {
        **info,
        "description": "every canonical arch of the reduced digits supernet, scored by nas.CandidateEvaluator",
        "spec": spec.to_dict(),
        "supernet": sn_record,
        "profile": "local-cpu",
        "calib_samples": cfg.evaluation.calib_samples,
        "exporter": cfg.evaluation.exporter,
        "archs": len(rows),
        "flat_points": math.prod(len(p.values) for p in spec.search_space().values()),  # type: ignore[attr-defined]
        "columns": {
            "error": "top-1 validation error, %",
            "latency_ms": "ONNX Runtime on the local-cpu profile (1 thread, batch 1): median of the per-pass "
            f"medians of {latency_passes} passes over every arch, ms",
            "params": "parameters",
            "flops": "FLOPs per image",
        },
        "latency_passes": latency_passes,
        "scoring_seconds": {k: round(v, 1) for k, v in evaluator.seconds.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    common.write_json(data_dir / (path.stem + ".json"), meta)
    shutil.rmtree(work, ignore_errors=True)
    common.log(f"wrote {path} ({len(rows)} archs) in {time.perf_counter() - t0:.0f}s")
    return path


def _fmt(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else f"{value:.6g}"


def main() -> None:
    import _common as common

    p = common.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--data", type=Path, default=DATA_DIR, help="where the table is written (default: %(default)s)"
    )
    p.add_argument("--epochs", type=int, default=None, help="supernet epochs (default: the demo config's)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N archs (a check)")
    p.add_argument("--latency-passes", type=int, default=5, help="latency measurements per arch (default 5)")
    args = p.parse_args()
    common.apply_threads(args.threads)
    if args.quick:  # a check of the code: 2 epochs, 20 archs, written under OUT/tmp
        args.epochs, args.limit, args.data = 2, 20, args.out / "tmp" / "tabular-quick"
    path = build(
        args.out, args.data, epochs=args.epochs, limit=args.limit, latency_passes=args.latency_passes
    )
    if args.limit is None:
        problem = load(path)
        front = problem.true_front()
        print(json.dumps({"table": str(path), "archs": len(problem.rows), "front_points": len(front)}))


if __name__ == "__main__":
    main()
