"""Exact binomial statistics for ``consistent_with_loss``.

Exact (Clopper-Pearson) rather than Wilson: the two agree for big counts, but the
tests of a scenario also run on small counts (a few hundred datagrams) and extreme
rates (0.1% loss, or 0%), where Wilson's normal approximation under-covers and would
fail correct labs.  The exact interval never under-covers, and it is the inversion of
the equal-tailed exact binomial test, so "the expected loss lies in the interval of
the observed loss" and "the received count lies in the acceptance interval of the
expected loss" are the same decision (``acceptance_interval`` gives the second form,
the one worth showing: "expected 7897..8103 received").

Tail probabilities are sums of binomial terms in log space (``math.lgamma`` for the
first term, the ratio of consecutive terms after it), always summed away from the
mode so the terms only shrink and the sum stops after a few standard deviations.
Interval ends are found by bisection on those tails.
"""
from __future__ import annotations

import math
from typing import Tuple

_EPS = 1e-17


def log_pmf(n: int, k: int, p: float) -> float:
    """log P(X = k) for X ~ Binomial(n, p), 0 < p < 1."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _sum_away(n: int, k: int, p: float, upward: bool) -> float:
    """Sum of P(X = i) from i = k going up (or down), for k on the far side of the mode."""
    first = log_pmf(n, k, p)
    odds = p / (1 - p)
    total, term, i = 1.0, 1.0, k
    while 0 < i < n if not upward else i < n:
        if upward:
            term *= (n - i) / (i + 1) * odds
            i += 1
        else:
            term *= i / (n - i + 1) / odds
            i -= 1
        total += term
        if term < total * _EPS:
            break
    return math.exp(first + math.log(total))


def cdf(n: int, k: int, p: float) -> float:
    """P(X <= k)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    mode = math.floor((n + 1) * p)
    if k < mode:
        return min(1.0, _sum_away(n, k, p, upward=False))
    return max(0.0, 1.0 - _sum_away(n, k + 1, p, upward=True))


def sf(n: int, k: int, p: float) -> float:
    """P(X >= k)."""
    return 1.0 - cdf(n, k - 1, p) if k > 0 else 1.0


def _upper_tail(n: int, k: int, p: float) -> float:
    """P(X >= k), summed directly when k lies above the mode (better precision)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    if k > math.floor((n + 1) * p):
        return min(1.0, _sum_away(n, k, p, upward=True))
    return max(0.0, 1.0 - cdf(n, k - 1, p))


def acceptance_interval(n: int, p: float, confidence: float = 0.99) -> Tuple[int, int]:
    """The counts of successes (out of n, success chance p) that an equal-tailed exact
    test at this confidence accepts: every k with P(X <= k) > a/2 and P(X >= k) > a/2,
    a = 1 - confidence."""
    half = (1 - confidence) / 2
    if p <= 0:
        return 0, 0
    if p >= 1:
        return n, n
    lo, hi = 0, n                       # smallest k with cdf(k) > half
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf(n, mid, p) > half:
            hi = mid
        else:
            lo = mid + 1
    low = lo
    lo, hi = 0, n                       # largest k with P(X >= k) > half
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _upper_tail(n, mid, p) > half:
            lo = mid
        else:
            hi = mid - 1
    return low, lo


def clopper_pearson(k: int, n: int, confidence: float = 0.99) -> Tuple[float, float]:
    """Exact two-sided interval for the success chance after k successes in n trials."""
    if not 0 <= k <= n or n <= 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    half = (1 - confidence) / 2

    def bisect(too_low) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if too_low(mid):
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-13:
                break
        return (lo + hi) / 2

    # lower: the p where P(X >= k) = half; upper: the p where P(X <= k) = half.
    lower = 0.0 if k == 0 else bisect(lambda p: _upper_tail(n, k, p) < half)
    upper = 1.0 if k == n else bisect(lambda p: cdf(n, k, p) > half)
    return lower, upper
