"""Seeded Poisson bootstrap over hashed buckets of resampling units, with BCa intervals.

Method
------
The ordinary bootstrap redraws n rows with replacement; each row's multiplicity is then
Multinomial(n, 1/n), which for large n is indistinguishable from independent Poisson(1)
counts. The *Poisson bootstrap* uses independent Poisson(1) multiplicities directly; it is
the standard large-scale variant (Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating
uncertainty for massive data streams") because replicates need no global coordination and
slices of the data are resampled consistently.

Resampling units and buckets
----------------------------
What is resampled is a *unit*: a row (keyed by the ``data.id`` column, else by its row
index), or a whole cluster of rows that share a ``data.group`` value (users, sessions), which
is the cluster bootstrap: rows of one cluster are correlated, so they must move together or
the intervals come out too narrow.

To keep the work per replicate independent of n, units are hashed into ``n_buckets`` (1,000)
buckets and whole buckets are resampled. A unit's bucket is a seeded 64-bit hash of its key
modulo the bucket count, and the weight matrix ``W`` (``n_boot x n_buckets`` Poisson(1)
counts) is drawn from the seed alone. So the weight a unit gets in every replicate is a
function of (seed, key) only: never of row order, of how many rows came before, or of which
shard a row sits in. Per-bucket statistics of two shards of the data therefore simply add,
and a sharded evaluation gives exactly the intervals of one run.

Random buckets are as valid as units: each metric is a smooth function of sums over rows;
to first order its sampling error is a sum of centred per-unit influence values, and its
bootstrap variance the sum of squared influence per resampling bucket. With buckets that
ignore the data, the cross terms between units of a bucket vanish in expectation (up to a
factor 1 - 1/n_buckets), so the bucket sums estimate the same variance as the units
themselves, at a cost that no longer grows with n. (Contiguous blocks of rows would not
have this property, because neighbouring rows can be correlated.)

Every metric in :mod:`mlci.evaluate.metrics` is a function of per-row sums, so for each
call the statistics are computed once per bucket (one ``np.bincount``), replicate b's
statistics are ``W[b] @ bucket_stats``, and the metric is evaluated on all replicates at
once: the cost is O(n) once plus O(B x buckets), never O(B x n). The same ``W`` serves
every slice of the data and both models of a comparison, which makes slice estimates
consistent and comparisons *paired*: the per-replicate delta cancels the variation the two
models share.

ROC AUC and average precision are smooth functions of per-score counts of positive and
negative rows, which are sums too, but keeping every distinct score per bucket would cost
O(n) per replicate. Instead each bucket keeps a histogram over a grid of (at most 256)
quantile bins of the scores; replicate b's *binned* metric minus the binned metric on all
rows is the replicate's deviation, and it is added to the exact point value. Binning only
treats scores within one bin as ties, which moves the metric a little but its sampling
spread hardly at all; with no more distinct scores than bins it is exact. The grid is the
one data-dependent piece: shards must share its cut points, which they can compute exactly
from the merged score tables (:func:`mlci.evaluate.metrics.merge_score_tables`) before
histogramming.

Intervals
---------
Intervals are bias-corrected and accelerated (BCa, Efron 1987): percentiles of the
replicate values at levels shifted by the bias correction ``z0`` (the share of replicates
below the estimate) and the acceleration ``a`` (the skewness of the jackknife influence).
The jackknife leaves out one *bucket* at a time, so it too is computed from the per-bucket
statistics (``total - bucket_stats[j]``) and merges like them. BCa is second-order accurate
where the percentile interval is only first-order: on small slices and skewed metrics (a
ROC AUC near 1, the RMSE of heavy-tailed errors) the percentile interval misses on one side
far more often than its nominal level says (``benchmarks/bench_intervals.py``). With no
skew and no bias (``z0 = a = 0``) BCa is the percentile interval.

Replicates on which a metric is undefined (for example a resampled slice with no positive
row) are left out; if more than half are undefined, there is no interval. An interval is
widened, in the rare cases where it misses it, to contain the point value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

N_BUCKETS = 1000

_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TEXT = np.uint64(0x5851F42D4C957F2D)  # separates text keys from integer keys
_CHUNK = 1 << 20  # rows hashed at once: bounds the memory of fixed-width text


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 with full avalanche."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _MUL1
        x = x ^ (x >> np.uint64(27))
        x = x * _MUL2
        out: np.ndarray = x ^ (x >> np.uint64(31))
        return out


def _hash_words(words: np.ndarray, salt: np.uint64) -> np.ndarray:
    return _mix(_mix(words ^ salt))


def _hash_text(text: np.ndarray, salt: np.uint64) -> np.ndarray:
    """Hash of each string's code points, independent of the array's fixed width."""
    out = np.empty(len(text), dtype=np.uint64)
    for start in range(0, len(text), _CHUNK):
        part = np.asarray(text[start : start + _CHUNK]).astype(str)
        width = part.dtype.itemsize // 4
        lengths = np.char.str_len(part).astype(np.int64)
        h = np.full(len(part), salt ^ _TEXT, dtype=np.uint64)
        if width:
            codes = part.view(np.uint32).reshape(len(part), width).astype(np.uint64)
            for j in range(0, width, 2):
                word = codes[:, j]
                if j + 1 < width:
                    word = word | (codes[:, j + 1] << np.uint64(32))
                h = np.where(lengths > j, _mix(h ^ word), h)
        out[start : start + len(part)] = _mix(h ^ lengths.astype(np.uint64))
    return out


def unit_hash(keys: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit hash of every key: a function of (seed, key value) only.

    Integers, booleans and integral floats hash by their integer value (so an id read as
    ``5`` in one file and ``5.0`` in another lands in the same bucket); other floats by their
    bits; anything else (text, mixed objects) by the code points of ``str(key)``.
    """
    salt = np.random.SeedSequence([seed, 0x6D6C6369]).generate_state(1, np.uint64)[0]
    k = np.asarray(keys)
    if k.ndim != 1:
        raise ValueError(f"keys must be one-dimensional, got shape {k.shape}")
    if k.dtype == np.bool_ or np.issubdtype(k.dtype, np.signedinteger):
        return _hash_words(k.astype(np.int64).view(np.uint64), salt)
    if np.issubdtype(k.dtype, np.unsignedinteger):
        return _hash_words(k.astype(np.uint64), salt)
    if np.issubdtype(k.dtype, np.floating):
        f = k.astype(np.float64)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**63)
            as_int = np.where(integral, f, 0.0).astype(np.int64)
        words = as_int.view(np.uint64)
        words = np.where(integral, words, (f + 0.0).view(np.uint64))  # + 0.0: -0.0 is 0.0
        return _hash_words(words, salt)
    return _hash_text(k, salt)


class BucketBootstrap:
    """Poisson(1) weights per bucket, and the bucket of every resampling unit.

    Both depend on the seed only (and the unit's key), never on the data's order or size.
    """

    def __init__(self, n_boot: int, *, seed: int = 0, n_buckets: int = N_BUCKETS) -> None:
        if n_boot < 1 or n_buckets < 1:
            raise ValueError("need n_boot >= 1 and n_buckets >= 1")
        self.n_boot = n_boot
        self.n_buckets = n_buckets
        self.seed = seed
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5765696768]))
        weights = rng.poisson(1.0, size=(n_boot, n_buckets)).astype(np.float64)
        weights.flags.writeable = False
        self.weights = weights

    def assign(self, keys: np.ndarray) -> np.ndarray:
        """The bucket of each unit key (rows of one cluster share a key, hence a bucket)."""
        buckets: np.ndarray = unit_hash(keys, self.seed) % np.uint64(self.n_buckets)
        return buckets.astype(np.intp)

    def resample(self, bucket_stats: np.ndarray) -> np.ndarray:
        """Replicate statistics ``W @ bucket_stats``: (n_buckets, ...) -> (n_boot, ...)."""
        flat = bucket_stats.reshape(bucket_stats.shape[0], -1)
        used = np.flatnonzero(flat.any(axis=1))
        # A small slice touches few buckets; empty ones add nothing to any replicate.
        if len(used) < 0.75 * len(flat):
            product = self.weights[:, used] @ flat[used]
        else:
            product = self.weights @ flat
        out: np.ndarray = product.reshape(self.n_boot, *bucket_stats.shape[1:])
        return out


def leave_one_out(bucket_stats: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Statistics of all buckets but one, for each bucket in ``used``: the jackknife."""
    total = bucket_stats.sum(axis=0)
    out: np.ndarray = total[None, ...] - np.take(bucket_stats, used, axis=0)
    return out


def acceleration(jackknife: np.ndarray) -> float:
    """BCa's acceleration from leave-one-bucket-out values (0 when it cannot be estimated)."""
    values = np.asarray(jackknife, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 3:
        return 0.0
    u = values.mean() - values
    scale = float(np.sum(u * u))
    if scale <= 0.0 or not math.isfinite(scale):
        return 0.0
    return float(np.sum(u**3) / (6.0 * scale**1.5))


def bca_interval(
    replicates: np.ndarray,
    jackknife: np.ndarray | None,
    point: float,
    confidence: float,
    *,
    min_defined: float = 0.5,
) -> tuple[float | None, float | None]:
    """BCa interval from bootstrap replicates and jackknife values; (None, None) if too few.

    Without ``jackknife`` the acceleration is 0 (the bias-corrected percentile interval).
    The interval is widened to contain ``point`` when it misses it (degenerate samples only).
    """
    reps = np.asarray(replicates, dtype=np.float64)
    finite = reps[np.isfinite(reps)]
    if len(finite) == 0 or len(finite) < min_defined * len(reps) or not math.isfinite(point):
        return None, None
    b = len(finite)
    below = (np.count_nonzero(finite < point) + 0.5 * np.count_nonzero(finite == point)) / b
    below = min(max(below, 0.5 / b), 1.0 - 0.5 / b)
    z0 = float(ndtri(below))
    a = 0.0 if jackknife is None else acceleration(jackknife)
    alpha = 1.0 - confidence
    levels = []
    for z in (float(ndtri(alpha / 2.0)), float(ndtri(1.0 - alpha / 2.0))):
        shifted = z0 + z
        denominator = 1.0 - a * shifted
        # An acceleration so large that the adjustment turns back on itself: take the
        # most extreme replicate on that side rather than a nonsensical level.
        level = float(ndtr(z0 + shifted / denominator)) if denominator > 0 else float(z > 0)
        levels.append(level)
    low, high = (float(v) for v in np.quantile(finite, levels))
    return min(low, point), max(high, point)


# Fewer resampling units than this, and there is no interval at all. The bootstrap learns
# the spread from the units themselves: over one cluster every replicate scales all sums
# alike and the interval collapses onto the point, and over a handful it is far too narrow
# (and the replicates' own standard errors, which studentized intervals divide by, unstable).
MIN_INTERVAL_UNITS = 10


def studentized_log_interval(
    point: float,
    replicates: np.ndarray,
    point_se: float,
    replicate_se: np.ndarray,
    confidence: float,
    *,
    min_defined: float = 0.5,
) -> tuple[float, float] | None:
    """Bootstrap-t interval on the log scale; None where it cannot be formed.

    ``point_se`` and ``replicate_se`` are standard errors of the log of the metric, on the
    data and on every replicate. The interval is ``point * exp(-q * point_se)`` for the
    upper and lower quantiles ``q`` of ``(log replicate - log point) / replicate_se``.
    Studentizing corrects
    what resampling alone cannot see in a mean of heavy-tailed errors:
    a sample that happens to lack the rare large errors has both a small mean and a small
    spread, so its percentile interval sits too low (Hall 1992, ch. 3).
    """
    reps = np.asarray(replicates, dtype=np.float64)
    ses = np.asarray(replicate_se, dtype=np.float64)
    if not (point > 0 and math.isfinite(point) and point_se > 0 and math.isfinite(point_se)):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.log(reps) - math.log(point)) / ses
    t = t[np.isfinite(t)]
    if len(t) == 0 or len(t) < min_defined * len(reps):
        return None
    alpha = 1.0 - confidence
    q_low, q_high = (float(v) for v in np.quantile(t, [alpha / 2.0, 1.0 - alpha / 2.0]))
    with np.errstate(over="ignore"):
        low, high = (float(point * np.exp(-q * point_se)) for q in (q_high, q_low))
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return min(low, point), max(high, point)


def percentile_interval(
    replicates: np.ndarray,
    confidence: float,
    point: float | None = None,
    *,
    min_defined: float = 0.5,
) -> tuple[float | None, float | None]:
    """Percentile interval of 1-D ``replicates`` ignoring NaN; (None, None) if too few.

    When ``point`` is given the interval is widened to contain it.
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
