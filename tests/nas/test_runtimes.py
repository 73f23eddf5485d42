"""The profile's runtime decides what is timed: the ONNX file (onnxruntime) or the module (torch)."""

from __future__ import annotations

import numpy as np
import torch

from hardware_profiles import HardwareProfile, load_profile
from nas import CandidateEvaluator, Supernet, SupernetSpec, load_dataset
from profilers import OnnxRuntimeLatency, TorchLatency


def evaluator(profile: HardwareProfile) -> CandidateEvaluator:
    spec = SupernetSpec.for_input(1, 8, 10, stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
    return CandidateEvaluator(
        supernet=Supernet(spec, seed=0).eval(),
        data=load_dataset("digits", seed=0),
        profile=profile,
        calib_samples=32,
    )


def test_a_torch_profile_times_the_pytorch_module(monkeypatch):
    seen = []
    real = TorchLatency.measure

    def spy(self, model, input_shape, *, batch_size=1):
        seen.append(model)
        return real(self, model, input_shape, batch_size=batch_size)

    monkeypatch.setattr(TorchLatency, "measure", spy)
    ev = evaluator(HardwareProfile(name="torch-cpu", runtime="torch"))
    assert isinstance(ev.latency, TorchLatency)
    metrics = ev.score(ev.spec.smallest_arch())
    assert metrics["latency_ms"] > 0 and len(seen) == 1 and isinstance(seen[0], torch.nn.Module)


def test_the_default_profile_times_the_onnx_file():
    ev = evaluator(load_profile("local-cpu"))
    assert isinstance(ev.latency, OnnxRuntimeLatency)
    assert ev.score(ev.spec.smallest_arch())["latency_ms"] > 0


def test_a_latency_the_quiet_gate_could_not_settle_is_flagged_in_the_metrics(monkeypatch):
    from profilers import GatedTiming, QuietGate

    def gate(*, quiet: bool, ns: int):
        def time(self, run, timed_runs, *, probe=None):
            samples = []
            for _ in range(timed_runs):
                run()
                samples.append(ns)
            rejected = 0 if quiet else timed_runs
            return GatedTiming(np.asarray(samples), quiet=quiet, rejected_runs=rejected, probe_floor_ns=1)

        return time

    ev = evaluator(HardwareProfile(name="gated", quiet_gate=True))
    monkeypatch.setattr(QuietGate, "time", gate(quiet=True, ns=2_000_000))
    metrics = ev.score(ev.spec.smallest_arch())
    assert metrics["latency_disturbed"] == 0.0 and metrics["latency_ms"] == 2.0
    monkeypatch.setattr(QuietGate, "time", gate(quiet=False, ns=1_000_000))
    metrics = ev.score(ev.spec.largest_arch())
    assert metrics["latency_disturbed"] == 1.0 and metrics["latency_ms"] == 1.0
    plain = evaluator(HardwareProfile(name="plain"))
    assert plain.score(plain.spec.smallest_arch())["latency_disturbed"] == 0.0
