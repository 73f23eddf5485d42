"""Figures in units chosen for their magnitude (mWh, Wh, kWh; mg, g, kg; µs, ms, s) and human names of the
objectives, for the report's text, tables and axes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from search import Objective

__all__ = ["axis_scale", "duration_text", "energy_text", "mass_text", "objective_title", "scale_for"]

#: (unit, size in the base unit), largest first
_ENERGY = (("kWh", 1.0), ("Wh", 1e-3), ("mWh", 1e-6), ("µWh", 1e-9))
_MASS = (("kg", 1.0), ("g", 1e-3), ("mg", 1e-6), ("µg", 1e-9))
_SECONDS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
_JOULES = (("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9))
_BYTES = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))


def scale_for(values: Iterable[float], units: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The unit (and its size) in which the largest of ``values`` reads between 1 and 1000."""
    finite = [abs(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v != 0]
    top = max(finite, default=0.0)
    for unit, size in units:
        if top >= size:
            return unit, size
    return units[-1] if top else next(((u, s) for u, s in units if s == 1.0), units[0])


def _text(value: float | None, units: Sequence[tuple[str, float]], digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "not recorded"
    unit, size = scale_for([value], units)
    return f"{value / size:.{digits}g} {unit}"


def energy_text(kwh: float | None, digits: int = 3) -> str:
    """``0.000237`` kWh as ``"237 mWh"``.

    Example:
        >>> energy_text(0.000237), energy_text(0.52), energy_text(1523.0)
        ('237 mWh', '520 Wh', '1.52e+03 kWh')
    """
    return _text(kwh, _ENERGY, digits)


def mass_text(kg: float | None, digits: int = 3) -> str:
    """``8.77e-05`` kg as ``"87.7 mg"``.

    Example:
        >>> mass_text(8.77e-05), mass_text(0.0123), mass_text(2.5)
        ('87.7 mg', '12.3 g', '2.5 kg')
    """
    return _text(kg, _MASS, digits)


def duration_text(seconds: float | None) -> str:
    """Seconds as ``"35.3 s"``, ``"12.4 min"``, ``"2.1 h"``, ``"850 ms"``.

    Example:
        >>> duration_text(35.34), duration_text(745.0), duration_text(7560.0), duration_text(0.85)
        ('35.3 s', '12.4 min', '2.1 h', '850 ms')
    """
    if seconds is None or not math.isfinite(seconds):
        return "not recorded"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return _text(seconds, _SECONDS, 3)


_TITLES = {
    "error": ("Top-1 error", "%"),
    "latency_ms": ("Latency", "ms"),
    "energy_mj": ("Energy per inference", "mJ"),
    "peak_memory_mb": ("Peak memory", "MB"),
    "params": ("Parameters", ""),
    "flops": ("FLOPs", ""),
    "macs": ("MACs", ""),
}

#: units an objective's values are rescaled among, and the size of the recorded unit in them
_RESCALE = {"ms": (_SECONDS, 1e-3), "mJ": (_JOULES, 1e-3), "MB": (_BYTES, 1e6)}


def objective_title(name: str) -> str:
    """``latency_ms`` as ``"Latency"``; a name hwnas does not know is shown as it is."""
    return _TITLES.get(name, (name, ""))[0]


def axis_scale(o: Objective, values: Iterable[float] = ()) -> tuple[str, float, bool]:
    """The axis label of an objective, the factor its values are multiplied by, and whether the ticks are
    counts to write with SI prefixes (``1.2M``).

    The unit is chosen for the magnitude of ``values``: latencies of 0.03 ms are shown in µs.

    Example:
        >>> axis_scale(Objective("latency_ms", "minimize", "ms"), [0.021, 0.034])
        ('Latency (µs)', 1000.0, False)
        >>> axis_scale(Objective("error", "minimize", "%"), [5.0])
        ('Top-1 error (%)', 1.0, False)
    """
    title, unit = _TITLES.get(o.name, (o.name, o.unit))
    if o.name not in _TITLES and o.unit and o.name.endswith(f"_{o.unit}"):
        unit = ""
    factor, counts = 1.0, o.name in ("params", "flops", "macs") or unit == "count"
    if unit in _RESCALE:
        units, size = _RESCALE[unit]
        unit, new = scale_for([v * size for v in values], units)
        factor = float(f"{size / new:.12g}")  # 1e-3 / 1e-6 is 1000.0000000000001
    label = title if not unit or counts else f"{title} ({unit})"
    if o.direction == "maximize":
        label += ", higher is better"
    return label, float(factor), counts


def plain_component(name: str) -> str:
    """codecarbon's component names (``RAM()``, ``CPU(Cpu Load)``) as a reader would write them."""
    m = re.fullmatch(r"\s*([A-Za-z]+)\s*\((.*)\)\s*", name)
    if not m:
        return name
    inner = m.group(2).strip()
    return m.group(1) + (f" (from {inner.lower()})" if inner else "")
