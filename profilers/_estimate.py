"""Energy estimated from a power model (idle and TDP watts), and the TDP of this machine's CPU looked up."""

from __future__ import annotations

import csv
import importlib.util
import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profilers._energy import EnergyMeterError, EnergyProfiler

__all__ = ["CpuTdp", "EstimatedEnergy", "cpu_model_name", "lookup_cpu_tdp"]

_SET_IN_PROFILE = (
    "set idle_w and tdp_w (watts, from the CPU's datasheet or a measurement) in the hardware profile, or "
    "measure energy with RAPL where it is readable"
)


class EstimatedEnergy(EnergyProfiler):
    """Energy estimated from a power model and the measured run time, labelled ``"estimated"``.

    While the loop runs, the device is assumed to draw::

        power_w = idle_w + (tdp_w - idle_w) * utilisation

    where ``utilisation`` is the share of the device the runtime keeps busy (for a CPU: threads used /
    logical cores, see :func:`~profilers.energy_profiler_from_profile`; for a GPU: 1). The energy of one
    inference is ``power_w`` times the loop's measured duration divided by the inferences it ran, i.e. power
    times the mean time per inference. With ``subtract_idle`` the ``idle_w`` term is removed:
    ``(tdp_w - idle_w) * utilisation`` times the time. When ``idle_w`` is unknown (``None``, e.g. only a
    TDP was looked up) the idle term is 0 W, so the power is ``tdp_w * utilisation`` and nothing is
    subtracted; ``detail`` says so.

    This is a model, not a measurement: it scales with run time only and ignores what the model computes.
    Use it to rank architectures on one device when no meter is readable, never to compare devices.

    Args:
        tdp_w: Thermal design power in watts (> 0).
        idle_w: Idle power in watts (<= ``tdp_w``), or ``None`` when unknown.
        utilisation: Share of the device busy during inference, in (0, 1].
        device: The device estimated (a lock key): ``"cpu"``, ``"cuda:0"``, ...
        source: Where the numbers come from, for people (recorded in every result's ``detail``).
        min_duration_s: See :class:`EnergyProfiler`.
        subtract_idle: See :class:`EnergyProfiler`.
        fallback_reason: See :class:`EnergyProfiler`.
        clock: See :class:`EnergyProfiler`.
        sleep: See :class:`EnergyProfiler`.

    Example:
        >>> meter = EstimatedEnergy(idle_w=10.0, tdp_w=110.0, utilisation=0.5)
        >>> meter.power_w
        60.0
    """

    method = "estimated"

    def __init__(
        self,
        *,
        tdp_w: float,
        idle_w: float | None = None,
        utilisation: float = 1.0,
        device: str = "cpu",
        source: str = "",
        min_duration_s: float = 1.0,
        subtract_idle: bool = False,
        fallback_reason: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if isinstance(tdp_w, bool) or not isinstance(tdp_w, (int, float)) or not tdp_w > 0:
            raise ValueError(f"tdp_w must be a positive number of watts, got {tdp_w!r}")
        if idle_w is not None:
            if isinstance(idle_w, bool) or not isinstance(idle_w, (int, float)) or idle_w < 0:
                raise ValueError(f"idle_w must be a non-negative number of watts or None, got {idle_w!r}")
            if idle_w > tdp_w:
                raise ValueError(f"idle_w ({idle_w} W) is above tdp_w ({tdp_w} W)")
        if (
            isinstance(utilisation, bool)
            or not isinstance(utilisation, (int, float))
            or not 0 < utilisation <= 1
        ):
            raise ValueError(f"utilisation must be a share in (0, 1], got {utilisation!r}")
        super().__init__(
            device=device,
            min_duration_s=min_duration_s,
            subtract_idle=subtract_idle,
            idle_w=idle_w,
            fallback_reason=fallback_reason,
            clock=clock,
            sleep=sleep,
        )
        self.tdp_w = float(tdp_w)
        self.model_idle_w = None if idle_w is None else float(idle_w)
        self.utilisation = float(utilisation)
        self.source = source
        idle = 0.0 if idle_w is None else float(idle_w)
        #: Power drawn while inferences run, in watts (the formula above).
        self.power_w = idle + (self.tdp_w - idle) * self.utilisation

    def __repr__(self) -> str:
        return (
            f"EstimatedEnergy(tdp_w={self.tdp_w}, idle_w={self.model_idle_w}, utilisation={self.utilisation}, "
            f"device={self.device!r}, power_w={self.power_w})"
        )

    def _formula(self) -> str:
        if self.model_idle_w is None:
            text = (
                f"power = tdp {self.tdp_w:g} W x utilisation {self.utilisation:.3g} = {self.power_w:.3g} W "
                "(idle power unknown: idle term 0 W)"
            )
        else:
            text = (
                f"power = idle {self.model_idle_w:g} W + (tdp {self.tdp_w:g} W - idle) x utilisation "
                f"{self.utilisation:.3g} = {self.power_w:.3g} W"
            )
        return f"{text} x measured time" + (f"; {self.source}" if self.source else "")

    def _idle_power(self) -> tuple[float, str]:
        if self.model_idle_w is None:
            return 0.0, "idle power unknown: nothing subtracted"
        return self.model_idle_w, f"idle {self.model_idle_w:g} W of the power model subtracted"

    def _start(self) -> object:
        return None

    def _stop(self, token: object, duration_s: float) -> tuple[float, str]:
        return self.power_w * duration_s, self._formula()


# ----------------------------------------------------------------------------------------- TDP lookup


@dataclass(frozen=True)
class CpuTdp:
    """The TDP of a CPU model, found in a table of published TDPs.

    Attributes:
        cpu_model: The model name the machine reports (e.g. from ``/proc/cpuinfo``).
        matched_name: The table row it matched.
        tdp_w: TDP of one package (socket) in watts, as the table gives it.
        sockets: Packages (sockets) in the machine.
        table: The table file.
    """

    cpu_model: str
    matched_name: str
    tdp_w: float
    sockets: int
    table: Path

    @property
    def total_tdp_w(self) -> float:
        """TDP of all packages together: ``tdp_w * sockets``."""
        return self.tdp_w * self.sockets

    def describe(self) -> str:
        """One line saying which row matched and where the table is."""
        sockets = f" x {self.sockets} sockets" if self.sockets > 1 else ""
        return (
            f"TDP {self.tdp_w:g} W{sockets} of {self.matched_name!r} in {self.table} (this CPU reports "
            f"{self.cpu_model!r})"
        )


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_model_name() -> str | None:
    """The CPU model name this machine reports: ``/proc/cpuinfo``'s ``model name`` on Linux, else
    ``platform.processor()``; ``None`` when neither says anything.

    Example:
        >>> name = cpu_model_name()
        >>> name is None or isinstance(name, str)
        True
    """
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model Name") and value.strip():
            return value.strip()
    return platform.processor().strip() or None


def cpu_sockets() -> int:
    """Number of CPU packages: distinct ``physical id`` entries in ``/proc/cpuinfo``, at least 1."""
    ids = {
        line.partition(":")[2].strip()
        for line in _cpuinfo().splitlines()
        if line.partition(":")[0].strip() == "physical id"
    }
    return max(1, len(ids))


def codecarbon_cpu_table() -> Path:
    """The CPU TDP table shipped inside the installed codecarbon package (found without importing it)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise EnergyMeterError(
            f"the CPU TDP table comes with codecarbon, which is not installed (`pip install codecarbon`); or "
            f"{_SET_IN_PROFILE}"
        )
    for location in spec.submodule_search_locations:
        table = Path(location) / "data" / "hardware" / "cpu_power.csv"
        if table.is_file():
            return table
    raise EnergyMeterError(
        f"codecarbon is installed but ships no data/hardware/cpu_power.csv; {_SET_IN_PROFILE}"
    )


_NOISE = re.compile(
    r"\((r|tm)\)|®|™|\bcpu @ .*$|@\s*[\d.]+\s*ghz|\bcpu\b|\bprocessor\b|\bwith radeon.*$|\d+-core\b",
    re.IGNORECASE,
)


def _normalise(name: str) -> str:
    return " ".join(_NOISE.sub(" ", name.lower()).split())


def lookup_cpu_tdp(
    cpu_model: str | None = None,
    *,
    table: str | os.PathLike[str] | None = None,
    sockets: int | None = None,
) -> CpuTdp:
    """Looks the TDP of a CPU model up in a table of published TDPs (codecarbon's ``cpu_power.csv``).

    Names are compared after lower-casing and dropping marks and words that vary between reports of the
    same model (``(R)``, ``(TM)``, ``CPU``, ``Processor``, ``@ 2.50GHz``, ``64-Core``, ``with Radeon
    Graphics``). An equal name matches; otherwise the longest table name whose words all appear in the
    reported name, provided it starts with the same vendor word and contains a model number. When several
    longest names match with different TDPs the lookup refuses to guess.

    Args:
        cpu_model: The name to look up; by default this machine's (:func:`cpu_model_name`).
        table: A CSV file with ``Name`` and ``TDP`` columns; by default codecarbon's.
        sockets: Packages in the machine; by default counted in ``/proc/cpuinfo``.

    Returns:
        The matched row and the TDP per package.

    Raises:
        EnergyMeterError: The name is unknown, matches no row, or matches ambiguously; the message says to set
            ``idle_w``/``tdp_w`` in the hardware profile.

    Example:
        >>> tdp = lookup_cpu_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", sockets=1)
        >>> tdp.matched_name, tdp.tdp_w
        ('Intel Xeon Gold 6248', 150.0)
    """
    model = cpu_model if cpu_model is not None else cpu_model_name()
    if not model:
        raise EnergyMeterError(
            f"this machine does not report its CPU model, so its TDP cannot be looked up; {_SET_IN_PROFILE}"
        )
    path = Path(table) if table is not None else codecarbon_cpu_table()
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(row["Name"], row["TDP"]) for row in csv.DictReader(f)]
    except (OSError, KeyError, csv.Error) as exc:
        raise EnergyMeterError(f"could not read the CPU TDP table {path} ({exc}); {_SET_IN_PROFILE}") from exc

    wanted = _normalise(model)
    words = set(wanted.split())
    vendor = wanted.split()[0] if wanted else ""
    exact = [(name, tdp) for name, tdp in rows if _normalise(name) == wanted]
    if exact:
        candidates = exact
    else:
        scored = []
        for name, tdp in rows:
            row_words = _normalise(name).split()
            if (
                row_words
                and row_words[0] == vendor
                and any(ch.isdigit() for ch in "".join(row_words[1:]))
                and set(row_words) <= words
            ):
                scored.append((len(row_words), name, tdp))
        best = max((n for n, _, _ in scored), default=0)
        candidates = [(name, tdp) for n, name, tdp in scored if n == best]
    if not candidates:
        raise EnergyMeterError(
            f"CPU {model!r} is not in the TDP table {path}, so energy cannot be estimated for it; {_SET_IN_PROFILE}"
        )
    try:
        tdps = {float(tdp) for _, tdp in candidates}
    except ValueError as exc:
        raise EnergyMeterError(
            f"the TDP table {path} has a non-numeric TDP for {candidates[0][0]!r}"
        ) from exc
    if len(tdps) > 1:
        raise EnergyMeterError(
            f"CPU {model!r} matches several rows of {path} with different TDPs "
            f"({', '.join(f'{n!r}: {t} W' for n, t in candidates[:5])}); {_SET_IN_PROFILE}"
        )
    if sockets is not None and (not isinstance(sockets, int) or isinstance(sockets, bool) or sockets < 1):
        raise ValueError(f"sockets must be an integer >= 1, got {sockets!r}")
    return CpuTdp(
        cpu_model=model,
        matched_name=candidates[0][0],
        tdp_w=tdps.pop(),
        sockets=sockets if sockets is not None else cpu_sockets(),
        table=path,
    )
