"""Perturbations of one column: shuffles (within groups), replacement, shifts and bounded noise."""

from __future__ import annotations

import numpy as np


def shuffle(
    values: np.ndarray, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
    """A permutation of ``values``; with ``groups``, each value moves only within its group."""
    n = len(values)
    if groups is None:
        return values[rng.permutation(n)]
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    # Rows sorted by group, once in order and once at random within each group: the k-th row of
    # a group's block takes the value of a random row of the same block.
    in_order = np.argsort(codes, kind="stable")
    at_random = np.lexsort((rng.random(n), codes))
    out = values.copy()
    out[in_order] = values[at_random]
    return np.asarray(out)


def replace(values: np.ndarray, value: object) -> np.ndarray:
    """Every value replaced by ``value``, keeping a numeric column numeric."""
    if (
        values.dtype.kind in "fiub"
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return np.full(
            len(values), value, dtype=np.float64 if values.dtype.kind == "f" else values.dtype
        )
    return np.full(len(values), value, dtype=object)


def shift(values: np.ndarray, step: float) -> np.ndarray:
    """``values + step`` as floats."""
    return np.asarray(values, dtype=np.float64) + step


def bounded_noise(
    values: np.ndarray, scale: float, rng: np.random.Generator, *, integer: bool = False
) -> np.ndarray:
    """``values`` plus uniform noise in ``[-scale, scale]`` (rounded for integer inputs)."""
    noisy = np.asarray(values, dtype=np.float64) + rng.uniform(-scale, scale, len(values))
    return np.round(noisy) if integer else noisy
