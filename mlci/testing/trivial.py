"""The trivial-model check: is the candidate better than knowing nothing?

A candidate compared only with its baseline can pass while both are broken (a preprocessing
bug shared by both, a label that leaked away). The trivial model needs no features: it
predicts the majority class with the class shares as probabilities (classifiers), or the
mean (regressors), taken from the reference data when there is one. The candidate must beat
it, on the same rows with a paired bootstrap interval, by more than a margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlci.evaluate.evaluator import Estimate, Evaluator, Outputs
from mlci.evaluate.metrics import METRICS
from mlci.models.interface import Task
from mlci.testing.outcome import Outcome, fmt


def trivial_outputs(
    task: Task, n_rows: int, n_classes: int | None, prior: np.ndarray, weight: np.ndarray | None
) -> tuple[Outputs, str]:
    """The trivial model's outputs on ``n_rows`` rows, and what it predicts in words.

    ``prior`` holds the labels it learns from: class indices, or values for regression.
    """
    if task == "regression":
        mean = float(np.average(prior, weights=weight))
        return Outputs(values=np.full(n_rows, mean)), f"always {fmt(mean)} (the mean)"
    assert n_classes is not None
    shares = np.bincount(prior, weights=weight, minlength=n_classes).astype(np.float64)
    shares /= shares.sum()
    majority = int(np.argmax(shares))
    return (
        Outputs(
            labels=np.full(n_rows, majority, dtype=np.int64),
            proba=np.tile(shares, (n_rows, 1)),
        ),
        f"always the majority class with the class shares as probabilities ({shares[majority]:.1%})",
    )


def check_trivial_model(
    task: Task,
    y_true: np.ndarray,
    candidate: Outputs,
    baseline: Outputs | None,
    trivial: Outputs,
    trivial_name: str,
    *,
    metric: str,
    n_classes: int | None,
    weight: np.ndarray | None = None,
    margin: float = 0.0,
    evidence: str = "interval",
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Outcome:
    """Passes when the candidate beats the trivial model by more than ``margin`` on ``metric``
    (its whole paired interval, with ``evidence: interval``)."""
    evaluator = Evaluator(
        task,
        y_true,
        metrics=[metric],
        n_classes=n_classes,
        weight=weight,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    higher = METRICS[metric].higher_is_better
    sign = 1.0 if higher else -1.0
    both = evaluator.compare_both(candidate, trivial)
    delta = both.delta[metric]
    cand, triv = both.candidate[metric].value, both.baseline[metric].value
    details: dict[str, Any] = {
        "examples": [],
        "count": 0,
        "metric": metric,
        "trivial_model": trivial_name,
        "candidate": cand,
        "trivial": triv,
        "delta": _estimate(delta),
        "margin": margin,
    }
    base_note = ""
    if baseline is not None:
        base = evaluator.compare_both(baseline, trivial).delta[metric]
        details["baseline_delta"] = _estimate(base)
        details["baseline"] = base.value + triv
        if _low(base, sign, evidence) <= margin:
            base_note = (
                f"; the baseline is not shown better than the trivial model either ({_shown(base)})"
            )
    low = _low(delta, sign, evidence)
    gain = sign * delta.value
    if not np.isfinite(gain):
        return Outcome(
            "error", f"{metric} is undefined for the candidate or the trivial model", None, margin
        )
    text = (
        f"{metric} {fmt(cand)} against {fmt(triv)} for the trivial model ({trivial_name}): "
        f"{_shown(delta)}"
    )
    if low > margin:
        return Outcome(
            "passed",
            f"the candidate beats the trivial model by more than {fmt(margin)}: {text}{base_note}",
            gain,
            margin,
            details,
        )
    ends = [delta.value] if delta.ci_low is None else [delta.ci_low, delta.ci_high or delta.value]
    why = "is worse than" if max(sign * e for e in ends) < 0 else "is not shown better than"
    return Outcome(
        "failed",
        f"the candidate {why} the trivial model by more than {fmt(margin)}: {text}{base_note}",
        gain,
        margin,
        details,
    )


def _low(delta: Estimate, sign: float, evidence: str) -> float:
    """The end of the delta's interval least favourable to the model, oriented (higher: better)."""
    if evidence == "point" or delta.ci_low is None or delta.ci_high is None:
        return sign * delta.value
    return min(sign * delta.ci_low, sign * delta.ci_high)


def _shown(delta: Estimate) -> str:
    text = f"{delta.value:+.4g}"
    if delta.ci_low is not None and delta.ci_high is not None:
        text += f" [{delta.ci_low:+.4g}, {delta.ci_high:+.4g}]"
    return text


def _estimate(e: Estimate) -> dict[str, float | None]:
    return {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value}
