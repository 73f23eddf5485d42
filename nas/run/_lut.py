"""Lookup tables of the supernet's parts: what ``hwnas profile-device`` measures and the search predicts from.

An architecture is a stem, a sequence of inverted-residual blocks and a head. Each part is named by a
canonical key that holds everything its latency depends on (channels, stride, kernel, expand ratio and the
spatial size it runs at), so the table is keyed like Once-for-All's latency tables and a whole arch is
predicted from its config alone, without building or running it:

    stem|c=1|out=16|s=1|hw=8x8
    block|in=16|out=24|s=2|k=5|e=4|hw=8x8
    head|in=48|out=128|classes=10|hw=4x4
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hardware_profiles import HardwareProfile
from nas.run._export import export_onnx
from nas.spaces._protocol import Arch, SearchSpace
from nas.spaces._registry import space_ref
from profilers import LatencyTable, OnnxRuntimeLatency, cpu_model_name

__all__ = ["arch_parts", "measure_table", "predict_latency"]


def arch_parts(space: SearchSpace, arch: Mapping[str, Any], input_shape: Sequence[int]) -> list[str]:
    """The lookup-table part keys of ``arch`` (see :meth:`SearchSpace.arch_parts`)."""
    return space.arch_parts(arch, input_shape)



def measure_table(
    spec: SearchSpace,
    profile: HardwareProfile,
    input_shape: Sequence[int],
    *,
    calibration_archs: int = 30,
    seed: int = 0,
    timed_runs: int = 300,
    rounds: int = 3,
    on_part: Callable[[int, int, str], None] | None = None,
) -> tuple[LatencyTable, list[dict[str, Any]]]:
    """Measures every part of ``spec`` on this machine with ``profile``, then calibrates on whole archs.

    Every model (part, empty model, calibration arch) is exported once, then timed in ``rounds`` passes over
    all of them, and the lowest median is kept: interference from other work only ever adds time, and
    spreading a model's passes over the whole measurement keeps a burst of it from marking one entry.

    Returns the table and the calibration archs with their measured and predicted latency.
    """
    if not spec.supports_lut:
        raise ValueError(f"space {space_ref(spec)!r} defines no lookup-table parts (arch_parts, distinct_parts, build_part)")
    supernet = spec.build_supernet(seed=seed).eval()
    # Parts take tens of microseconds: many more runs than a whole model needs keep their medians stable.
    profile = profile.replace(
        timed_runs=max(profile.timed_runs, timed_runs), warmup_runs=max(profile.warmup_runs, 20)
    )
    latency = OnnxRuntimeLatency.from_profile(profile)
    parts = spec.distinct_parts(input_shape)
    sample = tuple(int(d) for d in input_shape)
    rng = np.random.default_rng(seed)
    archs = [spec.largest_arch(), spec.smallest_arch()] + [
        spec.random_arch(rng) for _ in range(max(0, calibration_archs - 2))
    ]
    models: list[tuple[str, nn.Module, tuple[int, ...]]] = [("empty", _Empty(), sample)]
    for key, how in parts.items():
        part, part_shape = spec.build_part(supernet, how)
        models.append((key, part, tuple(part_shape)))
    models += [(f"arch:{i}", supernet.subnet(arch).eval(), sample) for i, arch in enumerate(archs)]
    total = len(models) * (1 + rounds)
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hwnas-lut-") as tmp:
        files = []
        for i, (key, module, shape) in enumerate(models, start=1):
            path = Path(tmp) / f"{i}.onnx"
            export_onnx(module, path, shape, batch_size=profile.batch_size)
            files.append((key, path, shape))
            if on_part is not None:
                on_part(i, total, f"export {key}")
        done = len(models)
        for _ in range(rounds):
            for key, path, shape in files:
                r = latency.measure(path, shape, batch_size=profile.batch_size)
                if key not in best or r.median_ms < best[key][0]:
                    best[key] = (r.median_ms, r.iqr_ms)
                done += 1
                if on_part is not None:
                    on_part(done, total, key)
    table = LatencyTable(
        {key: {"latency_ms": best[key][0], "iqr_ms": best[key][1]} for key in parts},
        empty_ms=best["empty"][0],
        meta={
            "profile": profile.name,
            "device": profile.device,
            "providers": list(profile.providers),
            "threads": [profile.intra_op_threads, profile.inter_op_threads],
            "batch_size": profile.batch_size,
            "input_shape": list(sample),
            "space": space_ref(spec),
            "supernet": spec.to_dict(),
            "machine": machine_id(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "method": "measured-onnxruntime",
            "timed_runs": profile.timed_runs,
            "rounds": rounds,
        },
    )
    measured = [best[f"arch:{i}"][0] for i in range(len(archs))]
    keys = [arch_parts(spec, arch, sample) for arch in archs]
    table = table.calibrated([table.raw_sum(k) for k in keys], [len(k) for k in keys], measured)
    records = [
        {"arch": arch, "measured_ms": m, "predicted_ms": predict_latency(table, spec, arch, sample)}
        for arch, m in zip(archs, measured)
    ]
    return table, records


class _Empty(nn.Module):
    """The cheapest model a runtime can run: its latency is the fixed cost of one call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def machine_id() -> dict[str, Any]:
    """What identifies the machine a table was measured on (CPU model, cores, OS, host)."""
    cpu = cpu_model_name() or platform.machine()
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "system": platform.platform(),
        "host": platform.node(),
    }


def predict_latency(table: LatencyTable, spec: SearchSpace, arch: Arch, input_shape: Sequence[int]) -> float:
    """Latency (ms) of ``arch`` predicted from ``table``."""
    return table.predict(arch_parts(spec, arch, input_shape))
