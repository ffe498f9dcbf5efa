"""Statistics of latency samples: percentiles with intervals, and the candidate/baseline verdict.

Pure functions of arrays. Latencies arrive in *blocks*: the candidate and the baseline run in
alternating blocks (candidate-baseline, then baseline-candidate, ...), and block ``k`` of one
model is paired with block ``k`` of the other. Machine drift (another process waking up, a
frequency change) is slow compared with a block, so it hits both models of a pair alike, and
queries within a block are not independent. The bootstrap therefore resamples *pairs of
blocks* (a paired cluster bootstrap), never single queries: its intervals stay honest when
the machine is noisy, at the price of being wider.

Noise can also be correlated *across* rounds: a disturbance lasting several blocks, or a
model whose latency drifts on its own, makes neighbouring rounds' paired differences
correlated, and resampling rounds as if they were independent then gives intervals too
narrow (simulated A/A runs of 100 rounds judged 10% to 32% "slower" at tolerance 0 where at
most 2.5% were promised). So the unit of resampling adapts to the data. When the
lag-1 autocorrelation of the rounds' paired differences (of block median log latencies) is
significant (above 2 / sqrt(n)), their integrated autocorrelation time ``tau`` (Geyer's
initial positive sequence estimator) sets the batch: ``1 + BATCH_FACTOR (tau - 1)`` consecutive rounds (even, so a batch holds
both orders of a pair), resampled as wholes; batch means of a correlated series are nearly
independent once batches span a few correlation times. Every interval is widened by
``sqrt(k / (k - 1))`` and Student's t over the normal quantile for ``k`` resampled units. A
batch is capped at an eighth of the run; a capped batch widens the interval by
``sqrt(wanted / cap)``, and when it would need twice the cap the comparison is
``inconclusive``: the run is too short for its noise.

Where a session's weights land in memory also moves its latency by a few percent (measured:
two sessions of one model on one input differ by up to 2-5% on a shared 2-core machine,
while two input buffers on one session differ by 0.1%). So each model runs several sessions
in turn, and the intervals also account for the spread between sessions (a Student t
interval over session pairs); with one session that source of error is not covered.

Every statistic uses the inverted-CDF quantile (the ``ceil(q n)``-th smallest value).

Verdict rule, for one compared statistic with ratio ``r = candidate / baseline`` (above 1:
the candidate is slower), its two-sided interval ``[lo, hi]`` at the configured confidence,
and the tolerated regression ``m`` (``max_regression``):

- ``slower``: ``lo > 1 + m``. The candidate is slower by more than the tolerance, with
  confidence; only this verdict fails ``mlci bench``.
- ``faster``: ``hi < 1``. The candidate is faster, with confidence.
- ``inconclusive``: ``lo <= 1 + m < hi``. A regression beyond the tolerance is neither shown
  nor ruled out; also the verdict whenever the run ended with too few samples.
- ``no detectable difference``: otherwise (``hi <= 1 + m`` and ``hi >= 1``): any slowdown is
  within the tolerance.

When the models are identical, ``lo > 1 + m`` happens with probability at most
``(1 - confidence) / 2`` (for ``m >= 0``), which bounds the false-alarm rate, under one
condition: the noise must decorrelate well within the run. Noise shared by both models
(the machine's load) is cancelled by the alternating order and holds the bound at any
correlation time simulated; noise of each model's own, correlated over one to ten blocks,
exceeds it a little (2.7% to 4.7% in runs of 100 and 400 rounds, against 13% to 37% when
rounds were resampled one by one), and a tolerance of 5% on medians and 10% on p99 keeps
false alarms at or under 0.3% (``benchmarks/bench_latency_stats.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlci.bench.config import metric_quantile

SLOWER = "slower"
FASTER = "faster"
NO_DIFFERENCE = "no detectable difference"
INCONCLUSIVE = "inconclusive"

# Replicates per chunk x samples: bounds the bootstrap's memory to a few tens of megabytes.
_CHUNK_CELLS = 2_000_000
# Fewest batches the bootstrap resamples: caps the batch length at rounds / MIN_BATCHES.
MIN_BATCHES = 8
# Batches span this many autocorrelation times: neighbouring batch means of a series are
# still correlated when batches are only as long as its correlation time.
BATCH_FACTOR = 3.0
# A residual widening this large (batches would need twice the longest allowed) leaves the
# comparison inconclusive.
UNRESOLVED = math.sqrt(2.0)


@dataclass(frozen=True)
class Estimate:
    """A statistic and its interval (None where the data cannot support one)."""

    value: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class Comparison:
    """The verdict on one statistic, with the ratio it rests on."""

    metric: str
    ratio: Estimate
    max_regression: float
    verdict: str


def verdict(ci_low: float | None, ci_high: float | None, max_regression: float) -> str:
    """The verdict for a ratio interval (see the module docstring)."""
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    limit = 1.0 + max_regression
    if ci_low > limit:
        return SLOWER
    if ci_high < 1.0:
        return FASTER
    if ci_high > limit:
        return INCONCLUSIVE
    return NO_DIFFERENCE


def quantile(values: np.ndarray, q: float) -> float:
    """The inverted-CDF ``q`` quantile of ``values``."""
    return float(np.quantile(values, q, method="inverted_cdf"))


def statistic(values: np.ndarray, metric: str) -> float:
    q = metric_quantile(metric)
    return float(np.mean(values)) if q is None else quantile(values, q)


def order_statistic_interval(
    sorted_values: np.ndarray, q: float, confidence: float
) -> tuple[float | None, float | None]:
    """Distribution-free interval of the ``q`` quantile from order statistics.

    ``[X_(r), X_(s)]`` with ``r`` and ``s`` the binomial ``(1 -+ confidence) / 2`` quantiles,
    valid for independent queries; an end is None when ``n`` is too small to support it.
    """
    from scipy.stats import binom

    n = len(sorted_values)
    if n == 0:
        return None, None
    alpha = 1 - confidence
    r = int(binom.ppf(alpha / 2, n, q))  # 1-based rank of the lower end
    s = int(binom.ppf(1 - alpha / 2, n, q)) + 1  # 1-based rank of the upper end
    low = float(sorted_values[r - 1]) if r >= 1 else None
    high = float(sorted_values[s - 1]) if s <= n else None
    return low, high


@dataclass(frozen=True)
class Resampling:
    """How the rounds are resampled: ``replicates`` draws, seeded; batches chosen from the data."""

    rounds: int
    replicates: int
    seed: int

    def weights(self, batch: int) -> np.ndarray:
        """Bootstrap counts per round: each batch of ``batch`` consecutive rounds is drawn
        as a whole (with replacement, as many batches as there are), and every round gets its
        batch's count."""
        batches = -(-self.rounds // batch)
        rng = np.random.default_rng(self.seed)
        picks = rng.integers(0, batches, size=(self.replicates, batches))
        counts = np.zeros((self.replicates, batches), dtype=np.float64)
        np.add.at(counts, (np.arange(self.replicates)[:, None], picks), 1.0)
        return np.repeat(counts, batch, axis=1)[:, : self.rounds]


def resampling(rounds: int, replicates: int, seed: int) -> Resampling:
    """The bootstrap of ``rounds`` rounds (pairs of blocks) with ``replicates`` replicates."""
    return Resampling(rounds, replicates, seed)


def _autocorrelations(series: np.ndarray) -> np.ndarray:
    """Sample autocorrelations at lags 0 .. n/2 of the finite values (empty below 8 values)."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 8:
        return np.zeros(0)
    x = x - x.mean()
    variance = float(x @ x) / n
    if variance <= 0:
        return np.zeros(0)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acf: np.ndarray = np.fft.irfft(spectrum * np.conj(spectrum), size)[: n // 2] / (n * variance)
    return acf


def autocorrelation_time(series: np.ndarray) -> float:
    """Integrated autocorrelation time of a series (1 for independent values, never below).

    Geyer's initial positive sequence estimator: the sum of autocorrelations, taken in
    adjacent pairs while a pair's sum stays positive (Geyer 1992, "Practical Markov chain
    Monte Carlo").
    """
    acf = _autocorrelations(series)
    tau = -1.0
    for m in range(len(acf) // 2):
        pair = acf[2 * m] + acf[2 * m + 1]
        if pair <= 0:
            break
        tau += 2.0 * pair
    return max(1.0, tau)


def batch_length(series: np.ndarray, rounds: int) -> tuple[int, float]:
    """Rounds per resampled batch for a per-round series, and the residual widening factor.

    One round unless the lag-1 autocorrelation is significant (above 2 / sqrt(n): an
    estimate from n values is that noisy, and short independent runs must not be widened
    for nothing); then ``BATCH_FACTOR`` autocorrelation times (even, so a batch holds whole
    pairs of rounds). Capped at ``rounds / MIN_BATCHES``; a capped batch leaves correlation
    the bootstrap cannot see, and the residual factor ``sqrt(wanted / cap)`` says how much.
    """
    acf = _autocorrelations(series)
    if len(acf) < 2 or acf[1] <= 2.0 / math.sqrt(2 * len(acf)):
        return 1, 1.0
    tau = autocorrelation_time(series)
    wanted = 1 + math.ceil(BATCH_FACTOR * (tau - 1.0) - 1e-9)
    if wanted > 1 and wanted % 2:
        wanted += 1
    cap = max(1, rounds // MIN_BATCHES)
    if cap > 1 and cap % 2:
        cap -= 1
    if wanted <= cap:
        return wanted, 1.0
    return cap, math.sqrt(wanted / cap)


def log_block_medians(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Median log latency of each block (NaN for an empty one): the series batches come from.

    The median, not the mean: the rare very slow query would hide the correlation of the
    block levels behind noise of its own.
    """
    out = np.full(len(blocks), np.nan)
    for k, block in enumerate(blocks):
        b = np.asarray(block, dtype=np.float64)
        b = b[b > 0]
        if len(b):
            out[k] = float(np.median(np.log(b)))
    return out


def _replicates(
    resampled: Resampling | np.ndarray, series: np.ndarray, rounds: int
) -> tuple[np.ndarray, int, float]:
    """Round weights, the number of resampled units, and the residual widening factor."""
    if isinstance(resampled, np.ndarray):
        return resampled, rounds, 1.0
    batch, residual = batch_length(series, rounds)
    return resampled.weights(batch), -(-rounds // batch), residual


def bootstrap_statistics(
    blocks: Sequence[np.ndarray], metrics: Sequence[str], weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Each metric recomputed for every replicate of round weights (shape replicates x rounds)."""
    sizes = np.array([len(b) for b in blocks], dtype=np.int64)
    values = np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])
    ids = np.repeat(np.arange(len(blocks)), sizes)
    order = np.argsort(values, kind="stable")
    values, ids = values[order], ids[order]
    sums = np.array([float(np.sum(b)) for b in blocks])
    out = {m: np.empty(len(weights)) for m in metrics}
    step = max(1, _CHUNK_CELLS // max(1, len(values)))
    for start in range(0, len(weights), step):
        w = weights[start : start + step]
        quantiles = [(m, metric_quantile(m)) for m in metrics]
        if any(q is not None for _, q in quantiles):
            cumulative = np.cumsum(w[:, ids], axis=1)
            total = cumulative[:, -1:]
        for m, q in quantiles:
            if q is None:
                out[m][start : start + step] = (w @ sums) / (w @ sizes)
            else:
                index = np.sum(cumulative < q * total - 1e-9, axis=1)
                out[m][start : start + step] = values[np.minimum(index, len(values) - 1)]
    return out


def _percentile_interval(
    samples: np.ndarray,
    center: float,
    confidence: float,
    units: int,
    log: bool,
    residual: float = 1.0,
) -> tuple[float, float]:
    """Percentile bootstrap interval, widened by sqrt(k / (k - 1)) for ``k`` resampled units
    (and by ``residual`` for correlation longer than the longest batch)."""
    alpha = 1 - confidence
    transform = np.log if log else (lambda x: x)
    finite = samples[np.isfinite(samples) & (samples > 0 if log else True)]
    low, high = np.quantile(transform(finite), [alpha / 2, 1 - alpha / 2])
    mid = float(transform(center))
    inflate = _small_sample(units, confidence) * residual
    low = mid - (mid - low) * inflate
    high = mid + (high - mid) * inflate
    if log:
        return math.exp(low), math.exp(high)
    return float(low), float(high)


def _small_sample(units: int, confidence: float) -> float:
    """Widening for ``units`` resampled units: the bootstrap's variance (divided by k, not
    k - 1) and Student's t quantile with k - 1 degrees of freedom over the normal one, which
    matters when a run holds only a few batches."""
    if units < 2:
        return 1.0
    from scipy.stats import norm
    from scipy.stats import t as student_t

    level = 1 - (1 - confidence) / 2
    t_ratio = float(student_t.ppf(level, units - 1) / norm.ppf(level))
    return math.sqrt(units / (units - 1)) * t_ratio


def _t_half_width(values: Sequence[float], confidence: float) -> float | None:
    """Half-width of a Student t interval for the mean of ``values`` (None below two)."""
    from scipy.stats import t as student_t

    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return None
    k = len(finite)
    spread = float(np.std(finite, ddof=1))
    return float(student_t.ppf(1 - (1 - confidence) / 2, k - 1)) * spread / math.sqrt(k)


def _by_group(blocks: Sequence[np.ndarray], groups: Sequence[int] | None) -> list[np.ndarray]:
    """The blocks pooled per session (empty when there are fewer than two sessions)."""
    if groups is None or len(set(groups)) < 2:
        return []
    pooled = []
    for g in sorted(set(groups)):
        parts = [
            np.asarray(b, dtype=np.float64) for b, k in zip(blocks, groups, strict=True) if k == g
        ]
        pooled.append(np.concatenate(parts) if parts else np.zeros(0))
    return pooled


def summarize(
    blocks: Sequence[np.ndarray],
    metrics: Sequence[str],
    confidence: float,
    weights: Resampling | np.ndarray | None,
    groups: Sequence[int] | None = None,
) -> dict[str, Estimate]:
    """Each metric with an interval.

    The interval is the union of: the order-statistic interval for percentiles (exact for
    independent queries), the block bootstrap (robust to drift) and, with several sessions
    (``groups`` gives each block's session), a t interval over the sessions' own values
    (where a session landed in memory). The widest, most honest of them.
    """
    values = np.sort(np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks]))
    if len(values) == 0:
        return {m: Estimate(None, None, None) for m in metrics}
    rounds = len(blocks)
    boot = None
    units, residual = rounds, 1.0
    if weights is not None and rounds >= 2:
        round_w, units, residual = _replicates(weights, log_block_medians(blocks), rounds)
        boot = bootstrap_statistics(blocks, metrics, round_w)
    per_group = _by_group(blocks, groups)
    result = {}
    for m in metrics:
        q = metric_quantile(m)
        value = statistic(values, m)
        lows: list[float] = []
        highs: list[float] = []
        missing_high = False
        if q is not None:
            low, high = order_statistic_interval(values, q, confidence)
            if low is not None:
                lows.append(low)
            if high is None:
                missing_high = True
            else:
                highs.append(high)
        if boot is not None:
            b_low, b_high = _percentile_interval(
                boot[m], value, confidence, units, log=False, residual=residual
            )
            lows.append(b_low)
            highs.append(b_high)
        if value > 0:
            # On the log scale, like the ratios: latencies are positive and right-skewed.
            logs = [math.log(v) for v in (statistic(g, m) for g in per_group if len(g)) if v > 0]
            half = _t_half_width(logs, confidence)
            if half is not None:
                lows.append(value * math.exp(-half))
                highs.append(value * math.exp(half))
        result[m] = Estimate(
            value,
            min(lows) if lows else None,
            None if missing_high or not highs else max(highs),
        )
    return result


def compare(
    candidate: Sequence[np.ndarray],
    baseline: Sequence[np.ndarray],
    metrics: Sequence[str],
    tolerances: dict[str, float],
    confidence: float,
    weights: Resampling | np.ndarray | None,
    enough: bool = True,
    groups: Sequence[int] | None = None,
) -> list[Comparison]:
    """Ratio candidate/baseline of each metric, with an interval.

    ``candidate[k]`` and ``baseline[k]`` are the blocks of round ``k``; ``groups[k]`` the
    session pair that ran it. The interval is the union of the paired block bootstrap (drift
    within the run) and, with several session pairs, a Student t interval over the pairs' log
    ratios (where each session landed in memory, which moves latency by a few percent and
    which no resampling of one session's queries can see). ``enough`` False (the run ended
    before its minimum sample) forces the verdict to inconclusive.
    """
    if len(candidate) != len(baseline):
        raise ValueError("candidate and baseline need the same number of blocks")
    all_c = np.concatenate([np.asarray(b, dtype=np.float64) for b in candidate])
    all_b = np.concatenate([np.asarray(b, dtype=np.float64) for b in baseline])
    rounds = len(candidate)
    boot_c = boot_b = None
    units, residual = rounds, 1.0
    if weights is not None and rounds >= 2 and len(all_c) and len(all_b):
        paired = log_block_medians(candidate) - log_block_medians(baseline)
        round_w, units, residual = _replicates(weights, paired, rounds)
        boot_c = bootstrap_statistics(candidate, metrics, round_w)
        boot_b = bootstrap_statistics(baseline, metrics, round_w)
    groups_c = _by_group(candidate, groups)
    groups_b = _by_group(baseline, groups)
    out = []
    for m in metrics:
        tolerance = tolerances[m]
        if not (len(all_c) and len(all_b)):
            out.append(Comparison(m, Estimate(None, None, None), tolerance, INCONCLUSIVE))
            continue
        base = statistic(all_b, m)
        ratio = statistic(all_c, m) / base if base > 0 else math.nan
        if boot_c is None or boot_b is None or not math.isfinite(ratio):
            out.append(Comparison(m, Estimate(_finite(ratio), None, None), tolerance, INCONCLUSIVE))
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = boot_c[m] / boot_b[m]
        low, high = _percentile_interval(
            ratios, ratio, confidence, units, log=True, residual=residual
        )
        logs = [
            math.log(statistic(c, m) / statistic(b, m))
            for c, b in zip(groups_c, groups_b, strict=True)
            if len(c) and len(b) and statistic(b, m) > 0 and statistic(c, m) > 0
        ]
        half = _t_half_width(logs, confidence)
        if half is not None:
            low = min(low, ratio * math.exp(-half))
            high = max(high, ratio * math.exp(half))
        # Noise correlated over twice what the run can resolve (see batch_length): the
        # interval is little more than a guess, so no verdict rests on it.
        resolved = residual < UNRESOLVED
        judged = verdict(low, high, tolerance) if enough and resolved else INCONCLUSIVE
        out.append(Comparison(m, Estimate(ratio, low, high), tolerance, judged))
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
