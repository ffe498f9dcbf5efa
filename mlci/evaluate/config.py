"""The ``evaluation.fairness`` and ``evaluation.importance`` settings of mlci.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlci.configbase import Strict

FairnessMetric = Literal["selection_rate", "tpr", "fpr"]
FAIRNESS_METRICS: tuple[FairnessMetric, ...] = ("selection_rate", "tpr", "fpr")


class SensitiveFeature(Strict):
    """A sensitive feature whose values (or bins) are the groups compared."""

    feature: str = Field(description="Column holding the sensitive attribute.")
    bins: list[float] | None = Field(
        None,
        description="Bin edges of a numeric attribute, e.g. ages [18, 25, 35, 50, 65, 100]: "
        "groups [a, b), the last one closed.",
    )

    @model_validator(mode="after")
    def _edges(self) -> SensitiveFeature:
        if self.bins is not None and (len(self.bins) < 2 or sorted(set(self.bins)) != self.bins):
            raise ValueError("'bins' needs at least two strictly increasing edges")
        return self


class FairnessConfig(Strict):
    """Per-group rates of a binary classifier for declared sensitive features."""

    features: list[str | SensitiveFeature] = Field(
        min_length=1,
        description="Sensitive features: column names, or {feature, bins} for numeric ones.",
    )
    metrics: list[FairnessMetric] = Field(
        default_factory=lambda: list(FAIRNESS_METRICS),
        min_length=1,
        description="selection_rate (share predicted positive), tpr (true-positive rate), fpr "
        "(false-positive rate); demographic parity and equalized odds follow from them.",
    )
    positive_class: str | int | float | bool | None = Field(
        None,
        description="The favourable prediction whose rates are compared (default: the "
        "model's positive class, the second of its two classes).",
    )
    min_group_size: int | None = Field(
        None,
        ge=1,
        description="Groups with fewer rows are listed but left out of the differences and "
        "ratios (default: evaluation.min_slice_size).",
    )
    max_groups: int = Field(
        50, ge=2, le=1000, description="Most groups one feature may have (bin numeric ones)."
    )

    def feature_specs(self) -> list[SensitiveFeature]:
        return [SensitiveFeature(feature=f) if isinstance(f, str) else f for f in self.features]


class ImportanceConfig(Strict):
    """Permutation importance of every feature, for the candidate and the baseline."""

    repeats: int = Field(5, ge=1, le=100, description="Shuffles of each feature.")
    max_rows: int = Field(
        10_000,
        ge=100,
        description="Rows drawn (seeded) from the evaluation data to shuffle; each feature "
        "costs 2 x repeats predictions of this many rows.",
    )
    metric: str | None = Field(
        None, description="Metric whose loss measures importance (default: the primary metric)."
    )
    features: list[str] | None = Field(
        None, description="Features to shuffle (default: every feature either model reads)."
    )
