import math

import numpy as np
import pytest

from search import Choice, Float, Integer, Space


def test_encode_decode_round_trip_for_every_kind():
    space = Space({"k": Choice([3, 5, 7]), "d": Integer(1, 9, step=2), "lr": Float(1e-4, 1e-1, log=True), "m": Float(0, 1)})
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = space.sample(rng)
        space.validate(p)
        q = space.decode(space.encode(p))
        assert q["k"] == p["k"] and q["d"] == p["d"]
        assert math.isclose(q["lr"], p["lr"], rel_tol=1e-9) and math.isclose(q["m"], p["m"])


def test_decode_snaps_into_the_space():
    space = Space({"k": Choice([3, 5, 7]), "d": Integer(1, 9, step=2)})
    assert space.decode([7.9, 4.2]) == {"k": 7, "d": 5}
    assert space.decode([-3, 100]) == {"k": 3, "d": 9}


def test_log_float_samples_are_log_uniform():
    p = Float(1e-4, 1.0, log=True)
    rng = np.random.default_rng(1)
    x = np.array([p.sample(rng) for _ in range(4000)])
    # a quarter of the log range lies below 1e-3
    assert 0.2 < np.mean(x < 1e-3) < 0.3


def test_cardinality_and_discreteness():
    assert Space({"a": Choice("xyz"), "b": Integer(0, 4)}).cardinality() == 15
    s = Space({"a": Choice([1, 2]), "x": Float(0, 1)})
    assert not s.discrete and s.cardinality() == math.inf


@pytest.mark.parametrize(
    "params, message",
    [
        ({"k": 4, "d": 1}, "not one of"),
        ({"k": 3}, "missing"),
        ({"k": 3, "d": 1, "z": 0}, "unknown parameter"),
        ({"k": 3, "d": 2}, "step"),
    ],
)
def test_validate_names_the_problem(params, message):
    space = Space({"k": Choice([3, 5, 7]), "d": Integer(1, 9, step=2)})
    with pytest.raises(ValueError, match=message):
        space.validate(params)


def test_bad_parameter_definitions_are_refused():
    with pytest.raises(ValueError):
        Choice([])
    with pytest.raises(ValueError):
        Choice([1, 1])
    with pytest.raises(ValueError):
        Integer(5, 1)
    with pytest.raises(ValueError):
        Float(0, 1, log=True)


def test_to_dict_from_dict_round_trip():
    space = Space({"k": Choice([3, 5]), "d": Integer(1, 3), "lr": Float(1e-3, 1, log=True)})
    assert Space.from_dict(space.to_dict()) == space
