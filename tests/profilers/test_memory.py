"""estimate_peak_memory against peaks computed by hand on small graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from profiler_models import matmul_chain, save_model

from profilers import MIB, MemoryResult, estimate_peak_memory


def _init(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name=name)


def test_chain_peak_is_one_input_and_one_output_alive(tmp_path: Path) -> None:
    path = matmul_chain(tmp_path / "chain.onnx", width=4, depth=2)
    result = estimate_peak_memory(path, (4,))
    # weights: two 4x4 float32 = 128 B. Activations (batch 1): every tensor is 4 floats = 16 B; while a node
    # runs its input and output are alive (32 B), and the input is freed after its only consumer.
    assert result.weights_bytes == 128
    assert result.activation_bytes == 32
    assert result.method == "analytic"
    assert result.peak_memory_mb == (128 + 32) / MIB
    assert (result.batch_size, result.input_shape) == (1, (4,))


def test_activations_scale_with_batch_and_weights_do_not(tmp_path: Path) -> None:
    path = matmul_chain(tmp_path / "chain.onnx", width=4, depth=2)
    result = estimate_peak_memory(path, (4,), batch_size=3)
    assert result.weights_bytes == 128
    assert result.activation_bytes == 3 * 32


@pytest.fixture
def residual_model(tmp_path: Path) -> Path:
    """x (N,4) -> h = x @ w1 (4x64) -> y = h @ w2 (64x4) -> out = y + x: the skip keeps x alive."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="expand"),
            helper.make_node("MatMul", ["h", "w2"], ["y"], name="project"),
            helper.make_node("Add", ["y", "x"], ["out"], name="skip"),
        ],
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])],
        [_init("w1", (4, 64)), _init("w2", (64, 4))],
    )
    return save_model(graph, tmp_path / "residual.onnx")


def test_peak_inside_a_residual_block(residual_model: Path) -> None:
    result = estimate_peak_memory(residual_model, (4,))
    # x 16 B. expand: x + h(256) = 272. project: x + h + y(16) = 288, then h is freed -> 32.
    # skip: x + y + out(16) = 48. Peak 288 B, while "project" runs.
    assert result.activation_bytes == 288
    assert result.peak_node == "project"
    assert result.weights_bytes == (4 * 64 + 64 * 4) * 4
    assert result.weights_mb == pytest.approx(2048 / MIB)
    assert result.activations_mb == pytest.approx(288 / MIB)


def test_element_sizes_constants_and_unused_outputs(tmp_path: Path) -> None:
    """float16 activations, an int64 shape initializer and a Constant node count as weights, a Dropout mask
    nobody reads is freed right after its node."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["scale"], value=numpy_helper.from_array(np.ones((1, 8), np.float16))
            ),
            helper.make_node("Mul", ["x", "scale"], ["scaled"]),  # (N, 8) fp16: 16 B per sample
            helper.make_node("Dropout", ["scaled"], ["dropped", "mask"]),  # mask: (N, 8) bool, 8 B per sample
            helper.make_node("Reshape", ["dropped", "shape"], ["out"]),  # (N, 2, 4) fp16
        ],
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT16, ["batch", 2, 4])],
        [numpy_helper.from_array(np.array([-1, 2, 4], dtype=np.int64), name="shape")],
    )
    path = save_model(graph, tmp_path / "mixed.onnx")
    result = estimate_peak_memory(path, (8,), batch_size=2)
    # weights: shape 3 x int64 = 24 B, scale 8 x fp16 = 16 B.
    assert result.weights_bytes == 40
    # batch 2: x 32 B. Mul: x + scaled = 64 -> x freed -> 32. Dropout: scaled + dropped(32) + mask(16) = 80
    # -> scaled and the unread mask freed -> 32. Reshape: dropped + out = 64. Peak 80 B.
    assert result.activation_bytes == 80


def test_model_proto_is_accepted_and_left_unchanged(residual_model: Path) -> None:
    model = onnx.load(str(residual_model))
    before = model.SerializeToString()
    assert estimate_peak_memory(model, (4,)).activation_bytes == 288
    assert model.SerializeToString() == before


def test_nodes_out_of_order_are_rejected(residual_model: Path) -> None:
    model = onnx.load(str(residual_model))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([nodes[1], nodes[0], nodes[2]])
    with pytest.raises(ValueError, match="topological order"):
        estimate_peak_memory(model, (4,))


def test_unknown_shapes_and_bad_arguments_are_explained(tmp_path: Path, residual_model: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["idx"])],  # output size depends on the data
        "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [2, "n"])],
    )
    path = save_model(graph, tmp_path / "dynamic.onnx")
    with pytest.raises(ValueError, match="could not infer the shape.*'idx'"):
        estimate_peak_memory(path, (4,))
    with pytest.raises(ValueError, match="rank 2"):
        estimate_peak_memory(residual_model, (2, 2))
    with pytest.raises(ValueError, match="batch_size"):
        estimate_peak_memory(residual_model, (4,), batch_size=0)
    with pytest.raises(FileNotFoundError):
        estimate_peak_memory(tmp_path / "none.onnx", (4,))


def test_result_round_trips_and_validates_its_method() -> None:
    result = MemoryResult(
        weights_bytes=10, activation_bytes=20, method="measured-cuda", batch_size=2, input_shape=(3,)
    )
    assert MemoryResult.from_dict(result.to_dict()) == result
    with pytest.raises(ValueError, match="method"):
        MemoryResult(weights_bytes=1, activation_bytes=1, method="guessed", batch_size=1, input_shape=(1,))
