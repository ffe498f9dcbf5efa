"""Sums and means over row blocks equal numpy's over the concatenated rows, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.scale import pairwise


def chunked_sum(chunks: list[np.ndarray]) -> float:
    return pairwise.chunked_sum([len(c) for c in chunks], chunks.__getitem__)


def chunked_mean(chunks: list[np.ndarray]) -> float:
    return pairwise.chunked_mean([len(c) for c in chunks], chunks.__getitem__)


def spread(n: int, seed: int) -> np.ndarray:
    # Magnitudes from 1e-8 to 1e8, so every change of summation order shows in the last bits.
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)


def split(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return np.split(values, sorted(cuts))


def bits(x: float) -> str:
    return float(x).hex()


def numpy_pairwise(a: list[float]) -> float:
    """numpy's pairwise_sum (loops_utils.h.src) in plain Python, as the reference tree."""
    n = len(a)
    if n < 8:
        res = -0.0
        for x in a:
            res += x
        return res
    if n <= 128:
        r = a[:8]
        i = 8
        while i < n - n % 8:
            r = [acc + x for acc, x in zip(r, a[i : i + 8], strict=True)]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for x in a[i:]:
            res += x
        return res
    half = n // 2
    half -= half % 8
    return numpy_pairwise(a[:half]) + numpy_pairwise(a[half:])


near_boundaries = st.sampled_from([8, 128, 8192, 16384, 65536, 131072]).flatmap(
    lambda b: st.integers(max(0, b - 10), b + 10)
)
lengths = st.one_of(
    st.integers(0, 300), st.integers(0, 20_000), st.integers(100_000, 300_000), near_boundaries
)


@st.composite
def blocks(draw: st.DrawFn) -> list[np.ndarray]:
    n = draw(lengths)
    values = spread(n, draw(st.integers(0, 2**32 - 1)))
    cuts = draw(st.lists(st.integers(0, n), max_size=40))
    # Cuts next to each other make blocks of one row; repeated cuts make empty blocks.
    ones = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=5))
    return split(values, cuts + ones + [c + 1 for c in ones if c + 1 <= n])


@settings(max_examples=300, deadline=None)
@given(blocks())
def test_sum_and_mean_equal_numpys_over_the_concatenation(chunks: list[np.ndarray]) -> None:
    whole = np.concatenate(chunks)
    assert bits(chunked_sum(chunks)) == bits(np.sum(whole))
    if len(whole):
        assert bits(chunked_mean(chunks)) == bits(np.mean(whole))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=200), st.integers(0, 2**32 - 1))
def test_many_tiny_blocks(sizes: list[int], seed: int) -> None:
    values = spread(sum(sizes), seed)
    chunks = np.split(values, np.cumsum(sizes)[:-1]) if sizes else []
    assert bits(chunked_sum(chunks)) == bits(np.sum(values))


def test_three_million_rows_in_37_uneven_blocks() -> None:
    values = spread(3_000_000, 37)
    rng = np.random.default_rng(1)
    cuts = rng.choice(np.arange(1, len(values) - 1), 33, replace=False).tolist()
    # Two empty blocks and one of a single row among the uneven ones.
    chunks = split(values, [*cuts, cuts[0], cuts[0], cuts[1] + 1])
    assert len(chunks) == 37
    assert sorted(len(c) for c in chunks)[:3] == [0, 0, 1]
    assert bits(chunked_sum(chunks)) == bits(np.sum(values))
    assert bits(chunked_mean(chunks)) == bits(np.mean(values))


def test_adding_the_block_sums_is_not_numpys_sum() -> None:
    values = spread(100_000, 5)
    chunks = split(values, [333, 8_000, 50_001, 77_777])
    naive = sum(float(np.sum(c)) for c in chunks)
    assert bits(naive) != bits(np.sum(values))
    assert bits(chunked_sum(chunks)) == bits(np.sum(values))
    assert bits(naive / len(values)) != bits(np.mean(values))
    assert bits(chunked_mean(chunks)) == bits(np.mean(values))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 1000, 8192, 8193, 100_000])
def test_numpy_sums_one_pairwise_tree(n: int) -> None:
    # The premise: numpy 2.x hands the add loop the whole aligned array, no 8192-row buffering.
    values = spread(n, n)
    assert bits(np.sum(values)) == bits(0.0 + numpy_pairwise(values.tolist()))
    assert bits(np.mean(values)) == bits(np.sum(values) / n)


def test_unaligned_blocks_are_summed_as_numpy_sums_the_concatenation() -> None:
    values = spread(300_000, 9)
    raw = np.zeros(values.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(raw[1:].data, dtype=np.float64)
    unaligned[:] = values
    # numpy sums an unaligned array in buffered pieces, so not in the aligned array's tree.
    assert bits(np.sum(unaligned[10:])) != bits(np.sum(values[10:]))
    chunks = [values[:10], unaligned[10:]]
    assert bits(chunked_sum(chunks)) == bits(np.sum(values))


def test_strided_and_reversed_views() -> None:
    values = spread(200_000, 11)
    strided = np.repeat(values[:120_000], 2)[::2]
    reversed_view = values[120_000:][::-1].copy()[::-1]
    chunks = [strided, reversed_view]
    assert bits(chunked_sum(chunks)) == bits(np.sum(values))


def test_zeros_and_empty_input() -> None:
    assert bits(chunked_sum([])) == bits(np.sum(np.zeros(0)))
    assert bits(chunked_sum([np.zeros(0), np.zeros(0)])) == bits(0.0)
    negative_zeros = [np.full(3, -0.0), np.full(200, -0.0)]
    assert bits(chunked_sum(negative_zeros)) == bits(np.sum(np.concatenate(negative_zeros)))
    assert bits(chunked_mean(negative_zeros)) == bits(np.mean(np.concatenate(negative_zeros)))
    with pytest.raises(ValueError):
        chunked_mean([np.zeros(0)])


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(TypeError):
        chunked_sum([np.ones(3, dtype=np.float32)])
