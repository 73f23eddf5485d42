"""ONNX models built with onnx.helper, so profiler tests need neither torch nor the nas package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def save_model(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


def matmul_chain(path: Path, *, width: int, depth: int, batch: int | str = "batch") -> Path:
    """input (batch, width) -> depth x [MatMul(width x width) -> Relu] -> logits (batch, width)."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    current = "input"
    for i in range(depth):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, name=f"w{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"mm{i}"]))
        out = "logits" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("Relu", [f"mm{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        f"matmul_chain_{width}x{depth}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, width])],
        inits,
    )
    return save_model(graph, path)
