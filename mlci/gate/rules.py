"""Pure gate evaluation: a results document and rules in, a decision out.

Every rule ends in one of four statuses:

* ``pass``: the evidence clears the threshold;
* ``fail``: the evidence misses it;
* ``inconclusive``: the evidence exists but cannot tell (an interval straddles the threshold);
* ``missing``: the evidence is absent (a stage was skipped or never ran).

The decision follows from the required rules only: **block** when one fails, **hold** when one
is inconclusive or missing, **promote** otherwise. Advisory rules are reported, never decisive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from mlci.gate.config import GateConfig, GateRule
from mlci.results import Results
from mlci.results.base import Estimate
from mlci.results.evaluation import Delta, SliceResult
from mlci.results.gate import (
    RULE_STATUSES,
    Decision,
    Gate,
    RuleResult,
    RuleStatus,
    binding_digest,
    evidence_text,
)

# Worst first: how the outcomes of several checks inside one rule combine.
SEVERITY: dict[RuleStatus, int] = {"fail": 3, "inconclusive": 2, "missing": 1, "pass": 0}


@dataclass(frozen=True)
class Outcome:
    """What one rule found."""

    status: RuleStatus
    observed: JsonValue
    threshold: JsonValue
    explanation: str


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _bounds(entry: Estimate, evidence: str) -> tuple[float, float] | None:
    """(low, high) of an estimate; the point twice when judging by the point estimate.

    None when the value is undefined, or when the rule judges the interval and there is
    none: a missing interval is never read as a zero-width one.
    """
    if entry.value is None:
        return None
    if evidence == "point":
        return entry.value, entry.value
    if entry.ci_low is None or entry.ci_high is None:
        return None
    return min(entry.ci_low, entry.ci_high), max(entry.ci_low, entry.ci_high)


def _no_interval(entry: Estimate, evidence: str) -> bool:
    """A rule that judges intervals meets an estimate that has a value but no interval."""
    return (
        evidence == "interval"
        and entry.value is not None
        and (entry.ci_low is None or entry.ci_high is None)
    )


def _why_no_interval(doc: Results) -> str:
    """Why an evaluation estimate has no interval, and what to do about it."""
    from mlci.evaluate.bootstrap import MIN_INTERVAL_UNITS  # numerical: only when needed

    ev = doc.evaluation
    point = "or use evidence: point to judge the estimate alone"
    if ev is None or ev.bootstrap == 0:
        return f"there is no interval to judge (evaluation.bootstrap is 0); set it, {point}"
    if ev.resampling is not None and ev.resampling.unit == "group":
        return (
            f"there is no interval to judge: the rows hold fewer than {MIN_INTERVAL_UNITS} "
            f"clusters of '{ev.resampling.column}' (data.group); evaluate more clusters, {point}"
        )
    return (
        f"there is no interval to judge: fewer than {MIN_INTERVAL_UNITS} rows, or too few "
        f"bootstrap replicates where the metric is defined; evaluate more rows, {point}"
    )


# Beyond this many times the rows evaluated, say so rather than give a figure.
MAX_ROWS_FACTOR = 100


def rows_to_resolve(
    rows: int | None, value: float, low: float, high: float, threshold: float
) -> int | None:
    """About how many rows would make an interval that straddles ``threshold`` clear it.

    Interval widths shrink as 1 / sqrt(rows). With the estimate ``value`` above the
    threshold, the lower half-width ``value - low`` must shrink to ``value - threshold``;
    below it, the upper half-width to ``threshold - value``. So ``rows * (half / distance)^2``
    rows resolve it, one way or the other, if the estimate held. None when unknown (no row
    count, or an estimate on the threshold itself, which no amount of data resolves).
    """
    if not rows or rows <= 0:
        return None
    if value > threshold:
        half, distance = value - low, value - threshold
    elif value < threshold:
        half, distance = high - value, threshold - value
    else:
        return None
    if distance <= 0 or half <= distance:
        return None
    return int(math.ceil(rows * (half / distance) ** 2))


def _resolve_text(rows: int | None, needed: int | None, unit: str = "rows") -> str:
    if rows is None:
        return ""
    if needed is None:
        return " No amount of data resolves an estimate that sits on the threshold."
    if needed > MAX_ROWS_FACTOR * rows:
        return (
            f" Resolving it would take more than {MAX_ROWS_FACTOR} times the {rows:,} {unit} "
            "evaluated: the estimate is too close to the threshold."
        )
    return (
        f" About {_round_rows(needed):,} {unit} (now {rows:,}) would resolve it, if the "
        "estimate held."
    )


def _round_rows(n: int) -> int:
    """Two significant figures: the figure is an estimate."""
    digits = max(0, len(str(n)) - 2)
    return int(round(n, -digits))


def _rows(doc: Results, found_slice: SliceResult | None) -> int:
    """Rows behind an estimate: the slice's size, else the evaluation data's rows."""
    return doc.data.rows if found_slice is None else found_slice.size


def _estimate(entry: Estimate) -> dict[str, JsonValue]:
    return {"value": entry.value, "ci_low": entry.ci_low, "ci_high": entry.ci_high}


def _interval(entry: Estimate) -> str:
    text = _num(entry.value)
    if entry.ci_low is not None and entry.ci_high is not None:
        text += f" [{_num(entry.ci_low)}, {_num(entry.ci_high)}]"
    return text


def _metric(doc: Results, rule: GateRule) -> Outcome:
    ev = doc.evaluation
    threshold: dict[str, JsonValue] = {"min": rule.min, "max": rule.max}
    if ev is None:
        return Outcome("missing", None, threshold, doc.stage_reason("evaluate", "evaluation"))
    metric = rule.metric or ev.primary_metric
    where = "overall"
    subject = f"overall {metric}"
    table = ev.metrics.candidate
    found = None
    if rule.slice is not None:
        found = ev.slice_named(rule.slice)
        if found is None:
            return Outcome(
                "missing", None, threshold, f"no slice named '{rule.slice}' was evaluated."
            )
        if found.status != "evaluated":
            return Outcome(
                "missing",
                None,
                threshold,
                f"slice '{rule.slice}' was not evaluated ({found.reason or found.status}).",
            )
        table = found.metrics.candidate
        where = f"on slice '{rule.slice}'"
        subject = f"{metric} on slice '{rule.slice}'"
    entry = table.get(metric)
    if entry is None:
        return Outcome("missing", None, threshold, f"no value of {metric} was computed {where}.")
    bounds = _bounds(entry, rule.evidence)
    observed = _estimate(entry)
    if _no_interval(entry, rule.evidence):
        return Outcome(
            "inconclusive",
            observed,
            threshold,
            f"{subject} is {_num(entry.value)}, but {_why_no_interval(doc)}.",
        )
    if bounds is None:
        return Outcome(
            "missing", observed, threshold, f"the value of {metric} is undefined {where}."
        )
    low, high = bounds
    checks: list[tuple[RuleStatus, str]] = []
    if rule.min is not None:
        checks.append(
            (
                "pass" if low >= rule.min else "fail" if high < rule.min else "inconclusive",
                f"at least {_num(rule.min)}",
            )
        )
    if rule.max is not None:
        checks.append(
            (
                "pass" if high <= rule.max else "fail" if low > rule.max else "inconclusive",
                f"at most {_num(rule.max)}",
            )
        )
    status = max((c[0] for c in checks), key=SEVERITY.__getitem__)
    wanted = " and ".join(c[1] for c in checks)
    shown = _num(entry.value) if rule.evidence == "point" else _interval(entry)
    verb = {"pass": "meets", "fail": "misses", "inconclusive": "straddles", "missing": "lacks"}[
        status
    ]
    more = ""
    straddled = [t for t in (rule.min, rule.max) if t is not None and low < t < high]
    if status == "inconclusive" and straddled and entry.value is not None:
        rows = _rows(doc, found)
        needed = rows_to_resolve(rows, entry.value, low, high, straddled[0])
        observed.update(rows=rows, rows_needed=needed)
        more = _resolve_text(rows, needed, "rows" if found is None else "rows in the slice")
    return Outcome(
        status,
        observed,
        threshold,
        f"{subject} is {shown}, which {verb} the requirement of {wanted}.{more}",
    )


def _non_inferiority(doc: Results, rule: GateRule) -> Outcome:
    ev = doc.evaluation
    margin = float(rule.margin or 0.0)
    threshold: dict[str, JsonValue] = {"margin": margin, "superiority": rule.superiority}
    if ev is None:
        return Outcome("missing", None, threshold, doc.stage_reason("evaluate", "evaluation"))
    metric = rule.metric or ev.primary_metric
    deltas = ev.metrics.delta
    if not deltas:
        return Outcome("missing", None, threshold, "there is no baseline to compare with.")
    entry = deltas.get(metric)
    if entry is None:
        return Outcome("missing", None, threshold, f"the baseline comparison has no {metric}.")
    observed = _estimate(entry)
    if _no_interval(entry, rule.evidence):
        return Outcome(
            "inconclusive",
            observed,
            threshold,
            f"the {metric} delta is {_num(entry.value)}, but {_why_no_interval(doc)}.",
        )
    bounds = _bounds(entry, rule.evidence)
    if bounds is None or entry.value is None:
        return Outcome("missing", observed, threshold, f"the {metric} delta is undefined.")
    # Orient the delta so that positive always means "the candidate is better".
    low, high = sorted((ev.oriented(metric, bounds[0]), ev.oriented(metric, bounds[1])))
    shown = _interval(entry) if rule.evidence == "interval" else _num(entry.value)
    status: RuleStatus
    if rule.superiority:
        status = "pass" if low > 0 else "fail" if high <= 0 or high < -margin else "inconclusive"
    else:
        status = "pass" if low > -margin else "fail" if high < -margin else "inconclusive"
    more = ""
    if status == "inconclusive" and rule.evidence == "interval":
        rows = _rows(doc, None)
        bar = 0.0 if rule.superiority else -margin
        needed = rows_to_resolve(rows, ev.oriented(metric, entry.value), low, high, bar)
        observed.update(rows=rows, rows_needed=needed)
        more = _resolve_text(rows, needed)
    if rule.superiority:
        text = {
            "pass": f"the {metric} delta {shown} shows the candidate better than the baseline.",
            "fail": f"the {metric} delta {shown} shows the candidate no better than the baseline.",
            "inconclusive": f"the {metric} delta {shown} cannot tell whether the candidate is better.{more}",
        }[status]
        return Outcome(status, observed, threshold, text)
    side = "lower" if ev.higher_is_better(metric) else "upper"
    text = {
        "pass": f"the {metric} delta {shown} stays within the margin of {_num(margin)}.",
        "fail": f"the {metric} delta {shown} is worse than the baseline by more than the margin of {_num(margin)}.",
        "inconclusive": f"the {side} end of the {metric} delta {shown} crosses the margin of {_num(margin)}, so non-inferiority is not shown.{more}",
    }[status]
    return Outcome(status, observed, threshold, text)


def _slices(doc: Results, rule: GateRule) -> Outcome:
    ev = doc.evaluation
    margin = float(rule.margin or 0.0)
    threshold: dict[str, JsonValue] = {"margin": margin}
    if ev is None:
        return Outcome("missing", None, threshold, doc.stage_reason("evaluate", "evaluation"))
    if not ev.has_baseline:
        return Outcome("missing", None, threshold, "there is no baseline to compare slices with.")
    metric = rule.metric or ev.primary_metric
    worst: tuple[int, float, Delta, SliceResult] | None = None
    counted = 0
    for s in ev.slices:
        if not s.flagged or (rule.source != "any" and s.source != rule.source):
            continue
        entry = s.delta_of(metric)
        if entry is None or entry.value is None:
            continue
        counted += 1
        bounds = _bounds(entry, rule.evidence)
        status: RuleStatus
        if bounds is None:  # flagged, but no interval to judge its size by
            low, status = -math.inf, "inconclusive"
        else:
            low, high = sorted((ev.oriented(metric, bounds[0]), ev.oriented(metric, bounds[1])))
            status = "fail" if high < -margin else "inconclusive" if low < -margin else "pass"
        key = (SEVERITY[status], -low)
        if worst is None or key > (worst[0], -worst[1]):
            worst = (SEVERITY[status], low, entry, s)
    if worst is None:
        return Outcome(
            "pass",
            None,
            threshold,
            f"no slice is flagged as significantly worse than the baseline on {metric}.",
        )
    status = next(k for k, v in SEVERITY.items() if v == worst[0])
    _, _, entry, found = worst
    name = found.name
    observed: dict[str, JsonValue] = {"slice": name, **_estimate(entry)}
    shown = _interval(entry)
    more = ""
    if status == "inconclusive" and _no_interval(entry, rule.evidence):
        more = f" But {_why_no_interval(doc)}."
    elif (
        status == "inconclusive"
        and rule.evidence == "interval"
        and entry.value is not None
        and entry.ci_low is not None
        and entry.ci_high is not None
    ):
        rows = _rows(doc, found)
        low, high = sorted((ev.oriented(metric, entry.ci_low), ev.oriented(metric, entry.ci_high)))
        needed = rows_to_resolve(rows, ev.oriented(metric, entry.value), low, high, -margin)
        observed.update(rows=rows, rows_needed=needed)
        more = _resolve_text(rows, needed, "rows in the slice")
    text = {
        "fail": f"{counted} flagged slice(s); '{name}' has a {metric} delta of {shown}, beyond the margin of {_num(margin)}.",
        "inconclusive": f"{counted} flagged slice(s); '{name}' ({metric} delta {shown}) may be worse than the margin of {_num(margin)}.{more}",
        "pass": f"{counted} flagged slice(s), none worse on {metric} than the margin of {_num(margin)}; the worst is '{name}' ({shown}).",
        "missing": "",
    }[status]
    return Outcome(status, observed, threshold, text)


def _latency(doc: Results, rule: GateRule) -> Outcome:
    bench = doc.benchmark
    stat = rule.metric or "p99"
    threshold: dict[str, JsonValue] = {
        "metric": stat,
        "budget_ms": rule.budget_ms,
        "max_regression": rule.max_regression,
    }
    if bench is None:
        return Outcome("missing", None, threshold, doc.stage_reason("benchmark", "benchmark"))
    scenarios = [s for s in bench.scenarios if rule.scenario in (None, s.name)]
    if not scenarios:
        what = f"no scenario named '{rule.scenario}'" if rule.scenario else "no scenarios"
        return Outcome("missing", None, threshold, f"the benchmark has {what}.")
    found: list[tuple[RuleStatus, JsonValue, str]] = []  # (status, observed, sentence)
    for s in scenarios:
        if s.status != "ok":
            found.append(
                (
                    "inconclusive",
                    None,
                    f"scenario '{s.name}' has too few samples ({s.reason or s.status}).",
                )
            )
            continue
        if rule.budget_ms is not None:
            entry = s.candidate.latency_ms.get(stat)
            bounds = None if entry is None else _bounds(entry, rule.evidence)
            if entry is not None and _no_interval(entry, rule.evidence):
                found.append(
                    (
                        "inconclusive",
                        {"scenario": s.name, "latency_ms": _estimate(entry)},
                        f"the {stat} latency in '{s.name}' is {_num(entry.value)} ms with "
                        "no interval to judge against the budget.",
                    )
                )
            elif entry is None or bounds is None:
                found.append(("missing", None, f"scenario '{s.name}' measured no {stat}."))
            else:
                low, high = bounds
                status: RuleStatus = (
                    "pass"
                    if high <= rule.budget_ms
                    else "fail"
                    if low > rule.budget_ms
                    else "inconclusive"
                )
                verb = {"pass": "within", "fail": "over", "inconclusive": "straddling"}[status]
                found.append(
                    (
                        status,
                        {"scenario": s.name, "latency_ms": _estimate(entry)},
                        f"the {stat} latency in '{s.name}' is {_interval(entry)} ms, {verb} the {_num(rule.budget_ms)} ms budget.",
                    )
                )
        if rule.max_regression is not None:
            comparison = s.compared(stat)
            if comparison is None:
                found.append(
                    (
                        "missing",
                        None,
                        f"scenario '{s.name}' has no {stat} comparison with the baseline.",
                    )
                )
                continue
            ratio = comparison.ratio
            bounds = _bounds(ratio, rule.evidence)
            limit = 1.0 + rule.max_regression
            if _no_interval(ratio, rule.evidence):
                found.append(
                    (
                        "inconclusive",
                        {"scenario": s.name, "ratio": _estimate(ratio)},
                        f"the {stat} latency in '{s.name}' is {_num(ratio.value)}x the "
                        "baseline's with no interval to judge the slowdown by.",
                    )
                )
                continue
            if bounds is None:
                found.append(("missing", None, f"the {stat} ratio in '{s.name}' is undefined."))
                continue
            low, high = bounds
            status = "pass" if high <= limit else "fail" if low > limit else "inconclusive"
            verb = {"pass": "within", "fail": "beyond", "inconclusive": "straddling"}[status]
            found.append(
                (
                    status,
                    {"scenario": s.name, "ratio": _estimate(ratio)},
                    f"the {stat} latency in '{s.name}' is {_interval(ratio)}x the baseline's, {verb} the allowed {rule.max_regression:.0%} slowdown.",
                )
            )
    worst_status, observed, sentence = max(found, key=lambda f: SEVERITY[f[0]])
    if worst_status == "pass" and len(found) > 1:
        sentence = f"all {len(found)} latency checks pass; for example, {sentence}"
    return Outcome(worst_status, observed, threshold, sentence)


def _tests(doc: Results, rule: GateRule) -> Outcome:
    tests = doc.tests
    threshold: dict[str, JsonValue] = {
        "names": list(rule.names) if rule.names else None,
        "kinds": list(rule.kinds) if rule.kinds else None,
    }
    if tests is None:
        return Outcome("missing", None, threshold, doc.stage_reason("tests", "tests"))
    results = tests.results
    chosen = []
    absent: list[str] = []
    for name in rule.names or []:
        match = [r for r in results if r.id == name]
        chosen.extend(match)
        if not match:
            absent.append(name)
    if rule.kinds:
        chosen.extend(r for r in results if r.kind in rule.kinds and r not in chosen)
    if not rule.names and not rule.kinds:
        chosen = [r for r in results if r.required]
    # A check that cannot apply to this model (parity of an ONNX-only model, probabilities of
    # a regressor) is not missing evidence.
    inapplicable = [r for r in chosen if r.not_applicable]
    chosen = [r for r in chosen if not r.not_applicable]
    failed = [r for r in chosen if r.failed]
    skipped = [r for r in chosen if r.status == "skipped"]
    observed: dict[str, JsonValue] = {
        "selected": len(chosen),
        "passed": sum(r.status == "passed" for r in chosen),
        "failed": len(failed),
        "skipped": len(skipped),
        "absent": list(absent),
    }
    if inapplicable:
        observed["not_applicable"] = len(inapplicable)
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return Outcome(
            "fail",
            observed,
            threshold,
            f"test '{first.id}' {first.status}{more}: {first.message or 'no message'}.",
        )
    if absent:
        return Outcome("missing", observed, threshold, f"test '{absent[0]}' did not run.")
    if skipped:
        return Outcome("missing", observed, threshold, f"test '{skipped[0].id}' was skipped.")
    if not chosen:
        return Outcome("missing", observed, threshold, "no test matches the rule.")
    return Outcome("pass", observed, threshold, f"all {len(chosen)} selected test(s) passed.")


def _supply_chain(doc: Results, rule: GateRule) -> Outcome:
    image = doc.image
    threshold: dict[str, JsonValue] = {
        "signed": rule.signed,
        "sbom": rule.sbom,
        "verified": rule.verified,
        "identity": rule.identity,
        "issuer": rule.issuer,
    }
    if image is None or image.digest is None:
        reason = next(
            (
                doc.stage_reason(stage, "image")
                for stage in ("image", "sign")
                if stage in doc.stages and doc.stages[stage].status != "ran"
            ),
            "no image was built, signed or verified for this model.",
        )
        return Outcome("missing", None, threshold, reason)
    signatures = image.signed
    sbom = image.sbom

    def matches(identity: str | None, issuer: str | None) -> bool:
        return rule.identity in (None, identity) and rule.issuer in (None, issuer)

    verified = [s for s in signatures if s.verified and matches(s.identity, s.issuer)]
    observed: dict[str, JsonValue] = {
        "digest": image.digest,
        "signatures": len(signatures),
        "verified": len(verified),
        "sbom": bool(sbom and sbom.attached),
    }
    problems = []
    if rule.signed and not signatures:
        problems.append("the image is not signed")
    if rule.verified and signatures and not verified:
        who = f" by {rule.identity}" if rule.identity else ""
        problems.append(f"no signature{who} verifies")
    if rule.sbom and not (sbom and sbom.attached):
        problems.append("no SBOM is attached")
    if problems:
        return Outcome("fail", observed, threshold, "; ".join(problems) + ".")
    return Outcome(
        "pass",
        observed,
        threshold,
        f"image {image.digest[:19]} is signed, verified and has an SBOM as required.",
    )


def _canary(doc: Results, rule: GateRule) -> Outcome:
    canary = doc.canary
    threshold: dict[str, JsonValue] = {"decision": "promote"}
    if canary is None:
        return Outcome("missing", None, threshold, doc.stage_reason("canary", "canary"))
    judged = canary.canary.digest
    observed: dict[str, JsonValue] = {
        "decision": canary.decision,
        "score": canary.score,
        "weight": canary.weight,
        "digest": judged,
    }
    # Evidence about another image (or an unknown one) is no evidence about this candidate.
    image = doc.image.digest if doc.image is not None else None
    if image is not None and judged != image:
        if judged is None:
            why = "does not say which image it judged"
        else:
            why = f"judged image {judged[:19]}"
        return Outcome(
            "missing",
            observed,
            threshold,
            f"the canary analysis {why}, not this candidate's image {image[:19]}.",
        )
    model = doc.model.sha256
    if model is not None and canary.model_sha256 is not None and canary.model_sha256 != model:
        return Outcome(
            "missing",
            observed,
            threshold,
            f"the canary analysis is about model {canary.model_sha256[:12]}, not this "
            f"candidate ({model[:12]}).",
        )
    status: RuleStatus = {"promote": "pass", "rollback": "fail"}.get(
        canary.decision, "inconclusive"
    )  # type: ignore[assignment]
    at = f" at {canary.weight:g}% of traffic" if canary.weight else ""
    reason = canary.reason or f"{canary.decision}."
    return Outcome(
        status,
        observed,
        threshold,
        f"the canary analysis{at} says: {reason[0].lower()}{reason[1:]}",
    )


def _fairness(doc: Results, rule: GateRule) -> Outcome:
    measure = rule.metric or "demographic_parity"
    threshold: dict[str, JsonValue] = {
        "measure": measure,
        "feature": rule.feature,
        "max_difference": rule.max_difference,
        "min_ratio": rule.min_ratio,
    }
    ev = doc.evaluation
    if ev is None:
        return Outcome("missing", None, threshold, doc.stage_reason("evaluate", "evaluation"))
    fairness = ev.fairness
    if fairness is None:
        return Outcome(
            "missing",
            None,
            threshold,
            "the evaluation has no fairness summary (evaluation.fairness).",
        )
    features = fairness.features
    if rule.feature is not None:
        found = fairness.feature(rule.feature)
        if found is None:
            return Outcome(
                "missing", None, threshold, f"no fairness summary for feature '{rule.feature}'."
            )
        features = [found]
    checks: list[tuple[RuleStatus, JsonValue, str]] = []
    for f in features:
        disparity = f.disparities.get(measure)
        if disparity is None:
            checks.append(("missing", None, f"'{f.feature}' has no {measure} summary."))
            continue
        for part, limit, upper in (
            ("difference", rule.max_difference, True),
            ("ratio", rule.min_ratio, False),
        ):
            if limit is None:
                continue
            entry = getattr(disparity, part)
            bounds = _bounds(entry, rule.evidence)
            observed: JsonValue = {"feature": f.feature, "measure": part, **_estimate(entry)}
            if _no_interval(entry, rule.evidence):
                checks.append(
                    (
                        "inconclusive",
                        observed,
                        f"the {measure} {part} of '{f.feature}' is {_num(entry.value)}, "
                        f"but {_why_no_interval(doc)}.",
                    )
                )
                continue
            if bounds is None:
                checks.append(
                    ("missing", observed, f"the {measure} {part} of '{f.feature}' is undefined.")
                )
                continue
            low, high = bounds
            status: RuleStatus
            if upper:
                status = "pass" if high <= limit else "fail" if low > limit else "inconclusive"
                wanted = f"at most {_num(limit)}"
            else:
                status = "pass" if low >= limit else "fail" if high < limit else "inconclusive"
                wanted = f"at least {_num(limit)}"
            shown = _num(entry.value) if rule.evidence == "point" else _interval(entry)
            verb = {"pass": "meets", "fail": "misses", "inconclusive": "straddles"}[status]
            base = getattr(disparity, f"baseline_{part}")
            beside = f" (baseline {_interval(base)})" if base is not None else ""
            checks.append(
                (
                    status,
                    observed,
                    f"the {measure} {part} between groups of '{f.feature}' is {shown}{beside}, "
                    f"which {verb} the requirement of {wanted}.",
                )
            )
    if not checks:
        return Outcome("missing", None, threshold, "no sensitive feature was evaluated.")
    worst = max(checks, key=lambda c: SEVERITY[c[0]])
    status, observed, sentence = worst
    if status == "pass" and len(checks) > 1:
        sentence = f"all {len(checks)} fairness checks pass; for example, {sentence}"
    return Outcome(status, observed, threshold, sentence)


CHECKS: dict[str, Callable[[Results, GateRule], Outcome]] = {
    "metric": _metric,
    "non_inferiority": _non_inferiority,
    "slices": _slices,
    "latency": _latency,
    "tests": _tests,
    "supply_chain": _supply_chain,
    "canary": _canary,
    "fairness": _fairness,
}


def decide(rules: Sequence[RuleResult]) -> tuple[Decision, str]:
    """The decision and its one-sentence reason, from evaluated rules."""
    required = [r for r in rules if r.required]
    failed = [r for r in required if r.status == "fail"]
    if failed:
        names = ", ".join(f"'{r.id}'" for r in failed)
        return "block", f"Required rule{'s' if len(failed) > 1 else ''} {names} failed."
    unsure = [r for r in required if r.status in ("inconclusive", "missing")]
    if unsure:
        first = unsure[0]
        why = "is inconclusive" if first.status == "inconclusive" else "lacks evidence"
        more = f" (and {len(unsure) - 1} more)" if len(unsure) > 1 else ""
        observed = first.observed
        needed = observed.get("rows_needed") if isinstance(observed, dict) else None
        rows = observed.get("rows") if isinstance(observed, dict) else None
        data = ""
        if isinstance(needed, int) and isinstance(rows, int) and needed <= MAX_ROWS_FACTOR * rows:
            data = f": about {_round_rows(needed):,} rows (now {rows:,}) would resolve it"
        return "hold", f"Required rule '{first.id}' {why}{data}{more}."
    advisory = sum(r.status != "pass" for r in rules if not r.required)
    note = f"; {advisory} advisory rule(s) did not pass" if advisory else ""
    return "promote", f"All {len(required)} required rule(s) passed{note}."


def evaluate_gate(document: Results, config: GateConfig) -> Gate:
    """The ``gate`` section for ``document``: every rule's outcome and the decision."""
    evaluated = []
    for rule in config.rules:
        outcome = CHECKS[rule.kind](document, rule)
        evaluated.append(
            RuleResult(
                id=rule.name,
                kind=rule.kind,
                required=rule.required,
                status=outcome.status,
                observed=outcome.observed,
                threshold=outcome.threshold,
                observed_text=evidence_text(outcome.observed),
                threshold_text=evidence_text(outcome.threshold),
                explanation=outcome.explanation[0].upper() + outcome.explanation[1:],
            )
        )
    decision, reason = decide(evaluated)
    body: dict[str, Any] = {
        "decision": decision,
        "reason": reason,
        "fail_on": config.fail_on,
        "model_sha256": document.model.sha256,
        "baseline_sha256": None if document.baseline is None else document.baseline.sha256,
        "image_digest": None if document.image is None else document.image.digest,
        "data_sha256": document.data.sha256,
        "config_sha256": document.config.sha256,
        "counts": {s: sum(r.status == s for r in evaluated) for s in RULE_STATUSES},
        "rules": [r.model_dump(mode="json") for r in evaluated],
    }
    return Gate.model_validate({**body, "digest": binding_digest(body)})
