"""The ``tests`` section: every model test and data check with its outcome."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from mlci.results.base import Count, Open, Seconds, Section

# The kinds of check mlci.yaml's tests section can declare (the configuration reads this list).
CheckKind = Literal[
    "metric",
    "invariance",
    "directional",
    "robustness",
    "contract",
    "schema",
    "missing",
    "range",
    "drift",
    "multivariate_drift",
    "integrity",
    "trivial_model",
]
TestKind = CheckKind | Literal["pytest"]
TestStatus = Literal["passed", "failed", "error", "skipped"]


class ModelTestSummary(Section):
    total: Count
    passed: Count
    failed: Count
    error: Count
    skipped: Count


class ModelTestDetails(Open):
    """Evidence: a few examples of offending rows or values, their count, and statistics of
    the kind."""

    examples: list[JsonValue] = Field(default_factory=list)
    count: Count = 0


class ModelTestResult(Section):
    id: str = Field(min_length=1, description="Unique and stable name of the test.")
    kind: TestKind
    status: TestStatus
    message: str = Field(description="One sentence: what was found.")
    observed: float | str | None = Field(description="The statistic the test measured.")
    threshold: float | str | None = Field(description="The limit it was held to.")
    duration_s: Seconds
    required: bool = Field(description="False: a failure is advisory for the gate.")
    details: ModelTestDetails

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "error")

    @property
    def not_applicable(self) -> bool:
        """Skipped because the check cannot apply to this model: not missing evidence."""
        extra = self.details.model_extra or {}
        return self.status == "skipped" and extra.get("applicable") is False


class ModelTests(Section):
    """The tests stage: every model test and data check with its outcome."""

    summary: ModelTestSummary
    junit: str = Field(min_length=1, description="The JUnit XML file written next to results.json.")
    results: list[ModelTestResult]

    @property
    def required_failures(self) -> int:
        return sum(r.required and r.failed for r in self.results)
