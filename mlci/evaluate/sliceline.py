"""Automatic slice finding with SliceLine.

SliceLine (Sagadeeva and Boehm, "SliceLine: Fast, Linear-Algebra-based Slice Finding for ML
Model Debugging", SIGMOD 2021) searches the lattice of conjunctions of ``feature == level``
predicates for the subsets of rows where a model's error is high. A slice ``S`` of a dataset
with ``n`` rows and mean error ``ē`` is scored

    score(S) = α·(ē_S / ē − 1) − (1 − α)·(n / |S| − 1)

and only slices with at least ``σ`` rows (the minimum support) and a positive error sum take
part. The search goes level by level: level ``l`` candidates are unions of two level ``l − 1``
slices that differ in one predicate, never hold two levels of one feature, and whose parents
are all valid. Candidates whose score upper bound (from the sizes, error sums and maximum
errors of their parents) cannot beat the current top-k are pruned before evaluation.

Results agree with the ``sliceline`` package (DataDome, PyPI), which follows the SystemDS
reference implementation; where that package departs from the paper we follow the package,
so that both return the same top-k, and say so in a comment (look for "package:").

Beyond the package's pruning, a candidate is skipped when neither it nor any slice inside it
can reach the top-k: rows per error bin only shrink from a slice to the slices inside it, so
the minimum over a candidate's parents bounds the error sum of any ``s`` rows inside it (fill
them from the highest bins). Skipped candidates only remove their own descendants, so the
result is unchanged; combinations are evaluated most promising first, so the k-th score
rises early. On 12 Zipf-distributed features at 1% support the package's bound keeps
candidates in every pair and triple of features; this bound keeps about 160 of 19,720 pair
candidates and 10 of 5,766 triple candidates.

Instead of sparse matrix products, candidates are evaluated by grouped counting: per
combination of features, the level codes are combined into a mixed-radix key and
``np.bincount`` yields sizes and error sums of all its slices in one pass over all rows, or,
for few candidates, only over the rows of each candidate's smallest one-predicate parent.
Rows are always visited in ascending order, so error sums agree with the package's to the
last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

# The sliceline package's default minimum support (``Slicefinder(min_sup=10)``).
DEFAULT_MIN_SUPPORT = 10

# Above this many possible keys a feature combination is grouped by sorting instead of by a
# dense ``np.bincount`` table, which keeps memory bounded for high-cardinality combinations.
_MAX_DENSE_KEYS = 1 << 22

# Error bins of the bound that lets the search skip candidates that cannot reach the top-k.
_N_BINS = 64
_BLOCK = 2048  # candidates per block of the reach bound
_GRID = 1 << 16  # cells of the uniform grid that assigns rows to error bins


@dataclass(frozen=True)
class FoundSlice:
    """One slice found by :func:`find_slices`, with its statistics."""

    predicates: tuple[tuple[str, object], ...]
    size: int
    error_sum: float
    error_mean: float
    max_error: float
    score: float


class Blocks(Protocol):
    """Rows held as consecutive blocks, read one at a time (batches of a file kept on disk)."""

    def __len__(self) -> int: ...

    def read(self, i: int, features: Sequence[str]) -> tuple[Mapping[str, np.ndarray], np.ndarray]:
        """Block ``i``'s level codes of ``features`` (as :func:`find_slices` takes them) and
        its errors."""
        ...


@dataclass(frozen=True)
class _Grid:
    """How errors map to the error bins of the reach bound."""

    lookup: np.ndarray  # the bin (uint8) of each cell of a uniform grid over [0, max error]
    scale: float  # cells per unit of error
    n_bins: int

    def bins(self, errors: np.ndarray) -> np.ndarray:
        cell = np.minimum((errors * self.scale).astype(np.int32), _GRID - 1)
        return np.asarray(self.lookup[cell])


@dataclass
class _Block:
    """Consecutive rows: per feature read, int32 codes with missing (-1) moved to
    ``radix - 1`` so keys stay non-negative; the rows' errors and error bins."""

    codes: dict[int, np.ndarray]
    errors: np.ndarray
    bins: np.ndarray


@dataclass
class _Data:
    """Validated inputs in the form the search uses: statistics of all rows, and the rows
    themselves as blocks in row order."""

    names: list[str]
    labels: list[list[object]]
    radix: np.ndarray
    n_rows: int
    avg_error: float
    grid: _Grid
    bin_max: np.ndarray  # the largest error in each bin
    bin_rows: np.ndarray  # rows in each bin
    # The blocks holding the given features (at least), in row order.
    read: Callable[[tuple[int, ...]], Iterator[_Block]]
    max_block_rows: int
    # One block held in memory: rows of a predicate may be kept through a level.
    in_memory: bool
    # Per feature, the size of each one-predicate slice (filled by the first level).
    single_size: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Group:
    """Slices over one combination of features (sorted feature indices).

    ``keys`` are mixed-radix keys of the slices' level codes (radix ``card + 1`` per feature,
    first feature most significant), sorted ascending.
    """

    feats: tuple[int, ...]
    keys: np.ndarray
    size: np.ndarray
    err: np.ndarray
    maxerr: np.ndarray
    # Rows per error bin (int32, one row per slice), for the reach bound; no columns where
    # not needed (the last level, candidates once bounded).
    hist: np.ndarray
    # Candidates only: bound on the score of each candidate and of every slice inside it.
    reach: np.ndarray | None = None


@dataclass
class _Entry:
    """A top-k slice; ``maxerr`` is NaN until it is computed for the result."""

    score: float
    err: float
    maxerr: float
    size: int
    preds: tuple[tuple[int, int], ...]


@dataclass
class _Params:
    k: int
    max_level: int
    alpha: float
    min_support: int
    sound_pruning: bool


def find_slices(
    codes: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[object]],
    errors: np.ndarray,
    *,
    k: int = 10,
    max_level: int = 3,
    alpha: float = 0.95,
    min_support: int | float | None = None,
    sound_pruning: bool = False,
) -> list[FoundSlice]:
    """Find the top-k slices where the errors are high.

    Args:
        codes: per feature, an integer array of level indices ``0..len(labels[f]) - 1`` per row;
            ``-1`` marks a missing value, which is never part of a slice.
        labels: per feature, the label of each level (same keys as ``codes``).
        errors: non-negative per-row errors of the model.
        k: number of slices to return; as in the sliceline package, slices tied with the
            k-th score are all returned, so the result can hold more than ``k`` slices.
        max_level: maximum number of predicates in a slice.
        alpha: weight of the error term of the score, in (0, 1].
        min_support: minimum slice size σ: a count, or a fraction of the rows in (0, 1)
            (``int(fraction * n_rows)``); ``None`` uses the sliceline package's default of 10.
        sound_pruning: ``False`` reproduces the sliceline package's pruning exactly (the
            results agree with it). ``True`` prunes only what provably cannot reach the top-k
            (bounds over all parents with the row count, a threshold only once k slices are
            known, ties kept), so the result equals exhaustive enumeration.

    Returns:
        Slices with a positive score, best first; ties are ordered as the sliceline package
        orders them.
    """
    data = _prepare(codes, labels, errors)
    return _find(data, k, max_level, alpha, min_support, sound_pruning)


def find_slices_in_blocks(
    blocks: Blocks,
    labels: Mapping[str, Sequence[object]],
    *,
    k: int = 10,
    max_level: int = 3,
    alpha: float = 0.95,
    min_support: int | float | None = None,
    sound_pruning: bool = False,
) -> list[FoundSlice]:
    """:func:`find_slices` over rows held as blocks, in memory bounded by one block.

    Every statistic the search uses is a sum, a count or a maximum over rows, so each is
    taken block by block and merged: counts add, maxima take the larger, and error sums are
    continued block after block in row order (``np.add.at`` into the sums so far), which
    adds the same numbers in the same order as ``np.bincount`` over all rows. The mean error
    is numpy's pairwise sum over all rows, reproduced across blocks. The result is
    :func:`find_slices`' over the blocks' rows put together, to the last bit; each level
    reads the blocks again, once per combination of features it evaluates.
    """
    data = _prepare_blocks(blocks, labels)
    return _find(data, k, max_level, alpha, min_support, sound_pruning)


def _find(
    data: _Data,
    k: int,
    max_level: int,
    alpha: float,
    min_support: int | float | None,
    sound_pruning: bool,
) -> list[FoundSlice]:
    params = _check_params(k, max_level, alpha, min_support, sound_pruning, data.n_rows)
    if data.avg_error <= 0 or not data.names:
        return []  # no slice can have a positive error sum

    top = _search(data, params)
    return [_to_found(data, entry) for entry in top]


def slice_mask(
    codes: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[object]],
    found: FoundSlice,
) -> np.ndarray:
    """Boolean row mask of a found slice, for the ``codes`` and ``labels`` it was found on."""
    mask: np.ndarray | None = None
    for name, label in found.predicates:
        level = list(labels[name]).index(label)
        hit = np.asarray(codes[name]) == level
        mask = hit if mask is None else mask & hit
    if mask is None:
        raise ValueError("a slice needs at least one predicate")
    return mask


def bin_numeric(values: np.ndarray, n_bins: int) -> tuple[np.ndarray, list[str]]:
    """Quantile-bin a numeric column for slice finding.

    Edges are the ``n_bins + 1`` quantiles of the non-missing values, deduplicated, so heavy
    ties give fewer bins. Bins are ``[lo, hi)`` except the last, ``[lo, hi]``. NaN gets code -1.

    Returns:
        Codes (int32, -1 for NaN) and one label per bin, e.g. ``"[30, 45)"``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bin_numeric needs numeric values: {exc}") from exc
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")

    present = ~np.isnan(v)
    if not present.any():
        return np.full(v.shape[0], -1, dtype=np.int32), []
    finite = v[np.isfinite(v)]
    quantiles = np.empty(0)
    if finite.size:
        quantiles = np.quantile(finite, bin_levels(int(n_bins)))
    edges = bin_edges(float(v[present].min()), quantiles, float(v[present].max()))
    return bin_codes(v, edges), bin_labels(edges)


def bin_levels(n_bins: int) -> np.ndarray:
    """The quantile levels of ``n_bins`` bins' edges."""
    return np.linspace(0.0, 1.0, n_bins + 1)


def bin_edges(lowest: float, quantiles: np.ndarray, highest: float) -> np.ndarray:
    """Bin edges from the least and greatest non-missing values and the finite values'
    quantiles: infinite values get outer edges of their own; np.unique also drops duplicate
    edges."""
    return np.unique(np.concatenate([[lowest], quantiles, [highest]]))


def bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each value's bin (int32), -1 for NaN."""
    v = np.asarray(values, dtype=np.float64)
    codes = np.full(v.shape[0], -1, dtype=np.int32)
    present = ~np.isnan(v)
    codes[present] = np.searchsorted(edges[1:-1], v[present], side="right")
    return codes


def encode_categorical(values: np.ndarray) -> tuple[np.ndarray, list[object]]:
    """Encode a categorical column as level codes.

    Returns:
        Codes (int32, -1 for None/NaN/NaT) and the labels: the sorted distinct values, as
        plain Python objects. Values of mixed, mutually unorderable types are ordered by type
        name, then value.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == object:
        fast = _encode_text(arr)
        if fast is not None:
            return fast
    missing = _missing_mask(arr)
    present = arr[~missing]
    codes = np.full(arr.shape[0], -1, dtype=np.int32)
    try:
        uniques, inverse = np.unique(present, return_inverse=True)
        levels = uniques.tolist()
    except TypeError:
        # np.unique sorts, which fails on values of unorderable mixed types.
        levels = sorted(set(present.tolist()), key=lambda x: (type(x).__name__, repr(x)))
        index = {value: i for i, value in enumerate(levels)}
        inverse = np.fromiter((index[x] for x in present.tolist()), dtype=np.int64)
    codes[~missing] = inverse.reshape(-1)
    return codes, levels


def _encode_text(arr: np.ndarray) -> tuple[np.ndarray, list[object]] | None:
    """Codes for a text column through Arrow's hash encoding; None when it is not all text.

    Sorting ten million Python strings takes seconds; hashing them in Arrow and sorting only
    the distinct values takes a fraction of that.
    """
    import pyarrow as pa

    try:
        encoded = pa.array(arr, from_pandas=True).dictionary_encode()
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if not pa.types.is_string(encoded.type.value_type):
        return None
    return dictionary_codes(encoded)


def dictionary_codes(encoded: pa.DictionaryArray) -> tuple[np.ndarray, list[object]]:
    """:func:`encode_categorical`'s codes and labels of a dictionary-encoded text column.

    Only the distinct values are sorted, in Arrow: UTF-8 bytes order as their code points do,
    which is how Python orders strings. Each row's index is then mapped to its value's rank.
    """
    import pyarrow.compute as pc

    order = pc.array_sort_indices(encoded.dictionary).to_numpy(zero_copy_only=False)
    rank = np.empty(len(order) + 1, dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    rank[-1] = -1  # index -1: a missing row
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return rank[indices], encoded.dictionary.take(order).to_pylist()


# --------------------------------------------------------------------------- validation


def _prepare(
    codes: Mapping[str, np.ndarray], labels: Mapping[str, Sequence[object]], errors: np.ndarray
) -> _Data:
    e = _checked_errors(errors)
    if set(codes) != set(labels):
        raise ValueError(
            f"codes and labels must name the same features: {sorted(map(str, codes))} "
            f"vs {sorted(map(str, labels))}"
        )
    names, level_labels, radix = _features(list(codes), labels)
    n, avg_error, grid = _error_summary(1, lambda i: e)
    internal = {f: _internal(name, codes[name], radix[f] - 1, n) for f, name in enumerate(names)}
    block = _Block(internal, e, grid.bins(e))
    bin_max, bin_rows = _bin_stats([block], grid.n_bins)
    return _Data(
        names=names,
        labels=level_labels,
        radix=np.asarray(radix, dtype=np.int64),
        n_rows=n,
        avg_error=avg_error,
        grid=grid,
        bin_max=bin_max,
        bin_rows=bin_rows,
        read=lambda feats: iter([block]),
        max_block_rows=n,
        in_memory=True,
    )


def _prepare_blocks(blocks: Blocks, labels: Mapping[str, Sequence[object]]) -> _Data:
    names, level_labels, radix = _features(list(labels), labels)

    def errors_of(i: int) -> np.ndarray:
        return _checked_errors(blocks.read(i, ())[1])

    n, avg_error, grid = _error_summary(len(blocks), errors_of)
    largest = 0

    def read(feats: tuple[int, ...]) -> Iterator[_Block]:
        nonlocal largest
        wanted = [names[f] for f in feats]
        for i in range(len(blocks)):
            codes, e = blocks.read(i, wanted)
            e = np.asarray(e, dtype=np.float64)
            if e.size == 0:
                continue  # nothing to count, and empty tables have no slot to spare
            largest = max(largest, e.shape[0])
            internal = {
                f: _internal(names[f], codes[names[f]], radix[f] - 1, e.shape[0]) for f in feats
            }
            yield _Block(internal, e, grid.bins(e))

    bin_max, bin_rows = _bin_stats(read(()), grid.n_bins)
    return _Data(
        names=names,
        labels=level_labels,
        radix=np.asarray(radix, dtype=np.int64),
        n_rows=n,
        avg_error=avg_error,
        grid=grid,
        bin_max=bin_max,
        bin_rows=bin_rows,
        read=read,
        max_block_rows=largest,
        in_memory=False,
    )


def _checked_errors(errors: object) -> np.ndarray:
    try:
        e = np.asarray(errors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"errors must be numeric: {exc}") from exc
    if e.ndim != 1:
        raise ValueError(f"errors must be one-dimensional, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("errors must be finite (found NaN or infinity)")
    if (e < 0).any():
        raise ValueError("errors must be non-negative")
    return e


def _features(
    names: Sequence[object], labels: Mapping[str, Sequence[object]]
) -> tuple[list[str], list[list[object]], list[int]]:
    """Feature names, each one's level labels, and each one's radix (levels + missing)."""
    level_labels = [list(labels[str(name)]) for name in names]
    return [str(name) for name in names], level_labels, [len(lab) + 1 for lab in level_labels]


def _internal(name: str, column: np.ndarray, card: int, n: int) -> np.ndarray:
    """A feature's codes checked against its ``card`` labels, as int32 with missing (-1)
    moved to ``card``."""
    c = np.asarray(column)
    if c.ndim != 1 or c.shape[0] != n:
        raise ValueError(
            f"codes[{name!r}] must be one-dimensional with {n} rows (one per error), "
            f"got shape {c.shape}"
        )
    if c.dtype.kind not in "iu":
        raise ValueError(f"codes[{name!r}] must hold integers, got dtype {c.dtype}")
    # One contiguous copy (columns of a row-major matrix are strided); int32 as is, other
    # integer types after the range check so that casting cannot wrap.
    c = c.astype(np.int32) if c.dtype == np.int32 else np.ascontiguousarray(c)
    if c.size == 0:
        return c.astype(np.int32)
    lo, hi = int(c.min()), int(c.max())
    if lo < -1 or hi >= card:
        raise ValueError(
            f"codes[{name!r}] must lie in -1..{card - 1} ({card} labels), found {lo}..{hi}"
        )
    code = c if c.dtype == np.int32 else c.astype(np.int32)
    if lo < 0:
        code[code < 0] = card
    return code


def _error_summary(count: int, errors_of: Callable[[int], np.ndarray]) -> tuple[int, float, _Grid]:
    """Rows, mean error and error-bin grid of all rows, from the errors of each of ``count``
    blocks (read more than once)."""
    from mlci.scale.pairwise import chunked_mean

    lengths, top = [], 0.0
    for i in range(count):
        e = errors_of(i)
        lengths.append(e.size)
        top = max(top, float(e.max())) if e.size else top
    n = sum(lengths)
    if n == 0:
        raise ValueError("errors is empty: slice finding needs at least one row")
    # Same reduction as the package (np.mean over all rows), so scores agree to the last bit.
    avg_error = chunked_mean(lengths, errors_of)
    stride, offset, sample = max(1, n // 65536), 0, []
    for i in range(count):
        e = errors_of(i)
        sample.append(e[(-offset) % stride :: stride])
        offset += e.size
    return n, avg_error, _grid(np.concatenate(sample), top)


def _grid(sample: np.ndarray, top: float) -> _Grid:
    """Error bins from a strided sample of the errors and the largest error.

    The bound fills a slice from the highest bins, so those must be narrow: edges lie at
    quantiles ``1 - 2^-j/4`` of the sample, plus a few below the median. Rows are binned
    through a fine uniform grid (binary search per row costs more than the search); any
    binning keeps the bound valid, as each bin's largest error is exact.
    """
    upper = 1.0 - 0.5 * 2.0 ** (-np.arange(_N_BINS - 8) / 4.0)
    levels = np.concatenate([np.linspace(0.0, 0.5, 9)[1:-1], upper])
    edges = np.unique(np.quantile(sample, levels))
    scale = _GRID / top if top > 0 else 0.0
    lookup = np.searchsorted(edges, np.arange(_GRID) / scale if scale else np.zeros(_GRID), "right")
    return _Grid(lookup.astype(np.uint8), scale, edges.size + 1)  # at most _N_BINS + 1 bins


def _bin_stats(blocks: Iterable[_Block], n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The largest error and the number of rows in each error bin."""
    bin_max = np.zeros(n_bins)
    bin_rows = np.zeros(n_bins, dtype=np.int64)
    for block in blocks:
        np.maximum.at(bin_max, block.bins, block.errors)
        bin_rows += np.bincount(block.bins, minlength=n_bins)
    return bin_max, bin_rows


def _check_params(
    k: int,
    max_level: int,
    alpha: float,
    min_support: int | float | None,
    sound_pruning: bool,
    n_rows: int,
) -> _Params:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(max_level, bool) or not isinstance(max_level, (int, np.integer)) or max_level < 1:
        raise ValueError(f"max_level must be a positive integer, got {max_level!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)):
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    if not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return _Params(
        k=int(k),
        max_level=int(max_level),
        alpha=float(alpha),
        min_support=_support(min_support, n_rows),
        sound_pruning=bool(sound_pruning),
    )


def _support(min_support: int | float | None, n_rows: int) -> int:
    """Minimum support as a row count, following the package's ``min_sup`` rule."""
    if min_support is None:
        return DEFAULT_MIN_SUPPORT
    if isinstance(min_support, bool) or not isinstance(min_support, (int, float, np.number)):
        raise ValueError(f"min_support must be a count or a fraction, got {min_support!r}")
    if isinstance(min_support, (float, np.floating)):
        if not 0.0 < min_support < 1.0:
            raise ValueError(
                f"a fractional min_support must be in (0, 1), got {min_support!r} "
                "(pass an int for a row count)"
            )
        # package: int(min_sup * len(X)). A support of 0 would make the package's bound
        # divide by zero; no slice of 0 rows is ever valid, so 1 is equivalent for results.
        return max(int(min_support * n_rows), 1)
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support!r}")
    return int(min_support)


# --------------------------------------------------------------------------- search


def _search(data: _Data, p: _Params) -> list[_Entry]:
    """Level-wise lattice search; returns the top-k entries, best first."""
    n_features = len(data.names)
    last_level = min(n_features, p.max_level)
    groups, n_columns = _level_one(data, p)

    top: list[_Entry] = []
    prev = _update_top(data, p, top, groups)

    buffers = _Buffers(data.max_block_rows)
    level = 1
    while prev and level < last_level:
        level += 1
        ctx = _Context(data, p, n_columns, _prune_threshold(top, p), _reach_threshold(top, p))
        candidates = _candidates(ctx, prev, level)
        # Most promising groups first: the top-k they fill lets later groups skip candidates
        # that can no longer enter it. Merging group by group keeps the same top-k as merging
        # the level at once, since the k-th score only grows as slices are added.
        candidates.sort(key=lambda c: -float(np.max(_reach_of(c))))
        pivots: dict[tuple[int, int], _Pivot] = {}
        prev = []
        for cand in candidates:
            reachable = _reach_of(cand) >= _with_slack(_reach_threshold(top, p))
            if not reachable.any():
                continue
            group = _evaluate(
                data, _subset(cand, reachable), buffers, pivots, need_bounds=level < last_level
            )
            prev.extend(_update_top(data, p, top, [group]))

    _fill_max_errors(data, top)
    return sorted(top, key=cmp_to_key(_compare))


def _level_one(data: _Data, p: _Params) -> tuple[list[_Group], int]:
    """Statistics of all one-predicate slices, and the number of observed levels."""
    n_bins = data.grid.n_bins
    feats = tuple(range(len(data.names)))
    cards = [int(r) - 1 for r in data.radix]
    err = [np.zeros(card + 1) for card in cards]
    flat = [np.zeros((card + 1) * n_bins, dtype=np.int64) for card in cards]
    for block in data.read(feats):
        for f, card in enumerate(cards):
            c = block.codes[f]
            np.add.at(err[f], c, block.errors)  # np.bincount's sums, continued across blocks
            key = c * n_bins
            key += block.bins
            flat[f] += np.bincount(key, minlength=(card + 1) * n_bins)
    hists = [
        flat[f].reshape(card + 1, n_bins)[:card].astype(np.int32) for f, card in enumerate(cards)
    ]
    sizes = [hist.sum(axis=1, dtype=np.int64) for hist in hists]
    maxerrs = _single_max_errors(data, hists, [size >= p.min_support for size in sizes])
    groups: list[_Group] = []
    n_columns = 0
    for f, card in enumerate(cards):
        # package: the bound uses the number of one-hot columns, i.e. levels seen in the data.
        n_columns += int(np.count_nonzero(sizes[f]))
        data.single_size.append(sizes[f])
        keys = np.arange(card, dtype=np.int64)
        groups.append(_Group((f,), keys, sizes[f], err[f][:card], maxerrs[f], hists[f]))
    return groups, n_columns


def _high_bin(data: _Data) -> int:
    """The lowest of the top error bins that hold about 3% of the rows."""
    above = np.cumsum(data.bin_rows[::-1])[::-1]  # rows in this bin and all higher ones
    low = int(np.argmax(above <= max(data.n_rows // 32, 1))) if above[-1] else 0
    if above[low] > max(data.n_rows // 32, 1):
        low = data.grid.n_bins - 1
    return low


def _single_max_errors(
    data: _Data, hists: list[np.ndarray], wanted: list[np.ndarray]
) -> list[np.ndarray]:
    """Per feature, the largest error of each level that may become a parent (``wanted``).

    A level with rows in the top bins has its largest error among them, so few rows are
    scanned; the rest of the wanted levels are scanned on their own. Other levels are never
    read (NaN).
    """
    low = _high_bin(data)
    feats = tuple(range(len(hists)))
    tables = [np.zeros(hist.shape[0] + 1) for hist in hists]
    for block in data.read(feats):
        rows = np.flatnonzero(block.bins >= low)
        for f in feats:
            np.maximum.at(tables[f], block.codes[f][rows], block.errors[rows])
    maxerrs = [
        np.where(hist[:, low:].any(axis=1), table[: hist.shape[0]], np.nan)
        for hist, table in zip(hists, tables, strict=True)
    ]
    missing = {f: np.flatnonzero(wanted[f] & np.isnan(maxerrs[f])) for f in feats}
    missing = {f: levels for f, levels in missing.items() if levels.size}
    if not missing:
        return maxerrs
    found = {f: np.zeros(levels.size) for f, levels in missing.items()}
    for block in data.read(tuple(missing)):
        for f, levels in missing.items():
            codes = block.codes[f]
            if levels.size > 8:
                table = np.zeros(hists[f].shape[0] + 1)
                np.maximum.at(table, codes, block.errors)
                np.maximum(found[f], table[levels], out=found[f])
                continue
            for j, level in enumerate(levels.tolist()):
                errors = block.errors[codes == level]
                if errors.size:
                    found[f][j] = max(found[f][j], float(errors.max()))
    for f, levels in missing.items():
        maxerrs[f][levels] = found[f]
    return maxerrs


def _score(p: _Params, data: _Data, size: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Slice scores, written exactly as the package writes them so floats agree."""
    alpha = p.alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        s = alpha * ((err / size) / data.avg_error - 1) - (1 - alpha) * (data.n_rows / size - 1)
    return np.asarray(np.nan_to_num(s, nan=-np.inf))


def _update_top(data: _Data, p: _Params, top: list[_Entry], groups: list[_Group]) -> list[_Group]:
    """Merge evaluated groups into ``top`` (in place); return their valid slices.

    Valid slices (size ≥ σ and positive error sum) are the parents of the next level. Slices
    tied with the k-th score are kept, like the package's ``rankdata(method="min") <= k``.
    """
    valid_groups: list[_Group] = []
    scores: list[np.ndarray] = []
    for g in groups:
        valid = (g.size >= p.min_support) & (g.err > 0)
        if valid.any():
            valid_groups.append(
                _Group(
                    g.feats,
                    g.keys[valid],
                    g.size[valid],
                    g.err[valid],
                    g.maxerr[valid],
                    g.hist[valid],
                )
            )
            scores.append(_score(p, data, g.size[valid], g.err[valid]))

    pool = np.concatenate([np.array([e.score for e in top])] + scores) if scores else None
    if pool is None or pool.size == 0:
        return valid_groups
    pool = pool[pool > 0]
    if pool.size == 0:
        return valid_groups
    kth = np.partition(pool, pool.size - p.k)[pool.size - p.k] if pool.size > p.k else pool.min()
    cut = max(kth, 0.0)

    kept = [e for e in top if e.score >= cut]
    for g, s in zip(valid_groups, scores, strict=True):
        kept.extend(
            _Entry(
                score=float(s[i]),
                err=float(g.err[i]),
                maxerr=float(g.maxerr[i]),
                size=int(g.size[i]),
                preds=_decode(g.feats, int(g.keys[i]), data.radix),
            )
            for i in np.flatnonzero((s >= cut) & (s > 0)).tolist()
        )
    top[:] = kept
    return valid_groups


def _prune_threshold(top: list[_Entry], p: _Params) -> float:
    """Score a candidate's upper bound must beat to be evaluated."""
    if not top:
        return -np.inf
    if p.sound_pruning and len(top) < p.k:
        return -np.inf
    # package: prunes against the lowest top-k score even while fewer than k slices are
    # known, which can drop a slice that belongs in the top-k; only the k-th score of a full
    # top-k is a safe threshold.
    return min(e.score for e in top)


def _reach_threshold(top: list[_Entry], p: _Params) -> float:
    """Score below which no slice can enter the final top-k.

    Once ``top`` holds k slices, the final k-th score is at least its lowest score; before
    that only a positive score is needed.
    """
    if len(top) < p.k:
        return 0.0
    return min(e.score for e in top)


def _decode(feats: tuple[int, ...], key: int, radix: np.ndarray) -> tuple[tuple[int, int], ...]:
    digits: list[tuple[int, int]] = []
    for f in reversed(feats):
        key, d = divmod(key, int(radix[f]))
        digits.append((f, d))
    return tuple(reversed(digits))


# --------------------------------------------------------------------------- candidates


@dataclass
class _Context:
    """What candidate pruning needs besides the parents."""

    data: _Data
    params: _Params
    n_columns: int  # levels seen in the data: the package's number of one-hot columns
    threshold: float  # score an upper bound must beat
    reach: float  # score below which a slice cannot enter the final top-k


def _candidates(ctx: _Context, prev: list[_Group], level: int) -> list[_Group]:
    """Level ``level`` candidates that survive pruning, with their bounds as statistics.

    Each candidate is generated once, from its two parents that share all but their last
    predicate (an apriori prefix join); the package joins all pairs sharing ``level - 2``
    predicates and deduplicates, which yields the same set once all parents must be present.
    """
    by_feats = {g.feats: g for g in prev}
    by_prefix: dict[tuple[int, ...], list[int]] = {}
    for feats in by_feats:
        by_prefix.setdefault(feats[:-1], []).append(feats[-1])

    out: list[_Group] = []
    pending: list[tuple[_Group, np.ndarray]] = []
    for prefix, lasts in by_prefix.items():
        lasts.sort()
        for i, fa in enumerate(lasts):
            for fb in lasts[i + 1 :]:
                cand = _join(ctx, by_feats, prefix, fa, fb, level)
                if cand is not None:
                    pending.append(cand)
                if sum(g.keys.size for g, _ in pending) >= _BLOCK:
                    out.extend(_reachable(ctx, pending))
                    pending = []
    out.extend(_reachable(ctx, pending))
    return out


def _reachable(ctx: _Context, joined: list[tuple[_Group, np.ndarray]]) -> list[_Group]:
    """The joined candidates that may reach the top-k, with their reach bounds.

    Skipping a candidate that neither it nor any slice inside it can enter the top-k leaves
    the result unchanged: its descendants are exactly the candidates its absence removes.
    Joins are bounded together, in blocks of about ``_BLOCK`` candidates: one call per join
    costs more in overhead than in arithmetic, one call per level leaves the cache.
    """
    if not joined:
        return []
    bounds = np.concatenate([b for _, b in joined], axis=1)
    hist = np.concatenate([g.hist for g, _ in joined])
    reach = _reach_bound(ctx, bounds[0], bounds[1], bounds[2], hist)
    out: list[_Group] = []
    start = 0
    for g, _ in joined:
        stop = start + g.keys.size
        g.reach, g.hist = reach[start:stop], hist[start:stop, :0]  # bin counts no longer needed
        start = stop
        reachable = g.reach >= _with_slack(ctx.reach)
        if reachable.any():
            out.append(_subset(g, reachable))
    return out


def _join(
    ctx: _Context,
    by_feats: dict[tuple[int, ...], _Group],
    prefix: tuple[int, ...],
    fa: int,
    fb: int,
    level: int,
) -> tuple[_Group, np.ndarray] | None:
    """Candidates over ``prefix + (fa, fb)`` whose parents are all valid and bound survives.

    Returns them with the package's bounds as statistics, the minimum over all parents of
    their bin counts as ``hist``, and the minima over all parents of size, error sum and
    largest error (rows of an array), from which the search bounds what they can reach.
    """
    radix, p = ctx.data.radix, ctx.params
    a, b = by_feats[prefix + (fa,)], by_feats[prefix + (fb,)]
    rb = int(radix[fb])
    ia, ib = _match_prefix(a.keys // int(radix[fa]), b.keys // rb)
    if ia.size == 0:
        return None
    feats = prefix + (fa, fb)
    keys = a.keys[ia] * rb + b.keys[ib] % rb

    # parents[j]: (group, row indices) of the parent without predicate j.
    parents: list[tuple[_Group, np.ndarray]] = [(a, ia)] * level
    parents[level - 2] = (b, ib)
    keep = np.ones(keys.size, dtype=bool)
    weights = _weights(feats, radix)
    for j in range(level - 2):
        group = by_feats.get(feats[:j] + feats[j + 1 :])
        if group is None:
            return None
        pkeys = (keys // (weights[j] * int(radix[feats[j]]))) * weights[j] + keys % weights[j]
        idx, found = _lookup(group.keys, pkeys)
        keep &= found
        parents[j] = (group, idx)
    if not keep.any():
        return None

    # package: the bounds of a candidate come from the first parent pair met in its scan
    # (np.unique(return_index=True) over row-major pairs of ID-sorted slices), which is the
    # parents without predicate 0 and without predicate 1; the paper takes the minimum over
    # all parents, a tighter bound.
    used = parents if p.sound_pruning else parents[:2]
    size = _min_over(used, "size", keep)
    err = _min_over(used, "err", keep)
    maxerr = _min_over(used, "maxerr", keep)
    survive = _survives(ctx, _upper_bound(ctx, size, err, maxerr), size)
    if not survive.any():
        return None
    kept = np.flatnonzero(keep)[survive]  # positions in the parents' index arrays
    hist = np.minimum.reduce([g.hist[idx[kept]] for g, idx in parents])
    bounds = np.stack([_min_over_at(parents, field, kept) for field in ("size", "err", "maxerr")])
    cand = _Group(feats, keys[kept], size[survive], err[survive], maxerr[survive], hist)
    return cand, bounds


def _reach_of(cand: _Group) -> np.ndarray:
    if cand.reach is None:
        raise AssertionError("candidates carry their reach bound")
    return cand.reach


def _subset(g: _Group, keep: np.ndarray) -> _Group:
    reach = None if g.reach is None else g.reach[keep]
    return _Group(
        g.feats, g.keys[keep], g.size[keep], g.err[keep], g.maxerr[keep], g.hist[keep], reach
    )


def _with_slack(threshold: float) -> float:
    """A threshold lowered by far more than the rounding in a bound, so ties stay in."""
    return threshold - 1e-9 * max(1.0, abs(threshold))


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` in ``sorted_keys`` (clipped) and whether each is there."""
    idx = np.searchsorted(sorted_keys, keys)
    found = idx < sorted_keys.size
    found[found] = sorted_keys[idx[found]] == keys[found]
    return np.minimum(idx, sorted_keys.size - 1), found


def _survives(ctx: _Context, ub: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Which candidates pruning keeps, given their score upper bounds and size bounds."""
    p, threshold = ctx.params, ctx.threshold
    if p.sound_pruning:
        # Keep ties with the k-th score: they belong to the top-k; the slack absorbs rounding.
        slack = 1e-9 * max(1.0, abs(threshold)) if np.isfinite(threshold) else 0.0
        keep = (ub >= threshold - slack) & (ub > -1e-12)
    else:
        # package: strict comparisons, so a candidate that can at best tie the k-th score is
        # pruned although the package returns ties with the k-th score.
        keep = (ub > threshold) & (ub > 0)
    return keep & (size >= p.min_support)


def _reach_bound(
    ctx: _Context, size: np.ndarray, err: np.ndarray, maxerr: np.ndarray, hist: np.ndarray
) -> np.ndarray:
    """Upper bound of the score of a candidate and of every slice inside it.

    ``size``, ``err`` and ``maxerr`` bound the candidate's row count, error sum and largest
    error, and ``hist`` its rows per error bin: the minima over its parents, since a slice
    has no more rows in any bin than each of its parents. A slice of ``s`` rows inside it has
    an error sum of at most ``h(s) = min(err, G(s))``, where ``G(s)`` fills ``s`` rows from the
    highest bins, each row at its bin's largest error (capped at ``maxerr``). ``h`` is
    piecewise linear, and the score with a linear error sum is monotone in ``s``, so the
    maximum over ``[σ, size]`` lies at an end, at a corner of ``G`` or where ``G`` meets
    ``err``.
    """
    p, data = ctx.params, ctx.data
    alpha, avg, n = p.alpha, data.avg_error, float(data.n_rows)
    sigma = float(p.min_support)
    m, n_bins = hist.shape
    # The score as (c1·e − c2)/s + c3; it rounds differently from the package's expression,
    # by far less than the slack of the comparison.
    c1, c2, c3 = alpha / avg, (1 - alpha) * n, 1 - 2 * alpha
    # Bins from the highest down; corners of G at the cumulative counts (corner 0 at s = 0).
    top = np.minimum(data.bin_max[::-1][None, :], maxerr[:, None])
    corner_s = np.zeros((m, n_bins + 1))
    np.cumsum(hist[:, ::-1], axis=1, out=corner_s[:, 1:])
    corner_g = np.zeros((m, n_bins + 1))
    np.cumsum(hist[:, ::-1] * top, axis=1, out=corner_g[:, 1:])
    hi = np.minimum(size.astype(np.float64), corner_s[:, -1])
    rows = np.arange(m)

    def g_at(s: np.ndarray) -> np.ndarray:
        """G at ``s`` (one point per candidate), by linear interpolation between corners."""
        k = np.clip((corner_s <= s[:, None]).sum(axis=1) - 1, 0, n_bins - 1)
        return np.asarray(corner_g[rows, k] + (s - corner_s[rows, k]) * top[rows, k])

    with np.errstate(divide="ignore", invalid="ignore"):
        numerator = np.minimum(corner_g, err[:, None])
        numerator *= c1
        numerator -= c2
        numerator /= corner_s
        outside = (corner_s < sigma) | (corner_s > hi[:, None])
        numerator[outside] = -np.inf
        best = numerator.max(axis=1) + c3
        # Where G meets err: the first corner at or above err, and the segment before it.
        k = np.clip((corner_g < err[:, None]).sum(axis=1), 1, n_bins)
        meet = corner_s[rows, k - 1] + (err - corner_g[rows, k - 1]) / top[rows, k - 1]
        meet = np.where(np.isfinite(meet), meet, sigma)
        for point in (np.full(m, sigma), hi, meet):
            s = np.clip(point, sigma, np.maximum(hi, sigma))
            best = np.fmax(best, (c1 * np.minimum(err, g_at(s)) - c2) / s + c3)
    return np.where(hi >= sigma, best, -np.inf)


def _match_prefix(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs ``(i, j)`` with ``pa[i] == pb[j]``; both inputs sorted ascending."""
    lo = np.searchsorted(pb, pa, side="left")
    count = np.searchsorted(pb, pa, side="right") - lo
    total = int(count.sum())
    ia = np.repeat(np.arange(pa.size), count)
    starts = np.cumsum(count) - count
    ib = np.repeat(lo - starts, count) + np.arange(total)
    return ia, ib


def _weights(feats: tuple[int, ...], radix: np.ndarray) -> list[int]:
    """Place value of each feature's digit in a combination's mixed-radix key."""
    w = [1] * len(feats)
    for j in range(len(feats) - 2, -1, -1):
        w[j] = w[j + 1] * int(radix[feats[j + 1]])
    return w


def _min_over_at(
    parents: list[tuple[_Group, np.ndarray]], field: str, at: np.ndarray
) -> np.ndarray:
    values = [getattr(g, field)[idx[at]] for g, idx in parents]
    return np.asarray(np.minimum.reduce(values).astype(np.float64))


def _min_over(parents: list[tuple[_Group, np.ndarray]], field: str, keep: np.ndarray) -> np.ndarray:
    values = [getattr(g, field)[idx[keep]] for g, idx in parents]
    return np.asarray(np.minimum.reduce(values).astype(np.float64))


def _upper_bound(
    ctx: _Context, size: np.ndarray, err: np.ndarray, maxerr: np.ndarray
) -> np.ndarray:
    """Upper bound of the score of a candidate and all its descendants.

    The score over sizes in [σ, size] with error sum at most min(s·maxerr, err) is monotone
    on either side of s = err/maxerr, so the maximum is at σ, err/maxerr or size.
    """
    p, data = ctx.params, ctx.data
    alpha = p.alpha
    sigma = float(p.min_support)
    # package: uses the number of one-hot columns where the paper's bound has the number of
    # rows n. With fewer columns than rows the bound is merely looser; sound pruning uses n.
    n = float(data.n_rows) if p.sound_pruning else float(ctx.n_columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        points = (np.full(size.shape, sigma), np.maximum(err / maxerr, sigma), size)
        # Same expression as the package's numpy path, so pruning decisions agree exactly.
        bounds = [
            (alpha * (np.minimum(s * maxerr, err) / data.avg_error - s) - (1 - alpha) * (n - s)) / s
            for s in points
        ]
    return np.asarray(np.maximum.reduce(bounds))


# --------------------------------------------------------------------------- evaluation


def _evaluate(
    data: _Data,
    cand: _Group,
    buffers: _Buffers,
    pivots: dict[tuple[int, int], _Pivot],
    *,
    need_bounds: bool,
) -> _Group:
    """Exact statistics of a group of candidates, block by block.

    Few candidates are counted on the rows of their smallest one-predicate parent (the pivot);
    many by grouped counting over all rows. ``pivots`` caches pivot rows within a level
    (rows held in memory only).
    """
    # Per candidate, the feature (position in cand.feats) whose predicate holds the fewest rows.
    digits = _digits(cand.feats, cand.keys, data.radix)
    sizes = np.stack([data.single_size[f][d] for f, d in zip(cand.feats, digits, strict=True)])
    choice = np.argmin(sizes, axis=0)
    pivot_rows = int(np.take_along_axis(sizes, choice[None, :], axis=0).sum())
    on_pivots = _pivots_pay(pivot_rows, data.n_rows, len(cand.feats))
    preds = [tuple(zip(cand.feats, col, strict=True)) for col in np.stack(digits, 1).tolist()]
    by_pivot: dict[tuple[int, int], list[int]] = {}
    for i, j in enumerate(choice.tolist()):
        by_pivot.setdefault(preds[i][j], []).append(i)
    stats = _Stats.empty(cand.keys.size, data.grid.n_bins, on_pivots or need_bounds)
    for block in data.read(cand.feats):
        if on_pivots:
            cache = pivots if data.in_memory else {}
            _count_on_pivots(data, block, cand, preds, by_pivot, cache, stats)
        else:
            _count_all_rows(data, block, cand, buffers, stats, need_bounds=need_bounds)
    if not (on_pivots or need_bounds):
        stats.hist = stats.hist[:, :0]
    return _Group(cand.feats, cand.keys, stats.size, stats.err, stats.maxerr, stats.hist)


@dataclass
class _Stats:
    """Statistics of a group's candidates over the blocks counted so far.

    Error sums go on in row order from block to block (``np.add.at`` into the sums so far),
    so they equal ``np.bincount``'s sums over all rows to the last bit.
    """

    size: np.ndarray
    err: np.ndarray
    maxerr: np.ndarray  # NaN where not needed: the result's slices get theirs at the end
    hist: np.ndarray

    @staticmethod
    def empty(count: int, n_bins: int, bounds: bool) -> _Stats:
        maxerr = np.zeros(count) if bounds else np.full(count, np.nan)
        hist = np.zeros((count, n_bins), dtype=np.int32)
        return _Stats(np.zeros(count, dtype=np.int64), np.zeros(count), maxerr, hist)


def _pivots_pay(pivot_rows: int, n_rows: int, n_feats: int) -> bool:
    """Whether counting on pivot rows costs less than grouped counting over all rows.

    A pass over all rows builds a key from every feature and counts; a pivot costs about
    twice as much per row, but only its own rows.
    """
    return pivot_rows * 2 <= n_rows * (n_feats + 2)


def _digits(feats: tuple[int, ...], keys: np.ndarray, radix: np.ndarray) -> list[np.ndarray]:
    """Level codes of each feature in mixed-radix ``keys`` (inverse of the key encoding)."""
    out: list[np.ndarray] = []
    for f in reversed(feats):
        keys, d = np.divmod(keys, int(radix[f]))
        out.append(d)
    return out[::-1]


def _count_on_pivots(
    data: _Data,
    block: _Block,
    cand: _Group,
    preds: list[tuple[tuple[int, int], ...]],
    by_pivot: dict[tuple[int, int], list[int]],
    pivots: dict[tuple[int, int], _Pivot],
    stats: _Stats,
) -> None:
    """Add a block to candidates' statistics by grouped counting over their pivot's rows."""
    n_bins = data.grid.n_bins
    for (f, v), members in by_pivot.items():
        pivot = pivots.get((f, v))
        if pivot is None:
            pivot = pivots[(f, v)] = _Pivot.of(block, f, v)
        others = [g for g in cand.feats if g != f]
        space = math.prod(int(data.radix[g]) for g in others)
        if space * n_bins > _MAX_DENSE_KEYS:
            _count_by_masks(block, pivot, others, preds, members, stats)
            continue
        key = block.codes[others[0]][pivot.rows].astype(np.int64)
        for g in others[1:]:
            key *= int(data.radix[g])
            key += block.codes[g][pivot.rows]
        cells = np.array([_local_key(data, preds[i], others) for i in members], dtype=np.int64)
        table = np.zeros(space)
        table[cells] = stats.err[members]
        np.add.at(table, key, pivot.errors)
        stats.err[members] = table[cells]
        key *= n_bins
        key += pivot.bins  # now the key of (slice, error bin)
        hist = np.bincount(key, minlength=space * n_bins).reshape(space, n_bins)[cells]
        stats.hist[members] += hist.astype(np.int32)
        stats.size[members] += hist.sum(axis=1)
        for i, cell, row in zip(members, cells.tolist(), hist, strict=True):
            nonempty = np.flatnonzero(row)
            if nonempty.size:
                # The largest error lies in the highest bin the slice has rows in.
                top = pivot.errors[key == cell * n_bins + nonempty[-1]].max()
                stats.maxerr[i] = max(stats.maxerr[i], top)


@dataclass
class _Pivot:
    """Rows (ascending) of a one-predicate slice in a block, with their errors and bins."""

    rows: np.ndarray
    errors: np.ndarray
    bins: np.ndarray

    @staticmethod
    def of(block: _Block, feature: int, level: int) -> _Pivot:
        rows = np.flatnonzero(block.codes[feature] == level)  # intp: gathers convert others
        return _Pivot(rows, block.errors[rows], block.bins[rows])


def _local_key(data: _Data, preds: tuple[tuple[int, int], ...], feats: list[int]) -> int:
    """Mixed-radix key of a candidate's levels over ``feats`` (a subset of its features)."""
    levels = dict(preds)
    key = 0
    for g in feats:
        key = key * int(data.radix[g]) + levels[g]
    return key


def _count_by_masks(
    block: _Block,
    pivot: _Pivot,
    others: list[int],
    preds: list[tuple[tuple[int, int], ...]],
    members: list[int],
    stats: _Stats,
) -> None:
    """Candidates one by one on their pivot's rows, for combinations too wide for tables."""
    gathered = {g: block.codes[g][pivot.rows] for g in others}
    for i in members:
        levels = dict(preds[i])
        mask = np.ones(pivot.rows.size, dtype=bool)
        for g in others:
            mask &= gathered[g] == levels[g]
        errors = pivot.errors[mask]
        if errors.size:
            stats.size[i] += errors.size
            # Sequential from the sum so far, like bincount's accumulation.
            stats.err[i] = np.cumsum(np.concatenate([[stats.err[i]], errors]))[-1]
            stats.maxerr[i] = max(stats.maxerr[i], errors.max())
            stats.hist[i] += np.bincount(pivot.bins[mask], minlength=stats.hist.shape[1]).astype(
                np.int32
            )


def _count_all_rows(
    data: _Data, block: _Block, cand: _Group, buffers: _Buffers, stats: _Stats, *, need_bounds: bool
) -> None:
    """Add a block to candidates' statistics by grouped counting over all its rows."""
    space = math.prod(int(data.radix[f]) for f in cand.feats)
    row_keys = _row_keys(block, data.radix, cand.feats, buffers, space)

    if _dense_tables(space, row_keys.size):
        index, table_size = cand.keys, space
        hit = np.ones(index.size, dtype=bool)
    else:
        # Too many possible keys for dense tables: number the keys that occur instead.
        occurring, row_keys = np.unique(row_keys, return_inverse=True)
        table_size = occurring.size
        pos = np.minimum(np.searchsorted(occurring, cand.keys), occurring.size - 1)
        hit = occurring[pos] == cand.keys
        index = np.where(hit, pos, table_size)  # a spare slot that stays empty
        table_size += 1

    stats.size += np.bincount(row_keys, minlength=table_size)[index]
    table = np.zeros(table_size)
    table[index[hit]] = stats.err[hit]
    np.add.at(table, row_keys, block.errors)
    stats.err[hit] = table[index[hit]]
    if need_bounds:
        table = np.zeros(table_size)
        np.maximum.at(table, row_keys, block.errors)
        np.maximum(stats.maxerr, table[index], out=stats.maxerr)
        stats.hist += _bin_counts(block, row_keys, index, table_size, data.grid.n_bins)


def _bin_counts(
    block: _Block, row_keys: np.ndarray, index: np.ndarray, table_size: int, n_bins: int
) -> np.ndarray:
    """Rows per error bin of the slices at ``index`` of a grouped-counting table."""
    count = index.size
    position = np.full(table_size, count, dtype=np.int64)  # rows of other slices: a spare
    position[index] = np.arange(count)
    flat = np.bincount(position[row_keys] * n_bins + block.bins, minlength=(count + 1) * n_bins)
    return flat.reshape(count + 1, n_bins)[:count].astype(np.int32)


def _dense_tables(space: int, n_rows: int) -> bool:
    """Whether a combination's key space is small enough for dense bincount tables."""
    return space <= max(_MAX_DENSE_KEYS, 2 * n_rows)


class _Buffers:
    """Row-key buffers reused across combinations; fresh arrays would cost page faults."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self._small: np.ndarray | None = None
        self._wide: np.ndarray | None = None

    def small(self, n: int) -> np.ndarray:
        if self._small is None:
            self._small = np.empty(self.n_rows, dtype=np.int32)
        return self._small[:n]

    def wide(self, n: int) -> np.ndarray:
        if self._wide is None:
            self._wide = np.empty(self.n_rows, dtype=np.int64)
        return self._wide[:n]


def _row_keys(
    block: _Block, radix: np.ndarray, feats: tuple[int, ...], buffers: _Buffers, space: int
) -> np.ndarray:
    """Mixed-radix key of every row's codes over ``feats`` (int64, as bincount wants)."""
    n = block.errors.size
    wide = buffers.wide(n)
    if space < 2**31:
        # Combining in int32 moves half the bytes; one widening copy feeds bincount.
        small = buffers.small(n)
        np.copyto(small, block.codes[feats[0]])
        for f in feats[1:]:
            np.multiply(small, int(radix[f]), out=small)
            np.add(small, block.codes[f], out=small)
        np.copyto(wide, small)
        return wide
    np.copyto(wide, block.codes[feats[0]])
    for f in feats[1:]:
        np.multiply(wide, int(radix[f]), out=wide)
        np.add(wide, block.codes[f], out=wide)
    return wide


def _fill_max_errors(data: _Data, top: list[_Entry]) -> None:
    wanted = [entry for entry in top if math.isnan(entry.maxerr)]
    if not wanted:
        return
    feats = tuple(sorted({f for entry in wanted for f, _ in entry.preds}))
    found = [0.0] * len(wanted)
    for block in data.read(feats):
        for j, entry in enumerate(wanted):
            mask = np.ones(block.errors.size, dtype=bool)
            for f, d in entry.preds:
                mask &= block.codes[f] == d
            if mask.any():
                found[j] = max(found[j], float(block.errors[mask].max()))
    for entry, largest in zip(wanted, found, strict=True):
        entry.maxerr = largest


def _compare(x: _Entry, y: _Entry) -> int:
    """Score descending; ties in the package's order.

    package: ties are ordered by the one-hot rows ascending (lexsort), columns being
    (feature, level) in order; the slice holding the first predicate the two do not share
    comes last.
    """
    if x.score != y.score:
        return -1 if x.score > y.score else 1
    diff = sorted(set(x.preds) ^ set(y.preds))
    if not diff:
        return 0
    return 1 if diff[0] in set(x.preds) else -1


def _to_found(data: _Data, entry: _Entry) -> FoundSlice:
    return FoundSlice(
        predicates=tuple((data.names[f], data.labels[f][d]) for f, d in entry.preds),
        size=entry.size,
        error_sum=entry.err,
        error_mean=entry.err / entry.size,
        max_error=entry.maxerr,
        score=entry.score,
    )


# --------------------------------------------------------------------------- encoding helpers


def _missing_mask(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "fc":
        return np.asarray(np.isnan(arr))
    if arr.dtype.kind in "mM":
        return np.asarray(np.isnat(arr))
    if arr.dtype.kind == "O":
        return np.fromiter((_is_missing(x) for x in arr.tolist()), dtype=bool, count=arr.shape[0])
    return np.zeros(arr.shape[0], dtype=bool)


def _is_missing(x: object) -> bool:
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN and NaT differ from themselves
    except TypeError:
        return True  # pandas.NA-like values whose comparisons are undecidable


def bin_labels(edges: np.ndarray) -> list[str]:
    """``[lo, hi)`` labels with the fewest significant digits that keep edges distinct."""
    if edges.size == 1:
        text = _format_number(float(edges[0]), 4)
        return [f"[{text}, {text}]"]
    for digits in range(4, 18):
        texts = [_format_number(float(x), digits) for x in edges]
        if len(set(texts)) == len(texts):
            break
    labels = [f"[{lo}, {hi})" for lo, hi in zip(texts[:-2], texts[1:-1], strict=True)]
    labels.append(f"[{texts[-2]}, {texts[-1]}]")
    return labels


def _format_number(x: float, digits: int) -> str:
    if not math.isfinite(x):
        return "inf" if x > 0 else "-inf"
    rounded = float(f"{x:.{digits}g}")
    if rounded == 0:
        return "0"
    if rounded.is_integer() and abs(rounded) < 1e15:
        return str(int(rounded))
    if 1e-4 <= abs(rounded) < 1e15:
        return np.format_float_positional(rounded, trim="-")
    return f"{rounded:.{digits}g}"
