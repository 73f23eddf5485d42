"""The files of a run directory other than ``study.db``, as one schema that the writer and the report share.

``pareto.json``, ``sustainability.json`` and ``timings.json`` are written through these models and read back
through them, so the two sides cannot drift apart. Each file carries ``format_version``: a file written before
versioning reads as version 0 (same fields, fewer of them); a file from a newer hwnas is refused with a message
rather than misread. Unknown keys are kept (``extra="allow"``): a reader ignores what it does not know.

This is a leaf module (pydantic only), so that the run, the sustainability tracker and the report all use it
without importing each other.

Example:
    >>> p = ParetoFile(objectives=[ObjectiveEntry(name="error", direction="minimize", unit="%")], models=[])
    >>> ParetoFile.read_text(p.to_json()).format_version == FORMAT_VERSION
    True
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "FORMAT_VERSION",
    "ModelEntry",
    "ObjectiveEntry",
    "ParetoFile",
    "RunFileError",
    "SustainabilityFile",
    "TimingsFile",
]

#: Version of the run-directory files this hwnas writes; bump it when a field changes meaning.
FORMAT_VERSION = 1


class RunFileError(ValueError):
    """A run-directory file that is not what its schema says; the message names the file's problem."""


class _File(BaseModel):
    model_config = ConfigDict(extra="allow")

    #: 0 for files written before the format was versioned
    format_version: int = 0

    @classmethod
    def read_text(cls, text: str, *, name: str | None = None) -> Any:
        """Parses and validates a file's text; :class:`RunFileError` says what is wrong."""
        name = name or cls.__name__
        try:
            data = json.loads(text)
        except ValueError as e:
            raise RunFileError(f"{name} is not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise RunFileError(f"{name} does not hold a JSON object")
        version = data.get("format_version", 0)
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise RunFileError(
                f"{name} has format version {version}, newer than this hwnas reads ({FORMAT_VERSION}): "
                "upgrade hwnas to read it"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RunFileError(f"{name}: {where}: {err['msg']}") from None

    def to_json(self) -> str:
        """The file's text, stamped with the current format version."""
        return json.dumps({**self.model_dump(mode="json"), "format_version": FORMAT_VERSION}, indent=2)


class ObjectiveEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    direction: Literal["minimize", "maximize"] = "minimize"
    unit: str = ""
    reference: float | None = None


class ModelEntry(BaseModel):
    """One exported model of the front."""

    model_config = ConfigDict(extra="allow")

    id: int
    arch: dict[str, Any]
    #: each objective's value as the search ranked it, then the other metrics
    metrics: dict[str, float]
    #: the ONNX file, relative to the run directory
    onnx: str
    test_error: float | None = None
    validation_error: float | None = None
    member: int = 0
    finetune_steps: int = 0
    max_abs_diff: float | None = None
    energy_method: str | None = None
    #: the statically quantized twin (``evaluation.quantize: int8``): ``{"onnx", "error", "latency_ms",
    #: "size_bytes", "drop_pct", "flagged", ...}``, where ``error`` is its validation error (%) and
    #: ``flagged`` says it lost more accuracy than ``evaluation.int8_max_drop`` allows
    int8: dict[str, Any] | None = None
    #: whether the model meets every constraint of the search (None in files written before this was recorded)
    feasible: bool | None = None


class ParetoFile(_File):
    """``pareto.json``: the objectives, the hypervolume and its reference point, the exported models."""

    objectives: list[ObjectiveEntry]
    hypervolume: float | None = None
    reference: dict[str, float | None] = Field(default_factory=dict)
    models: list[ModelEntry]
    #: how energy figures were obtained (per inference, mJ), when energy was measured or estimated
    energy: dict[str, Any] | None = None
    #: what a reader must know before trusting the front (e.g. an undertrained supernet), one line each
    warnings: list[str] = Field(default_factory=list)
    #: with several profiles: each profile's front (error against that profile's cost), as model ids
    fronts: dict[str, list[int]] | None = None
    #: the metric each profile's front ranks cost by (``latency_ms@NAME`` or ``energy_mj@NAME``)
    front_costs: dict[str, str] | None = None
    #: profiles whose latency was predicted by a transfer fit (``hwnas profile-device --few``): the fit and
    #: its leave-one-out error against measurement, by profile name
    latency_transfer: dict[str, dict[str, Any]] | None = None
    #: whether any trial met every constraint; when none did, ``models`` holds the least-violating ones only
    #: if they were asked for (``--export-infeasible``), each marked ``feasible: false``
    feasible: bool | None = None
    #: the study this file was derived from: ``{"trials", "finished"}``; a resume rebuilds the file when
    #: ``study.db`` has moved on
    study: dict[str, int] | None = None


class SustainabilityFile(_File):
    """``sustainability.json``: what the search cost, by phase, and how each figure was obtained."""

    tracker: dict[str, Any] = Field(default_factory=dict)
    hardware: dict[str, Any] | None = None
    phases: list[dict[str, Any]] = Field(default_factory=list)
    total: dict[str, Any] = Field(default_factory=dict)
    sessions: int = 1
    stopped_by: dict[str, Any] | None = None


class TimingsFile(_File):
    """``timings.json``: wall seconds per phase of the search (``search.accuracy`` and the like are parts of
    ``search``). Files of version 0 hold the mapping at the top level."""

    seconds: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def read_text(cls, text: str, *, name: str | None = None) -> TimingsFile:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise RunFileError(f"{name or 'timings.json'} is not valid JSON ({e})") from None
        if isinstance(data, dict) and "format_version" not in data:  # version 0: a flat mapping
            data = {"seconds": {k: v for k, v in data.items() if isinstance(v, (int, float))}}
        return super().read_text(json.dumps(data), name=name or "timings.json")
