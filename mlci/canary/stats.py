"""The statistics of a canary judgement: pure functions of arrays.

* Mann-Whitney U (Wilcoxon rank-sum) with its exact null distribution for small samples
  without ties, and the normal approximation with tie and continuity corrections otherwise
  (as ``scipy.stats.mannwhitneyu`` computes them);
* the Hodges-Lehmann estimate of the shift between two samples (the median of every pairwise
  difference) and its distribution-free confidence interval (order statistics of the pairwise
  differences at the U distribution's quantiles, as R's ``wilcox.test(conf.int = TRUE)``);
* Wilson's interval for a proportion and Newcombe's hybrid score interval for the difference
  of two;
* a bootstrap interval for a ratio of sums over clusters (requests).

Up to a million pairs, order statistics of the pairwise differences come from partitioning them;
beyond, they are never materialised but found by bisection over the floats with a count of
pairs below a value (exact, in the same floating arithmetic as ``y - x``), so ten thousand
samples a side take milliseconds and no memory to speak of.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Exact null distributions up to this many samples a side (and without ties).
EXACT_MAX = 50
# Sort the pairwise differences up to this many pairs; count them by bisection beyond.
MATERIALISE_MAX = 1_000_000


@dataclass(frozen=True)
class MannWhitney:
    """The test of ``canary`` against ``primary`` and the shift between them."""

    u: float  # pairs (primary, canary) with canary > primary, ties counted half
    p_value: float  # two-sided
    method: str  # "exact" or "normal"
    estimate: float  # Hodges-Lehmann: median of canary_j - primary_i
    ci_low: float
    ci_high: float
    confidence: float  # coverage the interval achieves (exact) or aims at (normal)


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


@lru_cache(maxsize=256)
def u_distribution(m: int, n: int) -> np.ndarray:
    """P(U = u) for u = 0..m*n under the null, for samples of m and n without ties.

    The recurrence of Mann and Whitney (1947): the largest of the m + n values belongs to the
    first sample with probability m / (m + n), and then adds n to U.
    """
    # table[j] holds the distribution for (i, j) as i grows row by row
    table = [np.ones(1)] + [np.ones(1) for _ in range(n)]
    for i in range(1, m + 1):
        row = [np.zeros(i * j + 1) for j in range(n + 1)]
        row[0] = np.zeros(1)
        row[0][0] = 1.0
        for j in range(1, n + 1):
            dist = np.zeros(i * j + 1)
            previous_i = table[j]  # (i - 1, j): the largest value is from the first sample
            dist[j : j + len(previous_i)] += i * previous_i
            previous_j = row[j - 1]  # (i, j - 1): the largest value is from the second
            dist[: len(previous_j)] += j * previous_j
            row[j] = dist / (i + j)
        table = row
    dist = table[n]
    dist.setflags(write=False)
    return dist


def _exact_quantile(cdf: np.ndarray, p: float) -> int:
    """Smallest u with P(U <= u) >= p (R's qwilcox)."""
    return int(np.searchsorted(cdf, p - 1e-12, side="left"))


def _ordered_key(value: float) -> int:
    """An integer that orders like the float (IEEE 754 bits, negatives flipped)."""
    bits: int = struct.unpack("<q", struct.pack("<d", value))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _from_key(key: int) -> float:
    bits = key if key >= 0 else (-key) | -0x8000_0000_0000_0000
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


def count_le(primary: np.ndarray, canary: np.ndarray, d: float) -> int:
    """How many pairs have ``canary_j - primary_i <= d`` (``primary`` sorted ascending).

    For a fixed j, ``canary_j - x`` is non-increasing in x in floating point too (rounding is
    monotone), so the pairs that qualify are a suffix of ``primary``. A binary search on
    ``x >= canary_j - d`` finds where each suffix starts up to rounding; the few values
    within rounding of that boundary are then judged by the subtraction itself.
    """
    m = len(primary)
    start = np.searchsorted(primary, canary - d, side="left")
    while True:  # values before the start that qualify after all
        back = (start > 0) & ((canary - primary[np.maximum(start - 1, 0)]) <= d)
        if not back.any():
            break
        start = np.where(back, start - 1, start)
    while True:  # values from the start on that do not
        ahead = (start < m) & ((canary - primary[np.minimum(start, m - 1)]) > d)
        if not ahead.any():
            break
        start = np.where(ahead, start + 1, start)
    return int((m - start).sum())


def kth_difference(primary: np.ndarray, canary: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of ``canary_j - primary_i`` over all pairs.

    ``primary`` must be sorted ascending. Bisection over the floats' ordered bit patterns
    takes at most 64 steps, each a count of pairs below a value.
    """
    total = len(primary) * len(canary)
    if not 1 <= k <= total:
        raise ValueError(f"k={k} outside 1..{total}")
    lo_value = float(canary.min() - primary[-1])
    hi_value = float(canary.max() - primary[0])
    lo, hi = _ordered_key(lo_value), _ordered_key(hi_value)
    if count_le(primary, canary, lo_value) >= k:
        return lo_value
    # invariant: count(lo) < k <= count(hi)
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if count_le(primary, canary, _from_key(mid)) >= k:
            hi = mid
        else:
            lo = mid
    return _from_key(hi)


def order_statistics(primary: np.ndarray, canary: np.ndarray, ks: list[int]) -> list[float]:
    """The k-th smallest (1-based) of ``canary_j - primary_i`` for each k (``primary``
    sorted ascending)."""
    if len(primary) * len(canary) <= MATERIALISE_MAX:
        differences = np.partition(
            (canary[:, None] - primary[None, :]).ravel(), [k - 1 for k in ks]
        )
        return [float(differences[k - 1]) for k in ks]
    return [kth_difference(primary, canary, k) for k in ks]


def _median_ks(total: int) -> list[int]:
    return [(total + 1) // 2] if total % 2 else [total // 2, total // 2 + 1]


def hodges_lehmann(primary: np.ndarray, canary: np.ndarray) -> float:
    """Median of every pairwise difference ``canary_j - primary_i``."""
    xs = np.sort(np.asarray(primary, dtype=np.float64))
    ys = np.asarray(canary, dtype=np.float64)
    middle = order_statistics(xs, ys, _median_ks(len(xs) * len(ys)))
    return sum(middle) / len(middle)


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid-ranks (1-based) and the sizes of tied groups."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    mid = first + (counts + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mid, counts)
    return ranks, counts


def mann_whitney(primary: np.ndarray, canary: np.ndarray, confidence: float) -> MannWhitney:
    """Mann-Whitney U of ``canary`` against ``primary``, two-sided, with the Hodges-Lehmann
    shift (canary minus primary) and its confidence interval at ``confidence``.

    Exact when both samples have at most ``EXACT_MAX`` values and no value repeats; the
    normal approximation with tie and continuity corrections otherwise.
    """
    x = np.asarray(primary, dtype=np.float64)
    y = np.asarray(canary, dtype=np.float64)
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError("both samples need at least one value")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("samples must be finite")
    ranks, ties = _ranks(np.concatenate([x, y]))
    u = float(ranks[m:].sum() - n * (n + 1) / 2)
    mn = m * n
    xs = np.sort(x)
    alpha = 1.0 - confidence
    exact = max(m, n) <= EXACT_MAX and bool((ties == 1).all())
    if exact:
        pmf = u_distribution(m, n)
        cdf = np.cumsum(pmf)
        u_int = int(round(u))
        p_low = cdf[u_int]
        p_high = 1.0 - (cdf[u_int - 1] if u_int > 0 else 0.0)
        p_value = min(1.0, 2.0 * min(p_low, p_high))
        # R's wilcox.test: the interval's ends are the c-th smallest and largest
        # differences; with too few samples for the confidence asked, the widest there is.
        c = max(_exact_quantile(cdf, alpha / 2), 1)
        method = "exact"
        coverage = float(max(0.0, 1.0 - 2.0 * cdf[c - 1]))
    else:
        total = m + n
        tie_term = float((ties**3 - ties).sum()) / (total * (total - 1))
        sigma = math.sqrt(mn / 12.0 * ((total + 1) - tie_term))
        if sigma == 0:  # every value equal
            p_value = 1.0
        else:
            z = (abs(u - mn / 2.0) - 0.5) / sigma
            from scipy.stats import norm

            p_value = float(min(1.0, 2.0 * norm.sf(max(z, 0.0))))
        c = int(round(mn / 2.0 - _z(confidence) * sigma))
        c = min(max(c, 1), (mn + 1) // 2)
        method = "normal"
        coverage = confidence
    middle = _median_ks(mn)
    low, high, *centre = order_statistics(xs, y, [c, mn - c + 1, *middle])
    return MannWhitney(
        u=u,
        p_value=float(p_value),
        method=method,
        estimate=sum(centre) / len(centre),
        ci_low=float(low),
        ci_high=float(high),
        confidence=float(coverage),
    )


def wilson(successes: int, trials: int, confidence: float) -> tuple[float, float, float]:
    """A proportion and Wilson's score interval (no continuity correction)."""
    if trials <= 0:
        return math.nan, math.nan, math.nan
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return p, max(0.0, centre - half), min(1.0, centre + half)


def newcombe(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float
) -> tuple[float, float, float]:
    """The difference of two independent proportions (a minus b) and Newcombe's hybrid score
    interval (his method 10, built from the two Wilson intervals)."""
    pa, la, ua = wilson(successes_a, trials_a, confidence)
    pb, lb, ub = wilson(successes_b, trials_b, confidence)
    if math.isnan(pa) or math.isnan(pb):
        return math.nan, math.nan, math.nan
    delta = pa - pb
    low = delta - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = delta + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return delta, low, high


def bootstrap_ratio(
    numerators: np.ndarray,
    denominators: np.ndarray,
    confidence: float,
    replicates: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """sum(numerators) / sum(denominators) with a percentile interval from a bootstrap that
    resamples clusters (requests): each replicate weighs every cluster by a Poisson(1) count.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    total = den.sum()
    if len(num) == 0 or total <= 0:
        return math.nan, math.nan, math.nan
    value = float(num.sum() / total)
    if replicates <= 0:
        return value, math.nan, math.nan
    rng = np.random.default_rng(seed)
    weights = rng.poisson(1.0, size=(replicates, len(num))).astype(np.float64)
    den_b = weights @ den
    keep = den_b > 0
    ratios = (weights @ num)[keep] / den_b[keep]
    if len(ratios) == 0:
        return value, math.nan, math.nan
    alpha = 1.0 - confidence
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return value, float(low), float(high)


def quantiles_ms(seconds: np.ndarray) -> dict[str, float | None]:
    """p50, p90, p99 and mean latency in milliseconds (None without samples)."""
    if len(seconds) == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.quantile(ms, [0.5, 0.9, 0.99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(ms.mean())}
