"""McNemar's exact test, Benjamini-Hochberg and bootstrap p-values against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mlci.evaluate.evaluator import Evaluator, Outputs
from mlci.evaluate.stats import benjamini_hochberg, bootstrap_p_value, mcnemar_exact


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    got = mcnemar_exact(b, c)
    if b + c == 0:
        assert got == 1.0
    else:
        want = sps.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert got == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert got == mcnemar_exact(c, b)


def test_mcnemar_on_large_counts() -> None:
    want = sps.binomtest(50_000, 101_000, 0.5).pvalue
    assert mcnemar_exact(50_000, 51_000) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_evaluator_mcnemar_counts_discordant_rows() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 3, n)
    cand = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
    base = np.where(rng.random(n) < 0.7, y, (y + 2) % 3)
    ev = Evaluator("multiclass", y, metrics=["accuracy"], n_boot=0, weight=rng.uniform(0.1, 2, n))
    mask = rng.random(n) < 0.5
    result = ev.mcnemar(Outputs(labels=cand), Outputs(labels=base), rows=mask)
    c_right, b_right = cand[mask] == y[mask], base[mask] == y[mask]
    assert result.candidate_only == int(np.sum(c_right & ~b_right))
    assert result.baseline_only == int(np.sum(b_right & ~c_right))
    want = sps.binomtest(result.candidate_only, result.candidate_only + result.baseline_only)
    assert result.p_value == pytest.approx(want.pvalue, rel=1e-9)
    same = ev.mcnemar(Outputs(labels=cand), Outputs(labels=cand))
    assert (same.candidate_only, same.baseline_only, same.p_value) == (0, 0, 1.0)
    reg = Evaluator("regression", y.astype(float), metrics=["mae"], n_boot=0)
    with pytest.raises(ValueError):
        reg.mcnemar(Outputs(values=y.astype(float)), Outputs(values=y.astype(float)))


pvalue_lists = st.lists(
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.01, 0.05, 1.0])),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(pvalue_lists, st.sampled_from([0.01, 0.05, 0.1, 0.25]))
def test_benjamini_hochberg_matches_scipy(pvalues: list[float], q: float) -> None:
    adjusted, rejected = benjamini_hochberg(pvalues, q)
    want = sps.false_discovery_control(np.array(pvalues), method="bh")
    np.testing.assert_allclose(adjusted, want, rtol=1e-12, atol=1e-15)
    # Same decisions as "adjusted <= q", up to rounding of p-values exactly on the boundary.
    assert np.all(rejected <= (adjusted <= q * (1 + 1e-12)))
    assert np.all((adjusted <= q * (1 - 1e-12)) <= rejected)
    # The step-up rule itself: reject the k smallest, k the largest i with p_(i) <= i q / m.
    p = np.sort(pvalues)
    m = len(p)
    passing = np.flatnonzero(p <= np.arange(1, m + 1) * q / m)
    n_rejected = passing[-1] + 1 if len(passing) else 0
    assert int(rejected.sum()) == n_rejected


def test_benjamini_hochberg_ignores_missing_p_values() -> None:
    adjusted, rejected = benjamini_hochberg([0.01, np.nan, 0.04, 0.03], 0.05)
    want = sps.false_discovery_control([0.01, 0.04, 0.03])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], want)
    assert np.isnan(adjusted[1]) and not rejected[1]
    assert rejected[[0, 2, 3]].all()
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5, 1.2])
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5], q=0.0)
    empty_adjusted, empty_rejected = benjamini_hochberg([], 0.05)
    assert empty_adjusted.shape == empty_rejected.shape == (0,)


def test_bootstrap_p_value() -> None:
    b = 999
    assert bootstrap_p_value(np.full(b, 0.3)) == pytest.approx(2 / (b + 1))
    assert bootstrap_p_value(np.full(b, -0.3)) == pytest.approx(2 / (b + 1))
    assert bootstrap_p_value(np.zeros(b)) == 1.0
    assert bootstrap_p_value(np.array([np.nan, np.nan])) is None
    # 10% of replicates at or below 0: p = 2 * (1 + 100) / (1 + 1000).
    deltas = np.concatenate([np.full(100, -1.0), np.full(900, 1.0)])
    assert bootstrap_p_value(deltas) == pytest.approx(2 * 101 / 1001)
    with_nan = np.concatenate([deltas, [np.nan] * 50])
    assert bootstrap_p_value(with_nan) == bootstrap_p_value(deltas)
    symmetric = np.random.default_rng(0).standard_normal(10_000)
    assert bootstrap_p_value(symmetric) > 0.9


def test_compare_p_values_are_uniform_under_the_null() -> None:
    # Two equally good, independent models: the bootstrap p-value of their accuracy delta
    # should reject at 5% about 5% of the time (generously bounded: 100 datasets).
    rejections = 0
    for i in range(100):
        rng = np.random.default_rng(i)
        y = rng.integers(0, 2, 300)
        a = np.where(rng.random(300) < 0.75, y, 1 - y)
        b = np.where(rng.random(300) < 0.75, y, 1 - y)
        ev = Evaluator("binary", y, metrics=["accuracy"], n_boot=300, seed=i)
        p = ev.compare(Outputs(labels=a), Outputs(labels=b))["accuracy"].p_value
        assert p is not None and 0.0 < p <= 1.0
        rejections += p < 0.05
    assert rejections <= 12
