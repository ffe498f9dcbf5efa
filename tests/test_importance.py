"""Permutation importance: agrees with scikit-learn's, and tells which model relies on what."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance as sklearn_importance
from sklearn.linear_model import LogisticRegression

from mlci.evaluate.alignment import align
from mlci.evaluate.evaluator import Evaluator
from mlci.evaluate.importance import Scorer, permutation_importance
from mlci.models.interface import Predictions
from mlci.models.sklearn import SklearnModel

FEATURES = ["strong", "weak", "noise"]


def data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({f: rng.normal(0, 1, n) for f in FEATURES})
    logit = 2.0 * x["strong"] + 0.5 * x["weak"]
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def importances(
    fitted: list[tuple[LogisticRegression, list[str]]],
    x: pd.DataFrame,
    y: np.ndarray,
    repeats: int,
    metric: str = "roc_auc",
    n_boot: int = 0,
) -> dict[str, Any]:
    columns = {f: x[f].to_numpy() for f in FEATURES}
    models = []
    for k, (estimator, reads) in enumerate(fitted):
        model = SklearnModel(estimator, name=f"m{k}")
        models.append((model, reads, model.predict({f: columns[f] for f in reads})))

    def convert(k: int, pred: Predictions) -> Any:
        return align("binary", y, [models[0][2], pred]).outputs[1]

    evaluator = Evaluator(
        "binary", align("binary", y, [models[0][2]]).y_true, metrics=[metric], n_boot=n_boot
    )
    ranked = permutation_importance(
        models,
        columns,
        convert,
        Scorer(evaluator, metric),
        FEATURES,
        repeats=repeats,
        seed=0,
        confidence=0.95,
    )
    return {f.feature: f for f in ranked}


def test_means_agree_with_scikit_learn() -> None:
    x, y = data(3000, 1)
    model = LogisticRegression().fit(x, y)
    ours = importances([(model, FEATURES)], x, y, repeats=40)
    theirs = sklearn_importance(model, x, y, scoring="roc_auc", n_repeats=40, random_state=0)
    for j, f in enumerate(FEATURES):
        mean, sd = theirs.importances_mean[j], theirs.importances_std[j]
        # Two independent means of 40 shuffles: within four standard errors of each other.
        tolerance = 4 * sd * np.sqrt(2 / 40) + 1e-4
        assert ours[f].candidate.value == pytest.approx(mean, abs=tolerance), f
    order = sorted(ours, key=lambda f: -ours[f].candidate.value)
    assert order == ["strong", "weak", "noise"]


def test_log_loss_importance_agrees_with_scikit_learn() -> None:
    x, y = data(2000, 2)
    model = LogisticRegression().fit(x, y)
    ours = importances([(model, FEATURES)], x, y, repeats=30, metric="log_loss")
    theirs = sklearn_importance(model, x, y, scoring="neg_log_loss", n_repeats=30, random_state=1)
    for j, f in enumerate(FEATURES):
        tolerance = 4 * theirs.importances_std[j] * np.sqrt(2 / 30) + 1e-4
        assert ours[f].candidate.value == pytest.approx(theirs.importances_mean[j], abs=tolerance)


def test_which_model_relies_more_on_what() -> None:
    x, y = data(4000, 3)
    candidate = LogisticRegression().fit(x, y)
    baseline = LogisticRegression().fit(x[["strong"]], y)
    ours = importances([(candidate, FEATURES), (baseline, ["strong"])], x, y, repeats=5, n_boot=300)
    weak = ours["weak"]
    assert weak.baseline.value == 0.0 and weak.baseline.ci_high == 0.0
    assert weak.candidate.ci_low > 0
    assert weak.reliance == "more"
    assert ours["noise"].reliance == "no detectable difference"
    assert (
        ours["strong"].candidate.ci_low
        < ours["strong"].candidate.value
        < ours["strong"].candidate.ci_high
    )
