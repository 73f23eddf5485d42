"""Choosing a model of a run's front: the best one by a metric within upper bounds on others.

Plain data only (``pareto.json`` through :mod:`nas._schemas`); nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas._errors import RunError
from nas._schemas import ParetoFile, RunFileError

__all__ = ["FrontModel", "NoModelMeetsBounds", "PickError", "parse_bound", "pick", "read_front"]


class PickError(RunError, ValueError):
    """A pick asked with a metric the front does not have, or a bound that is not a number."""


class NoModelMeetsBounds(RunError):
    """No model of the front meets every bound.

    Attributes:
        unmet: the bounds no model meets even alone, as ``"latency_ms <= 0.01"``; empty when each bound is met
            by some model but no model meets them all together.
        closest: the model that exceeds the bounds least (relative excess summed over the bounds).
    """

    def __init__(self, message: str, *, unmet: tuple[str, ...], closest: FrontModel | None) -> None:
        super().__init__(message)
        self.unmet = unmet
        self.closest = closest


@dataclass(frozen=True)
class FrontModel:
    """One exported model of a run's Pareto front.

    Attributes:
        id: the trial number (``models/<id>.onnx``).
        arch: the architecture, JSON-ready.
        metrics: each objective's value as the search ranked it (``error`` in %, ``latency_ms``, ``energy_mj``
            per inference...), then the other recorded metrics.
        onnx: absolute path of the exported ONNX model.
        test_error: top-1 error (%) on the test split, when the data had one.
        member: the supernet (ensemble member) the model was taken from.
    """

    id: int
    arch: Mapping[str, Any]
    metrics: Mapping[str, float]
    onnx: Path
    test_error: float | None = None
    validation_error: float | None = None
    member: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def describe(self, names: Sequence[str], units: Mapping[str, str] | None = None) -> str:
        """``error=1.67 %  latency_ms=0.105 ms`` for the given metric names."""
        units = units or {}
        parts = []
        for n in names:
            v = self.metrics.get(n)
            if v is None:
                continue
            unit = units.get(n, "")
            parts.append(f"{n}={v:.4g}" + (f" {unit}" if unit and unit != "count" else ""))
        return "  ".join(parts)


@dataclass(frozen=True)
class Front:
    """The exported models of a run and its objectives (name, direction, unit)."""

    objectives: tuple[tuple[str, str, str], ...]
    models: tuple[FrontModel, ...]

    @property
    def metric_names(self) -> list[str]:
        """Metrics a pick may bound or rank by: the objectives, then the metrics every model records."""
        names = [o[0] for o in self.objectives]
        common = set.intersection(*(set(m.metrics) for m in self.models)) if self.models else set()
        return names + sorted(common - set(names))

    @property
    def units(self) -> dict[str, str]:
        return {n: u for n, _, u in self.objectives}

    def direction(self, name: str) -> str:
        return next((d for n, d, _ in self.objectives if n == name), "minimize")


def read_front(run_dir: str | Path) -> Front:
    """The front recorded in ``run_dir/pareto.json``; :class:`RunError` naming what is wrong otherwise."""
    run = Path(run_dir)
    path = run / "pareto.json"
    if not run.is_dir():
        raise RunError(f"{run} is not a run directory; give one written by 'hwnas search' (runs/<name>)")
    if not path.is_file():
        raise RunError(
            f"{run} has no pareto.json: its search has not finished (continue it with 'hwnas search --resume {run}')"
        )
    try:
        pareto = ParetoFile.read_text(path.read_text(), name=str(path))
    except (RunFileError, OSError) as e:
        raise RunError(str(e)) from None
    models = tuple(
        FrontModel(
            id=m.id,
            arch=m.arch,
            metrics=dict(m.metrics),
            onnx=(run / m.onnx).resolve(),
            test_error=m.test_error,
            validation_error=m.validation_error,
            member=m.member,
            extra={"finetune_steps": m.finetune_steps, "energy_method": m.energy_method},
        )
        for m in pareto.models
    )
    objectives = tuple((o.name, o.direction, o.unit) for o in pareto.objectives)
    return Front(objectives=objectives, models=models)


def parse_bound(text: str) -> tuple[str, float]:
    """``"latency_ms=5"`` (or ``<=``) as ``("latency_ms", 5.0)``; :class:`PickError` otherwise."""
    key, sep, value = text.replace("<=", "=").partition("=")
    key = key.strip()
    if not sep or not key:
        raise PickError(f"a bound is METRIC=VALUE, e.g. latency_ms=5, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise PickError(f"the bound on {key} must be a number, got {value.strip()!r}") from None
    if not math.isfinite(number):
        raise PickError(f"the bound on {key} must be a finite number, got {value.strip()!r}")
    return key, number


def pick(front: Front, *, max: Mapping[str, float] | None = None, by: str | None = None) -> FrontModel:
    """The best model by ``by`` among those whose metrics are at most each bound of ``max``.

    ``by`` defaults to ``error`` when it is an objective, else to the first objective; a maximized objective
    is ranked highest first. Ties go to the lower values of the other objectives, then to the lower id.

    Raises:
        PickError: a metric the front does not record, or a bound that is not a finite number.
        NoModelMeetsBounds: no model meets every bound; the error names the bounds and the closest model.

    Example:
        >>> m = [FrontModel(i, {}, {"error": e, "latency_ms": l}, Path(f"{i}.onnx"))
        ...      for i, e, l in [(0, 5.0, 1.0), (1, 2.0, 4.0), (2, 1.0, 9.0)]]
        >>> front = Front((("error", "minimize", "%"), ("latency_ms", "minimize", "ms")), tuple(m))
        >>> pick(front, max={"latency_ms": 5}).id
        1
    """
    bounds = dict(max or {})
    valid = front.metric_names
    if not front.models:
        raise NoModelMeetsBounds(
            "the run exported no model: there is nothing to pick", unmet=(), closest=None
        )
    names = [o[0] for o in front.objectives]
    by = by if by is not None else ("error" if "error" in names else names[0])
    for name in [*bounds, by]:
        if name not in valid:
            raise PickError(f"unknown metric {name!r}; this run's models record: {', '.join(valid)}")
    for name, value in bounds.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise PickError(f"the bound on {name} must be a finite number, got {value!r}")
    sign = -1.0 if front.direction(by) == "maximize" else 1.0

    def meets(m: FrontModel, name: str) -> bool:
        return m.metrics[name] <= bounds[name]

    ok = [m for m in front.models if all(meets(m, n) for n in bounds)]
    if ok:
        return min(ok, key=lambda m: (sign * m.metrics[by], *(m.metrics[n] for n in names if n != by), m.id))
    unmet = tuple(f"{n} <= {bounds[n]:g}" for n in bounds if not any(meets(m, n) for m in front.models))
    closest = min(front.models, key=lambda m: (_excess(front, m, bounds), sign * m.metrics[by], m.id))
    if unmet:
        lows = "; ".join(
            f"the lowest {n} is {min(m.metrics[n] for m in front.models):.4g}"
            for n in bounds
            if any(u.startswith(f"{n} <=") for u in unmet)
        )
        what = f"no model meets {' and '.join(unmet)} ({lows})"
    else:
        what = "no model meets " + " and ".join(f"{n} <= {v:g}" for n, v in bounds.items()) + " together"
    shown = [*dict.fromkeys([*bounds, by, *names])]
    raise NoModelMeetsBounds(
        f"{what}; the closest is model {closest.id}: {closest.describe(shown, front.units)}",
        unmet=unmet,
        closest=closest,
    )


def _excess(front: Front, model: FrontModel, bounds: Mapping[str, float]) -> float:
    """How far ``model`` exceeds the bounds: per bound, the excess over the spread of that metric, summed."""
    total = 0.0
    for name, bound in bounds.items():
        values = [m.metrics[name] for m in front.models]
        scale = max(values) - min(values) or abs(bound) or 1.0
        total += max(0.0, model.metrics[name] - bound) / scale
    return total
