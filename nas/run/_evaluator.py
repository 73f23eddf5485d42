"""Scoring one candidate: accuracy inherited from the supernet, latency and energy on the target, size."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, cast

import torch

from hardware_profiles import HardwareProfile, load_profile
from nas._errors import RunError
from nas.data import DataSplits
from nas.run._config import DEVICE_METRICS, SearchConfig
from nas.run._export import export_onnx
from nas.run._lut import predict_latency
from nas.spaces import Arch, ElasticSupernet, SearchSpace, arch_key
from nas.training._evaluate import ImageDataset, evaluate_error, finetune, recalibrate_bn
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
    Trial,
)

__all__ = ["LATENCY_MODES", "CandidateEvaluator", "load_lut"]


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
        supernet: ElasticSupernet | Sequence[ElasticSupernet],
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
        device: str | None = None,
    ) -> None:
        if latency_mode not in LATENCY_MODES:
            raise ValueError(f"latency_mode must be one of {list(LATENCY_MODES)}, got {latency_mode!r}")
        if latency_mode == "predict" and lut is None:
            raise ValueError(
                f"latency_mode 'predict' needs a lookup table; profile {profile.name!r} has none"
            )
        #: the supernets that score a candidate: one, or the members of an ensemble
        self.members: tuple[ElasticSupernet, ...] = (
            (supernet,) if isinstance(supernet, ElasticSupernet) else tuple(supernet)
        )
        if not self.members:
            raise ValueError("at least one supernet is needed")
        if any(m.space != self.members[0].space for m in self.members):
            raise ValueError("the members of an ensemble must share one supernet spec")
        #: where subnets are recalibrated, validated and fine-tuned (``auto``, ``cpu``, ``cuda``, ``cuda:N``);
        #: ``None`` leaves the supernets where they are. Models are exported and measured from the CPU.
        self.device = device
        if device is not None:
            from nas.training._device import DeviceError, resolve_device

            try:
                where = resolve_device(device)
            except DeviceError as e:
                raise RunError(str(e)) from None
            for m in self.members:
                m.to(where)
        self.supernet = self.members[0]
        #: the search space of the supernet(s); ``spec`` is the same object under its older name
        self.space: SearchSpace = self.supernet.space
        self.spec: SearchSpace = self.space
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
        #: further devices each candidate is measured on (``nas.run._multi``): (label, evaluator or ``None``
        #: for this one); their figures are reported as ``latency_ms@label`` and the like
        self.devices: tuple[tuple[str, CandidateEvaluator | None], ...] = ()
        #: run after scoring at full fidelity with the calibrated model (``nas.run._int8``): extra metrics
        self.extra_scores: tuple[Callable[[Arch, torch.nn.Module, float], dict[str, float]], ...] = ()

    @classmethod
    def from_config(
        cls,
        config: SearchConfig,
        *,
        supernet: ElasticSupernet | Sequence[ElasticSupernet],
        data: DataSplits,
        profile: HardwareProfile | None = None,
        measuring: bool = True,
        **overrides: Any,
    ) -> CandidateEvaluator:
        """The evaluator a run of ``config`` scores with: the one place a config becomes an evaluator.

        Args:
            config: The run's validated config (its ``evaluation`` section and objectives).
            supernet: The trained supernet, or the members of an ensemble.
            data: The dataset splits the supernet was trained on.
            profile: The hardware profile; by default the config's.
            measuring: Whether latency and energy will be measured (a search); ``False`` for re-exporting a
                model, which needs neither the lookup table nor an energy meter.
            overrides: Further keyword arguments of the constructor (cache, work_dir, process-local hooks).
        """
        ev = config.evaluation
        profile = profile if profile is not None else load_profile(config.profiles()[0])
        kwargs: dict[str, Any] = {
            "calib_samples": ev.calib_samples,
            "exporter": ev.exporter,
            "finetune_steps": ev.finetune_steps,
            "finetune_lr": ev.finetune_lr,
            "export_finetune_steps": ev.export_finetune_steps,
        }
        if measuring:
            kwargs |= {
                "lut": load_lut(profile),
                "latency_mode": ev.latency,
                "energy": config.wants("energy_mj"),
            }
        return cls(supernet=supernet, data=data, profile=profile, **{**kwargs, **overrides})

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
            "device": self.device,
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
        return model.cpu().eval()  # exported and checked against ONNX Runtime on the CPU, as measured

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
        with self.phase("profiling"), self._shared_export(models[best]) as onnx_path:
            measured = self.measure(arch, models[best], method=self.latency_method(fidelity), onnx_path=onnx_path)
            metrics = {"error": sum(errors) / len(errors), **measured}
            for label, other in self.devices:  # further profiles time the same file (batch is dynamic)
                on = measured if other is None else other.measure(
                    arch, models[best], method=other.latency_method(fidelity),
                    onnx_path=onnx_path if other.input_shape == self.input_shape else None,
                )  # fmt: skip
                metrics |= {f"{k}@{label}": v for k, v in on.items() if k in DEVICE_METRICS}
        for extra_score in self.extra_scores:
            metrics |= extra_score(arch, models[best], fidelity)
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

    @contextlib.contextmanager
    def _shared_export(self, model: torch.nn.Module) -> Any:
        """With several profiles, one ONNX file of the model that every profile times; else ``None``."""
        if not self.devices:
            yield None
            return
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=self._work_dir)
        os.close(fd)
        try:
            t0 = time.perf_counter()
            with self.work_lock():
                export_onnx(model.cpu(), tmp, self.input_shape, exporter=self.exporter)
            self.seconds["export"] += time.perf_counter() - t0
            yield tmp
        finally:
            Path(tmp).unlink(missing_ok=True)

    def measure(
        self, arch: Arch, model: torch.nn.Module, *, method: str = "measured", onnx_path: str | None = None
    ) -> dict[str, float]:
        """Latency and size of one arch, from the cache or by exporting it and timing it (``method``
        ``"measured"``) or predicting its latency from the lookup table (``"lut"``); ``onnx_path``: a file
        of the model already exported (with a dynamic batch), timed instead of a new export."""
        key = [arch_key(arch), self.profile.name, self.profile.batch_size, list(self.input_shape)]
        cache_key = json.dumps(key if method == "measured" else [*key, method])
        cached = self.cache.get(cache_key)
        if cached is not None:
            return dict(cast("dict[str, float]", cached))  # an entry this method stored
        model = model.cpu()  # scored where the supernet trained; exported (and timed) from the CPU
        t0 = time.perf_counter()
        if onnx_path is None:
            fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=self._work_dir)
            os.close(fd)
        else:
            tmp = onnx_path
        try:
            if onnx_path is None:
                with self.work_lock():
                    export_onnx(
                        model, tmp, self.input_shape, batch_size=self.profile.batch_size, exporter=self.exporter
                    )
            t1 = time.perf_counter()
            if method == "lut":
                assert self.lut is not None
                predict = getattr(self.lut, "predict_arch", None)  # a transfer table predicts whole archs
                median_ms = (
                    predict(self.spec, arch, self.input_shape) if predict is not None
                    else predict_latency(self.lut, self.spec, arch, self.input_shape)
                )  # fmt: skip
                iqr_ms = 0.0
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
            if onnx_path is None:
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


def _arch_seed(arch: Arch) -> int:
    """A seed that depends on the arch alone."""
    return int(hashlib.sha256(arch_key(arch).encode()).hexdigest()[:8], 16)


def load_lut(profile: HardwareProfile) -> LatencyTable | None:
    """The profile's lookup table, or ``None``; a relative path is read from the working directory."""
    if profile.lut is None:
        return None
    from nas.run._few import is_transfer_table, load_transfer_table

    if is_transfer_table(profile.lut):  # a profile written by ``hwnas profile-device --few``
        return load_transfer_table(profile.lut)  # type: ignore[return-value]
    try:
        return LatencyTable.load(profile.lut)
    except LutError as e:
        raise RunError(f"profile {profile.name!r}: {e}") from None


#: How a candidate's latency is obtained when the profile has a lookup table.
LATENCY_MODES = ("auto", "measure", "predict")


def _measured_here(lut: LatencyTable, profile: HardwareProfile) -> bool:
    from nas.run._lut import machine_id

    if profile.device == "cuda":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    here, there = machine_id(), dict(lut.meta.get("machine", {}))
    return bool(there) and there.get("cpu_model") == here["cpu_model"] and there.get("host") == here["host"]

