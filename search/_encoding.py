"""How configurations reach the Gaussian processes: a space's points (and fidelity) as rows of numbers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search._space import Choice, Space

__all__ = ["Encoder", "unordered_choice"]


class Encoder:
    """Params (and fidelity) -> rows in ``[0, 1]^dim``, the inputs of the Gaussian processes; see
    :class:`search.BayesStrategy` for the scheme. ``groups`` gives each column its lengthscale group."""

    def __init__(self, space: Space, min_fidelity: float) -> None:
        self._space = space
        self._columns: list[tuple[str, str, Any]] = []
        for name, p in space.items():
            if isinstance(p, Choice):
                k = len(p.values)
                if k == 1:
                    continue
                kind = "onehot" if unordered_choice(p) else "ordinal"
                self._columns.append((name, kind, p))
            else:
                lo, hi = p.bounds()
                if hi > lo:
                    self._columns.append((name, "number", p))
        self._log_range = -math.log(min_fidelity) if min_fidelity < 1.0 else 0.0
        widths = [len(p.values) if kind == "onehot" else 1 for _, kind, p in self._columns]
        self.dim = max(1, sum(widths) + (1 if self._log_range else 0))
        #: lengthscale group of each column: a one-hot block shares one, every other column has its own
        groups = [g for g, w in enumerate(widths) for _ in range(w)]
        if self._log_range:
            groups.append(len(widths))
        self.groups = groups or [0]
        # value -> index of every Choice column (1 and 1.0 agree, True and 1 do not, as Choice.index)
        self._lookup = {
            name: {(v is True or v is False, v): i for i, v in enumerate(p.values)}
            for name, kind, p in self._columns
            if kind != "number"
        }
        self.per_column = list(range(self.dim))

    @property
    def has_fidelity(self) -> bool:
        """Whether the rows carry the fidelity (as their last column)."""
        return bool(self._log_range)

    def encode(self, points: Sequence[Mapping[str, Any]], fidelities: Sequence[float]) -> np.ndarray:
        cols: list[np.ndarray] = []
        for name, kind, p in self._columns:
            if kind == "number":
                lo, hi = p.bounds()
                cols.append((np.array([p.encode(q[name]) for q in points], dtype=float) - lo) / (hi - lo))
            else:
                lookup = self._lookup[name]
                idx = np.array(
                    [lookup.get((q[name] is True or q[name] is False, q[name])) for q in points], dtype=float
                )
                if np.isnan(idx).any():  # a value the fast look-up does not know: the space decides
                    idx = np.array([p.index(q[name]) for q in points], dtype=float)
                idx = idx.astype(int)
                if kind == "ordinal":
                    cols.append(idx / (len(p.values) - 1))
                else:
                    cols.extend(np.eye(len(p.values))[idx].T)
        if self._log_range:
            f = np.clip(np.asarray(fidelities, dtype=float), math.exp(-self._log_range), 1.0)
            cols.append(1.0 + np.log(f) / self._log_range)
        if not cols:
            return np.zeros((len(points), 1))
        return np.column_stack(cols)


def unordered_choice(p: Any) -> bool:
    """Whether ``p`` is a ``Choice`` the Gaussian processes see as unordered (one-hot): more than two
    values that are not increasing numbers, such as operations. Two values, or increasing numbers such as
    widths, are one ordered input."""
    return isinstance(p, Choice) and len(p.values) > 2 and not _increasing_numbers(p.values)


def _increasing_numbers(values: Sequence[Any]) -> bool:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(nums) == len(values) and all(a < b for a, b in itertools.pairwise(nums))
