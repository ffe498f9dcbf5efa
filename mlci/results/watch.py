"""The ``watch`` section: production traffic against the reference, window by window.

Every number that is an estimate says so: estimated metrics live under ``estimated`` and
carry ``kind: estimated`` and their method (``cbpe``), measured ones (from labels that
arrived later) under ``measured`` with ``kind: measured``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Count, Number, Section

MetricKind = Literal["measured", "estimated"]


class WatchMetric(Section):
    """One metric in one window, with its interval."""

    kind: MetricKind
    value: Number
    ci_low: Number = None
    ci_high: Number = None
    method: str  # "poisson-bootstrap" (measured), "cbpe" (estimated)


class FeatureDrift(Section):
    """Drift of one feature (or of the model's score) in one window against the reference."""

    feature: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: Number
    p_value: Number
    q_value: Number = None  # Benjamini-Hochberg across the features of the window
    psi: Number
    rows: Count  # values compared (missing ones left out)
    drifted: bool
    critical: bool = False
    largest_shift: str | None = None  # the bin or category that moved most
    reference_share: Number = None
    current_share: Number = None


class WatchSlice(Section):
    """A declared slice in one window."""

    name: str
    definition: str
    rows: Count
    share: Number
    reference_share: Number
    prediction_drift: FeatureDrift | None = None
    measured: dict[str, WatchMetric] = Field(default_factory=dict)
    estimated: dict[str, WatchMetric] = Field(default_factory=dict)


class Alarm(Section):
    """A rule that fired in a window."""

    rule: str
    kind: Literal["drift", "prediction_drift", "performance"]
    message: str
    feature: str | None = None
    metric: str | None = None
    source: MetricKind | None = None
    observed: Number = None
    threshold: Number = None


class Window(Section):
    """One time window (a day, or a run of rows) of the traffic."""

    key: str
    start: str = Field(json_schema_extra={"format": "date-time"})
    end: str = Field(json_schema_extra={"format": "date-time"})
    rows: Count
    labelled: Count = 0
    status: Literal["analysed", "too_small"]
    model_sha256: list[str] = Field(default_factory=list)  # models that served these rows
    drift: list[FeatureDrift] = Field(default_factory=list)
    prediction_drift: FeatureDrift | None = None
    measured: dict[str, WatchMetric] = Field(default_factory=dict)
    estimated: dict[str, WatchMetric] = Field(default_factory=dict)
    slices: list[WatchSlice] = Field(default_factory=list)
    alarms: list[Alarm] = Field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        """Features that drifted in this window."""
        return [d.feature for d in self.drift if d.drifted]


class WatchRule(Section):
    """A rule as it was configured: what makes an alarm."""

    id: str
    kind: Literal["drift", "prediction_drift", "performance"]
    description: str


class Calibration(Section):
    """How predicted probabilities were calibrated for the performance estimate."""

    method: Literal["isotonic", "none"]
    rows: Count = 0
    reason: str


class Watch(Section):
    """Traffic windows with drift, measured and estimated performance, and alarms."""

    sample: list[str]  # files read
    rows: Count
    reference: str
    reference_rows: Count
    window: str  # "daily" or "N rows"
    features: list[str]
    critical_features: list[str] = Field(default_factory=list)
    fdr: float
    min_psi: Number = None
    calibration: Calibration | None = None
    estimate_method: str | None = None  # "cbpe", or None when there is nothing to estimate
    estimate_note: str | None = None  # why there is no estimate
    rules: list[WatchRule] = Field(default_factory=list)
    windows: list[Window] = Field(default_factory=list)
    status: Literal["alarm", "ok", "no data"]

    @property
    def latest(self) -> Window | None:
        """The newest window that was analysed."""
        analysed = [w for w in self.windows if w.status == "analysed"]
        return analysed[-1] if analysed else None

    @property
    def alarms(self) -> list[Alarm]:
        """Alarms of the newest analysed window: what is wrong now."""
        latest = self.latest
        return list(latest.alarms) if latest else []
