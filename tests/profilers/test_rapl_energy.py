"""RaplEnergy against a fake powercap tree (and the real one where RAPL counters are readable)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_clock import FakeClock
from fake_powercap import add_energy, make_powercap

from hardware_profiles import HardwareProfile
from profilers import EnergyMeterError, RaplEnergy, energy_profiler_from_profile

STEP_S = 2**-10  # one scripted inference, about 1 ms
MIN_S = 2**-4  # a loop of exactly 64 inferences of STEP_S


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def scripted(clock: FakeClock) -> dict[str, object]:
    """Arguments that make a meter read (and sleep on) ``clock``: its loop lasts MIN_S / STEP_S inferences."""
    return {"min_duration_s": MIN_S, "clock": clock, "sleep": clock.sleep}


def stepping(clock: FakeClock, body: Callable[[], None]) -> Callable[[], None]:
    """An inference that does ``body`` and lasts STEP_S on ``clock``."""

    def run() -> None:
        body()
        clock.advance(STEP_S)

    return run


REAL_ROOT = Path("/sys/class/powercap")


def _real_rapl_readable() -> bool:
    try:
        RaplEnergy(root=REAL_ROOT)
    except EnergyMeterError:
        return False
    return True


HAS_RAPL = _real_rapl_readable()


def as_unprivileged_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads files whatever their mode; make reads honour the mode bits as for an ordinary user."""
    if os.geteuid() != 0:
        return
    original = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self.is_file() and not self.stat().st_mode & 0o444:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)


def test_package_and_dram_are_summed(tmp_path: Path, clock: FakeClock) -> None:
    root = make_powercap(tmp_path, packages=2)
    meter = RaplEnergy(root=root, **scripted(clock))
    # core is part of the package and mmio mirrors it: neither is read.
    assert meter.zones == ("package-0", "package-0/dram", "package-1", "package-1/dram")
    assert meter.device == "cpu"

    def run() -> None:  # one inference: 1000 uJ per package, 250 uJ per DRAM
        for n in range(2):
            add_energy(root / f"intel-rapl:{n}", 1000)
            add_energy(root / f"intel-rapl:{n}:1", 250)
            add_energy(root / f"intel-rapl:{n}:0", 999_999)  # core: must not count
            add_energy(root / f"intel-rapl-mmio:{n}", 1000)  # mirror: must not count
        clock.advance(STEP_S)

    result = meter.measure(run, batch_size=4)
    assert result.method == "measured-rapl"
    assert result.energy_mj == pytest.approx(2 * 1.25)  # exact: integer microjoules
    assert result.per_sample_mj == pytest.approx(2.5 / 4)
    assert result.runs == 64 and result.duration_s == MIN_S
    assert result.mean_power_w == pytest.approx(2.5e-3 * result.runs / result.duration_s)
    assert "package-0, package-0/dram, package-1, package-1/dram" in result.detail


def test_counter_wrap_around_is_corrected(tmp_path: Path, clock: FakeClock) -> None:
    max_range = 10_000_000
    root = make_powercap(
        tmp_path, dram=False, core=False, mmio=False, start_uj=max_range - 3000, max_range_uj=max_range
    )
    meter = RaplEnergy(root=root, **scripted(clock))
    result = meter.measure(stepping(clock, lambda: add_energy(root / "intel-rapl:0", 1000)))
    assert result.runs == 64  # so the counter passed max_energy_range_uj during the loop
    assert int((root / "intel-rapl:0" / "energy_uj").read_text()) < max_range - 3000
    assert result.energy_mj == pytest.approx(1.0)
    assert "wrap-around corrected: package-0" in result.detail


def test_domains_select_zones(tmp_path: Path) -> None:
    root = make_powercap(tmp_path)
    assert RaplEnergy(root=root, domains=("package",)).zones == ("package-0",)
    assert RaplEnergy(root=root, domains=("dram",)).zones == ("package-0/dram",)
    assert RaplEnergy(root=root, domains=("package", "core")).zones == ("package-0", "package-0/core")
    with pytest.raises(EnergyMeterError, match=r"no RAPL zone .* matches domains \['psys'\]; zones found"):
        RaplEnergy(root=root, domains=("psys",))


def test_missing_dram_zone_reads_the_package_only(tmp_path: Path) -> None:
    root = make_powercap(tmp_path, dram=False)
    assert RaplEnergy(root=root).zones == ("package-0",)


def test_idle_measured_before_the_loop_is_subtracted(tmp_path: Path, clock: FakeClock) -> None:
    root = make_powercap(tmp_path, dram=False, core=False, mmio=False)
    meter = RaplEnergy(root=root, subtract_idle=True, idle_window_s=0.125, **scripted(clock))
    result = meter.measure(stepping(clock, lambda: add_energy(root / "intel-rapl:0", 500)))
    assert clock() == 0.125 + MIN_S  # the idle window, waited on the meter's clock, then the loop
    assert result.idle_w == 0.0  # nothing was added while idle
    assert result.energy_mj == pytest.approx(0.5)


def test_idle_from_the_profile_is_subtracted(tmp_path: Path, clock: FakeClock) -> None:
    root = make_powercap(tmp_path, dram=False, core=False, mmio=False)
    meter = RaplEnergy(root=root, subtract_idle=True, idle_w=0.01, **scripted(clock))
    result = meter.measure(stepping(clock, lambda: add_energy(root / "intel-rapl:0", 500)))
    assert result.idle_w == 0.01 and clock() == MIN_S  # no idle window was measured
    expected = 0.5 - 0.01 * STEP_S * 1e3
    assert result.energy_mj == pytest.approx(expected, rel=1e-6)


def test_energy_below_idle_is_reported_as_zero(tmp_path: Path, clock: FakeClock) -> None:
    root = make_powercap(tmp_path, dram=False, core=False, mmio=False)
    meter = RaplEnergy(root=root, subtract_idle=True, idle_w=1000.0, **scripted(clock))
    result = meter.measure(stepping(clock, lambda: add_energy(root / "intel-rapl:0", 1)))
    assert result.energy_mj == 0.0 and "reported as 0" in result.detail


def test_missing_tree_is_explained(tmp_path: Path) -> None:
    with pytest.raises(EnergyMeterError, match="no RAPL energy counters under .*estimate"):
        RaplEnergy(root=tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnergyMeterError, match="intel_rapl_common"):
        RaplEnergy(root=tmp_path / "empty")


def test_unreadable_counter_says_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_powercap(tmp_path)
    (root / "intel-rapl:0" / "energy_uj").chmod(0o000)  # root-only since Linux 5.10 (0400 root:root)
    as_unprivileged_user(monkeypatch)
    with pytest.raises(EnergyMeterError) as info:
        RaplEnergy(root=root)
    message = str(info.value)
    assert "intel-rapl:0/energy_uj is not readable" in message
    assert "Linux 5.10" in message and "sudo chmod a+r" in message and "root" in message


def test_bad_domains_are_rejected(tmp_path: Path) -> None:
    root = make_powercap(tmp_path)
    with pytest.raises(ValueError, match="domains"):
        RaplEnergy(root=root, domains="package")


# ----------------------------------------------------------------------------------- from a profile


def test_auto_picks_rapl_when_readable(tmp_path: Path) -> None:
    root = make_powercap(tmp_path)
    profile = HardwareProfile(name="box", energy_min_duration_s=0.5, subtract_idle=True)
    meter = energy_profiler_from_profile(profile, powercap_root=root)
    assert isinstance(meter, RaplEnergy)
    assert meter.min_duration_s == 0.5 and meter.subtract_idle and meter.fallback_reason is None


def test_auto_falls_back_to_the_estimate_when_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_powercap(tmp_path)
    (root / "intel-rapl:0" / "energy_uj").chmod(0o000)
    as_unprivileged_user(monkeypatch)
    profile = HardwareProfile(name="box", idle_w=5.0, tdp_w=65.0)
    meter = energy_profiler_from_profile(profile, powercap_root=root)
    assert meter.method == "estimated"
    assert meter.fallback_reason is not None
    assert meter.fallback_reason.startswith("RAPL:") and "not readable" in meter.fallback_reason
    with pytest.raises(EnergyMeterError, match="not readable"):
        energy_profiler_from_profile(profile, "rapl", powercap_root=root)


# -------------------------------------------------------------------------------------- real hardware


@pytest.mark.rapl
@pytest.mark.skipif(not HAS_RAPL, reason="needs readable RAPL counters under /sys/class/powercap")
def test_real_cpu_energy_is_plausible() -> None:
    meter = RaplEnergy(min_duration_s=1.0)

    def busy() -> None:
        sum(i * i for i in range(20_000))

    result = meter.measure(busy)
    assert 0.5 < result.mean_power_w < 2000.0  # a CPU package (and DRAM) at work
    assert result.energy_mj > 0 and result.method == "measured-rapl"
    assert "package-0" in meter.zones
