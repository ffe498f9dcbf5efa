"""The ``canary`` section: what a canary analysis found under real traffic, and what it decided.

Two kinds of evidence feed one judge: a shadow replay (the same requests mirrored to the
primary and the canary: latency, errors and prediction agreement, overall and per slice) and
live metrics (Prometheus queries for both, once per interval). Every metric is judged with a
Mann-Whitney U test and a Hodges-Lehmann effect; the section records each judgement, the
score, the decision and the digests of the images that were compared, so the gate can refuse
evidence about another image.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Count, Digest, Estimate, Number, Seconds, Section, Sha256

CanaryDecision = Literal["promote", "hold", "rollback"]
Classification = Literal["pass", "high", "low", "nodata"]
BadDirection = Literal["increase", "decrease", "either"]
CheckStatus = Literal["pass", "fail", "inconclusive"]


class Samples(Section):
    """One side's samples of a metric: per interval (live) or per request (shadow)."""

    n: Count
    median: Number = None
    mean: Number = None
    min: Number = None
    max: Number = None
    values: list[Number] = Field(
        default_factory=list,
        description="The samples themselves, in the order they were taken (live metrics; "
        "left out for per-request shadow samples).",
    )


class MetricJudgement(Section):
    """One metric, primary against canary."""

    name: str
    source: Literal["live", "shadow"]
    query: str | None = Field(None, description="The PromQL template (live metrics).")
    unit: str = ""
    bad: BadDirection = Field(description="Which direction of change is harmful.")
    tolerance: float = Field(description="Allowed change, as a fraction of the primary's median.")
    tolerance_abs: float = Field(description="Allowed change, in the metric's unit.")
    allowed: Number = Field(
        description="The allowed change actually applied: the larger of the two tolerances."
    )
    weight: float
    critical: bool
    primary: Samples
    canary: Samples
    u_statistic: Number = Field(
        None, description="Mann-Whitney U of the canary's samples against the primary's."
    )
    p_value: Number = Field(None, description="Two-sided p-value of the Mann-Whitney U test.")
    method: Literal["exact", "normal", "none"] = "none"
    effect: Estimate = Field(
        description="Hodges-Lehmann estimate of the shift (canary minus primary) with its "
        "distribution-free confidence interval."
    )
    relative_effect: Number = Field(
        None, description="The shift as a fraction of the primary's median."
    )
    classification: Classification
    harmful: bool = Field(description="Whether the classification is in the harmful direction.")
    explanation: str


class Agreement(Section):
    """Prediction agreement between primary and canary on the same rows."""

    name: str = Field(description="'all rows', or the declared slice's name.")
    definition: str = ""
    rows: Count
    label_flips: Count | None = None
    flip_rate: Estimate | None = Field(
        None, description="Share of rows whose label differs (Wilson interval over rows)."
    )
    mean_abs_diff: Estimate | None = Field(
        None,
        description="Mean absolute difference of the probabilities (total variation distance "
        "per row; the value itself for regression), bootstrap interval over requests.",
    )
    max_abs_diff: Number = None
    status: CheckStatus
    explanation: str


class ShadowSide(Section):
    """What one endpoint answered during the replay."""

    requests: Count
    errors: Count
    error_rate: Estimate = Field(description="Wilson interval.")
    latency_ms: dict[str, Number] = Field(
        default_factory=dict, description="p50, p90, p99 and mean of answered requests."
    )


class Shadow(Section):
    """The mirrored replay: both endpoints got the same requests."""

    source: Literal["data", "file"]
    source_path: str
    requests: Count
    rows: Count
    batch: Count
    rate: Number = Field(description="Mirrored requests per second asked for (null: unlimited).")
    concurrency: Count
    duration_s: Seconds
    throughput: Number = Field(description="Mirrored requests per second achieved.")
    primary: ShadowSide
    canary: ShadowSide
    error_rate_delta: Estimate = Field(
        description="Canary minus primary error rate, Newcombe's hybrid score interval."
    )
    max_error_increase: float
    errors_status: CheckStatus
    errors_explanation: str
    agreement: list[Agreement] = Field(
        default_factory=list, description="All rows first, then each declared slice."
    )
    slices_note: str = ""


class Live(Section):
    """The live analysis: Prometheus queried for both targets once per interval."""

    prometheus: str
    primary_target: str
    canary_target: str
    interval_s: Seconds
    iterations_planned: Count
    iterations_run: Count
    stopped_early: bool = False
    stop_reason: str = ""


class Side(Section):
    """One of the two deployments compared."""

    url: str | None = None
    image: str | None = None
    digest: Digest | None = Field(None, description="The image's manifest digest.")
    model: str | None = None
    version: str | None = None
    model_sha256: Sha256 | None = Field(
        None, description="The model file's sha256, from the image's label when it has one."
    )


class Canary(Section):
    """The canary analysis: every judgement, the score and the decision."""

    decision: CanaryDecision = Field(
        description="promote: go to the next traffic weight; hold: stay at this weight and "
        "gather more evidence; rollback: send no traffic to the canary."
    )
    reason: str = Field("", description="The decision in one sentence.")
    reasons: list[str] = Field(default_factory=list, description="Every finding that decided.")
    weight: Number = Field(None, description="The canary's share of traffic (percent) judged.")
    next_weight: Number = Field(None, description="The share of traffic the decision asks for.")
    score: Number = Field(
        None, description="100 x the weight of metrics that were not harmful / all weights."
    )
    pass_score: float = 95.0
    marginal_score: float = 75.0
    confidence: float = 0.95
    model_sha256: Sha256 | None = Field(
        None, description="The candidate model the results document describes."
    )
    primary: Side = Field(default_factory=Side)
    canary: Side = Field(default_factory=Side)
    metrics: list[MetricJudgement] = Field(default_factory=list)
    shadow: Shadow | None = None
    live: Live | None = None
    duration_s: Seconds = 0.0
