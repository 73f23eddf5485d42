"""Latency and energy profilers built from a hardware profile."""

from __future__ import annotations

import functools
import os

from hardware_profiles import ENERGY_SOURCES, HardwareProfile
from profilers._base import LatencyProfiler
from profilers._energy import EnergyMeterError, EnergyProfiler
from profilers._estimate import EstimatedEnergy, lookup_cpu_tdp
from profilers._nvml import NvmlEnergy
from profilers._onnxruntime import OnnxRuntimeLatency
from profilers._rapl import POWERCAP_ROOT, RaplEnergy
from profilers._torch import TorchLatency

__all__ = ["energy_profiler_from_profile", "latency_profiler_from_profile"]


def latency_profiler_from_profile(profile: HardwareProfile, *, seed: int = 0) -> LatencyProfiler:
    """The latency backend of a profile's runtime: :class:`~profilers.OnnxRuntimeLatency` for
    ``onnxruntime`` (ONNX files), :class:`~profilers.TorchLatency` for ``torch`` (modules).

    Example:
        >>> from hardware_profiles import load_profile
        >>> latency_profiler_from_profile(load_profile("local-cpu")).device
        'cpu'
    """
    if profile.runtime == "torch":
        return TorchLatency.from_profile(profile, seed=seed)
    return OnnxRuntimeLatency.from_profile(profile, seed=seed)


def _cpu_utilisation(profile: HardwareProfile) -> float:
    # ONNX Runtime runs sequentially (one operator at a time), so intra_op_threads is what keeps cores busy.
    logical = os.cpu_count() or 1
    return min(1.0, profile.intra_op_threads / logical)


def _estimate(profile: HardwareProfile, fallback_reason: str | None) -> EstimatedEnergy:
    device = "cpu" if profile.device == "cpu" else f"cuda:{profile.device_id}"
    build = functools.partial(
        EstimatedEnergy,
        device=device,
        min_duration_s=profile.energy_min_duration_s,
        subtract_idle=profile.subtract_idle,
        fallback_reason=fallback_reason,
    )
    if profile.device == "cpu":
        utilisation = _cpu_utilisation(profile)
        share = f"utilisation = {profile.intra_op_threads} thread(s) / {os.cpu_count() or 1} logical cores"
    else:
        utilisation, share = 1.0, "utilisation 1 (the GPU is kept busy)"
    if profile.tdp_w is not None:
        return build(
            tdp_w=profile.tdp_w,
            idle_w=profile.idle_w,
            utilisation=utilisation,
            source=f"power model of profile {profile.name!r}; {share}",
        )
    if profile.device != "cpu":
        raise EnergyMeterError(
            f"profile {profile.name!r} has no power model for its GPU: set idle_w and tdp_w (watts, from the "
            "GPU's datasheet or `nvidia-smi -q -d POWER`) to estimate energy"
        )
    tdp = lookup_cpu_tdp()
    if profile.idle_w is not None and profile.idle_w > tdp.total_tdp_w:
        raise EnergyMeterError(
            f"profile {profile.name!r} gives idle_w {profile.idle_w} W, above the looked-up TDP "
            f"({tdp.describe()}); set tdp_w in the profile too"
        )
    return build(
        tdp_w=tdp.total_tdp_w,
        idle_w=profile.idle_w,
        utilisation=utilisation,
        source=f"{tdp.describe()}; {share}",
    )


def energy_profiler_from_profile(
    profile: HardwareProfile,
    method: str | None = None,
    *,
    powercap_root: str | os.PathLike[str] = POWERCAP_ROOT,
) -> EnergyProfiler:
    """The energy backend a hardware profile asks for, configured from it.

    ``method`` (by default the profile's ``energy``) is one of:

    - ``"nvml"``: :class:`~profilers.NvmlEnergy` of GPU ``profile.device_id``;
    - ``"rapl"``: :class:`~profilers.RaplEnergy` of the CPU packages and DRAM;
    - ``"estimate"``: :class:`~profilers.EstimatedEnergy` from the profile's ``idle_w``/``tdp_w``; for a CPU
      profile without ``tdp_w``, the TDP of this machine's CPU model is looked up in codecarbon's table
      (:func:`~profilers.lookup_cpu_tdp`). CPU utilisation is ``intra_op_threads`` / logical cores; GPU
      utilisation is 1;
    - ``"auto"``: NVML for a ``cuda`` profile, RAPL for a ``cpu`` profile where the counters are readable,
      else the estimate. Why the meter could not be used is kept in the profiler's ``fallback_reason``, and
      so in every result, for the caller to report.

    Every backend takes ``energy_min_duration_s``, ``subtract_idle`` and ``idle_w`` from the profile.

    Args:
        profile: The hardware profile.
        method: Overrides the profile's ``energy``.
        powercap_root: Where the RAPL counters are (``/sys/class/powercap``).

    Raises:
        EnergyMeterError: The method cannot be used here (for ``"auto"``: no method can); the message gives
            every reason and what to do.

    Example:
        >>> from hardware_profiles import HardwareProfile
        >>> profile = HardwareProfile(name="box", idle_w=20.0, tdp_w=120.0)
        >>> meter = energy_profiler_from_profile(profile, powercap_root="/nonexistent")
        >>> meter.method
        'estimated'
        >>> print(meter.fallback_reason)  # doctest: +ELLIPSIS
        RAPL: no RAPL energy counters under /nonexistent: ...
    """
    method = profile.energy if method is None else method
    if method not in ENERGY_SOURCES:
        raise ValueError(f"method must be one of {list(ENERGY_SOURCES)}, got {method!r}")
    measured = {
        "min_duration_s": profile.energy_min_duration_s,
        "subtract_idle": profile.subtract_idle,
        "idle_w": profile.idle_w,
    }
    if method == "nvml":
        return NvmlEnergy(device_id=profile.device_id, **measured)  # type: ignore[arg-type]
    if method == "rapl":
        return RaplEnergy(root=powercap_root, **measured)  # type: ignore[arg-type]
    if method == "estimate":
        return _estimate(profile, fallback_reason=None)
    try:
        if profile.device == "cuda":
            return NvmlEnergy(device_id=profile.device_id, **measured)  # type: ignore[arg-type]
        return RaplEnergy(root=powercap_root, **measured)  # type: ignore[arg-type]
    except EnergyMeterError as exc:
        reason = f"{'NVML' if profile.device == 'cuda' else 'RAPL'}: {exc}"
    try:
        return _estimate(profile, fallback_reason=reason)
    except EnergyMeterError as exc:
        raise EnergyMeterError(
            f"no energy method works for profile {profile.name!r}. Measuring: {reason}. Estimating: {exc}"
        ) from None
