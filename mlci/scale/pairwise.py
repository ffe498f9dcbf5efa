"""``np.sum`` and ``np.mean`` of a float64 column held in row blocks, to the last bit.

SliceLine's mean error over rows held in blocks must equal ``np.mean`` over all rows, so a
search over blocks gives the single-run result to the last bit. Adding per-block sums does
not: numpy sums a contiguous float64 array pairwise (``pairwise_sum`` in
``numpy/_core/src/umath/loops_utils.h.src``), so the rounding depends on where its tree
splits the rows, not on where the blocks end. Here the tree is walked over the global row
range, and every subtree that lies inside one block is handed to numpy itself.

What numpy 2.4 does, checked against a pure emulation on data whose magnitudes span 1e-8 to
1e8: an aligned 1-D float64 array reaches the add loop whole (no 8192-element buffering, up to
1e7 rows tried), so ``np.sum(a) == 0.0 + pairwise(a)``: ranges of up to 128 rows are leaves,
longer ones split at ``n // 2`` rounded down to a multiple of 8. ``np.add.reduce`` of any slice
of that length is the same subtree. An unaligned array is buffered in 8192-row pieces and sums
differently, hence the copy of unaligned blocks. ``np.mean(a)`` is ``np.sum(a) / len(a)``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

# numpy's PW_BLOCKSIZE: ranges this long or shorter are summed without splitting.
_LEAF = 128


def chunked_sum(lengths: Sequence[int], load: Callable[[int], np.ndarray]) -> float:
    """np.sum of the concatenation of blocks, bit for bit, without concatenating.

    ``lengths`` are the blocks' lengths, ``load(i)`` gives block ``i``. The first split point
    is half the total, so the lengths must be known before anything is added; given them,
    numpy's tree is walked left to right, so blocks are loaded in ascending order, each once,
    and at most the few a leaf of 128 rows spans are held at a time.
    """
    kept = [(i, n) for i, n in enumerate(lengths) if n]
    ends = list(itertools.accumulate(n for _, n in kept))
    starts = [0, *ends[:-1]]
    held: dict[int, NDArray[np.float64]] = {}

    def block(k: int) -> NDArray[np.float64]:
        if k not in held:
            for old in [j for j in held if j < k]:
                del held[old]  # the walk never goes back
            held[k] = _aligned(load(kept[k][0]))
            if len(held[k]) != kept[k][1]:
                raise ValueError(f"block {kept[k][0]} has {len(held[k])} rows, not {kept[k][1]}")
        return held[k]

    def tree(lo: int, hi: int) -> float:
        k = bisect.bisect_right(ends, lo)
        if hi <= ends[k]:
            # np.add.reduce adds its +0.0 start to the subtree, which only turns a -0.0
            # subtree into +0.0; np.sum's own +0.0 start turns a zero total into +0.0 anyway.
            return float(np.add.reduce(block(k)[lo - starts[k] : hi - starts[k]]))
        if hi - lo <= _LEAF:
            # A leaf across blocks: its at most 128 rows are copied so numpy adds them in its
            # own leaf order (eight accumulators, then the tail).
            last = bisect.bisect_left(ends, hi)
            rows = [
                block(j)[max(lo, starts[j]) - starts[j] : hi - starts[j]]
                for j in range(k, last + 1)
            ]
            return float(np.add.reduce(np.concatenate(rows)))
        half = (hi - lo) // 2
        half -= half % 8
        return tree(lo, lo + half) + tree(lo + half, hi)

    return tree(0, ends[-1]) if kept else 0.0


def chunked_mean(lengths: Sequence[int], load: Callable[[int], np.ndarray]) -> float:
    """np.mean of the concatenation of blocks, bit for bit (see :func:`chunked_sum`)."""
    n = sum(lengths)
    if n == 0:
        raise ValueError("the mean of no rows is undefined")
    # numpy's _mean divides the float64 sum by the count with true_divide, as this does.
    return chunked_sum(lengths, load) / n


def _aligned(chunk: np.ndarray) -> NDArray[np.float64]:
    if chunk.dtype != np.float64 or chunk.ndim != 1:
        # Other dtypes are summed in their own precision after np.concatenate promotes them.
        raise TypeError(f"expected 1-D float64 blocks, got {chunk.ndim}-D {chunk.dtype}")
    # An unaligned block (np.frombuffer at an odd offset) would be summed in buffered pieces,
    # a different tree from the one np.concatenate's aligned result is summed in.
    return np.require(chunk, requirements="A")
