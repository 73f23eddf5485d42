"""Latency lookup tables: parts of an arch, measuring a table, predicting from it, using it in a search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from hardware_profiles import load_profile
from nas.run._lut import arch_parts, measure_table, predict_latency
from nas.spaces._mobilenet import SupernetSpec
from nas.spaces._mobilenet_net import Supernet
from profilers._lut import LatencyTable, LutError, fit_linear

TINY = {
    "stage_channels": (8, 12), "stage_strides": (1, 2), "depth_choices": (1, 2), "kernel_choices": (3, 5),
    "expand_choices": (2, 3), "width_choices": (0.5, 1.0), "head_channels": 16,
}  # fmt: skip


@pytest.fixture(scope="module")
def spec() -> SupernetSpec:
    return SupernetSpec.for_input(1, 8, 10, **TINY)


def test_every_arch_is_made_of_known_parts_with_the_shapes_it_really_runs_at():
    spec = SupernetSpec()  # the demo space: 1.35e12 archs, 186 parts
    parts = spec.distinct_parts((1, 8, 8))
    supernet = Supernet(spec, seed=0).eval()
    rng = np.random.default_rng(0)
    for _ in range(25):
        arch = spec.random_arch(rng)
        keys = arch_parts(spec, arch, (1, 8, 8))
        assert all(k in parts for k in keys)
        net = supernet.subnet(arch)
        seen: list[tuple[int, ...]] = []
        hooks = [
            b.register_forward_hook(lambda m, i, o, seen=seen: seen.append(tuple(i[0].shape[1:])))
            for b in net.blocks
        ]
        net(torch.zeros(1, 1, 8, 8))
        for h in hooks:
            h.remove()
        blocks = [k for k in keys if k.startswith("block")]
        assert len(blocks) == len(seen) == sum(arch["depth"])
        for key, shape in zip(blocks, seen):
            assert parts[key][-1] == shape  # the table measures each block at the input it meets


def test_a_built_part_is_the_block_the_subnet_holds(spec):
    supernet = Supernet(spec, seed=0).eval()
    arch = spec.largest_arch()
    net = supernet.subnet(arch)
    key = arch_parts(spec, arch, (1, 8, 8))[2]  # the second block
    part, shape = spec.build_part(supernet, spec.distinct_parts((1, 8, 8))[key])
    x = torch.randn(2, *shape)
    torch.testing.assert_close(part(x), net.blocks[1](x))


def test_predictions_are_exact_when_latency_is_additive(spec, monkeypatch):
    """With a fake runtime whose latency is a sum of per-operator costs, the table predicts exactly."""
    import onnx

    from profilers import OnnxRuntimeLatency

    class Result:
        def __init__(self, ms):
            self.median_ms, self.iqr_ms = ms, 0.0

    def fake_measure(self, path, input_shape, *, batch_size=1):
        nodes = onnx.load(str(path)).graph.node
        # Constant and Identity nodes cost nothing at run time (ONNX Runtime folds them away).
        cost = sum(
            0.004 if n.op_type == "Conv" else 0.001
            for n in nodes
            if n.op_type not in ("Constant", "Identity")
        )
        return Result(0.01 + cost)  # a fixed cost per call, plus the operators

    monkeypatch.setattr(OnnxRuntimeLatency, "measure", fake_measure)
    table, records = measure_table(spec, load_profile("local-cpu"), (1, 8, 8), calibration_archs=6, seed=1)
    assert len(table.entries) == len(spec.distinct_parts((1, 8, 8)))
    assert 0.01 < table.empty_ms < min(e["latency_ms"] for e in table.entries.values())
    for rec in records:
        assert rec["predicted_ms"] == pytest.approx(rec["measured_ms"], rel=1e-6)
    assert table.meta["calibration"]["within_10pct"] == 1.0


def test_table_files_round_trip_and_bad_files_are_named(tmp_path, spec):
    entries = {k: {"latency_ms": 0.01 + i * 1e-3} for i, k in enumerate(spec.distinct_parts((1, 8, 8)))}
    table = LatencyTable(entries, empty_ms=0.005, meta={"input_shape": [1, 8, 8]}).calibrated(
        [1, 2, 3], [4, 6, 8], [1.5, 2.6, 3.4]
    )
    path = table.save(tmp_path / "t.json")
    again = LatencyTable.load(path)
    arch = spec.largest_arch()
    assert predict_latency(again, spec, arch, (1, 8, 8)) == pytest.approx(
        predict_latency(table, spec, arch, (1, 8, 8))
    )
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LutError, match="not readable JSON"):
        LatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(LutError, match="not an hwnas lookup table"):
        LatencyTable.load(tmp_path / "other.json")
    with pytest.raises(LutError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json")
    with pytest.raises(LutError, match=r"no entry for 1 part.*input shape \[1, 8, 8\]"):
        table.predict([*arch_parts(spec, arch, (1, 8, 8)), "block|in=999"])


def test_fit_linear_recovers_a_known_line():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, size=(30, 2))
    y = 0.7 * x[:, 0] + 0.02 * x[:, 1] + 0.05
    w = fit_linear(x.tolist(), y.tolist())
    assert w == pytest.approx((0.7, 0.02, 0.05), abs=1e-6)


TINY_CONFIG = """
seed: 0
supernet:
  epochs: 1
  stage_channels: [8, 12]
  stage_strides: [1, 2]
  depth_choices: [1, 2]
  kernel_choices: [3, 5]
  expand_choices: [2, 3]
  width_choices: [0.5, 1.0]
search:
  trials: 6
  population: 4
evaluation:
  calib_samples: 32
  latency: predict
tracking:
  enabled: false
"""


@pytest.mark.slow
def test_profile_device_then_a_search_that_predicts_from_the_table(tmp_path):
    from nas.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY_CONFIG)
    out = tmp_path / "lut" / "mycpu.json"
    assert main(["profile-device", "--config", str(cfg), "--out", str(out), "--calibration", "4"]) == 0
    profile_file = out.with_name("mycpu.profile.yaml")
    profile = yaml.safe_load(profile_file.read_text())
    assert profile["lut"] == str(out.resolve()) and profile["name"] == "mycpu"
    table = LatencyTable.load(out)
    assert table.meta["calibration"]["models"] == 4

    assert (
        main(
            [
                "search",
                "--config",
                str(cfg),
                "--out",
                str(tmp_path),
                "--name",
                "s",
                "--profile",
                str(profile_file),
            ]
        )
        == 0
    )
    spec = SupernetSpec.from_dict(json.loads((tmp_path / "s" / "space.json").read_text())["supernet"])
    from search import SQLiteStorage

    trials = SQLiteStorage(tmp_path / "s" / "study.db").trials()
    assert trials and all(t.metrics["latency_predicted"] == 1.0 for t in trials)
    for t in trials:
        assert t.metrics["latency_ms"] == pytest.approx(
            table.predict(arch_parts(spec, t.attrs["arch"], (1, 8, 8)))
        )


def test_profile_device_usage_errors(tmp_path):
    from nas.cli import main

    assert main(["profile-device", "--out", str(tmp_path / "t.txt")]) == 2
    assert main(["profile-device", "--out", str(tmp_path / "t.json"), "--profile", "nope"]) == 2
    assert main(["profile-device"]) == 2
