"""MLPerf LoadGen's early-stopping rule for latency percentiles.

LoadGen (mlcommons/inference, ``loadgen/early_stopping.cc``) treats each query as a Bernoulli
trial: a query is *overlatency* when it is slower than the reported latency. If the true
``p``-th percentile were at or below the reported value, each query would be overlatency
with probability at most ``1 - (p - d)`` (``d`` a tolerance, 0 here). After ``h`` queries
within the latency and ``t`` overlatency ones, the chance of seeing ``t`` or fewer
overlatency queries is the binomial CDF

    P(X <= t), X ~ Binomial(h + t, 1 - (p - d))  =  I_{p - d}(h, t + 1)

(the regularised incomplete beta function). The run may report the latency of the
``(h + t - t)``-th fastest query as an upper bound of the percentile, with confidence ``c``,
once ``h`` is the smallest number for which that chance is at most ``1 - c``. With ``t = 0``
this gives the fewest queries any estimate needs, ``ceil(log(1 - c) / log(p - d))``: 459 for
p99 and 4,603 for p99.9 at 99% confidence.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def pass_probability(h: int, t: int, p: float, d: float = 0.0) -> float:
    """P(at most ``t`` of ``h + t`` queries are overlatency) when each is with prob. ``1-(p-d)``."""
    from scipy.special import betainc

    if h <= 0:
        return 1.0
    return float(betainc(h, t + 1, p - d))


@lru_cache(maxsize=4096)
def min_passing(t: int, p: float, c: float, d: float = 0.0) -> int:
    """Smallest ``h`` with ``pass_probability(h, t, p, d) <= 1 - c`` (LoadGen's MinPassingQueriesFinder)."""
    if not 0 < p - d < 1 or not 0 < c < 1 or t < 0:
        raise ValueError("need 0 < p - d < 1, 0 < c < 1 and t >= 0")
    low = max(1, math.ceil(math.log(1 - c) / math.log(p - d)) - 1)
    high = low
    while pass_probability(high, t, p, d) > 1 - c:
        low, high = high, high * 2
    # pass_probability decreases in h: binary search the first h that passes in (low, high].
    while low < high:
        mid = (low + high) // 2
        if pass_probability(mid, t, p, d) <= 1 - c:
            high = mid
        else:
            low = mid + 1
    return high


def min_queries(p: float, c: float, d: float = 0.0) -> int:
    """Fewest queries for any early-stopping estimate of the ``p`` quantile (no overlatency)."""
    return min_passing(0, p, c, d)


def overlatency_allowed(n: int, p: float, c: float, d: float = 0.0) -> int | None:
    """Largest ``t`` with ``t + min_passing(t) <= n``; None when ``n`` is too few queries."""
    if n < min_queries(p, c, d):
        return None
    low, high = 0, n  # t + min_passing(t) grows with t
    while low < high:
        mid = (low + high + 1) // 2
        if mid + min_passing(mid, p, c, d) <= n:
            low = mid
        else:
            high = mid - 1
    return low


def estimate(sorted_latencies: np.ndarray, p: float, c: float, d: float = 0.0) -> float | None:
    """LoadGen's early-stopping estimate: an upper bound of the ``p`` quantile at confidence ``c``.

    ``sorted_latencies`` must be sorted ascending; None when there are too few of them.
    """
    n = len(sorted_latencies)
    t = overlatency_allowed(n, p, c, d)
    if t is None:
        return None
    return float(sorted_latencies[n - t - 1])
