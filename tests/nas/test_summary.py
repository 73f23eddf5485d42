"""Lines after a search: warnings first."""

import pytest

from nas.run._summary import undertrained_warning


@pytest.mark.parametrize(
    "error, classes, warned",
    [(10.0, 10, False), (44.9, 10, False), (45.1, 10, True), (65.0, 10, True), (20.0, 2, False), (30.0, 2, True)],
)
def test_undertrained_means_above_half_of_chance_error(error, classes, warned):
    line = undertrained_warning(error, classes)
    assert (line is not None) == warned
    if warned:
        assert f"{error:.1f}%" in line and "--epochs" in line
