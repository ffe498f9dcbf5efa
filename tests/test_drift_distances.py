"""Drift by effect size: distances against scipy, interval coverage, false alarms flat in n."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlci.testing import data_checks as D
from mlci.testing import drift

values = st.lists(st.integers(-20, 20).map(lambda v: v / 4), min_size=1, max_size=80)


@settings(max_examples=80, deadline=None)
@given(values, values)
def test_wasserstein_and_ks_match_scipy_with_ties(a: list[float], b: list[float]) -> None:
    u, v = np.sort(np.array(a)), np.sort(np.array(b))
    area, ks = drift.wasserstein_and_ks(u, v)
    assert area == pytest.approx(stats.wasserstein_distance(u, v), abs=1e-12)
    assert ks == pytest.approx(stats.ks_2samp(u, v).statistic, abs=1e-12)


def test_the_asymptotic_ks_p_value_is_scipys() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(0, 1, 30_000), rng.normal(0.02, 1, 20_000)
    out = D.numeric_drift(ref, cur, 10, 1e-4)
    expected = stats.ks_2samp(ref, cur)
    assert out.statistic == pytest.approx(expected.statistic)
    assert out.p_value == pytest.approx(expected.pvalue, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=10), st.integers(0, 10_000))
def test_jensen_shannon_matches_scipy(counts: list[int], seed: int) -> None:
    p = np.array(counts, dtype=float)
    q = np.random.default_rng(seed).integers(0, 50, len(p)).astype(float)
    if p.sum() == 0 or q.sum() == 0:
        return
    assert float(drift.jensen_shannon(p, q)) == pytest.approx(jensenshannon(p, q), abs=1e-9)


def test_the_normalised_wasserstein_distance_is_evidently_s_definition() -> None:
    # Evidently's wasserstein_distance_norm: scipy's distance over the reference's std.
    rng = np.random.default_rng(0)
    ref, cur = rng.lognormal(10, 0.5, 4000), rng.lognormal(10.1, 0.5, 3000)
    out = D.numeric_drift(ref, cur, 10, 1e-4, n_boot=100)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert out.distances["wasserstein"].value == pytest.approx(expected, rel=1e-12)
    low, high = out.distances["wasserstein"].ci_low, out.distances["wasserstein"].ci_high
    assert low is not None and high is not None and low <= expected <= high


def test_the_interval_covers_the_true_distance() -> None:
    # W1 between N(0, 1) and N(d, 1) is exactly d: a known truth to cover. 200 simulations;
    # the Monte Carlo error of a 95% coverage estimate is about 1.5 points.
    rng = np.random.default_rng(11)
    true = 0.15
    covered = 0
    runs = 200
    for k in range(runs):
        ref, cur = rng.normal(0, 1, 3000), rng.normal(true, 1, 3000)
        w = D.numeric_drift(ref, cur, 10, 1e-4, n_boot=200, seed=k).distances["wasserstein"]
        assert w.ci_low is not None and w.ci_high is not None
        # Normalised by the sample std, which is near 1.
        covered += w.ci_low <= true * 1 / np.std(ref) <= w.ci_high
    assert covered / runs >= 0.90, covered


@pytest.mark.parametrize("n", [2_000, 20_000, 200_000])
def test_a_negligible_change_never_drifts_and_a_real_one_always_does(n: int) -> None:
    # A change of 0.02 standard deviations: significant at 200,000 rows, irrelevant at any size.
    rng = np.random.default_rng(n)
    ref = rng.normal(0, 1, n)
    tiny = rng.normal(0.02, 1, n)
    shifted = rng.normal(0.3, 1, n)
    quiet = D.check_drift("x", ref, tiny, "numeric", bins=10)
    loud = D.check_drift("x", ref, shifted, "numeric", bins=10)
    assert quiet.status == "passed", quiet.message
    assert loud.status == "failed", loud.message
    by_p = D.check_drift("x", ref, tiny, "numeric", wasserstein=None, psi=None, ks_pvalue=0.01)
    if n == 200_000:
        # What p-values do with many rows: the same negligible change is "drift".
        assert by_p.status == "failed"


def test_point_evidence_and_straddling_intervals() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(0, 1, 400), rng.normal(0.1, 1, 400)
    on_interval = D.check_drift("x", ref, cur, "numeric", wasserstein=0.1, psi=None)
    on_point = D.check_drift("x", ref, cur, "numeric", wasserstein=0.1, psi=None, evidence="point")
    w = on_point.details["wasserstein"]
    # 400 rows cannot tell whether this change is above 0.1: the interval straddles it.
    assert w["ci_low"] < 0.1 < w["value"] < w["ci_high"]
    assert on_interval.status == "passed" and on_interval.details["decision"] == "inconclusive"
    assert "straddles 0.1" in on_interval.message
    assert on_point.status == "failed"


def test_categorical_drift_by_jensen_shannon() -> None:
    rng = np.random.default_rng(6)
    cats = np.array(["branch", "online", "broker"], dtype=object)
    ref = rng.choice(cats, 20_000, p=[0.45, 0.45, 0.10])
    same = rng.choice(cats, 20_000, p=[0.45, 0.45, 0.10])
    moved = rng.choice(cats, 20_000, p=[0.35, 0.35, 0.30])
    ok = D.check_drift("channel", ref, same, "categorical")
    bad = D.check_drift("channel", ref, moved, "categorical")
    assert ok.status == "passed" and bad.status == "failed"
    assert bad.details["distance"] == "jensen_shannon"
    shares = ([0.45, 0.45, 0.10], [0.35, 0.35, 0.30])
    assert bad.details["jensen_shannon"]["value"] == pytest.approx(jensenshannon(*shares), abs=0.01)
    assert "largest shift in broker" in bad.message


def test_missing_values_are_left_out_of_categories() -> None:
    ref = np.array(["a", "b", None] * 100, dtype=object)
    cur = np.array(["a", "b", float("nan")] * 100, dtype=object)
    out = D.check_drift("c", ref, cur, "categorical")
    assert out.status == "passed"
    assert [b["bin"] for b in out.details["bins"]] == ["a", "b"]
