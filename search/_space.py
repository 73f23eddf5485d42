"""Search spaces: named parameters of three kinds, in plain Python and numpy.

A space is an ordered mapping of names to parameters. A point of the space (``params``) is a JSON-ready
``dict`` mapping every name to a value. Strategies work on an integer/real *encoding* of points:
``Choice`` is encoded as the index of its value, ``Integer`` as its value and ``Float`` as its value
(or its natural logarithm when ``log=True``).
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
        i = int(np.clip(round(float(x)), 0, len(self.values) - 1))
        return self.values[i]

    def bounds(self) -> tuple[float, float]:
        return 0.0, float(len(self.values) - 1)

    def validate(self, value: Value) -> None:
        self.index(value)

    def cardinality(self) -> float:
        return float(len(self.values))

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
        k = int(np.clip(round((float(x) - self.low) / self.step), 0, self._n() - 1))
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
        x = float(np.clip(x, lo, hi))
        return float(np.clip(math.exp(x), self.low, self.high)) if self.log else x

    def bounds(self) -> tuple[float, float]:
        return (math.log(self.low), math.log(self.high)) if self.log else (float(self.low), float(self.high))

    def validate(self, value: Value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"expected a number, got {value!r}")
        if not (self.low <= value <= self.high):
            raise ValueError(f"{value!r} is not in [{self.low}, {self.high}]")

    def cardinality(self) -> float:
        return math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


class Space(Mapping[str, Param]):
    """An ordered, immutable mapping of parameter names to parameters.

    Example:
        >>> space = Space({"kernel": Choice([3, 5, 7]), "depth": Integer(1, 4)})
        >>> params = space.sample(np.random.default_rng(0))
        >>> space.decode(space.encode(params)) == params
        True
    """

    def __init__(self, params: Mapping[str, Param]) -> None:
        if not params:
            raise ValueError("a Space needs at least one parameter")
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
            if not isinstance(p, Param):
                raise TypeError(f"parameter {name!r} must be a Choice, Integer or Float, got {type(p).__name__}")
        self._params = dict(params)

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self._params.items()))

    @property
    def discrete(self) -> bool:
        """True when every parameter is a ``Choice`` or an ``Integer``."""
        return all(p.discrete for p in self._params.values())

    def cardinality(self) -> float:
        """Number of distinct points (``math.inf`` if any parameter is a ``Float``)."""
        return math.prod(p.cardinality() for p in self._params.values())

    def sample(self, rng: np.random.Generator) -> dict[str, Value]:
        """Draws one point uniformly (log-uniformly for ``Float(log=True)``)."""
        return {name: p.sample(rng) for name, p in self._params.items()}

    def validate(self, params: Mapping[str, Value]) -> None:
        """Raises ``ValueError`` naming the first parameter that is missing, unknown or out of range."""
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

    def encode(self, params: Mapping[str, Value]) -> np.ndarray:
        """Point -> float vector of shape ``(len(space),)``."""
        return np.array([p.encode(params[name]) for name, p in self._params.items()], dtype=float)

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Value]:
        """Float vector of shape ``(len(space),)`` -> point (rounded and clipped into the space)."""
        return {name: p.decode(float(v)) for (name, p), v in zip(self._params.items(), x)}

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the encoding, each of shape ``(len(space),)``."""
        b = np.array([p.bounds() for p in self._params.values()], dtype=float)
        return b[:, 0], b[:, 1]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready description, stable enough to compare two spaces."""
        return {name: p.to_dict() for name, p in self._params.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> Space:
        """Inverse of :meth:`to_dict`."""
        params: dict[str, Param] = {}
        for name, d in data.items():
            kind = d.get("type")
            if kind == "choice":
                params[name] = Choice(d["values"])
            elif kind == "integer":
                params[name] = Integer(int(d["low"]), int(d["high"]), int(d.get("step", 1)))
            elif kind == "float":
                params[name] = Float(float(d["low"]), float(d["high"]), bool(d.get("log", False)))
            else:
                raise ValueError(f"parameter {name!r}: unknown type {kind!r}; valid: choice, integer, float")
        return cls(params)


def _hashable(v: Value) -> Any:
    return (type(v).__name__ if not _numeric(v) else "num", v)


def _numeric(v: Value) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
