"""The ``gate:`` section of mlci.yaml: promotion rules, each required or advisory."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from mlci.configbase import Strict
from mlci.results.fairness import DisparityName
from mlci.results.gate import FailOn, RuleKind

# The fields each kind of rule may set (beyond id, kind, required and evidence).
FIELDS: dict[str, tuple[str, ...]] = {
    "metric": ("metric", "min", "max", "slice"),
    "non_inferiority": ("metric", "margin", "superiority"),
    "slices": ("metric", "margin", "source"),
    "latency": ("scenario", "metric", "budget_ms", "max_regression"),
    "tests": ("names", "kinds"),
    "supply_chain": ("signed", "sbom", "verified", "identity", "issuer"),
    "canary": (),
    "fairness": ("feature", "metric", "max_difference", "min_ratio"),
}
# What a fairness rule may judge (the disparities the evaluation records).
FAIRNESS_MEASURES = get_args(DisparityName)
COMMON = ("id", "kind", "required", "evidence")


class GateRule(Strict):
    """One promotion rule."""

    id: str | None = Field(None, description="Name of the rule in reports (default: derived).")
    kind: RuleKind = Field(description="What the rule checks.")
    required: bool = Field(
        True, description="A failing required rule blocks; an advisory one only reports."
    )
    evidence: Literal["interval", "point"] = Field(
        "interval",
        description="Judge by the whole confidence interval (an interval that straddles the "
        "threshold is inconclusive) or by the point estimate alone.",
    )
    metric: str | None = Field(
        None,
        description="Metric name (metric, non_inferiority, slices: default the primary metric), "
        "latency statistic (latency: p50, p90, p95, p99, mean; default p99) or fairness measure "
        "(fairness: demographic_parity, equalized_odds, selection_rate, tpr, fpr; default "
        "demographic_parity).",
    )
    min: float | None = Field(None, description="metric: lowest acceptable value.")
    max: float | None = Field(None, description="metric: highest acceptable value.")
    slice: str | None = Field(None, description="metric: judge this slice (by name).")
    margin: float | None = Field(
        None,
        ge=0,
        description="non_inferiority: how much worse than the baseline is still acceptable; "
        "slices: how much worse a flagged slice may be.",
    )
    superiority: bool = Field(
        False, description="non_inferiority: require the candidate to be better than the baseline."
    )
    source: Literal["any", "declared", "discovered"] = Field(
        "any", description="slices: which slices the rule looks at."
    )
    scenario: str | None = Field(
        None, description="latency: one benchmark scenario (default: every scenario)."
    )
    budget_ms: float | None = Field(None, gt=0, description="latency: budget in milliseconds.")
    max_regression: float | None = Field(
        None,
        ge=0,
        description="latency: largest acceptable slowdown against the baseline (0.1: 10%).",
    )
    names: list[str] | None = Field(None, description="tests: test ids that must pass.")
    kinds: list[str] | None = Field(
        None, description="tests: kinds of tests that must all pass (default: required tests)."
    )
    signed: bool = Field(True, description="supply_chain: the image must carry a signature.")
    sbom: bool = Field(True, description="supply_chain: an SBOM must be attached to the image.")
    verified: bool = Field(True, description="supply_chain: a signature must verify.")
    identity: str | None = Field(
        None, description="supply_chain: the verified signature's signer identity."
    )
    issuer: str | None = Field(None, description="supply_chain: the signer identity's issuer.")
    feature: str | None = Field(
        None, description="fairness: one sensitive feature (default: every one evaluated)."
    )
    max_difference: float | None = Field(
        None,
        ge=0,
        le=1,
        description="fairness: largest acceptable difference of the rate between groups.",
    )
    min_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="fairness: smallest acceptable ratio of the lowest to the highest rate "
        "(0.8: the four-fifths rule).",
    )

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> GateRule:
        allowed = set(FIELDS[self.kind]) | set(COMMON)
        for name in self.model_fields_set:
            if name not in allowed:
                raise ValueError(
                    f"'{name}' does not apply to a {self.kind} rule (it takes: "
                    f"{', '.join(FIELDS[self.kind]) or 'no settings'})"
                )
        if self.kind == "metric":
            if self.metric is None:
                raise ValueError("a metric rule needs 'metric'")
            if self.min is None and self.max is None:
                raise ValueError("a metric rule needs 'min' or 'max'")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError("'min' is above 'max'")
        if self.kind == "non_inferiority" and self.margin is None:
            raise ValueError("a non_inferiority rule needs 'margin' (0 allows no loss at all)")
        if self.kind == "fairness":
            if self.max_difference is None and self.min_ratio is None:
                raise ValueError("a fairness rule needs 'max_difference' or 'min_ratio'")
            if self.metric is not None and self.metric not in FAIRNESS_MEASURES:
                raise ValueError(
                    f"unknown fairness measure '{self.metric}'; use one of "
                    f"{', '.join(FAIRNESS_MEASURES)}"
                )
        if self.kind == "latency":
            if self.budget_ms is None and self.max_regression is None:
                raise ValueError("a latency rule needs 'budget_ms' or 'max_regression'")
            if self.metric is not None and self.metric not in LATENCY_STATS:
                raise ValueError(
                    f"unknown latency statistic '{self.metric}'; use one of "
                    f"{', '.join(LATENCY_STATS)}"
                )
        return self

    @property
    def name(self) -> str:
        """The rule's id, or one derived from what it checks."""
        if self.id:
            return self.id
        parts: list[str] = [self.kind]
        if self.kind in ("metric", "non_inferiority", "slices", "latency", "fairness") and (
            self.metric
        ):
            parts.append(self.metric)
        if self.feature:
            parts.append(self.feature)
        if self.slice:
            parts.append(self.slice)
        if self.scenario:
            parts.append(self.scenario)
        if self.kind == "latency":
            parts += ["budget"] if self.budget_ms is not None else []
            parts += ["regression"] if self.max_regression is not None else []
        return ":".join(parts)


LATENCY_STATS = ("p50", "p90", "p95", "p99", "p999", "mean")


class GateConfig(Strict):
    """The promotion gate."""

    rules: list[GateRule] = Field(min_length=1, description="The rules, in report order.")
    fail_on: FailOn = Field(
        "block",
        description="Which decisions make `mlci check` and `mlci gate` exit 1 ('hold' also "
        "fails on inconclusive or missing evidence; 'never' only reports).",
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> GateConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two gate rules are named '{rule.name}'; give one an 'id'")
            seen.add(rule.name)
        return self
