"""What each ``hwnas`` command does, once its arguments are parsed; :mod:`nas.cli` maps their errors to exit codes."""


from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from nas._cli_parser import _overrides
from nas._errors import EXIT_INFEASIBLE, UsageError


class _Interrupted(Exception):
    def __init__(self, run_dir: object) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


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
    print("your own: --space package.module:Class (see docs/search-spaces.md, 'Writing your own search space')")
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
    from nas.deploy._pick import NoModelMeetsBounds, PickError, parse_bound, pick, read_front

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
