"""Exact binomial statistics behind consistent_with_loss (lab.scenario.stats)."""
import math

import pytest

from lab.scenario import stats


def brute_cdf(n, k, p):
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize("n, k, p", [(10, 3, 0.5), (20, 0, 0.1), (20, 19, 0.9), (50, 25, 0.3),
                                     (50, 10, 0.3), (1, 0, 0.5), (100, 99, 0.999)])
def test_cdf_matches_the_textbook_sum(n, k, p):
    assert stats.cdf(n, k, p) == pytest.approx(brute_cdf(n, k, p), rel=1e-9, abs=1e-15)


def test_cdf_edges():
    assert stats.cdf(10, -1, 0.5) == 0
    assert stats.cdf(10, 10, 0.5) == 1
    assert stats.cdf(10, 3, 0.0) == 1
    assert stats.cdf(10, 3, 1.0) == 0
    assert stats.sf(10, 0, 0.5) == 1
    assert stats.sf(10, 4, 0.5) == pytest.approx(1 - brute_cdf(10, 3, 0.5))


def test_far_tails_underflow_quietly_instead_of_failing():
    assert stats.cdf(100000, 10, 0.5) == 0.0
    assert stats.cdf(100000, 99990, 0.5) == 1.0


def test_acceptance_interval_for_ten_thousand_at_twenty_percent_loss():
    # 99%: the normal approximation says 8000 +- 2.576 * 40 = 7897..8103; exact is 7896..8102.
    lo, hi = stats.acceptance_interval(10000, 0.8, 0.99)
    assert (lo, hi) == (7896, 8102)
    assert abs(lo - 7897) <= 2 and abs(hi - 8103) <= 2


def test_acceptance_interval_ends_are_where_the_tails_cross_half_alpha():
    n, p, half = 1000, 0.9, 0.005
    lo, hi = stats.acceptance_interval(n, p, 0.99)
    assert stats.cdf(n, lo, p) > half >= stats.cdf(n, lo - 1, p)
    assert stats.sf(n, hi, p) > half >= stats.sf(n, hi + 1, p)


def test_acceptance_interval_covers_at_least_the_confidence():
    for n, p in [(30, 0.5), (200, 0.95), (1000, 0.999), (5000, 0.7)]:
        lo, hi = stats.acceptance_interval(n, p, 0.99)
        covered = stats.cdf(n, hi, p) - stats.cdf(n, lo - 1, p)
        assert covered >= 0.99


def test_acceptance_interval_degenerate_rates():
    assert stats.acceptance_interval(500, 1.0) == (500, 500)     # no loss: every reply must come back
    assert stats.acceptance_interval(500, 0.0) == (0, 0)         # total loss: none


def test_clopper_pearson_known_values():
    assert stats.clopper_pearson(5, 10, 0.95) == pytest.approx((0.187086, 0.812914), abs=1e-6)
    assert stats.clopper_pearson(0, 10, 0.95) == pytest.approx((0.0, 1 - 0.025 ** 0.1), abs=1e-9)
    assert stats.clopper_pearson(10, 10, 0.95) == pytest.approx((0.025 ** 0.1, 1.0), abs=1e-9)


def test_clopper_pearson_is_the_inverse_of_the_acceptance_interval():
    # k is accepted for p exactly when p lies in the interval of k.
    n = 200
    for p in (0.5, 0.8, 0.95):
        lo, hi = stats.acceptance_interval(n, p, 0.99)
        for k in (lo - 1, lo, hi, hi + 1):
            low, high = stats.clopper_pearson(k, n, 0.99)
            assert (low <= p <= high) == (lo <= k <= hi), (p, k)


def test_clopper_pearson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        stats.clopper_pearson(11, 10)
    with pytest.raises(ValueError):
        stats.clopper_pearson(0, 0)


def test_big_counts_are_fast_enough():
    import time
    start = time.perf_counter()
    stats.acceptance_interval(1_000_000, 0.999, 0.99)
    stats.clopper_pearson(999_000, 1_000_000, 0.99)
    assert time.perf_counter() - start < 2.0
