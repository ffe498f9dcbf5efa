"""Significance tests used when comparing a candidate model with its baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats


def mcnemar_exact(candidate_only: int, baseline_only: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts.

    Under "both models are equally accurate" each discordant row is equally likely to
    favour either model, so ``candidate_only`` is Binomial(candidate_only + baseline_only,
    1/2); the distribution is symmetric, so the two-sided p-value is twice the smaller
    tail, capped at 1. Both counts 0 gives 1.0.
    """
    if candidate_only < 0 or baseline_only < 0:
        raise ValueError("discordant counts must be non-negative")
    n = candidate_only + baseline_only
    if n == 0:
        return 1.0
    tail = float(_scipy_stats.binom.cdf(min(candidate_only, baseline_only), n, 0.5))
    return min(1.0, 2.0 * tail)


def benjamini_hochberg(
    pvalues: Sequence[float] | np.ndarray, q: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg adjusted p-values and which hypotheses are rejected at FDR ``q``.

    NaN p-values (tests that could not be run) are ignored: they are not counted among
    the hypotheses, stay NaN in ``adjusted`` and are never rejected.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0.0) | (p[ok] > 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full(p.shape, np.nan)
    rejected = np.zeros(p.shape, dtype=bool)
    valid = p[ok]
    m = len(valid)
    if m:
        order = np.argsort(valid, kind="stable")
        scaled = valid[order] * m / np.arange(1, m + 1)
        # The adjusted p-value of rank i is the smallest scaled value at rank >= i.
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.minimum(monotone, 1.0)
        adjusted[ok] = out
        # The step-up rule itself (p_(i) <= i q / m), not "adjusted <= q", whose rounding
        # (p * m / i) can flip a p-value sitting exactly on the boundary.
        passing = np.flatnonzero(valid[order] <= np.arange(1, m + 1) * q / m)
        n_rejected = passing[-1] + 1 if len(passing) else 0
        reject_valid = np.zeros(m, dtype=bool)
        reject_valid[order[:n_rejected]] = True
        rejected[ok] = reject_valid
    return adjusted, rejected


def bootstrap_p_value(deltas: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of "delta == 0" from replicate deltas.

    Twice the smaller share of replicates on either side of 0 (replicates equal to 0 count
    on both sides), each share with the +1 correction (1 + count) / (1 + B) so the p-value
    is never 0; capped at 1. None when no replicate is defined.
    """
    d = np.asarray(deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return None
    below = (1.0 + np.count_nonzero(d <= 0.0)) / (1.0 + len(d))
    above = (1.0 + np.count_nonzero(d >= 0.0)) / (1.0 + len(d))
    return float(min(1.0, 2.0 * min(below, above)))
