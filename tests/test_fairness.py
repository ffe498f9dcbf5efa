"""Fairness summaries: rates and disparities against fairlearn, a biased model caught."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from mlci.evaluate.bootstrap import BucketBootstrap
from mlci.evaluate.config import SensitiveFeature
from mlci.evaluate.fairness import feature_fairness, groups_of
from mlci.results.fairness import FeatureFairness

GROUPS = np.array(["a", "b", "c"], dtype=object)


def data(n: int, seed: int, bias: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group, label and a prediction that favours group 'a' by ``bias``."""
    rng = np.random.default_rng(seed)
    group = rng.choice(GROUPS, n, p=[0.5, 0.3, 0.2])
    y = (rng.random(n) < 0.4).astype(bool)
    score = 0.6 * y + rng.normal(0, 0.35, n) + bias * (group == "a")
    return group, y, score > 0.45


def summary(
    group: np.ndarray,
    y: np.ndarray,
    pred: np.ndarray,
    baseline: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    n_boot: int = 0,
) -> FeatureFairness:
    groups = groups_of(group, "categorical", SensitiveFeature(feature="g"))
    boot = BucketBootstrap(n_boot, seed=0) if n_boot else None
    return feature_fairness(
        "g",
        groups,
        y,
        pred,
        baseline,
        weight=weight,
        metrics=["selection_rate", "tpr", "fpr"],
        min_group_size=1,
        boot=boot,
        confidence=0.95,
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_rates_and_disparities_match_fairlearn(weighted: bool) -> None:
    group, y, pred = data(5000, 1, bias=0.2)
    weight = np.random.default_rng(9).uniform(0.2, 3.0, len(y)) if weighted else None
    ours = summary(group, y, pred, weight=weight)
    params = {"sample_weight": weight} if weighted else {}
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=group,
        sample_params=dict.fromkeys(("selection_rate", "tpr", "fpr"), params) if weighted else None,
    )
    for row in ours.groups:
        for rate in ("selection_rate", "tpr", "fpr"):
            assert row.candidate[rate].value == pytest.approx(frame.by_group.loc[row.group, rate])
    for rate in ("selection_rate", "tpr", "fpr"):
        d = ours.disparities[rate]
        assert d.difference.value == pytest.approx(frame.difference()[rate])
        assert d.ratio.value == pytest.approx(frame.ratio()[rate])
    kwargs = {"sensitive_features": group, "sample_weight": weight}
    dp, eo = ours.disparities["demographic_parity"], ours.disparities["equalized_odds"]
    assert dp.difference.value == pytest.approx(demographic_parity_difference(y, pred, **kwargs))
    assert dp.ratio.value == pytest.approx(demographic_parity_ratio(y, pred, **kwargs))
    assert eo.difference.value == pytest.approx(equalized_odds_difference(y, pred, **kwargs))
    assert eo.ratio.value == pytest.approx(equalized_odds_ratio(y, pred, **kwargs))


def test_a_biased_model_is_told_from_a_fair_baseline() -> None:
    group, y, biased = data(20_000, 2, bias=0.3)
    _, _, fair = data(20_000, 2, bias=0.0)
    out = summary(group, y, biased, baseline=fair, n_boot=300)
    dp = out.disparities["demographic_parity"]
    assert dp.difference.ci_low is not None and dp.difference.ci_low > 0.1
    assert dp.baseline_difference is not None and dp.baseline_difference.ci_high is not None
    assert dp.baseline_difference.ci_high < 0.05
    assert dp.difference_delta is not None and dp.difference_delta.ci_low is not None
    assert dp.difference_delta.ci_low > 0.05  # the candidate widened the gap
    assert dp.ratio.ci_high is not None and dp.ratio.ci_high < 0.8


def test_rate_intervals_cover_the_truth() -> None:
    # The selection rate of group 'c' (20% of rows, true rate p) over 200 simulated datasets;
    # 95% intervals, Monte Carlo error of the coverage about 1.5 points.
    covered = 0
    rng = np.random.default_rng(3)
    for k in range(200):
        n = 2000
        group = rng.choice(GROUPS, n, p=[0.5, 0.3, 0.2])
        pred = rng.random(n) < np.where(group == "c", 0.3, 0.5)
        y = rng.random(n) < 0.4
        groups = groups_of(group, "categorical", SensitiveFeature(feature="g"))
        out = feature_fairness(
            "g",
            groups,
            y,
            pred,
            None,
            weight=None,
            metrics=["selection_rate"],
            min_group_size=1,
            boot=BucketBootstrap(300, seed=k),
            confidence=0.95,
        )
        est = next(g for g in out.groups if g.group == "c").candidate["selection_rate"]
        assert est.ci_low is not None and est.ci_high is not None
        covered += est.ci_low <= 0.3 <= est.ci_high
    assert covered / 200 >= 0.90, covered


def test_bins_small_groups_and_missing_values() -> None:
    ages = np.array([20, 30, 40, 64.9, 65, 100, np.nan, 10] * 50)
    groups = groups_of(ages, "numeric", SensitiveFeature(feature="age", bins=[18, 35, 65, 100]))
    assert groups.names == ["[18, 35)", "[35, 65)", "[65, 100]"]
    assert groups.codes[:8].tolist() == [0, 0, 1, 1, 2, 2, -1, -1]
    region = np.array(["n", None, "s"] * 10, dtype=object)
    named = groups_of(region, "categorical", SensitiveFeature(feature="region"))
    assert named.names == ["n", "s", "(missing)"]
    y = np.arange(30) % 2 == 0
    out = feature_fairness(
        "region",
        named,
        y,
        y,
        None,
        weight=None,
        metrics=["selection_rate"],
        min_group_size=11,
        boot=None,
        confidence=0.95,
    )
    assert [g.status for g in out.groups] == ["too_small"] * 3
    assert out.disparities["selection_rate"].difference.value is None
