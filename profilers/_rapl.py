"""Energy of the CPU package(s) and DRAM read from Linux RAPL counters under ``/sys/class/powercap``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from profilers._energy import EnergyMeterError, EnergyProfiler

__all__ = ["RaplEnergy"]

POWERCAP_ROOT = "/sys/class/powercap"
# intel-rapl:<package> and intel-rapl:<package>:<subzone>; AMD Zen CPUs use the same names. The
# intel-rapl-mmio zones mirror the package counters on some Intel CPUs and are skipped: they would count twice.
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")

_PERMISSION_FIX = (
    "since Linux 5.10 RAPL counters are readable by root only. Run as root, or make them readable: "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj` "
    "(until the next reboot; a udev rule or systemd-tmpfiles entry makes it last)"
)


@dataclass(frozen=True)
class _Zone:
    label: str  # "package-0" or "package-0/dram"
    energy_path: Path
    max_range_uj: int


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as exc:
        raise EnergyMeterError(f"{path} is not readable by this user: {_PERMISSION_FIX}") from exc
    except (OSError, ValueError) as exc:
        raise EnergyMeterError(f"could not read a RAPL counter from {path}: {exc}") from exc


def _zone_name(directory: Path) -> str:
    try:
        return (directory / "name").read_text().strip()
    except OSError as exc:
        raise EnergyMeterError(f"could not read the RAPL zone name {directory / 'name'}: {exc}") from exc


class RaplEnergy(EnergyProfiler):
    """Energy of the CPU from RAPL counters, labelled ``"measured-rapl"``.

    Reads the zones under ``root`` (``/sys/class/powercap``): every package zone ``intel-rapl:N`` (named
    ``package-N``) and, with ``"dram"`` in ``domains``, each package's ``dram`` sub-zone ``intel-rapl:N:M``,
    and sums their ``energy_uj`` differences (package and DRAM energy do not overlap). Other sub-zones
    (``core``, ``uncore``) are parts of the package and are read only when named in ``domains``; a platform
    zone (``psys``) likewise. Which zones were read is in :attr:`zones` and in every result's ``detail``.

    Each counter wraps around to 0 after ``max_energy_range_uj``; one wrap between two readings is
    corrected. A loop must be shorter than one wrap period (at 100 W, a 262 J range wraps in minutes on some
    CPUs, hours on most). RAPL meters the whole package: other processes running at the same time count too.

    Args:
        root: The powercap directory (a different one for tests or containers that mount it elsewhere).
        domains: Zone names to read: ``"package"`` (every ``package-N``), ``"dram"``, or any other zone name.
        min_duration_s: See :class:`EnergyProfiler`.
        subtract_idle: See :class:`EnergyProfiler`.
        idle_w: See :class:`EnergyProfiler`.
        idle_window_s: See :class:`EnergyProfiler`.
        fallback_reason: See :class:`EnergyProfiler`.
        clock: See :class:`EnergyProfiler`.
        sleep: See :class:`EnergyProfiler`.

    Raises:
        EnergyMeterError: There is no powercap tree or no RAPL zone under ``root``, no zone matches
            ``domains``, or a counter is not readable (root-only since Linux 5.10: the message says how to
            allow it).

    Example:
        >>> meter = RaplEnergy()  # doctest: +SKIP
        >>> meter.zones  # doctest: +SKIP
        ('package-0', 'package-0/dram')
    """

    method = "measured-rapl"

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] = POWERCAP_ROOT,
        domains: Sequence[str] = ("package", "dram"),
        min_duration_s: float = 1.0,
        subtract_idle: bool = False,
        idle_w: float | None = None,
        idle_window_s: float = 0.5,
        fallback_reason: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if isinstance(domains, str) or not domains or not all(isinstance(d, str) and d for d in domains):
            raise ValueError(
                f"domains must be a non-empty list of zone names such as ['package', 'dram'], got {domains!r}"
            )
        super().__init__(
            device="cpu",
            min_duration_s=min_duration_s,
            subtract_idle=subtract_idle,
            idle_w=idle_w,
            idle_window_s=idle_window_s,
            fallback_reason=fallback_reason,
            clock=clock,
            sleep=sleep,
        )
        self.root = Path(root)
        self.domains = tuple(domains)
        self._zones = self._find_zones()
        for zone in self._zones:  # fail now, not in the middle of a search
            _read_int(zone.energy_path)
        self.zones: tuple[str, ...] = tuple(zone.label for zone in self._zones)

    def __repr__(self) -> str:
        return (
            f"RaplEnergy(root={str(self.root)!r}, zones={list(self.zones)}, "
            f"min_duration_s={self.min_duration_s}, subtract_idle={self.subtract_idle})"
        )

    def _find_zones(self) -> list[_Zone]:
        absent = (
            f"no RAPL energy counters under {self.root}: they need Linux on an Intel or AMD (Zen) CPU with the "
            "powercap RAPL driver loaded (`sudo modprobe intel_rapl_common`); virtual machines and most "
            "containers do not expose them. Obtain energy with 'estimate' instead (idle_w and tdp_w in the "
            "hardware profile)"
        )
        if not self.root.is_dir():
            raise EnergyMeterError(absent)
        entries: dict[tuple[int, int | None], Path] = {}
        try:
            for entry in self.root.iterdir():
                match = _ZONE.match(entry.name)
                if match:
                    sub = match.group(2)
                    entries[(int(match.group(1)), None if sub is None else int(sub))] = entry
        except OSError as exc:
            raise EnergyMeterError(f"could not list {self.root}: {exc}") from exc
        if not entries:
            raise EnergyMeterError(absent)
        names = {key: _zone_name(path) for key, path in entries.items()}
        wanted = set(self.domains)
        zones = []
        for key in sorted(entries, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
            package, sub = key
            name = names[key]
            kind = "package" if name.startswith("package") else name
            if kind not in wanted and name not in wanted:
                continue
            parent = names.get((package, None), f"intel-rapl:{package}")
            label = name if sub is None else f"{parent}/{name}"
            directory = entries[key]
            zones.append(
                _Zone(
                    label=label,
                    energy_path=directory / "energy_uj",
                    max_range_uj=_read_int(directory / "max_energy_range_uj"),
                )
            )
        if not zones:
            found = sorted(set(names.values()))
            raise EnergyMeterError(
                f"no RAPL zone under {self.root} matches domains {list(self.domains)}; zones found: {found}"
            )
        return zones

    def _start(self) -> object:
        return [_read_int(zone.energy_path) for zone in self._zones]

    def _stop(self, token: object, duration_s: float) -> tuple[float, str]:
        starts: list[int] = token  # type: ignore[assignment]
        total_uj = 0
        wrapped = []
        for zone, start in zip(self._zones, starts):
            end = _read_int(zone.energy_path)
            if end >= start:
                total_uj += end - start
            else:  # the counter passed max_energy_range_uj and restarted from 0
                total_uj += end + zone.max_range_uj - start
                wrapped.append(zone.label)
        detail = f"RAPL zones {', '.join(self.zones)} under {self.root}"
        if wrapped:
            detail += f" (wrap-around corrected: {', '.join(wrapped)})"
        return total_uj / 1e6, detail
