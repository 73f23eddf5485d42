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

import dataclasses
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
from nas._export import export_onnx
from nas._space import Arch, SupernetSpec
from nas._supernet import Supernet
from profilers import LatencyTable, OnnxRuntimeLatency

__all__ = ["arch_parts", "distinct_parts", "measure_table", "predict_latency"]


def _out(size: int, stride: int) -> int:
    # every conv pads kernel // 2, so the output size depends on the stride only
    return (size - 1) // stride + 1


def arch_parts(spec: SupernetSpec, arch: Mapping[str, Any], input_shape: Sequence[int]) -> list[str]:
    """The part keys a model of ``arch`` is made of, in order (a key repeats for repeated parts).

    Example:
        >>> spec = SupernetSpec()
        >>> parts = arch_parts(spec, spec.smallest_arch(), (1, 8, 8))
        >>> parts[0], parts[-1]
        ('stem|c=1|out=8|s=1|hw=8x8', 'head|in=24|out=64|classes=10|hw=2x2')
    """
    c, h, w = (int(d) for d in input_shape)
    stem, stages, head = spec.channels(float(arch["width"]))
    h, w = _out(h, spec.stem_stride), _out(w, spec.stem_stride)
    parts = [f"stem|c={c}|out={stem}|s={spec.stem_stride}|hw={h}x{w}"]
    in_ch = stem
    for s in range(spec.num_stages):
        for b in range(int(arch["depth"][s])):
            stride = spec.stage_strides[s] if b == 0 else 1
            k, e = int(arch["kernel"][s][b]), int(arch["expand"][s][b])
            parts.append(f"block|in={in_ch}|out={stages[s]}|s={stride}|k={k}|e={e}|hw={h}x{w}")
            h, w = _out(h, stride), _out(w, stride)
            in_ch = stages[s]
    parts.append(f"head|in={in_ch}|out={head}|classes={spec.num_classes}|hw={h}x{w}")
    return parts


def distinct_parts(spec: SupernetSpec, input_shape: Sequence[int]) -> dict[str, tuple[Any, ...]]:
    """Every part any arch of ``spec`` can contain, with what is needed to build it.

    Values are ``("stem", width)``, ``("block", width, stage, index, kernel, expand)`` or ``("head", width,
    last stage)`` and the part's input shape ``(C, H, W)`` as the last element.
    """
    c, h0, w0 = (int(d) for d in input_shape)
    out: dict[str, tuple[Any, ...]] = {}
    for width in spec.width_choices:
        stem, stages, head = spec.channels(float(width))
        h, w = _out(h0, spec.stem_stride), _out(w0, spec.stem_stride)
        out[f"stem|c={c}|out={stem}|s={spec.stem_stride}|hw={h}x{w}"] = ("stem", width, (c, h0, w0))
        in_ch = stem
        for s in range(spec.num_stages):
            # The first block of a stage changes channels and stride; the others repeat one shape.
            for b in range(min(2, max(spec.depth_choices))):
                stride = spec.stage_strides[s] if b == 0 else 1
                block_in = in_ch if b == 0 else stages[s]
                for k in spec.kernel_choices:
                    for e in spec.expand_choices:
                        key = f"block|in={block_in}|out={stages[s]}|s={stride}|k={k}|e={e}|hw={h}x{w}"
                        out[key] = ("block", width, s, b, k, e, (block_in, h, w))
                h, w = _out(h, stride), _out(w, stride)
            in_ch = stages[s]
            # A stage of depth d ends at the same size whatever d is; any stage may be the last one.
        out[f"head|in={in_ch}|out={head}|classes={spec.num_classes}|hw={h}x{w}"] = (
            "head", width, spec.num_stages - 1, (in_ch, h, w),
        )  # fmt: skip
    return out


class _Head(nn.Module):
    def __init__(self, head: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.head, self.pool, self.classifier = head, nn.AdaptiveAvgPool2d(1), classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.head(x)), 1))


def build_part(supernet: Supernet, how: tuple[Any, ...]) -> tuple[nn.Module, tuple[int, int, int]]:
    """The static module of one part (as :func:`distinct_parts` describes it) and its input shape."""
    spec = supernet.spec
    kind, width = how[0], float(how[1])
    stem, stages, head = spec.channels(width)
    if kind == "stem":
        return supernet.stem.static(spec.in_channels, stem).eval(), how[-1]
    if kind == "block":
        _, _, s, b, k, e, shape = how
        return supernet._block(s, b).static(shape[0], stages[s], k, e).eval(), shape
    shape = how[-1]
    return _Head(supernet.head.static(shape[0], head), supernet.classifier.static(head)).eval(), shape


def measure_table(
    spec: SupernetSpec,
    profile: HardwareProfile,
    input_shape: Sequence[int],
    *,
    calibration_archs: int = 30,
    seed: int = 0,
    timed_runs: int = 300,
    on_part: Callable[[int, int, str], None] | None = None,
) -> tuple[LatencyTable, list[dict[str, Any]]]:
    """Measures every part of ``spec`` on this machine with ``profile``, then calibrates on whole archs.

    Returns the table and the calibration archs with their measured and predicted latency.
    """
    supernet = Supernet(spec, seed=seed).eval()
    # Parts take tens of microseconds: many more runs than a whole model needs keep their medians stable.
    profile = dataclasses.replace(
        profile, timed_runs=max(profile.timed_runs, timed_runs), warmup_runs=max(profile.warmup_runs, 20)
    )
    latency = OnnxRuntimeLatency.from_profile(profile)
    parts = distinct_parts(spec, input_shape)
    entries: dict[str, dict[str, Any]] = {}
    total = len(parts) + 1 + calibration_archs
    with tempfile.TemporaryDirectory(prefix="hwnas-lut-") as tmp:
        path = Path(tmp) / "part.onnx"

        def timed(model: nn.Module, shape: Sequence[int]) -> Any:
            export_onnx(model, path, shape, batch_size=profile.batch_size)
            return latency.measure(path, shape, batch_size=profile.batch_size)

        empty = timed(_Empty(), tuple(int(d) for d in input_shape))
        for i, (key, how) in enumerate(parts.items(), start=1):
            model, shape = build_part(supernet, how)
            r = timed(model, shape)
            entries[key] = {"latency_ms": r.median_ms, "iqr_ms": r.iqr_ms}
            if on_part is not None:
                on_part(i, total, key)
        table = LatencyTable(
            entries,
            empty_ms=empty.median_ms,
            meta={
                "profile": profile.name,
                "device": profile.device,
                "providers": list(profile.providers),
                "threads": [profile.intra_op_threads, profile.inter_op_threads],
                "batch_size": profile.batch_size,
                "input_shape": [int(d) for d in input_shape],
                "supernet": spec.to_dict(),
                "machine": machine_id(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "method": "measured-onnxruntime",
            },
        )
        rng = np.random.default_rng(seed)
        archs = [spec.largest_arch(), spec.smallest_arch()] + [
            spec.random_arch(rng) for _ in range(max(0, calibration_archs - 2))
        ]
        raws, counts, measured, records = [], [], [], []
        for j, arch in enumerate(archs, start=len(parts) + 2):
            r = timed(supernet.subnet(arch).eval(), tuple(int(d) for d in input_shape))
            keys = arch_parts(spec, arch, input_shape)
            raws.append(table.raw_sum(keys))
            counts.append(len(keys))
            measured.append(r.median_ms)
            records.append({"arch": arch, "measured_ms": r.median_ms})
            if on_part is not None:
                on_part(j, total, "calibration")
    table = table.calibrated(raws, counts, measured)
    for rec, arch in zip(records, archs):
        rec["predicted_ms"] = predict_latency(table, spec, arch, input_shape)
    return table, records


class _Empty(nn.Module):
    """The cheapest model a runtime can run: its latency is the fixed cost of one call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def machine_id() -> dict[str, Any]:
    """What identifies the machine a table was measured on (CPU model, cores, OS, host)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "system": platform.platform(),
        "host": platform.node(),
    }


def predict_latency(table: LatencyTable, spec: SupernetSpec, arch: Arch, input_shape: Sequence[int]) -> float:
    """Latency (ms) of ``arch`` predicted from ``table``."""
    return table.predict(arch_parts(spec, arch, input_shape))
