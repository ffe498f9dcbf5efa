"""Streamed quantiles equal np.quantile over the concatenated finite values, bit for bit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.scale.order_statistics import streamed_quantiles


class Passes:
    """Chunks that count how often they are read."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.count = 0

    def __call__(self) -> Iterable[np.ndarray]:
        self.count += 1
        return iter(self.parts)


def expected(parts: list[np.ndarray], qs: np.ndarray) -> np.ndarray:
    values = np.concatenate([np.zeros(0), *parts])
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(np.quantile(values[np.isfinite(values)], qs), dtype=np.float64)


def assert_same(got: np.ndarray, want: np.ndarray, parts: list[np.ndarray]) -> None:
    """Bitwise equal; where the data hold both signed zeros, numpy's own sign of a zero
    result depends on the input order, so there only that sign may differ."""
    assert got.dtype == np.float64 and got.shape == want.shape
    values = np.concatenate([np.zeros(0), *parts])
    zeros = values[values == 0]
    mixed = np.signbit(zeros).any() and not np.signbit(zeros).all()
    same_bits = got.view(np.uint64) == want.view(np.uint64)
    if mixed:
        same_bits |= (got == 0) & (want == 0)
    assert same_bits.all(), (got, want)


special = st.sampled_from(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1e-300, -1e308, 1e308, 1.0, -1.0]
)
floats = st.one_of(
    special,
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-3, 3).map(lambda x: round(x, 1)),  # heavy ties
)


@st.composite
def chunked(draw: st.DrawFn) -> list[np.ndarray]:
    values = draw(st.lists(floats, max_size=300))
    cuts = sorted(draw(st.lists(st.integers(0, len(values)), max_size=8)))
    bounds = [0, *cuts, len(values)]
    return [np.array(values[a:b], dtype=np.float64) for a, b in pairwise(bounds)]


levels = st.one_of(
    st.just(np.linspace(0, 1, 6)),
    st.lists(
        st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1 - 2**-53]), st.floats(0, 1)),
        min_size=1,
        max_size=8,
    ).map(lambda qs: np.array(qs, dtype=np.float64)),
)


@settings(max_examples=400, deadline=None)
@given(parts=chunked(), qs=levels, gather_limit=st.sampled_from([1, 3, 16, 1 << 22]))
def test_matches_numpy(parts: list[np.ndarray], qs: np.ndarray, gather_limit: int) -> None:
    finite = sum(int(np.isfinite(p).sum()) for p in parts)
    if finite == 0:
        with pytest.raises(ValueError, match="no finite"):
            streamed_quantiles(Passes(parts), qs, gather_limit=gather_limit)
        return
    got = streamed_quantiles(Passes(parts), qs, gather_limit=gather_limit)
    assert_same(got, expected(parts, qs), parts)


@pytest.mark.parametrize(
    "values",
    [
        [-0.0, -0.0],  # q=1: numpy's gamma is n there, which turns -0.0 into +0.0
        [-0.0],
        [-0.0, -5e-324, -0.0],
        [-5e-324, -0.0, -0.0],
        [0.0, 5e-324, 1e-300],
        [-1e308, 1e308],  # b - a overflows: numpy gives nan at q=0 and inf/-inf elsewhere
    ],
)
def test_signed_zeros_and_lerp_edges_bitwise(values: list[float]) -> None:
    qs = np.array([0.0, 0.25, 0.375, 0.5, 0.75, 1.0])
    parts = [np.array(values)]
    want = expected(parts, qs)
    assert np.array_equal(
        streamed_quantiles(Passes(parts), qs).view(np.uint64), want.view(np.uint64)
    )


def test_mixed_zero_signs_are_equal_and_independent_of_chunking() -> None:
    qs = np.array([0.375, 0.75])
    a = streamed_quantiles(Passes([np.array([-5e-324, -0.0]), np.array([0.0])]), qs)
    b = streamed_quantiles(Passes([np.array([0.0]), np.array([-0.0, -5e-324])]), qs)
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    assert (a == expected([np.array([-5e-324, -0.0, 0.0])], qs)).all()


def test_refines_a_crowded_bucket_in_few_passes() -> None:
    rng = np.random.default_rng(7)
    values = 1.0 + rng.random(100_000) * 1e-4  # all in one top-16-bit bucket
    parts = list(np.array_split(values, 7))
    qs = np.linspace(0, 1, 6)
    passes = Passes(parts)
    got = streamed_quantiles(passes, qs, gather_limit=16)
    assert np.array_equal(got.view(np.uint64), expected(parts, qs).view(np.uint64))
    assert 3 <= passes.count <= 5  # more than the 2 passes gathering would take


def test_one_repeated_value_resolves_without_gathering() -> None:
    parts = [np.full(50_000, 2.5), np.full(50_000, 2.5)]
    passes = Passes(parts)
    got = streamed_quantiles(passes, np.array([0.0, 0.3, 1.0]), gather_limit=1)
    assert got.tolist() == [2.5, 2.5, 2.5]
    assert passes.count == 4  # 16 bits a pass down to one key


@pytest.mark.parametrize("parts", [[], [np.zeros(0)], [np.array([np.nan, np.inf, -np.inf])]])
def test_no_finite_values_raise(parts: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="no finite"):
        streamed_quantiles(Passes(parts), np.array([0.5]))


def test_bad_levels_raise() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        streamed_quantiles(Passes([np.ones(3)]), np.array([1.5]))


def test_changed_data_between_passes_raises() -> None:
    calls = iter([[np.arange(10.0)], [np.arange(10.0) * 3]])
    chunks: Callable[[], Iterable[np.ndarray]] = lambda: next(calls)  # noqa: E731
    with pytest.raises(ValueError, match="different data"):
        streamed_quantiles(chunks, np.array([0.5]))


def test_two_million_normal_values() -> None:
    rng = np.random.default_rng(2024)
    values = rng.normal(size=2_000_000)
    values[::1000] = np.nan
    parts = [values[i : i + 100_000] for i in range(0, values.size, 100_000)]
    qs = np.array([0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0, *np.linspace(0, 1, 11)])
    passes = Passes(parts)
    got = streamed_quantiles(passes, qs)
    assert np.array_equal(got.view(np.uint64), expected(parts, qs).view(np.uint64))
    assert passes.count == 2
