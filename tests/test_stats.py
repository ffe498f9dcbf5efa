"""McNemar's exact test, Benjamini-Hochberg and bootstrap p-values against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.stats import norm

from mlci.evaluate.evaluator import Evaluator, Outputs
from mlci.evaluate.stats import P_FLOOR, benjamini_hochberg, mcnemar_exact, normal_p_value


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


def test_normal_p_value_matches_the_z_test_on_the_bootstrap_standard_error() -> None:
    rng = np.random.default_rng(0)
    deltas = rng.normal(0.0, 0.02, 1000)
    se = float(np.std(deltas, ddof=1))
    for delta in (0.0, 0.01, -0.03, 0.2):
        expected = 2 * norm.sf(abs(delta) / se)
        assert normal_p_value(delta, deltas) == pytest.approx(max(expected, P_FLOOR), rel=1e-12)
    # NaN replicates (undefined on a resample) are ignored.
    with_nan = np.concatenate([deltas, [np.nan] * 50])
    assert normal_p_value(0.01, with_nan) == normal_p_value(0.01, deltas)
    assert normal_p_value(0.0, np.zeros(999)) == 1.0
    assert normal_p_value(0.3, np.full(999, 0.3)) == P_FLOOR
    assert normal_p_value(0.1, np.array([np.nan, np.nan])) is None
    assert normal_p_value(float("nan"), deltas) is None


def test_p_values_are_not_floored_by_the_number_of_replicates() -> None:
    # The replicate-counting p-value could never go below 2 / (B + 1) ~ 0.002 for B = 999,
    # so with 60 slices Benjamini-Hochberg (which needs p <= q / m ~ 0.0008 for the top
    # slice) could not flag even a clearly worse one. An interval of [-0.27, -0.16] around
    # -0.2 has a standard error of about 0.028: p ~ 1e-12.
    deltas = np.random.default_rng(1).normal(-0.2, 0.028, 999)
    p = normal_p_value(-0.2, deltas)
    assert p is not None and p < 1e-9
    _, rejected = benjamini_hochberg([p / 2] + [0.5] * 199, 0.05)
    assert rejected[0]


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
