"""Multivariate drift: DeLong's AUC and variance, a joint shift found, clean data passing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from mlci.testing.domain import check_multivariate_drift, delong_auc

scores = st.lists(st.integers(0, 6).map(float), min_size=2, max_size=40)


@settings(max_examples=80, deadline=None)
@given(scores, scores)
def test_delong_auc_is_sklearns_auc(pos: list[float], neg: list[float]) -> None:
    auc, var = delong_auc(np.array(pos), np.array(neg))
    truth = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    assert auc == pytest.approx(roc_auc_score(truth, np.r_[pos, neg]), abs=1e-12)
    assert var >= 0


def test_delong_variance_matches_the_sampling_variance() -> None:
    # Simulated: the spread of the AUC over 400 fresh samples against DeLong's estimate from
    # one. The relative Monte Carlo error of a variance from 400 draws is about 7%.
    rng = np.random.default_rng(2)
    aucs, variances = [], []
    for _ in range(400):
        pos, neg = rng.normal(0.5, 1, 300), rng.normal(0, 1, 500)
        auc, var = delong_auc(pos, neg)
        aucs.append(auc)
        variances.append(var)
    assert np.mean(variances) == pytest.approx(np.var(aucs, ddof=1), rel=0.2)


def paired(n: int, seed: int, agree: float | None) -> dict[str, np.ndarray]:
    """Two categorical features with 50/50 marginals; ``agree`` sets how often they match."""
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array(["x", "y"], dtype=object), n)
    if agree is None:
        b = rng.choice(np.array(["u", "v"], dtype=object), n)
    else:
        same = rng.random(n) < agree
        b = np.where(same == (a == "x"), "u", "v").astype(object)
    return {"a": a, "b": b, "z": rng.normal(0, 1, n)}


KINDS = {"a": "categorical", "b": "categorical", "z": "numeric"}


def test_a_joint_shift_with_unchanged_marginals_is_found() -> None:
    ref, cur = paired(4000, 1, None), paired(4000, 2, 0.85)
    # Every marginal is unchanged: no univariate check could see this.
    for f in ("a", "b"):
        assert abs(np.mean(ref[f] == ref[f][0]) - np.mean(cur[f] == ref[f][0])) < 0.05
    out = check_multivariate_drift(ref, cur, ["a", "b", "z"], KINDS, max_rows=3000)
    assert out.status == "failed", out.message
    drivers = [d["feature"] for d in out.details["drivers"]]
    assert set(drivers[:2]) == {"a", "b"}
    assert out.details["auc"]["ci_low"] > 0.55
    assert out.details["reference_rows"] == out.details["current_rows"] == 3000


def test_the_same_distribution_passes() -> None:
    out = check_multivariate_drift(
        paired(4000, 1, None), paired(4000, 2, None), ["a", "b", "z"], KINDS, max_rows=3000
    )
    assert out.status == "passed", out.message
    assert out.details["auc"]["ci_low"] < 0.5 + 0.05
    assert "cannot tell" in out.message
