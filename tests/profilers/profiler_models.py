"""Models for profiler tests: ONNX graphs built with onnx.helper, and PyTorch twins of them.

The ONNX builders need neither torch nor the nas package; the PyTorch twins import torch when called.
"""

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


def matmul_chain_weights(width: int, depth: int) -> list[np.ndarray]:
    """The weights of :func:`matmul_chain`, ``depth`` float32 (width, width) matrices."""
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32) for _ in range(depth)]


def matmul_chain(path: Path, *, width: int, depth: int, batch: int | str = "batch") -> Path:
    """input (batch, width) -> depth x [MatMul(width x width) -> Relu] -> logits (batch, width)."""
    nodes, inits = [], []
    current = "input"
    for i, weight in enumerate(matmul_chain_weights(width, depth)):
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


def matmul_chain_reference(x: np.ndarray, *, width: int, depth: int) -> np.ndarray:
    """What :func:`matmul_chain` computes, in NumPy."""
    for weight in matmul_chain_weights(width, depth):
        x = np.maximum(x @ weight, 0)
    return x


def torch_matmul_chain(*, width: int, depth: int):  # -> torch.nn.Module
    """The PyTorch twin of :func:`matmul_chain`: the same weights and the same computation."""
    import torch

    class MatMulChain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = torch.nn.ParameterList(
                torch.nn.Parameter(torch.from_numpy(w)) for w in matmul_chain_weights(width, depth)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for weight in self.weights:
                x = torch.relu(x @ weight)
            return x

    return MatMulChain()


def to_numpy(outputs: object) -> np.ndarray:
    """The first output of a runner call as a NumPy array (ORT arrays or OrtValues, or a torch tensor)."""
    first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    if hasattr(first, "detach"):  # torch.Tensor
        return first.detach().cpu().numpy()
    if hasattr(first, "numpy"):  # onnxruntime.OrtValue
        return first.numpy()
    return np.asarray(first)
