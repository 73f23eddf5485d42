"""Search spaces: named parameters of three kinds, in plain Python and numpy.

A space is an ordered mapping of names to parameters. A point of the space (``params``) is a JSON-ready
``dict`` mapping every name to a value. Strategies work on an integer/real *encoding* of points:
``Choice`` is encoded as the index of its value, ``Integer`` as its value and ``Float`` as its value
(or its natural logarithm when ``log=True``).

A space may *forbid* combinations of values (``Space(..., forbid=[{"kernel": 7, "expand": 6}])``): no
strategy proposes a point that a rule matches, and :meth:`Space.validate` refuses one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Choice", "Float", "Integer", "Param", "Space"]

Value = Any  # a JSON-ready scalar: int, float, str, bool or None


class Param:
    """Base class of one parameter. Subclasses are frozen dataclasses."""

    #: True when every value can be listed (``Choice`` and ``Integer``).
    discrete: bool = True

    def sample(self, rng: np.random.Generator) -> Value:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, value: Value) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, x: float) -> Value:  # pragma: no cover - abstract
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate(self, value: Value) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def cardinality(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def grid(self, points: int | None = None) -> list[Value]:  # pragma: no cover - abstract
        """Values that discretise the parameter: every value when ``points`` is ``None``, else at most
        ``points`` values evenly spaced in the encoding (so log-spaced for ``Float(log=True)``)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Choice(Param):
    """One of a fixed list of values (categorical or ordinal).

    Example:
        >>> Choice([3, 5, 7]).encode(5)
        1.0
    """

    values: tuple[Value, ...]

    def __init__(self, values: Sequence[Value]) -> None:
        values = tuple(values)
        if not values:
            raise ValueError("Choice needs at least one value")
        if len(set(map(_hashable, values))) != len(values):
            raise ValueError(f"Choice values must be distinct, got {list(values)}")
        object.__setattr__(self, "values", values)

    def sample(self, rng: np.random.Generator) -> Value:
        return self.values[int(rng.integers(len(self.values)))]

    def index(self, value: Value) -> int:
        for i, v in enumerate(self.values):
            if v == value and (type(v) is type(value) or (_numeric(v) and _numeric(value))):
                return i
        raise ValueError(f"{value!r} is not one of {list(self.values)}")

    def encode(self, value: Value) -> float:
        return float(self.index(value))

    def decode(self, x: float) -> Value:
        i = min(max(round(float(x)), 0), len(self.values) - 1)
        return self.values[i]

    def bounds(self) -> tuple[float, float]:
        return 0.0, float(len(self.values) - 1)

    def validate(self, value: Value) -> None:
        self.index(value)

    def cardinality(self) -> float:
        return float(len(self.values))

    def grid(self, points: int | None = None) -> list[Value]:
        """Every value, in order (a choice is never thinned: each value is its own category)."""
        return list(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


@dataclass(frozen=True)
class Integer(Param):
    """An integer in ``[low, high]`` (both included), optionally on a ``step`` grid."""

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"Integer needs low <= high, got low={self.low}, high={self.high}")
        if self.step < 1:
            raise ValueError(f"Integer step must be >= 1, got {self.step}")

    def _n(self) -> int:
        return (self.high - self.low) // self.step + 1

    def sample(self, rng: np.random.Generator) -> Value:
        return self.low + self.step * int(rng.integers(self._n()))

    def encode(self, value: Value) -> float:
        return float(value)

    def decode(self, x: float) -> Value:
        k = min(max(round((float(x) - self.low) / self.step), 0), self._n() - 1)
        return self.low + self.step * k

    def bounds(self) -> tuple[float, float]:
        return float(self.low), float(self.low + self.step * (self._n() - 1))

    def validate(self, value: Value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"expected an integer, got {value!r}")
        if not (self.low <= value <= self.high) or (value - self.low) % self.step:
            raise ValueError(f"{value!r} is not in [{self.low}, {self.high}] with step {self.step}")

    def cardinality(self) -> float:
        return float(self._n())

    def grid(self, points: int | None = None) -> list[Value]:
        """Every value, or ``points`` values evenly spaced from ``low`` to the last value on the step grid.

        Example:
            >>> Integer(0, 100, step=10).grid(3)
            [0, 50, 100]
        """
        n = self._n()
        if points is None or points >= n:
            return [self.low + self.step * k for k in range(n)]
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points}")
        ks = sorted({round(float(k)) for k in np.linspace(0, n - 1, points)})
        return [self.low + self.step * k for k in ks]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "integer", "low": self.low, "high": self.high, "step": self.step}


@dataclass(frozen=True)
class Float(Param):
    """A real number in ``[low, high]``; ``log=True`` searches its logarithm uniformly."""

    low: float
    high: float
    log: bool = False
    discrete: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"Float needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"Float with log=True needs low > 0, got {self.low}")

    def sample(self, rng: np.random.Generator) -> Value:
        lo, hi = self.bounds()
        return self.decode(float(rng.uniform(lo, hi)))

    def encode(self, value: Value) -> float:
        return math.log(value) if self.log else float(value)

    def decode(self, x: float) -> Value:
        lo, hi = self.bounds()
        x = min(max(float(x), lo), hi)  # plain floats: np.clip costs ten times more per scalar
        return min(max(math.exp(x), float(self.low)), float(self.high)) if self.log else x

    def bounds(self) -> tuple[float, float]:
        return (math.log(self.low), math.log(self.high)) if self.log else (float(self.low), float(self.high))

    def validate(self, value: Value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"expected a number, got {value!r}")
        if not (self.low <= value <= self.high):
            raise ValueError(f"{value!r} is not in [{self.low}, {self.high}]")

    def cardinality(self) -> float:
        return math.inf

    def grid(self, points: int | None = None) -> list[Value]:
        """``points`` values evenly spaced in the encoding, both bounds included (log-spaced when ``log``).

        A single point is the middle of the encoded range.

        Example:
            >>> Float(1e-3, 1e-1, log=True).grid(3)
            [0.001, 0.01, 0.1]
        """
        if points is None or points < 1:
            raise ValueError(f"a Float is discretised into a number of points >= 1, got {points}")
        lo, hi = self.bounds()
        xs = [(lo + hi) / 2] if points == 1 else np.linspace(lo, hi, points)
        values = [self.decode(float(x)) for x in xs]
        if points > 1:  # exact bounds, not exp(log(bound)) rounding
            values[0], values[-1] = float(self.low), float(self.high)
        return [float(f"{v:.12g}") if self.log else v for v in values]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


Rule = Mapping[str, Any]  # parameter name -> a value, or a list of values any of which matches

_FORBID_KEY = "$forbid"  # where to_dict() keeps the rules; parameter names never start with "$"
_MAX_DRAWS = 10_000


class Space(Mapping[str, Param]):
    """An ordered, immutable mapping of parameter names to parameters, with optional forbidden combinations.

    Args:
        params: parameter name -> :class:`Choice`, :class:`Integer` or :class:`Float`.
        forbid: rules, each a mapping from ``Choice`` / ``Integer`` parameter names to a value or a list of
            values. A point is forbidden when it matches every entry of some rule: ``{"kernel": 7}`` forbids
            kernel 7 everywhere, ``{"kernel": 7, "expand": [4, 6]}`` forbids it only with expand 4 or 6.

    Example:
        >>> space = Space({"kernel": Choice([3, 5, 7]), "depth": Integer(1, 4)}, forbid=[{"kernel": 7, "depth": 4}])
        >>> params = space.sample(np.random.default_rng(0))
        >>> space.decode(space.encode(params)) == params
        True
        >>> space.is_forbidden({"kernel": 7, "depth": 4}), space.is_forbidden({"kernel": 7, "depth": 3})
        (True, False)
    """

    def __init__(self, params: Mapping[str, Param], *, forbid: Sequence[Rule] = ()) -> None:
        if not params:
            raise ValueError("a Space needs at least one parameter")
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
            if name.startswith("$"):
                raise ValueError(f"parameter names must not start with '$' (reserved), got {name!r}")
            if not isinstance(p, Param):
                raise TypeError(
                    f"parameter {name!r} must be a Choice, Integer or Float, got {type(p).__name__}"
                )
        self._params = dict(params)
        if isinstance(forbid, Mapping):
            raise TypeError("forbid is a list of rules, e.g. forbid=[{'kernel': 7}]; got a single mapping")
        self._forbid = tuple(self._check_rule(i, rule) for i, rule in enumerate(forbid))
        # Each rule compiled to (name, match keys) pairs, for a cheap is_forbidden().
        self._compiled = tuple(
            tuple(
                (name, frozenset(self._match_key(name, v) for v in values)) for name, values in rule.items()
            )
            for rule in self._forbid
        )

    def _check_rule(self, i: int, rule: Rule) -> dict[str, tuple[Value, ...]]:
        if not isinstance(rule, Mapping) or not rule:
            raise ValueError(
                f"forbid rule {i} must be a non-empty mapping of parameter names to values, got {rule!r}"
            )
        out: dict[str, tuple[Value, ...]] = {}
        for name, value in rule.items():
            if name not in self._params:
                raise ValueError(
                    f"forbid rule {i} names unknown parameter {name!r}; valid: {list(self._params)}"
                )
            p = self._params[name]
            if not p.discrete:
                raise ValueError(
                    f"forbid rule {i}: {name!r} is a Float; rules name Choice or Integer parameters only"
                )
            values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            if not values:
                raise ValueError(f"forbid rule {i}: the list of values of {name!r} is empty")
            for v in values:
                try:
                    p.validate(v)
                except ValueError as e:
                    raise ValueError(f"forbid rule {i}, parameter {name!r}: {e}") from None
            out[name] = values
        if all(
            len({self._match_key(n, v) for v in vs}) == self._params[n].cardinality() for n, vs in out.items()
        ):
            raise ValueError(
                f"forbid rule {i} ({out}) matches every point of the space; nothing would be left"
            )
        return out

    def _match_key(self, name: str, value: Value) -> Any:
        p = self._params[name]
        return p.index(value) if isinstance(p, Choice) else value

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        extra = f", forbid={list(self._forbid)!r}" if self._forbid else ""
        return f"Space({self._params!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((tuple(self._params.items()), len(self._forbid)))

    @property
    def forbid(self) -> tuple[dict[str, tuple[Value, ...]], ...]:
        """The forbid rules, each normalised to ``{name: (value, ...)}``."""
        return tuple(dict(r) for r in self._forbid)

    @property
    def discrete(self) -> bool:
        """True when every parameter is a ``Choice`` or an ``Integer``."""
        return all(p.discrete for p in self._params.values())

    def cardinality(self) -> float:
        """Number of distinct points (``math.inf`` if any parameter is a ``Float``), forbidden ones included."""
        return math.prod(p.cardinality() for p in self._params.values())

    def is_forbidden(self, params: Mapping[str, Value]) -> bool:
        """True when ``params`` (a valid point) matches one of the forbid rules."""
        for rule in self._compiled:
            try:
                if all(self._match_key(name, params[name]) in keys for name, keys in rule):
                    return True
            except ValueError:  # a value outside its Choice matches no rule
                continue
        return False

    def sample(self, rng: np.random.Generator) -> dict[str, Value]:
        """Draws one allowed point uniformly (log-uniformly for ``Float(log=True)``).

        Forbidden points are redrawn; ``ValueError`` if no allowed point turns up in 10,000 draws.
        """
        for _ in range(_MAX_DRAWS):
            params = {name: p.sample(rng) for name, p in self._params.items()}
            if not self._compiled or not self.is_forbidden(params):
                return params
        raise ValueError(
            f"no allowed point in {_MAX_DRAWS} draws: the forbid rules exclude (nearly) the whole space; "
            "remove or narrow some rules"
        )

    def validate(self, params: Mapping[str, Value], *, forbid: bool = True) -> None:
        """Raises ``ValueError`` naming the first parameter that is missing, unknown or out of range, or (with
        ``forbid``) the forbid rule that the point matches."""
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid: {list(self._params)}")
        for name, p in self._params.items():
            if name not in params:
                raise ValueError(f"parameter {name!r} is missing")
            try:
                p.validate(params[name])
            except ValueError as e:
                raise ValueError(f"parameter {name!r}: {e}") from None
        for rule, compiled in zip(self._forbid, self._compiled) if forbid else ():
            if all(self._match_key(name, params[name]) in keys for name, keys in compiled):
                raise ValueError(f"{dict(params)} is forbidden by the rule {rule}")

    def encode(self, params: Mapping[str, Value]) -> np.ndarray:
        """Point -> float vector of shape ``(len(space),)``."""
        return np.array([p.encode(params[name]) for name, p in self._params.items()], dtype=float)

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Value]:
        """Float vector of shape ``(len(space),)`` -> point (rounded and clipped into the space; it may be
        forbidden, see :meth:`is_forbidden`)."""
        return {name: p.decode(float(v)) for (name, p), v in zip(self._params.items(), x)}

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the encoding, each of shape ``(len(space),)``."""
        b = np.array([p.bounds() for p in self._params.values()], dtype=float)
        return b[:, 0], b[:, 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, stable enough to compare two spaces.

        One entry per parameter; forbid rules, when there are any, under the reserved key ``"$forbid"``.
        """
        out: dict[str, Any] = {name: p.to_dict() for name, p in self._params.items()}
        if self._forbid:
            out[_FORBID_KEY] = [
                {name: list(values) for name, values in rule.items()} for rule in self._forbid
            ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """Inverse of :meth:`to_dict`."""
        params: dict[str, Param] = {}
        for name, d in data.items():
            if name == _FORBID_KEY:
                continue
            kind = d.get("type")
            if kind == "choice":
                params[name] = Choice(d["values"])
            elif kind == "integer":
                params[name] = Integer(int(d["low"]), int(d["high"]), int(d.get("step", 1)))
            elif kind == "float":
                params[name] = Float(float(d["low"]), float(d["high"]), bool(d.get("log", False)))
            else:
                raise ValueError(f"parameter {name!r}: unknown type {kind!r}; valid: choice, integer, float")
        return cls(params, forbid=data.get(_FORBID_KEY, ()))


def _hashable(v: Value) -> Any:
    return (type(v).__name__ if not _numeric(v) else "num", v)


def _numeric(v: Value) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
