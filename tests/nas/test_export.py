"""Tests of nas.run._export: ONNX export, metadata, verification against PyTorch."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from nas.run._export import ARCH_METADATA_KEY, VerifyResult, export_onnx, read_metadata, verify_onnx
from profilers import OnnxRuntimeLatency, count_params_and_flops

SHAPE = (1, 8, 8)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2),
        nn.BatchNorm2d(16),
        nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(16, 10),
    )
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics, as after training
        for _ in range(3):
            model(torch.randn(16, *SHAPE) * 2 + 0.5)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    model = small_cnn()
    arch = {"width": 1.0, "depth": [1, 1]}
    path = export_onnx(
        model, tmp_path_factory.mktemp("export") / "models" / "m.onnx", SHAPE,
        metadata={ARCH_METADATA_KEY: json.dumps(arch), "hwnas.dataset": "digits"},
    )  # fmt: skip
    return model, path


def test_export_writes_a_valid_model_with_named_io(exported: tuple[nn.Module, Path]) -> None:
    _, path = exported
    assert path.is_file() and path.suffix == ".onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 17
    assert [p.name for p in path.parent.iterdir()] == ["m.onnx"]  # no temporary files left behind


def test_metadata_round_trip(exported: tuple[nn.Module, Path]) -> None:
    _, path = exported
    metadata = read_metadata(path)
    assert json.loads(metadata[ARCH_METADATA_KEY]) == {"width": 1.0, "depth": [1, 1]}
    assert metadata["hwnas.dataset"] == "digits"
    assert json.loads(metadata["hwnas.input_shape"]) == list(SHAPE)


def test_exported_model_matches_pytorch(exported: tuple[nn.Module, Path]) -> None:
    model, path = exported
    result = verify_onnx(model, path, SHAPE)
    assert isinstance(result, VerifyResult)
    assert result.checker_ok and result.checker_message == ""
    assert result.max_abs_diff < 1e-4
    assert result.ort_output_shape == (2, 10)
    assert result.ok()


def test_verify_detects_a_different_model(exported: tuple[nn.Module, Path]) -> None:
    _, path = exported
    result = verify_onnx(small_cnn(seed=1), path, SHAPE, batch_size=3)
    assert result.max_abs_diff > 1e-3
    assert not result.ok()
    assert result.ort_output_shape == (3, 10)


def test_export_restores_training_mode(tmp_path: Path) -> None:
    model = small_cnn()
    assert model.training
    export_onnx(model, tmp_path / "m.onnx", SHAPE)
    assert model.training
    model.eval()
    export_onnx(model, tmp_path / "m.onnx", SHAPE)
    assert not model.training


def test_dynamic_batch_runs_at_any_batch_size(exported: tuple[nn.Module, Path]) -> None:
    _, path = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        (out,) = session.run(None, {"input": np.zeros((batch, *SHAPE), dtype=np.float32)})
        assert out.shape == (batch, 10)


def test_fixed_batch(tmp_path: Path) -> None:
    model = small_cnn()
    path = export_onnx(model, tmp_path / "fixed.onnx", SHAPE, batch_size=4, dynamic_batch=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, *SHAPE]
    result = verify_onnx(model, path, SHAPE)  # the file's fixed batch wins over the default of 2
    assert result.ort_output_shape == (4, 10) and result.max_abs_diff < 1e-4


def test_export_emits_no_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_onnx(small_cnn(), tmp_path / "quiet.onnx", SHAPE)


def test_export_does_not_change_global_warning_filters(tmp_path: Path) -> None:
    before = list(warnings.filters)
    export_onnx(small_cnn(), tmp_path / "m.onnx", SHAPE)
    assert list(warnings.filters) == before


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"exporter": "tflite"}, "exporter must be one of"),
        ({"exporter": "dynamo", "opset": 17}, "opset >= 18"),
        ({"metadata": {"hwnas.arch": {"width": 1}}}, "json.dumps"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        export_onnx(small_cnn(), tmp_path / "bad.onnx", SHAPE, **kwargs)
    assert not (tmp_path / "bad.onnx").exists()


def test_bad_input_shape_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        export_onnx(small_cnn(), tmp_path / "bad.onnx", (1, 0, 8))


def test_flops_of_an_exported_model_match_hand_computation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    path = export_onnx(model, tmp_path / "plain.onnx", SHAPE)
    cost = count_params_and_flops(path, SHAPE, batch_size=2)
    # conv: 4*8*8 outputs x 1*3*3 = 2304; linear: 256 * 10 = 2560; per sample 4864, batch 2
    assert cost.macs == 2 * (2304 + 2560)
    assert cost.params == sum(p.numel() for p in model.parameters()) == 40 + 2570


def test_export_then_measure(exported: tuple[nn.Module, Path]) -> None:
    _, path = exported
    result = OnnxRuntimeLatency(warmup_runs=2, timed_runs=30).measure(path, SHAPE)
    assert result.min_ms <= result.median_ms <= result.max_ms


@pytest.mark.slow
def test_dynamo_exporter(tmp_path: Path) -> None:
    model = small_cnn()
    path = export_onnx(model, tmp_path / "dynamo.onnx", SHAPE, exporter="dynamo", metadata={"k": "v"})
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert read_metadata(path)["k"] == "v"
    result = verify_onnx(model, path, SHAPE, batch_size=3)
    assert result.checker_ok and result.max_abs_diff < 1e-4 and result.ort_output_shape == (3, 10)
    assert model.training
