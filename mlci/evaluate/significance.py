"""Significance of found slices: is a slice's error really higher than the rest?

Slice finding looks at many slices and keeps the worst, so a slice's high error can be luck.
Each slice is tested with Welch's t-test (errors inside against errors outside, one-sided) and
the p-values are adjusted with Benjamini-Hochberg across the slices tested together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mlci.evaluate.stats import benjamini_hochberg


@dataclass(frozen=True)
class SliceTest:
    """Test result of one slice."""

    p_value: float
    q_value: float
    significant: bool


def slice_significance(
    errors: np.ndarray, masks: Sequence[np.ndarray], *, fdr: float = 0.05
) -> list[SliceTest]:
    """Test whether each slice's errors exceed those of the other rows.

    Welch's t-test (``scipy.stats.ttest_ind`` with ``equal_var=False``,
    ``alternative="greater"``) of the errors inside each mask against the errors outside it,
    then Benjamini-Hochberg at false discovery rate ``fdr`` across the slices. A slice with
    fewer than two rows inside or outside gets p-value 1; when neither side varies, the
    p-value is the test's limit: 0 if the slice's errors are higher, else 1.

    Args:
        errors: per-row errors.
        masks: one boolean row mask per slice.
        fdr: false discovery rate, in (0, 1).
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"errors must be one-dimensional, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("errors must be finite (found NaN or infinity)")
    if not 0.0 < fdr < 1.0:
        raise ValueError(f"fdr must be in (0, 1), got {fdr!r}")

    pvalues = np.array([_one_sided_welch(e, _as_mask(m, e.size, i)) for i, m in enumerate(masks)])
    qvalues, rejected = benjamini_hochberg(pvalues, fdr)
    return [
        SliceTest(p_value=float(p), q_value=float(q), significant=bool(r))
        for p, q, r in zip(pvalues, qvalues, rejected, strict=True)
    ]


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, least and greatest of numbers seen in parts."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, x: np.ndarray) -> None:
        """Fold in more numbers."""
        if x.size:
            mean = float(x.mean())
            m2 = float(np.sum(np.square(x - mean)))
            self.merge(Moments(x.size, mean, m2, float(x.min()), float(x.max())))

    def merge(self, other: Moments) -> None:
        """Fold in another part's moments (Chan et al.'s pairwise update of mean and M2)."""
        if other.n == 0:
            return
        total = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / total
        self.m2 += other.m2 + delta * delta * self.n * other.n / total
        self.n = total
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)


def welch_greater(inside: Moments, outside: Moments) -> float:
    """:func:`slice_significance`'s one-sided Welch p-value, from the two sides' moments."""
    if inside.n < 2 or outside.n < 2:
        return 1.0
    if inside.low == inside.high and outside.low == outside.high:
        return 0.0 if inside.low > outside.low else 1.0
    result = stats.ttest_ind_from_stats(
        inside.mean,
        math.sqrt(inside.m2 / (inside.n - 1)),
        inside.n,
        outside.mean,
        math.sqrt(outside.m2 / (outside.n - 1)),
        outside.n,
        equal_var=False,
        alternative="greater",
    )
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p


def _as_mask(mask: np.ndarray, n_rows: int, i: int) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != (n_rows,):
        raise ValueError(f"masks[{i}] must have shape ({n_rows},), got {m.shape}")
    if m.dtype != bool:
        if m.dtype.kind not in "iu" or not np.isin(m, (0, 1)).all():
            raise ValueError(f"masks[{i}] must be boolean (or 0/1), got dtype {m.dtype}")
        m = m.astype(bool)
    return m


def _one_sided_welch(errors: np.ndarray, mask: np.ndarray) -> float:
    inside, outside = errors[mask], errors[~mask]
    if inside.size < 2 or outside.size < 2:
        return 1.0
    if np.ptp(inside) == 0 and np.ptp(outside) == 0:
        # Welch's statistic is undefined without variance; take its limit as the variance
        # vanishes, so that a slice of all-wrong rows among all-right ones is not hidden.
        return 0.0 if inside[0] > outside[0] else 1.0
    result = stats.ttest_ind(inside, outside, equal_var=False, alternative="greater")
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p
