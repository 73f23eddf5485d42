"""Peak memory of one inference: an analytic estimate from the ONNX graph (and the result type of measurements)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from profilers._onnx_shapes import import_onnx, infer_graph

if TYPE_CHECKING:
    import onnx

__all__ = ["MEMORY_METHODS", "MIB", "MemoryResult", "estimate_peak_memory"]

#: Bytes in one MiB: every ``*_mb`` memory figure is in MiB (2**20 bytes).
MIB = 2**20
#: How a memory figure was obtained.
MEMORY_METHODS = ("analytic", "measured-cuda")

# Bits per element of each ONNX element type (4-bit types are packed two to a byte).
_ELEMENT_BITS_BY_NAME = {
    "FLOAT": 32, "UINT8": 8, "INT8": 8, "UINT16": 16, "INT16": 16, "INT32": 32, "INT64": 64, "BOOL": 8,
    "FLOAT16": 16, "DOUBLE": 64, "UINT32": 32, "UINT64": 64, "COMPLEX64": 64, "COMPLEX128": 128,
    "BFLOAT16": 16, "FLOAT8E4M3FN": 8, "FLOAT8E4M3FNUZ": 8, "FLOAT8E5M2": 8, "FLOAT8E5M2FNUZ": 8,
    "FLOAT8E8M0": 8, "UINT4": 4, "INT4": 4, "FLOAT4E2M1": 4, "UINT2": 2, "INT2": 2,
}  # fmt: skip


@dataclass(frozen=True)
class MemoryResult:
    """Peak memory of one inference of a whole batch.

    Attributes:
        weights_bytes: Bytes of the weights (initializers and constants), resident for the whole inference.
        activation_bytes: Peak bytes of the activation tensors alive at once (graph input included).
        method: ``"analytic"`` (from the graph, see :func:`estimate_peak_memory`) or ``"measured-cuda"``
            (PyTorch's CUDA allocator, see :meth:`~profilers.TorchLatency.peak_memory`).
        batch_size: Samples per inference.
        input_shape: Shape of one sample, without the batch dimension.
        peak_node: Name (or ``op_type#index`` when unnamed) of the node during which the peak occurs, for the
            analytic method; ``None`` otherwise.
        peak_memory_mb: Weights plus peak activations, in MiB (2**20 bytes): the ``peak_memory_mb``
            objective.
    """

    weights_bytes: int
    activation_bytes: int
    method: str
    batch_size: int
    input_shape: tuple[int, ...]
    peak_node: str | None = None
    peak_memory_mb: float = field(init=False)

    def __post_init__(self) -> None:
        if self.method not in MEMORY_METHODS:
            raise ValueError(f"method must be one of {list(MEMORY_METHODS)}, got {self.method!r}")
        object.__setattr__(self, "peak_memory_mb", (self.weights_bytes + self.activation_bytes) / MIB)

    @property
    def weights_mb(self) -> float:
        """Weights in MiB."""
        return self.weights_bytes / MIB

    @property
    def activations_mb(self) -> float:
        """Peak activations in MiB."""
        return self.activation_bytes / MIB

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; :meth:`from_dict` reverses it."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MemoryResult:
        """Rebuilds a result from :meth:`to_dict` output."""
        values: dict[str, Any] = {k: v for k, v in data.items() if k != "peak_memory_mb"}
        values["input_shape"] = tuple(values["input_shape"])
        return cls(**values)


def _element_bits(onnx_module: object, elem_type: int, name: str, where: str) -> int:
    tensor_proto = onnx_module.TensorProto  # type: ignore[attr-defined]
    for type_name, bits in _ELEMENT_BITS_BY_NAME.items():
        if getattr(tensor_proto, type_name, None) == elem_type:
            return bits
    raise ValueError(
        f"{where}: tensor {name!r} has element type {tensor_proto.DataType.Name(elem_type)}, whose size in "
        "memory is not fixed; peak memory is estimated for numeric tensors only"
    )


def estimate_peak_memory(
    onnx_path_or_model: str | os.PathLike[str] | onnx.ModelProto,
    input_shape: Sequence[int],
    *,
    batch_size: int = 1,
) -> MemoryResult:
    """Estimates the peak memory of one inference from the ONNX graph alone, the same on every machine.

    Peak memory = weights + the peak of live activations, where:

    - weights are every initializer and every ``Constant`` node's output (resident throughout);
    - activations are the graph input and every node output, sized from ONNX shape inference with the
      input fixed to ``(batch_size, *input_shape)`` (elements x element size);
    - nodes run one at a time in the graph's order (ONNX requires it to be topological); while a node runs,
      its inputs and its outputs are alive together; a tensor is freed right after its last consumer, graph
      outputs are never freed, and an output nobody consumes is freed right after its node.

    This is what a runtime executing the graph sequentially without buffer reuse needs. Runtimes that run
    operators in place, fuse nodes or pad allocations use somewhat less or more; the estimate ranks
    architectures consistently, which is what a search needs. Subgraphs of ``If``/``Loop``/``Scan`` are not
    visited (their outer inputs are treated as used by the node).

    Args:
        onnx_path_or_model: An ONNX file or a loaded ``onnx.ModelProto`` (not modified).
        input_shape: Shape of one sample without the batch dimension, e.g. ``(C, H, W)``.
        batch_size: Samples per inference; activations scale with it, weights do not.

    Returns:
        The estimate, with method ``"analytic"``; ``peak_memory_mb`` is in MiB (2**20 bytes).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The graph does not have exactly one input of matching rank, a tensor's shape could not be
            inferred, or the nodes are not in topological order.

    Example:
        >>> result = estimate_peak_memory("model.onnx", (3, 32, 32))  # doctest: +SKIP
        >>> result.peak_memory_mb, result.method  # doctest: +SKIP
        (0.42, 'analytic')
    """
    onnx_module = import_onnx()
    inferred = infer_graph(onnx_path_or_model, input_shape, batch_size)
    graph, where = inferred.model.graph, inferred.where

    def nbytes(name: str, consumer: str) -> int:
        shape = inferred.shapes.get(name)
        elem_type = inferred.elem_types.get(name)
        if shape is None or elem_type is None:
            raise ValueError(
                f"{where}: could not infer the shape and type of {name!r} ({consumer}); export with static "
                "shapes apart from the batch dimension"
            )
        return math.ceil(math.prod(shape) * _element_bits(onnx_module, elem_type, name, where) / 8)

    weights = {init.name: nbytes(init.name, "initializer") for init in graph.initializer}
    nodes = list(graph.node)
    labels = [node.name or f"{node.op_type}#{i}" for i, node in enumerate(nodes)]
    for i, node in enumerate(nodes):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for out in node.output:
                weights[out] = nbytes(out, f"output of {labels[i]}")

    # Index of the last node that reads each activation; graph outputs stay alive to the end.
    end = len(nodes)
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            if name and name not in weights:
                last_use[name] = i
    for output in graph.output:
        last_use[output.name] = end

    live: dict[str, int] = {inferred.input_name: nbytes(inferred.input_name, "graph input")}
    current = live[inferred.input_name]
    peak, peak_node = current, None
    for i, node in enumerate(nodes):
        for name in node.input:
            if name and name not in weights and name not in live:
                raise ValueError(
                    f"{where}: node {labels[i]} reads {name!r} before any node produces it; the nodes must be "
                    "in topological order (onnx.checker.check_model reports this too)"
                )
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue
        for name in node.output:
            if name and name not in live:
                live[name] = nbytes(name, f"output of {labels[i]}")
                current += live[name]
        if current > peak:
            peak, peak_node = current, labels[i]
        for name in (*node.input, *node.output):
            if name in live and last_use.get(name, i) <= i:
                current -= live.pop(name)
    return MemoryResult(
        weights_bytes=int(sum(weights.values())),
        activation_bytes=int(peak),
        method="analytic",
        batch_size=batch_size,
        input_shape=tuple(int(d) for d in input_shape),
        peak_node=peak_node,
    )
