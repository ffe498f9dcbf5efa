"""The comparison statistics and the verdict rule, on synthetic latencies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from mlci.bench import compare as stats


def blocks_of(
    rng: np.random.Generator, rounds: int, size: int, scale: float = 1.0
) -> list[np.ndarray]:
    return [scale * (1.0 + rng.exponential(0.2, size)) for _ in range(rounds)]


@pytest.mark.parametrize(
    ("low", "high", "tolerance", "expected"),
    [
        (1.21, 1.30, 0.1, "slower"),
        (1.05, 1.09, 0.1, "no detectable difference"),
        (0.98, 1.03, 0.1, "no detectable difference"),
        (0.90, 0.99, 0.1, "faster"),
        (1.05, 1.15, 0.1, "inconclusive"),
        (0.95, 1.20, 0.1, "inconclusive"),
        (1.001, 1.01, 0.0, "slower"),
        (0.99, 1.01, 0.0, "inconclusive"),
        (None, 1.2, 0.1, "inconclusive"),
    ],
)
def test_verdict_rule(low: float | None, high: float, tolerance: float, expected: str) -> None:
    assert stats.verdict(low, high, tolerance) == expected


def test_identical_samples_show_no_detectable_difference() -> None:
    rng = np.random.default_rng(1)
    base = blocks_of(rng, 20, 50)
    weights = stats.resampling(20, 500, seed=0)
    result = stats.compare(
        base,
        [b.copy() for b in base],
        ["p50", "p99", "mean"],
        dict.fromkeys(["p50", "p99", "mean"], 0.1),
        0.95,
        weights,
    )
    for c in result:
        assert c.ratio.value == pytest.approx(1.0)
        assert c.ratio.ci_low == pytest.approx(1.0) and c.ratio.ci_high == pytest.approx(1.0)
        assert c.verdict == "no detectable difference"


def test_shifted_samples_are_slower_or_faster() -> None:
    rng = np.random.default_rng(2)
    base = blocks_of(rng, 20, 100)
    slow = blocks_of(rng, 20, 100, scale=1.5)
    fast = blocks_of(rng, 20, 100, scale=0.6)
    weights = stats.resampling(20, 500, seed=0)
    tol = {"p50": 0.1, "p99": 0.1}
    assert [c.verdict for c in stats.compare(slow, base, ["p50", "p99"], tol, 0.95, weights)] == [
        "slower"
    ] * 2
    assert [c.verdict for c in stats.compare(fast, base, ["p50", "p99"], tol, 0.95, weights)] == [
        "faster"
    ] * 2
    ratio = stats.compare(slow, base, ["p50"], tol, 0.95, weights)[0].ratio
    assert ratio.ci_low < 1.5 < ratio.ci_high or abs(ratio.value - 1.5) < 0.05


def test_interval_straddling_the_tolerance_is_inconclusive() -> None:
    rng = np.random.default_rng(3)
    # Block-level drift of 5% that does not cancel between the models: a wide interval
    # around a 10% slowdown, which the 10% tolerance sits inside.
    base = [np.full(30, 1.0) * rng.lognormal(0, 0.05) for _ in range(12)]
    cand = [np.full(30, 1.1) * rng.lognormal(0, 0.05) for _ in range(12)]
    weights = stats.resampling(12, 1000, seed=0)
    (c,) = stats.compare(cand, base, ["p50"], {"p50": 0.1}, 0.95, weights)
    assert c.ratio.ci_low < 1.1 < c.ratio.ci_high
    assert c.verdict == "inconclusive"


def test_too_few_samples_forces_inconclusive() -> None:
    rng = np.random.default_rng(4)
    base = blocks_of(rng, 10, 50)
    slow = blocks_of(rng, 10, 50, scale=2.0)
    weights = stats.resampling(10, 300, seed=0)
    (c,) = stats.compare(slow, base, ["p50"], {"p50": 0.1}, 0.95, weights, enough=False)
    assert c.ratio.value > 1.5 and c.verdict == "inconclusive"
    (single,) = stats.compare(slow[:1], base[:1], ["p50"], {"p50": 0.1}, 0.95, None)
    assert single.ratio.ci_low is None and single.verdict == "inconclusive"


def test_mismatched_blocks_are_rejected() -> None:
    with pytest.raises(ValueError):
        stats.compare([np.ones(3)], [np.ones(3), np.ones(3)], ["p50"], {"p50": 0.1}, 0.95, None)


def test_bootstrap_with_unit_weights_reproduces_the_statistics() -> None:
    rng = np.random.default_rng(5)
    blocks = [rng.exponential(1.0, int(n)) for n in rng.integers(5, 40, 15)]
    pooled = np.concatenate(blocks)
    weights = np.ones((3, len(blocks)))
    got = stats.bootstrap_statistics(blocks, ["p50", "p90", "p99", "mean"], weights)
    for metric, q in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]:
        assert got[metric] == pytest.approx(np.quantile(pooled, q, method="inverted_cdf"))
    assert got["mean"] == pytest.approx(pooled.mean())
    # Doubling one block's weight equals repeating its samples.
    doubled = np.ones((1, len(blocks)))
    doubled[0, 3] = 2
    repeated = np.concatenate([*blocks, blocks[3]])
    got = stats.bootstrap_statistics(blocks, ["p90"], doubled)
    assert got["p90"][0] == pytest.approx(np.quantile(repeated, 0.9, method="inverted_cdf"))


def test_order_statistic_interval_uses_binomial_ranks() -> None:
    values = np.arange(1.0, 1001.0)
    low, high = stats.order_statistic_interval(values, 0.5, 0.95)
    r = int(binom.ppf(0.025, 1000, 0.5))
    s = int(binom.ppf(0.975, 1000, 0.5)) + 1
    assert (low, high) == (values[r - 1], values[s - 1])
    # Coverage of the ranks: P(r <= B < s) >= 95% for B ~ Binomial(n, q).
    assert binom.cdf(s - 1, 1000, 0.5) - binom.cdf(r - 1, 1000, 0.5) >= 0.95
    assert stats.order_statistic_interval(values[:100], 0.999, 0.95)[1] is None


def test_summary_intervals_contain_the_estimates() -> None:
    rng = np.random.default_rng(6)
    blocks = blocks_of(rng, 20, 100)
    weights = stats.resampling(20, 400, seed=1)
    summary = stats.summarize(blocks, ["p50", "p99", "p99.9", "mean"], 0.95, weights)
    for metric in ("p50", "p99", "mean"):
        est = summary[metric]
        assert est.ci_low <= est.value <= est.ci_high
    assert summary["p99.9"].ci_high is None  # 2,000 queries cannot bound p99.9 from above
    assert stats.summarize([np.zeros(0)], ["p50"], 0.95, None)["p50"].value is None


def test_autocorrelation_time_of_independent_and_ar1_series() -> None:
    rng = np.random.default_rng(7)
    assert stats.autocorrelation_time(rng.standard_normal(4000)) < 1.2
    # AR(1) with coefficient phi: tau = (1 + phi) / (1 - phi).
    for phi in (0.5, 0.8):
        x = np.empty(20_000)
        x[0] = 0.0
        shocks = rng.standard_normal(len(x))
        for i in range(1, len(x)):
            x[i] = phi * x[i - 1] + shocks[i]
        tau = stats.autocorrelation_time(x)
        assert tau == pytest.approx((1 + phi) / (1 - phi), rel=0.15), phi
    # Never below 1: anti-correlation must not narrow an interval.
    alternating = np.tile([1.0, -1.0], 500) + 0.01 * rng.standard_normal(1000)
    assert stats.autocorrelation_time(alternating) == 1.0
    assert stats.autocorrelation_time(np.ones(50)) == 1.0
    assert stats.autocorrelation_time(np.arange(5.0)) == 1.0


def test_batches_follow_the_correlation_and_keep_round_pairs_together() -> None:
    rng = np.random.default_rng(8)
    assert stats.batch_length(rng.standard_normal(200), 200)[0] in (1, 2)
    # A moving average over 8 rounds: tau = 8, batches of about BATCH_FACTOR x 8 rounds.
    x = np.convolve(rng.standard_normal(407), np.ones(8) / 8, mode="valid")[:400]
    batch, residual = stats.batch_length(x, 400)
    assert 12 <= batch <= 50 and batch % 2 == 0 and residual == 1.0
    # Capped at rounds / MIN_BATCHES, the remaining correlation widens the interval.
    batch, residual = stats.batch_length(np.cumsum(rng.standard_normal(40)), 40)
    assert batch == 4 and residual > 1.0  # 40 // MIN_BATCHES, made even
    weights = stats.resampling(10, 500, seed=3).weights(4)
    assert weights.shape == (500, 10)
    # Rounds of one batch share a count; 3 batches (4 + 4 + 2 rounds) are drawn 3 times.
    assert np.all(weights[:, 0:4] == weights[:, [0]]) and np.all(weights[:, 8:] == weights[:, [8]])
    assert np.all(weights[:, [0, 4, 8]].sum(axis=1) == 3)


def test_correlated_rounds_widen_the_interval() -> None:
    # Paired differences that drift over several rounds: resampling rounds as independent
    # understates the spread; batches of rounds do not.
    rng = np.random.default_rng(9)
    rounds = 80
    drift = np.repeat(rng.normal(0, 0.05, rounds // 8), 8)
    base = [np.exp(rng.normal(0, 0.02, 20)) for _ in range(rounds)]
    cand = [b * np.exp(d + rng.normal(0, 0.02, 20)) for b, d in zip(base, drift, strict=True)]
    resampled = stats.resampling(rounds, 1000, seed=1)
    (adaptive,) = stats.compare(cand, base, ["p50"], {"p50": 0.0}, 0.95, resampled)
    (independent,) = stats.compare(cand, base, ["p50"], {"p50": 0.0}, 0.95, resampled.weights(1))
    width = np.log(adaptive.ratio.ci_high / adaptive.ratio.ci_low)
    narrow = np.log(independent.ratio.ci_high / independent.ratio.ci_low)
    assert width > 1.5 * narrow


def test_noise_correlated_beyond_what_the_run_resolves_is_inconclusive() -> None:
    # The candidate drifts on its own like a random walk: the paired differences stay
    # correlated for longer than an eighth of the run, so no verdict can rest on them.
    rng = np.random.default_rng(10)
    rounds = 40
    walk = np.cumsum(rng.normal(0, 0.05, rounds))
    base = [np.exp(rng.normal(0, 0.01, 20)) for _ in range(rounds)]
    cand = [np.exp(w + rng.normal(0, 0.01, 20)) for w in walk]
    paired = stats.log_block_medians(cand) - stats.log_block_medians(base)
    assert stats.batch_length(paired, rounds)[1] >= stats.UNRESOLVED
    for c in stats.compare(
        cand,
        base,
        ["p50", "mean"],
        {"p50": 0.0, "mean": 0.0},
        0.95,
        stats.resampling(rounds, 500, seed=2),
    ):
        assert c.verdict == "inconclusive"
