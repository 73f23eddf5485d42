"""Loading an ONNX model and inferring its tensor shapes at one input shape (shared by FLOPs and memory)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def import_onnx() -> ModuleType:
    import onnx  # kept lazy: `import profilers` stays cheap

    return onnx


@dataclass(frozen=True)
class InferredGraph:
    """A copy of a model with shapes inferred for ``(batch_size, *input_shape)``.

    Attributes:
        model: The inferred model (a copy; the caller's model or file is not changed).
        where: The file path, or ``"model"`` for a loaded ``ModelProto``, for error messages.
        shapes: Static shape of every known tensor (graph input, intermediate, output, initializer), or
            ``None`` where a dimension could not be inferred.
        elem_types: ONNX element type (``TensorProto.FLOAT``, ...) of every tensor whose type is known.
        input_name: Name of the single graph input.
    """

    model: onnx.ModelProto
    where: str
    shapes: dict[str, tuple[int, ...] | None]
    elem_types: dict[str, int]
    input_name: str


def infer_graph(
    onnx_path_or_model: str | os.PathLike[str] | onnx.ModelProto,
    input_shape: Sequence[int],
    batch_size: int,
) -> InferredGraph:
    """Fixes the single graph input to ``(batch_size, *input_shape)`` and runs ONNX shape inference.

    Weights stored as external data stay on disk: only dims and types are needed.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: ``batch_size`` is not a positive integer, or the graph does not have exactly one input of
            the rank of ``(batch_size, *input_shape)``.
    """
    onnx = import_onnx()
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    sample_shape = tuple(int(d) for d in input_shape)
    if isinstance(onnx_path_or_model, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(onnx_path_or_model)
        where = "model"
    else:
        path = Path(onnx_path_or_model)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        model = onnx.load(str(path), load_external_data=False)
        where = str(path)
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    if len(inputs) != 1:
        raise ValueError(f"{where} has {len(inputs)} graph inputs ({[i.name for i in inputs]}); expected one")
    shape = (batch_size, *sample_shape)
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ValueError(
            f"{where}: input {inputs[0].name!r} has rank {len(dims)} but (batch_size, *input_shape) is "
            f"{shape}; pass input_shape without the batch dimension"
        )
    for dim, size in zip(dims, shape):
        dim.Clear()
        dim.dim_value = size
    # Drop stale intermediate shapes (e.g. a fixed batch recorded at export) so inference starts afresh.
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)

    shapes: dict[str, tuple[int, ...] | None] = {}
    elem_types: dict[str, int] = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type:
            elem_types[value.name] = int(tensor_type.elem_type)
        if not tensor_type.HasField("shape"):
            shapes[value.name] = None
            continue
        known = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        shapes[value.name] = None if None in known else tuple(int(d) for d in known)  # type: ignore[arg-type]
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
        elem_types[init.name] = int(init.data_type)
    return InferredGraph(
        model=inferred, where=where, shapes=shapes, elem_types=elem_types, input_name=inputs[0].name
    )
