"""The arguments of the ``hwnas`` command line: the parser, its argument types, and the config values flags set."""


from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from nas._errors import EXIT_USAGE as USAGE_ERROR
from nas._errors import UsageError

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"hwnas: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            bound = "at least 1" if minimum == 1 else f"{minimum} or more"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _duration(text: str) -> float:
    from nas.run._config import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


_positive_int = _int_at_least(1)


_non_negative_int = _int_at_least(0)


_SPACE_HELP = (
    "search space: a built-in one (mobilenet, vit; see 'hwnas spaces') or your own class as "
    "'package.module:Class', imported from the current directory or PYTHONPATH"
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwnas")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


#: search flags that set a config value, and where it lives: --help shows the config's default
_CONFIG_OF_FLAG = {
    "out": "out", "trials": "search.trials", "seed": "seed", "strategy": "search.strategy",
    "population": "search.population", "epochs": "supernet.epochs", "members": "supernet.members",
    "objectives": "search.objectives", "profile": "profile", "dataset": "data.name", "space": "space.name",
    "threads": "threads", "device": "supernet.device", "precision": "supernet.precision",
    "image_size": "data.image_size", "data_workers": "data.workers",
}  # fmt: skip


def _show_config_defaults(parser: argparse.ArgumentParser) -> None:
    """Appends each flag's default (the built-in config's value) to its help, where the help does not say it."""
    from nas.run._config import SearchConfig  # pydantic only: --help stays fast

    defaults = SearchConfig().model_dump(mode="json")
    for action in parser._actions:
        path = _CONFIG_OF_FLAG.get(action.dest)
        if path is None or action.help is None or "default" in action.help:
            continue
        value: Any = defaults
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        action.help += f" (default: {shown})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwnas", description="Energy- and hardware-aware multi-objective neural architecture search."
    )
    parser.add_argument("--version", action="version", version=f"hwnas {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser(
        "search", help="train a supernet once, search it, export the Pareto front (no arguments: demo)"
    )
    s.add_argument("--config", metavar="FILE", help="YAML config (see examples/); flags override it")
    s.add_argument("--name", help="run name: results go to OUT/NAME (default: a timestamp)")
    s.add_argument("--out", metavar="DIR", help="folder of run directories (default: runs)")
    s.add_argument("--trials", type=_positive_int, metavar="N", help="number of candidates to evaluate")
    s.add_argument(
        "--seed", type=_non_negative_int, metavar="N", help="seed of data split, training and search"
    )
    s.add_argument(
        "--strategy",
        help="search strategy: auto (default: bayes up to 500 trials, nsga2 beyond, as docs/strategies.md details), nsga2, "
        "random, grid, evolution, "
        "rl, bayes, or Optuna's optuna:tpe, optuna:gp, optuna:nsga2, optuna:auto (pip install 'hwnas[bench]')",
    )
    s.add_argument(
        "--strategy-option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the strategy, e.g. min_fidelity=0.25 (repeatable)",
    )
    s.add_argument("--population", type=_int_at_least(2), metavar="N", help="NSGA-II population size")
    s.add_argument("--epochs", type=_positive_int, metavar="N", help="supernet training epochs")
    s.add_argument(
        "--members",
        type=_positive_int,
        metavar="N",
        help="train N supernets (seeds seed..seed+N-1) and rank candidates on their mean error (default 1)",
    )
    s.add_argument(
        "--objectives",
        metavar="A,B",
        help="comma-separated, of: error, latency_ms, energy_mj, peak_memory_mb, params, flops",
    )
    s.add_argument(
        "--constraint", action="append", metavar="EXPR", help="e.g. 'latency_ms <= 2.0' (repeatable)"
    )
    s.add_argument(
        "--profile",
        metavar="NAME|FILE[,...]",
        help="hardware profile (default: local-cpu); several, comma-separated, measure every candidate on each "
        "and keep one front per profile (objectives latency_ms@NAME)",
    )
    s.add_argument(
        "--quantize",
        choices=("none", "int8"),
        help="int8: also quantize each front model (models/ID.int8.onnx) and measure its error and latency",
    )
    s.add_argument("--dataset", help="digits (default), digits-hard, cifar10 or folder (your own images)")
    s.add_argument("--space", metavar="NAME|MODULE:CLASS", help=_SPACE_HELP)
    s.add_argument(
        "--data-root", metavar="DIR", help="folder of a dataset read from disk (cifar10; folder: DIR/<class>/<image>)"
    )
    s.add_argument(
        "--image-size", type=_int_at_least(4), metavar="PX", help="side images are resized to (folder; default 32)"
    )
    s.add_argument(
        "--data-workers",
        type=_non_negative_int,
        metavar="N",
        help="processes that decode training images (folder; default 0: the training process)",
    )
    s.add_argument(
        "--threads", type=_non_negative_int, metavar="N", help="torch threads for training (0: all cores)"
    )
    s.add_argument(
        "--device",
        metavar="DEV",
        help="where to train and score: auto (default: CUDA when present), cpu, cuda or cuda:N; "
        "--profile says where models are measured",
    )
    s.add_argument(
        "--precision", choices=("auto", "bf16", "fp16", "fp32"), help="training precision (default auto)"
    )
    s.add_argument(
        "--resume",
        metavar="RUN",
        help="continue an interrupted run directory (e.g. runs/demo) where it stopped",
    )
    s.add_argument("--max-energy-kwh", type=_positive_float, metavar="KWH", help="stop at this energy (kWh)")
    s.add_argument(
        "--max-co2-kg", type=_positive_float, metavar="KG", help="stop at these emissions (kg CO2e)"
    )
    s.add_argument("--max-time", type=_duration, metavar="T", help="stop after this wall time: 90s, 30m, 2h")
    s.add_argument("--country", metavar="ISO3", help="grid of the carbon intensity, e.g. DEU, FRA, USA")
    s.add_argument(
        "--workers", type=_non_negative_int, metavar="N", help="evaluate on a local Dask cluster of N workers"
    )
    s.add_argument(
        "--scheduler", metavar="ADDR", help="evaluate on an existing Dask cluster: tcp://HOST:8786"
    )
    s.add_argument(
        "--trial-timeout",
        type=_duration,
        metavar="T",
        help="a candidate taking longer is stopped and fails (e.g. 60s); candidates then run in a child process",
    )
    s.add_argument(
        "--oversubscribe",
        action="store_true",
        default=None,
        help="allow more --workers or --threads than this machine has cores, or --workers past its memory",
    )
    s.add_argument(
        "--export-infeasible",
        action="store_true",
        default=None,
        help="when no trial meets the constraints, still export the least-violating models (marked infeasible)",
    )

    _show_config_defaults(s)

    e = sub.add_parser("export", help="re-export one model of a finished run to ONNX")
    e.add_argument("run", metavar="RUN", help="run directory, e.g. runs/demo")
    e.add_argument(
        "--id", type=_non_negative_int, required=True, help="trial number (see pareto.json or trials.csv)"
    )
    e.add_argument("--out", metavar="FILE", help="where to write the model (default: RUN/models/ID.onnx)")

    sub.add_parser("profiles", help="list the shipped hardware profiles")
    sub.add_parser("spaces", help="list the built-in search spaces: presets, input sizes, number of subnets")

    k = sub.add_parser("pick", help="print the best model of a run's front within bounds (id, metrics, ONNX path)")
    k.add_argument("run", metavar="RUN", help="run directory, e.g. runs/demo")
    k.add_argument(
        "--max", action="append", default=[], metavar="METRIC=VALUE", help="upper bound, e.g. latency_ms=5 (repeatable)"
    )
    k.add_argument("--by", metavar="METRIC", help="rank by this metric (default: error)")

    w = sub.add_parser("dashboard", help="serve a live view of a run (front, hypervolume, trials) while it searches")
    w.add_argument("run", metavar="RUN", help="run directory, e.g. runs/demo")
    w.add_argument("--port", type=_non_negative_int, default=8050, metavar="N", help="port (default: 8050; 0: any free one)")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")

    r = sub.add_parser("report", help="render the HTML/Markdown report of a run, or compare several runs")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories, e.g. runs/demo")
    r.add_argument(
        "--out", metavar="DIR", help="where to write (required with several runs; default: the run)"
    )

    d = sub.add_parser(
        "profile-device",
        help="measure a latency lookup table of the search space on this machine, and a profile that uses it",
    )
    d.add_argument(
        "--profile", default="local-cpu", metavar="NAME|FILE", help="how to run (default: local-cpu)"
    )
    d.add_argument("--out", required=True, metavar="FILE", help="where to write the table (JSON)")
    d.add_argument(
        "--few",
        type=_int_at_least(3),
        metavar="N",
        help="measure only N archs here and fit this device's latency from the tables of --from (transfer)",
    )
    d.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="TABLE",
        help="with --few: latency tables of other devices (lookup tables, measured tables arch key -> ms, "
        "or earlier --few tables)",
    )
    d.add_argument("--config", metavar="FILE", help="search config whose space and dataset to measure")
    d.add_argument(
        "--dataset", help="digits (default), digits-hard, cifar10 or folder: sets the input shape and classes"
    )
    d.add_argument("--data-root", metavar="DIR", help="folder of a dataset read from disk (cifar10, folder)")
    d.add_argument("--image-size", type=_int_at_least(4), metavar="PX", help="side images are resized to (folder)")
    d.add_argument("--space", metavar="NAME|MODULE:CLASS", help=_SPACE_HELP)
    d.add_argument(
        "--calibration",
        type=_int_at_least(2),
        default=30,
        metavar="N",
        help="whole archs measured to calibrate",
    )
    d.add_argument(
        "--seed", type=_non_negative_int, default=0, metavar="N", help="seed of the calibration archs"
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {
        "name": "name",
        "out": "out",
        "trials": "search.trials",
        "seed": "seed",
        "strategy": "search.strategy",
        "population": "search.population",
        "epochs": "supernet.epochs",
        "members": "supernet.members",
        "profile": "profile",
        "dataset": "data.name",
        "data_root": "data.root",
        "image_size": "data.image_size",
        "data_workers": "data.workers",
        "space": "space.name",
        "threads": "threads",
        "device": "supernet.device",
        "precision": "supernet.precision",
        "max_energy_kwh": "budget.max_energy_kwh",
        "max_co2_kg": "budget.max_co2_kg",
        "max_time": "budget.max_time",
        "country": "tracking.country_iso_code",
        "workers": "execution.workers",
        "scheduler": "execution.scheduler",
        "trial_timeout": "execution.trial_timeout_s",
        "quantize": "evaluation.quantize",
        "oversubscribe": "execution.oversubscribe",
        "export_infeasible": "search.export_infeasible",
    }
    out: dict[str, Any] = {
        key: getattr(args, attr) for attr, key in mapping.items() if getattr(args, attr) is not None
    }
    if args.objectives is not None:
        out["search.objectives"] = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if args.constraint:
        out["search.constraints"] = list(args.constraint)
    if args.strategy_option:
        import yaml

        options: dict[str, Any] = {}
        for text in args.strategy_option:
            key, sep, value = text.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--strategy-option takes KEY=VALUE, e.g. min_fidelity=0.25, got {text!r}")
            options[key.strip()] = yaml.safe_load(value)
        out["search.strategy_options"] = options
    return out
