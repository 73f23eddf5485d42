"""Export of PyTorch models to standalone ONNX files, and checks that the export is faithful."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from nas._atomic import atomic_replace

__all__ = [
    "ARCH_METADATA_KEY",
    "INPUT_SHAPE_METADATA_KEY",
    "VerifyResult",
    "export_onnx",
    "read_metadata",
    "verify_onnx",
]

ARCH_METADATA_KEY = "hwnas.arch"
INPUT_SHAPE_METADATA_KEY = "hwnas.input_shape"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORTERS = ("torchscript", "dynamo")
# Lowest opset the dynamo exporter implements; asking for less makes it attempt a lossy down-conversion.
_DYNAMO_MIN_OPSET = 18
_DEFAULT_OPSET = {"torchscript": 17, "dynamo": _DYNAMO_MIN_OPSET}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_onnx`.

    Attributes:
        checker_ok: Whether ``onnx.checker.check_model(full_check=True)`` accepted the file.
        checker_message: The checker's complaint, or ``""``.
        max_abs_diff: Largest absolute difference between ONNX Runtime's and PyTorch's outputs.
        ort_output_shape: Shape of ONNX Runtime's output (equal to PyTorch's).
        batch_size: Batch size of the input compared on.
    """

    checker_ok: bool
    checker_message: str
    max_abs_diff: float
    ort_output_shape: tuple[int, ...]
    batch_size: int

    def ok(self, *, atol: float = 1e-4) -> bool:
        """Whether the checker passed and the outputs agree within ``atol``."""
        return self.checker_ok and self.max_abs_diff <= atol


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silences the exporters' deprecation notices and log chatter here only, not for the whole process.

    Tracer warnings (e.g. about data-dependent control flow frozen into the graph) are left alone: they can
    mean the export is wrong.
    """
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(
            f"input_shape must be the shape of one sample without the batch dimension, e.g. (3, 32, 32), "
            f"got {input_shape!r}"
        )
    return shape


def _atomic_save(model_proto: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_replace(path, lambda tmp: onnx.save_model(model_proto, str(tmp)), error=None)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_shape: Sequence[int],
    *,
    batch_size: int = 1,
    metadata: Mapping[str, str] | None = None,
    exporter: str = "torchscript",
    opset: int | None = None,
    dynamic_batch: bool = True,
) -> Path:
    """Exports a model to a standalone ONNX file, in eval mode.

    The graph has one input named ``"input"`` of shape ``(batch, *input_shape)`` (float32) and one output
    named ``"logits"``. The model's train/eval mode is restored afterwards. ``metadata`` goes into the file's
    ``metadata_props``; by convention the architecture JSON is stored under ``"hwnas.arch"``
    (``ARCH_METADATA_KEY``), and ``"hwnas.input_shape"`` is added (as JSON) unless given. The file is written
    atomically: readers never see a partial model.

    Args:
        model: The network; its weights are embedded in the file.
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of one sample without the batch dimension, e.g. ``(C, H, W)``.
        batch_size: Batch size of the example input used for tracing (and the fixed batch size when
            ``dynamic_batch`` is False).
        metadata: String keys and values to store in the file.
        exporter: ``"torchscript"`` (default; fast, ~0.1-0.3 s for a small CNN) or ``"dynamo"``
            (``torch.export`` based, needs onnxscript; several seconds).
        opset: ONNX opset; default 17 for torchscript and 18 for dynamo (the lowest it implements).
        dynamic_batch: Leave the batch dimension symbolic so one file serves every batch size.

    Returns:
        The path written.

    Raises:
        ValueError: Bad arguments (unknown exporter, non-string metadata, opset below 18 with dynamo).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        >>> path = export_onnx(net, "net.onnx", (1, 8, 8), metadata={"hwnas.arch": "{}"})  # doctest: +SKIP
        >>> read_metadata(path)["hwnas.arch"]  # doctest: +SKIP
        '{}'
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {list(EXPORTERS)}, got {exporter!r}")
    if opset is None:
        opset = _DEFAULT_OPSET[exporter]
    if exporter == "dynamo" and opset < _DYNAMO_MIN_OPSET:
        raise ValueError(
            f"the dynamo exporter implements opset >= {_DYNAMO_MIN_OPSET}, got opset={opset}; "
            f"pass opset={_DYNAMO_MIN_OPSET} or exporter='torchscript'"
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    shape = _check_shape(input_shape)
    props: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"metadata keys and values must be strings, got {key!r}: {type(value).__name__}; "
                "encode structured values with json.dumps"
            )
        props[key] = value
    props.setdefault(INPUT_SHAPE_METADATA_KEY, json.dumps(list(shape)))

    target = Path(path)
    device = _model_device(model)
    with _eval_mode(model), _quiet_exporter(), torch.no_grad():
        if exporter == "torchscript":
            example = torch.zeros((batch_size, *shape), dtype=torch.float32, device=device)
            with tempfile.TemporaryDirectory(prefix="hwnas-export-") as tmp_dir:
                tmp_path = Path(tmp_dir) / "model.onnx"
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp_path),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_axes=(
                        {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
                    ),
                    do_constant_folding=True,
                    dynamo=False,
                )
                model_proto = onnx.load(str(tmp_path))
        else:
            # torch.export specialises sizes 0 and 1, so a symbolic batch is traced with at least 2 samples.
            trace_batch = max(batch_size, 2) if dynamic_batch else batch_size
            example = torch.zeros((trace_batch, *shape), dtype=torch.float32, device=device)
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None,
                dynamo=True,
                verbose=False,
            )
            if program is None:  # only happens when a file name is given, which is not the case here
                raise RuntimeError("the dynamo exporter returned no program")
            model_proto = program.model_proto

    del model_proto.metadata_props[:]
    for key, value in props.items():
        entry = model_proto.metadata_props.add()
        entry.key = key
        entry.value = value
    model_proto.producer_name = model_proto.producer_name or "hwnas"
    _atomic_save(model_proto, target)
    return target


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (weights are not loaded).

    Example:
        >>> arch = json.loads(read_metadata("models/3.onnx")[ARCH_METADATA_KEY])  # doctest: +SKIP
    """
    model_proto = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model_proto.metadata_props}


def verify_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_shape: Sequence[int],
    *,
    batch_size: int = 2,
    seed: int = 0,
) -> VerifyResult:
    """Checks an exported file and compares ONNX Runtime's output with PyTorch's on a random input.

    Runs ``onnx.checker.check_model(path, full_check=True)``, then feeds the same seeded standard-normal
    float32 batch to the model (in eval mode, on its device; its mode is restored) and to ONNX Runtime on the
    CPU.

    Args:
        model: The network the file was exported from.
        path: The ONNX file.
        input_shape: Shape of one sample without the batch dimension.
        batch_size: Samples to compare on; when the file's batch dimension is fixed, that size is used.
        seed: Seed of the input generator.

    Returns:
        The checker's verdict and the largest absolute output difference.

    Raises:
        ValueError: The file does not have one input and one output, or the output shapes differ.

    Example:
        >>> result = verify_onnx(net, "net.onnx", (1, 8, 8))  # doctest: +SKIP
        >>> result.ok(atol=1e-4)  # doctest: +SKIP
        True
    """
    import onnxruntime  # imported here: only verification needs a runtime

    shape = _check_shape(input_shape)
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"ONNX model not found: {target}")
    try:
        onnx.checker.check_model(str(target), full_check=True)
        checker_ok, checker_message = True, ""
    except onnx.checker.ValidationError as exc:
        checker_ok, checker_message = False, str(exc)

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        str(target), sess_options=options, providers=["CPUExecutionProvider"]
    )
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"{target} has {len(inputs)} inputs and {len(outputs)} outputs; verify_onnx compares models with "
            "one of each"
        )
    fixed_batch = inputs[0].shape[0]
    if isinstance(fixed_batch, int):
        batch_size = fixed_batch
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *shape), dtype=np.float32)
    (ort_out,) = session.run(None, {inputs[0].name: x})

    with _eval_mode(model), torch.no_grad():
        torch_out = model(torch.from_numpy(x).to(_model_device(model)))
    torch_np = torch_out.detach().to("cpu", torch.float32).numpy()
    ort_np = np.asarray(ort_out, dtype=np.float32)
    if ort_np.shape != torch_np.shape:
        raise ValueError(
            f"{target}: ONNX Runtime output has shape {ort_np.shape} but PyTorch's has {torch_np.shape}"
        )
    max_abs_diff = float(np.max(np.abs(ort_np - torch_np))) if ort_np.size else 0.0
    return VerifyResult(
        checker_ok=checker_ok,
        checker_message=checker_message,
        max_abs_diff=max_abs_diff,
        ort_output_shape=tuple(int(d) for d in ort_np.shape),
        batch_size=batch_size,
    )
