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
from nas.run._export import export_onnx
from nas.spaces._mobilenet import Arch, SupernetSpec
from nas.spaces._mobilenet_net import Supernet
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
    rounds: int = 3,
    on_part: Callable[[int, int, str], None] | None = None,
) -> tuple[LatencyTable, list[dict[str, Any]]]:
    """Measures every part of ``spec`` on this machine with ``profile``, then calibrates on whole archs.

    Every model (part, empty model, calibration arch) is exported once, then timed in ``rounds`` passes over
    all of them, and the lowest median is kept: interference from other work only ever adds time, and
    spreading a model's passes over the whole measurement keeps a burst of it from marking one entry.

    Returns the table and the calibration archs with their measured and predicted latency.
    """
    supernet = Supernet(spec, seed=seed).eval()
    # Parts take tens of microseconds: many more runs than a whole model needs keep their medians stable.
    profile = dataclasses.replace(
        profile, timed_runs=max(profile.timed_runs, timed_runs), warmup_runs=max(profile.warmup_runs, 20)
    )
    latency = OnnxRuntimeLatency.from_profile(profile)
    parts = distinct_parts(spec, input_shape)
    sample = tuple(int(d) for d in input_shape)
    rng = np.random.default_rng(seed)
    archs = [spec.largest_arch(), spec.smallest_arch()] + [
        spec.random_arch(rng) for _ in range(max(0, calibration_archs - 2))
    ]
    models: list[tuple[str, nn.Module, tuple[int, ...]]] = [("empty", _Empty(), sample)]
    for key, how in parts.items():
        module, shape = build_part(supernet, how)
        models.append((key, module, tuple(shape)))
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
