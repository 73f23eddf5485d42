"""The search configuration: a pydantic schema, read from YAML and command-line flags, validated at once."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from nas.run._config_sections import (  # the sections, re-exported: this module is the config's public face
    _NAME_MAX,
    _NAME_RE,
    DATASET_NAMES,
    DATASET_OPTIONS,
    BudgetConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    ExecutionConfig,
    SearchSection,
    SpaceConfig,
    SupernetConfig,
    TrackingConfig,
    _Section,
    make_strategy,
    parse_duration,
    strategy_names,
)
from nas.run._objectives import (
    DEVICE_METRICS,
    OBJECTIVE_UNITS,
    check_device_objectives,
    objective_unit,
    profile_label,
    several_profiles,
)

__all__ = [
    "DATASET_NAMES",
    "DATASET_OPTIONS",
    "DEVICE_METRICS",
    "OBJECTIVE_UNITS",
    "RESUMABLE_CHANGES",
    "BudgetConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ExecutionConfig",
    "SearchConfig",
    "SearchSection",
    "SpaceConfig",
    "SupernetConfig",
    "TrackingConfig",
    "data_root",
    "load_config",
    "loader_options",
    "make_strategy",
    "objective_unit",
    "parse_duration",
    "resume_config",
    "strategy_names",
]


class SearchConfig(_Section):
    """Everything a search needs. Every field has a default: the empty config is the built-in demo.

    Example:
        >>> SearchConfig().search.objectives
        ('error', 'latency_ms')
    """

    name: str | None = None
    out: str = "runs"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    threads: int = Field(default=0, ge=0, description="torch threads for training; 0 = all cores")
    #: the hardware profile, or several (a list, or names separated by commas): each candidate is then
    #: measured on every one, and the run keeps one front per profile beside the joint one
    profile: str | tuple[str, ...] = "local-cpu"
    data: DataConfig = DataConfig()
    space: SpaceConfig = SpaceConfig()
    supernet: SupernetConfig = SupernetConfig()
    search: SearchSection = SearchSection()
    evaluation: EvalConfig = EvalConfig()
    budget: BudgetConfig = BudgetConfig()
    tracking: TrackingConfig = TrackingConfig()
    execution: ExecutionConfig = ExecutionConfig()

    def wants(self, metric: str) -> bool:
        """Whether the search optimises or constrains ``metric``."""
        from search import Constraint

        return metric in self.search.objectives or any(
            Constraint.parse(c).metric == metric for c in self.search.constraints
        )

    def profiles(self) -> tuple[str, ...]:
        """The profiles candidates are measured on, the first being the one plain ``latency_ms`` names."""
        return (self.profile,) if isinstance(self.profile, str) else self.profile

    def profile_labels(self) -> tuple[str, ...]:
        """How each profile is named in objectives (``latency_ms@LABEL``)."""
        return tuple(profile_label(p) for p in self.profiles())

    @model_validator(mode="before")
    @classmethod
    def _several_profiles(cls, data: Any) -> Any:
        return several_profiles(data)

    @model_validator(mode="after")
    def _device_objectives_name_profiles(self) -> SearchConfig:
        check_device_objectives(self)
        return self

    def space_options(self) -> dict[str, Any]:
        """The space's options: ``space.options``, with the MobileNet choices of the ``supernet`` section."""
        return {**self.supernet.spec_overrides(), **self.space.options}

    @model_validator(mode="after")
    def _mobilenet_keys_only_for_mobilenet(self) -> SearchConfig:
        overrides = self.supernet.spec_overrides()
        if overrides and self.space.name != "mobilenet":
            raise ValueError(
                f"supernet.{sorted(overrides)[0]} shapes the mobilenet space; space {self.space.name!r} takes "
                "its choices in space.options"
            )
        return self

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise ValueError(f"run name {v!r} may hold only letters, digits, '.', '_' and '-'")
        if v is not None and len(v) > _NAME_MAX:
            raise ValueError(f"run name is {len(v)} characters long; at most {_NAME_MAX} are allowed")
        return v


def _describe(e: ValidationError, source: str) -> str:
    """One line for the first mistake, with a suggestion for misspelt keys."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent: type[BaseModel] = SearchConfig
        for part in err["loc"][:-1]:
            ann = parent.model_fields[str(part)].annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                parent = ann
        valid = list(parent.model_fields)
        close = difflib.get_close_matches(str(err["loc"][-1]), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{source}: unknown key {loc!r}{hint} (valid: {', '.join(valid)})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{source}: {loc + ': ' if loc else ''}{msg}{shown}"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """Reads a YAML config (optional), applies dotted-key overrides, and validates the result.

    Raises:
        ConfigError: with one line naming the mistake and what is valid.
    """
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if p.is_dir():
            raise ConfigError(f"config {str(p)!r} is a folder; give the YAML file inside it (e.g. {p}/config.yaml)")
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a text file (not UTF-8); a config is a YAML file") from None
        except OSError as e:
            raise ConfigError(f"config file {str(p)!r} cannot be read: {e.strerror or e}") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p}: not valid YAML{where}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: {part!r} must be a mapping")
            node = child
        node[last] = value
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None


#: Settings that may change when a run is resumed; any other change would make it another search.
RESUMABLE_CHANGES = (
    "search.trials",
    "search.export_infeasible",
    "threads",
    "budget",
    "tracking",
    "execution",
    "name",
    "out",
    "evaluation.export_finetune_steps",
    "data.workers",
    "supernet.device",
)


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """The config a run was started with, with ``overrides`` applied where a resume allows them.

    Raises:
        ConfigError: the run has no readable config, or an override changes what was searched.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not an hwnas run directory (no config.yaml): nothing to resume")
    stored = load_config(path)
    allowed = {k: v for k, v in (overrides or {}).items() if k not in ("name", "out")}
    config = load_config(path, allowed)
    before, after = _flatten(stored.model_dump(mode="json")), _flatten(config.model_dump(mode="json"))
    changed = [
        k for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k) and not any(k == r or k.startswith(r + ".") for r in RESUMABLE_CHANGES)
    ]  # fmt: skip
    if changed:
        shown = ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed[:4])
        raise ConfigError(
            f"cannot resume {run_dir} with changed settings ({shown}): they define what is searched; "
            f"only {', '.join(RESUMABLE_CHANGES[:5])} may change on resume"
        )
    return _keep_presetless_mobilenet(config, Path(run_dir))


def _keep_presetless_mobilenet(config: SearchConfig, run_dir: Path) -> SearchConfig:
    """A mobilenet run whose space records no preset (made before presets, or with the digits one) resumes
    on the digits preset, which builds exactly the space it had, whatever its image size."""
    if config.space.name != "mobilenet" or "preset" in config.space.options:
        return config
    try:
        import json

        stored = json.loads((run_dir / "space.json").read_text())["supernet"]
    except (OSError, ValueError, KeyError, TypeError):
        return config
    if not isinstance(stored, dict) or "preset" in stored:
        return config
    space = config.space.model_copy(update={"options": {**config.space.options, "preset": "digits"}})
    return config.model_copy(update={"space": space})


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def data_root(cfg: SearchConfig) -> str | None:
    return os.path.expanduser(cfg.data.root) if cfg.data.root else None


def loader_options(cfg: SearchConfig) -> dict[str, Any]:
    """The loader's options a config sets: ``data.options``, ``data.limit`` for cifar10 and folder, and
    ``data.image_size`` and ``data.workers`` for folder."""
    d = cfg.data
    limit = {"limit": d.limit} if d.name in ("cifar10", "folder") and d.limit else {}
    folder = {"workers": d.workers} if d.name == "folder" else {}
    if d.name == "folder" and d.image_size is not None:
        folder["image_size"] = d.image_size
    return {**d.options, **limit, **folder}
