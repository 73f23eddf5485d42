"""The pieces of benchmarks/nb201_bounds.py that its figures rest on."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import nb201_bounds as bounds

from search import hypervolume, non_dominated_mask

NONE, SKIP, C1, C3, POOL = range(5)


def test_cell_function_equates_isomorphic_and_dead_edge_cells() -> None:
    # c1(c3(x)) + x through node 1 (e0, e4), through node 2 (e1, e5), or through node 1 then 2 (e0, e2, e5)
    via1 = (C3, NONE, NONE, SKIP, C1, NONE)
    via2 = (NONE, C3, NONE, SKIP, NONE, C1)
    via12 = (C3, NONE, C1, SKIP, NONE, SKIP)
    # node 2 is computed but never reaches the output (e5 is none): its edges do not change the network
    dead = (C3, POOL, C3, SKIP, C1, NONE)
    key = bounds.cell_function(via1)
    assert key == bounds.cell_function(via2) == bounds.cell_function(dead) == bounds.cell_function(via12)
    assert key != bounds.cell_function((C3, NONE, NONE, SKIP, C3, NONE))  # c3(c3(x)) + x
    assert bounds.cell_function((NONE,) * 6) is None
    assert bounds.cell_function((NONE, NONE, NONE, NONE, SKIP, SKIP)) is None  # nodes 1, 2 have no input


def test_noise_sd_is_the_pooled_spread_within_classes() -> None:
    keys = ["a", "a", "b", "b", "b", "c"]
    error = np.array([5.0, 7.0, 8.0, 9.0, 10.0, 3.0])
    # deviations (-1, 1) and (-1, 0, 1): 4 squared, 5 - 2 degrees of freedom
    assert bounds.noise_sd(error, keys) == pytest.approx(np.sqrt(4.0 / 3.0))


def test_expected_gain_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    front = np.array([[1.0, 5.0], [2.0, 3.0], [3.5, 1.0]])
    ref = np.array([5.0, 6.0])
    mu = np.array([1.5, 2.5, 4.0, 0.5])
    lat = np.array([2.0, 2.5, 0.5, 5.5])
    sd = 0.4
    exact = bounds._expected_gain(front, ref, mu, sd, lat)
    base = hypervolume(front, ref)
    for i in range(len(mu)):
        draws = rng.normal(mu[i], sd, 4000)
        gains = []
        for e in draws:
            pts = np.vstack([front, [e, lat[i]]])
            pts = pts[np.all(pts < ref, axis=1)]
            gains.append(hypervolume(pts[non_dominated_mask(pts)], ref) - base)
        assert exact[i] == pytest.approx(np.mean(gains), abs=4 * np.std(gains) / np.sqrt(len(gains)) + 1e-9)
    assert exact[3] < exact[0]  # slow and no better than the front's best: little to gain


def test_the_network_map_of_the_nb201_problems_drops_exactly_the_dead_operations() -> None:
    import itertools

    import nb201

    names = nb201.OPS
    # node 2 never reaches the output (e5 none): e1 and e2 are dead; e0 feeds node 1, which reaches it by e4
    params = dict(zip(nb201.EDGES, ("nor_conv_3x3", "avg_pool_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none")))
    assert [params[e] for e in nb201.EDGES] != [nb201.network(params)[e] for e in nb201.EDGES]
    assert nb201.network(params) == {**params, "e1": "none", "e2": "none"}
    # node 1 has no input (e0 none): what leaves it (e2, e4) is dead
    params = dict(zip(nb201.EDGES, ("none", "skip_connect", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1")))
    assert nb201.network(params) == {**params, "e2": "none", "e4": "none"}
    for ops in itertools.product(range(5), repeat=6):  # every cell, against the independent cell_function
        p = {e: names[o] for e, o in zip(nb201.EDGES, ops)}
        q = nb201.network(p)
        q_ops = tuple(names.index(q[e]) for e in nb201.EDGES)
        assert bounds.cell_function(q_ops) == bounds.cell_function(ops)  # the same network
        assert nb201.network(q) == q  # idempotent
        # every operation left is live (and, by the first check, none that mattered went)
        assert nb201.live_edges([q[e] for e in nb201.EDGES]) == tuple(v != "none" for v in q.values())
