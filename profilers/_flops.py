"""Parameter and multiply-accumulate counts read from an ONNX graph."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from profilers._onnx_shapes import import_onnx, infer_graph

if TYPE_CHECKING:
    import onnx
    from onnx import NodeProto

__all__ = ["COUNTED_OPS", "ModelCost", "count_params_and_flops"]

# Operators whose multiply-accumulates are counted. Elementwise operators (Add, Relu, BatchNormalization
# left unfused, pooling, ...) cost O(elements), negligible next to these, and are ignored.
COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class ModelCost:
    """Size and arithmetic cost of one model at one input shape.

    Counts are of the exported graph: BatchNorm folded into a convolution at export adds no parameters, and
    an unfused one adds only its elementwise work, which is not counted.

    Attributes:
        params: Number of floating-point weights (elements of floating-point initializers). Integer
            constants such as reshape targets are not parameters.
        macs: Multiply-accumulates of one inference of the whole batch, counted over ``COUNTED_OPS``.
        flops: Floating-point operations, by the usual convention of two per multiply-accumulate
            (``2 * macs``).
        batch_size: Batch size the counts are for.
        input_shape: Shape of one sample, without the batch dimension.
    """

    params: int
    macs: int
    batch_size: int
    input_shape: tuple[int, ...]
    flops: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flops", 2 * self.macs)

    @property
    def macs_per_sample(self) -> int:
        """Multiply-accumulates of one sample."""
        return self.macs // self.batch_size


def count_params_and_flops(
    onnx_path_or_model: str | os.PathLike[str] | onnx.ModelProto,
    input_shape: Sequence[int],
    *,
    batch_size: int = 1,
) -> ModelCost:
    """Counts the parameters and multiply-accumulates of an ONNX model.

    Shapes are found with ONNX shape inference after fixing the (single) graph input to
    ``(batch_size, *input_shape)``. Per operator:

    - ``Conv``: output elements x (input channels / groups) x kernel elements.
    - ``ConvTranspose``: input elements x (output channels / groups) x kernel elements.
    - ``Gemm`` and ``MatMul``: output elements x the reduced dimension K (M x N x K for 2-D operands).

    Biases, activations, normalisation, pooling and other elementwise work are not counted. Operators inside
    subgraphs (``If``, ``Loop``) are not visited.

    Args:
        onnx_path_or_model: An ONNX file or a loaded ``onnx.ModelProto`` (not modified).
        input_shape: Shape of one sample without the batch dimension, e.g. ``(C, H, W)``.
        batch_size: Batch size to count for; ``macs`` scales linearly with it.

    Returns:
        The counts.

    Raises:
        ValueError: The graph does not have exactly one input of matching rank, or the shape of a counted
            operator could not be inferred.

    Example:
        >>> cost = count_params_and_flops("model.onnx", (1, 8, 8))  # doctest: +SKIP
        >>> cost.flops == 2 * cost.macs  # doctest: +SKIP
        True
    """
    onnx = import_onnx()
    inferred_graph = infer_graph(onnx_path_or_model, input_shape, batch_size)
    inferred, where, shapes = inferred_graph.model, inferred_graph.where, inferred_graph.shapes
    sample_shape = tuple(int(d) for d in input_shape)
    float_types = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    }
    params = sum(math.prod(init.dims) for init in inferred.graph.initializer if init.data_type in float_types)

    def shape_of(node: NodeProto, name: str) -> tuple[int, ...]:
        found = shapes.get(name)
        if found is None:
            raise ValueError(
                f"{where}: could not infer the shape of {name!r} used by {node.op_type} node {node.name!r}; "
                "export with static shapes apart from the batch dimension"
            )
        return found

    macs = 0
    for node in inferred.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in COUNTED_OPS:
            continue
        if node.op_type == "Conv":
            out = shape_of(node, node.output[0])
            weight = shape_of(node, node.input[1])  # (C_out, C_in / groups, *kernel)
            macs += math.prod(out) * math.prod(weight[1:])
        elif node.op_type == "ConvTranspose":
            x = shape_of(node, node.input[0])
            weight = shape_of(node, node.input[1])  # (C_in, C_out / groups, *kernel)
            macs += math.prod(x) * math.prod(weight[1:])
        elif node.op_type == "Gemm":
            out = shape_of(node, node.output[0])
            a = shape_of(node, node.input[0])
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            macs += math.prod(out) * k
        else:  # MatMul, with numpy broadcasting and 1-D operands
            out = shape_of(node, node.output[0])
            a = shape_of(node, node.input[0])
            macs += math.prod(out) * a[-1]
    return ModelCost(params=int(params), macs=int(macs), batch_size=batch_size, input_shape=sample_shape)
