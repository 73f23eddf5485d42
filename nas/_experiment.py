"""One search from config to Pareto front: data, supernet, search, front export, run directory."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from hardware_profiles import HardwareProfile, load_profile
from nas._config import OBJECTIVE_UNITS, ConfigError, SearchConfig, make_strategy
from nas._data import DataSplits, load_dataset
from nas._evaluate import ImageDataset, evaluate_error, finetune, recalibrate_bn
from nas._export import export_onnx, verify_onnx
from nas._lut import predict_latency
from nas._space import Arch, SupernetSpec, arch_key
from nas._supernet import Supernet
from nas._sustainability import BudgetExceeded, Budgets, SearchTracker
from nas._train import train_supernet
from profilers import (
    EnergyMeterError,
    EnergyProfiler,
    EstimatedEnergy,
    LatencyTable,
    LutError,
    MeasurementCache,
    count_params_and_flops,
    energy_profiler_from_profile,
    estimate_peak_memory,
    latency_profiler_from_profile,
    measure_energy,
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

__all__ = ["CandidateEvaluator", "Experiment", "ModelRecord", "RunError", "SearchResult"]

#: Default hypervolume reference of the error objective (%): any model better than chance-free guessing counts.
ERROR_REFERENCE = 100.0


class RunError(RuntimeError):
    """A run directory that cannot be used as asked (exists already, not writable, not a run...)."""


@dataclass(frozen=True)
class ModelRecord:
    """One exported Pareto model, as ``pareto.json`` lists it."""

    id: int
    arch: Arch
    metrics: Mapping[str, float]
    onnx: str
    test_error: float | None
    max_abs_diff: float
    #: the exported model's own top-1 error (%) on the whole validation split; ``metrics["error"]`` is the
    #: search's estimate (the members' mean, or a share of the split at low fidelity)
    validation_error: float | None = None
    #: the ensemble member whose subnet was exported (0 without an ensemble)
    member: int = 0
    #: fine-tuning steps the model had before export (``evaluation.export_finetune_steps``)
    finetune_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "arch": self.arch,
            "metrics": dict(self.metrics),
            "onnx": self.onnx,
            "test_error": self.test_error,
            "validation_error": self.validation_error,
            "member": self.member,
            "finetune_steps": self.finetune_steps,
            "max_abs_diff": self.max_abs_diff,
        }


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


class CandidateEvaluator:
    """Scores one candidate: accuracy inherited from the supernet, latency measured on the target, size.

    Called with a trial of the flat supernet space; returns its metrics. Every distinct arch is scored
    once per run (a repeated arch returns the cached metrics), and latencies are cached by
    ``(arch, profile, batch size, input shape)`` across runs that share a cache file.

    Fidelity ``f`` in (0, 1] scores on an evenly spaced ``f`` share of the validation split, after
    ``round(f x finetune_steps)`` steps of fine-tuning (none by default); with a lookup table and
    ``latency_mode="auto"``, latency is predicted below fidelity 1 and measured at fidelity 1.

    Given several supernets (members of an ensemble, trained alike from different seeds), ``error`` is
    the mean of the members' errors for the arch: one supernet's inherited error scatters about the
    error the arch reaches when trained alone, and independent members' scatter partly cancels
    (BENCHMARKS.md (b)). ``member`` then names the member whose subnet scored best and ``model_error``
    gives that error: it is the subnet that is exported.
    """

    def __init__(
        self,
        *,
        supernet: Supernet | Sequence[Supernet],
        data: DataSplits,
        profile: HardwareProfile,
        calib_samples: int = 512,
        exporter: str = "torchscript",
        cache: MeasurementCache | None = None,
        work_dir: str | Path | None = None,
        measure_lock: Callable[[], AbstractContextManager[Any]] | None = None,
        work_lock: Callable[[], AbstractContextManager[Any]] | None = None,
        phase: Callable[[str], AbstractContextManager[Any]] | None = None,
        lut: LatencyTable | None = None,
        latency_mode: str = "auto",
        energy: bool = False,
        finetune_steps: int = 0,
        finetune_lr: float = 0.01,
        export_finetune_steps: int = 0,
    ) -> None:
        if latency_mode not in LATENCY_MODES:
            raise ValueError(f"latency_mode must be one of {list(LATENCY_MODES)}, got {latency_mode!r}")
        if latency_mode == "predict" and lut is None:
            raise ValueError(
                f"latency_mode 'predict' needs a lookup table; profile {profile.name!r} has none"
            )
        #: the supernets that score a candidate: one, or the members of an ensemble
        self.members: tuple[Supernet, ...] = (
            (supernet,) if isinstance(supernet, Supernet) else tuple(supernet)
        )
        if not self.members:
            raise ValueError("at least one supernet is needed")
        if any(m.spec != self.members[0].spec for m in self.members):
            raise ValueError("the members of an ensemble must share one supernet spec")
        self.supernet = self.members[0]
        self.spec: SupernetSpec = self.supernet.spec
        self.data = data
        self.profile = profile
        self.calib_samples = calib_samples
        self.exporter = exporter
        # ONNX Runtime times the exported file; a ``runtime: torch`` profile times the PyTorch module itself.
        self.latency = latency_profiler_from_profile(profile)
        self.cache = cache if cache is not None else MeasurementCache()
        self.input_shape = tuple(profile.input_shape or data.input_shape)
        self._work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="hwnas-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self._scored: dict[tuple[str, float], dict[str, float]] = {}
        self.seconds: dict[str, float] = {"accuracy": 0.0, "export": 0.0, "latency": 0.0}
        # Held around each on-device measurement. The profilers already serialise measurements within one
        # process; a distributed search passes a lock shared by every worker that measures the same device.
        self.measure_lock = measure_lock if measure_lock is not None else contextlib.nullcontext
        # Held around CPU work (scoring, exporting) that would disturb a measurement on the same CPU; never
        # held while measuring. Workers on one host share it; their CPU measurements take it exclusively.
        self.work_lock = work_lock if work_lock is not None else contextlib.nullcontext
        # Energy accounting: scoring accuracy and measuring on the device are separate phases.
        self.phase = phase if phase is not None else (lambda name: contextlib.nullcontext())
        self.lut = lut
        self.latency_mode = latency_mode
        self.energy = energy
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        #: fine-tuning steps of a front model before export (:func:`export_model`), none while searching
        self.export_finetune_steps = export_finetune_steps
        self._energy_profiler: EnergyProfiler | None = None
        #: How the last energy figure was obtained, for people (the meter, or the power model and its source).
        self.energy_detail: str | None = None
        # A table measured on another machine describes a device that is not here: predict, never time.
        self.device_here = lut is None or _measured_here(lut, profile)

    def settings(self) -> dict[str, Any]:
        """The keyword arguments, besides supernet, data, profile and the process-local hooks, that build an
        evaluator scoring like this one (sent to distributed workers)."""
        return {
            "lut": self.lut,
            "latency_mode": self.latency_mode,
            "energy": self.energy,
            "finetune_steps": self.finetune_steps,
            "finetune_lr": self.finetune_lr,
            "export_finetune_steps": self.export_finetune_steps,
        }

    def latency_method(self, fidelity: float) -> str:
        """``"measured"`` (ONNX Runtime on this device) or ``"lut"`` (predicted from the lookup table).

        ``auto`` predicts at low fidelity and measures at full fidelity when the device is here.
        """
        if self.lut is None or self.latency_mode == "measure":
            return "measured"
        if self.latency_mode == "predict" or not self.device_here or fidelity < 1.0:
            return "lut"
        return "measured"

    def calibrated_subnet(self, arch: Arch, fidelity: float = 1.0, *, member: int = 0) -> torch.nn.Module:
        """The static subnet of ``arch`` (from supernet ``member``) with batch-norm statistics re-estimated on
        training data.

        With ``finetune_steps``, it is then fine-tuned for ``round(fidelity x finetune_steps)`` steps (seeded
        by the arch, so the exported model is the one that was scored at fidelity 1).
        """
        if not 0 <= member < len(self.members):
            raise ValueError(f"member must be in [0, {len(self.members) - 1}], got {member}")
        model = self.members[member].subnet(arch)
        recalibrate_bn(model, self.data.train, num_samples=self.calib_samples)
        steps = round(fidelity * self.finetune_steps)
        if steps:
            finetune(
                model,
                self.data.train,
                steps=steps,
                lr=self.finetune_lr,
                seed=_arch_seed(arch),
                calib_samples=self.calib_samples,
            )
        return model.eval()

    def export_subnet(self, arch: Arch, member: int = 0) -> torch.nn.Module:
        """The model exported for ``arch``: :meth:`calibrated_subnet` of ``member``, then fine-tuned for
        ``export_finetune_steps`` steps (seeded by the arch, so a re-export gives the same model)."""
        model = self.calibrated_subnet(arch, member=member)
        if self.export_finetune_steps:
            finetune(
                model,
                self.data.train,
                steps=self.export_finetune_steps,
                lr=self.finetune_lr,
                seed=_arch_seed(arch) + 1,
                calib_samples=self.calib_samples,
            )
        return model.eval()

    def __call__(self, trial: Trial) -> dict[str, float]:
        arch = self.spec.arch_from_params(trial.params)
        return self.score(arch, trial.fidelity)

    def score(self, arch: Arch, fidelity: float = 1.0) -> dict[str, float]:
        """Metrics of one arch: ``error`` (%), ``latency_ms``, ``latency_iqr_ms``, ``latency_disturbed`` (1 when
        the quiet gate ran out of time), ``params``, ``flops``, ``macs`` and the configured extras."""
        key = (arch_key(arch), round(fidelity, 6))
        if key in self._scored:
            return dict(self._scored[key])
        t0 = time.perf_counter()
        with self.phase("candidate_evaluation"), self.work_lock():
            models, errors = self.member_errors(arch, self.data.val, fidelity)
        best = min(range(len(errors)), key=errors.__getitem__)
        t1 = time.perf_counter()
        with self.phase("profiling"):
            measured = self.measure(arch, models[best], method=self.latency_method(fidelity))
        metrics = {"error": sum(errors) / len(errors), **measured}
        if len(self.members) > 1:
            metrics |= {"model_error": errors[best], "member": float(best)}
        self.seconds["accuracy"] += t1 - t0
        self._scored[key] = metrics
        return dict(metrics)

    def member_errors(
        self, arch: Arch, dataset: ImageDataset, fidelity: float = 1.0
    ) -> tuple[list[torch.nn.Module], list[float]]:
        """Each member's calibrated subnet of ``arch`` and its top-1 error (%) on ``dataset`` (an evenly
        spaced ``fidelity`` share of it)."""
        models = [self.calibrated_subnet(arch, fidelity, member=i) for i in range(len(self.members))]
        return models, [float(evaluate_error(m, dataset, fraction=fidelity)) for m in models]

    def measure(self, arch: Arch, model: torch.nn.Module, *, method: str = "measured") -> dict[str, float]:
        """Latency and size of one arch, from the cache or by exporting it and timing it (``method``
        ``"measured"``) or predicting its latency from the lookup table (``"lut"``)."""
        key = [arch_key(arch), self.profile.name, self.profile.batch_size, list(self.input_shape)]
        cache_key = json.dumps(key if method == "measured" else [*key, method])
        cached = self.cache.get(cache_key)
        if cached is not None:
            return dict(cached)
        t0 = time.perf_counter()
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=self._work_dir)
        os.close(fd)
        try:
            with self.work_lock():
                export_onnx(
                    model, tmp, self.input_shape, batch_size=self.profile.batch_size, exporter=self.exporter
                )
            t1 = time.perf_counter()
            if method == "lut":
                assert self.lut is not None
                median_ms, iqr_ms = predict_latency(self.lut, self.spec, arch, self.input_shape), 0.0
                disturbed = False
            else:
                with self.measure_lock():
                    lat = self.latency.measure(
                        self._runnable(tmp, model), self.input_shape, batch_size=self.profile.batch_size
                    )
                median_ms, iqr_ms = lat.median_ms, lat.iqr_ms
                disturbed = lat.quiet is False  # the quiet gate ran out of time: the figure may be high
            cost = count_params_and_flops(tmp, self.input_shape, batch_size=1)
            memory = estimate_peak_memory(tmp, self.input_shape, batch_size=self.profile.batch_size)
            extra: dict[str, Any] = {"peak_memory_mb": memory.peak_memory_mb}
            if self.energy:
                extra.update(
                    self.measure_energy(self._runnable(tmp, model), median_ms, measured=self.device_here)
                )
        finally:
            Path(tmp).unlink(missing_ok=True)
        t2 = time.perf_counter()
        self.seconds["export"] += t1 - t0
        self.seconds["latency"] += t2 - t1
        metrics = {
            "latency_ms": median_ms,
            "latency_iqr_ms": iqr_ms,
            "params": float(cost.params),
            "flops": float(cost.flops),
            "macs": float(cost.macs),
            "latency_predicted": float(method == "lut"),
            "latency_disturbed": float(disturbed),
            **extra,
        }
        self.cache.put(cache_key, metrics)
        return dict(metrics)

    def energy_profiler(self) -> EnergyProfiler:
        """How this profile's energy is obtained (built once): NVML, RAPL, or an explicit estimate.

        Where the profile gives no power model and the CPU is not in codecarbon's TDP table, codecarbon's own
        convention for unknown CPUs (4 W per logical core) is used, so that the search's energy objective and
        its sustainability report rest on the same assumption; the figure says so in its fallback reason.
        """
        if self._energy_profiler is None:
            try:
                self._energy_profiler = energy_profiler_from_profile(self.profile)
            except EnergyMeterError as e:
                if self.profile.device != "cpu":
                    raise
                cores = os.cpu_count() or 1
                self._energy_profiler = EstimatedEnergy(
                    tdp_w=4.0 * cores,
                    utilisation=min(1.0, self.profile.intra_op_threads / cores),
                    source="codecarbon's default for CPUs missing from its table: 4 W per logical core",
                    subtract_idle=self.profile.subtract_idle,
                    fallback_reason=str(e),
                )
        return self._energy_profiler

    def _runnable(self, onnx_path: str | Path, model: torch.nn.Module) -> Any:
        """What the profile's runtime measures: the ONNX file, or the module for ``runtime: torch``."""
        return model if self.profile.runtime == "torch" else onnx_path

    def measure_energy(self, onnx_path: Any, latency_ms: float, *, measured: bool) -> dict[str, Any]:
        """``energy_mj`` per inference and how it was obtained (``energy_method``, ``energy_detail``).

        An estimate needs no second run: it is the power model times the latency already measured (or
        predicted). A meter (NVML, RAPL) runs the model in a sustained loop.
        """
        meter = self.energy_profiler()
        if isinstance(meter, EstimatedEnergy):
            watts = meter.power_w - ((meter.model_idle_w or 0.0) if meter.subtract_idle else 0.0)
            reason = f" (fallback: {meter.fallback_reason})" if meter.fallback_reason else ""
            self.energy_detail = meter._formula() + reason
            return {"energy_mj": watts * latency_ms, "energy_method": "estimated"}  # W x ms = mJ
        if not measured:
            raise EnergyMeterError(
                f"profile {self.profile.name!r} meters energy on its device, which is not on this machine: "
                "give the profile a power model (idle_w, tdp_w) to estimate energy away from it"
            )
        with self.measure_lock():
            r = measure_energy(
                onnx_path,
                self.input_shape,
                latency=self.latency,
                energy=meter,
                batch_size=self.profile.batch_size,
            )
        self.energy_detail = r.detail
        return {"energy_mj": r.energy_mj, "energy_method": r.method}


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
        reporter: Any | None = None,
        resume: bool = False,
        run_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.profile = load_profile(config.profile)
        name = config.name or time.strftime("search-%Y%m%d-%H%M%S")
        self.run_dir = Path(run_dir) if run_dir is not None else Path(config.out).expanduser() / name
        self.resume = resume
        self._data = data
        self.reporter = reporter if reporter is not None else _SilentReporter()
        self.objectives = [Objective(n, "minimize", OBJECTIVE_UNITS[n]) for n in config.search.objectives]
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
            country_iso_code=t.country_iso_code or _country(self.profile.carbon_region),
            region=t.region,
            online=t.online,
            measure_power_secs=t.measure_power_secs,
            budgets=Budgets(b.max_energy_kwh, b.max_co2_kg, b.max_time),
            profile_name=self.profile.name,
        )

    # -- set-up --------------------------------------------------------------------------------------
    def prepare_run_dir(self) -> None:
        """Creates the run directory; refuses one that exists and is not empty (nothing is overwritten).

        When resuming, the directory must instead exist and hold the run's ``config.yaml``.
        """
        if self.resume:
            if not (self.run_dir / "config.yaml").is_file():
                raise RunError(
                    f"{self.run_dir} is not an hwnas run directory (no config.yaml): nothing to resume"
                )
            if (self.run_dir / "pareto.json").is_file() and not self._unfinished():
                raise RunError(
                    f"{self.run_dir} already finished its {self.config.search.trials} trials; "
                    "resume with a larger --trials to search further"
                )
            return
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise RunError(
                f"run directory {self.run_dir} already exists; choose another --name, or continue it with "
                f"--resume {self.run_dir} (runs are never overwritten)"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise RunError(f"cannot write to {self.run_dir}: {e.strerror or e}") from None
        cfg = self.config.model_dump(mode="json")
        cfg["name"] = self.run_dir.name
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def _unfinished(self) -> bool:
        db = self.run_dir / "study.db"
        if not db.is_file():
            return True
        storage = SQLiteStorage(db)
        try:
            trials = storage.trials()
        finally:
            storage.close()
        finished = sum(t.state.finished for t in trials)
        return finished < self.config.search.trials or any(not t.state.finished for t in trials)

    def make_strategy(self) -> Strategy:
        return make_strategy(self.config.search, seed=self.config.seed)  # type: ignore[no-any-return]

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        cfg = self.config
        phase: dict[str, float] = {}
        self.prepare_run_dir()
        if self.resume:
            # What was searched must not change; only the budget of trials and the like may.
            (self.run_dir / "config.yaml").write_text(
                yaml.safe_dump({**cfg.model_dump(mode="json"), "name": self.run_dir.name}, sort_keys=False)
            )
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        tracker = self.tracker
        tracker.start()
        if hasattr(self.reporter, "set_tracker"):
            self.reporter.set_tracker(tracker)
        try:
            result = self._run(cfg, phase, tracker)
        finally:
            tracker.stop()
        from nas._report import ReportError, write_report

        try:
            write_report([self.run_dir])
        except ReportError as e:  # the search's results stand without the report
            warnings.warn(f"the report could not be written: {e}", stacklevel=2)
        return result

    def _run(self, cfg: SearchConfig, phase: dict[str, float], tracker: SearchTracker) -> SearchResult:
        t = time.perf_counter()
        with tracker.phase("search_overhead"):
            data = (
                self._data
                if self._data is not None
                else load_dataset(cfg.data.name, root=_root(cfg), seed=cfg.seed, **_loader_options(cfg))
            )
            if cfg.supernet.shift >= data.image_size:
                raise ConfigError(
                    f"supernet.shift must be smaller than the images ({data.image_size} pixels for "
                    f"{data.name}), got {cfg.supernet.shift}"
                )
            spec = SupernetSpec.for_input(
                data.in_channels, data.image_size, data.num_classes, **cfg.supernet.spec_overrides()
            )
            space_json = json.dumps({"supernet": spec.to_dict(), "subnets": spec.num_subnets()}, indent=2)
            old_space = self.run_dir / "space.json"
            if (
                self.resume
                and old_space.is_file()
                and json.loads(old_space.read_text()) != json.loads(space_json)
            ):
                raise RunError(f"cannot resume {self.run_dir}: its search space differs from this config's")
            (self.run_dir / "space.json").write_text(space_json)
        phase["data"] = time.perf_counter() - t

        t = time.perf_counter()
        members_count = cfg.supernet.members
        epochs = cfg.supernet.epochs
        self.reporter.start_training(epochs * members_count, members=members_count)
        members: list[Supernet] = []
        stopped_in_training = False
        trained_epochs = 0
        with tracker.phase("supernet_training"):
            # Members train one after another; member k is seeded ``seed + k`` (member 0 is the plain
            # supernet, so one member trains exactly as without an ensemble).
            for k in range(members_count):
                supernet = Supernet(
                    spec, seed=cfg.seed + k, zero_init_residual=cfg.supernet.zero_init_residual
                )
                members.append(supernet)

                def on_epoch(
                    epoch: int, total: int, loss: float, seconds: float, done: int = k * epochs
                ) -> None:
                    self.reporter.epoch(done + epoch, total * members_count, loss, seconds)
                    tracker.write()
                    if done + epoch < total * members_count and tracker.check_budgets() is not None:
                        raise BudgetExceeded(tracker.stopped_by or {})

                path = member_checkpoint(self.run_dir, k)
                try:
                    trained = train_supernet(
                        supernet,
                        data.train,
                        **cfg.supernet.train_kwargs(),
                        fill=data.black,
                        seed=cfg.seed + k,
                        checkpoint_path=path,
                        on_epoch=on_epoch,
                    )
                except BudgetExceeded:
                    stopped_in_training = True
                    trained_epochs += _checkpoint_epochs(path)
                    break
                trained_epochs += trained.epochs
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
        evaluator = CandidateEvaluator(
            supernet=members,
            data=data,
            profile=self.profile,
            calib_samples=cfg.evaluation.calib_samples,
            exporter=cfg.evaluation.exporter,
            cache=cache,
            work_dir=self.run_dir / "tmp",
            phase=tracker.phase,
            lut=load_lut(self.profile),
            latency_mode=cfg.evaluation.latency,
            energy=_wants(cfg, "energy_mj"),
            finetune_steps=cfg.evaluation.finetune_steps,
            finetune_lr=cfg.evaluation.finetune_lr,
            export_finetune_steps=cfg.evaluation.export_finetune_steps,
        )
        storage = SQLiteStorage(self.run_dir / "study.db")
        try:
            objectives = self._objectives_with_reference(storage, evaluator, spec)
            try:
                study = Study(
                    space=spec.search_space(),
                    objectives=objectives,
                    strategy=self.make_strategy(),
                    constraints=self.constraints,
                    storage=storage,
                    annotate=lambda params: {"arch": spec.arch_from_params(params)},
                )
            except ValueError as e:  # a strategy that cannot search this space says why
                raise RunError(f"strategy {cfg.search.strategy!r} cannot search this space: {e}") from None
            storage.set_meta("config", cfg.model_dump(mode="json"))
            storage.set_meta("supernet", spec.to_dict())
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
            from nas._distributed import executor_for  # it builds evaluators of this module on workers

            ex = cfg.execution
            with executor_for(workers=ex.workers or None, scheduler=ex.scheduler) as pool:
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
                models = export_front(study, evaluator, self.run_dir)
                write_outputs(self.run_dir, study, models, energy_detail=storage.get_meta("energy_detail"))
            phase["export"] = time.perf_counter() - t
            shutil.rmtree(self.run_dir / "tmp", ignore_errors=True)
            hv = study.hypervolume()
            trials = study.trials
            failed = sum(tr.state is TrialState.FAILED for tr in trials)
            result = SearchResult(
                self.run_dir, tuple(models), len(trials), failed, hv, phase, stopped_by=tracker.stopped_by,
                failures=tuple((tr.number, tr.error or "") for tr in trials if tr.state is TrialState.FAILED),
            )  # fmt: skip
            (self.run_dir / "timings.json").write_text(json.dumps(phase, indent=2))
        finally:
            storage.close()
        return result

    def _objectives_with_reference(
        self, storage: SQLiteStorage, evaluator: CandidateEvaluator, spec: SupernetSpec
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
                o.name, o.direction, o.unit, ERROR_REFERENCE if o.name == "error" else 2.0 * largest[o.name]
            )
            for o in self.objectives
        ]


def _arch_seed(arch: Arch) -> int:
    """A seed that depends on the arch alone."""
    return int(hashlib.sha256(arch_key(arch).encode()).hexdigest()[:8], 16)


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


def _wants(cfg: SearchConfig, metric: str) -> bool:
    """Whether the search optimises or constrains ``metric``."""
    return metric in cfg.search.objectives or any(
        Constraint.parse(c).metric == metric for c in cfg.search.constraints
    )


def _checkpoint_epochs(path: Path) -> int:
    """Epochs a supernet checkpoint holds (0 when there is none)."""
    if not path.is_file():
        return 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return int(ckpt.get("epoch", 0))


def _sandwich_macs(supernet: Supernet, input_shape: tuple[int, ...], num_random: int) -> float:
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


def _country(region: str | None) -> str | None:
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


def load_lut(profile: HardwareProfile) -> LatencyTable | None:
    """The profile's lookup table, or ``None``; a relative path is read from the working directory."""
    if profile.lut is None:
        return None
    try:
        return LatencyTable.load(profile.lut)
    except LutError as e:
        raise RunError(f"profile {profile.name!r}: {e}") from None


#: How a candidate's latency is obtained when the profile has a lookup table.
LATENCY_MODES = ("auto", "measure", "predict")


def _measured_here(lut: LatencyTable, profile: HardwareProfile) -> bool:
    from nas._lut import machine_id

    if profile.device == "cuda":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    here, there = machine_id(), dict(lut.meta.get("machine", {}))
    return bool(there) and there.get("cpu_model") == here["cpu_model"] and there.get("host") == here["host"]


def _root(cfg: SearchConfig) -> str | None:
    return os.path.expanduser(cfg.data.root) if cfg.data.root else None


def _loader_options(cfg: SearchConfig) -> dict[str, Any]:
    """The loader's options a config sets: ``data.options``, and ``data.limit`` for cifar10."""
    limit = {"limit": cfg.data.limit} if cfg.data.name == "cifar10" and cfg.data.limit else {}
    return {**cfg.data.options, **limit}


def export_front(study: Study, evaluator: CandidateEvaluator, run_dir: Path) -> list[ModelRecord]:
    """Exports every distinct Pareto arch of ``study`` to ``run_dir/models/<trial>.onnx``, verified."""
    spec = evaluator.spec
    models: list[ModelRecord] = []
    seen: set[str] = set()
    (run_dir / "models").mkdir(exist_ok=True)
    for trial in sorted(study.best_trials, key=lambda t: t.values or ()):
        arch = spec.arch_from_params(trial.params)
        if arch_key(arch) in seen:
            continue
        seen.add(arch_key(arch))
        models.append(export_model(trial, arch, evaluator, run_dir, [o.name for o in study.objectives]))
    return models


def export_model(
    trial: Trial,
    arch: Arch,
    evaluator: CandidateEvaluator,
    run_dir: Path,
    objective_names: list[str],
    *,
    path: Path | None = None,
) -> ModelRecord:
    """Exports one trial's arch as a standalone ONNX model, checks it against PyTorch, scores it on the
    validation and test splits.

    With an ensemble of supernets, the subnet of the member that scored best for this arch is exported;
    with ``export_finetune_steps``, after that many steps of fine-tuning.
    """
    member = int(trial.metrics.get("member", 0))
    if member >= len(evaluator.members):
        raise RunError(
            f"trial {trial.number} was scored best by supernet member {member}, and this run has "
            f"{len(evaluator.members)} member(s)"
        )
    model = evaluator.export_subnet(arch, member=member)
    validation_error = float(evaluate_error(model, evaluator.data.val))
    # A dataset given through the Python API may have no test split: the model then has no test error.
    test_error = None if evaluator.data.test is None else float(evaluate_error(model, evaluator.data.test))
    target = path if path is not None else run_dir / "models" / f"{trial.number}.onnx"
    rel = os.path.relpath(target, run_dir)
    metrics = {k: float(v) for k, v in trial.metrics.items() if isinstance(v, (int, float))}
    data = evaluator.data
    metadata = {
        "hwnas.arch": json.dumps(arch),
        "hwnas.trial": str(trial.number),
        "hwnas.metrics": json.dumps(metrics),
        "hwnas.test_error": json.dumps(test_error),
        "hwnas.validation_error": json.dumps(validation_error),
        "hwnas.member": str(member),
        "hwnas.export_finetune_steps": str(evaluator.export_finetune_steps),
        "hwnas.supernet": json.dumps(evaluator.spec.to_dict()),
        "hwnas.dataset": data.name,
        "hwnas.input_shape": json.dumps(list(data.input_shape)),
        "hwnas.normalize": json.dumps({"mean": list(data.mean), "std": list(data.std)}),
        "hwnas.profile": evaluator.profile.name,
    }
    path = export_onnx(model, target, data.input_shape, metadata=metadata, exporter=evaluator.exporter)
    check = verify_onnx(model, path, data.input_shape)
    return ModelRecord(
        id=trial.number,
        arch=arch,
        metrics={n: metrics[n] for n in objective_names}
        | {k: v for k, v in metrics.items() if k not in objective_names},
        onnx=rel,
        test_error=test_error,
        max_abs_diff=float(check.max_abs_diff),
        validation_error=validation_error,
        member=member,
        finetune_steps=evaluator.export_finetune_steps,
    )


def write_outputs(
    run_dir: Path, study: Study, models: list[ModelRecord], *, energy_detail: str | None = None
) -> None:
    """``pareto.json``, ``trials.csv`` and ``pareto.png``, all derived from the study."""
    objectives = study.objectives
    methods = {t.number: t.metrics.get("energy_method") for t in study.trials}
    pareto: dict[str, Any] = {
        "objectives": [o.to_dict() for o in objectives],
        "hypervolume": study.hypervolume(),
        "reference": {o.name: o.reference for o in objectives},
        "models": [
            {**m.to_dict(), **({"energy_method": methods[m.id]} if methods.get(m.id) else {})} for m in models
        ],
    }
    if energy_detail is not None:
        pareto["energy"] = {"per": "inference", "unit": "mJ", "detail": energy_detail}
    _atomic_write(run_dir / "pareto.json", json.dumps(pareto, indent=2))
    write_trials_csv(run_dir / "trials.csv", study)
    from nas._plots import plot_front

    plot_front(study, run_dir / "pareto.png", highlight={m.id for m in models})


def write_trials_csv(path: Path, study: Study) -> None:
    """One row per trial: state, fidelity, objectives, other metrics, violation, duration, the energy the search
    spent on it (``search_energy_kwh`` and its method), failure, arch."""
    trials = study.trials
    names = [o.name for o in study.objectives]
    extra = sorted({k for t in trials for k in t.metrics} - set(names))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([
            "number", "state", "fidelity", *names, *extra, "violation", "duration_s",
            "search_energy_kwh", "search_energy_method", "failure", "arch",
        ])  # fmt: skip
        for t in trials:
            arch = t.attrs.get("arch", dict(t.params))
            w.writerow([
                t.number, t.state.value, t.fidelity, *[_fmt(t.metrics.get(n)) for n in [*names, *extra]],
                _fmt(t.violation), _fmt(t.duration_s), _fmt(t.attrs.get("energy_kwh")),
                t.attrs.get("energy_method") or "", t.error or "", json.dumps(arch, separators=(",", ":")),
            ])  # fmt: skip
    os.replace(tmp, path)


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back as the same float
    return str(v)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _SilentReporter:
    """Reports nothing; the command line passes a reporter with progress bars."""

    def start_training(self, epochs: int, members: int = 1) -> None:
        pass

    def epoch(self, epoch: int, total: int, loss: float, seconds: float) -> None:
        pass

    def start_search(self, trials: int, done: int = 0) -> None:
        pass

    def trial(self, study: Study, trial: Trial) -> None:
        pass


def member_checkpoint(run_dir: Path, member: int) -> Path:
    """Where supernet ``member`` of a run is checkpointed: ``supernet.pt`` for the first (the only one
    without an ensemble), ``supernet-<k>.pt`` for member k >= 1."""
    return run_dir / ("supernet.pt" if member == 0 else f"supernet-{member}.pt")


def load_trained_members(run_dir: str | Path) -> tuple[SearchConfig, DataSplits, tuple[Supernet, ...]]:
    """The config, data and trained supernets of a run directory: one, or ``supernet.members`` of them."""
    from nas._config import ConfigError, load_config

    run = Path(run_dir)
    if not (run / "config.yaml").is_file() or not (run / "study.db").is_file():
        raise RunError(f"{run} is not an hwnas run directory (it needs config.yaml and study.db)")
    try:
        config = load_config(run / "config.yaml")
    except ConfigError as e:
        raise RunError(f"{run}/config.yaml cannot be used: {e}") from None
    members = []
    for k in range(config.supernet.members):
        ckpt_path = member_checkpoint(run, k)
        if not ckpt_path.is_file():
            raise RunError(
                f"{run} has no checkpoint of supernet member {k} ({ckpt_path.name}): its training never "
                "finished an epoch"
                if k
                else f"{run} has no supernet checkpoint (supernet.pt): its training never finished an epoch"
            )
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            spec = SupernetSpec.from_dict(ckpt["config"]["spec"])
            supernet = Supernet(spec, seed=config.seed + k)
            supernet.load_state_dict(ckpt["model"])
        except Exception as e:  # noqa: BLE001 - a damaged file, whatever torch raises: say so in one line
            raise RunError(f"{ckpt_path} cannot be read ({type(e).__name__}: {e})") from None
        members.append(supernet.eval())
    data = load_dataset(config.data.name, root=_root(config), seed=config.seed, **_loader_options(config))
    return config, data, tuple(members)


def reexport(run_dir: str | Path, trial_id: int, *, out: str | Path | None = None) -> tuple[Path, float]:
    """Re-exports the model of one COMPLETE trial of a finished run; returns its path and max |ONNX - torch|."""
    run = Path(run_dir)
    config, data, members = load_trained_members(run)
    storage = SQLiteStorage(run / "study.db")
    try:
        try:
            trial = storage.get_trial(trial_id)
        except KeyError:
            raise RunError(
                f"{run} has no trial {trial_id} (it has {storage.count()} trials: 0 to {storage.count() - 1})"
            ) from None
        if trial.state is not TrialState.COMPLETE:
            raise RunError(
                f"trial {trial_id} of {run} is {trial.state.value}, not COMPLETE: nothing to export"
            )
        names = [o["name"] for o in storage.get_meta("objectives", [])]
    finally:
        storage.close()
    evaluator = CandidateEvaluator(
        supernet=members,
        data=data,
        profile=load_profile(config.profile),
        calib_samples=config.evaluation.calib_samples,
        exporter=config.evaluation.exporter,
        finetune_steps=config.evaluation.finetune_steps,
        finetune_lr=config.evaluation.finetune_lr,
        export_finetune_steps=config.evaluation.export_finetune_steps,
    )
    arch = evaluator.spec.arch_from_params(trial.params)
    target = Path(out) if out is not None else run / "models" / f"{trial_id}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    record = export_model(trial, arch, evaluator, run, names, path=target)
    return target, record.max_abs_diff
