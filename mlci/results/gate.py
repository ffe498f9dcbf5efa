"""The ``gate`` section: every rule's outcome and one decision, bound to what was judged."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, JsonValue, model_validator

from mlci.results.base import Count, Digest, Section, Sha256

RuleKind = Literal[
    "metric", "non_inferiority", "slices", "latency", "tests", "supply_chain", "canary", "fairness"
]
RuleStatus = Literal["pass", "fail", "inconclusive", "missing"]
Decision = Literal["promote", "hold", "block"]
FailOn = Literal["block", "hold", "never"]
RULE_STATUSES: tuple[RuleStatus, ...] = ("pass", "fail", "inconclusive", "missing")


class RuleResult(Section):
    """One rule's outcome."""

    id: str
    kind: RuleKind
    required: bool
    status: RuleStatus
    observed: JsonValue = Field(description="The evidence the rule looked at.")
    threshold: JsonValue = Field(description="What the rule required of it.")
    observed_text: str = Field("", description="The evidence in a few words, for reports.")
    threshold_text: str = Field("", description="The requirement in a few words, for reports.")
    explanation: str

    @model_validator(mode="before")
    @classmethod
    def _texts(cls, data: Any) -> Any:
        # Documents of schema 1.0 did not carry the texts: derive them as the gate does.
        if isinstance(data, dict):
            for field in ("observed", "threshold"):
                if f"{field}_text" not in data:
                    data = {**data, f"{field}_text": evidence_text(data.get(field))}
        return data


class Gate(Section):
    """The promotion gate: every rule's outcome and one decision, bound to the digests of
    what was evaluated."""

    decision: Decision = Field(
        description="block: a required rule failed; hold: a required rule is inconclusive or "
        "lacks evidence; promote: every required rule passed."
    )
    reason: str
    fail_on: FailOn = "block"
    model_sha256: Sha256 | None
    baseline_sha256: Sha256 | None = None
    image_digest: Digest | None
    data_sha256: Sha256
    config_sha256: Sha256 | None = None
    counts: dict[str, Count] = Field(default_factory=dict)
    rules: list[RuleResult]
    digest: Sha256 = Field(
        description="sha256 of the canonical JSON of this section without this field "
        "(sorted keys, no spaces)."
    )

    def binding(self) -> str:
        """The digest this section's content should have."""
        return binding_digest(self.model_dump(mode="json", exclude={"digest"}))

    def fails(self, fail_on: FailOn | None = None) -> bool:
        """Whether this decision makes a command exit 1."""
        return fails(self.decision, fail_on or self.fail_on)


def binding_digest(body: dict[str, JsonValue]) -> str:
    """sha256 of canonical JSON: ties a decision to its evidence."""
    body = {k: v for k, v in body.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fails(decision: Decision, fail_on: FailOn) -> bool:
    """Whether ``decision`` should make the command exit 1 under ``fail_on``."""
    if fail_on == "never":
        return False
    return decision == "block" or (decision == "hold" and fail_on == "hold")


def evidence_text(value: Any) -> str:
    """A rule's observed value or threshold in one short cell."""
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        if "value" in value and ("ci_low" in value or "ci_high" in value):
            text = _interval(value)
            label = value.get("slice") or " ".join(
                str(value[k]) for k in ("feature", "measure") if value.get(k)
            )
            return f"{label}: {text}" if label else text
        if "ratio" in value:
            return f"{value.get('scenario')}: {evidence_text(value['ratio'])}×"
        if "latency_ms" in value:
            return f"{value.get('scenario')}: {evidence_text(value['latency_ms'])} ms"
        parts = []
        for key, item in value.items():
            if item is None or item == [] or (item is False and key == "superiority"):
                continue
            if isinstance(item, bool):
                shown = "yes" if item else "no"
            elif isinstance(item, float):
                shown = _num(item)
            elif isinstance(item, list):
                shown = ", ".join(map(str, item))
            else:
                shown = str(item)
            parts.append(f"{key} {shown}")
        return "; ".join(parts) or "n/a"
    if isinstance(value, float):
        return _num(value)
    return str(value)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _interval(entry: dict[str, Any]) -> str:
    text = _num(entry.get("value"))
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{_num(entry['ci_low'])}, {_num(entry['ci_high'])}]"
    return text
