"""``nas.search``: one call that runs a search from Python, on the user's own data and space."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.data import DataSplits
from nas.run._config import SearchConfig, load_config
from nas.run._experiment import Experiment, SearchResult
from nas.spaces import SearchSpace
from search import Study, Trial

__all__ = ["search"]

#: keyword shortcuts of :func:`search` and the config value each sets
SHORTCUTS: dict[str, str] = {
    "name": "name",
    "out": "out",
    "seed": "seed",
    "profile": "profile",
    "trials": "search.trials",
    "strategy": "search.strategy",
    "population": "search.population",
    "constraints": "search.constraints",
    "epochs": "supernet.epochs",
    "device": "supernet.device",
    "batch_size": "supernet.batch_size",
    "dataset": "data.name",
    "data_root": "data.root",
    "image_size": "data.image_size",
}


class _CallbackReporter:
    """Passes each finished trial to a user's function; reports nothing else."""

    def __init__(self, on_trial: Callable[[Trial], Any]) -> None:
        self.on_trial = on_trial

    def start_training(self, epochs: int, members: int = 1) -> None:
        pass

    def epoch(self, epoch: int, total: int, loss: float, seconds: float) -> None:
        pass

    def start_search(self, trials: int, done: int = 0) -> None:
        pass

    def trial(self, study: Study, trial: Trial) -> None:
        self.on_trial(trial)

    def __getattr__(self, name: str) -> Callable[..., None]:  # hooks added later (batches, notes) do nothing
        return lambda *args, **kwargs: None


def search(
    data: DataSplits | str | None = None,
    *,
    space: str | type[SearchSpace] | SearchSpace | None = None,
    objectives: Sequence[str] | None = None,
    config: str | Path | SearchConfig | None = None,
    progress: bool | Callable[[Trial], Any] = True,
    overrides: Mapping[str, Any] | None = None,
    **settings: Any,
) -> SearchResult:
    """Runs a whole search (train the supernet, search, export the front, write the report) and returns it.

    Args:
        data: The dataset: :class:`~nas.DataSplits` (from :func:`nas.from_datasets` for any torch datasets,
            :func:`nas.data.load_folder` for an image folder, :func:`nas.load_dataset`), or a dataset name.
            ``None`` takes the config's (the built-in ``digits`` by default).
        space: A built-in space (``"mobilenet"``, ``"vit"``), ``"package.module:Class"``, a
            :class:`~nas.SearchSpace` class, or an instance sized by you.
        objectives: What to minimise, e.g. ``["error", "latency_ms", "energy_mj"]``.
        config: A YAML file or a :class:`~nas.SearchConfig` to start from.
        progress: ``True`` shows the command line's progress bars; a function is called with each finished
            trial instead; ``False`` shows nothing.
        overrides: Further config values by dotted path, e.g. ``{"evaluation.calib_samples": 256}``.
        settings: Shortcuts for common values: ``name``, ``out``, ``seed``, ``profile``, ``trials``,
            ``strategy``, ``population``, ``constraints``, ``epochs``, ``device``, ``batch_size``,
            ``dataset``, ``data_root``, ``image_size``.

    Returns:
        The :class:`~nas.SearchResult`: run directory, exported models, trial counts, hypervolume.

    Raises:
        TypeError: an unknown keyword (the message lists the valid ones).
        ConfigError: a value the config refuses.

    Example:
        >>> import nas  # doctest: +SKIP
        >>> data = nas.from_datasets(my_train, my_val, name="parts")  # doctest: +SKIP
        >>> result = nas.search(data, space="mobilenet", objectives=["error", "latency_ms"],
        ...                     trials=40, epochs=10, name="parts")  # doctest: +SKIP
        >>> nas.load_run(result.run_dir).pick(max={"latency_ms": 5})  # doctest: +SKIP
    """
    unknown = sorted(set(settings) - set(SHORTCUTS))
    if unknown:
        raise TypeError(
            f"search() got unknown keyword {unknown[0]!r}; valid: {', '.join(sorted(SHORTCUTS))}, or "
            "overrides={'section.key': value}"
        )
    # paths are given as Path objects in Python and stored as text in the config
    values: dict[str, Any] = {SHORTCUTS[k]: str(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}
    values.update(overrides or {})
    if objectives is not None:
        values["search.objectives"] = list(objectives)
    if isinstance(space, str):
        values["space.name"] = space
    if isinstance(data, str):
        values["data.name"] = data
    if isinstance(config, SearchConfig):
        flat = config.model_dump(mode="json")
        cfg = load_config(None, {**_flatten(flat), **values})
    else:
        cfg = load_config(config, values)
    space_obj = space if space is not None and not isinstance(space, str) else None
    splits = data if isinstance(data, DataSplits) else None
    if progress is True:
        from nas.run._progress import ProgressReporter

        reporter_cm: Any = ProgressReporter()
    elif callable(progress):
        reporter_cm = contextlib.nullcontext(_CallbackReporter(progress))
    else:
        reporter_cm = contextlib.nullcontext(None)
    with reporter_cm as reporter:
        return Experiment(cfg, data=splits, space=space_obj, reporter=reporter).run()


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and k not in ("options",):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
