"""INT8 as deployed: each front model quantized, checked, scored and timed beside its float twin."""

from __future__ import annotations

import json
import platform
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from nas import Experiment, load_config
from nas.run._config import ConfigError
from nas.run._summary import summary_lines

TINY = {
    "seed": 0,
    "threads": 1,
    "supernet.epochs": 1,
    "supernet.stage_channels": [8, 12],
    "supernet.stage_strides": [1, 2],
    "search.trials": 5,
    "search.population": 4,
    "evaluation.calib_samples": 32,
    "evaluation.int8_calibration": 64,
    "tracking.enabled": False,
}


def _profile(folder):
    path = folder / "fastcpu.yaml"
    path.write_text("name: fastcpu\ndevice: cpu\ntimed_runs: 30\nwarmup_runs: 2\n")
    return str(path)


def test_int8_settings_are_checked():
    assert load_config().evaluation.quantize == "none"
    with pytest.raises(ConfigError, match="quantize_candidates needs evaluation.quantize: int8"):
        load_config(overrides={"evaluation.quantize_candidates": True})
    with pytest.raises(ConfigError, match="'error_int8' needs evaluation.quantize: int8"):
        load_config(overrides={"search.objectives": ["error_int8", "latency_ms"]})
    with pytest.raises(ConfigError, match="evaluation.quantize"):
        load_config(overrides={"evaluation.quantize": "int4"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    cfg = load_config(
        overrides={
            **TINY,
            "name": "q",
            "out": str(folder),
            "profile": _profile(folder),
            "evaluation.quantize": "int8",
            "evaluation.quantize_candidates": True,
            # no drop allowed: every model that lost any accuracy is flagged
            "evaluation.int8_max_drop": 0.0,
            "search.objectives": ["error", "latency_ms", "error_int8"],
        }
    )
    return Experiment(cfg).run()


@pytest.mark.slow
def test_each_front_model_has_an_int8_twin_with_the_same_metadata(run):
    pareto = json.loads((run.run_dir / "pareto.json").read_text())
    assert pareto["models"]
    for m in pareto["models"]:
        q = m["int8"]
        assert q["onnx"] == f"models/{m['id']}.int8.onnx"
        float_model = onnx.load(str(run.run_dir / m["onnx"]))
        int8_model = onnx.load(str(run.run_dir / q["onnx"]))
        onnx.checker.check_model(int8_model)
        float_meta = {p.key: p.value for p in float_model.metadata_props}
        int8_meta = {p.key: p.value for p in int8_model.metadata_props}
        assert int8_meta["hwnas.precision"] == "int8"
        assert {k: int8_meta[k] for k in float_meta} == float_meta
        assert json.loads(int8_meta["hwnas.arch"]) == m["arch"]
        assert any(n.op_type == "QuantizeLinear" for n in int8_model.graph.node)
        # activations as picked for the profile: the zero points of the activations' QuantizeLinear nodes
        expected = "uint8" if platform.machine().lower() in ("x86_64", "amd64") else "int8"
        assert q["activations"] == expected
        inits = {t.name: t for t in int8_model.graph.initializer}
        first = next(n for n in int8_model.graph.node if n.op_type == "QuantizeLinear")
        zero_point = onnx.helper.tensor_dtype_to_np_dtype(inits[first.input[2]].data_type)
        assert zero_point == np.dtype(expected)
        assert q["size_bytes"] == (run.run_dir / q["onnx"]).stat().st_size < q["float_size_bytes"]
        assert q["latency_ms"] > 0 and q["float_latency_ms"] > 0
        assert q["drop_pct"] == pytest.approx(q["error"] - q["float_error"])
        assert q["flagged"] is (q["drop_pct"] > 0.0)
        # the float model's own validation error, measured through ONNX Runtime
        assert q["float_error"] == pytest.approx(m["validation_error"], abs=1e-6)


@pytest.mark.slow
def test_candidates_are_scored_as_int8_too(run):
    pareto = json.loads((run.run_dir / "pareto.json").read_text())
    assert [o["name"] for o in pareto["objectives"]] == ["error", "latency_ms", "error_int8"]
    n_val = 360  # digits: 1797 images, 20 % for validation
    for m in pareto["models"]:
        # the candidate's INT8 error (scored while searching) is the exported INT8 model's, within an image
        assert m["metrics"]["error_int8"] == pytest.approx(m["int8"]["error"], abs=100 / n_val + 1e-9)
        assert m["metrics"]["latency_ms_int8"] > 0


@pytest.mark.slow
def test_flagged_models_are_named_in_the_summary_and_the_report(run):
    pareto = json.loads((run.run_dir / "pareto.json").read_text())
    flagged = [m["id"] for m in pareto["models"] if m["int8"]["flagged"]]
    lines = summary_lines(run.run_dir)
    int8_lines = [line for line in lines if " int8: " in line]
    assert len(int8_lines) == len(pareto["models"])
    assert sum("FLAGGED" in line for line in int8_lines) == len(flagged)
    md = (run.run_dir / "report.md").read_text()
    assert "INT8 models" in md
    if flagged:
        assert f"(models {', '.join(map(str, flagged))})" in md
    else:
        assert "none was" in md


def test_split_arrays_gives_what_the_model_is_fed():
    from nas.data import load_dataset
    from nas.run._int8 import split_arrays

    data = load_dataset("digits", seed=0)
    x, y = split_arrays(data.val, limit=10, seed=1)
    assert x.shape == (10, *data.input_shape) and x.dtype == np.float32
    assert y.dtype == np.int64
    again, _ = split_arrays(data.val, limit=10, seed=1)
    assert np.array_equal(x, again)
    first, label = data.val[
        int(np.sort(np.random.default_rng(1).choice(len(data.val), 10, replace=False))[0])
    ]
    assert np.allclose(x[0], first.numpy()) and y[0] == label


@pytest.mark.parametrize(
    "setting, machine, providers, here, expected",
    [
        ("auto", "x86_64", ["CPUExecutionProvider"], True, "uint8"),
        ("auto", "AMD64", ["CPUExecutionProvider"], True, "uint8"),
        ("auto", "aarch64", ["CPUExecutionProvider"], True, "int8"),  # an ARM CPU
        ("auto", "x86_64", ["CPUExecutionProvider"], False, "int8"),  # measured elsewhere (a table)
        ("auto", "x86_64", ["CUDAExecutionProvider", "CPUExecutionProvider"], True, "int8"),
        ("int8", "x86_64", ["CPUExecutionProvider"], True, "int8"),
        ("uint8", "aarch64", ["CPUExecutionProvider"], True, "uint8"),
    ],
)
def test_int8_activations_fit_the_profile(monkeypatch, setting, machine, providers, here, expected):
    from nas.run._int8 import activation_type

    monkeypatch.setattr(platform, "machine", lambda: machine)
    device = "cuda" if providers[0].startswith("CUDA") else "cpu"
    evaluator = SimpleNamespace(
        profile=SimpleNamespace(providers=tuple(providers), device=device, runtime="onnxruntime"), device_here=here
    )
    config = load_config(overrides={"evaluation.int8_activations": setting})
    assert activation_type(evaluator, config) == expected
