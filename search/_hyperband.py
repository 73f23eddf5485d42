"""Hyperband brackets of successive halving over the fidelity, with multi-objective promotion.

Pure bookkeeping: which configuration runs next at which fidelity. The configurations themselves come
from the caller (``BayesStrategy`` proposes them with its surrogate).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search._ranking import feasible_first_order

__all__ = ["Bracket", "hyperband_schedule"]


def hyperband_schedule(min_fidelity: float, eta: int) -> list[tuple[list[float], list[int]]]:
    """The brackets of one Hyperband iteration (Li et al. 2018), most aggressive first.

    With ``s_max = floor(log_eta(1 / min_fidelity))``, bracket ``s`` (``s_max`` down to 0) starts
    ``ceil((s_max + 1) / (s + 1) * eta**s)`` configurations at fidelity ``eta**-s`` and keeps the best
    ``1 / eta`` of them at each rung, the last rung at fidelity 1. Returns ``(fidelities, sizes)`` per
    bracket.

    Example:
        >>> hyperband_schedule(1 / 9, 3)[0]
        ([0.1111111111111111, 0.3333333333333333, 1.0], [9, 3, 1])
    """
    s_max = math.floor(math.log(1.0 / min_fidelity) / math.log(eta) + 1e-9)
    out = []
    for s in range(s_max, -1, -1):
        n0 = math.ceil((s_max + 1) / (s + 1) * eta**s - 1e-9)
        fidelities = [float(eta ** -(s - i)) for i in range(s + 1)]
        sizes = [max(1, math.floor(n0 / eta**i + 1e-9)) for i in range(s + 1)]
        out.append((fidelities, sizes))
    return out


@dataclass
class Bracket:
    """One bracket of successive halving.

    ``configs[c]`` is configuration ``c`` (its params). Rung ``i`` runs ``sizes[i]`` configurations at
    ``fidelities[i]``; when every member of a rung has been told, its best ``sizes[i + 1]`` COMPLETE
    members (:func:`search._ranking.feasible_first_order`) are promoted to the next rung, the others are
    pruned. FAILED members are never promoted, so a rung may hold fewer than planned.
    """

    index: int
    fidelities: list[float]
    sizes: list[int]
    tie_break: str = "crowding"
    configs: list[dict[str, Any]] = field(default_factory=list)
    # rung -> config -> (minimized values or None, violation); filled by record()
    results: list[dict[int, tuple[np.ndarray | None, float]]] = field(default_factory=list)
    issued: list[set[int]] = field(default_factory=list)
    queue: deque[tuple[int, int]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.sizes = list(self.sizes)
        self.results = [{} for _ in self.fidelities]
        self.issued = [set() for _ in self.fidelities]

    @property
    def slots_left(self) -> int:
        """New configurations the first rung still takes."""
        return self.sizes[0] - len(self.configs)

    @property
    def finished(self) -> bool:
        return all(len(r) == n for r, n in zip(self.results, self.sizes))

    def add(self, params: dict[str, Any]) -> int:
        """Registers a new configuration in the first rung; returns its number in the bracket."""
        if self.slots_left <= 0:
            raise RuntimeError(f"bracket {self.index} is full")
        self.configs.append(dict(params))
        self.issued[0].add(len(self.configs) - 1)
        return len(self.configs) - 1

    def next_promotion(self) -> tuple[int, int] | None:
        """``(rung, config)`` of the next promoted configuration to run, or ``None``."""
        if not self.queue:
            return None
        rung, config = self.queue.popleft()
        self.issued[rung].add(config)
        return rung, config

    def record(self, rung: int, config: int, values: np.ndarray | None, violation: float) -> bool:
        """Stores a result (``values`` ``None`` for a FAILED or PRUNED trial); True when it was awaited."""
        if (
            not 0 <= rung < len(self.fidelities)
            or config not in self.issued[rung]
            or config in self.results[rung]
        ):
            return False
        self.results[rung][config] = (values, violation)
        if len(self.results[rung]) == self.sizes[rung] and rung + 1 < len(self.fidelities):
            self._promote(rung)
        return True

    def _promote(self, rung: int) -> None:
        done = [(c, v, viol) for c, (v, viol) in self.results[rung].items() if v is not None]
        done.sort(key=lambda item: item[0])
        keep = min(self.sizes[rung + 1], len(done))
        if done:
            F = np.array([v for _, v, _ in done])
            order = feasible_first_order(F, [viol for _, _, viol in done], tie_break=self.tie_break)
            chosen = [done[i][0] for i in order[:keep]]
        else:
            chosen = []
        # fewer survivors than planned: later rungs shrink with them
        self.sizes[rung + 1] = keep
        for r in range(rung + 2, len(self.sizes)):
            self.sizes[r] = min(self.sizes[r], keep)
        self.queue.extend((rung + 1, c) for c in chosen)
        if keep == 0:  # nothing survives: the bracket ends here
            for r in range(rung + 1, len(self.sizes)):
                self.sizes[r] = 0
