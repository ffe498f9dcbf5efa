"""Pure gate evaluation: a results document and rules in, a decision out.

Every rule ends in one of four statuses:

* ``pass``: the evidence clears the threshold;
* ``fail``: the evidence misses it;
* ``inconclusive``: the evidence exists but cannot tell (an interval straddles the threshold,
  or a rule that judges an interval finds none: ``evaluation.bootstrap: 0``);
* ``missing``: the evidence is absent (a stage was skipped or never ran).

When an interval straddles the threshold, the explanation (and the decision's reason) says
about how many rows would resolve it: interval widths shrink as one over the square root of
the rows, so ``n * (w / d) ** 2`` rows bring the interval's half-width ``w`` on the
threshold's side within the distance ``d`` between the estimate and the threshold, if the
estimate held (:func:`rows_to_resolve`).

The decision follows from the required rules only: **block** when one fails, **hold** when one
is inconclusive or missing, **promote** otherwise. Advisory rules are reported, never decisive.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlci.gate.config import GateConfig, GateRule

Document = dict[str, Any]
STATUSES = ("pass", "fail", "inconclusive", "missing")
# Worst first: how the outcomes of several checks inside one rule combine.
SEVERITY = {"fail": 3, "inconclusive": 2, "missing": 1, "pass": 0}


@dataclass(frozen=True)
class Outcome:
    """What one rule found."""

    status: str
    observed: Any
    threshold: Any
    explanation: str


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _stage_reason(doc: Document, stage: str, section: str) -> str:
    info = (doc.get("stages") or {}).get(stage)
    if info is None:
        return f"the {stage} stage did not run, so there is no {section} section."
    if info.get("status") != "ran":
        return f"the {stage} stage was {info.get('status')}: {info.get('reason') or 'no reason'}."
    return f"the results hold no {section} section."


def _higher_is_better(metric: str) -> bool:
    from mlci.evaluate.metrics import METRICS

    spec = METRICS.get(metric)
    return True if spec is None else spec.higher_is_better


def _bounds(entry: dict[str, Any], evidence: str) -> tuple[float, float] | None:
    """(low, high) of an estimate; the point twice when judging by the point estimate.

    None when the value is undefined, or when the rule judges the interval and there is
    none: a missing interval is never read as a zero-width one.
    """
    value = entry.get("value")
    if value is None:
        return None
    if evidence == "point":
        return value, value
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if low is None or high is None:
        return None
    return min(low, high), max(low, high)


def _no_interval(entry: dict[str, Any], evidence: str) -> bool:
    """A rule that judges intervals meets an estimate that has a value but no interval."""
    return (
        evidence == "interval"
        and entry.get("value") is not None
        and (entry.get("ci_low") is None or entry.get("ci_high") is None)
    )


NO_INTERVAL_TIP = (
    "there is no interval to judge (evaluation.bootstrap: 0, or too few bootstrap replicates "
    "were defined); set evaluation.bootstrap, or evidence: point to judge the estimate alone"
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


def _rows(doc: Document, found_slice: dict[str, Any] | None) -> int | None:
    """Rows behind an estimate: the slice's size, else the evaluation data's rows."""
    if found_slice is not None:
        size = found_slice.get("size")
        return int(size) if isinstance(size, int) else None
    rows = (doc.get("data") or {}).get("rows")
    return int(rows) if isinstance(rows, int) else None


def _metric(doc: Document, rule: GateRule) -> Outcome:
    ev = doc.get("evaluation")
    threshold = {"min": rule.min, "max": rule.max}
    if not ev:
        return Outcome("missing", None, threshold, _stage_reason(doc, "evaluate", "evaluation"))
    metric = rule.metric or ev["primary_metric"]
    where = "overall"
    subject = f"overall {metric}"
    table = ev["metrics"]["candidate"]
    found = None
    if rule.slice is not None:
        found = next((s for s in ev["slices"] if s["name"] == rule.slice), None)
        if found is None:
            return Outcome(
                "missing", None, threshold, f"no slice named '{rule.slice}' was evaluated."
            )
        if found["status"] != "evaluated":
            return Outcome(
                "missing",
                None,
                threshold,
                f"slice '{rule.slice}' was not evaluated ({found.get('reason') or found['status']}).",
            )
        table = found["metrics"]["candidate"]
        where = f"on slice '{rule.slice}'"
        subject = f"{metric} on slice '{rule.slice}'"
    entry = table.get(metric)
    if entry is None:
        return Outcome("missing", None, threshold, f"no value of {metric} was computed {where}.")
    bounds = _bounds(entry, rule.evidence)
    observed: dict[str, Any] = {k: entry.get(k) for k in ("value", "ci_low", "ci_high")}
    if _no_interval(entry, rule.evidence):
        return Outcome(
            "inconclusive",
            observed,
            threshold,
            f"{subject} is {_num(entry['value'])}, but {NO_INTERVAL_TIP}.",
        )
    if bounds is None:
        return Outcome(
            "missing", observed, threshold, f"the value of {metric} is undefined {where}."
        )
    low, high = bounds
    checks = []
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
    shown = _num(entry["value"]) if rule.evidence == "point" else _interval(entry)
    verb = {
        "pass": "meets",
        "fail": "misses",
        "inconclusive": "straddles",
    }[status]
    more = ""
    straddled = [t for t in (rule.min, rule.max) if t is not None and low < t < high]
    if status == "inconclusive" and straddled:
        rows = _rows(doc, found)
        needed = rows_to_resolve(rows, entry["value"], low, high, straddled[0])
        observed.update(rows=rows, rows_needed=needed)
        more = _resolve_text(rows, needed, "rows" if found is None else "rows in the slice")
    return Outcome(
        status,
        observed,
        threshold,
        f"{subject} is {shown}, which {verb} the requirement of {wanted}.{more}",
    )


def _interval(entry: dict[str, Any]) -> str:
    text = _num(entry.get("value"))
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{_num(entry['ci_low'])}, {_num(entry['ci_high'])}]"
    return text


def _non_inferiority(doc: Document, rule: GateRule) -> Outcome:
    ev = doc.get("evaluation")
    margin = float(rule.margin or 0.0)
    threshold = {"margin": margin, "superiority": rule.superiority}
    if not ev:
        return Outcome("missing", None, threshold, _stage_reason(doc, "evaluate", "evaluation"))
    metric = rule.metric or ev["primary_metric"]
    deltas = ev["metrics"].get("delta")
    if not deltas:
        return Outcome("missing", None, threshold, "there is no baseline to compare with.")
    entry = deltas.get(metric)
    if entry is None:
        return Outcome("missing", None, threshold, f"the baseline comparison has no {metric}.")
    observed: dict[str, Any] = {k: entry.get(k) for k in ("value", "ci_low", "ci_high")}
    if _no_interval(entry, rule.evidence):
        return Outcome(
            "inconclusive",
            observed,
            threshold,
            f"the {metric} delta is {_num(entry['value'])}, but {NO_INTERVAL_TIP}.",
        )
    bounds = _bounds(entry, rule.evidence)
    if bounds is None:
        return Outcome("missing", observed, threshold, f"the {metric} delta is undefined.")
    # Orient the delta so that positive always means "the candidate is better".
    sign = 1.0 if _higher_is_better(metric) else -1.0
    low, high = sorted((sign * bounds[0], sign * bounds[1]))
    shown = _interval(entry) if rule.evidence == "interval" else _num(entry["value"])
    rows = _rows(doc, None)
    bar = 0.0 if rule.superiority else -margin
    if rule.superiority:
        status = "pass" if low > 0 else "fail" if high <= 0 or high < -margin else "inconclusive"
    else:
        status = "pass" if low > -margin else "fail" if high < -margin else "inconclusive"
    more = ""
    if status == "inconclusive" and rule.evidence == "interval":
        needed = rows_to_resolve(rows, sign * entry["value"], low, high, bar)
        observed.update(rows=rows, rows_needed=needed)
        more = _resolve_text(rows, needed)
    if rule.superiority:
        text = {
            "pass": f"the {metric} delta {shown} shows the candidate better than the baseline.",
            "fail": f"the {metric} delta {shown} shows the candidate no better than the baseline.",
            "inconclusive": f"the {metric} delta {shown} cannot tell whether the candidate is better.{more}",
        }[status]
        return Outcome(status, observed, threshold, text)
    side = "lower" if sign > 0 else "upper"
    text = {
        "pass": f"the {metric} delta {shown} stays within the margin of {_num(margin)}.",
        "fail": f"the {metric} delta {shown} is worse than the baseline by more than the margin of {_num(margin)}.",
        "inconclusive": f"the {side} end of the {metric} delta {shown} crosses the margin of {_num(margin)}, so non-inferiority is not shown.{more}",
    }[status]
    return Outcome(status, observed, threshold, text)


def _slices(doc: Document, rule: GateRule) -> Outcome:
    ev = doc.get("evaluation")
    margin = float(rule.margin or 0.0)
    threshold = {"margin": margin}
    if not ev:
        return Outcome("missing", None, threshold, _stage_reason(doc, "evaluate", "evaluation"))
    if not ev["metrics"].get("delta"):
        return Outcome("missing", None, threshold, "there is no baseline to compare slices with.")
    metric = rule.metric or ev["primary_metric"]
    sign = 1.0 if _higher_is_better(metric) else -1.0
    worst: tuple[int, str, float, dict[str, Any], dict[str, Any]] | None = None
    counted = 0
    for s in ev["slices"]:
        if not s["flagged"] or (rule.source != "any" and s["source"] != rule.source):
            continue
        entry = (s.get("delta") or {}).get(metric)
        if entry is None or entry.get("value") is None:
            continue
        counted += 1
        bounds = _bounds(entry, rule.evidence)
        if bounds is None:  # flagged, but no interval to judge its size by
            low, status = -math.inf, "inconclusive"
        else:
            low, high = sorted((sign * bounds[0], sign * bounds[1]))
            status = "fail" if high < -margin else "inconclusive" if low < -margin else "pass"
        key = (SEVERITY[status], -low)
        if worst is None or key > (worst[0], -worst[2]):
            worst = (SEVERITY[status], s["name"], low, entry, s)
    if worst is None:
        return Outcome(
            "pass",
            None,
            threshold,
            f"no slice is flagged as significantly worse than the baseline on {metric}.",
        )
    status = next(k for k, v in SEVERITY.items() if v == worst[0])
    _, name, _, entry, found = worst
    observed: dict[str, Any] = {
        "slice": name,
        **{k: entry.get(k) for k in ("value", "ci_low", "ci_high")},
    }
    shown = _interval(entry)
    more = ""
    if status == "inconclusive" and _no_interval(entry, rule.evidence):
        more = f" But {NO_INTERVAL_TIP}."
    elif status == "inconclusive" and rule.evidence == "interval":
        rows = _rows(doc, found)
        low, high = sorted((sign * entry["ci_low"], sign * entry["ci_high"]))
        needed = rows_to_resolve(rows, sign * entry["value"], low, high, -margin)
        observed.update(rows=rows, rows_needed=needed)
        more = _resolve_text(rows, needed, "rows in the slice")
    text = {
        "fail": f"{counted} flagged slice(s); '{name}' has a {metric} delta of {shown}, beyond the margin of {_num(margin)}.",
        "inconclusive": f"{counted} flagged slice(s); '{name}' ({metric} delta {shown}) may be worse than the margin of {_num(margin)}.{more}",
        "pass": f"{counted} flagged slice(s), none worse on {metric} than the margin of {_num(margin)}; the worst is '{name}' ({shown}).",
    }[status]
    return Outcome(status, observed, threshold, text)


def _latency(doc: Document, rule: GateRule) -> Outcome:
    bench = doc.get("benchmark")
    stat = rule.metric or "p99"
    threshold = {"metric": stat, "budget_ms": rule.budget_ms, "max_regression": rule.max_regression}
    if not bench:
        return Outcome("missing", None, threshold, _stage_reason(doc, "benchmark", "benchmark"))
    scenarios = [s for s in bench.get("scenarios", []) if rule.scenario in (None, s["name"])]
    if not scenarios:
        what = f"no scenario named '{rule.scenario}'" if rule.scenario else "no scenarios"
        return Outcome("missing", None, threshold, f"the benchmark has {what}.")
    found: list[tuple[str, Any, str]] = []  # (status, observed, sentence)
    for s in scenarios:
        if s.get("status") != "ok":
            found.append(
                (
                    "inconclusive",
                    None,
                    f"scenario '{s['name']}' has too few samples ({s.get('reason') or s.get('status')}).",
                )
            )
            continue
        if rule.budget_ms is not None:
            entry = ((s.get("candidate") or {}).get("latency_ms") or {}).get(stat)
            bounds = None if not entry else _bounds(entry, rule.evidence)
            if entry and _no_interval(entry, rule.evidence):
                found.append(
                    (
                        "inconclusive",
                        {"scenario": s["name"], "latency_ms": entry},
                        f"the {stat} latency in '{s['name']}' is {_num(entry['value'])} ms with "
                        "no interval to judge against the budget.",
                    )
                )
            elif bounds is None:
                found.append(("missing", None, f"scenario '{s['name']}' measured no {stat}."))
            else:
                low, high = bounds
                status = (
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
                        {"scenario": s["name"], "latency_ms": entry},
                        f"the {stat} latency in '{s['name']}' is {_interval(entry)} ms, {verb} the {_num(rule.budget_ms)} ms budget.",
                    )
                )
        if rule.max_regression is not None:
            comparison = next(
                (c for c in s.get("comparison") or [] if c.get("metric") == stat), None
            )
            if comparison is None:
                found.append(
                    (
                        "missing",
                        None,
                        f"scenario '{s['name']}' has no {stat} comparison with the baseline.",
                    )
                )
                continue
            ratio = comparison["ratio"]
            bounds = _bounds(ratio, rule.evidence)
            limit = 1.0 + rule.max_regression
            if _no_interval(ratio, rule.evidence):
                found.append(
                    (
                        "inconclusive",
                        {"scenario": s["name"], "ratio": ratio},
                        f"the {stat} latency in '{s['name']}' is {_num(ratio['value'])}x the "
                        "baseline's with no interval to judge the slowdown by.",
                    )
                )
                continue
            if bounds is None:
                found.append(("missing", None, f"the {stat} ratio in '{s['name']}' is undefined."))
                continue
            low, high = bounds
            status = "pass" if high <= limit else "fail" if low > limit else "inconclusive"
            verb = {"pass": "within", "fail": "beyond", "inconclusive": "straddling"}[status]
            found.append(
                (
                    status,
                    {"scenario": s["name"], "ratio": ratio},
                    f"the {stat} latency in '{s['name']}' is {_interval(ratio)}x the baseline's, {verb} the allowed {rule.max_regression:.0%} slowdown.",
                )
            )
    status, observed, sentence = max(found, key=lambda f: SEVERITY[f[0]])
    if status == "pass" and len(found) > 1:
        sentence = f"all {len(found)} latency checks pass; for example, {sentence}"
    return Outcome(status, observed, threshold, sentence)


def _tests(doc: Document, rule: GateRule) -> Outcome:
    tests = doc.get("tests")
    threshold = {"names": rule.names, "kinds": rule.kinds}
    if not tests:
        return Outcome("missing", None, threshold, _stage_reason(doc, "tests", "tests"))
    results = tests.get("results") or []
    chosen: list[dict[str, Any]] = []
    absent: list[str] = []
    for name in rule.names or []:
        match = [r for r in results if r["id"] == name]
        chosen.extend(match)
        if not match:
            absent.append(name)
    if rule.kinds:
        chosen.extend(r for r in results if r.get("kind") in rule.kinds and r not in chosen)
    if not rule.names and not rule.kinds:
        chosen = [r for r in results if r.get("required", True)]
    # A check that cannot apply to this model (parity of an ONNX-only model, probabilities of
    # a regressor) is not missing evidence.
    inapplicable = [r for r in chosen if _not_applicable(r)]
    chosen = [r for r in chosen if not _not_applicable(r)]
    failed = [r for r in chosen if r["status"] in ("failed", "error")]
    skipped = [r for r in chosen if r["status"] == "skipped"]
    observed = {
        "selected": len(chosen),
        "passed": sum(r["status"] == "passed" for r in chosen),
        "failed": len(failed),
        "skipped": len(skipped),
        "not_applicable": len(inapplicable),
        "absent": absent,
    }
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return Outcome(
            "fail",
            observed,
            threshold,
            f"test '{first['id']}' {first['status']}{more}: {first.get('message') or 'no message'}.",
        )
    if absent:
        return Outcome("missing", observed, threshold, f"test '{absent[0]}' did not run.")
    if skipped:
        return Outcome("missing", observed, threshold, f"test '{skipped[0]['id']}' was skipped.")
    if not chosen:
        return Outcome("missing", observed, threshold, "no test matches the rule.")
    return Outcome("pass", observed, threshold, f"all {len(chosen)} selected test(s) passed.")


def _not_applicable(result: dict[str, Any]) -> bool:
    return (
        result["status"] == "skipped" and (result.get("details") or {}).get("applicable") is False
    )


def _supply_chain(doc: Document, rule: GateRule) -> Outcome:
    image = doc.get("image")
    threshold = {
        "signed": rule.signed,
        "sbom": rule.sbom,
        "verified": rule.verified,
        "identity": rule.identity,
        "issuer": rule.issuer,
    }
    if not image:
        return Outcome(
            "missing", None, threshold, "no image was built, signed or verified for this model."
        )
    # Attestations (SBOM, evaluation) are listed beside signatures; only signatures count here.
    signatures = [s for s in image.get("signatures") or [] if s.get("kind") == "signature"]
    sbom = image.get("sbom") or {}

    def matches(sig: dict[str, Any]) -> bool:
        return (rule.identity in (None, sig.get("identity"))) and (
            rule.issuer in (None, sig.get("issuer"))
        )

    verified = [s for s in signatures if s.get("verified") and matches(s)]
    observed = {
        "digest": image.get("digest"),
        "signatures": len(signatures),
        "verified": len(verified),
        "sbom": bool(sbom.get("attached")),
    }
    problems = []
    if rule.signed and not signatures:
        problems.append("the image is not signed")
    if rule.verified and signatures and not verified:
        who = f" by {rule.identity}" if rule.identity else ""
        problems.append(f"no signature{who} verifies")
    if rule.sbom and not sbom.get("attached"):
        problems.append("no SBOM is attached")
    if problems:
        return Outcome("fail", observed, threshold, "; ".join(problems) + ".")
    return Outcome(
        "pass",
        observed,
        threshold,
        f"image {str(image.get('digest'))[:19]} is signed, verified and has an SBOM as required.",
    )


def _canary(doc: Document, rule: GateRule) -> Outcome:
    canary = doc.get("canary")
    if not canary:
        return Outcome("missing", None, {"decision": "promote"}, "no canary analysis has run.")
    decision = canary.get("decision")
    status = {"promote": "pass", "rollback": "fail"}.get(decision, "inconclusive")
    return Outcome(
        status,
        {"decision": decision},
        {"decision": "promote"},
        f"the canary analysis decided {decision}.",
    )


CHECKS: dict[str, Callable[[Document, GateRule], Outcome]] = {
    "metric": _metric,
    "non_inferiority": _non_inferiority,
    "slices": _slices,
    "latency": _latency,
    "tests": _tests,
    "supply_chain": _supply_chain,
    "canary": _canary,
}


def decide(rules: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The decision and its one-sentence reason, from evaluated rules."""
    required = [r for r in rules if r["required"]]
    failed = [r for r in required if r["status"] == "fail"]
    if failed:
        names = ", ".join(f"'{r['id']}'" for r in failed)
        return "block", f"Required rule{'s' if len(failed) > 1 else ''} {names} failed."
    unsure = [r for r in required if r["status"] in ("inconclusive", "missing")]
    if unsure:
        first = unsure[0]
        why = "is inconclusive" if first["status"] == "inconclusive" else "lacks evidence"
        more = f" (and {len(unsure) - 1} more)" if len(unsure) > 1 else ""
        observed = first.get("observed")
        needed = observed.get("rows_needed") if isinstance(observed, dict) else None
        rows = observed.get("rows") if isinstance(observed, dict) else None
        data = ""
        if needed and rows and needed <= MAX_ROWS_FACTOR * rows:
            data = f": about {_round_rows(needed):,} rows (now {rows:,}) would resolve it"
        return "hold", f"Required rule '{first['id']}' {why}{data}{more}."
    advisory = sum(r["status"] != "pass" for r in rules if not r["required"])
    note = f"; {advisory} advisory rule(s) did not pass" if advisory else ""
    return "promote", f"All {len(required)} required rule(s) passed{note}."


def binding_digest(section: dict[str, Any]) -> str:
    """sha256 of the gate section without this field: ties the decision to its evidence."""
    body = {k: v for k, v in section.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def evaluate_gate(document: Document, config: GateConfig) -> dict[str, Any]:
    """The ``gate`` section for ``document``: every rule's outcome and the decision."""
    evaluated = []
    for rule in config.rules:
        outcome = CHECKS[rule.kind](document, rule)
        evaluated.append(
            {
                "id": rule.name,
                "kind": rule.kind,
                "required": rule.required,
                "status": outcome.status,
                "observed": outcome.observed,
                "threshold": outcome.threshold,
                "explanation": outcome.explanation[0].upper() + outcome.explanation[1:],
            }
        )
    decision, reason = decide(evaluated)
    image = document.get("image") or {}
    baseline = document.get("baseline") or {}
    section: dict[str, Any] = {
        "decision": decision,
        "reason": reason,
        "fail_on": config.fail_on,
        "model_sha256": (document.get("model") or {}).get("sha256"),
        "baseline_sha256": baseline.get("sha256"),
        "image_digest": image.get("digest"),
        "data_sha256": document["data"]["sha256"],
        "config_sha256": document["config"]["sha256"],
        "counts": {s: sum(r["status"] == s for r in evaluated) for s in STATUSES},
        "rules": evaluated,
    }
    section["digest"] = binding_digest(section)
    return section


def fails(decision: str, fail_on: str) -> bool:
    """Whether ``decision`` should make the command exit 1."""
    return decision == "block" or (decision == "hold" and fail_on == "hold")
