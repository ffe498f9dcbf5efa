"""Seeded Poisson bootstrap over buckets of rows.

Method
------
The ordinary bootstrap redraws n rows with replacement; each row's multiplicity is then
Multinomial(n, 1/n), which for large n is indistinguishable from independent Poisson(1)
counts. The *Poisson bootstrap* uses independent Poisson(1) multiplicities directly; it is
the standard large-scale variant (Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating
uncertainty for massive data streams") because replicates need no global coordination and
slices of the data are resampled consistently.

To keep the work per replicate independent of n, rows are grouped into at most
``max_buckets`` buckets and whole buckets are resampled:

* when n <= max_buckets every row is its own bucket: an ordinary row-level Poisson
  bootstrap;
* otherwise each row is assigned to a bucket uniformly at random, once per bootstrap
  (seeded). The assignment ignores the data, so the buckets are exchangeable, nearly
  independent samples of the same distribution. Each metric is a smooth function of sums
  over rows; to first order its sampling error is a sum of centred per-row influence
  values, and its bootstrap variance is the sum of squared influence per resampling unit.
  With random buckets the cross terms between rows of a bucket vanish in expectation, so
  the sum of squared bucket influences estimates the same variance as the sum of squared
  row influences: resampling random buckets is as valid as resampling rows, at a cost that
  no longer grows with n. (Contiguous blocks would not have this property, because
  neighbouring rows can be correlated.)

Every metric in :mod:`mlci.evaluate.metrics` is a function of per-row sums, so for each
call the statistics are computed once per bucket (one ``np.bincount``), replicate b's
statistics are ``W[b] @ bucket_stats`` with ``W[b, j] ~ Poisson(1)``, and the metric is
evaluated on all replicates at once: the cost is O(n) once plus O(B x buckets), never
O(B x n). The same ``W`` serves every slice of the data and both models of a comparison,
which makes slice estimates consistent and comparisons *paired*: the per-replicate delta
cancels the variation the two models share.

ROC AUC and average precision are smooth functions of per-score counts of positive and
negative rows, which are sums too, but keeping every distinct score per bucket would cost
O(n) per replicate. Instead each bucket keeps a histogram over a fixed grid of (at most 256)
quantile bins of the scores; replicate b's *binned* metric minus the binned metric on all
rows is the replicate's deviation, and it is added to the exact point value. Binning only
treats scores within one bin as ties, which moves the metric a little but its sampling
spread hardly at all; with no more distinct scores than bins it is exact.

Intervals are percentile intervals of the replicate values (widened, in the rare cases
where they miss it, to contain the point value). Replicates on which a metric is
undefined (for example a resampled slice with no positive row) are left out; if more than
half are undefined, there is no interval.
"""

from __future__ import annotations

import numpy as np


class BucketBootstrap:
    """The resampling weights and bucket assignment shared by every call of an evaluator."""

    def __init__(self, n_rows: int, n_boot: int, *, seed: int = 0, max_buckets: int = 1000) -> None:
        if n_rows < 0 or n_boot < 1 or max_buckets < 1:
            raise ValueError("need n_rows >= 0, n_boot >= 1 and max_buckets >= 1")
        assign_seed, weight_seed = np.random.SeedSequence(seed).spawn(2)
        self.n_rows = n_rows
        self.n_boot = n_boot
        self.row_level = n_rows <= max_buckets
        self.n_buckets = max(n_rows, 1) if self.row_level else max_buckets
        self._bucket: np.ndarray | None = None
        if not self.row_level:
            rng = np.random.default_rng(assign_seed)
            self._bucket = rng.integers(0, max_buckets, size=n_rows, dtype=np.intp)
        rng = np.random.default_rng(weight_seed)
        weights = rng.poisson(1.0, size=(n_boot, self.n_buckets)).astype(np.float64)
        weights.flags.writeable = False
        self.weights = weights

    def buckets(self, rows: np.ndarray | None) -> np.ndarray:
        """Bucket id of each selected row (``rows`` is an index array, or None for all)."""
        if self._bucket is None:
            return np.arange(self.n_rows, dtype=np.intp) if rows is None else rows
        return self._bucket if rows is None else np.take(self._bucket, rows)

    def resample(self, bucket_stats: np.ndarray) -> np.ndarray:
        """Replicate statistics ``W @ bucket_stats``: (n_buckets, ...) -> (n_boot, ...)."""
        flat = bucket_stats.reshape(bucket_stats.shape[0], -1)
        used = np.flatnonzero(flat.any(axis=1))
        # A small slice touches few buckets; empty ones add nothing to any replicate.
        if len(used) < 0.75 * len(flat):
            product = self.weights[:, used] @ flat[used]
        else:
            product = self.weights @ flat
        return np.asarray(product.reshape(self.n_boot, *bucket_stats.shape[1:]))


def percentile_interval(
    replicates: np.ndarray,
    confidence: float,
    point: float | None = None,
    *,
    min_defined: float = 0.5,
) -> tuple[float | None, float | None]:
    """Percentile interval of 1-D ``replicates`` ignoring NaN; (None, None) if too few.

    When ``point`` is given the interval is widened to contain it: a percentile interval
    can miss the estimate on tiny or very skewed samples, and a report showing a value
    outside its own interval would only confuse; widening can only raise coverage.
    """
    reps = np.asarray(replicates, dtype=np.float64)
    finite = reps[np.isfinite(reps)]
    if len(finite) == 0 or len(finite) < min_defined * len(reps):
        return None, None
    alpha = 1.0 - confidence
    low, high = (float(v) for v in np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0]))
    if point is not None and np.isfinite(point):
        low, high = min(low, point), max(high, point)
    return low, high
