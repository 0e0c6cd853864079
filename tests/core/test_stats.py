import pytest

from robolearn.core.stats import wilson_interval


def test_wilson_matches_hand_worked_values():
    # p = 0.5, n = 100, z = 1.96: centre 0.5, half-width 1.96*sqrt(0.0025 + 0.000096)/1.0384
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4)
    assert high == pytest.approx(0.5962, abs=1e-4)


def test_wilson_at_the_edges_stays_in_unit_interval():
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and low == pytest.approx(0.9287, abs=1e-4)
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and high == pytest.approx(0.0713, abs=1e-4)


@pytest.mark.parametrize("k,n", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)
