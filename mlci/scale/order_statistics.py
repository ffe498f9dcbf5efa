"""Exact quantiles of a column read batch by batch, in bounded memory.

SliceLine's numeric bins take their edges from quantiles of a column; when a data file is
evaluated batch by batch the column never sits in memory whole, yet the bins must be those
of the in-memory evaluation. :func:`streamed_quantiles` gives the same numbers as
``np.quantile`` over all finite values by radix selection on the float64 bits: a first pass
counts the values and histograms the top 16 bits of their keys, which names the bucket
holding each order statistic numpy's linear method needs; later passes gather the values of
small target buckets and select in them, or histogram the next 16 bits of large ones.
Typical data takes 2 passes. A bucket too large to gather narrows 16 bits a pass and is a
single key by the 4th pass; more passes come only when the target buckets together hold
more than ``gather_limit`` values, which are then gathered over several passes.

Signed zeros: numpy sorts -0.0 and +0.0 as equal, and the sign of its result can then depend
on the order of the input (``np.quantile([0., -0., -0.], .75)`` is -0.0,
``np.quantile([-0., 0., -0.], .75)`` is +0.0), which no pass over the multiset of values can
reproduce. Here -0.0 sorts before +0.0, so the result does not depend on how the data are
split into chunks; it is bitwise numpy's when the finite values hold zeros of at most one
sign, and otherwise equal to numpy's (``==``) with only the sign of a zero result differing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt

_SIGN = np.uint64(1 << 63)
_BUCKETS = 1 << 16

Keys = npt.NDArray[np.uint64]
Group = tuple[int, int]  # (bits known, their value): a bucket of keys


def _finite_keys(chunks: Callable[[], Iterable[np.ndarray]]) -> Iterator[Keys]:
    """One pass: unsigned keys whose integer order is the float order (-0.0 just below 0.0)."""
    for chunk in chunks():
        values = np.asarray(chunk, dtype=np.float64).reshape(-1)
        bits = values[np.isfinite(values)].view(np.uint64)
        yield np.where(bits >> 63 == 1, ~bits, bits | _SIGN)


def _values(keys: Keys) -> npt.NDArray[np.float64]:
    return np.where(keys >> 63 == 1, keys ^ _SIGN, ~keys).view(np.float64)


def streamed_quantiles(
    chunks: Callable[[], Iterable[np.ndarray]], qs: np.ndarray, *, gather_limit: int = 1 << 22
) -> np.ndarray:
    """``np.quantile(finite, qs)`` (method "linear") over the finite values of all chunks.

    ``chunks()`` must give the same 1-D float64 arrays on every call; each call is one pass.
    NaN and ±inf are ignored. Memory holds one chunk, at most ``gather_limit`` gathered
    values, and one 65536-bin histogram per needed order statistic. Raises ValueError when
    there is no finite value, or when a later pass does not see the data of the first.
    """
    q = np.asarray(qs, dtype=np.float64)
    if q.ndim != 1 or not np.all((q >= 0) & (q <= 1)):
        raise ValueError("quantile levels must be a 1-D array in [0, 1]")
    if gather_limit < 1:
        raise ValueError("gather_limit must be at least 1")
    n = 0
    top = np.zeros(_BUCKETS, dtype=np.int64)
    for keys in _finite_keys(chunks):
        n += keys.size
        top += np.bincount((keys >> 48).astype(np.intp), minlength=_BUCKETS)
    if n == 0:
        raise ValueError("no finite values to take quantiles of")

    # numpy's _quantile for method "linear", step by step: at the top end both neighbours
    # become index -1 and gamma is taken against that -1, so gamma is n there, not 0; it
    # changes the branch _lerp takes and, for zeros, the sign of the result.
    virtual = (n - 1) * q
    below = np.floor(virtual)
    above = below + 1
    at_end = virtual >= n - 1
    below[at_end] = -1
    above[at_end] = -1
    lo, hi = below.astype(np.intp), above.astype(np.intp)
    gamma = virtual - lo
    lo, hi = lo % n, hi % n

    pending: dict[Group, list[tuple[int, int]]] = {}  # bucket -> (rank, rank inside it)
    sizes: dict[Group, int] = {}
    found: dict[int, int] = {}  # rank -> key

    def descend(hist: npt.NDArray[np.int64], group: Group, ranks: list[tuple[int, int]]) -> None:
        cum = np.cumsum(hist)
        for rank, inside in ranks:
            b = int(np.searchsorted(cum, inside, side="right"))
            sub = (group[0] + 16, (group[1] << 16) | b)
            pending.setdefault(sub, []).append((rank, inside - (int(cum[b - 1]) if b else 0)))
            sizes[sub] = int(hist[b])

    descend(top, (0, 0), [(r, r) for r in sorted({*lo.tolist(), *hi.tolist()})])
    while pending:
        for group in [g for g in pending if g[0] == 64]:  # one key: nothing left to select
            found.update((rank, group[1]) for rank, _ in pending.pop(group))
        refine = [g for g in pending if sizes[g] > gather_limit]
        # Gathered values of one pass stay within gather_limit; the rest wait a pass.
        budget, gather = gather_limit, []
        for g in sorted((g for g in pending if sizes[g] <= gather_limit), key=sizes.__getitem__):
            if sizes[g] <= budget:
                gather.append(g)
                budget -= sizes[g]
        if not refine and not gather:
            break
        hists = {g: np.zeros(_BUCKETS, dtype=np.int64) for g in refine}
        bags = {g: np.empty(sizes[g], dtype=np.uint64) for g in gather}
        filled = dict.fromkeys(gather, 0)
        for keys in _finite_keys(chunks):
            for (depth, prefix), hist in hists.items():
                inside = keys[keys >> (64 - depth) == prefix]
                hist += np.bincount(
                    ((inside >> (48 - depth)) & 0xFFFF).astype(np.intp), minlength=_BUCKETS
                )
            for g, bag in bags.items():
                inside = keys[keys >> (64 - g[0]) == g[1]]
                if filled[g] + inside.size > bag.size:
                    raise ValueError("chunks() gave different data on a later pass")
                bag[filled[g] : filled[g] + inside.size] = inside
                filled[g] += inside.size
        for g, bag in bags.items():
            if filled[g] != bag.size:
                raise ValueError("chunks() gave different data on a later pass")
            ranks = pending.pop(g)
            selected = np.partition(bag, sorted({inside for _, inside in ranks}))
            found.update((rank, int(selected[inside])) for rank, inside in ranks)
        for g, hist in hists.items():
            if int(hist.sum()) != sizes[g]:
                raise ValueError("chunks() gave different data on a later pass")
            descend(hist, g, pending.pop(g))

    a = _values(np.array([found[r] for r in lo.tolist()], dtype=np.uint64))
    b = _values(np.array([found[r] for r in hi.tolist()], dtype=np.uint64))
    # numpy's _lerp verbatim: the t >= 0.5 branch interpolates from the upper end, which
    # decides the last bit and the sign of zero results.
    with np.errstate(over="ignore", invalid="ignore"):
        diff = b - a
        result = np.add(a, diff * gamma)
        np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5)
    return result
