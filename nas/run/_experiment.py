"""One search from config to Pareto front: data, supernet, search, front export, run directory."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hardware_profiles import load_profile
from nas._atomic import atomic_write_text
from nas._errors import HwnasError, RunError
from nas._schemas import TimingsFile
from nas.data import DataSplits, load_dataset
from nas.run._checks import country_code, preflight
from nas.run._config import (
    ConfigError,
    SearchConfig,
    data_root,
    loader_options,
    make_strategy,
    objective_unit,
)
from nas.run._evaluator import CandidateEvaluator
from nas.run._front import ModelRecord, member_checkpoint
from nas.run._multi import build_evaluator
from nas.run._progress import estimated_energy_note
from nas.run._rebuild import discard_new_run, open_run, write_config
from nas.run._results import export_results, has_feasible
from nas.run._run_lock import RunLock
from nas.run._summary import undertrained_warning
from nas.spaces import (
    ElasticSupernet,
    SearchSpace,
    SpaceError,
    arch_key,
    network_map,
    space_for_input,
    space_ref,
)
from nas.sustainability._tracker import BudgetExceeded, Budgets, SearchTracker
from nas.training._device import DeviceError, resolve_device, resolve_precision
from nas.training._distributed_train import (
    DistributedContext,
    TrainingStopped,
    init_distributed,
    launched_distributed,
    shutdown_distributed,
)
from nas.training._log import BatchProgress, TrainLog
from nas.training._train import train_supernet
from profilers import (
    MeasurementCache,
)
from search import (
    Constraint,
    Objective,
    SQLiteStorage,
    Strategy,
    Study,
    Trial,
    TrialState,
)

__all__ = ["Experiment", "SearchResult", "count_macs"]


#: Default hypervolume reference of the error objective (%): any model better than chance-free guessing counts.
ERROR_REFERENCE = 100.0


@dataclass(frozen=True)
class SearchResult:
    """What a finished search leaves behind."""

    run_dir: Path
    models: tuple[ModelRecord, ...]
    n_trials: int
    n_failed: int
    hypervolume: float
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    stopped_by: Mapping[str, Any] | None = None
    failures: tuple[tuple[int, str], ...] = ()
    #: whether any trial met the constraints (with none, ``models`` is empty unless export_infeasible asks)
    feasible: bool = True
    #: rank of this process in a data-parallel training; ranks other than 0 only train and return empty
    rank: int = 0


ProgressFactory = Callable[[], Any]


class Experiment:
    """A whole search, as ``hwnas search`` runs it.

    With ``resume=True`` the run directory must hold an interrupted run of the same config: supernet
    training continues from its last checkpoint, the study replays its history into the strategy, trials
    that were RUNNING run again, and the search goes on to ``search.trials`` finished trials.

    Example:
        >>> from nas import Experiment, load_config
        >>> cfg = load_config(overrides={"name": "tiny", "supernet.epochs": 1, "search.trials": 4})
        >>> result = Experiment(cfg).run()  # doctest: +SKIP
        >>> (result.run_dir / "pareto.json").exists()  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        config: SearchConfig,
        *,
        data: DataSplits | None = None,
        space: SearchSpace | type[SearchSpace] | None = None,
        reporter: Any | None = None,
        resume: bool = False,
        run_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.profile, *_ = [load_profile(p) for p in config.profiles()]  # every profile checked before any work
        # Where the supernet trains and candidates are scored; one that is not here is a usage error.
        try:
            self.device = resolve_device(config.supernet.device)
            resolve_precision(config.supernet.precision, self.device)
        except DeviceError as e:
            raise ConfigError(str(e)) from None
        self.dist = DistributedContext()
        name = config.name or time.strftime("search-%Y%m%d-%H%M%S")
        self.run_dir = Path(run_dir) if run_dir is not None else Path(config.out).expanduser() / name
        self.resume = resume
        self._started = False  # set when the first work (training) starts: a failed start before it leaves nothing
        self._data = data
        if data is not None and data.name != config.data.name:
            # Data passed from Python that no name reloads: the run says so (data.json says what it was),
            # and re-exporting or resuming it asks for the data again instead of loading another dataset.
            config = config.model_copy(
                update={"data": config.data.model_copy(update={"name": "python", "root": None, "options": {}})}
            )
            self.config = config
        self._space = space
        self.reporter = reporter if reporter is not None else _SilentReporter()
        self.objectives = [Objective(n, "minimize", objective_unit(n)) for n in config.search.objectives]
        self.constraints = [Constraint.parse(c) for c in config.search.constraints]
        if config.evaluation.latency == "predict" and self.profile.lut is None:
            raise RunError(
                f"evaluation.latency 'predict' needs a lookup table, and profile {self.profile.name!r} has none; "
                "measure one with: hwnas profile-device --profile NAME --out FILE"
            )
        b = config.budget
        t = config.tracking
        self.tracker = SearchTracker(
            self.run_dir,
            project=self.run_dir.name,
            enabled=t.enabled,
            country_iso_code=t.country_iso_code or country_code(self.profile.carbon_region),
            region=t.region,
            online=t.online,
            measure_power_secs=t.measure_power_secs,
            budgets=Budgets(b.max_energy_kwh, b.max_co2_kg, b.max_time),
            profile_name=self.profile.name,
        )

    # -- set-up --------------------------------------------------------------------------------------
    def build_space(self, data: DataSplits) -> SearchSpace:
        """The search space sized for ``data``: the one passed to the constructor, else the config's."""
        cfg = self.config
        space = self._space if self._space is not None else cfg.space.name
        try:
            return space_for_input(space, data.in_channels, data.image_size, data.num_classes, cfg.space_options())
        except SpaceError as e:
            raise ConfigError(str(e)) from None

    def prepare_run_dir(self) -> RunLock:
        """Locks the run directory for this process (a new one is created, a resumed one checked and its
        derived files rebuilt when behind the study); see :func:`nas.run._rebuild.open_run`."""
        return open_run(self.run_dir, self.config, resume=self.resume, note=getattr(self.reporter, "note", print))

    def make_strategy(self) -> Strategy:
        return make_strategy(self.config.search, seed=self.config.seed)

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        cfg = self.config
        phase: dict[str, float] = {}
        if launched_distributed():  # torchrun: train data-parallel; rank 0 alone searches and writes
            try:
                self.dist, self.device = init_distributed(cfg.supernet.device)
            except DeviceError as e:
                raise ConfigError(str(e)) from None
            if not self.dist.is_main:
                return self._train_on_other_rank()
        # every check that needs neither the data nor training, before anything is written
        preflight(cfg, space=None if self._data is None else self.build_space(self._data))
        lock = self.prepare_run_dir()
        try:
            return self._run_locked(cfg, phase, lock)
        finally:
            lock.release()

    def _run_locked(self, cfg: SearchConfig, phase: dict[str, float], lock: RunLock) -> SearchResult:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        tracker = self.tracker
        tracker.start()
        if hasattr(self.reporter, "set_tracker"):
            self.reporter.set_tracker(tracker)
        try:
            try:
                result = self._run(cfg, phase, tracker)
            finally:
                tracker.stop()
        except HwnasError:
            if not self.resume and not self._started:  # nothing was done: the name stays free for a retry
                discard_new_run(self.run_dir, lock)
            raise
        from nas.report import ReportError, write_report

        try:
            write_report([self.run_dir])
        except (ReportError, OSError) as e:  # the search's results stand without the report
            reason = getattr(e, "strerror", None) or e
            warnings.warn(
                f"the report could not be written: {reason}; write it with: hwnas report {self.run_dir}", stacklevel=2
            )
        return result

    def _run(self, cfg: SearchConfig, phase: dict[str, float], tracker: SearchTracker) -> SearchResult:
        t = time.perf_counter()
        with tracker.phase("search_overhead"):
            data = (
                self._data
                if self._data is not None
                else load_dataset(cfg.data.name, root=data_root(cfg), seed=cfg.seed, **loader_options(cfg))
            )
            if cfg.supernet.shift >= data.image_size:
                raise ConfigError(
                    f"supernet.shift must be smaller than the images ({data.image_size} pixels for "
                    f"{data.name}), got {cfg.supernet.shift}"
                )
            if getattr(data.train, "trains_augmented", False) and (cfg.supernet.shift or cfg.supernet.flip):
                raise ConfigError(
                    f"dataset {data.name!r} already augments training images (random resized crop and flip); "
                    "set supernet.shift: 0 and supernet.flip: false, or data.options.augment: 0"
                )
            # what a model of this run expects and answers: classes, shape, pixel scale and normalisation
            atomic_write_text(self.run_dir / "data.json", json.dumps(data.describe(), indent=2))
            spec = self.build_space(data)
            space_json = json.dumps(
                {"space": space_ref(spec), "supernet": spec.to_dict(), "subnets": spec.num_subnets()}, indent=2
            )
            old_space = self.run_dir / "space.json"
            if (
                self.resume
                and old_space.is_file()
                and {"space": "mobilenet", **json.loads(old_space.read_text())} != json.loads(space_json)
            ):
                raise RunError(f"cannot resume {self.run_dir}: its search space differs from this config's")
            if self._data is None and self._space is None:
                preflight(cfg, space=spec)  # the space as sized for the loaded data
            atomic_write_text(self.run_dir / "space.json", space_json)
            if self.resume:  # every check passed: what was searched is unchanged, only budgets and the like
                write_config(self.run_dir, cfg)
        self._started = True
        phase["data"] = time.perf_counter() - t

        t = time.perf_counter()
        members_count = cfg.supernet.members
        epochs = cfg.supernet.epochs
        self.reporter.start_training(epochs * members_count, members=members_count)
        members: list[ElasticSupernet] = []
        # only what differs from a plain initialisation, so that spaces without the option still build
        init_options = {"zero_init_residual": True} if cfg.supernet.zero_init_residual else {}
        worker_options: dict[str, Any] = {"workers": cfg.data.workers} if cfg.data.workers else {}
        stopped_in_training = False
        trained_epochs = 0
        train_log = TrainLog(self.run_dir / "train.log")  # at most a line every 30 s, and every epoch
        precision = resolve_precision(cfg.supernet.precision, self.device)
        train_log.write(f"training on {self.device} in {precision}, {self.dist.world_size} process(es)")
        with tracker.phase("supernet_training"):
            # Members train one after another; member k is seeded ``seed + k`` (member 0 is the plain
            # supernet, so one member trains exactly as without an ensemble).
            for k in range(members_count):
                supernet = spec.build_supernet(seed=cfg.seed + k, **init_options)
                members.append(supernet)

                def on_epoch(
                    epoch: int, total: int, loss: float, seconds: float, done: int = k * epochs
                ) -> None:
                    self.reporter.epoch(done + epoch, total * members_count, loss, seconds)
                    train_log.epoch(done + epoch, total * members_count, loss, seconds)
                    tracker.write()
                    if done + epoch < total * members_count and tracker.check_budgets() is not None:
                        raise BudgetExceeded(tracker.stopped_by or {})

                def on_batch(progress: BatchProgress, done: int = k * epochs) -> None:
                    shown = dataclasses.replace(
                        progress, epoch=done + progress.epoch, epochs=progress.epochs * members_count
                    )
                    train_log.batch(shown)
                    if hasattr(self.reporter, "batch"):
                        self.reporter.batch(shown)

                path = member_checkpoint(self.run_dir, k)
                try:
                    trained = train_supernet(
                        supernet,
                        # image folders hand the loop augmented crops, decoded by data.workers processes
                        getattr(data.train, "for_training", data.train),
                        **worker_options,
                        **cfg.supernet.train_kwargs(),
                        fill=data.black,
                        seed=cfg.seed + k,
                        checkpoint_path=path,
                        on_epoch=on_epoch,
                        on_batch=on_batch,
                        device=self.device,
                    )
                except BudgetExceeded:
                    stopped_in_training = True
                    trained_epochs += _checkpoint_epochs(path)
                    break
                trained_epochs += trained.epochs
        if self.dist.active:
            shutdown_distributed()  # the other ranks leave; this one scores the candidates
        for supernet in members:
            supernet.eval()
        phase["supernet_training"] = time.perf_counter() - t
        training = tracker.summary()["phases"]
        train_energy = next((p["energy_kwh"] for p in training if p["name"] == "supernet_training"), 0.0)
        tracker.extra["training"] = {
            "epochs": epochs,
            "members": members_count,
            "completed_epochs": trained_epochs,  # summed over the members
            "energy_kwh": train_energy,
            "energy_kwh_per_epoch": train_energy / max(1, trained_epochs),
            "macs_per_step_sample": _sandwich_macs(members[0], data.input_shape, cfg.supernet.num_random),
        }

        t = time.perf_counter()
        cache = MeasurementCache(path=self.run_dir / "latency_cache.json")
        evaluator = build_evaluator(  # every profile of the config; INT8 candidates when asked for
            cfg,
            supernet=members,
            data=data,
            profile=self.profile,
            cache=cache,
            work_dir=self.run_dir / "tmp",
            phase=tracker.phase,
            device=cfg.supernet.device,
        )
        note = estimated_energy_note(cfg, evaluator)
        if note is not None:
            train_log.write(note)
            if hasattr(self.reporter, "note"):
                self.reporter.note(note)
        storage = SQLiteStorage(self.run_dir / "study.db")
        try:
            objectives = self._objectives_with_reference(storage, evaluator, spec)
            warn = undertrained_warning(evaluator.score(spec.largest_arch())["error"], data.num_classes)
            storage.set_meta("warnings", [warn] if warn else [])
            if warn and hasattr(self.reporter, "note"):
                self.reporter.note(warn)
            try:
                study = Study(
                    space=spec.search_space(),
                    objectives=objectives,
                    strategy=self.make_strategy(),
                    constraints=self.constraints,
                    storage=storage,
                    annotate=lambda params: {"arch": spec.arch_from_params(params)},
                    # two params that build the same network are one candidate: never evaluated twice
                    canonical=lambda params: arch_key(spec.arch_from_params(params)),
                    network=network_map(spec),  # the models see each point as its network
                )
            except ValueError as e:  # a strategy that cannot search this space says why
                raise RunError(f"strategy {cfg.search.strategy!r} cannot search this space: {e}") from None
            if hasattr(study.strategy, "describe"):  # e.g. what auto picked: in the progress and the report
                described = study.strategy.describe()
                storage.set_meta("strategy_described", described)
                if hasattr(self.reporter, "note"):
                    self.reporter.note(f"strategy: {described}")
            storage.set_meta("config", cfg.model_dump(mode="json"))
            storage.set_meta("supernet", spec.to_dict())
            storage.set_meta("search_space", space_ref(spec))
            storage.set_meta("profile", self.profile.name)
            finished = sum(tr.state.finished for tr in study.trials)
            finished_numbers = {tr.number for tr in study.trials if tr.state.finished}
            remaining = 0 if stopped_in_training else max(0, cfg.search.trials - finished)

            def objective(trial: Trial) -> Mapping[str, float]:
                before = tracker.energy_kwh
                try:
                    return evaluator(trial)
                finally:
                    energy_of[trial.number] = tracker.energy_kwh - before

            energy_of: dict[int, float] = {}

            def record_energy(study: Study, trial: Trial) -> None:
                if trial.number in energy_of:
                    attrs = {"energy_kwh": energy_of.pop(trial.number), "energy_method": tracker.method}
                    storage.update_trial(trial.replace(attrs={**trial.attrs, **attrs}))
                tracker.write()

            def should_stop() -> bool:
                return tracker.check_budgets() is not None

            self.reporter.start_search(cfg.search.trials, done=finished)
            from nas.run._distributed import executor_for  # it builds evaluators of this module on workers

            ex = cfg.execution
            with executor_for(workers=ex.workers or None, scheduler=ex.scheduler) as pool:
                if ex.trial_timeout_s is not None and not (ex.workers or ex.scheduler):
                    # a hung candidate is killed, not waited for
                    from nas.run._killable import KillableExecutor

                    # what a killed candidate measured is cached all the same
                    pool.executor, pool.n_parallel = KillableExecutor(caches=(cache,)), 1
                remote = pool.client is not None
                # Workers get the supernet once; their evaluation energy is the machine's, counted as a phase.
                with tracker.phase("candidate_evaluation" if remote else "search_overhead"):
                    study.optimize(
                        pool.objective(evaluator) if remote else objective,
                        n_trials=remaining,
                        executor=pool.executor,
                        n_parallel=pool.n_parallel,
                        callbacks=[record_energy, self.reporter.trial],
                        should_stop=should_stop,
                        trial_timeout_s=ex.trial_timeout_s,
                    )
                if remote:
                    _apportion_energy(study, storage, tracker, before=finished_numbers)
            cache.save()
            phase["search"] = time.perf_counter() - t
            phase.update({f"search.{k}": v for k, v in evaluator.seconds.items()})

            t = time.perf_counter()
            if evaluator.energy_detail is not None:
                storage.set_meta("energy_detail", evaluator.energy_detail)
            if evaluator.energy:
                meter = evaluator.energy_profiler()
                methods = sorted(
                    {str(tr.metrics["energy_method"]) for tr in study.trials if "energy_method" in tr.metrics}
                )
                tracker.extra["inference_energy"] = {
                    "method": ", ".join(methods) or None,
                    "fallback_reason": meter.fallback_reason,
                    "detail": storage.get_meta("energy_detail"),
                }
            with tracker.phase("export"):
                models = export_results(study, evaluator, self.run_dir, cfg, energy_detail=storage.get_meta("energy_detail"))
            phase["export"] = time.perf_counter() - t
            shutil.rmtree(self.run_dir / "tmp", ignore_errors=True)
            hv = study.hypervolume()
            trials = study.trials
            failed = sum(tr.state is TrialState.FAILED for tr in trials)
            result = SearchResult(
                self.run_dir, tuple(models), len(trials), failed, hv, phase, stopped_by=tracker.stopped_by,
                failures=tuple((tr.number, tr.error or "") for tr in trials if tr.state is TrialState.FAILED),
                feasible=has_feasible(study) or not self.constraints,
            )  # fmt: skip
            atomic_write_text(self.run_dir / "timings.json", TimingsFile(seconds=phase).to_json())
        finally:
            storage.close()
        return result

    def _train_on_other_rank(self) -> SearchResult:
        """Rank k > 0 of a data-parallel training: trains alongside rank 0, which writes the checkpoints and
        the run and then searches alone; this rank leaves after training."""
        cfg = self.config
        data = (
            self._data
            if self._data is not None
            else load_dataset(cfg.data.name, root=data_root(cfg), seed=cfg.seed, **loader_options(cfg))
        )
        spec = self.build_space(data)
        init_options = {"zero_init_residual": True} if cfg.supernet.zero_init_residual else {}
        worker_options: dict[str, Any] = {"workers": cfg.data.workers} if cfg.data.workers else {}
        try:
            for k in range(cfg.supernet.members):
                train_supernet(
                    spec.build_supernet(seed=cfg.seed + k, **init_options),
                    getattr(data.train, "for_training", data.train),
                    **worker_options,
                    **cfg.supernet.train_kwargs(),
                    fill=data.black,
                    seed=cfg.seed + k,
                    checkpoint_path=member_checkpoint(self.run_dir, k),  # read to resume, never written
                    device=self.device,
                )
        except TrainingStopped:  # rank 0 stopped (a budget): it goes on to search what was trained
            pass
        finally:
            shutdown_distributed()
        return SearchResult(self.run_dir, (), 0, 0, 0.0, rank=self.dist.rank)

    def _objectives_with_reference(
        self, storage: SQLiteStorage, evaluator: CandidateEvaluator, spec: SearchSpace
    ) -> list[Objective]:
        """Objectives with their hypervolume reference: the stored one when resuming, else measured."""
        stored = {o.get("name"): o.get("reference") for o in storage.get_meta("objectives") or []}
        if stored and all(stored.get(o.name) is not None for o in self.objectives):
            return [Objective(o.name, o.direction, o.unit, stored[o.name]) for o in self.objectives]
        # The largest arch bounds latency, params and FLOPs from above: twice its values is a reference
        # point that every candidate lies inside, fixed before the search so hypervolume is comparable.
        largest = evaluator.score(spec.largest_arch())
        return [
            Objective(
                o.name, o.direction, o.unit, ERROR_REFERENCE if o.name.startswith("error") else 2.0 * largest[o.name]
            )
            for o in self.objectives
        ]


def _apportion_energy(
    study: Study, storage: SQLiteStorage, tracker: SearchTracker, *, before: set[int]
) -> None:
    """Per-trial energy when workers evaluated: the energy of this session's evaluation phase, shared out
    in proportion to each trial's duration (workers on other machines are not metered here)."""
    spent = tracker.totals.get("candidate_evaluation")
    trials = [t for t in study.trials if t.number not in before and t.state.finished and t.duration_s]
    total_s = sum(t.duration_s or 0.0 for t in trials)
    if spent is None or not trials or total_s <= 0 or not tracker.enabled:
        return
    for t in trials:
        share = spent.energy_kwh * (t.duration_s or 0.0) / total_s
        attrs = {"energy_kwh": share, "energy_method": f"{tracker.method} (shared out by duration)"}
        storage.update_trial(t.replace(attrs={**t.attrs, **attrs}))


def _checkpoint_epochs(path: Path) -> int:
    """Epochs a supernet checkpoint holds (0 when there is none)."""
    if not path.is_file():
        return 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return int(ckpt.get("epoch", 0))


def _sandwich_macs(supernet: ElasticSupernet, input_shape: tuple[int, ...], num_random: int) -> float:
    """MACs of one sample's forward passes in one sandwich step: largest, smallest and the random archs.

    The random archs are counted at the mean of the largest and smallest (their expected size is close).
    """
    spec = supernet.spec
    big = count_macs(supernet.subnet(spec.largest_arch()), input_shape)
    small = count_macs(supernet.subnet(spec.smallest_arch()), input_shape)
    return float(big + small + num_random * (big + small) / 2)


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of one sample through convolutions and linear layers."""
    total = 0

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += int(output.numel()) * k
        elif isinstance(module, torch.nn.Linear):
            total += int(output.numel()) * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return total


class _SilentReporter:
    """Reports nothing; the command line passes a reporter with progress bars."""

    def start_training(self, epochs: int, members: int = 1) -> None:
        pass

    def epoch(self, epoch: int, total: int, loss: float, seconds: float) -> None:
        pass

    def start_search(self, trials: int, done: int = 0) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def trial(self, study: Study, trial: Trial) -> None:
        pass
