"""Behavioural model tests and contract checks over columns and a predict function.

Pure computation: each check takes the rows it runs on (a frame of the columns the model reads),
the unperturbed predictions on those rows, a ``predict`` function and its parameters, and
returns an :class:`~mlci.testing.outcome.Outcome` whose message says which rows broke the test
and by how much. The perturbed frame is predicted once per check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlci.models.interface import InputSpec, Predictions
from mlci.testing import perturb
from mlci.testing.outcome import MAX_EXAMPLES, Outcome, fmt, share, verdict

Frame = Mapping[str, np.ndarray]
Predict = Callable[[Frame], Predictions]


class CheckError(ValueError):
    """A check that cannot run as configured; ``field`` names the offending parameter."""

    def __init__(self, message: str, field: str = "kind") -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------- scores


def _key(value: Any) -> str:
    from mlci.evaluate.alignment import label_key

    return label_key(value)


def class_column(pred: Predictions, wanted: Any | None, *, single: bool) -> int | None:
    """The probability column of class ``wanted``; for binary models the positive class.

    ``None`` means every column (or a regressor's value). With ``single``, a multiclass model
    needs ``wanted``.
    """
    if pred.proba is None:
        if wanted is not None:
            raise CheckError("the model gives no probabilities to choose a class from", "class")
        return None
    width = np.asarray(pred.proba).shape[1]
    classes = pred.classes
    if wanted is not None:
        keys = [_key(c) for c in classes] if classes else [str(i) for i in range(width)]
        if _key(wanted) not in keys:
            from mlci.suggest import did_you_mean

            raise CheckError(
                f"the model has no class {wanted!r}{did_you_mean(_key(wanted), keys)}; classes: "
                f"{', '.join(keys[:10])}",
                "class",
            )
        return keys.index(_key(wanted))
    if width == 2:
        return 1
    if single:
        raise CheckError(
            "a multiclass model needs 'class': whose probability is the score", "class"
        )
    return None


def scores(pred: Predictions, column: int | None) -> np.ndarray | None:
    """A 2-D array of the scores compared by the checks, or None for label-only models."""
    if pred.values is not None:
        return np.asarray(pred.values, dtype=np.float64).reshape(-1, 1)
    if pred.proba is None:
        return None
    proba = np.asarray(pred.proba, dtype=np.float64)
    return proba if column is None else proba[:, [column]]


def labels(pred: Predictions) -> np.ndarray:
    """Predicted labels as canonical strings, so 1, 1.0 and "1" compare equal."""
    if pred.labels is not None:
        raw = np.asarray(pred.labels)
    elif pred.proba is not None:
        idx = np.asarray(pred.proba).argmax(axis=1)
        raw = np.asarray(pred.classes, dtype=object)[idx] if pred.classes else idx
    else:
        raise CheckError("the model returned neither labels nor probabilities")
    uniques, inverse = np.unique(
        raw.astype(str) if raw.dtype == object else raw, return_inverse=True
    )
    return np.array([_key(u) for u in uniques], dtype=object)[inverse]


def take(pred: Predictions, rows: np.ndarray | None) -> Predictions:
    """The predictions of the chosen rows (all rows for None)."""
    if rows is None:
        return pred

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[rows]

    return Predictions(
        labels=pick(pred.labels),
        proba=pick(pred.proba),
        classes=pred.classes,
        values=pick(pred.values),
    )


def _value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def _score(s: np.ndarray, i: Any) -> Any:
    row = s[i]
    return float(row[0]) if len(row) == 1 else [float(x) for x in row]


# --------------------------------------------------------------------------- invariance


def invariance(
    predict: Predict,
    frame: Frame,
    base: Predictions,
    feature: str,
    perturbed: np.ndarray,
    *,
    how: str,
    tolerance: float,
    max_rate: float,
    column: int | None,
    rows: np.ndarray,
) -> Outcome:
    """Replacing ``feature`` by ``perturbed`` may change no score by more than ``tolerance``.

    At most ``max_rate`` of the rows may break that; ``rows`` holds their data row numbers.
    """
    after = predict({**frame, feature: perturbed})
    before_s, after_s = scores(base, column), scores(after, column)
    if before_s is None or after_s is None:
        change = (labels(base) != labels(after)).astype(np.float64)
        what = "label"
    else:
        change = np.abs(after_s - before_s).max(axis=1)
        what = "score"
    bad = change > tolerance
    count, n = int(bad.sum()), len(change)
    rate = count / n if n else 0.0
    worst = np.flatnonzero(bad)
    worst = worst[np.argsort(-change[worst], kind="stable")][:MAX_EXAMPLES]
    examples = [
        {
            "row": int(rows[i]),
            "before": _value(frame[feature][i]),
            "after": _value(perturbed[i]),
            "change": float(change[i]),
            **(
                {"score_before": _score(before_s, i), "score_after": _score(after_s, i)}
                if before_s is not None and after_s is not None
                else {}
            ),
        }
        for i in worst
    ]
    largest = float(change.max()) if n else 0.0
    details = {
        "examples": examples,
        "count": count,
        "rows": n,
        "max_change": largest,
        "tolerance": tolerance,
    }
    ok = rate <= max_rate
    if ok:
        message = (
            f"{how} '{feature}' changed no {what} by more than {fmt(tolerance)} beyond the allowed "
            f"share ({share(count, n)}; largest change {fmt(largest)})"
        )
    else:
        first = examples[0]
        message = (
            f"{how} '{feature}' changed the {what} of {share(count, n)} by more than "
            f"{fmt(tolerance)}, allowed {max_rate:.3g}; largest change {fmt(largest)} at data row "
            f"{first['row']} ({fmt(first['before'])} -> {fmt(first['after'])})"
        )
    return Outcome(verdict(ok), message, rate, max_rate, details)


# --------------------------------------------------------------------------- directional


def directional(
    predict: Predict,
    frame: Frame,
    base: Predictions,
    feature: str,
    *,
    step: float,
    direction: str,
    tolerance: float,
    max_rate: float,
    column: int | None,
    rows: np.ndarray,
) -> Outcome:
    """Raising ``feature`` by ``step`` must not lower (``increasing``) or raise the score."""
    before_s = scores(base, column)
    if before_s is None:
        raise CheckError("the model gives no scores (only labels) to compare directions on")
    values = np.asarray(frame[feature], dtype=np.float64)
    after = predict({**frame, feature: perturb.shift(values, step)})
    after_s = scores(after, column)
    assert after_s is not None
    before, later = before_s[:, 0], after_s[:, 0]
    moved = later - before
    against = -moved if direction == "increasing" else moved
    bad = against > tolerance
    count, n = int(bad.sum()), len(moved)
    rate = count / n if n else 0.0
    idx = np.flatnonzero(bad)
    idx = idx[np.argsort(-against[idx], kind="stable")][:MAX_EXAMPLES]
    examples = [
        {
            "row": int(rows[i]),
            "value": float(values[i]),
            "score_before": float(before[i]),
            "score_after": float(later[i]),
            "change": float(moved[i]),
        }
        for i in idx
    ]
    worst = float(against.max()) if n else 0.0
    verb = "lowered" if direction == "increasing" else "raised"
    details = {
        "examples": examples,
        "count": count,
        "rows": n,
        "step": step,
        "direction": direction,
        "max_violation": max(worst, 0.0),
        "tolerance": tolerance,
    }
    ok = rate <= max_rate
    if ok:
        message = (
            f"raising '{feature}' by {fmt(step)} {verb} the score beyond {fmt(tolerance)} in "
            f"{share(count, n)}, within the allowed {max_rate:.3g}"
        )
    else:
        e = examples[0]
        message = (
            f"raising '{feature}' by {fmt(step)} {verb} the score in {share(count, n)}, allowed "
            f"{max_rate:.3g}; worst at data row {e['row']} ({feature} = {fmt(e['value'])}): "
            f"{e['score_before']:.4g} -> {e['score_after']:.4g}"
        )
    return Outcome(verdict(ok), message, rate, max_rate, details)


# --------------------------------------------------------------------------- robustness


def robustness(
    predict: Predict,
    frame: Frame,
    base: Predictions,
    features: Sequence[str],
    *,
    noise: float,
    stds: Mapping[str, float],
    integer: Sequence[str] = (),
    max_rate: float,
    tolerance: float = 0.0,
    seed: int = 0,
    rows: np.ndarray,
) -> Outcome:
    """Uniform noise of at most ``noise`` standard deviations on ``features`` flips few labels.

    A regressor's prediction counts as flipped when it moves by more than ``tolerance`` (in
    the target's units; the stage's default is ``2 * noise`` standard deviations of the target).
    """
    rng = np.random.default_rng(seed)
    noisy = dict(frame)
    for f in features:
        noisy[f] = perturb.bounded_noise(frame[f], noise * stds[f], rng, integer=f in integer)
    after = predict(noisy)
    n = len(next(iter(frame.values()))) if frame else 0
    if base.values is not None and after.values is not None:
        before_v = np.asarray(base.values, dtype=np.float64)
        change = np.abs(np.asarray(after.values, dtype=np.float64) - before_v)
        bad = change > tolerance
        what = f"moved the prediction by more than {fmt(tolerance)} in"
        shown_before: np.ndarray = before_v
        shown_after: np.ndarray = np.asarray(after.values, dtype=np.float64)
    else:
        shown_before, shown_after = labels(base), labels(after)
        bad = shown_before != shown_after
        change = bad.astype(np.float64)
        what = "flipped the label of"
    count = int(bad.sum())
    rate = count / n if n else 0.0
    idx = np.flatnonzero(bad)
    idx = idx[np.argsort(-change[idx], kind="stable")][:MAX_EXAMPLES]
    examples = [
        {
            "row": int(rows[i]),
            "before": _value(shown_before[i]),
            "after": _value(shown_after[i]),
            "changes": {f: float(noisy[f][i]) - float(frame[f][i]) for f in features},
        }
        for i in idx
    ]
    details = {
        "examples": examples,
        "count": count,
        "rows": n,
        "features": list(features),
        "noise_std": noise,
        **({"tolerance": tolerance} if base.values is not None else {}),
    }
    ok = rate <= max_rate
    scope = f"'{features[0]}'" if len(features) == 1 else f"{len(features)} features"
    message = (
        f"noise of up to ±{fmt(noise)} standard deviations on {scope} {what} {share(count, n)}, "
        f"{'within' if ok else 'more than'} the allowed {max_rate:.3g}"
    )
    if not ok and examples:
        e = examples[0]
        message += f"; e.g. data row {e['row']}: {fmt(e['before'])} -> {fmt(e['after'])}"
    return Outcome(verdict(ok), message, rate, max_rate, details)


# --------------------------------------------------------------------------- contract

_COMPATIBLE = {
    "float": {"numeric", "bool"},
    "int": {"numeric", "bool"},
    "bool": {"bool", "numeric"},
    "string": {"categorical", "bool", "numeric"},
    "unknown": {"numeric", "categorical", "bool"},
}


def contract_inputs(
    specs: Sequence[InputSpec],
    features: Sequence[str],
    kinds: Mapping[str, str],
    expected: Mapping[str, str] | None = None,
    *,
    tensor_input: bool = False,
) -> Outcome:
    """Input names and types: as ``expected`` (when given) and fed by columns of a fitting kind."""
    problems: list[dict[str, Any]] = []
    declared = {s.name: s for s in specs}
    for name, dtype in (expected or {}).items():
        if name not in declared:
            problems.append(
                {"input": name, "problem": f"expected input '{name}' ({dtype}) is missing"}
            )
        elif declared[name].dtype != dtype:
            problems.append(
                {
                    "input": name,
                    "problem": f"input '{name}' is {declared[name].dtype}, expected {dtype}",
                }
            )
    if expected is not None:
        problems.extend(
            {"input": name, "problem": f"unexpected input '{name}' ({declared[name].dtype})"}
            for name in declared
            if name not in expected
        )
    if tensor_input and specs:
        spec = specs[0]
        width = spec.shape[1] if len(spec.shape) == 2 else None
        if isinstance(width, int) and width != len(features):
            problems.append(
                {
                    "input": spec.name,
                    "problem": f"input '{spec.name}' takes {width} columns, the data gives "
                    f"{len(features)}",
                }
            )
        columns = [(f, spec.dtype) for f in features]
    else:
        columns = [(s.name, s.dtype) for s in specs]
    for name, dtype in columns:
        kind = kinds.get(name)
        if kind is None:
            problems.append({"input": name, "problem": f"input '{name}' has no column in the data"})
        elif kind not in _COMPATIBLE.get(dtype, _COMPATIBLE["unknown"]):
            problems.append(
                {"input": name, "problem": f"input '{name}' is {dtype} but the column is {kind}"}
            )
    details = {
        "examples": problems[:MAX_EXAMPLES],
        "count": len(problems),
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in specs],
    }
    if problems:
        message = f"{len(problems)} input problem(s): " + "; ".join(
            p["problem"] for p in problems[:3]
        )
        return Outcome("failed", message, len(problems), 0, details)
    names = ", ".join(f"{s.name}: {s.dtype}" for s in specs[:6]) + (
        ", ..." if len(specs) > 6 else ""
    )
    return Outcome("passed", f"{len(specs)} input(s) match the data ({names})", 0, 0, details)


def contract_outputs(pred: Predictions, n: int) -> Outcome:
    """One prediction per row; probabilities (n, classes); finite regression values."""
    problems: list[str] = []
    if pred.values is not None:
        values = np.asarray(pred.values)
        if values.shape != (n,):
            problems.append(f"values have shape {list(values.shape)}, expected [{n}]")
        else:
            bad = ~np.isfinite(values.astype(np.float64))
            if bad.any():
                problems.append(
                    f"{int(bad.sum())} non-finite values (first at data row {int(bad.argmax()) + 1})"
                )
        shape = f"values [{n}]"
    else:
        if pred.labels is not None and np.asarray(pred.labels).shape[0] != n:
            problems.append(f"{np.asarray(pred.labels).shape[0]} labels for {n} rows")
        if pred.proba is not None:
            proba = np.asarray(pred.proba)
            k = len(pred.classes) if pred.classes else proba.shape[1] if proba.ndim == 2 else None
            if proba.ndim != 2 or proba.shape != (n, k):
                problems.append(
                    f"probabilities have shape {list(proba.shape)}, expected [{n}, {k}]"
                )
        if pred.labels is None and pred.proba is None:
            problems.append("the model returned neither labels nor probabilities")
        shape = (
            f"probabilities {list(np.asarray(pred.proba).shape)}"
            if pred.proba is not None
            else f"labels [{n}]"
        )
    details = {"examples": [{"problem": p} for p in problems], "count": len(problems), "rows": n}
    if problems:
        return Outcome("failed", "; ".join(problems), len(problems), 0, details)
    return Outcome("passed", f"one prediction per row: {shape}", 0, 0, details)


def contract_probabilities(pred: Predictions, tolerance: float, rows: np.ndarray) -> Outcome:
    """Probabilities in [0, 1] that sum to 1 within ``tolerance`` in every row."""
    if pred.proba is None:
        raise CheckError("the model gives no probabilities")
    proba = np.asarray(pred.proba, dtype=np.float64)
    outside = (proba < -tolerance) | (proba > 1 + tolerance) | ~np.isfinite(proba)
    off_sum = np.abs(proba.sum(axis=1) - 1.0)
    bad = outside.any(axis=1) | (off_sum > tolerance)
    count, n = int(bad.sum()), len(proba)
    badness = np.maximum(off_sum, np.maximum(-proba.min(axis=1), proba.max(axis=1) - 1))
    idx = np.flatnonzero(bad)
    idx = idx[np.argsort(-badness[idx], kind="stable")][:MAX_EXAMPLES]
    examples = [
        {
            "row": int(rows[i]),
            "probabilities": [float(x) for x in proba[i]],
            "sum": float(proba[i].sum()),
        }
        for i in idx
    ]
    worst = float(np.nan_to_num(badness, nan=np.inf).max()) if n else 0.0
    details = {
        "examples": examples,
        "count": count,
        "rows": n,
        "outside_unit_interval": int(outside.any(axis=1).sum()),
        "max_sum_error": float(off_sum.max()) if n else 0.0,
    }
    if count:
        e: dict[str, Any] = examples[0]
        message = (
            f"probabilities outside [0, 1] or not summing to 1 (±{fmt(tolerance)}) in "
            f"{share(count, n)}; worst at data row {e['row']}: "
            f"[{', '.join(f'{x:.4g}' for x in e['probabilities'][:5])}] sums to {e['sum']:.6g}"
        )
        return Outcome("failed", message, worst, tolerance, details)
    return Outcome(
        "passed",
        f"probabilities in [0, 1] summing to 1 (±{fmt(tolerance)}) in all {n:,} rows",
        worst,
        tolerance,
        details,
    )


def within(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Per row: every score of ``a`` within ``tolerance * max(1, |b|)`` of ``b``'s.

    Absolute for probabilities and other scores up to 1, relative for large regression
    values, whose float32 rounding alone grows with their size.
    """
    gap = np.abs(a - b)
    close: np.ndarray = np.all(gap <= tolerance * np.maximum(1.0, np.abs(b)), axis=1)
    return close


def contract_determinism(
    first: Predictions, second: Predictions, rows: np.ndarray, tolerance: float = 0.0
) -> Outcome:
    """Two runs on the same rows give the same scores (within ``tolerance``) and labels.

    Scores may differ by ``tolerance * max(1, |score|)``: parallel models (a random forest
    with ``n_jobs``) sum in a varying order and differ in the last bits. A label that flips
    while its scores stay within the tolerance sat on a tie and is not counted; a model
    without scores must give the same labels.
    """
    a, b = scores(first, None), scores(second, None)
    if a is not None and b is not None:
        diff = np.abs(a - b).max(axis=1)
        bad = ~within(b, a, tolerance)
    else:
        diff = (labels(first) != labels(second)).astype(np.float64)
        bad = diff > 0
    has_labels = first.values is None and (first.labels is not None or first.proba is not None)
    labels_changed = int((labels(first) != labels(second)).sum()) if has_labels else 0
    count, n = int(bad.sum()), len(diff)
    idx = np.flatnonzero(bad)
    idx = idx[np.argsort(-diff[idx], kind="stable")][:MAX_EXAMPLES]
    examples = [
        {
            "row": int(rows[i]),
            "difference": float(diff[i]),
            **(
                {"first": _score(a, i), "second": _score(b, i)}
                if a is not None and b is not None
                else {}
            ),
        }
        for i in idx
    ]
    largest = float(diff.max()) if n else 0.0
    details = {
        "examples": examples,
        "count": count,
        "rows": n,
        "labels_changed": labels_changed,
        "max_difference": largest,
        "tolerance": tolerance,
    }
    if count:
        message = (
            f"two runs on the same rows disagree in {share(count, n)} by more than "
            f"±{fmt(tolerance)} (largest difference {fmt(largest)} at data row "
            f"{examples[0]['row']})"
        )
        return Outcome("failed", message, largest, tolerance, details)
    agree = (
        "agree exactly"
        if largest == 0
        else f"agree within ±{fmt(tolerance)} (largest difference {fmt(largest)})"
    )
    return Outcome("passed", f"two runs on {n:,} rows {agree}", largest, tolerance, details)


def contract_parity(
    max_abs_diff: float | None,
    label_agreement: float | None,
    tolerance: float,
    rows_checked: int,
    *,
    within_tolerance: bool | None = None,
) -> Outcome:
    """ONNX and native predictions agree within ``tolerance`` (and on every label).

    ``within_tolerance`` is the conversion's own per-value verdict (``|diff| <= tolerance *
    (1 + |value|)``, relative for large regression values); without it the largest absolute
    difference is held to ``tolerance``.
    """
    details = {
        "examples": [],
        "count": 0,
        "rows": rows_checked,
        "max_abs_diff": max_abs_diff,
        "label_agreement": label_agreement,
    }
    diff = max_abs_diff if max_abs_diff is not None else float("inf")
    agree = label_agreement if label_agreement is not None else 1.0
    close = diff <= tolerance if within_tolerance is None else within_tolerance
    ok = close and agree >= 1.0
    text = (
        f"ONNX and native predictions on {rows_checked:,} rows differ by at most {fmt(diff)}"
        f" (tolerance {fmt(tolerance)}), labels agree on {agree:.4%}"
    )
    return Outcome(verdict(ok), text, diff, tolerance, details)
