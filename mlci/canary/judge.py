"""The judge: every metric classified from its samples, a score, and one decision.

Pure: samples and settings in, judgements and a decision out.

Per metric (as Kayenta's judge does): a two-sided Mann-Whitney U test of the canary's samples
against the primary's at the configured confidence, and the Hodges-Lehmann shift with its
interval. The metric is **high** (or **low**) when the test is significant and the shift
exceeds the tolerance (the larger of a fraction of the primary's median and an absolute
amount) in that direction, else **pass**; **nodata** when a side has no samples. It is
**harmful** when that direction is the one configured as bad. "pass" means no evidence of
harm beyond the tolerance, not proof of safety: how large a harm a canary of a given length
catches is measured in benchmarks/bench_canary.py.

The score is 100 times the weight of metrics that are not harmful over the weight of metrics
with data. The decision: **rollback** when a critical metric is harmful, the shadow replay
shows more errors or different predictions, or the score is below the marginal score;
**hold** when the score is below the passing score, a critical metric has no data, or the
shadow replay cannot tell; **promote** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlci.canary.stats import mann_whitney
from mlci.results.base import Estimate
from mlci.results.canary import (
    BadDirection,
    CanaryDecision,
    Classification,
    MetricJudgement,
    Samples,
    Shadow,
)


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is judged."""

    name: str
    source: str  # "live" or "shadow"
    bad: BadDirection = "increase"
    tolerance: float = 0.1
    tolerance_abs: float = 0.0
    weight: float = 1.0
    critical: bool = False
    unit: str = ""
    query: str | None = None


def _finite(values: Sequence[float | None]) -> np.ndarray:
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return array[np.isfinite(array)]


def summarise(values: Sequence[float | None], keep: bool) -> Samples:
    """Count, median, mean and range of one side's samples (and the samples when kept)."""
    finite = _finite(values)
    if len(finite) == 0:
        return Samples(n=0, values=list(values) if keep else [])
    return Samples(
        n=len(finite),
        median=float(np.median(finite)),
        mean=float(finite.mean()),
        min=float(finite.min()),
        max=float(finite.max()),
        values=[float(v) if v is not None else None for v in values] if keep else [],
    )


def show(value: float | None, unit: str) -> str:
    """A value in its unit, compactly: seconds as ms below one second, ratios as percent."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    if unit == "ratio":
        return f"{value:.2%}"
    return f"{value:.4g}{' ' + unit if unit else ''}"


def show_signed(value: float | None, unit: str) -> str:
    """A change in its unit, with its sign."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return ("+" if value >= 0 else "-") + show(abs(value), unit)


def allowed_shift(spec: MetricSpec, primary_median: float) -> float:
    """The change the tolerance allows: the larger of its relative and absolute parts."""
    return max(spec.tolerance * abs(primary_median), spec.tolerance_abs)


def classify(estimate: float, p_value: float, allowed: float, confidence: float) -> Classification:
    """high or low: significant and beyond the allowed change; pass otherwise."""
    if p_value >= 1.0 - confidence:
        return "pass"
    if estimate > 0 and estimate > allowed:
        return "high"
    if estimate < 0 and -estimate > allowed:
        return "low"
    return "pass"


def is_harmful(bad: BadDirection, classification: Classification) -> bool:
    return (classification == "high" and bad in ("increase", "either")) or (
        classification == "low" and bad in ("decrease", "either")
    )


def judge_metric(
    spec: MetricSpec,
    primary: Sequence[float | None],
    canary: Sequence[float | None],
    confidence: float,
    *,
    keep_samples: bool = True,
) -> MetricJudgement:
    """One metric's judgement from both sides' samples (non-finite samples are no data)."""
    x, y = _finite(primary), _finite(canary)
    common = {
        "name": spec.name,
        "source": spec.source,
        "query": spec.query,
        "unit": spec.unit,
        "bad": spec.bad,
        "tolerance": spec.tolerance,
        "tolerance_abs": spec.tolerance_abs,
        "weight": spec.weight,
        "critical": spec.critical,
        "primary": summarise(primary, keep_samples),
        "canary": summarise(canary, keep_samples),
    }
    if len(x) == 0 or len(y) == 0:
        empty = "the primary" if len(x) == 0 else "the canary"
        return MetricJudgement(
            **common,
            allowed=None,
            effect=Estimate(value=None, ci_low=None, ci_high=None),
            classification="nodata",
            harmful=False,
            explanation=f"{spec.name}: no data for {empty}.",
        )
    median = float(np.median(x))
    allowed = allowed_shift(spec, median)
    test = mann_whitney(x, y, confidence)
    classification = classify(test.estimate, test.p_value, allowed, confidence)
    harmful = is_harmful(spec.bad, classification)
    relative = test.estimate / abs(median) if median != 0 else None
    shift = show_signed(test.estimate, spec.unit)
    if relative is not None:
        shift += f" ({relative:+.1%})"
    interval = f"[{show(test.ci_low, spec.unit)}, {show(test.ci_high, spec.unit)}]"
    verdict = {
        "pass": f"within the allowed change of {show(allowed, spec.unit)} or not significant",
        "high": f"significantly higher, beyond the allowed {show(allowed, spec.unit)}",
        "low": f"significantly lower, beyond the allowed {show(allowed, spec.unit)}",
        "nodata": "",
    }[classification]
    harm = " (harmful)" if harmful else ""
    explanation = (
        f"{spec.name}: canary {show(float(np.median(y)), spec.unit)} against "
        f"{show(median, spec.unit)} (medians of {len(y)} and {len(x)} samples), shift {shift} "
        f"{interval}, p = {test.p_value:.3g}: {verdict}{harm}."
    )
    return MetricJudgement(
        **common,
        allowed=allowed,
        u_statistic=test.u,
        p_value=test.p_value,
        method=test.method,
        effect=Estimate(value=test.estimate, ci_low=test.ci_low, ci_high=test.ci_high),
        relative_effect=relative,
        classification=classification,
        harmful=harmful,
        explanation=explanation,
    )


def clearly_harmful(
    spec: MetricSpec, primary: Sequence[float], canary: Sequence[float], confidence: float
) -> bool:
    """Whether a look before the end may stop the canary: the whole interval at
    ``confidence`` lies beyond the allowed change in the harmful direction (and the test is
    significant at that level). Callers spend their error rate over the looks by asking
    for a higher confidence at each (Bonferroni)."""
    x, y = _finite(primary), _finite(canary)
    if len(x) < 2 or len(y) < 2:
        return False
    test = mann_whitney(x, y, confidence)
    if test.p_value >= 1.0 - confidence:
        return False
    allowed = allowed_shift(spec, float(np.median(x)))
    up = spec.bad in ("increase", "either") and test.ci_low > allowed
    down = spec.bad in ("decrease", "either") and test.ci_high < -allowed
    return bool(up or down)


def score(judgements: Sequence[MetricJudgement]) -> float | None:
    """100 x weight of metrics not harmful / weight of metrics with data (None: no data)."""
    counted = [j for j in judgements if j.classification != "nodata"]
    total = sum(j.weight for j in counted)
    if total <= 0:
        return None
    return 100.0 * sum(j.weight for j in counted if not j.harmful) / total


@dataclass(frozen=True)
class Decision:
    decision: CanaryDecision
    reason: str
    reasons: list[str]
    score: float | None
    next_weight: float


def next_weight(decision: CanaryDecision, weight: float, steps: Sequence[float]) -> float:
    """promote: the next step above ``weight``; hold: ``weight``; rollback: 0."""
    if decision == "rollback":
        return 0.0
    if decision == "hold":
        return weight
    return next((s for s in steps if s > weight), steps[-1] if steps else 100.0)


def decide(
    judgements: Sequence[MetricJudgement],
    shadow: Shadow | None,
    *,
    pass_score: float,
    marginal_score: float,
    weight: float,
    steps: Sequence[float],
    stopped_early: str = "",
) -> Decision:
    """The decision and every reason for it (see the module's docstring)."""
    rollback: list[str] = []
    hold: list[str] = []
    notes: list[str] = []
    if stopped_early:
        rollback.append(stopped_early)
    for j in judgements:
        if j.harmful and j.critical:
            rollback.append(f"critical metric {j.explanation}")
        elif j.harmful:
            notes.append(f"metric {j.explanation}")
        elif j.classification == "nodata" and j.critical:
            hold.append(f"critical metric {j.explanation}")
    if shadow is not None:
        if shadow.errors_status == "fail":
            rollback.append(shadow.errors_explanation)
        elif shadow.errors_status == "inconclusive":
            hold.append(shadow.errors_explanation)
        for agreement in shadow.agreement:
            if agreement.status == "fail":
                rollback.append(agreement.explanation)
            elif agreement.status == "inconclusive":
                (hold if agreement.name == "all rows" else notes).append(agreement.explanation)
    total = score(judgements)
    if total is not None:
        if total < marginal_score:
            rollback.append(f"score {total:.0f} is below the marginal score {marginal_score:g}")
        elif total < pass_score:
            hold.append(f"score {total:.0f} is below the passing score {pass_score:g}")
    elif shadow is None:
        hold.append("no metric had data for both sides")
    decision: CanaryDecision = "rollback" if rollback else "hold" if hold else "promote"
    findings = rollback + hold + notes
    target = next_weight(decision, weight, steps)
    if decision == "promote":
        scored = f"score {total:.0f}" if total is not None else "no metrics scored"
        if weight >= (steps[-1] if steps else 100.0):
            reason = f"Promote: no harmful change found ({scored}); the rollout is complete."
        else:
            reason = f"Promote to {target:g}% of traffic: no harmful change found ({scored})."
    else:
        first = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        verb = "Roll back" if decision == "rollback" else f"Hold at {weight:g}% of traffic"
        reason = f"{verb}: {first[0].lower()}{first[1:].rstrip('.')}{more}."
    return Decision(decision, reason, findings, total, target)
