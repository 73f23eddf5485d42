"""Latency lookup tables: per-part latencies measured on one device, summed to predict a whole model.

A table is measured once on the target device (``hwnas profile-device``) and then predicts the latency of
any architecture of the search space without running it, so a search can run on one machine for a device
that is elsewhere. Parts are identified by canonical strings (``"block|in=16|out=24|s=2|k=5|e=4|hw=8x8"``);
what a part is, and which parts make up an architecture, is the search space's business, not this module's.

Prediction: every timed part also pays the runtime's fixed cost of one call (measured on an empty model,
``empty_ms``), so that cost is taken off each part, and a straight line fitted on whole models measured
when the table was made maps the sum to a latency:

    predicted_ms = scale * sum(part_ms - empty_ms) + per_part_ms * number_of_parts + overhead_ms

(``per_part_ms`` absorbs what a part costs inside a whole model but not alone, or the reverse: copies
between operators, memory reuse).

This module imports only the standard library.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LatencyTable", "LutError", "fit_linear"]

_FORMAT = "hwnas-lut"
_VERSION = 1


class LutError(ValueError):
    """A lookup table that cannot be read, or that lacks a part a prediction needs."""


@dataclass(frozen=True)
class LatencyTable:
    """Per-part latencies (ms) of one device, and the calibration that turns their sum into a prediction.

    Attributes:
        entries: part key -> ``{"latency_ms": median, "iqr_ms": IQR, ...}`` (extra fields are kept).
        empty_ms: median latency of a model that does nothing: the runtime's fixed cost of one call.
        scale: weight of the summed parts in the calibration fit (1.0 before calibration).
        overhead_ms: constant of the calibration fit (``empty_ms`` before calibration).
        per_part_ms: cost per part of the calibration fit (0.0 before calibration).
        meta: where and how the table was measured (profile, machine, input shape, date, calibration error).

    Example:
        >>> t = LatencyTable({"a": {"latency_ms": 0.05}, "b": {"latency_ms": 0.03}}, empty_ms=0.01,
        ...                  scale=1.0, overhead_ms=0.01)
        >>> round(t.predict(["a", "b", "b"]), 6)
        0.09
    """

    entries: Mapping[str, Mapping[str, Any]]
    empty_ms: float
    scale: float = 1.0
    overhead_ms: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    per_part_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.overhead_ms is None:
            object.__setattr__(self, "overhead_ms", float(self.empty_ms))
        for key, entry in self.entries.items():
            value = entry.get("latency_ms") if isinstance(entry, Mapping) else None
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise LutError(f"lookup table entry {key!r} needs a non-negative latency_ms, got {entry!r}")

    def raw_sum(self, parts: Iterable[str]) -> float:
        """Sum of the parts' latencies, each less the fixed cost of one call (ms)."""
        total = 0.0
        missing = []
        for key in parts:
            entry = self.entries.get(key)
            if entry is None:
                missing.append(key)
                continue
            total += float(entry["latency_ms"]) - self.empty_ms
        if missing:
            shape = self.meta.get("input_shape")
            raise LutError(
                f"the lookup table has no entry for {len(missing)} part(s), e.g. {missing[0]!r}; it was measured "
                f"for input shape {shape} and its own search space: run `hwnas profile-device` again "
                "with this search's config"
            )
        return total

    def predict(self, parts: Iterable[str]) -> float:
        """Predicted latency (ms) of a model made of ``parts`` (a part may repeat)."""
        parts = list(parts)
        return self.scale * self.raw_sum(parts) + self.per_part_ms * len(parts) + float(self.overhead_ms)  # type: ignore[arg-type]

    def calibrated(
        self, raw_sums: Sequence[float], part_counts: Sequence[int], measured_ms: Sequence[float]
    ) -> LatencyTable:
        """A copy fitted on whole models: their raw sums and part counts against their measured latencies."""
        scale, per_part, overhead = fit_linear([[r, n] for r, n in zip(raw_sums, part_counts)], measured_ms)
        preds = [scale * r + per_part * n + overhead for r, n in zip(raw_sums, part_counts)]
        errors = [abs(p - m) / m for p, m in zip(preds, measured_ms) if m > 0]
        meta = {
            **self.meta,
            "calibration": {
                "models": len(raw_sums),
                "scale": scale,
                "per_part_ms": per_part,
                "overhead_ms": overhead,
                "mape": sum(errors) / len(errors) if errors else None,
                "within_10pct": sum(e <= 0.10 for e in errors) / len(errors) if errors else None,
            },
        }
        return LatencyTable(dict(self.entries), self.empty_ms, scale, overhead, meta, per_part)

    # -- files ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "meta": dict(self.meta),
            "empty_ms": self.empty_ms,
            "scale": self.scale,
            "overhead_ms": self.overhead_ms,
            "per_part_ms": self.per_part_ms,
            "entries": {k: dict(v) for k, v in sorted(self.entries.items())},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the table as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        """Reads a table written by :meth:`save`; a missing, foreign or damaged file raises :class:`LutError`."""
        path = Path(path)
        if not path.is_file():
            raise LutError(f"lookup table {path} does not exist; measure one with `hwnas profile-device`")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise LutError(f"lookup table {path} is not readable JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise LutError(f"{path} is not an hwnas lookup table (written by `hwnas profile-device`)")
        if data.get("version") != _VERSION:
            raise LutError(
                f"{path} is a version {data.get('version')} table; this hwnas reads version {_VERSION}"
            )
        try:
            return cls(
                entries=dict(data["entries"]),
                empty_ms=float(data["empty_ms"]),
                scale=float(data.get("scale", 1.0)),
                overhead_ms=None if data.get("overhead_ms") is None else float(data["overhead_ms"]),
                meta=dict(data.get("meta", {})),
                per_part_ms=float(data.get("per_part_ms", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise LutError(f"lookup table {path} is damaged ({type(e).__name__}: {e})") from None


def fit_linear(features: Sequence[Sequence[float]], y: Sequence[float]) -> tuple[float, ...]:
    """Least squares ``y = w . x + b`` with relative errors weighted equally (weights ``1 / y**2``).

    Returns the weights then the intercept. Features that do not vary get weight 0 (a ridge of 1e-12
    keeps the system solvable).

    Example:
        >>> [round(v, 6) for v in fit_linear([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 2.0]], [3, 6, 7, 11])]
        [2.0, 1.0, 1.0]
    """
    n = len(y)
    if n < 2 or len(features) != n:
        raise ValueError("fit_linear needs at least two rows, one feature row per value")
    x = np.asarray(features, dtype=float).reshape(n, -1)
    target = np.asarray(y, dtype=float)
    weights = np.where(target > 0, 1.0 / np.where(target > 0, target, 1.0), 1.0)  # sqrt of 1 / y**2
    varying = np.ptp(x, axis=0) > 0
    design = np.column_stack([x[:, varying], np.ones(n)]) * weights[:, None]
    solution, *_ = np.linalg.lstsq(design, target * weights, rcond=None)
    coef = np.zeros(x.shape[1])
    coef[varying] = solution[:-1]
    return (*(float(c) for c in coef), float(solution[-1]))
