"""INT8 static quantization of ONNX models exported from PyTorch: smaller, QDQ, metadata kept, and predicting
as the float model does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from profilers import (
    PRECISION_METADATA_KEY,
    QUANTIZATION_METADATA_KEY,
    Int8Accuracy,
    OnnxRuntimeLatency,
    QuantizedModel,
    compare_int8_accuracy,
    quantize_int8,
)

torch = pytest.importorskip("torch")

SHAPE = (3, 16, 16)
CLASSES = 10
ARCH_JSON = json.dumps({"widths": [16, 32], "kernel": 3})


def _tiny_cnn():  # -> torch.nn.Module
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, CLASSES),
    )
    # Batch-norm statistics that are not the identity, as after training.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _export(path: Path, *, dynamo: bool) -> Path:
    net = _tiny_cnn()
    example = torch.zeros((2, *SHAPE))
    if dynamo:
        program = torch.onnx.export(
            net,
            (example,),
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            dynamo=True,
            verbose=False,
        )
        model = program.model_proto
    else:
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        model = onnx.load(str(path))
    for key, value in (("hwnas.arch", ARCH_JSON), ("hwnas.input_shape", json.dumps(list(SHAPE)))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, str(path))
    return path


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE), dtype=np.float32)


@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def quantized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> QuantizedModel:
    folder = tmp_path_factory.mktemp(f"int8-{request.param}")
    float_path = _export(folder / "net.onnx", dynamo=request.param == "dynamo")
    return quantize_int8(float_path, folder / "out" / "net.int8.onnx", _images(64, seed=1))


def _nodes(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_int8_model_is_smaller_and_checked(quantized: QuantizedModel) -> None:
    assert quantized.int8_path.is_file()
    assert quantized.int8_bytes == quantized.int8_path.stat().st_size
    assert quantized.float_bytes == quantized.float_path.stat().st_size
    assert quantized.int8_bytes < 0.5 * quantized.float_bytes
    onnx.checker.check_model(str(quantized.int8_path), full_check=True)


def test_int8_model_is_qdq_with_per_channel_int8_weights(quantized: QuantizedModel) -> None:
    model = onnx.load(str(quantized.int8_path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 3
    assert ops.count("DequantizeLinear") >= 3
    assert quantized.quantized_nodes == ops.count("QuantizeLinear") + ops.count("DequantizeLinear")
    assert {"Conv"} <= set(quantized.op_types)
    # Batch norm folded into the convolutions: none left to run in float.
    assert "BatchNormalization" not in ops
    inits = {i.name: i for i in model.graph.initializer}
    int8_weights = [
        inits[n.input[0]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
        and len(inits[n.input[0]].dims) == 4
    ]
    assert len(int8_weights) == 3  # the three convolutions' weights, stored as int8
    per_channel_scales = [
        inits[n.input[1]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and len(inits[n.input[0]].dims) == 4
    ]
    assert sorted(list(s.dims) for s in per_channel_scales) == [[16], [32], [64]]  # one scale per channel


def test_int8_model_keeps_metadata_and_says_it_is_int8(quantized: QuantizedModel) -> None:
    props = {p.key: p.value for p in onnx.load(str(quantized.int8_path)).metadata_props}
    assert props["hwnas.arch"] == ARCH_JSON
    assert props["hwnas.input_shape"] == json.dumps(list(SHAPE))
    assert props[PRECISION_METADATA_KEY] == "int8"
    record = json.loads(props[QUANTIZATION_METADATA_KEY])
    assert record["format"] == "QDQ"
    assert record["per_channel"] is True
    assert record["calibration_images"] == 64
    assert props == dict(quantized.metadata)


def test_int8_model_predicts_as_the_float_model(quantized: QuantizedModel) -> None:
    images = _images(128, seed=2)
    import onnxruntime

    logits = {
        name: onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"input": images}
        )[0]
        for name, path in (("float", quantized.float_path), ("int8", quantized.int8_path))
    }
    with torch.no_grad():
        reference = _tiny_cnn()(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(logits["float"], reference, atol=1e-4)
    assert not np.allclose(logits["int8"], logits["float"], atol=1e-6)  # it really computes in int8
    agreement = np.mean(logits["int8"].argmax(1) == logits["float"].argmax(1))
    assert agreement >= 0.85
    # Labels = the float model's own predictions: float error 0 %, int8 error = disagreement.
    accuracy = compare_int8_accuracy(
        quantized.float_path, quantized.int8_path, images, logits["float"].argmax(1), batch_size=50
    )
    assert accuracy == Int8Accuracy(
        images=128,
        float_error_pct=0.0,
        int8_error_pct=pytest.approx((1 - agreement) * 100),
        agreement=pytest.approx(agreement),
    )
    assert accuracy.drop_pct == pytest.approx((1 - agreement) * 100)
    assert not accuracy.exceeds(15.0)


def test_int8_model_runs_in_the_latency_profiler(quantized: QuantizedModel) -> None:
    result = OnnxRuntimeLatency(warmup_runs=1, timed_runs=30).measure(quantized.int8_path, SHAPE)
    assert result.timed_runs == 30
    assert result.median_ms > 0


def test_per_tensor_without_preprocessing_is_done_and_recorded(tmp_path: Path) -> None:
    float_path = _export(tmp_path / "net.onnx", dynamo=False)
    result = quantize_int8(
        float_path,
        tmp_path / "net.int8.onnx",
        _images(8, seed=3),
        preprocess=False,
        per_channel=False,
        metadata={"hwnas.note": "test"},
    )
    assert not result.preprocessed
    assert not result.per_channel
    model = onnx.load(str(result.int8_path))
    inits = {i.name: i for i in model.graph.initializer}
    weight_scales = [
        inits[n.input[1]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and len(inits[n.input[0]].dims) == 4
    ]
    assert len(weight_scales) == 3
    assert all(list(s.dims) == [] for s in weight_scales)  # one scale per tensor
    assert result.metadata["hwnas.note"] == "test"
    record = json.loads(result.metadata[QUANTIZATION_METADATA_KEY])
    assert record["preprocessed"] is False
    assert record["per_channel"] is False


# -- errors ----------------------------------------------------------------------------------------------


def test_missing_model_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        quantize_int8(tmp_path / "nowhere.onnx", tmp_path / "x.onnx", _images(4, seed=0))


def test_images_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    float_path = _export(tmp_path / "net.onnx", dynamo=False)
    with pytest.raises(ValueError, match=r"sample shape \(3, 8, 8\).*takes \(3, 16, 16\)"):
        quantize_int8(float_path, tmp_path / "x.onnx", np.zeros((4, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="float array"):
        quantize_int8(float_path, tmp_path / "x.onnx", np.zeros((4, *SHAPE), np.int64))
    with pytest.raises(ValueError, match="N >= 1"):
        quantize_int8(float_path, tmp_path / "x.onnx", np.zeros((0, *SHAPE), np.float32))
    assert not (tmp_path / "x.onnx").exists()


def test_bad_options_and_overwriting_the_float_model_are_refused(tmp_path: Path) -> None:
    float_path = _export(tmp_path / "net.onnx", dynamo=False)
    with pytest.raises(ValueError, match=r"activation_type must be one of \['int8', 'uint8'\]"):
        quantize_int8(float_path, tmp_path / "x.onnx", _images(4, 0), activation_type="int4")
    with pytest.raises(ValueError, match="calibration_method must be one of"):
        quantize_int8(float_path, tmp_path / "x.onnx", _images(4, 0), calibration_method="magic")
    with pytest.raises(ValueError, match="must differ from float_path"):
        quantize_int8(float_path, float_path, _images(4, 0))


def test_labels_that_do_not_fit_are_refused(quantized: QuantizedModel) -> None:
    images = _images(10, seed=4)
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        compare_int8_accuracy(quantized.float_path, quantized.int8_path, images, np.zeros(9, np.int64))
    with pytest.raises(ValueError, match="1-D integer array"):
        compare_int8_accuracy(quantized.float_path, quantized.int8_path, images, np.zeros(10, np.float32))


def test_calibration_images_set_the_activation_ranges(tmp_path: Path) -> None:
    # Calibrated on images 100 times too faint, the int8 model clips real images' activations.
    float_path = _export(tmp_path / "net.onnx", dynamo=False)
    faint = quantize_int8(float_path, tmp_path / "faint.int8.onnx", 0.01 * _images(32, seed=5))
    right = quantize_int8(float_path, tmp_path / "right.int8.onnx", _images(32, seed=5))
    images = _images(128, seed=6)
    labels = np.zeros(128, np.int64)
    assert (
        compare_int8_accuracy(float_path, faint.int8_path, images, labels).agreement
        < compare_int8_accuracy(float_path, right.int8_path, images, labels).agreement - 0.2
    )
