"""Data checks: statistics cross-checked with scipy and direct formulas, planted defects caught."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlci.testing import data_checks as D
from mlci.testing import perturb


def direct_psi(ref: np.ndarray, cur: np.ndarray, floor: float) -> float:
    total = 0.0
    for r_count, c_count in zip(ref, cur, strict=True):
        r = max(r_count / ref.sum(), floor)
        c = max(c_count / cur.sum(), floor)
        total += (c - r) * np.log(c / r)
    return total


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 500), min_size=2, max_size=12).flatmap(
        lambda ref: st.tuples(
            st.just(ref), st.lists(st.integers(0, 500), min_size=len(ref), max_size=len(ref))
        )
    )
)
def test_psi_matches_the_direct_formula(counts: tuple[list[int], list[int]]) -> None:
    ref, cur = (np.array(c, dtype=float) for c in counts)
    if ref.sum() == 0 or cur.sum() == 0:
        return
    assert D.psi_from_counts(ref, cur, 1e-4) == pytest.approx(direct_psi(ref, cur, 1e-4), abs=1e-12)
    assert D.psi_from_counts(ref, ref, 1e-4) == pytest.approx(0.0, abs=1e-12)
    assert D.psi_from_counts(ref, cur, 1e-4) >= -1e-12


def test_numeric_psi_uses_reference_quantile_bins() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 4000)
    cur = rng.normal(0.5, 1, 3000)
    drift = D.numeric_drift(ref, cur, bins=10, floor=1e-4)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    ref_counts = np.histogram(ref, bins=[-np.inf, *edges, np.inf])[0]
    cur_counts = np.histogram(cur, bins=[-np.inf, *edges, np.inf])[0]
    # np.histogram's bins are [a, b) like ours except that the reference's own quantile values
    # sit on an edge; with continuous data no value is exactly on an edge but the quantiles.
    assert drift.psi == pytest.approx(direct_psi(ref_counts, cur_counts, 1e-4), rel=2e-3)
    ks = stats.ks_2samp(ref, cur)
    assert drift.statistic == pytest.approx(ks.statistic)
    assert drift.p_value == pytest.approx(ks.pvalue)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_ks_matches_scipy(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, 300)
    cur = rng.normal(shift, 1, 200)
    out = D.check_drift("x", ref, cur, "numeric", wasserstein=None, psi=None, ks_pvalue=0.01)
    expected = stats.ks_2samp(ref, cur)
    assert out.details["statistic"] == pytest.approx(expected.statistic)
    assert out.details["p_value"] == pytest.approx(expected.pvalue)
    assert out.status == ("failed" if expected.pvalue < 0.01 else "passed")
    assert out.observed == pytest.approx(expected.pvalue) and out.threshold == 0.01


def test_chi_square_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    ref = rng.choice(np.array(["a", "b", "c"], dtype=object), 2000, p=[0.5, 0.3, 0.2])
    cur = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), 1500, p=[0.4, 0.3, 0.2, 0.1])
    drift = D.categorical_drift(ref, cur, 1e-4)
    table = np.array(
        [[np.sum(ref == c) for c in "abcd"], [np.sum(cur == c) for c in "abcd"]], dtype=float
    )
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert drift.statistic == pytest.approx(chi2)
    assert drift.p_value == pytest.approx(p)
    # Homogeneity as a goodness of fit against the pooled expectation gives the same statistic.
    expected = table.sum(axis=0) * table.sum(axis=1)[:, None] / table.sum()
    gof = stats.chisquare(table.ravel(), expected.ravel(), ddof=table.size - 1 - 3)
    assert drift.statistic == pytest.approx(gof.statistic)
    assert drift.psi == pytest.approx(direct_psi(table[0], table[1], 1e-4))


def test_a_shifted_feature_fails_drift_and_a_clean_one_passes() -> None:
    rng = np.random.default_rng(1)
    ref = rng.lognormal(10, 0.5, 5000)
    clean = rng.lognormal(10, 0.5, 5000)
    shifted = clean * 1.4
    ok = D.check_drift("income", ref, clean, "numeric")
    bad = D.check_drift("income", ref, shifted, "numeric")
    assert ok.status == "passed", ok.message
    assert bad.status == "failed"
    assert bad.observed > 0.1 and bad.threshold == 0.1
    assert bad.details["decision"] == "drift" and ok.details["decision"] == "no drift"
    assert bad.details["wasserstein"]["ci_low"] > 0.1
    assert "'income' drifted: normalised Wasserstein distance" in bad.message
    assert "PSI" in bad.message and "Kolmogorov-Smirnov p" in bad.message
    by_psi = D.check_drift("income", ref, shifted, "numeric", wasserstein=None)
    assert by_psi.observed > 0.2 and by_psi.threshold == 0.2
    assert (
        bad.details["examples"][0]["current_share"] != bad.details["examples"][0]["reference_share"]
    )


def test_a_new_category_fails_drift() -> None:
    rng = np.random.default_rng(2)
    ref = rng.choice(np.array(["north", "south"], dtype=object), 3000)
    cur = ref.copy()
    cur[:600] = "broker"
    bad = D.check_drift("channel", ref, cur, "categorical")
    assert bad.status == "failed"
    assert "chi-square p" in bad.message and "broker" in bad.message
    assert D.check_drift("channel", ref, ref.copy(), "categorical").status == "passed"


def test_missing_values_against_the_reference() -> None:
    ref = {
        "a": np.array([1.0, 2.0, np.nan, 4.0] * 25),
        "b": np.array(["x", None] * 50, dtype=object),
    }
    cur_a = np.array([1.0, 2.0, np.nan, 4.0] * 25)
    cur = {"a": cur_a, "b": np.array(["x", None] * 50, dtype=object)}
    assert D.check_missing(ref, cur, ["a", "b"]).status == "passed"
    worse = cur_a.copy()
    worse[:10] = np.nan
    out = D.check_missing(ref, {**cur, "a": worse}, ["a", "b"])
    assert out.status == "failed"
    assert "'a': 33.00% missing (reference 25.00%, limit 26.00%)" in out.message
    assert "first at data rows 1, 2, 3" in out.message
    assert out.observed == pytest.approx(0.33) and out.threshold == pytest.approx(0.26)
    fixed = D.check_missing(ref, cur, ["a"], max_share=0.1)
    assert fixed.status == "failed" and fixed.threshold == 0.1


def test_out_of_range_values_name_rows_and_values() -> None:
    ref = {"age": np.arange(18.0, 80.0), "region": np.array(["n", "s"] * 31, dtype=object)}
    cur_age = np.arange(18.0, 80.0)
    cur_age[[5, 9]] = [150.0, -3.0]
    cur_region = ref["region"].copy()
    cur_region[7] = "mars"
    kinds = {"age": "numeric", "region": "categorical"}
    out = D.check_range(
        ref, {"age": cur_age, "region": cur_region}, kinds, ["age", "region"], max_share=0.0
    )
    assert out.status == "failed"
    assert "worst 'age': 2 values (3.23%) outside [18, 79], e.g. 150 at data row 6" in out.message
    assert {"feature": "region", "row": 8, "value": "mars", "rows": 1} in out.details["examples"]
    assert out.details["count"] == 3
    clean = D.check_range(ref, ref, kinds, ["age", "region"])
    assert clean.status == "passed" and clean.details["count"] == 0
    widened = D.check_range(
        ref, {"age": cur_age, "region": ref["region"]}, kinds, ["age"], margin=2.0
    )
    assert widened.status == "passed"


def test_schema_lists_missing_and_changed_columns() -> None:
    ref = {"age": "numeric", "region": "categorical", "y": "numeric"}
    assert D.check_schema(ref, dict(ref)).status == "passed"
    out = D.check_schema(ref, {"age": "categorical", "y": "numeric", "extra": "numeric"})
    assert out.status == "failed"
    assert "1 column(s) of the reference missing: 'region'" in out.message
    assert "'age' numeric -> categorical" in out.message
    assert out.details["extra"] == ["extra"]
    strict = D.check_schema(ref, {**ref, "extra": "numeric"}, allow_extra=False)
    assert strict.status == "failed" and "'extra'" in strict.message


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=60), st.integers(0, 1000))
def test_shuffle_within_groups_only_moves_values_inside_their_group(
    groups: list[str], seed: int
) -> None:
    g = np.array(groups, dtype=object)
    values = np.arange(len(g))
    out = perturb.shuffle(values, np.random.default_rng(seed), g)
    assert sorted(out.tolist()) == values.tolist()
    for name in set(groups):
        assert sorted(out[g == name].tolist()) == values[g == name].tolist()
