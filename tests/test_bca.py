"""BCa intervals against SciPy's, on the same bootstrap replicates and the same jackknife."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mlci.evaluate.bootstrap import acceleration, bca_interval, leave_one_out


def _scipy_bca(x: np.ndarray, seed: int, confidence: float) -> tuple[float, float, np.ndarray]:
    result = sps.bootstrap(
        (x,),
        np.mean,
        method="BCa",
        n_resamples=999,
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high), np.asarray(result.bootstrap_distribution)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(8, 120),
    st.sampled_from(["normal", "exponential", "lognormal"]),
    st.integers(0, 10_000),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_bca_matches_scipy_on_the_same_replicates(
    n: int, shape: str, seed: int, confidence: float
) -> None:
    rng = np.random.default_rng(seed)
    x = {
        "normal": lambda: rng.normal(size=n),
        "exponential": lambda: rng.exponential(size=n),
        "lognormal": lambda: rng.lognormal(sigma=1.2, size=n),
    }[shape]()
    want_low, want_high, replicates = _scipy_bca(x, seed, confidence)
    # One row per bucket: leaving a bucket out is SciPy's leave-one-out jackknife.
    sums = leave_one_out(x[:, None], np.arange(n))[:, 0]
    jackknife = sums / (n - 1)
    low, high = bca_interval(replicates, jackknife, float(x.mean()), confidence)
    assert low is not None and high is not None
    point = float(x.mean())
    # mlci widens an interval to hold its point; SciPy does not (rare, degenerate cases).
    assert low == pytest.approx(min(want_low, point), rel=1e-9, abs=1e-12)
    assert high == pytest.approx(max(want_high, point), rel=1e-9, abs=1e-12)


def test_acceleration_is_the_skewness_of_the_jackknife_and_zero_without_skew() -> None:
    rng = np.random.default_rng(1)
    x = rng.exponential(size=200)
    jackknife = (x.sum() - x) / (len(x) - 1)
    u = jackknife.mean() - jackknife
    assert acceleration(jackknife) == pytest.approx((u**3).sum() / (6 * (u**2).sum() ** 1.5))
    assert acceleration(jackknife) > 0  # right-skewed data, right-skewed mean
    assert acceleration(np.array([1.0, 2.0, 3.0])) == pytest.approx(0.0)
    assert acceleration(np.array([1.0, 1.0])) == 0.0


def test_too_few_defined_replicates_give_no_interval() -> None:
    replicates = np.full(100, np.nan)
    replicates[:40] = np.linspace(0.4, 0.6, 40)
    assert bca_interval(replicates, None, 0.5, 0.95) == (None, None)
    replicates[:60] = np.linspace(0.4, 0.6, 60)
    low, high = bca_interval(replicates, None, 0.5, 0.95)
    assert low is not None and high is not None and low < 0.5 < high
