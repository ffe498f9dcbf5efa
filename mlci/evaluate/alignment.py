"""Line up what models predicted with the target, in class-index space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlci.evaluate.evaluator import Outputs
from mlci.models.interface import Predictions, Task


class AlignmentError(ValueError):
    """Predictions that cannot be scored against the target."""


def label_key(value: Any) -> str:
    """A canonical text form, so 1, 1.0, "1" and numpy's int64(1) name the same class."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if number != number:
            return value
        value = number
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Aligned:
    """The target and each model's outputs, ready for the Evaluator."""

    task: Task
    classes: tuple[Any, ...] | None
    y_true: np.ndarray
    outputs: tuple[Outputs, ...]


def infer_task(predictions: Predictions, declared: Task | None) -> Task:
    if declared is not None:
        return declared
    if predictions.values is not None and predictions.labels is None:
        return "regression"
    classes = predictions.classes
    if classes is None and predictions.proba is not None:
        return "binary" if predictions.proba.shape[1] == 2 else "multiclass"
    return "binary" if classes is not None and len(classes) <= 2 else "multiclass"


def align(
    task: Task, target: np.ndarray, predictions: Sequence[Predictions], *, min_classes: int = 2
) -> Aligned:
    """Map the target and every model's predictions to one shared class order.

    ``min_classes``: the target must hold at least two classes, unless these rows are one
    batch of many (1), whose classes are counted over every batch.
    """
    if task == "regression":
        return _align_regression(target, predictions)
    first = predictions[0]
    classes = first.classes
    if classes is None:
        # No declared classes: take every label seen, so indices are at least consistent.
        seen = {label_key(v): v for p in predictions for v in _labels(p)}
        seen.update({label_key(v): v for v in target.tolist()})
        classes = tuple(seen[k] for k in sorted(seen))
    index = {label_key(c): i for i, c in enumerate(classes)}
    y_true = _to_index(target, index, "the target")
    present = np.unique(y_true)
    if len(present) < min_classes:
        only = label_key(classes[int(present[0])]) if len(present) else "none"
        raise AlignmentError(
            f"the target holds one class ('{only}') in all {len(y_true)} rows; a classifier can "
            "only be evaluated on data with at least two classes"
        )
    outputs = []
    for p in predictions:
        model_classes = p.classes or classes
        keys = [label_key(c) for c in model_classes]
        if sorted(keys) != sorted(index):
            raise AlignmentError(
                f"models disagree on the classes: {_show(classes)} against {_show(model_classes)}"
            )
        order = [keys.index(label_key(c)) for c in classes]
        proba = None if p.proba is None else np.asarray(p.proba, dtype=np.float64)[:, order]
        labels = _label_indices(p, index)
        outputs.append(Outputs(labels=labels, proba=proba))
    return Aligned(task=task, classes=tuple(classes), y_true=y_true, outputs=tuple(outputs))


def _labels(p: Predictions) -> np.ndarray:
    if p.labels is not None:
        return np.asarray(p.labels)
    if p.proba is not None and p.classes is not None:
        return np.asarray(np.asarray(p.classes, dtype=object)[np.argmax(p.proba, axis=1)])
    raise AlignmentError("the model returned neither labels nor probabilities")


def _label_indices(p: Predictions, index: dict[str, int]) -> np.ndarray:
    """Each row's predicted class index: from the labels, else the most probable class.

    Numeric and fixed-width text labels keep their dtype, so finding their few distinct
    values is a sort of numbers, not of Python objects (ten times faster at a million rows).
    """
    if p.labels is not None:
        return _to_index(np.asarray(p.labels), index, "a predicted label")
    if p.proba is not None and p.classes is not None:
        of_class = _to_index(np.asarray(p.classes, dtype=object), index, "a predicted label")
        return np.asarray(of_class[np.argmax(p.proba, axis=1)])
    raise AlignmentError("the model returned neither labels nor probabilities")


def _to_index(values: np.ndarray, index: dict[str, int], what: str) -> np.ndarray:
    values = np.asarray(values)
    try:
        uniques, inverse = np.unique(values, return_inverse=True)
    except TypeError:  # mixed types in an object column
        uniques, inverse = np.unique(values.astype(str), return_inverse=True)
    # Canonicalise the few distinct values, not every row.
    keys = [label_key(u) for u in uniques]
    missing = [
        (u, int((inverse == i).sum()))
        for i, (u, k) in enumerate(zip(uniques, keys, strict=True))
        if k not in index
    ]
    if missing:
        value, count = missing[0]
        raise AlignmentError(
            f"{what} has label {label_key(value)!r} in {count} rows that is not among the model's classes "
            f"{_show(list(index))}"
        )
    lookup = np.array([index[k] for k in keys], dtype=np.int64)
    return lookup[inverse]


def _show(classes: Sequence[Any]) -> str:
    shown = ", ".join(label_key(c) for c in list(classes)[:10])
    return f"[{shown}{', ...' if len(classes) > 10 else ''}]"


def _align_regression(target: np.ndarray, predictions: Sequence[Predictions]) -> Aligned:
    if target.dtype.kind not in "fiub":
        raise AlignmentError("the target is text, but the model is a regressor")
    outputs = []
    for p in predictions:
        if p.values is None:
            raise AlignmentError("a regressor returned no values")
        values = np.asarray(p.values, dtype=np.float64).reshape(-1)
        if not np.isfinite(values).all():
            raise AlignmentError(
                f"the model predicted {int((~np.isfinite(values)).sum())} non-finite values"
            )
        outputs.append(Outputs(values=values))
    return Aligned(
        task="regression", classes=None, y_true=target.astype(np.float64), outputs=tuple(outputs)
    )
