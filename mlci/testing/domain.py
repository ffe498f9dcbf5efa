"""Multivariate drift: how well a classifier tells reference rows from evaluation rows.

Univariate distances miss a change in how features go together (a combination of values that
was rare and is now common, with every marginal share nearly unchanged). A domain classifier
sees it: trained to tell the two datasets apart, its cross-validated ROC AUC is 0.5 when they
cannot be told apart and approaches 1 as they separate. Roughly, an AUC of 0.5 + s/2 means a
share s of the evaluation rows lies where the reference has (almost) none.

The classifier is scikit-learn's histogram gradient boosting (native missing values and
categories) on at most ``max_rows`` rows of each dataset, with stratified k-fold
out-of-fold scores. The AUC's interval is DeLong's; the features that drive it are ranked by
permutation importance on the held-out folds (the drop in AUC when a feature is shuffled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlci.testing.encode import MISSING, categorical_codes
from mlci.testing.outcome import MAX_EXAMPLES, Outcome, fmt

# HistGradientBoosting takes at most 255 categories per feature (one bin is for missing).
MAX_CATEGORIES = 250


class MissingDependency(Exception):
    """scikit-learn, which the domain classifier needs, is not installed."""


@dataclass(frozen=True)
class Driver:
    feature: str
    auc_drop: float


@dataclass(frozen=True)
class DomainResult:
    auc: float
    ci_low: float
    ci_high: float
    reference_rows: int
    current_rows: int
    folds: int
    drivers: list[Driver] = field(default_factory=list)


def require_sklearn() -> None:
    """Raise MissingDependency unless scikit-learn can be imported."""
    try:
        import sklearn.ensemble  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(str(exc)) from None


def delong_auc(positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """ROC AUC of scores of positive against negative rows, and DeLong's variance of it.

    Midranks (ties count half) give the AUC and each row's placement value; the variance is
    that of the two sets of placements (DeLong, DeLong and Clarke-Pearson 1988; the fast
    form of Sun and Xu 2014).
    """
    from scipy.stats import rankdata

    m, n = len(positive), len(negative)
    if not m or not n:
        return float("nan"), float("nan")
    both = rankdata(np.concatenate([positive, negative]))
    t_pos = rankdata(positive)
    t_neg = rankdata(negative)
    auc = float((both[:m].sum() - m * (m + 1) / 2) / (m * n))
    v_pos = (both[:m] - t_pos) / n
    v_neg = 1.0 - (both[m:] - t_neg) / m
    var = float(np.var(v_pos, ddof=1) / m + np.var(v_neg, ddof=1) / n) if m > 1 and n > 1 else 0.0
    return auc, var


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


def design(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    features: Sequence[str],
    kinds: Mapping[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of both datasets as one float matrix, and which columns are categorical.

    Categorical features become codes of their most common categories (the rest share one
    code; missing stays missing); numeric ones stay as they are.
    """
    n_ref = len(reference[features[0]])
    columns = []
    categorical = []
    for f in features:
        if kinds.get(f) == "numeric":
            values = np.concatenate(
                [np.asarray(reference[f], dtype=np.float64), np.asarray(current[f], np.float64)]
            )
            categorical.append(False)
        else:
            (ref_c, cur_c), labels = categorical_codes(reference[f], current[f])
            codes = np.concatenate([ref_c, cur_c])
            counts = np.bincount(codes[codes >= 0], minlength=len(labels))
            kept = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
            remap = np.full(len(labels), len(kept), dtype=np.float64)
            remap[kept] = np.arange(len(kept))
            values = np.where(codes == MISSING, np.nan, remap[np.maximum(codes, 0)])
            categorical.append(True)
        columns.append(values)
    x = np.column_stack(columns) if columns else np.zeros((n_ref, 0))
    return x, np.array(categorical, dtype=bool)


def domain_classifier(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    features: Sequence[str],
    kinds: Mapping[str, str],
    *,
    max_rows: int = 50_000,
    folds: int = 3,
    confidence: float = 0.95,
    seed: int = 0,
    drivers: bool = True,
) -> DomainResult:
    """Cross-validated AUC of a classifier telling ``reference`` rows from ``current`` rows."""
    require_sklearn()
    from threadpoolctl import threadpool_limits

    # One thread: OpenMP's worker threads spin while they wait, and on a shared CI runner
    # that is busy with other jobs two threads took 30 times as long as one.
    with threadpool_limits(limits=1, user_api="openmp"):
        return _domain_classifier(
            reference,
            current,
            features,
            kinds,
            max_rows=max_rows,
            folds=folds,
            confidence=confidence,
            seed=seed,
            drivers=drivers,
        )


def _domain_classifier(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    features: Sequence[str],
    kinds: Mapping[str, str],
    *,
    max_rows: int,
    folds: int,
    confidence: float,
    seed: int,
    drivers: bool,
) -> DomainResult:
    from scipy.stats import norm
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng([seed, 31337])
    ref_rows = _sample(len(reference[features[0]]), max_rows, rng)
    cur_rows = _sample(len(current[features[0]]), max_rows, rng)
    x, categorical = design(
        {f: np.asarray(reference[f])[ref_rows] for f in features},
        {f: np.asarray(current[f])[cur_rows] for f in features},
        features,
        kinds,
    )
    y = np.concatenate([np.zeros(len(ref_rows)), np.ones(len(cur_rows))]).astype(np.int64)
    fold = np.empty(len(y), dtype=np.int64)
    for label in (0, 1):
        where = np.flatnonzero(y == label)
        fold[where] = rng.permutation(len(where)) % folds
    scores = np.empty(len(y))
    shuffled: dict[int, np.ndarray] = {j: np.empty(len(y)) for j in range(len(features))}
    for k in range(folds):
        test = fold == k
        model = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=31,
            early_stopping=False,
            categorical_features=categorical if categorical.any() else None,
            random_state=seed,
        )
        model.fit(x[~test], y[~test])
        held = x[test]
        scores[test] = model.predict_proba(held)[:, 1]
        if drivers:
            for j in range(len(features)):
                permuted = held.copy()
                permuted[:, j] = rng.permutation(permuted[:, j])
                shuffled[j][test] = model.predict_proba(permuted)[:, 1]
    auc, var = delong_auc(scores[y == 1], scores[y == 0])
    half = float(norm.ppf(0.5 + confidence / 2) * np.sqrt(max(var, 0.0)))
    ranked: list[Driver] = []
    if drivers:
        for j, f in enumerate(features):
            perm_auc, _ = delong_auc(shuffled[j][y == 1], shuffled[j][y == 0])
            ranked.append(Driver(f, auc - perm_auc))
        ranked.sort(key=lambda d: -d.auc_drop)
    return DomainResult(
        auc=auc,
        ci_low=max(0.0, auc - half),
        ci_high=min(1.0, auc + half),
        reference_rows=len(ref_rows),
        current_rows=len(cur_rows),
        folds=folds,
        drivers=ranked,
    )


def describe(result: DomainResult) -> dict[str, Any]:
    """The result as the details of a test result."""
    return {
        "auc": {"value": result.auc, "ci_low": result.ci_low, "ci_high": result.ci_high},
        "reference_rows": result.reference_rows,
        "current_rows": result.current_rows,
        "folds": result.folds,
        "drivers": [{"feature": d.feature, "auc_drop": d.auc_drop} for d in result.drivers],
    }


def check_multivariate_drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    features: Sequence[str],
    kinds: Mapping[str, str],
    *,
    max_auc: float = 0.55,
    max_rows: int = 50_000,
    folds: int = 3,
    evidence: str = "interval",
    confidence: float = 0.95,
    seed: int = 0,
) -> Outcome:
    """Fails when the domain classifier's AUC (its whole interval, with ``evidence:
    interval``) is above ``max_auc``."""
    result = domain_classifier(
        reference,
        current,
        features,
        kinds,
        max_rows=max_rows,
        folds=folds,
        confidence=confidence,
        seed=seed,
    )
    details = describe(result)
    top = [d for d in result.drivers if d.auc_drop > 0][:3]
    details["examples"] = [
        {"feature": d.feature, "auc_drop": d.auc_drop} for d in result.drivers[:MAX_EXAMPLES]
    ]
    details["count"] = sum(d.auc_drop > 0.005 for d in result.drivers)
    low, high = (result.auc, result.auc) if evidence == "point" else (result.ci_low, result.ci_high)
    shown = f"ROC AUC {result.auc:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}]"
    rows = f"{result.reference_rows:,} reference and {result.current_rows:,} evaluation rows"
    drivers = ", ".join(f"'{d.feature}' ({d.auc_drop:+.3f})" for d in top)
    if low > max_auc:
        return Outcome(
            "failed",
            f"a classifier tells evaluation rows from reference rows: {shown} > "
            f"{fmt(max_auc)} ({rows}, {result.folds}-fold); drifted most: {drivers or 'n/a'} "
            "(drop in AUC when shuffled)",
            result.auc,
            max_auc,
            details,
        )
    lead = (
        "the evaluation rows may differ jointly from the reference, but not beyond the limit on "
        "this evidence"
        if high > max_auc
        else "a classifier cannot tell evaluation rows from reference rows"
    )
    return Outcome(
        "passed",
        f"{lead}: {shown}, limit {fmt(max_auc)} ({rows}, {result.folds}-fold)"
        + (f"; most telling: {drivers}" if drivers else ""),
        result.auc,
        max_auc,
        details,
    )
