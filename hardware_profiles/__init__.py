"""Hardware profiles: how to run a model on one target device, as a frozen, validated model loaded from YAML.

A profile says which runtime (ONNX Runtime with its execution providers, or PyTorch eager) to use, with how
many threads, at which batch size and input shape, how many warm-up and timed runs a latency measurement takes,
how energy is obtained (NVML, RAPL or an estimate; ``auto`` picks), and the power model used when energy cannot
be measured (idle and TDP watts; ``None`` when unknown, never guessed).

Profiles ship as ``hardware_profiles/<name>.yaml``: ``local-cpu`` (the default) describes the CPU of the
machine hwnas runs on, ``local-cuda`` its first NVIDIA GPU. This package imports only the standard library,
PyYAML and pydantic.

Example:
    >>> from hardware_profiles import load_profile
    >>> profile = load_profile("local-cpu")
    >>> profile.providers
    ('CPUExecutionProvider',)
    >>> profile.timed_runs >= 30
    True
    >>> profile.energy, profile.energy_min_duration_s
    ('auto', 1.0)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

__all__ = [
    "DEFAULT_PROFILE",
    "DEVICES",
    "ENERGY_SOURCES",
    "MIN_TIMED_RUNS",
    "RUNTIMES",
    "HardwareProfile",
    "ProfileError",
    "available_profiles",
    "load_profile",
    "profile_path",
]

PROFILES_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = "local-cpu"
# Fewer timed runs give medians and IQRs too noisy to rank architectures whose latencies differ by a few %.
MIN_TIMED_RUNS = 30
Device = Literal["cpu", "cuda"]
Runtime = Literal["onnxruntime", "torch"]
# How energy is obtained: "auto" measures with NVML (cuda) or RAPL (cpu) where readable, else estimates.
EnergySource = Literal["auto", "nvml", "rapl", "estimate"]
DEVICES: tuple[str, ...] = get_args(Device)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
ENERGY_SOURCES: tuple[str, ...] = get_args(EnergySource)
# ONNX Runtime execution providers that run on an NVIDIA GPU.
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

# Strict: YAML's `true` is no count and "5" no number; an int where a float is asked for is fine.
_Count = Annotated[int, Strict(), Field(ge=1)]
_Float = Annotated[float, Strict()]
_Dim = Annotated[int, Strict(), Field(ge=1)]
ProviderOptionValue = StrictStr | StrictInt | StrictFloat | StrictBool


class ProfileError(ValueError):
    """A hardware profile is missing, malformed or inconsistent. The message says what to change."""


class HardwareProfile(BaseModel):
    """How to run and measure a model on one target device.

    Construct it with keywords (every value is validated at once; a mistake raises :class:`ProfileError`) and
    derive a changed copy with :meth:`replace`, which validates again.

    Attributes:
        name: Profile name (the YAML file's stem for shipped profiles).
        description: One line for people: which machine this is.
        device: ``"cpu"`` or ``"cuda"``; measurements on one device never overlap.
        runtime: Inference runtime: ``"onnxruntime"`` (ONNX files) or ``"torch"`` (PyTorch eager modules).
        providers: ONNX Runtime execution providers in priority order, e.g. ``("CPUExecutionProvider",)``.
            With ``device: cuda`` and ONNX Runtime, the first must run on the GPU (CUDA or TensorRT).
        provider_options: One options dict per provider (e.g. ``{"device_id": 0}``), or empty for defaults.
            The first provider's ``device_id`` (default 0) also names the GPU for NVML and for PyTorch.
        intra_op_threads: Threads the runtime uses inside one operator.
        inter_op_threads: Threads ONNX Runtime uses across operators (sequential execution uses one).
        batch_size: Batch size latency is measured at.
        input_shape: ``(C, H, W)`` of one sample, or ``None`` to take it from the dataset.
        warmup_runs: Untimed runs before timing starts.
        timed_runs: Timed runs; at least ``MIN_TIMED_RUNS``.
        timing_rounds: Sessions one latency measurement opens and times (warm-up and ``timed_runs`` runs
            each); the lowest median is kept. Interference only ever adds time, and a session's speed can
            depend on where its buffers landed, so a few rounds give a figure that repeats (1: one session).
        quiet_gate: Count only timed runs taken while the CPU is undisturbed, judged by a tiny probe run
            between them (:class:`profilers.QuietGate`): for shared machines, where other tenants slow a core
            down in phases. ``device: cpu`` only.
        quiet_tolerance: How far above its fastest time the probe may be for a run to count (0.25: 25 %).
        quiet_max_s: Most seconds one measurement waits for quiet runs; after that it reports every run and
            flags the figure as disturbed.
        quiet_retries: How many more times a measurement the gate flagged as disturbed is timed again (a
            fresh ONNX Runtime session each time, waiting up to ``quiet_max_s`` again); a quiet result is kept where one
            comes. 0: report the disturbed figure at once.
        energy: How energy is obtained: ``"nvml"`` (NVIDIA GPU counters, ``device: cuda``), ``"rapl"`` (CPU
            counters under ``/sys/class/powercap``, ``device: cpu``), ``"estimate"`` (the power model below) or
            ``"auto"`` (measure where possible, else estimate, and say why).
        energy_min_duration_s: Seconds an energy measurement keeps running inferences (> 0), so that the
            counters' granularity does not dominate; 1 s by default.
        subtract_idle: Report energy above idle power (the device's idle draw during the measurement removed).
        idle_w: Idle power of the device in watts, or ``None`` when unknown.
        tdp_w: Thermal design power of the device in watts, or ``None`` when unknown.
        carbon_region: Grid region for CO2e accounting (e.g. an ISO 3166 code), or ``None``.
        lut: Path of a latency/energy lookup table measured on this device, or ``None``. A relative path in a
            profile file is taken relative to that file's folder.

    Example:
        >>> HardwareProfile(name="tiny", timed_runs=30).intra_op_threads
        1
        >>> HardwareProfile(name="tiny").replace(batch_size=8).batch_size
        8
        >>> try:
        ...     HardwareProfile(name="bad", timed_runs=5)
        ... except ProfileError as exc:
        ...     print(exc)
        profile 'bad': timed_runs must be an integer >= 30 for a stable median and IQR, got 5
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1)]
    description: StrictStr = ""
    device: Device = "cpu"
    runtime: Runtime = "onnxruntime"
    providers: Annotated[tuple[Annotated[StrictStr, Field(min_length=1)], ...], Field(min_length=1)] = (
        "CPUExecutionProvider",
    )
    # Dicts are not hashable, so these options take no part in the profile's hash (they still compare).
    provider_options: tuple[dict[StrictStr, ProviderOptionValue], ...] = ()
    intra_op_threads: _Count = 1
    inter_op_threads: _Count = 1
    batch_size: _Count = 1
    input_shape: tuple[_Dim, _Dim, _Dim] | None = None
    warmup_runs: Annotated[int, Strict(), Field(ge=0)] = 10
    timed_runs: Annotated[int, Strict(), Field(ge=MIN_TIMED_RUNS)] = 50
    timing_rounds: _Count = 1
    quiet_gate: StrictBool = False
    quiet_tolerance: Annotated[_Float, Field(gt=0, le=10)] = 0.25
    quiet_max_s: Annotated[_Float, Field(gt=0)] = 2.0
    quiet_retries: Annotated[int, Strict(), Field(ge=0)] = 0
    energy: EnergySource = "auto"
    energy_min_duration_s: Annotated[_Float, Field(gt=0)] = 1.0
    subtract_idle: StrictBool = False
    idle_w: Annotated[_Float, Field(ge=0)] | None = None
    tdp_w: Annotated[_Float, Field(ge=0)] | None = None
    carbon_region: StrictStr | None = None
    lut: Path | None = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ProfileError(_describe(exc, values)) from None

    def replace(self, **changes: Any) -> HardwareProfile:
        """A copy with ``changes`` applied, validated like a new profile.

        Raises:
            ProfileError: A change is not a field, or makes the profile invalid.

        Example:
            >>> HardwareProfile(name="a").replace(name="b", timed_runs=300).timed_runs
            300
        """
        return type(self)(**{**{key: getattr(self, key) for key in _FIELDS}, **changes})

    def __hash__(self) -> int:
        options = tuple(tuple(sorted(o.items())) for o in self.provider_options)
        return hash((*(getattr(self, key) for key in _FIELDS if key != "provider_options"), options))

    @model_validator(mode="after")
    def _consistent(self) -> HardwareProfile:
        providers, options = self.providers, self.provider_options
        if options and len(options) != len(providers):
            raise ValueError(
                f"provider_options has {len(options)} entries but providers has {len(providers)}; "
                "give one mapping per provider ({} for defaults) or none at all"
            )
        device_id = options[0].get("device_id", 0) if options else 0
        if isinstance(device_id, str) and device_id.isdigit():  # ONNX Runtime takes option values as strings
            device_id = int(device_id)
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            raise ValueError(f"provider_options device_id must be a GPU index >= 0, got {device_id!r}")
        if self.runtime == "onnxruntime":
            on_gpu = providers[0] in _GPU_PROVIDERS
            if self.device == "cuda" and not on_gpu:
                raise ValueError(
                    f"device 'cuda' needs a GPU execution provider first in providers "
                    f"({' or '.join(_GPU_PROVIDERS)}), got {providers[0]!r}"
                )
            if self.device == "cpu" and on_gpu:
                raise ValueError(
                    f"providers start with {providers[0]!r}, which runs on a GPU; set device: cuda"
                )
        if self.energy == "nvml" and self.device != "cuda":
            raise ValueError(
                f"energy 'nvml' measures NVIDIA GPUs, but device is {self.device!r}; "
                "use rapl, estimate or auto for a CPU"
            )
        if self.energy == "rapl" and self.device != "cpu":
            raise ValueError(
                f"energy 'rapl' measures CPUs, but device is {self.device!r}; use nvml, estimate or auto for a GPU"
            )
        if self.quiet_gate and self.device != "cpu":
            raise ValueError(
                "quiet_gate watches the CPU and cannot see contention on a GPU; "
                f"set it to false for device {self.device!r}"
            )
        if self.idle_w is not None and self.tdp_w is not None and self.idle_w > self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w} W) is above tdp_w ({self.tdp_w} W)")
        return self

    @property
    def has_power_model(self) -> bool:
        """Whether both idle and TDP watts are known, so energy can be estimated without a meter."""
        return self.idle_w is not None and self.tdp_w is not None

    @property
    def device_id(self) -> int:
        """Index of the GPU (the first provider's ``device_id`` option, default 0); 0 for a CPU.

        Example:
            >>> HardwareProfile(name="g", device="cuda", providers=("CUDAExecutionProvider",),
            ...                 provider_options=({"device_id": 1},)).device_id
            1
        """
        if self.device != "cuda" or not self.provider_options:
            return 0
        return int(self.provider_options[0].get("device_id", 0))


_FIELDS = tuple(HardwareProfile.model_fields)
# What each key accepts, for messages about a value of the wrong type or range.
_VALID = {
    "description": "a string",
    "device": f"one of {list(DEVICES)}",
    "runtime": f"one of {list(RUNTIMES)}",
    "providers": "a non-empty list of ONNX Runtime provider names, e.g. [CPUExecutionProvider]",
    "provider_options": "a list with one mapping per provider (or empty), from option names to strings or numbers",
    "intra_op_threads": "an integer >= 1",
    "inter_op_threads": "an integer >= 1",
    "batch_size": "an integer >= 1",
    "input_shape": "[C, H, W] with three positive integers (or null to use the dataset's)",
    "warmup_runs": "an integer >= 0",
    "timed_runs": f"an integer >= {MIN_TIMED_RUNS} for a stable median and IQR",
    "timing_rounds": "an integer >= 1",
    "quiet_gate": "true or false",
    "quiet_tolerance": "in (0, 10]",
    "quiet_max_s": "a positive number of seconds",
    "quiet_retries": "an integer >= 0",
    "energy": f"one of {list(ENERGY_SOURCES)}",
    "energy_min_duration_s": "a positive number of seconds (1.0 is a good default)",
    "subtract_idle": "true or false",
    "idle_w": "a non-negative number of watts or null",
    "tdp_w": "a non-negative number of watts or null",
    "carbon_region": "a string (a grid region such as DE) or null",
    "lut": "a file path or null",
}


def _describe(exc: ValidationError, values: Mapping[str, Any]) -> str:
    """One line for the first mistake (an unknown key first: it explains the rest), naming the profile, the
    key, the value and what is valid."""
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    name = values.get("name")
    where = f"profile {name!r}" if isinstance(name, str) and name else "a hardware profile"
    if not error["loc"]:  # a rule across keys; its message names them
        return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
    key = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, _FIELDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown key {key!r}{hint} Valid keys: {', '.join(_FIELDS)}"
    if key == "name":
        return f"a hardware profile needs a non-empty string 'name', got {values.get('name')!r}"
    return f"{where}: {key} must be {_VALID[key]}, got {values.get(key)!r}"


def available_profiles() -> list[str]:
    """Names of the profiles shipped in this package, sorted.

    Example:
        >>> "local-cpu" in available_profiles()
        True
    """
    names = {p.stem for p in PROFILES_DIR.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()}
    return sorted(names)


def _is_path_like(name_or_path: str | os.PathLike[str]) -> bool:
    if isinstance(name_or_path, os.PathLike):
        return True
    text = str(name_or_path)
    return (
        "/" in text
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.endswith((".yaml", ".yml"))
    )


def profile_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The YAML file a profile name or path refers to (see :func:`load_profile`)."""
    if _is_path_like(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ProfileError(f"hardware profile file not found: {path}")
        return path
    name = str(name_or_path)
    for suffix in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    available = available_profiles()
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ProfileError(
        f"unknown hardware profile {name!r}{hint} Available: {', '.join(available) or '(none)'}; "
        "or pass the path of a .yaml file"
    )


def load_profile(name_or_path: str | os.PathLike[str] = DEFAULT_PROFILE) -> HardwareProfile:
    """Loads and validates a hardware profile.

    Args:
        name_or_path: A bare name (``"local-cpu"``) loads ``hardware_profiles/<name>.yaml``; a string with a
            path separator or ending in ``.yaml``/``.yml``, or any ``os.PathLike``, loads that file.

    Returns:
        The validated profile. ``name`` defaults to the file's stem; a relative ``lut`` path is resolved
        against the file's folder.

    Raises:
        ProfileError: The profile does not exist, is not valid YAML, has unknown keys (the closest known key
            is suggested) or values of the wrong type or range.

    Example:
        >>> load_profile("local-cpu").device
        'cpu'
    """
    path = profile_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"hardware profile {path} is not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); a profile is YAML"
        ) from None
    except OSError as exc:
        raise ProfileError(f"hardware profile {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ProfileError(f"hardware profile {path} is not valid YAML{at}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(
            f"hardware profile {path} must be a mapping of keys to values, got {type(data).__name__}"
        )
    values = {str(key): value for key, value in data.items()}
    values.setdefault("name", path.stem)
    lut = values.get("lut")
    if isinstance(lut, str) and lut:  # other values are left to the model to refuse
        lut_path = Path(lut).expanduser()
        values["lut"] = lut_path if lut_path.is_absolute() else path.parent / lut_path
    try:
        return HardwareProfile(**values)
    except ProfileError as exc:
        raise ProfileError(f"{exc} (in {path})") from None
