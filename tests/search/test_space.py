import json
import math

import numpy as np
import pytest

from search import Choice, Float, Integer, Space


def test_encode_decode_round_trip_for_every_kind():
    space = Space(
        {
            "k": Choice([3, 5, 7]),
            "d": Integer(1, 9, step=2),
            "lr": Float(1e-4, 1e-1, log=True),
            "m": Float(0, 1),
        }
    )
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


# -- forbidden combinations ----------------------------------------------------------------------------
FORBID_SPACE = Space(
    {"kernel": Choice([3, 5, 7]), "expand": Choice([3, 4, 6]), "depth": Integer(1, 4), "lr": Float(0.01, 1)},
    forbid=[{"kernel": 7, "expand": [4, 6]}, {"depth": 1, "kernel": 3}],
)


def test_forbid_rules_match_every_entry_and_any_listed_value():
    s = FORBID_SPACE
    assert s.is_forbidden({"kernel": 7, "expand": 6, "depth": 2, "lr": 0.1})
    assert s.is_forbidden({"kernel": 7, "expand": 4, "depth": 4, "lr": 0.1})
    assert not s.is_forbidden({"kernel": 7, "expand": 3, "depth": 2, "lr": 0.1})
    assert s.is_forbidden({"kernel": 3, "expand": 3, "depth": 1, "lr": 0.5})
    assert not s.is_forbidden({"kernel": 5, "expand": 6, "depth": 1, "lr": 0.5})
    with pytest.raises(ValueError, match="forbidden by the rule"):
        s.validate({"kernel": 7, "expand": 6, "depth": 2, "lr": 0.1})
    s.validate({"kernel": 7, "expand": 3, "depth": 2, "lr": 0.1})


def test_sampling_never_draws_a_forbidden_point_and_stays_uniform_over_the_rest():
    rng = np.random.default_rng(0)
    draws = [FORBID_SPACE.sample(rng) for _ in range(3000)]
    assert not any(FORBID_SPACE.is_forbidden(p) for p in draws)
    # allowed (kernel, expand) pairs: 9 - 2 = 7, each about 1/7 of the draws
    pairs = {(p["kernel"], p["expand"]) for p in draws}
    assert len(pairs) == 7
    share = np.mean([(p["kernel"], p["expand"]) == (7, 3) for p in draws])
    assert abs(share - 1 / 7) < 0.03


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"nope": 1}, "unknown parameter 'nope'"),
        ({"lr": 0.1}, "is a Float"),
        ({"kernel": 4}, "not one of"),
        ({"depth": [2, 9]}, "not in"),
        ({}, "non-empty"),
        ({"kernel": []}, "empty"),
        ({"kernel": [3, 5, 7]}, "matches every point"),
    ],
)
def test_bad_forbid_rules_are_refused_with_what_is_wrong(rule, message):
    with pytest.raises(ValueError, match=message):
        Space({"kernel": Choice([3, 5, 7]), "depth": Integer(1, 4), "lr": Float(0.01, 1)}, forbid=[rule])


def test_a_single_mapping_instead_of_a_list_of_rules_is_refused():
    with pytest.raises(TypeError, match="list of rules"):
        Space({"kernel": Choice([3, 5, 7])}, forbid={"kernel": 7})  # type: ignore[arg-type]


def test_forbid_rules_survive_to_dict_and_from_dict_and_count_in_equality():
    again = Space.from_dict(json.loads(json.dumps(FORBID_SPACE.to_dict())))
    assert again == FORBID_SPACE and again.forbid == FORBID_SPACE.forbid
    plain = Space(dict(FORBID_SPACE.items()))
    assert plain != FORBID_SPACE and "$forbid" not in plain.to_dict()
    with pytest.raises(ValueError, match="reserved"):
        Space({"$forbid": Choice([1, 2])})


def test_sampling_gives_up_with_a_clear_message_when_the_rules_together_forbid_everything():
    space = Space({"a": Integer(0, 1), "b": Choice(["x", "y"])}, forbid=[{"a": 0}, {"a": 1, "b": ["x", "y"]}])
    with pytest.raises(ValueError, match="forbid rules exclude"):
        space.sample(np.random.default_rng(0))


# -- discretisation ------------------------------------------------------------------------------------
def test_grid_values_of_each_kind():
    assert Choice(["a", "b"]).grid(1) == ["a", "b"]
    assert Integer(1, 9, step=2).grid() == [1, 3, 5, 7, 9]
    assert Integer(0, 100).grid(5) == [0, 25, 50, 75, 100]
    assert Float(0, 1).grid(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert Float(1e-4, 1.0, log=True).grid(5) == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert Float(1, 100, log=True).grid(1) == pytest.approx([10.0])
    with pytest.raises(ValueError, match="number of points"):
        Float(0, 1).grid()
