"""Feasible-first ranking, shared by the evolution tournament and successive-halving promotion."""

import numpy as np
import pytest

from search._ranking import crowding_distance, feasible_first_order, hypervolume_contributions, pareto_ranks


def test_feasible_rows_come_first_by_front_then_infeasible_by_violation():
    F = [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0], [0.0, 2.0], [2.0, 0.0], [5.0, 5.0]]
    v = [0.0, 2.0, 0.0, 0.0, 0.0, np.inf]
    order = feasible_first_order(F, v).tolist()
    # front 0 of the feasible rows: 3, 4 and 0 (row 0 (1,1) is dominated by neither (0,2) nor (2,0))
    assert set(order[:3]) == {0, 3, 4}
    assert order[3:] == [2, 1, 5]  # feasible front 1, then violation 2.0, then a FAILED row (inf)


def test_within_a_front_the_boundary_and_sparse_rows_come_first():
    F = np.array([[0.0, 1.0], [0.1, 0.9], [0.5, 0.5], [1.0, 0.0]])
    order = feasible_first_order(F, np.zeros(4)).tolist()
    assert set(order[:2]) == {0, 3}  # the extremes (infinite crowding distance)
    assert order[2:] == [2, 1]  # (0.5, 0.5) lies in a sparser region than (0.1, 0.9)
    hv = feasible_first_order(F, np.zeros(4), tie_break="hypervolume").tolist()
    # exclusive contributions with the reference at 1.1: 0.01, 0.04, 0.2 and 0.05
    assert hv == [2, 3, 1, 0]


def test_pareto_ranks_crowding_and_contributions():
    F = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert pareto_ranks(F).tolist() == [0, 0, 1, 2]
    assert crowding_distance(np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])).tolist() == [np.inf, 2.0, np.inf]
    contrib = hypervolume_contributions(np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]))
    assert contrib == pytest.approx([0.1 * 0.5, 0.5 * 0.5, 0.5 * 0.1])


def _peeled_ranks(F):
    """Front index by definition: peel off the rows no remaining row dominates, again and again."""
    F = np.asarray(F, dtype=float)
    ranks = np.full(len(F), -1)
    r = 0
    while np.any(ranks < 0):
        left = np.flatnonzero(ranks < 0)
        G = F[left]
        dominated = [np.any(np.all(G <= g, axis=1) & np.any(G < g, axis=1)) for g in G]
        ranks[left[~np.array(dominated)]] = r
        r += 1
    return ranks


def test_ranks_equal_the_definition_with_ties_near_ties_and_infinities():
    rng = np.random.default_rng(0)
    for trial in range(900):
        n, m = int(rng.integers(2, 50)), int(rng.integers(2, 5))
        F = rng.integers(0, int(rng.integers(1, 7)), size=(n, m)).astype(float)  # many ties and duplicates
        if trial % 3 == 0:
            F = rng.normal(size=(n, m))
        if trial % 4 == 0:
            F += rng.choice([0.0, 1e-12], size=F.shape)  # values a hair apart are still apart
        if trial % 5 == 0:
            F[rng.integers(n), rng.integers(m)] = np.inf  # a FAILED row's value
        assert np.array_equal(pareto_ranks(F), _peeled_ranks(F)), F
    F = rng.integers(0, 20, size=(900, 2)).astype(float)
    assert np.array_equal(pareto_ranks(F), _peeled_ranks(F))
    assert pareto_ranks(np.array([[1.0, np.nan], [0.0, 0.0]])).tolist() == [0, 0]  # nan: never compared


def test_one_objective_and_ties_keep_the_row_order():
    assert feasible_first_order([[3.0], [1.0], [2.0], [1.0]], [0.0, 0.0, 0.0, 0.0]).tolist()[:2] in (
        [1, 3],
        [3, 1],
    )
    assert feasible_first_order([[0.0], [0.0]], [1.0, 1.0]).tolist() == [0, 1]
    assert feasible_first_order(np.zeros((0, 2)), []).tolist() == []
    with pytest.raises(ValueError, match="tie_break"):
        feasible_first_order([[0.0]], [0.0], tie_break="random")
