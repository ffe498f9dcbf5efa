"""The canary judge's statistics against scipy, statsmodels, brute force and simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from mlci.canary.stats import (
    EXACT_MAX,
    bootstrap_ratio,
    hodges_lehmann,
    kth_difference,
    mann_whitney,
    newcombe,
    u_distribution,
    wilson,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=25)


def enumerated(m: int, n: int) -> np.ndarray:
    """P(U = u) by listing every way to rank m + n distinct values."""
    counts = np.zeros(m * n + 1)
    for first in itertools.combinations(range(m + n), m):
        chosen = set(first)
        u = sum(1 for a in chosen for b in range(m + n) if b not in chosen and b > a)
        counts[u] += 1
    return counts / counts.sum()


@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 4), (3, 3), (4, 6), (5, 2), (6, 6)])
def test_exact_distribution_matches_enumeration(m: int, n: int) -> None:
    np.testing.assert_allclose(u_distribution(m, n), enumerated(m, n), rtol=1e-12, atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(samples, samples, st.randoms())
def test_u_and_p_value_match_scipy(x: list[float], y: list[float], rnd: object) -> None:
    result = mann_whitney(np.array(x), np.array(y), 0.95)
    distinct = len(set(x + y)) == len(x) + len(y)
    exact = distinct and max(len(x), len(y)) <= EXACT_MAX
    method = "exact" if exact else "asymptotic"
    reference = mannwhitneyu(y, x, method=method, use_continuity=True)
    assert result.method == ("exact" if exact else "normal")
    assert result.u == pytest.approx(reference.statistic)
    if math.isnan(reference.pvalue):  # every value equal: scipy gives NaN, no evidence at all
        assert result.p_value == 1.0
    else:
        assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-12)


def test_large_samples_use_the_normal_approximation_like_scipy() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=300), rng.normal(0.2, 1, size=200)
    result = mann_whitney(x, y, 0.95)
    reference = mannwhitneyu(y, x, method="asymptotic")
    assert result.method == "normal"
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_hodges_lehmann_and_order_statistics_match_brute_force(
    x: list[float], y: list[float]
) -> None:
    differences = np.sort(np.subtract.outer(np.array(y), np.array(x)).ravel())
    assert hodges_lehmann(np.array(x), np.array(y)) == np.median(differences)
    xs = np.sort(np.array(x))
    for k in {1, len(differences), (len(differences) + 1) // 2, min(3, len(differences))}:
        assert kth_difference(xs, np.array(y), k) == differences[k - 1]


def test_order_statistics_on_ten_thousand_values_a_side_without_materialising() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.lognormal(size=10_000), rng.lognormal(size=10_000)
    # a 10,000 x 10,000 table of differences would take 800 MB; check against a subsample's
    # exact count instead: the k-th value has exactly k - 1 differences strictly below it
    # (no ties among lognormal differences)
    xs = np.sort(x)
    k = 37_000_000
    value = kth_difference(xs, y, k)
    below = sum(int(np.sum(y[j] - xs < value)) for j in range(len(y)))
    assert below == k - 1


def r_style_interval(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float]:
    """R's wilcox.test(conf.int = TRUE) from the enumerated distribution."""
    cdf = np.cumsum(enumerated(len(x), len(y)))
    qu = int(np.searchsorted(cdf, (1 - confidence) / 2 - 1e-12))
    qu = max(qu, 1)
    differences = np.sort(np.subtract.outer(y, x).ravel())
    return differences[qu - 1], differences[len(differences) - qu]


@pytest.mark.parametrize("seed", range(5))
def test_exact_interval_is_rs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=6), rng.normal(0.5, 1, size=7)
    result = mann_whitney(x, y, 0.9)
    assert (result.ci_low, result.ci_high) == r_style_interval(x, y, 0.9)


def coverage(m: int, n: int, runs: int, confidence: float, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    shift = 0.7
    hits = 0
    achieved = 0.0
    for _ in range(runs):
        x = rng.standard_t(4, size=m)
        y = rng.standard_t(4, size=n) + shift
        result = mann_whitney(x, y, confidence)
        hits += result.ci_low <= shift <= result.ci_high
        achieved = result.confidence
    return hits / runs, achieved


def test_exact_interval_covers_the_shift_as_often_as_it_says() -> None:
    runs = 2000
    rate, achieved = coverage(8, 10, runs, 0.95, seed=6)
    se = math.sqrt(achieved * (1 - achieved) / runs)
    assert achieved >= 0.95
    assert abs(rate - achieved) < 4 * se, (rate, achieved, se)


def test_normal_interval_covers_the_shift_at_its_level() -> None:
    runs = 600
    rate, achieved = coverage(120, 150, runs, 0.95, seed=7)
    se = math.sqrt(0.95 * 0.05 / runs)
    assert achieved == 0.95
    assert abs(rate - 0.95) < 4 * se, rate


def test_false_positive_rate_under_the_null_is_at_most_alpha() -> None:
    rng = np.random.default_rng(8)
    runs = 3000
    rejections = sum(
        mann_whitney(rng.normal(size=10), rng.normal(size=10), 0.95).p_value < 0.05
        for _ in range(runs)
    )
    rate = rejections / runs
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), rate


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.integers(1, 500), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_matches_statsmodels(successes: int, extra: int, confidence: float) -> None:
    from statsmodels.stats.proportion import proportion_confint

    trials = successes + extra - 1 if successes + extra - 1 >= successes else successes
    trials = max(trials, 1)
    successes = min(successes, trials)
    p, low, high = wilson(successes, trials, confidence)
    ref_low, ref_high = proportion_confint(successes, trials, 1 - confidence, method="wilson")
    assert p == successes / trials
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(1, 300), st.integers(0, 300), st.integers(1, 300))
def test_newcombe_matches_statsmodels(a: int, na: int, b: int, nb: int) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    na, nb = max(na, a, 1), max(nb, b, 1)
    delta, low, high = newcombe(a, na, b, nb, 0.95)
    ref_low, ref_high = confint_proportions_2indep(
        a, na, b, nb, method="newcomb", compare="diff", alpha=0.05
    )
    assert delta == pytest.approx(a / na - b / nb)
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)


def test_cluster_bootstrap_covers_the_ratio() -> None:
    rng = np.random.default_rng(9)
    runs, hits = 300, 0
    for i in range(runs):
        rows = rng.integers(1, 5, size=400).astype(float)
        sums = rng.gamma(2.0, 0.05, size=400) * rows  # true ratio 0.1
        value, low, high = bootstrap_ratio(sums, rows, 0.95, replicates=400, seed=i)
        assert value == pytest.approx(sums.sum() / rows.sum())
        hits += low <= 0.1 <= high
    assert abs(hits / runs - 0.95) < 4 * math.sqrt(0.95 * 0.05 / runs), hits / runs


def test_degenerate_inputs() -> None:
    with pytest.raises(ValueError):
        mann_whitney(np.array([]), np.array([1.0]), 0.95)
    with pytest.raises(ValueError):
        mann_whitney(np.array([np.nan]), np.array([1.0]), 0.95)
    same = mann_whitney(np.zeros(30), np.zeros(30), 0.95)
    assert same.p_value == 1.0 and same.estimate == 0 and same.ci_low == same.ci_high == 0
    assert all(math.isnan(v) for v in wilson(0, 0, 0.95))
