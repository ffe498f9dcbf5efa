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


def normal_p_value(delta: float, replicate_deltas: np.ndarray) -> float | None:
    """Two-sided p-value of "delta == 0" from the bootstrap standard error of the delta.

    ``2 * (1 - Phi(|delta| / se))`` with ``se`` the standard deviation of the replicate
    deltas (NaN replicates ignored). Unlike counting replicates beyond 0, which can never go
    below ``2 / (B + 1)``, it is not floored by the number of replicates, so a clearly worse
    slice among hundreds can survive Benjamini-Hochberg's ``q / m``. Its calibration (uniform
    under the null) is checked by ``benchmarks/bench_intervals.py``. None when fewer than two
    replicates are defined; 1.0 for a delta of exactly 0 with no spread. Values below 1e-300
    (beyond what a double holds) are reported as 1e-300.
    """
    d = np.asarray(replicate_deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) < 2 or not np.isfinite(delta):
        return None
    se = float(np.std(d, ddof=1))
    if se <= 0.0:
        return 1.0 if delta == 0.0 else P_FLOOR
    p = 2.0 * float(_scipy_stats.norm.sf(abs(delta) / se))
    return min(1.0, max(p, P_FLOOR))


P_FLOOR = 1e-300


def flag_worse(
    values: Sequence[float | None],
    p_values: Sequence[float | None],
    excludes_zero: Sequence[bool],
    higher_is_better: bool,
    fdr: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Which slices are significantly worse for the candidate, with Benjamini-Hochberg.

    Each slice has its delta (candidate - baseline), the delta's two-sided p-value and
    whether its interval excludes zero. Slices only matter when worse, so each two-sided p
    becomes the one-sided p of "worse" (half of it on the worse side, 1 - p/2 on the better
    side), Benjamini-Hochberg controls the false discovery rate ``fdr`` across all slices,
    and a slice is flagged when it is rejected, its delta is on the worse side and its
    interval excludes zero. Returns the q-values and the flags.
    """
    one_sided = []
    worse = []
    for value, p in zip(values, p_values, strict=True):
        if p is None or value is None or value != value:
            one_sided.append(1.0)
            worse.append(False)
            continue
        on_worse_side = value < 0 if higher_is_better else value > 0
        one_sided.append(p / 2 if on_worse_side else 1.0 - p / 2)
        worse.append(on_worse_side)
    q_values, rejected = benjamini_hochberg(np.asarray(one_sided, dtype=float), fdr)
    flagged = rejected & np.asarray(worse, dtype=bool) & np.asarray(excludes_zero, dtype=bool)
    return q_values, flagged
