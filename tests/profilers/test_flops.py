"""Tests of count_params_and_flops against hand-computed counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from profiler_models import matmul_chain, save_model

from profilers import COUNTED_OPS, ModelCost, count_params_and_flops


def _init(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name=name)


@pytest.fixture(scope="module")
def conv_gemm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """input (N,1,8,8) -> Conv 1->4 k3 p1 -> Relu -> grouped Conv 4->4 k3 p1 g2 -> Flatten -> Gemm(transB)
    256->10 -> MatMul 10->5, plus an int64 shape constant that is not a parameter."""
    nodes = [
        helper.make_node("Conv", ["input", "c1.w", "c1.b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2.w"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
        helper.make_node("Reshape", ["c2", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["fc"], transB=1),
        helper.make_node("MatMul", ["fc", "proj.w"], ["logits"]),
    ]
    inits = [
        _init("c1.w", (4, 1, 3, 3)),
        _init("c1.b", (4,)),
        _init("c2.w", (4, 2, 3, 3)),
        numpy_helper.from_array(np.array([-1, 256], dtype=np.int64), name="shape"),
        _init("fc.w", (10, 256)),
        _init("fc.b", (10,)),
        _init("proj.w", (10, 5)),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_gemm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])],
        inits,
    )
    return save_model(graph, tmp_path_factory.mktemp("flops") / "conv_gemm.onnx")


# Hand counts for one sample:
#   conv1: out 4*8*8 = 256 elements x (1/1 * 3*3)   = 2304
#   conv2: out 4*8*8 = 256 elements x (4/2 * 3*3)   = 4608
#   gemm:  M*N*K = 1*10*256                         = 2560
#   matmul: 1*5*10                                  =   50
CONV_GEMM_MACS = 2304 + 4608 + 2560 + 50
#   params: 36 + 4 + 72 + 2560 + 10 + 50 (the int64 shape is not counted)
CONV_GEMM_PARAMS = 36 + 4 + 72 + 2560 + 10 + 50


def test_conv_gemm_counts_match_hand_computation(conv_gemm_model: Path) -> None:
    cost = count_params_and_flops(conv_gemm_model, (1, 8, 8))
    assert isinstance(cost, ModelCost)
    assert cost.macs == CONV_GEMM_MACS == 9522
    assert cost.flops == 2 * CONV_GEMM_MACS
    assert cost.params == CONV_GEMM_PARAMS == 2732
    assert cost.batch_size == 1 and cost.input_shape == (1, 8, 8)


def test_macs_scale_with_batch_and_params_do_not(conv_gemm_model: Path) -> None:
    one = count_params_and_flops(conv_gemm_model, (1, 8, 8))
    three = count_params_and_flops(conv_gemm_model, (1, 8, 8), batch_size=3)
    assert three.macs == 3 * one.macs
    assert three.macs_per_sample == one.macs
    assert three.params == one.params


def test_macs_scale_with_resolution(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"], kernel_shape=[3, 3], strides=[2, 2])],
        "strided",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8, "oh", "ow"])],
        [_init("w", (8, 3, 3, 3))],
    )
    path = save_model(graph, tmp_path / "strided.onnx")
    # 9x9 input, k3 s2 no pad -> 4x4 output: 8*4*4 = 128 outputs x 27 = 3456
    assert count_params_and_flops(path, (3, 9, 9)).macs == 3456
    # 17x17 -> 8x8: 8*8*8 = 512 x 27 = 13824
    assert count_params_and_flops(path, (3, 17, 17)).macs == 13824


def test_loaded_model_is_accepted_and_left_unchanged(conv_gemm_model: Path) -> None:
    model = onnx.load(str(conv_gemm_model))
    before = model.SerializeToString()
    assert count_params_and_flops(model, (1, 8, 8)).macs == CONV_GEMM_MACS
    assert model.SerializeToString() == before


def test_conv_transpose_and_gemm_transa(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("ConvTranspose", ["input", "up.w"], ["up"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["up", "shape"], ["flat"]),  # (N, 192)
        helper.make_node("Transpose", ["flat"], ["flat_t"], perm=[1, 0]),  # (192, N)
        helper.make_node("Gemm", ["flat_t", "fc.w"], ["logits"], transA=1),  # (N, 192) @ (192, 7)
    ]
    inits = [
        _init("up.w", (2, 3, 2, 2)),
        numpy_helper.from_array(np.array([-1, 192], dtype=np.int64), name="shape"),
        _init("fc.w", (192, 7)),
    ]
    graph = helper.make_graph(
        nodes,
        "up",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 2, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 7])],
        inits,
    )
    path = save_model(graph, tmp_path / "up.onnx")
    cost = count_params_and_flops(path, (2, 4, 4), batch_size=2)
    # ConvTranspose: input 2*2*4*4 = 64 elements x (3 * 2*2) = 768; Gemm: M=2, N=7, K=192 -> 2688
    assert cost.macs == 768 + 2688
    assert cost.params == 24 + 192 * 7


def test_batched_matmul(tmp_path: Path) -> None:
    path = matmul_chain(tmp_path / "chain.onnx", width=8, depth=3)
    cost = count_params_and_flops(path, (8,), batch_size=5)
    assert cost.macs == 3 * 5 * 8 * 8
    assert cost.params == 3 * 64


def test_counted_ops_are_documented() -> None:
    assert set(COUNTED_OPS) == {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def test_wrong_rank_is_explained(conv_gemm_model: Path) -> None:
    with pytest.raises(ValueError, match="rank 4"):
        count_params_and_flops(conv_gemm_model, (8, 8))


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        count_params_and_flops(tmp_path / "none.onnx", (1, 8, 8))


def test_bad_batch_size(conv_gemm_model: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        count_params_and_flops(conv_gemm_model, (1, 8, 8), batch_size=0)
