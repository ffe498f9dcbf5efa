"""Performance estimated from the model's own confidence, before labels arrive.

Confidence-based performance estimation (CBPE, as NannyML calls it): when a classifier's
probabilities are calibrated, a row predicted positive with probability ``p`` is a true
positive with probability ``p``. Every confusion count is then a sum of independent Bernoulli
variables, and accuracy, precision, recall, F1 and ROC AUC are functions of three such sums:

    TP = sum over predicted positives of y,   P = sum of y,   S = sum of y * rank(score)

(ROC AUC is the Mann-Whitney statistic ``(S - P(P+1)/2) / (P (n - P))`` with mid-ranks.)

The estimate is the metric of the expected counts (ROC AUC: the area under the expected ROC
curve, NannyML's definition). Its interval is where the *realised* metric of the window lies
when labels are drawn from the probabilities: a parametric bootstrap that draws the labels
(exactly, in chunks, while ``rows * replicates`` is moderate) or, for large windows, draws the
three sums from their exact mean and covariance (their normal limit). It does not include
the error of the calibration itself, nor any change in how features relate to the label
(concept drift), which no estimate without labels can see: compare with measured values once
labels arrive.

Probabilities are calibrated first on the labelled reference data by isotonic regression
(the pool-adjacent-violators algorithm, as scikit-learn's ``IsotonicRegression`` with
``out_of_bounds="clip"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
EXACT_DRAW_BUDGET = 20_000_000  # rows * replicates drawn label by label; beyond: normal limit
_CHUNK = 8192


@dataclass(frozen=True)
class Calibrator:
    """An isotonic map from scores to probabilities: knots and their fitted values."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (linear between knots, clipped outside them)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.x.size == 1:
            return np.full(s.shape, float(self.y[0]))
        return np.asarray(np.interp(s, self.x, self.y))


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Non-decreasing least-squares fit of 0/1 ``labels`` on ``scores`` (PAV)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.shape != y.shape or s.ndim != 1 or s.size == 0:
        raise ValueError("scores and labels must be 1-D arrays of the same, non-zero length")
    xs, inverse = np.unique(s, return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    means = np.bincount(inverse, weights=y) / weights
    # Pool adjacent violators over the distinct scores: blocks of (mean, weight, count).
    block_mean: list[float] = []
    block_weight: list[float] = []
    block_size: list[int] = []
    for mean, weight in zip(means.tolist(), weights.tolist(), strict=True):
        block_mean.append(mean)
        block_weight.append(weight)
        block_size.append(1)
        while len(block_mean) > 1 and block_mean[-2] >= block_mean[-1]:
            w = block_weight[-2] + block_weight[-1]
            m = (block_mean[-2] * block_weight[-2] + block_mean[-1] * block_weight[-1]) / w
            size = block_size[-2] + block_size[-1]
            del block_mean[-1], block_weight[-1], block_size[-1]
            block_mean[-1], block_weight[-1], block_size[-1] = m, w, size
    fitted = np.repeat(np.array(block_mean), np.array(block_size))
    return Calibrator(xs, fitted)


@dataclass(frozen=True)
class Estimated:
    """An estimated metric: the value and the interval of the realised metric."""

    value: float
    ci_low: float | None
    ci_high: float | None


def midranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank (as scipy.stats.rankdata)."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    mean_rank = (starts + ends + 1) / 2.0  # ranks start+1 .. end, averaged
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _binary_metrics(
    tp: np.ndarray, pos: np.ndarray, s: np.ndarray, n: int, npp: int
) -> dict[str, np.ndarray]:
    """Metrics of (possibly many) realisations of the three sums."""
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = n - pos
        return {
            "accuracy": (2 * tp + n - npp - pos) / n,
            "precision": tp / npp if npp else np.full_like(tp, np.nan),
            "recall": tp / pos,
            "f1": 2 * tp / (npp + pos),
            "roc_auc": (s - pos * (pos + 1) / 2) / (pos * neg),
        }


def expected_auc(proba: np.ndarray, scores: np.ndarray) -> float:
    """Area under the expected ROC curve: each row is ``p`` of a positive and ``1 - p`` of a
    negative; tied scores count half."""
    p = np.asarray(proba, dtype=np.float64)
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="mergesort")
    sp, ss = p[order], np.asarray(scores, dtype=np.float64)[order]
    q = 1.0 - sp
    group = np.cumsum(np.r_[True, ss[1:] != ss[:-1]]) - 1
    q_by_group = np.bincount(group, weights=q)
    below = np.r_[0.0, np.cumsum(q_by_group)[:-1]][group]  # negatives under each score
    tied = q_by_group[group] - q  # negatives at the same score, the row itself left out
    numerator = float(np.sum(sp * (below + 0.5 * tied)))
    positives, negatives = float(sp.sum()), float(q.sum())
    if positives <= 0 or negatives <= 0:
        return float("nan")
    return numerator / (positives * negatives)


def estimate_binary(
    proba: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray,
    metrics: Sequence[str] = BINARY_METRICS,
    *,
    replicates: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    exact_budget: int = EXACT_DRAW_BUDGET,
) -> dict[str, Estimated]:
    """CBPE of a binary classifier on one window.

    Args:
        proba: calibrated probability of the positive class per row.
        predicted: the predicted class per row (0 or 1).
        scores: the model's score per row (what ROC AUC ranks; usually the raw probability).
        metrics: which of accuracy, precision, recall, f1, roc_auc.
    """
    p = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    pred = np.asarray(predicted).astype(bool)
    n = p.size
    if n == 0:
        return {m: Estimated(float("nan"), None, None) for m in metrics}
    ranks = midranks(scores)
    npp = int(pred.sum())
    basis = np.stack([pred.astype(np.float64), np.ones(n), ranks], axis=1)  # TP, P, S
    mean = p @ basis
    sums = _binary_metrics(mean[0:1], mean[1:2], mean[2:3], n, npp)
    point = {k: float(v[0]) for k, v in sums.items()}
    point["roc_auc"] = expected_auc(p, scores)
    draws = _draw_sums(p, basis, replicates, seed, exact_budget)
    reps = _binary_metrics(draws[:, 0], draws[:, 1], draws[:, 2], n, npp)
    return {m: _interval(point[m], reps[m], confidence) for m in metrics}


def estimate_accuracy(
    correct_proba: np.ndarray,
    *,
    replicates: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    exact_budget: int = EXACT_DRAW_BUDGET,
) -> Estimated:
    """Expected accuracy from each row's probability of being right (any number of classes)."""
    c = np.clip(np.asarray(correct_proba, dtype=np.float64), 0.0, 1.0)
    n = c.size
    if n == 0:
        return Estimated(float("nan"), None, None)
    draws = _draw_sums(c, np.ones((n, 1)), replicates, seed, exact_budget)[:, 0] / n
    return _interval(float(c.mean()), draws, confidence)


def _draw_sums(
    p: np.ndarray, basis: np.ndarray, replicates: int, seed: int, exact_budget: int
) -> np.ndarray:
    """``replicates`` draws of ``y @ basis`` with ``y_i ~ Bernoulli(p_i)`` independent."""
    rng = np.random.default_rng(seed)
    n = p.size
    if n * replicates <= exact_budget:
        total = np.zeros((replicates, basis.shape[1]))
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            y = rng.random((replicates, stop - start)) < p[start:stop]
            total += y.astype(np.float64) @ basis[start:stop]
        return total
    # The normal limit with the exact mean and covariance of the sums.
    variance = p * (1.0 - p)
    mean = p @ basis
    cov = (basis * variance[:, None]).T @ basis
    return rng.multivariate_normal(mean, cov, size=replicates, method="eigh")


def _interval(value: float, replicates: np.ndarray, confidence: float) -> Estimated:
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(value) or finite.size < max(10, replicates.size // 2):
        return Estimated(value, None, None)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return Estimated(value, float(low), float(high))
