"""The ``watch:`` section of mlci.yaml: production traffic, windows, rules and actions.

Every action is opt-in: without ``actions`` mlci watch only computes and writes.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlci.configbase import ConfigPath, Strict, enough_replicates

EstimableMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]
ESTIMABLE: tuple[EstimableMetric, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")
_ROWS = re.compile(r"^\s*(\d+)\s*rows?\s*$")


class LabelsConfig(Strict):
    """Labels that arrive after the predictions, joined to the sample by request id."""

    path: ConfigPath = Field(description="CSV or Parquet file of labels, relative to mlci.yaml.")
    key: str = Field(
        "request_id",
        description="Column holding the request id (the Open Inference Protocol request's id).",
    )
    row: str | None = Field(
        None,
        description="Column holding the row within the request, for requests of several rows "
        "(default: every label is for row 0).",
    )
    target: str | None = Field(None, description="Column holding the label (default: data.target).")


class DriftConfig(Strict):
    """How drift is decided."""

    features: list[str] | None = Field(
        None, description="Features to test (default: every feature of the sample the model reads)."
    )
    fdr: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="False discovery rate across the features of a window (Benjamini-Hochberg).",
    )
    min_psi: float | None = Field(
        0.1,
        ge=0,
        description="A significant feature drifts only when its PSI is at least this, so that "
        "tiny shifts in large windows are not alarms (null: significance alone).",
    )
    bins: int = Field(10, ge=2, le=100, description="Quantile bins of the reference for PSI.")


class EstimateConfig(Strict):
    """Performance estimated from the model's confidence before labels arrive (CBPE)."""

    metrics: list[EstimableMetric] = Field(
        default_factory=lambda: list(ESTIMABLE),
        description="Metrics to estimate (binary classifiers; multiclass: accuracy).",
    )
    calibrate: bool = Field(
        True,
        description="Calibrate the probabilities on the labelled reference (isotonic) first.",
    )
    replicates: int = Field(200, ge=50, le=10_000, description="Draws for the estimate's interval.")


class FloorRule(Strict):
    """Alarm when a metric (measured, else estimated) is below its floor."""

    metric: str = Field(description="Metric name, e.g. roc_auc.")
    min: float = Field(description="Lowest acceptable value.")
    source: Literal["any", "measured", "estimated"] = Field(
        "any", description="Judge measured values, estimated ones, or whichever the window has."
    )
    evidence: Literal["interval", "point"] = Field(
        "interval",
        description="'interval': alarm only when the whole interval is below the floor.",
    )


class IssueAction(Strict):
    """One GitHub issue per model, edited in place."""

    enabled: bool = True
    title: str | None = Field(None, description="Default: 'mlci watch: MODEL'.")
    labels: list[str] = Field(default_factory=list, description="Labels for a new issue.")


class StatusAction(Strict):
    """A commit status (or check run) on the production ref."""

    ref: str = Field(description="Branch, tag or commit that is in production, e.g. main.")
    context: str = Field("mlci watch", description="Status context (check run name).")
    kind: Literal["status", "check"] = "status"


class DispatchAction(Strict):
    """Start a workflow (``workflow_dispatch``) when a rule fires, with the evidence as input."""

    workflow: str = Field(description="Workflow file name or id, e.g. retrain.yml.")
    ref: str = Field("main", description="Branch or tag to run the workflow on.")
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Extra inputs passed as they are."
    )
    evidence_input: str = Field(
        "evidence", description="Input that receives the alarms as JSON (at most 65,535 bytes)."
    )


class PullRequestAction(Strict):
    """Open a pull request skeleton when a rule fires."""

    base: str = Field("main", description="Branch the pull request targets.")
    branch: str | None = Field(None, description="Its branch (default: mlci/watch-MODEL).")
    path: str | None = Field(
        None, description="File written on the branch (default: .mlci/watch/MODEL.md)."
    )
    title: str | None = None
    draft: bool = True


class ActionsConfig(Strict):
    """What mlci watch --github does; each one is off unless configured."""

    issue: IssueAction | None = None
    status: StatusAction | None = None
    dispatch: DispatchAction | None = None
    pull_request: PullRequestAction | None = None


class WatchConfig(Strict):
    """Production watch: traffic sample against the reference, by time window."""

    model: str | None = Field(None, description="Model to watch (default: the first model).")
    sample: str | None = Field(
        None,
        description="Traffic sample: a file, a folder or a glob relative to mlci.yaml "
        "(mlci watch --sample overrides).",
    )
    reference: ConfigPath | None = Field(
        None, description="Reference data (default: data.reference, else data.path)."
    )
    labels: LabelsConfig | None = None
    window: str = Field(
        "daily", description="'daily' (UTC days) or 'N rows' (consecutive rows in time order)."
    )
    min_rows: int = Field(50, ge=2, description="Windows with fewer rows are listed without tests.")
    history: int = Field(
        90, ge=1, le=10_000, description="Windows kept in the results (the newest)."
    )
    drift: DriftConfig = Field(default_factory=DriftConfig)
    critical_features: list[str] = Field(
        default_factory=list, description="Drift on these features is an alarm."
    )
    prediction_drift: bool = Field(False, description="Drift of the model's score is an alarm.")
    floors: list[FloorRule] = Field(
        default_factory=list, description="Performance floors; a metric below one is an alarm."
    )
    estimate: EstimateConfig = Field(default_factory=EstimateConfig)
    slices: bool = Field(True, description="Report evaluation.slices in every window.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of every interval.")
    bootstrap: int = Field(
        200, ge=0, le=100_000, description="Replicates for measured metrics' intervals."
    )
    _enough_replicates = field_validator("bootstrap")(enough_replicates)
    seed: int = Field(0, ge=0)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value.strip().lower() == "daily":
            return "daily"
        found = _ROWS.match(value)
        if found is None or int(found.group(1)) < 2:
            raise ValueError("use 'daily' or 'N rows' with N at least 2, e.g. '1000 rows'")
        return f"{int(found.group(1))} rows"

    @model_validator(mode="after")
    def _floors(self) -> WatchConfig:
        from mlci.evaluate.metrics import METRICS

        for floor in self.floors:
            if floor.metric not in METRICS:
                raise ValueError(
                    f"floors: unknown metric '{floor.metric}'; known: {', '.join(sorted(METRICS))}"
                )
        return self

    @property
    def window_rows(self) -> int | None:
        """Rows per window, or None for daily windows."""
        return None if self.window == "daily" else int(self.window.split()[0])
