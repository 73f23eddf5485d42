"""INT8 as deployed: each front model statically quantized, checked, scored and timed beside its float twin.

With ``evaluation.quantize: int8`` (``--quantize int8``), every exported front model ``models/<id>.onnx`` gets
a twin ``models/<id>.int8.onnx``: ONNX Runtime's static quantization (QDQ, per-channel int8 weights, uint8
or int8 activations as :func:`activation_type` picks), calibrated on ``evaluation.int8_calibration`` training images of the run's data split (already
normalised as the model expects), checked by ``onnx.checker`` and carrying the float model's metadata plus
``hwnas.precision: int8`` (:func:`profilers.quantize_int8`). Its validation error is measured against the
float model's on the same images (:func:`profilers.compare_int8_accuracy`), and both are timed on the
run's profile, one after the other, so the two latencies are comparable. ``pareto.json`` gives each model

    "int8": {"onnx", "error", "float_error", "latency_ms", "float_latency_ms", "size_bytes",
             "float_size_bytes", "drop_pct", "flagged", "max_drop_pct", "agreement", ...}

``flagged`` is true when INT8 lost more than ``evaluation.int8_max_drop`` points of validation accuracy.
Latency is ``null`` where the profile's device is not on this machine (an INT8 model cannot be predicted
from a table measured in float). With several profiles, ``latency_ms@NAME`` gives each measured profile's.

With ``evaluation.quantize_candidates: true`` every candidate is also quantized and scored
(:class:`CandidateInt8`; at fidelity f on that share of the validation split): metrics ``error_int8`` and
``latency_ms_int8``, which may be objectives.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas._errors import RunError
from nas.run._config import SearchConfig
from nas.run._evaluator import CandidateEvaluator
from nas.run._export import export_onnx
from nas.run._front import ModelRecord
from nas.spaces import Arch
from profilers import compare_int8_accuracy, quantize_int8

__all__ = ["CandidateInt8", "activation_type", "calibration_images", "quantize_front", "split_arrays"]


def split_arrays(dataset: Any, *, limit: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, C, H, W)`` float32 and labels ``(N,)`` of a data split, as a model of the run gets them
    (normalised); ``limit`` takes a seeded sample of that many."""
    n = len(dataset)
    index = np.arange(n)
    if limit is not None and limit < n:
        index = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    images, labels = [], []
    for i in index:
        image, label = dataset[int(i)]
        images.append(torch.as_tensor(image, dtype=torch.float32).numpy())
        labels.append(int(label))
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)


def calibration_images(evaluator: CandidateEvaluator, config: SearchConfig) -> np.ndarray:
    """The training images INT8 activation ranges are calibrated on (seeded by the run's seed)."""
    return split_arrays(evaluator.data.train, limit=config.evaluation.int8_calibration, seed=config.seed)[0]


def activation_type(evaluator: CandidateEvaluator, config: SearchConfig) -> str:
    """``"uint8"`` or ``"int8"``: ``evaluation.int8_activations``, with ``auto`` resolved for the profile.

    ``auto`` is ``uint8`` when the profile runs ONNX Runtime's CPU provider on this machine and this machine is
    x86-64: there ONNX Runtime runs a QDQ graph with uint8 activations wholly in integer kernels, while with
    int8 activations it leaves the residual additions, and the convolutions next to them, in float between
    quantize and dequantize nodes, so the model is no faster than float (BENCHMARKS.md (k)). Elsewhere (a GPU,
    an ARM device, a profile measured on another machine) ``int8``, ONNX Runtime's default for QDQ.
    """
    setting = config.evaluation.int8_activations
    if setting != "auto":
        return setting
    profile = evaluator.profile
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    cpu_provider = tuple(profile.providers[:1]) == ("CPUExecutionProvider",)
    here = evaluator.device_here and profile.device == "cpu" and profile.runtime == "onnxruntime"
    return "uint8" if x86 and cpu_provider and here else "int8"


def quantize_front(
    models: list[ModelRecord], evaluator: CandidateEvaluator, run_dir: Path, config: SearchConfig
) -> list[ModelRecord]:
    """The front's models with their INT8 figures (``ModelRecord.int8``), the INT8 files written beside them."""
    calibration = calibration_images(evaluator, config)
    val_x, val_y = split_arrays(evaluator.data.val)
    activations = activation_type(evaluator, config)
    out = []
    for m in models:
        float_path = run_dir / m.onnx
        int8_path = float_path.with_name(f"{float_path.stem}.int8.onnx")
        try:
            q = quantize_int8(float_path, int8_path, calibration, activation_type=activations)
        except (RuntimeError, ValueError) as e:
            raise RunError(f"model {m.id} could not be quantized to int8: {e}") from None
        acc = compare_int8_accuracy(float_path, int8_path, val_x, val_y)
        figures: dict[str, Any] = {
            "onnx": os.path.relpath(int8_path, run_dir),
            "error": acc.int8_error_pct,
            "float_error": acc.float_error_pct,
            "drop_pct": acc.drop_pct,
            "flagged": acc.exceeds(config.evaluation.int8_max_drop),
            "max_drop_pct": config.evaluation.int8_max_drop,
            "agreement": acc.agreement,
            "size_bytes": q.int8_bytes,
            "float_size_bytes": q.float_bytes,
            "calibration_images": q.calibration_images,
            "activations": activations,
            "profile": evaluator.profile.name,
        }
        figures |= _timed(evaluator, float_path, int8_path)
        for label, other in evaluator.devices:
            if other is not None:
                timed = _timed(other, float_path, int8_path)
                figures |= {f"{k}@{label}": v for k, v in timed.items()}
        out.append(dataclasses.replace(m, int8=figures))
    return out


def _timed(evaluator: CandidateEvaluator, float_path: Path, int8_path: Path) -> dict[str, float | None]:
    """Latency of the float and INT8 files on the evaluator's profile, measured one after the other
    (``None`` where the device is not here or the profile does not run ONNX files)."""
    profile = evaluator.profile
    if not evaluator.device_here or profile.runtime != "onnxruntime":
        return {"latency_ms": None, "float_latency_ms": None}
    shape = evaluator.input_shape
    with evaluator.measure_lock():
        f = evaluator.latency.measure(float_path, shape, batch_size=profile.batch_size)
        i = evaluator.latency.measure(int8_path, shape, batch_size=profile.batch_size)
    return {"latency_ms": i.median_ms, "float_latency_ms": f.median_ms}


class CandidateInt8:
    """Scores a candidate as INT8 (``evaluation.quantize_candidates``): ``error_int8`` on the validation share
    the fidelity gives, and ``latency_ms_int8`` on the profile (where its device is here)."""

    def __init__(self, evaluator: CandidateEvaluator, config: SearchConfig) -> None:
        self.evaluator = evaluator
        self.config = config
        self._calibration: np.ndarray | None = None
        self._val: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, arch: Arch, model: torch.nn.Module, fidelity: float) -> dict[str, float]:
        ev = self.evaluator
        if self._calibration is None:
            self._calibration = calibration_images(ev, self.config)
            self._val = split_arrays(ev.data.val)
        assert self._val is not None
        val_x, val_y = self._val
        step = max(1, round(1 / fidelity))  # an evenly spaced share of the split at low fidelity
        with tempfile.TemporaryDirectory(prefix="hwnas-int8-", dir=ev._work_dir) as tmp:
            float_path = Path(tmp) / "float.onnx"
            with ev.work_lock():
                export_onnx(model.cpu().eval(), float_path, ev.data.input_shape, exporter=ev.exporter)
                q = quantize_int8(
                    float_path, Path(tmp) / "int8.onnx", self._calibration, activation_type=activation_type(ev, self.config)
                )
                acc = compare_int8_accuracy(float_path, q.int8_path, val_x[::step], val_y[::step])
            metrics = {"error_int8": acc.int8_error_pct, "int8_drop_pct": acc.drop_pct}
            timed = _timed(ev, float_path, q.int8_path)
            if timed["latency_ms"] is not None:
                metrics["latency_ms_int8"] = float(timed["latency_ms"])
        return metrics
