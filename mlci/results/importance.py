"""The ``evaluation.importance`` sub-section: what each model's predictions rest on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Count, Estimate, Section

Reliance = Literal["more", "less", "no detectable difference", "undefined"]


class FeatureImportance(Section):
    """How much worse a model gets when one feature is shuffled (0: it does not use it)."""

    feature: str
    candidate: Estimate
    baseline: Estimate | None = None
    delta: Estimate | None = Field(None, description="Candidate minus baseline, paired.")
    reliance: Reliance | None = Field(
        None,
        description="Whether the candidate relies more or less on the feature than the "
        "baseline (the delta's interval excludes zero).",
    )


class Importance(Section):
    """Permutation importance: the loss in ``metric`` when a feature's values are shuffled,
    averaged over ``repeats`` shuffles, with bootstrap intervals over the rows."""

    method: Literal["permutation"] = "permutation"
    metric: str
    repeats: Count
    rows: Count
    features: list[FeatureImportance] = Field(description="Most important to the candidate first.")

    @property
    def more(self) -> list[FeatureImportance]:
        return [f for f in self.features if f.reliance == "more"]

    @property
    def less(self) -> list[FeatureImportance]:
        return [f for f in self.features if f.reliance == "less"]
