"""The ``hwnas`` command line.

Usage errors print one line on stderr naming what is wrong and what is valid, and exit with status 2;
runtime failures (disk full, an output that cannot be written) print one line and exit with status 3; a search
in which no trial met the constraints ends with status 4. The codes are listed in ``nas/_errors.py``, and
:func:`_exit_code` maps every error to its code, in this one place.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from nas._errors import EXIT_INFEASIBLE, EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, UsageError

USAGE_ERROR = EXIT_USAGE


class _Interrupted(Exception):
    def __init__(self, run_dir: object) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


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
    s.add_argument("--strategy", help="search strategy: nsga2 (default), random, grid, evolution, rl, bayes")
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
        help="allow more --workers or --threads than this machine has cores",
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


def _cmd_search(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from nas.run._config import load_config, resume_config
    from nas.run._experiment import Experiment
    from nas.run._progress import ProgressReporter

    if args.workers and args.scheduler:
        raise UsageError(
            "give --workers N (a local cluster) or --scheduler ADDRESS (an existing one), not both"
        )
    if args.resume:
        if args.config:
            raise UsageError(
                "--resume reads the run's own config.yaml; leave out --config and give changes as flags"
            )
        if args.name is not None or args.out is not None:
            raise UsageError(
                f"--resume continues {args.resume} in place; leave out --name and --out (copy the folder to "
                "continue it under another name)"
            )
        run_dir = Path(args.resume)
        overrides = _overrides(args)
        if args.workers is not None:  # a local cluster instead of the run's scheduler, or the other way round
            overrides.setdefault("execution.scheduler", None)
        if args.scheduler is not None:
            overrides.setdefault("execution.workers", 0)
        config = resume_config(run_dir, overrides)
    else:
        config = load_config(args.config, _overrides(args))
        run_dir = None
    console = Console(soft_wrap=True)
    # A polite kill (SIGTERM, as from a job scheduler) stops like Ctrl-C: the study stays consistent.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with ProgressReporter() as reporter:
        experiment = Experiment(config, reporter=reporter, resume=bool(args.resume), run_dir=run_dir)
        try:
            result = experiment.run()
        except KeyboardInterrupt:
            raise _Interrupted(experiment.run_dir) from None
    if result.rank:  # another rank of a data-parallel training: rank 0 searches and reports
        return 0
    if not result.feasible:
        return _report_infeasible(result, config)
    console.print(
        f"\n[bold]{result.n_trials} trials[/] ({result.n_failed} failed), hypervolume {result.hypervolume:.4g}"
    )
    if result.stopped_by:
        b = result.stopped_by
        console.print(
            f"[yellow]stopped by the budget {b['budget']}[/]: {b['value']:.4g} reached the limit {b['limit']:.4g}; "
            f"continue with: hwnas search --resume {result.run_dir} --{b['budget'].replace('_', '-')} LARGER",
            highlight=False,
        )
    for number, error in result.failures:
        console.print(f"  [yellow]failed trial {number}[/]: {error}", highlight=False)
    console.print(f"Pareto front: {len(result.models)} models in {result.run_dir}/models")
    # With an ensemble or fine-tuning before export, the model's own error differs from the ranked one.
    own = config.supernet.members > 1 or config.evaluation.export_finetune_steps > 0
    for m in result.models:
        shown = "  ".join(f"{k}={v:.4g}" for k, v in list(m.metrics.items())[: len(config.search.objectives)])
        model = f"model's val error {_pct(m.validation_error)}  " if own else ""
        console.print(
            f"  id {m.id:>4}  {shown}  {model}test error {_pct(m.test_error)}  |onnx-torch| {m.max_abs_diff:.1e}",
            highlight=False,
        )
    from nas.run._summary import summary_lines

    for line in summary_lines(result.run_dir):
        console.print(line, highlight=False)
    console.print(f"results: {result.run_dir}/pareto.json, trials.csv, pareto.png, study.db", highlight=False)
    if (result.run_dir / "report.html").is_file():
        console.print(f"report: {result.run_dir}/report.html (and report.md)", highlight=False)
    return 0


def _report_infeasible(result: Any, config: Any) -> int:
    """No trial met the constraints: say so in plain words; status 4."""
    from nas.run._results import infeasible_lines

    lines = infeasible_lines(
        result.run_dir, n_trials=result.n_trials, constraints=config.search.constraints, exported=bool(result.models)
    )
    for line in lines:
        print(line, file=sys.stderr)
    return EXIT_INFEASIBLE


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.run._front import reexport

    if args.out is not None and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the model's file name, e.g. {Path(args.out) / 'model.onnx'}")
    path, diff = reexport(args.run, args.id, out=args.out)
    print(f"exported trial {args.id} to {path} (max |onnx - torch| = {diff:.2e})")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from hardware_profiles import available_profiles, load_profile

    for name in available_profiles():
        print(f"{name:<16} {load_profile(name).description}")
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from nas.spaces import SpaceError, builtin_space_names, space_variants

    for name in builtin_space_names():
        try:
            variants = space_variants(name)
        except SpaceError as e:  # a family whose module cannot be imported here
            print(f"{name:<10} unavailable: {e}")
            continue
        sizes = ", ".join(
            f"{v.preset + ' ' if v.preset else ''}{v.image_size}x{v.image_size} ({v.subnets:.2e} subnets)"
            for v in variants
        )
        family = variants[0].description.split(":")[0] if variants else name
        print(f"{name:<10} {family}; {sizes}")
    print("your own: --space package.module:Class (see README, 'Writing your own search space')")
    return 0


def _user_modules_importable() -> None:
    """Lets a space named 'module:Class' be imported from the current directory, as from ``python -m``;
    worker processes started later inherit it through PYTHONPATH."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), cwd) if p)


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.report import write_report

    if args.out is not None and len(args.runs) > 1:
        out = Path(args.out).resolve()
        if any(Path(r).resolve() == out for r in args.runs):
            raise UsageError(
                f"--out {args.out} is one of the compared runs, and its own report would be replaced; "
                "write the comparison to another folder"
            )
    files = write_report(args.runs, out_dir=args.out)
    print(f"report: {files.html} and {files.md}")
    return 0


def _cmd_pick(args: argparse.Namespace) -> int:
    from nas.deploy._pick import NoModelMeetsBounds, parse_bound, pick, read_front

    from nas.deploy._pick import PickError

    front = read_front(args.run)
    try:
        bounds = dict(parse_bound(text) for text in args.max)
    except PickError as e:
        raise UsageError(f"{e}; metrics of this run: {', '.join(front.metric_names)}") from None
    try:
        best = pick(front, max=bounds, by=args.by)
    except NoModelMeetsBounds as e:
        print(f"hwnas: {e}", file=sys.stderr)
        return 1
    shown = [*dict.fromkeys([*front.metric_names[: len(front.objectives)], *bounds])]
    print(f"model {best.id}: {best.describe(shown, front.units)}")
    if best.test_error is not None:
        print(f"test error: {best.test_error:.4g} %")
    print(f"onnx: {best.onnx}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from nas.report._dashboard import serve

    serve(args.run, host=args.host, port=args.port)
    return 0


def _cmd_profile_device(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from hardware_profiles import load_profile
    from nas.data import dataset_shape
    from nas.run._config import load_config
    from nas.run._lut import measure_table
    from nas.spaces import SpaceError, space_for_input

    overrides = {
        k: v
        for k, v in (
            ("data.name", args.dataset),
            ("data.root", args.data_root),
            ("data.image_size", args.image_size),
            ("space.name", args.space),
        )
        if v is not None
    }
    config = load_config(args.config, overrides)
    profile = load_profile(args.profile)
    out = Path(args.out)
    if out.suffix != ".json":
        raise UsageError(f"--out names the table file and must end in .json, got {str(out)!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write to {out.parent}: {e.strerror or e}") from None
    in_channels, image_size, num_classes = dataset_shape(
        config.data.name, root=config.data.root, image_size=config.data.image_size
    )
    try:
        spec = space_for_input(config.space.name, in_channels, image_size, num_classes, config.space_options())
    except SpaceError as e:
        raise UsageError(str(e)) from None
    if not spec.supports_lut and args.few is None:
        raise UsageError(f"space {config.space.name!r} defines no lookup-table parts: measure latencies instead")
    input_shape = tuple(profile.input_shape or (in_channels, image_size, image_size))
    if args.few is not None or args.sources:  # a new device from a few measurements (nas/run/_few.py)
        from nas.run._few import few_shot_command

        return few_shot_command(args.few, args.sources, spec, profile, input_shape, out, seed=args.seed)
    print(f"measuring every part of the search space on this machine with profile {profile.name!r} ...")

    def progress(i: int, total: int, key: str) -> None:
        if i % 100 == 0 or i == total:
            print(f"  {i}/{total}  {key}", flush=True)

    table, records = measure_table(
        spec, profile, input_shape, calibration_archs=args.calibration, seed=args.seed, on_part=progress
    )
    table.save(out)
    import json

    out.with_name(f"{out.stem}.calibration.json").write_text(json.dumps(records, indent=1))
    fields = {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
        for k, v in profile.model_dump().items()
    }
    fields["provider_options"] = [dict(o) for o in profile.provider_options]
    name = f"{out.stem}"
    fields.update(
        name=name, description=f"{profile.description} (with lookup table {out.name})", lut=str(out.resolve())
    )
    profile_path = out.with_name(f"{out.stem}.profile.yaml")
    profile_path.write_text(yaml.safe_dump(fields, sort_keys=False))
    cal = table.meta["calibration"]
    print(
        f"{len(table.entries)} parts measured; on {cal['models']} whole archs the table predicts within 10% for "
        f"{100 * cal['within_10pct']:.0f}% (mean abs error {100 * cal['mape']:.1f}%)"
    )
    print(f"table: {out}\nprofile: {profile_path}  (search with it: hwnas search --profile {profile_path})")
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
    _user_modules_importable()
    handlers = {
        "search": _cmd_search,
        "export": _cmd_export,
        "profiles": _cmd_profiles,
        "spaces": _cmd_spaces,
        "profile-device": _cmd_profile_device,
        "report": _cmd_report,
        "pick": _cmd_pick,
        "dashboard": _cmd_dashboard,
    }
    try:
        return handlers[args.command](args)
    except _Interrupted as e:
        print(
            f"\nhwnas: interrupted; every finished trial is kept in {e.run_dir}/study.db. "
            f"Continue with: hwnas search --resume {e.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nhwnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # known errors become one line and their status; others re-raise
        code = _exit_code(e)
        if code is None:
            raise
        print(f"hwnas: error: {_one_line(e)}", file=sys.stderr)
        return code


def _exit_code(e: BaseException) -> int | None:
    """The exit status of an error, the one place where errors meet exit codes (see ``nas/_errors.py``):
    :class:`nas._errors.HwnasError` carries its own; the errors of the layers below ``nas`` (profiles,
    datasets, study storage, lookup tables, clusters) are usage errors; a failing file system or a full disk
    (``OSError``, SQLite's "disk is full", ``MemoryError``) is a runtime failure. None: a bug, left to raise."""
    import sqlite3

    from nas._errors import HwnasError

    if isinstance(e, HwnasError):
        return e.exit_code
    from hardware_profiles import ProfileError
    from nas.data import DatasetError
    from nas.run._locks import ClusterError
    from profilers import LutError
    from search import StorageError

    if isinstance(e, (ProfileError, DatasetError, StorageError, LutError, ClusterError)):
        return EXIT_USAGE
    if isinstance(e, (OSError, MemoryError, sqlite3.OperationalError)):
        return EXIT_RUNTIME
    return None


def _one_line(e: BaseException) -> str:
    """An error's message in one line; a file-system error as 'PATH: reason'."""
    if isinstance(e, OSError) and e.strerror:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    if isinstance(e, MemoryError):
        return "out of memory; use a smaller population, batch size or fewer workers"
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
