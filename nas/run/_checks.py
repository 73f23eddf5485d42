"""Checks of a search's settings that need the machine, run before any data is loaded or anything trained.

The config schema (``nas/run/_config.py``) checks each value on its own; these check the settings against this
machine and each other: cores for ``workers`` and ``threads``, the memory ``workers`` and ``population`` need
(:func:`check_worker_memory`, :func:`check_machine`), every profile's ONNX
Runtime execution providers, a Dask scheduler that answers, and the strategy set up on the search space (a grid
too large, an option of the wrong type). A start that fails here has touched nothing on disk.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nas._errors import UsageError
from nas.run._config import ConfigError, SearchConfig, make_strategy, objective_unit

__all__ = [
    "EVALUATION_MARGIN_BYTES",
    "WorkerFootprint",
    "available_cores",
    "check_machine",
    "check_profiles",
    "check_scheduler",
    "check_strategy",
    "check_worker_memory",
    "country_code",
    "preflight",
    "worker_footprint",
]

#: seconds a scheduler has to accept a connection before the search is refused
SCHEDULER_TIMEOUT_S = 5.0
#: bytes per pair of individuals that non-dominated sorting and crowding hold at once (a float64 matrix of
#: the population and its offspring, with room for the copies numpy makes)
_BYTES_PER_PAIR = 8 * 4
#: memory a local evaluation worker holds beyond what the searching process holds at the check and the weights
#: of the supernet: the Dask and ONNX Runtime modules, the ONNX export, the runtime's sessions and the scoring
#: of one candidate. Measured with ``psutil`` (resident set size): on the demo search (digits, the default
#: space, profile local-cpu) ``hwnas search`` held 291 MiB at this check, and a worker of ``--workers 1``
#: 385 MiB before its first trial and 544 MiB after eight; 544 - 291 - 1 (the supernet) is 252 MiB, rounded up.
EVALUATION_MARGIN_BYTES = 256 * 2**20


def available_cores() -> int:
    """CPU cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_machine(config: SearchConfig, *, cores: int | None = None, memory_bytes: int | None = None) -> None:
    """``workers`` and ``threads`` within the cores (unless ``execution.oversubscribe``), and a population
    whose selection fits in half the memory.

    Raises:
        ConfigError: what is too large, the machine's figure and how to insist.
    """
    cores = available_cores() if cores is None else cores
    memory = _memory_bytes() if memory_bytes is None else memory_bytes
    insist = getattr(config.execution, "oversubscribe", False)
    for what, value, flag in (
        ("execution.workers", config.execution.workers, "--workers"),
        ("threads", config.threads, "--threads"),
    ):
        if value > cores and not insist:
            raise ConfigError(
                f"{what} ({flag}) is {value}, more than the {cores} core(s) this process may use: each would "
                f"wait for the others and use memory; use at most {cores}, or add --oversubscribe to insist"
            )
    population = config.search.population
    if memory is not None and (2 * population) ** 2 * _BYTES_PER_PAIR > memory // 2:
        most = int(((memory // 2) / _BYTES_PER_PAIR) ** 0.5 / 2)
        raise ConfigError(
            f"search.population ({population}) would not fit in memory: selecting among {2 * population} "
            f"candidates needs about {(2 * population) ** 2 * _BYTES_PER_PAIR / 2**30:.3g} GiB and this machine "
            f"has {memory / 2**30:.3g} GiB; use at most {most}"
        )


@dataclass(frozen=True)
class WorkerFootprint:
    """The memory one local evaluation worker is expected to hold, in bytes, and its parts.

    Attributes:
        process: this process's resident memory at the check (Python, torch and hwnas loaded, the data too
            once it is loaded): what every worker process loads and receives before it holds anything else.
        supernet: the weights and buffers of the supernet(s) built for the run's space, sent to every worker.
        margin: :data:`EVALUATION_MARGIN_BYTES`, what evaluating takes on top (measured).
    """

    process: int
    supernet: int
    margin: int = EVALUATION_MARGIN_BYTES

    @property
    def total(self) -> int:
        return self.process + self.supernet + self.margin


def worker_footprint(config: SearchConfig, space: Any | None) -> WorkerFootprint:
    """One worker's memory, measured now: this process's resident memory, the supernet of ``space`` built
    (as many as ``supernet.members``) and its bytes counted, and the measured evaluation margin."""
    import psutil

    process = int(psutil.Process().memory_info().rss)
    supernet = 0
    if space is not None:
        net = space.build_supernet(seed=config.seed)
        supernet = (
            sum(t.numel() * t.element_size() for t in net.state_dict().values()) * config.supernet.members
        )
        del net
    return WorkerFootprint(process=process, supernet=supernet)


def _size(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_worker_memory(
    config: SearchConfig,
    space: Any | None,
    *,
    available_bytes: int | None = None,
    footprint: WorkerFootprint | None = None,
) -> None:
    """``execution.workers`` local workers fit in the memory available now (``psutil.virtual_memory()``),
    unless ``execution.oversubscribe``; a search without local workers is not checked.

    Raises:
        ConfigError: one line naming the workers asked for, one worker's footprint, the memory available, the
            most workers that fit and how to insist.
    """
    workers = config.execution.workers
    if not workers or getattr(config.execution, "oversubscribe", False):
        return
    try:
        import psutil
    except ImportError:  # the local cluster needs Dask, which brings psutil: nothing to check without it
        return
    available = int(psutil.virtual_memory().available) if available_bytes is None else available_bytes
    one = worker_footprint(config, space) if footprint is None else footprint
    if workers * one.total <= available:
        return
    most = available // one.total
    advice = (
        f"use at most {most}"
        if most
        else "leave out --workers (candidates are then evaluated in this process)"
    )
    raise ConfigError(
        f"execution.workers (--workers) is {workers}: {workers} x {_size(one.total)} per worker (this "
        f"process's {_size(one.process)}, the supernet's {_size(one.supernet)} and {_size(one.margin)} to "
        f"evaluate) is more than the {_size(available)} of memory available; {advice}, or add --oversubscribe "
        "to insist"
    )


def check_profiles(config: SearchConfig) -> None:
    """Every profile loads, and the ONNX Runtime execution providers it measures with are installed.

    Raises:
        ConfigError: a provider that is not here, with those that are.
    """
    from hardware_profiles import load_profile

    predicted = config.evaluation.latency == "predict"
    for entry in config.profiles():
        profile = load_profile(entry)
        if profile.runtime != "onnxruntime" or (predicted and profile.lut is not None):
            continue
        import onnxruntime as ort

        here = ort.get_available_providers()
        missing = [p for p in profile.providers if p not in here]
        if missing:
            raise ConfigError(
                f"profile {profile.name!r} measures with {missing[0]}, which this ONNX Runtime does not have "
                f"(available: {', '.join(here)}); choose a profile of this machine (e.g. local-cpu), or install "
                "the build of onnxruntime with that provider"
            )


def check_scheduler(address: str | None, *, timeout_s: float = SCHEDULER_TIMEOUT_S) -> None:
    """A ``tcp://`` or ``tls://`` Dask scheduler accepts a connection within ``timeout_s``.

    Raises:
        ConfigError: nothing answers there.
    """
    if address is None:
        return
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls") or parts.hostname is None:
        return
    try:
        port = parts.port or 8786
    except ValueError:
        raise ConfigError(f"scheduler address {address!r} has an invalid port") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ConfigError(
            f"no Dask scheduler answers at {address} ({reason} within {timeout_s:g} s); start one "
            "(dask scheduler) or leave out --scheduler"
        ) from None


def check_strategy(config: SearchConfig, space: Any) -> None:
    """The strategy is built and set up on the search space, as the search will do it (a grid too large,
    an option of the wrong type or a space the strategy cannot search fail here).

    Raises:
        ConfigError: the strategy's own message.
    """
    from search import Objective

    objectives = [Objective(n, "minimize", objective_unit(n)) for n in config.search.objectives]
    name = config.search.strategy
    try:
        strategy = make_strategy(config.search, seed=config.seed)
        strategy.setup(space.search_space(), objectives)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"strategy {name!r} cannot search this space: {e}") from None


def preflight(config: SearchConfig, *, space: Any | None = None) -> None:
    """Every check of a new or resumed search that needs neither the data nor a trained supernet.

    ``space`` is the search space sized for the data when the caller has it; without one it is sized from
    the dataset's shape (read without loading the data).
    """
    check_machine(config)
    check_profiles(config)
    if space is None:
        space = _space_from_shape(config)
    check_worker_memory(config, space)
    if space is not None:
        check_strategy(config, space)
    check_scheduler(config.execution.scheduler)


def _space_from_shape(config: SearchConfig) -> Any:
    from nas.data import DatasetError, dataset_shape
    from nas.run._config import data_root
    from nas.spaces import SpaceError, space_for_input

    try:
        channels, size, classes = dataset_shape(
            config.data.name, root=data_root(config), image_size=config.data.image_size
        )
        return space_for_input(config.space.name, channels, size, classes, config.space_options())
    except SpaceError as e:
        raise ConfigError(str(e)) from None
    except DatasetError as e:
        raise UsageError(str(e)) from None


def country_code(region: str | None) -> str | None:
    """An ISO 3166 alpha-3 code from a profile's ``carbon_region`` (alpha-2 codes are converted)."""
    if region is None:
        return None
    code = region.strip().upper()
    if len(code) == 3:
        return code
    return _ALPHA2_TO_3.get(code)


_ALPHA2_TO_3 = {
    "US": "USA", "DE": "DEU", "FR": "FRA", "GB": "GBR", "UK": "GBR", "CA": "CAN", "CN": "CHN", "IN": "IND",
    "JP": "JPN", "KR": "KOR", "SE": "SWE", "NO": "NOR", "FI": "FIN", "NL": "NLD", "BE": "BEL", "CH": "CHE",
    "AT": "AUT", "ES": "ESP", "IT": "ITA", "PL": "POL", "IE": "IRL", "DK": "DNK", "AU": "AUS", "BR": "BRA",
    "SG": "SGP", "TW": "TWN", "IL": "ISR", "ZA": "ZAF", "MX": "MEX", "PT": "PRT", "CZ": "CZE",
}  # fmt: skip
