"""The ``hwnas`` command line.

Usage errors print one line on stderr naming what is wrong and what is valid, and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in what the user asked for; reported in one line, exit status 2."""


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


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwnas", description="Energy- and hardware-aware multi-objective neural architecture search."
    )
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
    s.add_argument("--strategy", help="search strategy: nsga2 (default) or random")
    s.add_argument("--population", type=_positive_int, metavar="N", help="NSGA-II population size")
    s.add_argument("--epochs", type=_positive_int, metavar="N", help="supernet training epochs")
    s.add_argument("--objectives", metavar="A,B", help="comma-separated: error, latency_ms, params, flops")
    s.add_argument(
        "--constraint", action="append", metavar="EXPR", help="e.g. 'latency_ms <= 2.0' (repeatable)"
    )
    s.add_argument("--profile", metavar="NAME|FILE", help="hardware profile (default: local-cpu)")
    s.add_argument("--dataset", help="digits (default) or cifar10")
    s.add_argument("--data-root", metavar="DIR", help="folder of a dataset read from disk (cifar10)")
    s.add_argument(
        "--threads", type=_non_negative_int, metavar="N", help="torch threads for training (0: all cores)"
    )

    e = sub.add_parser("export", help="re-export one model of a finished run to ONNX")
    e.add_argument("run", metavar="RUN", help="run directory, e.g. runs/demo")
    e.add_argument(
        "--id", type=_non_negative_int, required=True, help="trial number (see pareto.json or trials.csv)"
    )
    e.add_argument("--out", metavar="FILE", help="where to write the model (default: RUN/models/ID.onnx)")

    sub.add_parser("profiles", help="list the shipped hardware profiles")
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
        "profile": "profile",
        "dataset": "data.name",
        "data_root": "data.root",
        "threads": "threads",
    }
    out: dict[str, Any] = {
        key: getattr(args, attr) for attr, key in mapping.items() if getattr(args, attr) is not None
    }
    if args.objectives is not None:
        out["search.objectives"] = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if args.constraint:
        out["search.constraints"] = list(args.constraint)
    return out


def _cmd_search(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nas._config import load_config
    from nas._experiment import Experiment
    from nas._progress import ProgressReporter

    config = load_config(args.config, _overrides(args))
    console = Console()
    with ProgressReporter() as reporter:
        experiment = Experiment(config, reporter=reporter)
        result = experiment.run()
    console.print(
        f"\n[bold]{result.n_trials} trials[/] ({result.n_failed} failed), hypervolume {result.hypervolume:.4g}"
    )
    console.print(f"Pareto front: {len(result.models)} models in {result.run_dir}/models")
    for m in result.models:
        shown = "  ".join(f"{k}={v:.4g}" for k, v in list(m.metrics.items())[: len(config.search.objectives)])
        console.print(
            f"  id {m.id:>4}  {shown}  test error {_pct(m.test_error)}  |onnx-torch| {m.max_abs_diff:.1e}",
            highlight=False,
        )
    console.print(f"results: {result.run_dir}/pareto.json, trials.csv, pareto.png, study.db", highlight=False)
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _cmd_export(args: argparse.Namespace) -> int:
    from nas._experiment import reexport

    path, diff = reexport(args.run, args.id, out=args.out)
    print(f"exported trial {args.id} to {path} (max |onnx - torch| = {diff:.2e})")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from hardware_profiles import available_profiles, load_profile

    for name in available_profiles():
        print(f"{name:<16} {load_profile(name).description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hwnas`` console script."""
    # OpenMP threads that spin while waiting slow training 5-10x as soon as another process shares the
    # cores; passive waiting costs little when the machine is idle. Read once, when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed in one line
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    if args.command is None:
        parser.print_help()
        return USAGE_ERROR
    from hardware_profiles import ProfileError
    from nas._config import ConfigError
    from nas._data import DatasetError
    from nas._experiment import RunError
    from search import StorageError

    handlers = {"search": _cmd_search, "export": _cmd_export, "profiles": _cmd_profiles}
    try:
        return handlers[args.command](args)
    except (ConfigError, ProfileError, DatasetError, RunError, StorageError, UsageError) as e:
        print(f"hwnas: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\nhwnas: interrupted; finished trials are kept in the run's study.db", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
