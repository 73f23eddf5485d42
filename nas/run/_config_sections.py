"""The sections of a search config (data, space, supernet, search, evaluation, budget, tracking, execution) as strict pydantic models."""


from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nas._errors import UsageError
from nas.run._objectives import (
    DEVICE_METRICS,
    OBJECTIVE_UNITS,
    objective_unit,
)

__all__ = ["DATASET_NAMES", "DATASET_OPTIONS", "BudgetConfig", "ConfigError", "DataConfig", "EvalConfig", "ExecutionConfig", "SearchSection", "SpaceConfig", "SupernetConfig", "TrackingConfig", "make_strategy", "parse_duration", "strategy_names"]


DATASET_NAMES = ("digits", "digits-hard", "cifar10", "folder", "python")


#: Options of each built-in dataset's loader that ``data.options`` may set (``limit`` has its own key).
DATASET_OPTIONS: dict[str, tuple[str, ...]] = {
    "digits": ("val_fraction", "test_fraction"),
    "digits-hard": ("val_fraction", "test_fraction", "copies", "noise"),
    "cifar10": ("val_fraction",),
    "folder": ("val_fraction", "test_fraction", "augment", "min_scale", "cache_mb", "stats_images"),
    "python": (),
}


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


#: longest run name: a folder name, with room for the files inside (most file systems allow 255 bytes)
_NAME_MAX = 100


def strategy_names() -> list[str]:
    """Names ``search.strategy`` accepts: hwnas's strategies, ``auto`` (picked by budget) and ``optuna:NAME``."""
    import search

    return list(search.strategy_names())


def make_strategy(section: SearchSection, *, seed: int) -> Any:
    """The strategy a search section names, with its options (and ``population`` where it has one); ``auto``
    picks by the section's number of trials, ``optuna:*`` wraps Optuna's samplers (an optional extra)."""
    import inspect

    import search

    options = dict(section.strategy_options)
    if section.strategy == "auto" and "population_size" not in options:
        options["population_size"] = section.population  # used if it picks a strategy with a population
    if section.strategy not in search.STRATEGIES:  # auto, optuna:*
        try:
            return search.make_strategy(section.strategy, seed=seed, budget=section.trials, **options)
        except ImportError as e:
            raise ValueError(f"strategy {section.strategy!r}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"strategy {section.strategy!r}: {e}") from None
    cls = search.STRATEGIES[section.strategy]
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(options) - set(params) - {"self"})
    if unknown:
        valid = [p for p in params if p not in ("self", "seed")]
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"strategy {section.strategy!r} has no option {unknown[0]!r}{hint} (valid: {', '.join(valid) or 'none'})"
        )
    if "population_size" in params and "population_size" not in options:
        options["population_size"] = section.population
    build: Callable[..., Any] = cls  # every strategy takes seed=; its options were checked above
    try:
        return build(seed=seed, **options)
    except TypeError as e:
        given = ", ".join(f"{k}={v!r}" for k, v in section.strategy_options.items())
        raise ValueError(f"strategy {section.strategy!r}: an option has the wrong type ({given}): {e}") from None
    except ValueError as e:
        raise ValueError(f"strategy {section.strategy!r}: {e}") from None


class ConfigError(UsageError, ValueError):
    """A configuration mistake, described in one line that says what is valid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        """``true`` is not a count: a number field given a boolean is refused (pydantic would read it as 1)."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if isinstance(value, bool) and field is not None and _is_number(field.annotation):
                    raise ValueError(f"{key} must be a number, got {str(value).lower()}")
        return data


def _is_number(annotation: Any) -> bool:
    """Whether a field holds a number (``int``, ``float``, or either or None) and no boolean."""
    args = getattr(annotation, "__args__", None)
    options = set(args) if args else {annotation}
    return bool(options & {int, float}) and bool not in options


class DataConfig(_Section):
    """Which dataset, and where it lives."""

    name: str = "digits"
    root: str | None = None
    limit: int | None = Field(default=None, gt=0)
    #: side the images of a ``folder`` dataset are resized and cropped to (32 when unset)
    image_size: int | None = Field(default=None, ge=4)
    #: DataLoader processes that decode a ``folder`` dataset's training images (0: the training process)
    workers: int = Field(default=0, ge=0)
    #: Further options of the dataset's loader, e.g. ``{copies: 8}`` for digits-hard (the loader checks
    #: their values when the data is read).
    options: dict[str, int | float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DATASET_NAMES:
            raise ValueError(f"unknown dataset {v!r}; valid: {', '.join(DATASET_NAMES)}")
        return v

    @model_validator(mode="after")
    def _known_options(self) -> DataConfig:
        valid = DATASET_OPTIONS[self.name]
        for key in self.options:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"dataset {self.name!r} has no option {key!r}{hint} (valid: {', '.join(valid)})"
                )
        return self

    @model_validator(mode="after")
    def _root_exists(self) -> DataConfig:
        if self.image_size is not None and self.name != "folder":
            raise ValueError(f"data.image_size applies to the folder dataset; {self.name} has a fixed size")
        if self.name in ("cifar10", "folder"):
            if self.root is None:
                what = "cifar-10-batches-py" if self.name == "cifar10" else "one sub-folder of images per class"
                raise ValueError(f"dataset {self.name} needs 'root': the folder holding {what} (nothing is downloaded)")
            if not Path(self.root).expanduser().is_dir():
                raise ValueError(f"dataset root {self.root!r} is not a folder")
        return self


class SupernetConfig(_Section):
    """How the weight-sharing supernet is shaped and trained."""

    epochs: int = Field(default=20, ge=1)
    #: independently seeded supernets (member k: seed + k), each trained ``epochs``; a candidate's error is
    #: their mean, and its exported model is the member's subnet that scored best (see docs/architecture.md)
    members: int = Field(default=1, ge=1, le=16)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=0.1, gt=0)
    weight_decay: float = Field(default=3e-5, ge=0)
    num_random: int = Field(default=2, ge=0)
    distill: float = Field(default=1.0, ge=0, le=1)
    average_last: float = Field(default=0.0, ge=0, le=1)
    shift: int = Field(default=0, ge=0)
    flip: bool = False
    zero_init_residual: bool = False
    #: where training, recalibration, validation and fine-tuning run: auto (CUDA when torch sees a GPU),
    #: cpu, cuda or cuda:N; the hardware profile's device, where models are measured, is independent
    device: str = "auto"
    #: training precision: auto (bf16 on GPUs that have it, else fp16 with a gradient scaler; fp32 on the
    #: CPU), bf16, fp16 or fp32
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    stage_channels: tuple[int, ...] | None = None
    stage_strides: tuple[int, ...] | None = None
    depth_choices: tuple[int, ...] | None = None
    kernel_choices: tuple[int, ...] | None = None
    expand_choices: tuple[int, ...] | None = None
    width_choices: tuple[float, ...] | None = None

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        if not re.match(r"^(auto|cpu|cuda(:\d+)?)$", v):
            raise ValueError(f"unknown device {v!r}; valid: auto, cpu, cuda, cuda:N")
        return v

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`nas.train_supernet` that this section sets."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "num_random": self.num_random,
            "distill": self.distill,
            "average_last": self.average_last,
            "shift": self.shift,
            "flip": self.flip,
            "precision": self.precision,
        }

    def spec_overrides(self) -> dict[str, Any]:
        keys = (
            "stage_channels",
            "stage_strides",
            "depth_choices",
            "kernel_choices",
            "expand_choices",
            "width_choices",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class SpaceConfig(_Section):
    """Which search space: a built-in family (``mobilenet``, ``vit``) or a user's class ``"package.module:Class"``."""

    name: str = "mobilenet"
    #: the space's own options, passed to its ``for_input`` (e.g. ``{preset: cifar}`` or ``{embed_choices: [64, 96]}``)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _resolvable(cls, v: str) -> str:
        from nas.spaces import SpaceError, resolve_space

        try:
            resolve_space(v)
        except SpaceError as e:
            raise ValueError(str(e)) from None
        return v


class SearchSection(_Section):
    """The search itself: strategy, budget, objectives, constraints."""

    strategy: str = "auto"
    trials: int = Field(default=120, ge=1)
    population: int = Field(default=16, ge=2)
    objectives: tuple[str, ...] = ("error", "latency_ms")
    constraints: tuple[str, ...] = ()
    #: keyword arguments of the strategy's constructor, e.g. {min_fidelity: 0.25, eta: 3} for bayes
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    #: when no trial meets the constraints, still export the least-violating models (marked infeasible)
    export_infeasible: bool = False

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        names = strategy_names()
        if v not in names:
            raise ValueError(f"unknown strategy {v!r}; valid: {', '.join(names)}")
        return v

    @model_validator(mode="after")
    def _strategy_accepts_options(self) -> SearchSection:
        make_strategy(self, seed=0)  # a wrong option fails here, with the strategy's own message
        return self

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one objective is needed")
        for name in v:
            try:
                objective_unit(name)
            except KeyError:
                raise ValueError(
                    f"unknown objective {name!r}; valid: {', '.join(OBJECTIVE_UNITS)}, "
                    f"{', '.join(f'{m}@PROFILE' for m in DEVICE_METRICS)}"
                ) from None
        if len(set(v)) != len(v):
            raise ValueError(f"objectives are repeated: {list(v)}")
        return v

    @field_validator("constraints")
    @classmethod
    def _parse_constraints(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from search import Constraint

        for text in v:
            c = Constraint.parse(text)
            if c.metric not in OBJECTIVE_UNITS and c.metric.partition("@")[0] not in DEVICE_METRICS:
                raise ValueError(
                    f"constraint {text!r} bounds unknown metric {c.metric!r}; valid: {', '.join(OBJECTIVE_UNITS)}"
                )
        return v


class EvalConfig(_Section):
    """How each candidate is scored."""

    calib_samples: int = Field(default=256, ge=16)
    val_fraction: float = Field(default=1.0, gt=0, le=1)
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    finetune_steps: int = Field(
        default=0,
        ge=0,
        description="SGD steps of fine-tuning per candidate at fidelity 1 (fidelity f: f x steps)",
    )
    finetune_lr: float = Field(default=0.01, gt=0)
    export_finetune_steps: int = Field(
        default=0,
        ge=0,
        description="SGD steps of fine-tuning each front model gets before it is exported (after the search; "
        "its own validation and test errors are measured after them)",
    )
    latency: Literal["auto", "measure", "predict"] = Field(
        default="auto",
        description="with a profile's lookup table: predict at low fidelity or away from the device (auto), "
        "always measure, or always predict",
    )
    #: int8: each front model also statically quantized, its error and latency measured (nas/run/_int8.py);
    #: a model losing more than int8_max_drop points of accuracy is flagged
    quantize: Literal["none", "int8"] = "none"
    int8_max_drop: float = Field(default=1.0, ge=0)
    int8_calibration: int = Field(default=256, ge=1, description="training images calibrating INT8 ranges")
    #: activations of the INT8 models: uint8 (asymmetric) or int8 (symmetric, ONNX Runtime's QDQ default);
    #: auto takes uint8 for a profile measured on this machine's x86 CPU with ONNX Runtime's CPU provider
    #: (there int8 activations leave residual additions in float, BENCHMARKS.md (k)), int8 elsewhere
    int8_activations: Literal["auto", "int8", "uint8"] = "auto"
    #: with quantize: int8, score every candidate as INT8 too (error_int8, latency_ms_int8; at fidelity f on
    #: that share of the validation split)
    quantize_candidates: bool = False

    @model_validator(mode="after")
    def _candidates_need_int8(self) -> EvalConfig:
        if self.quantize_candidates and self.quantize != "int8":
            raise ValueError("evaluation.quantize_candidates needs evaluation.quantize: int8")
        return self


class BudgetConfig(_Section):
    """Limits that stop a search cleanly; the front found so far is still exported and reported."""

    max_energy_kwh: float | None = Field(default=None, gt=0)
    max_co2_kg: float | None = Field(default=None, gt=0)
    max_time: float | None = Field(default=None, gt=0, description="seconds of wall time for the whole run")

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class TrackingConfig(_Section):
    """How the energy and emissions of the search itself are tracked (codecarbon)."""

    enabled: bool = True
    country_iso_code: str | None = Field(default=None, min_length=3, max_length=3)
    region: str | None = None

    @field_validator("country_iso_code")
    @classmethod
    def _known_country(cls, v: str | None) -> str | None:
        if v is None:
            return v
        code = v.upper()
        if not code.isalpha() or not _is_country(code):
            raise ValueError(f"unknown country code {v!r}; give an ISO 3166 alpha-3 code, e.g. DEU, FRA, USA")
        return code
    online: bool = False
    measure_power_secs: float = Field(default=5.0, gt=0)


class ExecutionConfig(_Section):
    """Where candidates are evaluated, and how long one may take."""

    workers: int = Field(default=0, ge=0, description="0: in this process; N: a local Dask cluster")
    scheduler: str | None = None
    trial_timeout_s: float | None = Field(default=None, gt=0)
    #: allow more workers or threads than this machine has cores, or more workers than fit in the memory
    #: available (refused otherwise)
    oversubscribe: bool = False

    @model_validator(mode="after")
    def _one_place(self) -> ExecutionConfig:
        if self.workers and self.scheduler:
            raise ValueError(
                "give execution.workers (a local cluster) or execution.scheduler (an existing one), not both"
            )
        return self

    @field_validator("scheduler")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(tcp|tls|inproc|ucx)://\S+$", v):
            raise ValueError(f"scheduler must be an address like tcp://HOST:8786, got {v!r}")
        return v


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)


_DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"``.

    Example:
        >>> parse_duration("15m"), parse_duration("2h"), parse_duration("30")
        (900.0, 7200.0, 30.0)
    """
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(
            f"a duration is a number with an optional unit s, m, h or d (e.g. 30m), got {text!r}"
        )
    return float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]


def _is_country(code: str) -> bool:
    """Whether ``code`` is an ISO 3166 alpha-3 country (any three letters where pycountry is missing)."""
    try:
        import pycountry
    except ImportError:
        return len(code) == 3
    return pycountry.countries.get(alpha_3=code) is not None
