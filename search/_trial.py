"""Trials, objectives and constraints: the plain data a study stores and strategies learn from."""

from __future__ import annotations

import enum
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Constraint", "Objective", "Trial", "TrialState"]


class TrialState(str, enum.Enum):
    """Life cycle of a trial: RUNNING, then COMPLETE, FAILED or PRUNED."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    PRUNED = "PRUNED"

    @property
    def finished(self) -> bool:
        return self is not TrialState.RUNNING


@dataclass(frozen=True)
class Objective:
    """One objective: a metric name, whether to minimize or maximize it, and its unit.

    ``reference`` is the hypervolume reference value of this objective (its worst value that still
    counts); ``None`` lets :func:`search.hypervolume` callers supply one.

    ``of_network`` says whether the value is a property of the network a point computes, so equal for
    points the study's ``network`` map sends to the same point (accuracy, loss): model-based strategies
    then model it over the mapped points. ``False`` is for a value measured on the point as given, where
    what the map drops still costs: the latency of an implementation that still runs the operations on
    dead paths of a cell. Without a ``network`` map it changes nothing.
    """

    name: str
    direction: str = "minimize"
    unit: str = ""
    reference: float | None = None
    of_network: bool = True

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(
                f"objective {self.name!r}: direction must be 'minimize' or 'maximize', got {self.direction!r}"
            )

    @property
    def sign(self) -> float:
        """+1 for minimize, -1 for maximize: multiply a value by it to get a value to minimize."""
        return 1.0 if self.direction == "minimize" else -1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "unit": self.unit}


_OPS = {"<=": operator.le, ">=": operator.ge}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """A bound on a metric, such as ``latency_ms <= 2.0``.

    Example:
        >>> c = Constraint.parse("latency_ms <= 2.0")
        >>> c.violation({"latency_ms": 2.5})
        0.5
    """

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"constraint operator must be '<=' or '>=', got {self.op!r}")
        if not math.isfinite(self.bound):
            raise ValueError(f"constraint bound must be a finite number, got {self.bound!r}")

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT_RE.match(text)
        if not m:
            raise ValueError(
                f"cannot read constraint {text!r}; write it as 'METRIC <= NUMBER' or 'METRIC >= NUMBER'"
            )
        try:
            bound = float(m.group(3))
        except ValueError:
            raise ValueError(f"constraint {text!r}: {m.group(3)!r} is not a number") from None
        return cls(m.group(1), m.group(2), bound)

    def violation(self, metrics: Mapping[str, float]) -> float:
        """How far ``metrics`` are outside the bound (0.0 when satisfied, ``inf`` when the metric is missing)."""
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return math.inf
        return max(0.0, value - self.bound) if self.op == "<=" else max(0.0, self.bound - value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Trial:
    """One evaluation of one point of the space.

    Attributes:
        number: 0-based position in the study.
        params: the point, a JSON-ready dict.
        fidelity: share of the full evaluation budget in (0, 1].
        state: see :class:`TrialState`.
        values: objective values in the study's objective order (``None`` unless COMPLETE).
        metrics: every number the evaluation reported, objectives included.
        violation: total constraint violation (0.0 when feasible; ``None`` unless COMPLETE).
        error: what went wrong, for FAILED trials.
        started_at, finished_at: Unix times in seconds.
        attrs: free JSON-ready annotations (for example the arch of a supernet trial).
    """

    number: int
    params: Mapping[str, Any]
    fidelity: float = 1.0
    state: TrialState = TrialState.RUNNING
    values: tuple[float, ...] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    violation: float | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.state is TrialState.COMPLETE and self.violation == 0.0

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def replace(self, **changes: Any) -> Trial:
        return replace(self, **changes)

    def minimized(self, objectives: Sequence[Objective]) -> tuple[float, ...]:
        """Objective values turned into values to minimize (maximized ones negated)."""
        if self.values is None:
            raise ValueError(f"trial {self.number} has no values (state {self.state.value})")
        return tuple(o.sign * v for o, v in zip(objectives, self.values))
