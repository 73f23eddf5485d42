"""INT8 models as deployed: static quantization of an ONNX float model with ONNX Runtime's tools.

:func:`quantize_int8` calibrates activation ranges on given images (a ``CalibrationDataReader`` over a
NumPy array), writes a QDQ model (QuantizeLinear / DequantizeLinear pairs around each quantized operator,
the format every ONNX Runtime execution provider understands) with per-channel int8 weights, checks it
with ``onnx.checker`` and carries the float model's ``metadata_props`` over, adding
``"hwnas.precision": "int8"`` and a JSON record of how it was quantized. :func:`compare_int8_accuracy`
measures the top-1 error of the float and the int8 model on the same labelled images through ONNX Runtime.

Latency of the int8 model is measured like any model, e.g. with :class:`profilers.OnnxRuntimeLatency`.

ONNX, ONNX Runtime and its quantization tools are imported only when these functions run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx
    import onnxruntime
    import onnxruntime.quantization

__all__ = [
    "PRECISION_METADATA_KEY",
    "QUANTIZATION_METADATA_KEY",
    "Int8Accuracy",
    "QuantizedModel",
    "compare_int8_accuracy",
    "quantize_int8",
]

PRECISION_METADATA_KEY = "hwnas.precision"
"""Metadata key of an int8 model: ``"int8"`` (float models have no such key)."""
QUANTIZATION_METADATA_KEY = "hwnas.quantization"
"""Metadata key of an int8 model: JSON record of how it was quantized (:meth:`QuantizedModel.record`)."""

_CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_QUANT_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


@dataclass(frozen=True)
class QuantizedModel:
    """What :func:`quantize_int8` wrote and how.

    Attributes:
        float_path: The float model quantized.
        int8_path: The int8 model written.
        quant_format: ``"QDQ"``.
        per_channel: Weights quantized per output channel (True) or per tensor.
        activation_type: ``"int8"`` or ``"uint8"``.
        weight_type: ``"int8"`` or ``"uint8"``.
        calibration_method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        calibration_images: Images the activation ranges were calibrated on.
        preprocessed: Whether ONNX Runtime's pre-processing (shape inference, graph optimisation such as
            folding batch norm into convolutions) ran before quantization.
        reduce_range: Weights quantized to 7 bits (for CPUs without VNNI instructions, where 8-bit weights
            can saturate).
        float_bytes: Size of the float file.
        int8_bytes: Size of the int8 file.
        quantized_nodes: QuantizeLinear plus DequantizeLinear nodes in the int8 graph.
        op_types: Operator types of the float graph that now read quantized inputs, sorted.
        metadata: The int8 file's ``metadata_props``.
    """

    float_path: Path
    int8_path: Path
    quant_format: str
    per_channel: bool
    activation_type: str
    weight_type: str
    calibration_method: str
    calibration_images: int
    preprocessed: bool
    reduce_range: bool
    float_bytes: int
    int8_bytes: int
    quantized_nodes: int
    op_types: tuple[str, ...]
    metadata: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def size_ratio(self) -> float:
        """Size of the int8 file over that of the float file."""
        return self.int8_bytes / self.float_bytes

    def record(self) -> dict[str, object]:
        """How the model was quantized, as stored under :data:`QUANTIZATION_METADATA_KEY` (JSON-ready)."""
        return {
            "tool": "onnxruntime.quantization.quantize_static",
            "format": self.quant_format,
            "per_channel": self.per_channel,
            "activation_type": self.activation_type,
            "weight_type": self.weight_type,
            "calibration_method": self.calibration_method,
            "calibration_images": self.calibration_images,
            "preprocessed": self.preprocessed,
            "reduce_range": self.reduce_range,
        }


@dataclass(frozen=True)
class Int8Accuracy:
    """Top-1 error of a float model and its int8 twin on the same labelled images.

    Attributes:
        images: Images scored.
        float_error_pct: Top-1 error of the float model, %.
        int8_error_pct: Top-1 error of the int8 model, %.
        agreement: Share (0..1) of images on which both models predict the same class.
    """

    images: int
    float_error_pct: float
    int8_error_pct: float
    agreement: float

    @property
    def drop_pct(self) -> float:
        """Accuracy lost to quantization, percentage points (negative: int8 did better)."""
        return self.int8_error_pct - self.float_error_pct

    def exceeds(self, max_drop_pct: float) -> bool:
        """Whether int8 lost more than ``max_drop_pct`` percentage points of accuracy.

        Example:
            >>> Int8Accuracy(100, 10.0, 12.5, 0.95).exceeds(2.0)
            True
        """
        return self.drop_pct > max_drop_pct


def quantize_int8(
    float_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    calibration_images: np.ndarray,
    *,
    per_channel: bool = True,
    activation_type: str = "int8",
    weight_type: str = "int8",
    calibration_method: str = "minmax",
    calibration_batch_size: int = 32,
    preprocess: bool = True,
    reduce_range: bool = False,
    nodes_to_exclude: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
) -> QuantizedModel:
    """Statically quantizes a float ONNX model to int8 (QDQ format), as it would be deployed.

    Activation ranges are calibrated by running the float model on ``calibration_images`` (typically a few
    hundred training images, normalised as the model expects). The result is checked with
    ``onnx.checker`` and carries the float model's metadata plus :data:`PRECISION_METADATA_KEY` and
    :data:`QUANTIZATION_METADATA_KEY` (and ``metadata``, which wins over both). The file is written
    atomically.

    Args:
        float_path: The float model; one float32 input of shape ``(batch, *sample_shape)``.
        int8_path: Where to write the int8 model; parent folders are created. May not be ``float_path``.
        calibration_images: float32 array ``(N, *sample_shape)``, N >= 1.
        per_channel: Quantize weights per output channel (recommended for convolutions).
        activation_type: ``"int8"`` (ONNX Runtime's recommended default for QDQ) or ``"uint8"``.
        weight_type: ``"int8"`` or ``"uint8"``.
        calibration_method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        calibration_batch_size: Images per calibration batch when the model's batch is symbolic (a fixed
            batch dimension is followed instead).
        preprocess: Run ONNX Runtime's ``quant_pre_process`` first (shape inference and graph optimisation;
            folds batch norm into convolutions, so they quantize as one operator).
        reduce_range: Quantize weights to 7 bits (CPUs without VNNI instructions).
        nodes_to_exclude: Node names to keep in float (names as in the model after pre-processing).
        metadata: Extra string keys and values for the int8 file.

    Returns:
        What was written, with the file sizes and the quantized operator types.

    Raises:
        FileNotFoundError: ``float_path`` does not exist.
        ValueError: Bad arguments, or images that do not fit the model's input.
        RuntimeError: The quantized model quantized nothing (no QuantizeLinear/DequantizeLinear node).

    Example:
        >>> images = np.random.default_rng(0).standard_normal((64, 3, 32, 32), dtype=np.float32)
        >>> q = quantize_int8("model.onnx", "model.int8.onnx", images)  # doctest: +SKIP
        >>> q.size_ratio < 0.5, q.metadata["hwnas.precision"]  # doctest: +SKIP
        (True, 'int8')
    """
    source = Path(float_path)
    target = Path(int8_path)
    if not source.is_file():
        raise FileNotFoundError(f"ONNX model not found: {source}")
    if target.resolve() == source.resolve():
        raise ValueError(f"int8_path must differ from float_path ({source}): the float model is kept")
    for name, value, allowed in (
        ("activation_type", activation_type, _QUANT_TYPES),
        ("weight_type", weight_type, _QUANT_TYPES),
        ("calibration_method", calibration_method, _CALIBRATION_METHODS),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    if (
        not isinstance(calibration_batch_size, int)
        or isinstance(calibration_batch_size, bool)
        or calibration_batch_size < 1
    ):
        raise ValueError(f"calibration_batch_size must be an integer >= 1, got {calibration_batch_size!r}")
    extra = {str(k): v for k, v in (metadata or {}).items()}
    if not all(isinstance(v, str) for v in extra.values()):
        raise ValueError("metadata values must be strings; encode structured values with json.dumps")

    import onnx
    from onnxruntime import quantization as q

    float_model = onnx.load(str(source), load_external_data=False)
    input_name, batch_dim, sample_shape = _single_input(float_model, source)
    images = _check_images(calibration_images, sample_shape, source)
    batch = batch_dim if batch_dim is not None else calibration_batch_size
    if batch_dim is not None and len(images) % batch_dim:
        raise ValueError(
            f"{source} has a fixed batch of {batch_dim}; give a multiple of {batch_dim} calibration images, "
            f"got {len(images)}"
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp_dir, _quiet_quantization():
        to_quantize = source
        if preprocess:
            to_quantize = Path(tmp_dir) / "preprocessed.onnx"
            q.quant_pre_process(str(source), str(to_quantize), skip_symbolic_shape=False)
        quantized = Path(tmp_dir) / "int8.onnx"
        q.quantize_static(
            str(to_quantize),
            str(quantized),
            _image_reader(q.CalibrationDataReader, input_name, images, batch),
            quant_format=q.QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=getattr(q.QuantType, _QUANT_TYPES[activation_type]),
            weight_type=getattr(q.QuantType, _QUANT_TYPES[weight_type]),
            calibrate_method=getattr(q.CalibrationMethod, _CALIBRATION_METHODS[calibration_method]),
            nodes_to_exclude=list(nodes_to_exclude) or None,
        )
        int8_model = onnx.load(str(quantized))
        qdq = [n for n in int8_model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        if not qdq:
            raise RuntimeError(
                f"quantizing {source} produced no QuantizeLinear/DequantizeLinear node: none of its operators "
                "is one ONNX Runtime quantizes (Conv, MatMul, Gemm, ...), or all were excluded"
            )
        op_types = _quantized_op_types(int8_model)
        result = QuantizedModel(
            float_path=source,
            int8_path=target,
            quant_format="QDQ",
            per_channel=per_channel,
            activation_type=activation_type,
            weight_type=weight_type,
            calibration_method=calibration_method,
            calibration_images=len(images),
            preprocessed=preprocess,
            reduce_range=reduce_range,
            float_bytes=source.stat().st_size,
            int8_bytes=0,
            quantized_nodes=len(qdq),
            op_types=op_types,
        )
        props = {entry.key: entry.value for entry in float_model.metadata_props}
        props[PRECISION_METADATA_KEY] = "int8"
        props[QUANTIZATION_METADATA_KEY] = json.dumps(result.record(), sort_keys=True)
        props.update(extra)
        del int8_model.metadata_props[:]
        for key, value in props.items():
            entry = int8_model.metadata_props.add()
            entry.key = key
            entry.value = value
        onnx.checker.check_model(int8_model, full_check=True)
        _atomic_save(int8_model, target)
    return dataclasses.replace(result, int8_bytes=target.stat().st_size, metadata=props)


def compare_int8_accuracy(
    float_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 256,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> Int8Accuracy:
    """Top-1 error of a float model and its int8 twin on the same labelled images, through ONNX Runtime.

    Args:
        float_path: The float model.
        int8_path: The int8 model (e.g. :attr:`QuantizedModel.int8_path`).
        images: float32 array ``(N, *sample_shape)``, normalised as the models expect.
        labels: Integer class of each image, shape ``(N,)``.
        batch_size: Images per inference call when a model's batch is symbolic (a fixed batch dimension
            is followed instead; N must then be a multiple of it).
        providers: ONNX Runtime execution providers for both models.

    Raises:
        FileNotFoundError: A model does not exist.
        ValueError: Images or labels that do not fit the models, or an output that is not ``(batch, classes)``.

    Example:
        >>> acc = compare_int8_accuracy("model.onnx", "model.int8.onnx", x_val, y_val)  # doctest: +SKIP
        >>> round(acc.drop_pct, 1)  # doctest: +SKIP
        0.4
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got dtype {labels.dtype} shape {labels.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    predicted = [
        _top1(Path(p), images, batch_size, tuple(providers)) for p in (Path(float_path), Path(int8_path))
    ]
    float_pred, int8_pred = predicted
    return Int8Accuracy(
        images=len(labels),
        float_error_pct=float(np.mean(float_pred != labels) * 100.0),
        int8_error_pct=float(np.mean(int8_pred != labels) * 100.0),
        agreement=float(np.mean(float_pred == int8_pred)),
    )


def _image_reader(
    base: type, input_name: str, images: np.ndarray, batch_size: int
) -> onnxruntime.quantization.CalibrationDataReader:
    """A ``CalibrationDataReader`` (``base``) over a NumPy array: one ``{input: batch}`` feed per call."""

    class ImageReader(base):
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = (
                {input_name: images[i : i + batch_size]} for i in range(0, len(images), batch_size)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return ImageReader()


def _single_input(model: onnx.ModelProto, path: Path) -> tuple[str, int | None, tuple[int | None, ...]]:
    """Name, fixed batch size (``None``: symbolic) and per-sample shape (``None`` for symbolic dims)."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(
            f"{path} has {len(inputs)} inputs ({[i.name for i in inputs]}); expected one image input"
        )
    (model_input,) = inputs
    tensor = model_input.type.tensor_type
    if tensor.elem_type != 1:  # onnx.TensorProto.FLOAT
        raise ValueError(
            f"{path}: input {model_input.name!r} is not float32; quantization starts from a float model"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if not dims:
        raise ValueError(f"{path}: input {model_input.name!r} has no shape")
    return model_input.name, dims[0], tuple(dims[1:])


def _check_images(images: np.ndarray, sample_shape: tuple[int | None, ...], path: Path) -> np.ndarray:
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"calibration images must be a float array, got dtype {array.dtype}")
    if array.ndim != len(sample_shape) + 1 or len(array) < 1:
        raise ValueError(
            f"calibration images must be an array (N, {', '.join('?' if d is None else str(d) for d in sample_shape)})"
            f" with N >= 1 for {path}, got shape {array.shape}"
        )
    for got, want in zip(array.shape[1:], sample_shape, strict=True):
        if want is not None and got != want:
            raise ValueError(
                f"calibration images have sample shape {array.shape[1:]}, but {path} takes "
                f"{tuple('?' if d is None else d for d in sample_shape)}"
            )
    if not np.all(np.isfinite(array)):
        raise ValueError("calibration images hold NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def _quantized_op_types(model: onnx.ModelProto) -> tuple[str, ...]:
    """Types of the operators that read a DequantizeLinear output (the ones computing on int8 data)."""
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    return tuple(
        sorted(
            {
                n.op_type
                for n in model.graph.node
                if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                and dequantized.intersection(n.input)
            }
        )
    )


def _top1(path: Path, images: np.ndarray, batch_size: int, providers: tuple[str, ...]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    session = _session(path, providers)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"{path} has {len(inputs)} inputs; expected one image input")
    (model_input,) = inputs
    fixed = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    step = fixed or batch_size
    if fixed is not None and len(images) % fixed:
        raise ValueError(
            f"{path} has a fixed batch of {fixed}; give a multiple of {fixed} images, got {len(images)}"
        )
    array = np.ascontiguousarray(images, dtype=np.float32)
    out = []
    for i in range(0, len(array), step):
        logits = np.asarray(session.run(None, {model_input.name: array[i : i + step]})[0])
        if logits.ndim != 2:
            raise ValueError(f"{path}: first output has shape {logits.shape}; expected (batch, classes)")
        out.append(logits.argmax(axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _session(path: Path, providers: tuple[str, ...]) -> onnxruntime.InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=list(providers))


def _atomic_save(model: onnx.ModelProto, path: Path) -> None:
    """Readers of ``path`` never see a partial model."""
    import onnx

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _quiet_quantization() -> Iterator[None]:
    """Silences ONNX Runtime's quantization advice (logged as warnings on the root logger) while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)
