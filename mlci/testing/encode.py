"""Columns as integer codes, so that data checks count, match and resample rows with numpy.

Strings are encoded by Arrow (a dictionary encoding in C), which is what keeps the checks fast
on millions of rows: a Python loop over ten million strings takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MISSING = -1


def as_text(values: np.ndarray) -> np.ndarray:
    """Present values of a categorical column as strings (booleans as true/false, None kept)."""
    if values.dtype == bool:
        return np.where(values, "true", "false").astype(object)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and v != v):
            out[i] = None
        else:
            out[i] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _arrow_codes(values: np.ndarray) -> tuple[np.ndarray, list[str]] | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(values, from_pandas=True)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
    except (pa.ArrowException, TypeError, ValueError):
        return None  # mixed Python types: fall back to str() of each value
    encoded = pc.dictionary_encode(array)
    codes = pc.fill_null(encoded.indices, MISSING).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64, copy=False), [str(v) for v in encoded.dictionary.to_pylist()]


def categorical_codes(*columns: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """Codes of each column over their joint sorted categories (``MISSING`` for a missing value).

    Several columns share one code table, so a code means the same category in each.
    """
    joined = np.concatenate([np.asarray(c) for c in columns]) if columns else np.array([])
    if joined.dtype.kind in "fiub":
        if joined.dtype.kind == "f":
            missing = np.isnan(joined)
            present = joined[~missing]
        else:
            missing = np.zeros(len(joined), dtype=bool)
            present = joined
        uniques, inverse = np.unique(present, return_inverse=True)
        codes = np.full(len(joined), MISSING, dtype=np.int64)
        codes[~missing] = inverse
        labels = [_label(v) for v in uniques]
    else:
        found = _arrow_codes(joined.astype(object, copy=False))
        if found is None:
            found = _arrow_codes(as_text(joined))
        assert found is not None
        raw, names = found
        # Arrow numbers categories in order of appearance; sort them so codes are stable.
        order = np.argsort(np.array(names, dtype=object), kind="stable").astype(np.intp)
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        codes = np.where(raw >= 0, rank[np.maximum(raw, 0)] if names else raw, MISSING)
        labels = [names[i] for i in order]
    parts: list[np.ndarray] = []
    start = 0
    for c in columns:
        parts.append(codes[start : start + len(c)])
        start += len(c)
    return parts, labels


def _label(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def column_codes(*columns: np.ndarray) -> list[np.ndarray]:
    """Codes of each column over their joint values, numeric or not (missing is its own code).

    For matching rows across datasets: equal values get equal codes, and a missing value is
    equal only to another missing value.
    """
    parts, labels = categorical_codes(*columns)
    return [np.where(p == MISSING, len(labels), p) for p in parts]


def row_keys(columns: Sequence[np.ndarray]) -> np.ndarray:
    """One 64-bit key per row from the codes of several columns (equal rows, equal keys).

    Keys of different rows collide with probability about n^2 / 2^64; callers that need
    certainty compare the codes of rows whose keys match.
    """
    if not columns:
        raise ValueError("row_keys needs at least one column")
    n = len(columns[0])
    key = np.full(n, 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for codes in columns:
            key = _mix(key ^ _mix(np.asarray(codes, dtype=np.int64).astype(np.uint64)))
    return key


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit affects every output bit.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)))
