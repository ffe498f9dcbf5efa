"""Small helpers every model runtime shares: row counts, messages, output shapes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from mlci.errors import DataError, ModelError
from mlci.models.interface import Frame
from mlci.suggest import closest

ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")


def frame_length(frame: Frame, where: str) -> int:
    """Number of rows in ``frame``; DataError when it is empty or ragged."""
    if not frame:
        raise DataError(f"{where}: the data has no columns to predict on")
    lengths = {name: len(np.asarray(column)) for name, column in frame.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise DataError(f"{where}: the data columns have different lengths ({detail})")
    return next(iter(lengths.values()))


def missing_columns_error(
    where: str, missing: Sequence[str], available: Iterable[str]
) -> DataError:
    """A DataError naming each missing column and the closest column the data does have."""
    have = list(available)
    parts = []
    for name in missing:
        close = closest(name, have)
        parts.append(f"{name!r} (closest: {close!r})" if close else repr(name))
    noun = "column" if len(missing) == 1 else "columns"
    shown = ", ".join(repr(c) for c in have[:20]) + (", ..." if len(have) > 20 else "")
    return DataError(
        f"{where}: the data lacks the {noun} the model reads: {', '.join(parts)}",
        tip=f"the data has {shown or 'no columns'}; rename the columns to match the model",
    )


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A short one-line rendering of an exception for use inside our own messages."""
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    first = ORT_PREFIX.sub("", first)
    label = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if len(label) > limit:
        label = label[: limit - 3].rstrip() + "..."
    return label


def single_output_values(raw: object, where: str) -> np.ndarray:
    """A regressor's predictions as a 1-D float array; ModelError for multi-output models."""
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ModelError(
            f"{where}: the model returns {values.shape} values; only single-output regressors "
            "are supported"
        )
    return values
