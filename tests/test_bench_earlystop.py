"""LoadGen's early-stopping rule checked against a direct binomial computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from mlci.bench import earlystop


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("t", [0, 1, 5, 40])
def test_pass_probability_is_the_binomial_cdf(p: float, t: int) -> None:
    for h in (1, 10, 100, 1000, 5000):
        direct = binom.cdf(t, h + t, 1 - p)
        assert earlystop.pass_probability(h, t, p) == pytest.approx(direct, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("p", [0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("c", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("t", [0, 1, 3, 17])
def test_min_passing_is_the_smallest_count_that_passes(p: float, c: float, t: int) -> None:
    h = earlystop.min_passing(t, p, c)
    assert binom.cdf(t, h + t, 1 - p) <= 1 - c
    assert binom.cdf(t, h - 1 + t, 1 - p) > 1 - c


def test_minimum_queries_match_the_closed_form_and_loadgen() -> None:
    for p, c in [(0.9, 0.99), (0.99, 0.99), (0.999, 0.99), (0.99, 0.95)]:
        expected = math.ceil(math.log(1 - c) / math.log(p))
        assert earlystop.min_queries(p, c) == expected
    assert earlystop.min_queries(0.99, 0.99) == 459
    assert earlystop.min_queries(0.999, 0.99) == 4603


def test_overlatency_allowed_matches_brute_force() -> None:
    p, c = 0.9, 0.99
    for n in (10, 44, 45, 64, 200, 2048):
        brute = None
        for t in range(n + 1):
            h = n - t
            if h >= 1 and binom.cdf(t, n, 1 - p) <= 1 - c:
                brute = t
        assert earlystop.overlatency_allowed(n, p, c) == brute


def test_estimate_is_an_upper_order_statistic() -> None:
    values = np.sort(np.random.default_rng(0).exponential(1.0, 2048))
    upper = earlystop.estimate(values, 0.9, 0.99)
    t = earlystop.overlatency_allowed(2048, 0.9, 0.99)
    assert t is not None and 0 < t < 2048 * 0.1
    assert upper == values[2048 - t - 1]
    assert upper >= np.quantile(values, 0.9, method="inverted_cdf")
    assert earlystop.estimate(values[:43], 0.9, 0.99) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        earlystop.min_passing(0, 1.0, 0.99)
    with pytest.raises(ValueError):
        earlystop.min_passing(-1, 0.9, 0.99)
