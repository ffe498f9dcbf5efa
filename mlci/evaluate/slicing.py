"""Declared slices: turn slice definitions into named row masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from mlci.evaluate import expressions
from mlci.evaluate.sliceline import bin_levels, encode_categorical
from mlci.suggest import did_you_mean

# A numeric column with at most this many distinct values may be sliced by value.
MAX_VALUE_SLICES = 50

# A column's level codes and labels, as :func:`encode_categorical` gives them.
Encode = Callable[[str], tuple[np.ndarray, list[Any]]]


class SliceError(ValueError):
    """A slice definition that does not fit the data; ``field`` names the offending key."""

    def __init__(self, message: str, field: str | tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.field: tuple[str | int, ...] = (field,) if isinstance(field, str) else field


@dataclass(frozen=True)
class SliceDef:
    """One slice: a name, a readable definition and the rows it holds.

    ``selector`` is the slice's boolean row mask, or, when ``code`` is given, the codes of a
    partition of the rows that the slice is one part of (the rows whose code is ``code``).
    Slicing a column by value encodes it once and shares the codes among its slices, so
    evaluating them together needs no mask per slice (see :func:`partition`).
    """

    name: str
    definition: str
    selector: np.ndarray
    code: int | None = None

    @cached_property
    def mask(self) -> np.ndarray:
        """The rows of the slice as a boolean mask."""
        if self.code is None:
            return self.selector
        return np.asarray(self.selector == self.code)


def partition(slices: Sequence[SliceDef]) -> np.ndarray | None:
    """Group ids for evaluating disjoint slices together: row i is in ``slices[ids[i]]``.

    Rows in none of the slices get -1. Available when the slices are parts of one partition
    (the slices of one column by value, or of a cross of two); None otherwise.
    """
    if not slices or any(s.code is None for s in slices):
        return None
    codes = slices[0].selector
    if any(s.selector is not codes for s in slices):
        return None
    chosen = [int(s.code) for s in slices if s.code is not None]
    if chosen == list(range(len(chosen))) and int(codes.max(initial=-1)) < len(chosen):
        return codes
    lookup = np.full(int(codes.max(initial=-1)) + 2, -1, dtype=np.intp)
    lookup[np.asarray(chosen) + 1] = np.arange(len(chosen))
    return np.take(lookup, codes + 1)


def slice_parts(name: str) -> frozenset[str]:
    """The conditions of a slice name, order and spacing aside: 'a=1, b=2' -> {'a=1', 'b=2'}."""
    return frozenset(
        "=".join(side.strip() for side in part.split("=", 1)) for part in name.split(",")
    )


def suggest_slice(name: str, names: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a slice name, or an empty string.

    A name with the same conditions in another order or spacing ('channel=broker,
    employment=self-employed' for 'employment=self-employed, channel=broker') is the likeliest
    meaning; otherwise the closest spelling.
    """
    parts = slice_parts(name)
    for candidate in names:
        if slice_parts(candidate) == parts:
            return (
                f" (did you mean '{candidate}'? the same conditions in the order mlci names them)"
            )
    return did_you_mean(name, names)


def format_value(value: Any) -> str:
    """A value as it would be written in an expression: strings quoted, numbers compact."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def expand(
    spec: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    source: str = "the data",
    encode: Encode | None = None,
) -> list[SliceDef]:
    """Expand one slice definition (the fields of SliceConfig) into slices of ``source``.

    ``encode`` gives a column's level codes when they are known already (a dataset's
    :meth:`~mlci.data.Dataset.encoded`); by default the column is encoded here.
    """
    if encode is None:

        def encode(name: str) -> tuple[np.ndarray, list[Any]]:
            return encode_categorical(columns[name])

    if spec.get("where") is not None:
        try:
            mask = expressions.evaluate(spec["where"], columns)
        except expressions.ExpressionError as exc:
            raise SliceError(str(exc), "where") from None
        return [SliceDef(spec["name"], spec["where"], mask)]
    if spec.get("cross") is not None:
        return _cross(spec, columns, kinds, source, encode)
    feature = spec["feature"]
    _require(feature, columns, "feature", source)
    values = columns[feature]
    if spec.get("bins") is not None or spec.get("quantiles") is not None:
        check_binnable(feature, columns, kinds, source)
        edges = _edges(values, spec.get("bins"), spec.get("quantiles"))
        return prefixed(spec.get("name"), _bins(feature, values, edges))
    return prefixed(
        spec.get("name"), _by_value(feature, encode(feature), kinds[feature], spec.get("values"))
    )


def check_binnable(
    feature: str, columns: Mapping[str, object], kinds: Mapping[str, str], source: str
) -> None:
    """SliceError unless ``feature`` is a numeric column of ``source``."""
    _require(feature, columns, "feature", source)
    if kinds[feature] != "numeric":
        raise SliceError(f"'{feature}' is not numeric, so it cannot be binned", "feature")


def _require(
    feature: str, columns: Mapping[str, object], field: str | tuple[str | int, ...], source: str
) -> None:
    if feature not in columns:
        raise SliceError(
            f"no column '{feature}' in {source}{did_you_mean(feature, columns)}", field
        )


def prefixed(prefix: str | None, slices: list[SliceDef]) -> list[SliceDef]:
    if not prefix:
        return slices
    return [SliceDef(f"{prefix}: {s.name}", s.definition, s.selector, s.code) for s in slices]


def value_key(value: Any) -> str:
    # YAML may read `1` where the column holds 1.0 or "1": match on a canonical text form.
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return str(value.item() if isinstance(value, np.generic) else value)


def _by_value(
    feature: str,
    encoded: tuple[np.ndarray, list[Any]],
    kind: str,
    chosen: Sequence[Any] | None,
) -> list[SliceDef]:
    codes, present = encoded
    codes = _compact(codes, len(present))
    by_key = {value_key(v): v for v in present}
    code_of = {value_key(v): i for i, v in enumerate(present)}
    slices = []
    for key, actual in chosen_values(feature, kind, by_key, chosen):
        slices.append(SliceDef(*value_slice(feature, actual), codes, code_of[key]))
    return slices


def chosen_values(
    feature: str, kind: str, by_key: Mapping[str, Any], chosen: Sequence[Any] | None
) -> list[tuple[str, Any]]:
    """(key, value) of each value to slice by: those ``chosen``, else every value present.

    ``by_key``: the values present in the column, by :func:`value_key`, in slicing order.
    """
    if chosen is None:
        if kind == "numeric" and len(by_key) > MAX_VALUE_SLICES:
            raise too_many_values(feature, len(by_key))
        return list(by_key.items())
    out = []
    for i, value in enumerate(chosen):
        key = value_key(value)
        if key not in by_key:
            raise SliceError(
                f"no value {format_value(value)} in column '{feature}'{did_you_mean(key, by_key)}",
                ("values", i),
            )
        out.append((key, by_key[key]))
    return out


def too_many_values(feature: str, count: int) -> SliceError:
    return SliceError(
        f"numeric feature '{feature}' has {count} distinct values; "
        "give 'bins' or 'quantiles' to slice it",
        "feature",
    )


def value_slice(feature: str, value: Any) -> tuple[str, str]:
    """Name and definition of the slice of rows whose ``feature`` is ``value``."""
    return f"{feature}={value_key(value)}", f"{feature} == {format_value(value)}"


def _compact(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Codes in [-1, n_codes) in the narrowest integer type: each slice's mask reads less."""
    for kind in (np.int8, np.int16, np.int32):
        if n_codes <= np.iinfo(kind).max:
            return codes.astype(kind, copy=False)
    return codes


def _edges(values: np.ndarray, bins: Sequence[float] | None, quantiles: int | None) -> list[float]:
    if bins is not None:
        return [float(b) for b in bins]
    assert quantiles is not None
    finite = values[np.isfinite(values)]
    return quantile_edges(np.quantile(finite, bin_levels(quantiles)) if finite.size else None)


def quantile_edges(quantiles: np.ndarray | None) -> list[float]:
    """Bin edges from a column's quantiles (None: it has no finite value)."""
    if quantiles is None:
        raise SliceError("the column has no numeric values to take quantiles of", "quantiles")
    edges = np.unique(quantiles)
    if edges.size < 2:
        raise SliceError("the column has a single value; quantile bins need more", "quantiles")
    return [float(e) for e in edges]


def _bins(feature: str, values: np.ndarray, edges: Sequence[float]) -> list[SliceDef]:
    slices = []
    last = len(edges) - 2
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        # Half-open bins, the last one closed, so every value in range lands in exactly one.
        upper = values <= high if i == last else values < high
        closing = "]" if i == last else ")"
        op = "<=" if i == last else "<"
        slices.append(
            SliceDef(
                f"{feature} in [{low:g}, {high:g}{closing}",
                f"{low:g} <= {feature} {op} {high:g}",
                (values >= low) & upper,
            )
        )
    return slices


def _cross(
    spec: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    source: str,
    encode: Encode,
) -> list[SliceDef]:
    first, second = spec["cross"]
    for i, feature in enumerate((first, second)):
        _require(feature, columns, ("cross", i), source)
    left = _by_value(first, encode(first), kinds[first], None)
    right = _by_value(second, encode(second), kinds[second], None)
    # One code per pair of values, so the cross is a partition too: O(rows), not one mask
    # per pair.
    if not left or not right:
        return []
    a_codes = left[0].selector.astype(np.intp)
    b_codes = right[0].selector
    width = len(right)
    codes = np.where((a_codes >= 0) & (b_codes >= 0), a_codes * width + b_codes, -1)
    codes = _compact(codes, len(left) * width)
    sizes = np.bincount(codes + 1, minlength=len(left) * width + 1)[1:]
    slices = []
    for i, a in enumerate(left):
        for j, b in enumerate(right):
            code = i * width + j
            if sizes[code] > 0:
                definition = f"{a.definition} and {b.definition}"
                slices.append(SliceDef(f"{a.name}, {b.name}", definition, codes, code))
    return prefixed(spec.get("name"), slices)
