"""The strategy contract: a small abstract base class, driven by ask/tell."""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from search._space import Space
from search._trial import Objective, Trial

__all__ = ["Canonical", "NetworkMap", "Strategy", "StrategyExhausted", "Suggestion"]

#: Maps a point of a space to a hashable identity: two points with the same identity are the same
#: candidate (a supernet search maps params to the canonical architecture they build).
Canonical = Callable[[Mapping[str, Any]], Hashable]
#: params -> the params of the network they compute, every choice that cannot change it at a fixed value
NetworkMap = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class StrategyExhausted(RuntimeError):
    """Raised by ``ask()`` when a strategy will never propose anything again (every point of a grid has
    been proposed and told), so a study can stop instead of waiting."""


@dataclass(frozen=True)
class Suggestion:
    """What a strategy proposes: a point and the fidelity (share of the full budget, in (0, 1]) to evaluate it at."""

    params: Mapping[str, Any]
    fidelity: float = 1.0
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.fidelity <= 1.0:
            raise ValueError(f"fidelity must be in (0, 1], got {self.fidelity}")


class Strategy(abc.ABC):
    """Proposes points of a space and learns from their results.

    Life cycle, as a :class:`search.Study` drives it:

    1. ``setup(space, objectives)`` once, before anything else. Objectives are already known then, with
       their directions; a strategy that minimizes should multiply values by ``objective.sign``
       (:meth:`Trial.minimized` does it).
    2. ``ask()`` returns the next :class:`Suggestion`, or ``None`` when the strategy cannot propose
       anything before some pending trials are told (a generation of NSGA-II waits for its last member).
    3. ``tell(trial)`` for every finished trial, COMPLETE, FAILED or PRUNED, in any order. FAILED trials
       carry no values: a strategy treats them as infeasible, it never sees NaN. Constraint violations
       arrive as ``trial.violation`` (0.0 when feasible); feasible points come first.

    A strategy owns its random state: it takes ``seed`` in its constructor and never uses the global
    ``random`` or ``numpy.random`` state, so the same seed and the same results give the same proposals.
    An ``ask()`` that returns ``None`` changes nothing, so a fresh strategy fed the same asks and tells in
    the same order proposes the same points: this is how :class:`search.Study` resumes a stored study.

    Contract checked for every registered strategy by ``tests/search/test_conformance.py``:

    - proposals validate against the space (forbidden combinations included) and their ``attrs`` are
      JSON-ready, so they survive the SQLite storage;
    - ``ask()`` returns ``None`` only while some of its own proposals are still pending, and may raise
      :class:`StrategyExhausted` when it has nothing left to propose;
    - trials the strategy did not propose (enqueued by a person), FAILED and PRUNED trials are accepted;
    - maximized objectives behave exactly like their negation minimized;
    - no proposal repeats a point proposed or told before (compared by :meth:`key`, so by canonical
      architecture when the study gives a ``canonical`` map) while the space still holds unseen points,
      unless ``repeats`` is set; a proposal at a higher fidelity of a point seen at a lower one (a
      promotion) is not a repeat.
    """

    #: short name used by ``hwnas search --strategy``.
    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self._space: Space | None = None
        self._objectives: tuple[Objective, ...] = ()
        self._canonical: Canonical | None = None
        #: params -> the params of the network they compute (see :class:`search.Study`), or ``None``.
        self.network: NetworkMap | None = None
        #: when True, points may be proposed again (repeated evaluations of a noisy objective).
        self.repeats = False

    def configure(
        self, *, canonical: Canonical | None = None, repeats: bool = False, network: NetworkMap | None = None
    ) -> None:
        """Sets how points are compared before :meth:`setup`: ``canonical`` maps a point to its identity
        (default: the point's values), ``repeats`` allows proposing a point again, ``network`` maps a point
        to the point of the network it computes (model-based strategies model the objectives that are
        :attr:`Objective.of_network` over those). A study calls this."""
        self._canonical = canonical
        self.repeats = bool(repeats)
        self.network = network

    def key(self, params: Mapping[str, Any]) -> Hashable:
        """The identity of a point: its canonical form when a ``canonical`` map is configured, else its
        values (``1`` and ``1.0`` agree, ``True`` and ``1`` do not)."""
        canonical: Canonical | None = getattr(self, "_canonical", None)
        if canonical is not None:
            return canonical(params)
        names = self.__dict__.get("_names") or tuple(self.space)
        return tuple([(v is True or v is False, v) for v in map(params.__getitem__, names)])

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        """Binds the strategy to a space and objectives. Subclasses call ``super().setup`` first."""
        if not objectives:
            raise ValueError("at least one objective is needed")
        self._space = space
        self._names = tuple(space)
        self._objectives = tuple(objectives)

    @property
    def space(self) -> Space:
        if self._space is None:
            raise RuntimeError(f"{type(self).__name__}.setup(space, objectives) has not been called")
        return self._space

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self._objectives

    @abc.abstractmethod
    def ask(self) -> Suggestion | None:
        """Next point to evaluate, or ``None`` to wait for pending results."""

    def tell(self, trial: Trial) -> None:
        """Learns from one finished trial. The default ignores it."""
