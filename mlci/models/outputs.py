"""The one check every model output passes before anything reads it.

Whatever runtime produced them (ONNX Runtime, scikit-learn, user code behind an entry point),
predictions must have one entry per input row, probabilities one column per class that are
finite, within [0, 1] and sum to one, and regression values must be finite. A model that breaks
this is reported by name instead of reaching a metric as NaN or a shape error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlci.errors import ModelError
from mlci.models.interface import Predictions

# How far a row of probabilities may sum from one (float16 outputs round to about 1e-3).
PROBA_SUM_TOLERANCE = 1e-2


def check_predictions(predictions: Predictions, rows: int, where: str) -> Predictions:
    """Return ``predictions`` when they are well formed for ``rows`` input rows, else raise
    ModelError naming ``where`` (the model file, or a shard file that holds predictions)."""
    labels, proba, values = predictions.labels, predictions.proba, predictions.values
    if labels is None and proba is None and values is None:
        raise ModelError(f"{where}: the model returned no predictions")
    if values is not None:
        values = _vector(values, rows, where, "values")
        _finite(values, where, "values")
    if labels is not None:
        labels = _vector(labels, rows, where, "labels")
        if labels.dtype.kind == "f":
            _finite(labels, where, "labels")
    if proba is not None:
        proba = _probabilities(proba, rows, where, predictions.classes)
    if predictions.classes is not None:
        _distinct_classes(predictions.classes, where)
    return Predictions(labels=labels, proba=proba, classes=predictions.classes, values=values)


def _vector(raw: Any, rows: int, where: str, what: str) -> np.ndarray:
    array = np.asarray(raw)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ModelError(
            f"{where}: the model returned {what} of shape {list(array.shape)}; "
            f"expected one per row ({rows:,})",
            tip="only single-output models are supported",
        )
    if len(array) != rows:
        raise ModelError(
            f"{where}: the model returned {len(array):,} {what} for {rows:,} rows",
            tip="predict must return exactly one prediction per input row, in order",
        )
    return array


def _finite(values: np.ndarray, where: str, what: str) -> None:
    try:
        bad: np.ndarray = np.asarray(~np.isfinite(values.astype(np.float64)))
    except (TypeError, ValueError):
        raise ModelError(f"{where}: the model returned {what} that are not numbers") from None
    if bad.ndim == 2:
        bad = np.asarray(bad.any(axis=1))
    if bad.any():
        raise ModelError(
            f"{where}: the model returned NaN or infinite {what} for {int(bad.sum()):,} rows "
            f"(first at data row {int(bad.argmax()) + 1})",
            tip="check those rows for missing or extreme inputs the model cannot handle",
        )


def _probabilities(raw: Any, rows: int, where: str, classes: tuple[Any, ...] | None) -> np.ndarray:
    try:
        proba = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(
            f"{where}: the model returned probabilities that are not numbers"
        ) from None
    if proba.ndim == 1:
        proba = proba.reshape(-1, 1)
    if proba.ndim != 2 or proba.shape[0] != rows:
        raise ModelError(
            f"{where}: the model returned probabilities of shape {list(proba.shape)} for "
            f"{rows:,} rows",
            tip="predict_proba must return one row per input row and one column per class",
        )
    width = proba.shape[1]
    if width < 2:
        raise ModelError(
            f"{where}: the model returned {width} probability column; a classifier needs one "
            "per class (at least 2)",
            tip="return both classes' probabilities, as scikit-learn's predict_proba does",
        )
    if classes is not None and len(classes) != width:
        raise ModelError(
            f"{where}: the model returned {width} probability columns for {len(classes)} classes"
        )
    _finite(proba, where, "probabilities")
    if rows:
        outside = (proba < -PROBA_SUM_TOLERANCE) | (proba > 1 + PROBA_SUM_TOLERANCE)
        off = np.abs(proba.sum(axis=1) - 1.0) > PROBA_SUM_TOLERANCE
        bad = outside.any(axis=1) | off
        if bad.any():
            first = int(bad.argmax())
            raise ModelError(
                f"{where}: the model's probabilities are not a distribution in {int(bad.sum()):,} "
                f"rows (first at data row {first + 1}: sum {proba[first].sum():.4g})",
                tip="probabilities must lie in [0, 1] and sum to 1 in every row; apply softmax "
                "or a calibrator to raw scores",
            )
    return proba


def _distinct_classes(classes: tuple[Any, ...], where: str) -> None:
    from mlci.evaluate.alignment import label_key

    seen: set[str] = set()
    for label in classes:
        key = label_key(label)
        if key in seen:
            raise ModelError(f"{where}: the model names class '{key}' twice")
        seen.add(key)


def concatenate(parts: Sequence[tuple[Predictions, ...]]) -> tuple[Predictions, ...]:
    """Predictions of consecutive row ranges put together in row order, model by model.

    ``parts[i][m]`` is model m's predictions on the i-th range; a field is kept when every
    range has it. Text labels stay Python objects.
    """
    merged = []
    for m in range(len(parts[0])):
        pieces = [p[m] for p in parts]
        fields: dict[str, np.ndarray] = {}
        for name in ("labels", "proba", "values"):
            values = [getattr(p, name) for p in pieces]
            if all(v is not None for v in values):
                fields[name] = np.concatenate(values)
        merged.append(Predictions(**fields, classes=pieces[0].classes))
    return tuple(merged)
