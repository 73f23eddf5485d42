"""EstimatedEnergy's formula, and the CPU TDP looked up in codecarbon's table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fake_clock import FakeClock

import profilers._estimate as estimate_module
import profilers._factory as factory_module
from hardware_profiles import HardwareProfile
from profilers import EnergyMeterError, EstimatedEnergy, energy_profiler_from_profile, lookup_cpu_tdp

HAS_CODECARBON = importlib.util.find_spec("codecarbon") is not None
needs_codecarbon = pytest.mark.skipif(not HAS_CODECARBON, reason="codecarbon ships the CPU TDP table")


STEP_S = 2**-10  # one scripted inference, about 1 ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def lasting(clock: FakeClock, seconds: float = STEP_S):  # type: ignore[no-untyped-def]
    """An inference that lasts ``seconds`` on ``clock``."""
    return lambda: clock.advance(seconds)


def test_power_follows_the_documented_formula(clock: FakeClock) -> None:
    meter = EstimatedEnergy(idle_w=10.0, tdp_w=110.0, utilisation=0.25, min_duration_s=2**-4, clock=clock)
    assert meter.power_w == 10.0 + 100.0 * 0.25
    result = meter.measure(lasting(clock), batch_size=2)
    assert result.method == "estimated"
    assert result.mean_power_w == pytest.approx(35.0)
    # energy per inference = power x measured time per inference
    assert result.energy_mj == pytest.approx(35.0 * STEP_S * 1e3)
    assert result.runs == 64 and result.duration_s == 2**-4  # the loop timed its inferences on its clock
    assert result.idle_w is None
    assert "idle 10 W + (tdp 110 W - idle) x utilisation 0.25 = 35 W" in result.detail


def test_subtracting_idle_keeps_the_dynamic_part_only(clock: FakeClock) -> None:
    meter = EstimatedEnergy(
        idle_w=10.0, tdp_w=110.0, utilisation=0.5, subtract_idle=True, min_duration_s=0.05, clock=clock
    )
    result = meter.measure(lasting(clock))
    assert result.idle_w == 10.0
    assert result.energy_mj == pytest.approx(50.0 * STEP_S * 1e3)
    assert result.mean_power_w == pytest.approx(60.0)


def test_unknown_idle_counts_as_zero_and_says_so(clock: FakeClock) -> None:
    meter = EstimatedEnergy(tdp_w=80.0, utilisation=0.5, subtract_idle=True, min_duration_s=0.02, clock=clock)
    assert meter.power_w == 40.0
    result = meter.measure(lasting(clock))
    assert result.idle_w == 0.0
    assert result.energy_mj == pytest.approx(40.0 * STEP_S * 1e3)
    assert "idle power unknown" in result.detail


def test_longer_inferences_cost_more_energy(clock: FakeClock) -> None:
    meter = EstimatedEnergy(idle_w=5.0, tdp_w=65.0, min_duration_s=2**-4, clock=clock)
    short = meter.measure(lasting(clock, STEP_S))
    long = meter.measure(lasting(clock, 4 * STEP_S))
    assert long.energy_mj == pytest.approx(4 * short.energy_mj)
    assert (short.runs, long.runs) == (64, 16)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tdp_w": 0}, "tdp_w must be a positive"),
        ({"tdp_w": 50, "idle_w": 60}, "above tdp_w"),
        ({"tdp_w": 50, "idle_w": -1}, "idle_w"),
        ({"tdp_w": 50, "utilisation": 0}, "utilisation"),
        ({"tdp_w": 50, "utilisation": 1.5}, "utilisation"),
        ({"tdp_w": 50, "min_duration_s": -1}, "min_duration_s"),
    ],
)
def test_bad_power_models_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EstimatedEnergy(**kwargs)


# ----------------------------------------------------------------------------------------- TDP lookup


@needs_codecarbon
@pytest.mark.parametrize(
    "reported, row, tdp_w",
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Intel Xeon Gold 6248", 150.0),
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Intel Xeon Gold 6248R", 205.0),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700", 65.0),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0),
        ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Ryzen 9 5950X", 105.0),
    ],
)
def test_codecarbon_table_lookup(reported: str, row: str, tdp_w: float) -> None:
    found = lookup_cpu_tdp(reported, sockets=1)
    assert (found.matched_name, found.tdp_w) == (row, tdp_w)
    assert found.table.name == "cpu_power.csv" and "codecarbon" in str(found.table)
    assert row in found.describe() and reported in found.describe()


@needs_codecarbon
@pytest.mark.parametrize("reported", ["AMD EPYC", "Totally Unknown CPU 9000", "Intel Xeon"])
def test_unknown_or_vague_cpu_names_are_refused(reported: str) -> None:
    with pytest.raises(EnergyMeterError, match="set idle_w and tdp_w"):
        lookup_cpu_tdp(reported, sockets=1)


def test_ambiguous_rows_are_refused(tmp_path: Path) -> None:
    table = tmp_path / "cpus.csv"
    table.write_text("Name,TDP\nAcme X1,10\nAcme X1 Turbo,20\nAcme Z9 Max,30\nAcme Z9 Pro,40\n")
    assert lookup_cpu_tdp("Acme X1 Turbo", table=table, sockets=1).tdp_w == 20.0
    assert lookup_cpu_tdp("ACME(R) X1(TM) CPU @ 1.00GHz", table=table, sockets=1).tdp_w == 10.0
    with pytest.raises(EnergyMeterError, match="several rows"):
        lookup_cpu_tdp("Acme Z9 Max Pro", table=table, sockets=1)


def test_sockets_multiply_the_tdp(tmp_path: Path) -> None:
    table = tmp_path / "cpus.csv"
    table.write_text("Name,TDP\nAcme X1,10\n")
    assert lookup_cpu_tdp("Acme X1", table=table, sockets=2).total_tdp_w == 20.0


@needs_codecarbon
def test_cpu_profile_without_numbers_uses_the_looked_up_tdp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate_module, "cpu_model_name", lambda: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")
    monkeypatch.setattr(estimate_module, "cpu_sockets", lambda: 2)
    monkeypatch.setattr(factory_module.os, "cpu_count", lambda: 8)  # whatever this machine has
    profile = HardwareProfile(name="box", intra_op_threads=1, energy="estimate", energy_min_duration_s=0.02)
    meter = energy_profiler_from_profile(profile)
    assert isinstance(meter, EstimatedEnergy)
    assert meter.tdp_w == 300.0  # 150 W per package, two packages
    assert meter.utilisation == pytest.approx(1 / 8)  # one thread of eight logical cores
    assert meter.power_w == pytest.approx(300.0 / 8)
    assert "1 thread(s) / 8 logical cores" in meter.source
    result = meter.measure(lambda: None)
    assert "'Intel Xeon Gold 6248'" in result.detail and "cpu_power.csv" in result.detail
    assert "x 2 sockets" in result.detail and result.fallback_reason is None


@needs_codecarbon
def test_auto_on_an_unknown_cpu_without_rapl_gives_every_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(estimate_module, "cpu_model_name", lambda: "AMD EPYC")
    with pytest.raises(EnergyMeterError) as info:
        energy_profiler_from_profile(HardwareProfile(name="box"), powercap_root=tmp_path / "none")
    message = str(info.value)
    assert "RAPL" in message and "'AMD EPYC' is not in the TDP table" in message
    assert "set idle_w and tdp_w" in message


def test_profile_power_model_wins_over_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup() -> str:
        raise AssertionError("the profile's numbers must be used")

    monkeypatch.setattr(estimate_module, "cpu_model_name", no_lookup)
    monkeypatch.setattr(factory_module.os, "cpu_count", lambda: 16)  # whatever this machine has
    profile = HardwareProfile(name="box", idle_w=4.0, tdp_w=44.0, intra_op_threads=64)
    meter = energy_profiler_from_profile(profile, "estimate")
    assert isinstance(meter, EstimatedEnergy)
    assert meter.utilisation == 1.0 and meter.power_w == 44.0  # 64 threads saturate 16 cores
    assert "power model of profile 'box'" in meter.source


def test_gpu_profile_without_a_power_model_cannot_be_estimated() -> None:
    profile = HardwareProfile(name="gpu", device="cuda", providers=("CUDAExecutionProvider",))
    with pytest.raises(EnergyMeterError, match="no power model for its GPU.*idle_w and tdp_w"):
        energy_profiler_from_profile(profile, "estimate")
