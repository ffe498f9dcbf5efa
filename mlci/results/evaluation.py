"""The ``evaluation`` section: metrics with intervals, slices, comparison with the baseline."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlci.models.interface import Task
from mlci.results.base import Count, Estimate, Label, Number, Section
from mlci.results.fairness import Fairness
from mlci.results.importance import Importance

Verdict = Literal["better", "worse", "no detectable difference", "undefined"]


class Delta(Estimate):
    """Candidate minus baseline on the same rows, paired."""

    p_value: Number
    verdict: Verdict = Field(
        description="Whether the candidate is better or worse than the baseline, judged by "
        "whether the interval excludes zero."
    )


class MetricInfo(Section):
    """What readers must know about a metric to judge it."""

    higher_is_better: bool
    description: str = ""


class MetricTables(Section):
    """Every metric of the candidate (and baseline), and the paired deltas."""

    candidate: dict[str, Estimate]
    baseline: dict[str, Estimate] | None
    delta: dict[str, Delta] | None


class SliceMetrics(Section):
    candidate: dict[str, Estimate]
    baseline: dict[str, Estimate] | None = None


class VsRest(Section):
    """The slice's errors against every other row's (Welch's test, one-sided)."""

    error_mean: Number
    rest_error_mean: Number
    p_value: Number
    q_value: Number
    significant: bool


class SliceLineScore(Section):
    score: float
    error_sum: float
    error_mean: float
    max_error: float


class SliceResult(Section):
    """One declared or discovered slice."""

    name: str
    definition: str
    source: Literal["declared", "discovered"]
    size: Count
    status: Literal["evaluated", "too_small"]
    metrics: SliceMetrics
    delta: dict[str, Delta] | None
    flagged: bool
    reason: str | None = None
    q_value: Number = None
    vs_rest: VsRest | None = None
    sliceline: SliceLineScore | None = None

    def delta_of(self, metric: str) -> Delta | None:
        return None if self.delta is None else self.delta.get(metric)


class McNemar(Section):
    candidate_only: Count
    baseline_only: Count
    p_value: float


class Discovery(Section):
    """How SliceLine searched."""

    error: Literal["model", "regression"]
    features: list[str]
    max_level: int
    top_k: int
    alpha: float
    min_support: int
    found: Count
    holdout: float | None = Field(
        None, description="Share of rows kept out of the search to measure the found slices."
    )
    rows_searched: Count | None = None
    rows_tested: Count | None = None


class CalibrationBin(Section):
    lower: float
    upper: float
    weight: float
    mean_predicted: Number
    observed: Number


class Calibration(Section):
    """Reliability curves: in equal-width bins of predicted probability (of the positive
    class for binary models, of the predicted class otherwise), the mean prediction against
    the observed frequency."""

    kind: Literal["positive_class", "top_label"]
    bins: int = Field(ge=1)
    candidate: list[CalibrationBin]
    baseline: list[CalibrationBin] | None = None


IntervalKind = Literal["bca", "studentized-log"]


class Resampling(Section):
    """What the bootstrap resamples: rows (keyed by their index or data.id) or clusters of
    rows (data.group), hashed into buckets."""

    unit: Literal["row", "id", "group"]
    column: str | None
    buckets: int = Field(ge=1)


class Evaluation(Section):
    """Metrics with intervals, overall and per slice, and the comparison with the baseline."""

    task: Task
    classes: list[Label] | None = None
    primary_metric: str
    confidence: float = Field(gt=0, lt=1)
    interval_method: str
    interval_kinds: dict[str, IntervalKind] | None = Field(
        None,
        description="The interval each metric gets: bca (bias-corrected and accelerated) or "
        "studentized-log (bootstrap-t on the log scale); null without a bootstrap.",
    )
    resampling: Resampling | None = None
    bootstrap: Count
    seed: Count
    fdr: float | None = None
    min_slice_size: int | None = None
    metric_info: dict[str, MetricInfo] = Field(
        description="For every metric computed: which direction is better."
    )
    metrics: MetricTables
    mcnemar: McNemar | None = None
    slices: list[SliceResult]
    discovery: Discovery | None = None
    calibration: Calibration | None = None
    roc_auc_sketch_error: float | None = Field(
        None,
        ge=0,
        description="engine: stream: the largest difference a score sketch can make to any "
        "ROC AUC here (exact tables: none).",
    )
    fairness: Fairness | None = None
    importance: Importance | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_metric_info(cls, data: Any) -> Any:
        # Documents of schema 1.0 did not record metric directions: take them from mlci's
        # own table, which is where they were read from then.
        if isinstance(data, dict) and "metric_info" not in data:
            from mlci.evaluate.metrics import METRICS

            names = list((data.get("metrics") or {}).get("candidate") or {})
            data = {
                **data,
                "metric_info": {
                    n: {"higher_is_better": METRICS[n].higher_is_better}
                    for n in names
                    if n in METRICS
                },
            }
        return data

    def higher_is_better(self, metric: str) -> bool:
        info = self.metric_info.get(metric)
        return True if info is None else info.higher_is_better

    def oriented(self, metric: str, value: float) -> float:
        """``value`` signed so that positive always means better."""
        return value if self.higher_is_better(metric) else -value

    @property
    def has_baseline(self) -> bool:
        return bool(self.metrics.delta)

    def slice_named(self, name: str) -> SliceResult | None:
        return next((s for s in self.slices if s.name == name), None)

    @property
    def flagged(self) -> list[SliceResult]:
        return [s for s in self.slices if s.flagged]
