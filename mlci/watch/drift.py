"""Drift of each feature in a window against the reference, decided across features.

The statistics are the data checks' own (``mlci.testing.data_checks``: PSI over the
reference's quantile bins or categories, Kolmogorov-Smirnov for numeric features, chi-square
for categorical ones); p-values are adjusted across the features of a window with
Benjamini-Hochberg (``mlci.evaluate.significance``). Whether a feature *drifted* is a
:class:`DriftDecision`, a small seam: the default asks for significance and a minimum PSI, and
an effect-size decision (a distance with its interval) can take its place without touching
the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlci.evaluate.stats import benjamini_hochberg
from mlci.results.watch import FeatureDrift
from mlci.testing.data_checks import Drift, categorical_drift, numeric_drift

PSI_FLOOR = 1e-4


class DriftDecision(Protocol):
    """Whether one feature drifted, given its statistics and its adjusted p-value."""

    def __call__(self, drift: Drift, q_value: float) -> bool: ...


@dataclass(frozen=True)
class SignificantAndLarge:
    """Drifted: significant after Benjamini-Hochberg at ``fdr``, and PSI at least ``min_psi``.

    Significance alone flags shifts too small to matter once windows hold many rows; PSI
    alone flags noise in small windows. Under no drift at all, a window is flagged with
    probability at most ``fdr`` (Benjamini-Hochberg controls the family-wise error then).
    """

    fdr: float = 0.05
    min_psi: float | None = 0.1

    def __call__(self, drift: Drift, q_value: float) -> bool:
        return q_value <= self.fdr and (self.min_psi is None or drift.psi >= self.min_psi)


def feature_drift(
    reference: np.ndarray, current: np.ndarray, kind: str, bins: int = 10
) -> tuple[Drift, int]:
    """The data checks' drift statistics of one feature, and how many values were compared."""
    if kind == "numeric":
        cur = np.asarray(current, dtype=np.float64)
        present = int(np.isfinite(cur).sum())
        if present == 0:
            return Drift("numeric", 0.0, "ks", 0.0, 1.0, []), 0
        return numeric_drift(reference, cur, bins, PSI_FLOOR), present
    from mlci.data import missing_mask

    present = int((~missing_mask(current)).sum())
    if present == 0:
        return Drift("categorical", 0.0, "chi2", 0.0, 1.0, []), 0
    return categorical_drift(reference, current, PSI_FLOOR), present


def window_drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    features: Sequence[str],
    decide: DriftDecision,
    *,
    bins: int = 10,
    critical: Sequence[str] = (),
) -> list[FeatureDrift]:
    """Every feature's drift in one window, with Benjamini-Hochberg q-values and decisions."""
    found = [feature_drift(reference[f], current[f], _kind(kinds[f]), bins) for f in features]
    pvalues = np.array([min(1.0, max(0.0, d.p_value)) for d, _ in found])
    qvalues = benjamini_hochberg(np.nan_to_num(pvalues, nan=1.0))[0] if found else pvalues
    return [
        to_result(name, drift, rows, float(q), decide, name in critical)
        for name, (drift, rows), q in zip(features, found, qvalues, strict=True)
    ]


def to_result(
    name: str, drift: Drift, rows: int, q_value: float, decide: DriftDecision, critical: bool
) -> FeatureDrift:
    """The results document's record of one feature's drift."""
    top = max(
        drift.bins, key=lambda b: abs(b["current_share"] - b["reference_share"]), default=None
    )
    return FeatureDrift(
        feature=name,
        kind="numeric" if drift.kind == "numeric" else "categorical",
        test="ks" if drift.test == "ks" else "chi2",
        statistic=drift.statistic,
        p_value=drift.p_value,
        q_value=q_value,
        psi=drift.psi,
        rows=rows,
        drifted=rows > 0 and decide(drift, q_value),
        critical=critical,
        largest_shift=None if top is None else str(top["bin"]),
        reference_share=None if top is None else top["reference_share"],
        current_share=None if top is None else top["current_share"],
    )


def _kind(kind: str) -> str:
    return "numeric" if kind == "numeric" else "categorical"
