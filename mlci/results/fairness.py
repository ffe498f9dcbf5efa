"""The ``evaluation.fairness`` sub-section: per-group rates and their disparities."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Count, Estimate, Label, Section

# The rates compared between groups, and the summaries fairlearn reports.
RateName = Literal["selection_rate", "tpr", "fpr"]
DisparityName = Literal["selection_rate", "tpr", "fpr", "demographic_parity", "equalized_odds"]


class GroupRates(Section):
    """One group of a sensitive feature."""

    group: str
    size: Count
    status: Literal["evaluated", "too_small"]
    candidate: dict[str, Estimate] = Field(description="Rate name -> value with interval.")
    baseline: dict[str, Estimate] | None = None


class Disparity(Section):
    """How far apart the groups are: the largest difference and the smallest ratio.

    demographic_parity is the disparity of selection_rate; equalized_odds the worse of tpr
    and fpr (the larger difference, the smaller ratio), as fairlearn defines them.
    """

    difference: Estimate
    ratio: Estimate
    baseline_difference: Estimate | None = None
    baseline_ratio: Estimate | None = None
    difference_delta: Estimate | None = Field(
        None, description="Candidate minus baseline difference, paired."
    )
    ratio_delta: Estimate | None = Field(
        None, description="Candidate minus baseline ratio, paired."
    )


class FeatureFairness(Section):
    feature: str
    definition: str = Field(description="How the groups are formed.")
    groups: list[GroupRates]
    disparities: dict[str, Disparity] = Field(
        description="selection_rate, tpr, fpr, demographic_parity, equalized_odds."
    )


class Fairness(Section):
    """Rates of the favourable prediction per group of each sensitive feature."""

    positive_class: Label
    min_group_size: Count
    rates: list[RateName]
    features: list[FeatureFairness]

    def feature(self, name: str) -> FeatureFairness | None:
        return next((f for f in self.features if f.feature == name), None)
