"""Hardware profiles: how to run a model on one target device, as a frozen dataclass loaded from YAML.

A profile says which runtime (ONNX Runtime with its execution providers, or PyTorch eager) to use, with how
many threads, at which batch size and input shape, how many warm-up and timed runs a latency measurement takes,
how energy is obtained (NVML, RAPL or an estimate; ``auto`` picks), and the power model used when energy cannot
be measured (idle and TDP watts; ``None`` when unknown, never guessed).

Profiles ship as ``hardware_profiles/<name>.yaml``: ``local-cpu`` (the default) describes the CPU of the
machine hwnas runs on, ``local-cuda`` its first NVIDIA GPU. This package imports only the standard library and
PyYAML.

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

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

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
DEVICES = ("cpu", "cuda")
RUNTIMES = ("onnxruntime", "torch")
# How energy is obtained: "auto" measures with NVML (cuda) or RAPL (cpu) where readable, else estimates.
ENERGY_SOURCES = ("auto", "nvml", "rapl", "estimate")
# ONNX Runtime execution providers that run on an NVIDIA GPU.
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

ProviderOptionValue = str | int | float | bool


class ProfileError(ValueError):
    """A hardware profile is missing, malformed or inconsistent. The message says what to change."""


@dataclass(frozen=True, kw_only=True)
class HardwareProfile:
    """How to run and measure a model on one target device.

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
        lut: Path of a latency/energy lookup table measured on this device, or ``None``.

    Example:
        >>> HardwareProfile(name="tiny", timed_runs=30).intra_op_threads
        1
        >>> try:
        ...     HardwareProfile(name="bad", timed_runs=5)
        ... except ProfileError as exc:
        ...     print(exc)
        profile 'bad': timed_runs must be >= 30 for a stable median and IQR, got 5
    """

    name: str
    description: str = ""
    device: str = "cpu"
    runtime: str = "onnxruntime"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    # Dicts are not hashable, so these options take no part in the profile's hash (they still compare).
    provider_options: tuple[Mapping[str, ProviderOptionValue], ...] = field(default=(), hash=False)
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    batch_size: int = 1
    input_shape: tuple[int, int, int] | None = None
    warmup_runs: int = 10
    timed_runs: int = 50
    timing_rounds: int = 1
    quiet_gate: bool = False
    quiet_tolerance: float = 0.25
    quiet_max_s: float = 2.0
    quiet_retries: int = 0
    energy: str = "auto"
    energy_min_duration_s: float = 1.0
    subtract_idle: bool = False
    idle_w: float | None = None
    tdp_w: float | None = None
    carbon_region: str | None = None
    lut: Path | None = None

    def __post_init__(self) -> None:
        where = f"profile {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ProfileError("a hardware profile needs a non-empty string 'name'")
        _check_str(where, "description", self.description)
        _check_str(where, "device", self.device)
        if self.device not in DEVICES:
            raise ProfileError(f"{where}: device must be one of {list(DEVICES)}, got {self.device!r}")
        _check_str(where, "runtime", self.runtime)
        if self.runtime not in RUNTIMES:
            raise ProfileError(f"{where}: runtime must be one of {list(RUNTIMES)}, got {self.runtime!r}")
        providers = self.providers
        if isinstance(providers, str) or not isinstance(providers, (tuple, list)):
            raise ProfileError(
                f"{where}: providers must be a list of ONNX Runtime provider names, "
                f"e.g. [CPUExecutionProvider], got {providers!r}"
            )
        if not providers or not all(isinstance(p, str) and p for p in providers):
            raise ProfileError(
                f"{where}: providers must be a non-empty list of provider names, got {providers!r}"
            )
        object.__setattr__(self, "providers", tuple(providers))
        options = self.provider_options
        if not isinstance(options, (tuple, list)) or not all(isinstance(o, Mapping) for o in options):
            raise ProfileError(
                f"{where}: provider_options must be a list with one mapping per provider "
                f"(or empty), got {options!r}"
            )
        if options and len(options) != len(self.providers):
            raise ProfileError(
                f"{where}: provider_options has {len(options)} entries but providers has "
                f"{len(self.providers)}; give one mapping per provider ({{}} for defaults) or none at all"
            )
        for opts in options:
            for key, value in opts.items():
                if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
                    raise ProfileError(
                        f"{where}: provider_options entries map option names to strings or numbers, "
                        f"got {key!r}: {value!r}"
                    )
        object.__setattr__(self, "provider_options", tuple(dict(o) for o in options))
        if self.runtime == "onnxruntime":
            on_gpu = self.providers[0] in _GPU_PROVIDERS
            if self.device == "cuda" and not on_gpu:
                raise ProfileError(
                    f"{where}: device 'cuda' needs a GPU execution provider first in providers "
                    f"({' or '.join(_GPU_PROVIDERS)}), got {self.providers[0]!r}"
                )
            if self.device == "cpu" and on_gpu:
                raise ProfileError(
                    f"{where}: providers start with {self.providers[0]!r}, which runs on a GPU; "
                    "set device: cuda"
                )
        device_id = self.provider_options[0].get("device_id", 0) if self.provider_options else 0
        if isinstance(device_id, str) and device_id.isdigit():
            device_id = int(device_id)
        if not _is_int(device_id) or device_id < 0:
            raise ProfileError(
                f"{where}: provider_options device_id must be a GPU index >= 0, got {device_id!r}"
            )
        for key in (
            "intra_op_threads", "inter_op_threads", "batch_size", "warmup_runs", "timed_runs", "timing_rounds",
            "quiet_retries",
        ):  # fmt: skip
            value = getattr(self, key)
            minimum = 0 if key in ("warmup_runs", "quiet_retries") else 1
            if not _is_int(value) or value < minimum:
                raise ProfileError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
        _check_str(where, "energy", self.energy)
        if self.energy not in ENERGY_SOURCES:
            raise ProfileError(f"{where}: energy must be one of {list(ENERGY_SOURCES)}, got {self.energy!r}")
        if self.energy == "nvml" and self.device != "cuda":
            raise ProfileError(
                f"{where}: energy 'nvml' measures NVIDIA GPUs, but device is {self.device!r}; "
                "use rapl, estimate or auto for a CPU"
            )
        if self.energy == "rapl" and self.device != "cpu":
            raise ProfileError(
                f"{where}: energy 'rapl' measures CPUs, but device is {self.device!r}; "
                "use nvml, estimate or auto for a GPU"
            )
        duration = self.energy_min_duration_s
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
            raise ProfileError(
                f"{where}: energy_min_duration_s must be a positive number of seconds (1.0 is a good "
                f"default), got {duration!r}"
            )
        object.__setattr__(self, "energy_min_duration_s", float(duration))
        if not isinstance(self.subtract_idle, bool):
            raise ProfileError(f"{where}: subtract_idle must be true or false, got {self.subtract_idle!r}")
        if not isinstance(self.quiet_gate, bool):
            raise ProfileError(f"{where}: quiet_gate must be true or false, got {self.quiet_gate!r}")
        if self.quiet_gate and self.device != "cpu":
            raise ProfileError(
                f"{where}: quiet_gate watches the CPU and cannot see contention on a GPU; "
                f"set it to false for device {self.device!r}"
            )
        for key, upper in (("quiet_tolerance", 10.0), ("quiet_max_s", float("inf"))):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= upper:
                bound = "in (0, 10]" if key == "quiet_tolerance" else "a positive number of seconds"
                raise ProfileError(f"{where}: {key} must be {bound}, got {value!r}")
            object.__setattr__(self, key, float(value))
        if self.timed_runs < MIN_TIMED_RUNS:
            raise ProfileError(
                f"{where}: timed_runs must be >= {MIN_TIMED_RUNS} for a stable median and IQR, "
                f"got {self.timed_runs}"
            )
        if self.input_shape is not None:
            shape = self.input_shape
            if (
                not isinstance(shape, (tuple, list))
                or len(shape) != 3
                or not all(_is_int(d) and d >= 1 for d in shape)
            ):
                raise ProfileError(
                    f"{where}: input_shape must be [C, H, W] with three positive integers "
                    f"(or null to use the dataset's), got {shape!r}"
                )
            object.__setattr__(self, "input_shape", tuple(shape))
        for key in ("idle_w", "tdp_w"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ProfileError(
                    f"{where}: {key} must be a non-negative number of watts or null, got {value!r}"
                )
            object.__setattr__(self, key, float(value))
        if self.idle_w is not None and self.tdp_w is not None and self.idle_w > self.tdp_w:
            raise ProfileError(f"{where}: idle_w ({self.idle_w} W) is above tdp_w ({self.tdp_w} W)")
        if self.carbon_region is not None:
            _check_str(where, "carbon_region", self.carbon_region)
        if self.lut is not None:
            if not isinstance(self.lut, (str, os.PathLike)):
                raise ProfileError(f"{where}: lut must be a file path or null, got {self.lut!r}")
            object.__setattr__(self, "lut", Path(self.lut))

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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_str(where: str, key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ProfileError(f"{where}: {key} must be a string, got {value!r}")


_FIELDS = tuple(f.name for f in dataclasses.fields(HardwareProfile))


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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"hardware profile {path} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(
            f"hardware profile {path} must be a mapping of keys to values, got {type(data).__name__}"
        )
    unknown = [key for key in data if key not in _FIELDS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), _FIELDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProfileError(
            f"hardware profile {path}: unknown key {key!r}{hint} Valid keys: {', '.join(_FIELDS)}"
        )
    values = dict(data)
    values.setdefault("name", path.stem)
    for key in ("providers", "provider_options", "input_shape"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    lut = values.get("lut")
    if isinstance(lut, str) and lut:
        lut_path = Path(lut).expanduser()
        values["lut"] = lut_path if lut_path.is_absolute() else (path.parent / lut_path)
    try:
        return HardwareProfile(**values)
    except ProfileError as exc:
        raise ProfileError(f"{exc} (in {path})") from None
