"""A fake /sys/class/powercap tree laid out as Linux lays it out, for testing RAPL without RAPL counters.

Linux lists every zone flat under /sys/class/powercap: the control type ``intel-rapl``, package zones
``intel-rapl:N`` (``name`` = ``package-N``), their sub-zones ``intel-rapl:N:M`` (``dram``, ``core``,
``uncore``), and on some Intel CPUs ``intel-rapl-mmio:N`` zones that mirror the package counter. Each zone
has ``name``, ``energy_uj`` (microjoules, wrapping to 0 after ``max_energy_range_uj``) and
``max_energy_range_uj``.
"""

from __future__ import annotations

from pathlib import Path


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_range_uj: int) -> Path:
    directory = root / zone
    directory.mkdir(parents=True)
    (directory / "name").write_text(f"{name}\n")
    (directory / "energy_uj").write_text(f"{energy_uj}\n")
    (directory / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    (directory / "enabled").write_text("1\n")
    return directory


def make_powercap(
    root: Path,
    *,
    packages: int = 1,
    dram: bool = True,
    core: bool = True,
    mmio: bool = True,
    start_uj: int = 1_000_000,
    max_range_uj: int = 262_143_328_850,
) -> Path:
    """Builds the tree under ``root`` and returns ``root``."""
    (root / "intel-rapl").mkdir(parents=True)
    (root / "intel-rapl" / "enabled").write_text("1\n")
    for n in range(packages):
        make_zone(root, f"intel-rapl:{n}", f"package-{n}", start_uj, max_range_uj)
        sub = 0
        if core:
            make_zone(root, f"intel-rapl:{n}:{sub}", "core", start_uj, max_range_uj)
            sub += 1
        if dram:
            make_zone(root, f"intel-rapl:{n}:{sub}", "dram", start_uj, max_range_uj)
        if mmio:
            make_zone(root, f"intel-rapl-mmio:{n}", f"package-{n}", start_uj, max_range_uj)
    return root


def add_energy(zone_dir: Path, uj: int) -> None:
    """Advances a zone's counter by ``uj`` microjoules, wrapping around as the kernel does."""
    max_range = int((zone_dir / "max_energy_range_uj").read_text())
    value = int((zone_dir / "energy_uj").read_text())
    (zone_dir / "energy_uj").write_text(f"{(value + uj) % max_range}\n")
