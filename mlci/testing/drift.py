"""How far a feature moved, as distances with bootstrap intervals.

A p-value answers "is there any difference at all?". With a million rows every difference is
significant, however small, so a drift test on p-values flags nearly every feature of a large
dataset. mlci decides drift by the size of the change instead, each with an interval:

* numeric features: the Wasserstein distance (the area between the two cumulative
  distributions) divided by the reference's standard deviation, so 0.1 means "the values
  moved by a tenth of a standard deviation on average" (as scipy and Evidently compute it);
* categorical features: the Jensen-Shannon distance between the category shares (natural
  logarithm, as scipy computes it: between 0 and sqrt(ln 2) = 0.83);
* both: the population stability index over the reference's quantile bins or categories.

The sampling error of a distance shrinks like 1/sqrt(n), so judging the interval against a fixed
threshold makes false alarms vanish, not grow, as the data grows, while a shift of a given size
is caught ever more surely.

Intervals come from the bucketed Poisson bootstrap of :mod:`mlci.evaluate.bootstrap`, applied
to each sample separately (both are samples): per bucket of rows a histogram, per replicate a
weighted sum of bucket histograms, so ten million rows cost one pass plus a small matrix
product. The Wasserstein distance's replicates are its exact value plus the replicate's
deviation on a fine grid of pooled quantiles, as the evaluation does for ROC AUC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlci.evaluate.bootstrap import BucketBootstrap, percentile_interval

# Fine grid for resampling the Wasserstein distance.
GRID = 256
# Rows of each sample used to place the grid (quantiles of a sample are as good as any).
GRID_SAMPLE = 200_000
MAX_BUCKETS = 500
# Bucket histograms larger than this many cells use fewer buckets.
MAX_CELLS = 4_000_000
# Evidently's floor of the normalising standard deviation, so a constant reference divides
# by something.
MIN_SCALE = 1e-3


@dataclass(frozen=True)
class Distance:
    """A distance between the reference and current samples, with its interval."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None

    def bounds(self, evidence: str) -> tuple[float, float]:
        if evidence == "point" or self.ci_low is None or self.ci_high is None:
            return self.value, self.value
        return self.ci_low, self.ci_high


# --------------------------------------------------------------------------- point values


def wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """The exact first Wasserstein distance between two samples (scipy's definition)."""
    u = np.sort(np.asarray(reference, dtype=np.float64))
    v = np.sort(np.asarray(current, dtype=np.float64))
    return wasserstein_and_ks(u, v)[0]


def wasserstein_and_ks(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Wasserstein distance and Kolmogorov-Smirnov statistic of two sorted samples.

    Both come from the two empirical distribution functions on the merged values: the area
    between them and their largest gap.
    """
    if not len(u) or not len(v):
        return float("nan"), float("nan")
    both = np.concatenate([u, v])
    # Two sorted runs: a stable sort merges them in linear time.
    order = np.argsort(both, kind="stable")
    values = both[order]
    from_u = order < len(u)
    gap = np.cumsum(from_u) / len(u) - np.cumsum(~from_u) / len(v)
    steps = np.diff(values)
    area = float(np.abs(gap[:-1]) @ steps)
    # Both functions are read after the last of equal values.
    ends = np.flatnonzero(steps > 0)
    ks = float(np.abs(gap[ends]).max()) if len(ends) else 0.0
    return area, ks


def ks_p_value(statistic: float, n1: int, n2: int) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value, as scipy's ``ks_2samp`` gives it for
    samples this large (its asymptotic method: exact tails of the one-sample distribution at
    the effective size)."""
    from scipy.stats import kstwo

    effective = round(n1 * n2 / (n1 + n2))
    return float(np.clip(kstwo.sf(statistic, effective), 0.0, 1.0))


def scale(reference: np.ndarray) -> float:
    """What the Wasserstein distance is divided by: the reference's standard deviation."""
    return max(float(np.std(reference)), MIN_SCALE)


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (natural log) between count vectors along the last axis."""
    p = np.asarray(ref_counts, dtype=np.float64)
    q = np.asarray(cur_counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / p.sum(axis=-1, keepdims=True)
        q = q / q.sum(axis=-1, keepdims=True)
        m = (p + q) / 2
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum((kl_p + kl_q) / 2, 0.0)))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, floor: float) -> np.ndarray:
    """Population stability index along the last axis: ``sum((c - r) ln(c / r))``, floored."""
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    r = np.maximum(ref / np.maximum(ref.sum(axis=-1, keepdims=True), 1.0), floor)
    c = np.maximum(cur / np.maximum(cur.sum(axis=-1, keepdims=True), 1.0), floor)
    return np.asarray(np.sum((c - r) * np.log(c / r), axis=-1))


# --------------------------------------------------------------------------- resampling


class Resampler:
    """Bootstrap replicates of histograms of one sample (``None`` replicates: point only)."""

    def __init__(self, n_rows: int, n_boot: int, seed: int, cells: int) -> None:
        self.boot: BucketBootstrap | None = None
        self.bucket = np.zeros(0, dtype=np.intp)
        if n_boot > 0 and n_rows > 0:
            buckets = max(20, min(MAX_BUCKETS, MAX_CELLS // max(cells, 1)))
            self.boot = BucketBootstrap(n_boot, seed=seed, n_buckets=buckets)
            self.bucket = self.boot.assign(np.arange(n_rows))

    def counts(self, codes: np.ndarray, k: int) -> np.ndarray | None:
        """(n_boot, k) replicate counts of codes ``0..k-1`` (negative codes are left out)."""
        if self.boot is None:
            return None
        bucket = self.bucket
        keep = codes >= 0
        if not keep.all():
            bucket, codes = bucket[keep], codes[keep]
        flat = np.bincount(bucket * k + codes, minlength=self.boot.n_buckets * k)
        return self.boot.resample(flat.reshape(self.boot.n_buckets, k).astype(np.float64))


def _interval(
    value: float, replicates: np.ndarray | None, confidence: float
) -> tuple[float | None, float | None]:
    if replicates is None or not np.isfinite(value):
        return None, None
    return percentile_interval(replicates, confidence, value)


def _seeds(seed: int) -> tuple[int, int]:
    ref, cur = np.random.SeedSequence([seed, 7919]).generate_state(2)
    return int(ref), int(cur)


def numeric_distances(
    reference: np.ndarray,
    current: np.ndarray,
    edges: np.ndarray,
    *,
    floor: float,
    n_boot: int,
    confidence: float,
    seed: int,
    area: float | None = None,
) -> tuple[Distance, Distance]:
    """Normalised Wasserstein distance and PSI (over bins cut at ``edges``), with intervals.

    ``reference`` and ``current`` hold finite values only, sorted: every histogram is then
    read off by a binary search per edge rather than per row. ``area`` is the unnormalised
    distance when the caller has it already.
    """
    norm = scale(reference)
    if area is None:
        area = wasserstein_and_ks(reference, current)[0]
    exact = area / norm
    grid = _grid(reference, current, seed)
    g = len(grid) + 1
    k = len(edges) + 1
    ref_seed, cur_seed = _seeds(seed)
    rs_ref = Resampler(len(reference), n_boot, ref_seed, g + k)
    rs_cur = Resampler(len(current), n_boot, cur_seed, g + k)
    ref_fine = sorted_bins(reference, grid)
    cur_fine = sorted_bins(current, grid)
    ref_bins = sorted_bins(reference, edges)
    cur_bins = sorted_bins(current, edges)
    psi_value = float(
        psi(np.bincount(ref_bins, minlength=k), np.bincount(cur_bins, minlength=k), floor)
    )
    w_reps = psi_reps = None
    ref_f, cur_f = rs_ref.counts(ref_fine, g), rs_cur.counts(cur_fine, g)
    if ref_f is not None and cur_f is not None:
        binned_all = _binned_wasserstein(
            np.bincount(ref_fine, minlength=g)[None, :].astype(np.float64),
            np.bincount(cur_fine, minlength=g)[None, :].astype(np.float64),
            grid,
        )[0]
        w_reps = exact + (_binned_wasserstein(ref_f, cur_f, grid) - binned_all) / norm
        ref_c, cur_c = rs_ref.counts(ref_bins, k), rs_cur.counts(cur_bins, k)
        assert ref_c is not None and cur_c is not None
        psi_reps = psi(ref_c, cur_c, floor)
    return (
        Distance(exact, *_interval(exact, w_reps, confidence)),
        Distance(psi_value, *_interval(psi_value, psi_reps, confidence)),
    )


def sorted_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, values, side="right")`` for sorted ``values``, in O(edges log n)."""
    starts = np.searchsorted(values, edges, side="left")
    counts = np.diff(np.concatenate([[0], starts, [len(values)]]))
    return np.repeat(np.arange(len(edges) + 1), counts)


def _grid(reference: np.ndarray, current: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 104729])
    parts = [
        x if len(x) <= GRID_SAMPLE else x[rng.integers(0, len(x), GRID_SAMPLE)]
        for x in (reference, current)
    ]
    pooled = np.concatenate(parts)
    return np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, GRID)))


def _binned_wasserstein(
    ref_counts: np.ndarray, cur_counts: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """Wasserstein distance of histograms over ``grid`` (rows: replicates).

    Bin j + 1 holds the values in [grid[j], grid[j+1]); between two grid points both
    cumulative distributions are taken as flat.
    """
    ref_cdf = np.cumsum(ref_counts, axis=1) / ref_counts.sum(axis=1, keepdims=True)
    cur_cdf = np.cumsum(cur_counts, axis=1) / cur_counts.sum(axis=1, keepdims=True)
    gaps = np.abs(ref_cdf - cur_cdf)[:, 1:-1]
    return np.asarray(gaps @ np.diff(grid))


def categorical_distances(
    ref_codes: np.ndarray,
    cur_codes: np.ndarray,
    k: int,
    *,
    floor: float,
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple[Distance, Distance]:
    """Jensen-Shannon distance and PSI between category shares, with intervals.

    Codes are ``0..k-1``; negative codes (missing values) are left out.
    """
    ref_counts = np.bincount(ref_codes[ref_codes >= 0], minlength=k)
    cur_counts = np.bincount(cur_codes[cur_codes >= 0], minlength=k)
    js = float(jensen_shannon(ref_counts, cur_counts))
    psi_value = float(psi(ref_counts, cur_counts, floor))
    ref_seed, cur_seed = _seeds(seed)
    ref_c = Resampler(len(ref_codes), n_boot, ref_seed, k).counts(ref_codes, k)
    cur_c = Resampler(len(cur_codes), n_boot, cur_seed, k).counts(cur_codes, k)
    js_reps = psi_reps = None
    if ref_c is not None and cur_c is not None:
        js_reps = jensen_shannon(ref_c, cur_c)
        psi_reps = psi(ref_c, cur_c, floor)
    return (
        Distance(js, *_interval(js, js_reps, confidence)),
        Distance(psi_value, *_interval(psi_value, psi_reps, confidence)),
    )
