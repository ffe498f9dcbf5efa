"""Metric registry, and metrics computed from mergeable sufficient statistics.

Every metric belongs to a *family*. A family's statistics are sums over rows that can be
added across shards, so the same code computes a metric on a whole dataset, on a slice,
on every bucket of rows at once (one ``np.bincount`` over a group id) and on every
bootstrap replicate (a weighted sum of bucket statistics):

``confusion``
    the k x k weighted confusion matrix (rows: true class, columns: predicted class);
    serves accuracy, balanced accuracy, precision, recall and F1.
``proba``
    total weight, weighted sum of per-row log loss and of per-row Brier score.
``calibration``
    for each of 15 equal-width bins of top-class confidence: weight, weighted number of
    correct top-class predictions and weighted sum of confidence (ECE).
``ranking``
    per distinct score, the weighted count of positive and negative rows (ROC AUC and
    average precision); exact, and merged by merging on the score. For the bootstrap the
    same formulas run on per-group histograms over a fixed grid of score bins.
``regression``
    row count, total weight, weighted sums of absolute, squared and absolute-percentage
    error, and (weight, mean, M2) of the target for the variance in R^2, merged with
    Chan's parallel formula so R^2 does not suffer from catastrophic cancellation.

Functions named ``*_stats`` turn rows into statistics for ``n_groups`` groups at once;
functions named ``*_metrics`` turn statistics with any leading batch axes into metric
values with those batch axes.

Conventions where scikit-learn warns or the value is undefined:

* Label metrics follow scikit-learn's defaults: the classes averaged over are those with
  positive weight among the true *or* predicted labels of the rows (scikit-learn uses the
  classes present in ``y_true`` or ``y_pred``); a per-class precision, recall or F1 whose
  denominator is 0 counts as 0 (``zero_division="warn"``); balanced accuracy averages the
  recall of the classes present in the truth.
* Every metric is NaN on an empty set of rows (zero total weight).
* ``roc_auc`` is NaN when the positive or the negative class is absent (scikit-learn
  returns NaN with a warning); the multiclass macro average is NaN if any class is absent.
* ``pr_auc`` is NaN when there is no positive row (scikit-learn returns 0.0 with a
  warning, which would read as "worst possible model" in a report).
* ``r2`` is NaN with fewer than two rows, 1.0 for perfect predictions of a constant
  target and 0.0 for imperfect ones (scikit-learn's ``force_finite=True``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from mlci.models.interface import Task

_In = TypeVar("_In")
_Out = TypeVar("_Out")

ECE_BINS = 15
_EPS64 = float(np.finfo(np.float64).eps)
_FLOAT32_INF_BITS = 0x7F800000
_FLOAT64_INF_BITS = 0x7FF0000000000000

# Below this many rows, starting threads costs more than sorting on one core saves.
THREADED_ROWS = 1_000_000

_CLASSIFICATION = frozenset({"binary", "multiclass"})
_BINARY = frozenset({"binary"})
_REGRESSION = frozenset({"regression"})


@dataclass(frozen=True)
class MetricDef:
    """What the rest of mlci needs to know about one metric."""

    name: str
    tasks: frozenset[str]
    higher_is_better: bool
    needs_proba: bool
    description: str


def _defs() -> list[tuple[MetricDef, str]]:
    c, b, r = _CLASSIFICATION, _BINARY, _REGRESSION
    out: list[tuple[MetricDef, str]] = [
        (
            MetricDef("accuracy", c, True, False, "Share of rows whose predicted class is right."),
            "confusion",
        ),
        (
            MetricDef(
                "balanced_accuracy",
                c,
                True,
                False,
                "Mean recall over the classes present in the truth.",
            ),
            "confusion",
        ),
    ]
    verbs = {
        "precision": "Share of predicted positives that are right",
        "recall": "Share of actual positives that are found",
        "f1": "Harmonic mean of precision and recall",
    }
    averages = {
        "macro": "unweighted mean over classes",
        "micro": "pooled over classes",
        "weighted": "mean over classes weighted by support",
    }
    for verb, text in verbs.items():
        for avg, avg_text in averages.items():
            out.append(
                (MetricDef(f"{verb}_{avg}", c, True, False, f"{text}, {avg_text}."), "confusion")
            )
    for verb, text in verbs.items():
        out.append(
            (MetricDef(verb, b, True, False, f"{text}, for the positive class."), "confusion")
        )
    out += [
        (
            MetricDef(
                "roc_auc",
                c,
                True,
                True,
                "Probability a positive row scores above a negative one (one-vs-rest macro).",
            ),
            "ranking",
        ),
        (
            MetricDef(
                "pr_auc", c, True, True, "Average precision over recall levels (one-vs-rest macro)."
            ),
            "ranking",
        ),
        (
            MetricDef(
                "log_loss", c, False, True, "Mean negative log-probability of the true class."
            ),
            "proba",
        ),
        (
            MetricDef(
                "brier", c, False, True, "Mean squared error of the predicted probabilities."
            ),
            "proba",
        ),
        (
            MetricDef(
                "ece",
                c,
                False,
                True,
                "Expected calibration error of top-class confidence (15 bins).",
            ),
            "calibration",
        ),
        (MetricDef("mae", r, False, False, "Mean absolute error."), "regression"),
        (MetricDef("rmse", r, False, False, "Root mean squared error."), "regression"),
        (
            MetricDef(
                "r2", r, True, False, "Share of the target's variance explained by the predictions."
            ),
            "regression",
        ),
        (
            MetricDef(
                "mape", r, False, False, "Mean absolute error relative to the size of the target."
            ),
            "regression",
        ),
    ]
    return out


METRICS: dict[str, MetricDef] = {d.name: d for d, _ in _defs()}
FAMILY: dict[str, str] = {d.name: fam for d, fam in _defs()}
FAMILIES: tuple[str, ...] = ("confusion", "proba", "calibration", "ranking", "regression")


def default_metrics(task: Task, has_proba: bool) -> list[str]:
    """The metrics reported for ``task`` when the configuration names none."""
    if task == "regression":
        return ["mae", "rmse", "r2"]
    if task == "binary":
        names = ["accuracy", "balanced_accuracy", "precision", "recall", "f1"]
    elif task == "multiclass":
        names = ["accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"]
    else:
        raise ValueError(f"unknown task {task!r}; expected binary, multiclass or regression")
    if has_proba:
        names += ["roc_auc", "pr_auc", "log_loss", "brier", "ece"]
    return names


def valid_metrics(task: Task, has_proba: bool) -> list[str]:
    """Every metric name that applies to ``task`` (given whether probabilities exist)."""
    return [
        name for name, d in METRICS.items() if task in d.tasks and (has_proba or not d.needs_proba)
    ]


def check_metric_names(names: Iterable[str], task: Task, has_proba: bool) -> None:
    """Raise ValueError for the first metric name that cannot be computed for ``task``.

    The message names the bad metric and the closest valid name.
    """
    valid = valid_metrics(task, has_proba)
    for name in [names] if isinstance(names, str) else names:
        if name in valid:
            continue
        closest = _closest(name, valid)
        hint = f"; did you mean {closest!r}?" if closest else ""
        d = METRICS.get(name)
        if d is None:
            reason = f"unknown metric {name!r}"
        elif task not in d.tasks:
            reason = f"metric {name!r} does not apply to {task} tasks"
        else:
            reason = f"metric {name!r} needs predicted probabilities, which the model lacks"
        raise ValueError(reason + hint)


def _closest(name: str, valid: Sequence[str]) -> str | None:
    # A binary-only metric on a multiclass task: its macro average is the natural stand-in.
    if f"{name}_macro" in valid:
        return f"{name}_macro"
    matches = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
    return matches[0] if matches else None


# --------------------------------------------------------------------------- helpers


def _sums(
    group: np.ndarray | None, n_groups: int, columns: Sequence[np.ndarray | None], n: int
) -> np.ndarray:
    """Per-group sums of each column of ``n`` rows, shape (n_groups, len(columns)).

    A column of None stands for one per row (the row count), which needs no array of ones.
    """
    if group is None:
        if n_groups != 1:
            raise ValueError("n_groups must be 1 when no group ids are given")
        # ndarray.sum is pairwise, hence closer to scikit-learn's np.average than bincount.
        return np.array(
            [[float(n) if col is None else float(np.sum(col)) for col in columns]],
            dtype=np.float64,
        )
    return np.stack(
        [np.bincount(group, weights=col, minlength=n_groups) for col in columns], axis=1
    ).astype(np.float64, copy=False)


def _counts(codes: np.ndarray, weight: np.ndarray | None, size: int) -> np.ndarray:
    return np.bincount(codes, weights=weight, minlength=size).astype(np.float64, copy=False)


def _codes(group: np.ndarray | None, n_groups: int, cell: np.ndarray, n_cells: int) -> np.ndarray:
    if group is None:
        if n_groups != 1:
            raise ValueError("n_groups must be 1 when no group ids are given")
        return cell
    return np.asarray(group.astype(np.intp, copy=False) * n_cells + cell)


def _div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num / den, with ``fill`` where den is not positive."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.full(num.shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


# ------------------------------------------------------------------- label metrics


def confusion_stats(
    y: np.ndarray,
    pred: np.ndarray,
    n_classes: int,
    weight: np.ndarray | None = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> np.ndarray:
    """Weighted confusion matrices per group, shape (n_groups, k, k); [g, true, predicted]."""
    k = n_classes
    cell = y.astype(np.intp, copy=False) * k + pred
    counts = _counts(_codes(group, n_groups, cell, k * k), weight, n_groups * k * k)
    return counts.reshape(n_groups, k, k)


def confusion_metrics(cm: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Label metrics from confusion matrices of shape (..., k, k)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true_w = cm.sum(axis=-1)
    pred_w = cm.sum(axis=-2)
    total = true_w.sum(axis=-1)
    present = ((true_w > 0) | (pred_w > 0)).astype(np.float64)
    in_truth = (true_w > 0).astype(np.float64)
    per_class = {
        "precision": _div(tp, pred_w, 0.0),
        "recall": _div(tp, true_w, 0.0),
        "f1": _div(2.0 * tp, true_w + pred_w, 0.0),
    }
    accuracy = _div(np.trace(cm, axis1=-2, axis2=-1), total, np.nan)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in ("accuracy", "precision_micro", "recall_micro", "f1_micro"):
            # Single-label micro averages all pool to the same ratio as accuracy.
            value = accuracy
        elif name == "balanced_accuracy":
            value = _div((per_class["recall"] * in_truth).sum(-1), in_truth.sum(-1), np.nan)
        elif name in per_class:
            value = per_class[name][..., 1]
        else:
            verb, _, avg = name.rpartition("_")
            m = per_class[verb]
            if avg == "macro":
                value = _div((m * present).sum(-1), present.sum(-1), np.nan)
            elif avg == "weighted":
                value = _div((m * true_w).sum(-1), true_w.sum(-1), np.nan)
            else:
                raise KeyError(name)
        out[name] = np.where(total > 0, value, np.nan)
    return out


# ----------------------------------------------------------- probability metrics


def true_class_proba(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The probability each row gives its true class."""
    return np.take_along_axis(proba, y.astype(np.intp, copy=False)[:, None], axis=1)[:, 0]


def proba_stats(
    y: np.ndarray,
    proba: np.ndarray,
    weight: np.ndarray | None = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> np.ndarray:
    """Per group: [total weight, weighted log-loss sum, weighted Brier sum], (n_groups, 3).

    Log loss clips probabilities to [eps, 1 - eps] as scikit-learn does. The Brier term is
    (y - p1)^2 for two classes (scikit-learn's binary definition) and the squared distance
    between the one-hot truth and the probability vector otherwise (its multiclass one).
    """
    # In place: on millions of rows each temporary costs as much as the arithmetic.
    log_loss = true_class_proba(y, proba)
    np.clip(log_loss, _EPS64, 1.0 - _EPS64, out=log_loss)
    np.log(log_loss, out=log_loss)
    np.negative(log_loss, out=log_loss)
    if proba.shape[1] == 2:
        brier = np.subtract(y, proba[:, 1])
        np.square(brier, out=brier)
    else:
        diff = proba.copy()
        diff[np.arange(len(y)), y] -= 1.0
        brier = np.einsum("ij,ij->i", diff, diff)
    if weight is not None:
        log_loss = log_loss * weight
        brier = brier * weight
    return _sums(group, n_groups, [weight, log_loss, brier], len(y))


def proba_metrics(stats: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
    """log_loss and brier from statistics of shape (..., 3)."""
    stats = np.asarray(stats, dtype=np.float64)
    column = {"log_loss": 1, "brier": 2}
    return {name: _div(stats[..., column[name]], stats[..., 0], np.nan) for name in names}


# ----------------------------------------------------------------- calibration


def confidence_bins(confidence: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin index of each confidence; bin i holds (i / n_bins, (i + 1) / n_bins]."""
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.searchsorted(inner, confidence, side="left")


def calibration_stats(
    y: np.ndarray,
    proba: np.ndarray,
    weight: np.ndarray | None = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
    n_bins: int = ECE_BINS,
) -> np.ndarray:
    """Per group and confidence bin: [weight, weighted correct, weighted confidence].

    Shape (n_groups, 3, n_bins). The prediction is the top class of ``proba`` (first on
    ties) and its probability is the confidence.
    """
    top = np.argmax(proba, axis=1)
    conf = np.take_along_axis(proba, top[:, None], axis=1)[:, 0]
    correct = (top == y).astype(np.float64)
    w = np.ones(len(y)) if weight is None else weight
    codes = _codes(group, n_groups, confidence_bins(conf, n_bins), n_bins)
    size = n_groups * n_bins
    parts = [
        _counts(codes, w, size),
        _counts(codes, correct * w, size),
        _counts(codes, conf * w, size),
    ]
    return np.stack([p.reshape(n_groups, n_bins) for p in parts], axis=1)


def calibration_metrics(stats: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
    """ECE from statistics of shape (..., 3, n_bins).

    Sum over bins of (bin weight / total) * |bin accuracy - bin confidence|, which is
    sum |weighted correct - weighted confidence| / total.
    """
    stats = np.asarray(stats, dtype=np.float64)
    gap = np.abs(stats[..., 1, :] - stats[..., 2, :]).sum(axis=-1)
    value = _div(gap, stats[..., 0, :].sum(axis=-1), np.nan)
    return dict.fromkeys(names, value)


# --------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class ScoreTable:
    """Weighted positive and negative counts per distinct score, scores ascending."""

    scores: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


def score_table(
    scores: np.ndarray, positive: np.ndarray, weight: np.ndarray | None = None
) -> ScoreTable:
    """The exact ranking statistics of one score column against a boolean truth."""
    if weight is None:
        keys = score_keys(scores, positive)
        if keys is not None:
            keys.sort()  # a fresh array of ours
            return score_table_from_keys(keys)
    return _score_table(scores, positive, weight)[0]


def score_keys(scores: np.ndarray, positive: np.ndarray) -> np.ndarray | None:
    """Each row's score and truth packed in one unsigned integer that orders as the score.

    The bits of a non-negative float order as its value, so ``bits << 1 | positive`` sorts
    rows by score with no index array to carry along: sorting the keys alone is several
    times faster than an argsort and a gather. Scores that are exact float32 values (what
    most models emit) pack into 32 bits, which sort faster still. None when some score is
    negative or not finite; those need :func:`score_table`'s general path.
    """
    s = np.asarray(scores, dtype=np.float64)
    single = s.astype(np.float32)
    if np.array_equal(single, s):
        keys, limit = single, _FLOAT32_INF_BITS
    else:
        keys, limit = s.astype(np.float64, copy=True), _FLOAT64_INF_BITS
    keys += 0.0  # -0.0 becomes 0.0, whose bits order with the rest
    bits = keys.view(np.uint32 if keys.dtype == np.float32 else np.uint64)
    # Negative numbers have the sign bit set, NaN and infinity the largest exponent: one
    # maximum finds both.
    if bits.size and int(bits.max()) >= limit:
        return None
    bits <<= bits.dtype.type(1)
    bits |= np.asarray(positive, dtype=bool)
    return bits


def score_table_from_keys(keys: np.ndarray) -> ScoreTable:
    """The score table of rows whose :func:`score_keys` are given in ascending order."""
    n = len(keys)
    if n == 0:
        empty = np.zeros(0, dtype=np.float64)
        return ScoreTable(empty, empty, empty)
    one = keys.dtype.type(1)
    value = keys >> one
    # Where each run of one score starts, and where the last one ends.
    edge = np.empty(n + 1, dtype=bool)
    edge[0] = edge[n] = True
    np.not_equal(value[1:], value[:-1], out=edge[1:n])
    edges = np.flatnonzero(edge)
    positives_before = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(keys & one, out=positives_before[1:])
    pos = np.diff(positives_before[edges]).astype(np.float64)
    neg = np.diff(edges) - pos
    float_type = np.float32 if keys.dtype == np.uint32 else np.float64
    scores = value[edges[:-1]].view(float_type).astype(np.float64)
    return ScoreTable(scores, pos, neg)


def grouped_summaries(
    scores: np.ndarray,
    positive: np.ndarray,
    weight: np.ndarray | None,
    group: np.ndarray,
    n_groups: int,
    summary: Callable[[ScoreTable], _Out],
) -> list[_Out]:
    """``summary`` of the score table of each group of rows, each on the thread that made it.

    Rows are put in group order (a stable counting sort of small ids), so each group's rows
    are contiguous and in their original order; each group is then tabled as
    :func:`score_table` tables it alone, with the same result. Packed keys (no weights) are
    sorted anyway, so their rows are grouped block by block, a block per thread, and each
    group's pieces joined before its sort. Summing a table up where it was made leaves no
    step that waits for the last group.
    """
    keys = score_keys(scores, positive) if weight is None else None
    if keys is not None:
        pieces = in_threads(
            lambda block: _grouped(group[block], n_groups, keys[block]),
            _blocks(len(keys)),
            len(keys),
        )

        def packed(g: int) -> _Out:
            # Each piece is a part of a grouped copy of ours, so sorting it in place is safe.
            parts = [ordered[b[g] : b[g + 1]] for b, (ordered,) in pieces]
            joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
            joined.sort()
            return summary(score_table_from_keys(joined))

        return in_threads(packed, range(n_groups), len(keys))
    bounds, (s, truth, *w) = _grouped(
        group, n_groups, scores, positive, *([] if weight is None else [weight])
    )

    def general(g: int) -> _Out:
        rows = slice(bounds[g], bounds[g + 1])
        return summary(_score_table(s[rows], truth[rows], w[0][rows] if w else None)[0])

    return in_threads(general, range(n_groups), len(s))


def _grouped(
    group: np.ndarray, n_groups: int, *columns: np.ndarray
) -> tuple[list[int], list[np.ndarray]]:
    """Where each group starts (and the last ends), and ``columns`` in group order."""
    narrow = next(t for t in (np.int8, np.int16, np.intp) if n_groups <= np.iinfo(t).max)
    order = np.argsort(group.astype(narrow), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=n_groups))])
    return bounds.tolist(), [np.take(c, order) for c in columns]


def _blocks(rows: int) -> list[slice]:
    """Consecutive blocks of rows, one per core when ``rows`` pay for threads."""
    count = _cores() if rows >= THREADED_ROWS else 1
    edges = [rows * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _cores() -> int:
    """The cores this process may run on (a container's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def in_threads(fn: Callable[[_In], _Out], items: Sequence[_In], rows: int) -> list[_Out]:
    """``[fn(x) for x in items]``, on a thread per core when ``rows`` pay for threads.

    numpy releases the interpreter lock in sorts and in most operations on large arrays, so
    independent pieces of one evaluation (each slice's sort) use every core.
    """
    workers = min(len(items), _cores())
    if rows < THREADED_ROWS or workers < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def score_table_with_inverse(
    scores: np.ndarray, positive: np.ndarray, weight: np.ndarray | None = None
) -> tuple[ScoreTable, np.ndarray]:
    """The score table, and for each row the index of its score in the table."""
    table, order, new = _score_table(scores, positive, weight)
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return table, inverse


def _score_table(
    scores: np.ndarray, positive: np.ndarray, weight: np.ndarray | None
) -> tuple[ScoreTable, np.ndarray, np.ndarray]:
    order = np.argsort(scores)
    s = np.take(scores, order)
    n = len(s)
    new = np.ones(n, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=new[1:])
    if n == 0:
        empty = np.zeros(0, dtype=np.float64)
        return ScoreTable(empty, empty, empty), order, new
    starts = np.flatnonzero(new)
    is_pos = np.take(positive, order)
    if weight is None:
        pos = np.add.reduceat(is_pos.astype(np.float64), starts)
        neg = np.diff(starts, append=n) - pos
    else:
        w = np.take(weight, order)
        pos_w = np.where(is_pos, w, 0.0)
        pos = np.add.reduceat(pos_w, starts)
        neg = np.add.reduceat(w - pos_w, starts)
    return ScoreTable(s[starts].astype(np.float64), pos, neg), order, new


def merge_score_tables(a: ScoreTable, b: ScoreTable) -> ScoreTable:
    """The table of the union of the rows behind ``a`` and ``b``."""
    scores, inverse = np.unique(np.concatenate([a.scores, b.scores]), return_inverse=True)
    m = len(scores)
    pos = np.bincount(inverse, weights=np.concatenate([a.pos, b.pos]), minlength=m)
    neg = np.bincount(inverse, weights=np.concatenate([a.neg, b.neg]), minlength=m)
    return ScoreTable(scores, pos, neg)


def score_cuts(table: ScoreTable, n_bins: int) -> np.ndarray:
    """Cut points splitting the table's scores into at most ``n_bins`` quantile bins.

    A score s falls in bin ``searchsorted(cuts, s)``, so equal scores share a bin. With at
    most ``n_bins`` distinct scores every score gets its own bin and binning is exact.
    """
    m = len(table.scores)
    if m <= n_bins:
        return table.scores[:-1]
    cum = np.cumsum(table.pos + table.neg)
    if cum[-1] <= 0:
        return table.scores[:0]
    targets = cum[-1] * np.arange(1, n_bins) / n_bins
    at = np.minimum(np.searchsorted(cum, targets, side="left"), m - 2)
    return np.asarray(table.scores[np.unique(at)])


def ranking_histograms(
    bins: np.ndarray,
    positive: np.ndarray,
    weight: np.ndarray | None,
    n_bins: int,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> np.ndarray:
    """Per group, score column and score bin: [negative weight, positive weight].

    ``bins`` and ``positive`` have shape (n, C), one column per one-vs-rest score.
    Returns shape (n_groups, C, n_bins, 2).
    """
    n, n_cols = bins.shape
    cell = (np.arange(n_cols, dtype=np.intp) * n_bins + bins) * 2 + positive
    n_cells = n_cols * n_bins * 2
    codes = _codes(None if group is None else group[:, None], n_groups, cell, n_cells)
    w = None if weight is None else np.broadcast_to(weight[:, None], (n, n_cols)).ravel()
    counts = _counts(codes.ravel(), w, n_groups * n_cells)
    return counts.reshape(n_groups, n_cols, n_bins, 2)


def roc_auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC from counts per score along the last axis (scores ascending).

    Ties count one half, which equals the trapezoidal area under the ROC curve.
    """
    n_pos = pos.sum(axis=-1)
    n_neg = neg.sum(axis=-1)
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=-1)
    return _div(wins, n_pos * n_neg, np.nan)


def average_precision_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn's step-wise definition) from counts per score.

    Thresholds run from the highest score down; each step adds its positives' share of
    recall times the precision at that threshold.
    """
    pos_d = pos[..., ::-1]
    tp = np.cumsum(pos_d, axis=-1)
    fp = np.cumsum(neg[..., ::-1], axis=-1)
    precision = _div(tp, tp + fp, 0.0)
    return _div((pos_d * precision).sum(axis=-1), pos.sum(axis=-1), np.nan)


_RANKING = {"roc_auc": roc_auc_from_counts, "pr_auc": average_precision_from_counts}


def ranking_metrics(
    pos: np.ndarray, neg: np.ndarray, names: Iterable[str]
) -> dict[str, np.ndarray]:
    """roc_auc and pr_auc from counts of shape (..., C, m), macro-averaged over the C columns."""
    return {name: _RANKING[name](pos, neg).mean(axis=-1) for name in names}


def ranking_metrics_from_tables(
    tables: Sequence[ScoreTable], names: Iterable[str]
) -> dict[str, float]:
    """Exact roc_auc and pr_auc, macro-averaged over one-vs-rest tables."""
    return macro_ranking([ranking_values(t, names) for t in tables], names)


def ranking_values(table: ScoreTable, names: Iterable[str]) -> dict[str, np.ndarray]:
    """roc_auc and pr_auc of one one-vs-rest table."""
    return {name: _RANKING[name](table.pos, table.neg) for name in names}


def macro_ranking(
    per_table: Sequence[Mapping[str, np.ndarray]], names: Iterable[str]
) -> dict[str, float]:
    """The mean of :func:`ranking_values` over the one-vs-rest tables of one selection."""
    return {name: float(np.mean([values[name] for values in per_table])) for name in names}


def ranking_columns(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth of the one-vs-rest problems, each of shape (n, C).

    Two classes make one problem, the positive class's probability (C = 1); k > 2 classes
    make k one-vs-rest problems.
    """
    k = proba.shape[1]
    if k == 2:
        return proba[:, 1:2], (y == 1)[:, None]
    return proba, y[:, None] == np.arange(k)


def ranking_tables(
    y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None = None
) -> list[ScoreTable]:
    """Exact score tables of every one-vs-rest problem."""
    scores, positive = ranking_columns(y, proba)
    return [score_table(scores[:, c], positive[:, c], weight) for c in range(scores.shape[1])]


def ranking_bins(
    y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None, n_bins: int
) -> tuple[list[ScoreTable], np.ndarray]:
    """Exact score tables, and each row's quantile score bin per problem, shape (n, C)."""
    scores, positive = ranking_columns(y, proba)
    tables = []
    bins = np.empty(scores.shape, dtype=np.intp)
    for c in range(scores.shape[1]):
        table, inverse = score_table_with_inverse(scores[:, c], positive[:, c], weight)
        # Bin the distinct scores (sorted, few) and look rows up, rather than binary
        # searching every row's score.
        bin_of_score = np.searchsorted(score_cuts(table, n_bins), table.scores)
        bins[:, c] = np.take(bin_of_score, inverse)
        tables.append(table)
    return tables, bins


# ------------------------------------------------------------------ regression

# Columns of the regression statistics.
R_N, R_W, R_ABS, R_SQ, R_APE, R_MEAN, R_M2 = range(7)


def regression_stats(
    y: np.ndarray,
    pred: np.ndarray,
    weight: np.ndarray | None = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> np.ndarray:
    """Per group: [rows, weight, abs err, squared err, abs % err, mean y, M2 y], (n_groups, 7).

    Error sums are weighted. ``mean y`` and ``M2 y`` (weighted sum of squared deviations
    from the group's weighted mean) are Chan's mergeable form of the target's variance.
    The percentage error divides by max(|y|, eps) as scikit-learn's MAPE does.
    """
    w = np.ones(len(y)) if weight is None else weight
    err = np.abs(pred - y)
    ape = err / np.maximum(np.abs(y), _EPS64)
    sums = _sums(group, n_groups, [None, weight, w * err, w * err * err, w * ape, w * y], len(y))
    mean = _div(sums[:, 5], sums[:, R_W], 0.0)
    centred = y - (mean[0] if group is None else mean[group])
    m2 = _sums(group, n_groups, [w * centred * centred], len(y))[:, 0]
    return np.column_stack([sums[:, :5], mean, m2])


def merge_regression_stats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The regression statistics of the union of two disjoint sets of rows (Chan et al.)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = a + b
    wa, wb = a[..., R_W], b[..., R_W]
    w = wa + wb
    delta = b[..., R_MEAN] - a[..., R_MEAN]
    share_b = _div(wb, w, 0.0)
    out[..., R_MEAN] = a[..., R_MEAN] + delta * share_b
    out[..., R_M2] = a[..., R_M2] + b[..., R_M2] + delta * delta * wa * share_b
    return np.asarray(out)


def combine_regression_stats(stats: np.ndarray, multiplicity: np.ndarray) -> np.ndarray:
    """Regression statistics of groups taken ``multiplicity`` times each.

    ``stats`` is (J, 7) and ``multiplicity`` (..., J); the result is (..., 7). Group means
    are centred on the overall mean first, so the between-group term is a sum of small
    squares and the final subtraction cancels little (the weighted form of Chan's merge).
    """
    columns, centre = regression_linear_form(stats)
    return regression_from_linear_form(np.asarray(multiplicity, np.float64) @ columns, centre)


def regression_linear_form(stats: np.ndarray) -> tuple[np.ndarray, float]:
    """Columns (J, 8) that combine linearly across groups, and the centre they use.

    The columns are the five sums, then w_j d_j, w_j d_j^2 and M2_j with d_j the group
    mean minus the centre (the overall weighted mean).
    """
    stats = np.asarray(stats, dtype=np.float64)
    w_j = stats[:, R_W]
    total = w_j.sum()
    centre = float((w_j * stats[:, R_MEAN]).sum() / total) if total > 0 else 0.0
    d = stats[:, R_MEAN] - centre
    extra = np.column_stack([w_j * d, w_j * d * d, stats[:, R_M2]])
    return np.concatenate([stats[:, :5], extra], axis=1), centre


def regression_from_linear_form(combined: np.ndarray, centre: float) -> np.ndarray:
    """Regression statistics (..., 7) from combined linear-form columns (..., 8)."""
    linear = combined[..., :5]
    s1, s2, within = combined[..., 5], combined[..., 6], combined[..., 7]
    shift = _div(s1, linear[..., R_W], 0.0)
    m2 = np.maximum(within + s2 - s1 * shift, 0.0)
    return np.concatenate([linear, (centre + shift)[..., None], m2[..., None]], axis=-1)


def regression_metrics(stats: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
    """mae, rmse, r2 and mape from statistics of shape (..., 7)."""
    stats = np.asarray(stats, dtype=np.float64)
    w = stats[..., R_W]
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "mae":
            out[name] = _div(stats[..., R_ABS], w, np.nan)
        elif name == "rmse":
            out[name] = np.sqrt(_div(stats[..., R_SQ], w, np.nan))
        elif name == "mape":
            out[name] = _div(stats[..., R_APE], w, np.nan)
        elif name == "r2":
            out[name] = _r2(stats[..., R_SQ], stats[..., R_M2], stats[..., R_N])
        else:
            raise KeyError(name)
    return out


def _r2(sse: np.ndarray, m2: np.ndarray, n: np.ndarray) -> np.ndarray:
    # scikit-learn's force_finite: perfect predictions score 1, a constant target 0.
    r2 = np.where(sse == 0, 1.0, np.where(m2 == 0, 0.0, 1.0 - _div(sse, m2, np.nan)))
    return np.where(n < 2, np.nan, r2)


# ---------------------------------------------------------------- dispatching


def metrics_from_stats(
    family: str, stats: np.ndarray, names: Iterable[str]
) -> dict[str, np.ndarray]:
    """Values of ``names`` (all of ``family``) from that family's statistics."""
    if family == "confusion":
        return confusion_metrics(stats, names)
    if family == "proba":
        return proba_metrics(stats, names)
    if family == "calibration":
        return calibration_metrics(stats, names)
    if family == "regression":
        return regression_metrics(stats, names)
    if family == "ranking":
        return ranking_metrics(stats[..., 1], stats[..., 0], names)
    raise KeyError(family)


def combine_stats(family: str, stats: np.ndarray, multiplicity: np.ndarray) -> np.ndarray:
    """Statistics of groups (first axis of ``stats``) taken ``multiplicity`` (..., J) times."""
    if family == "regression":
        return combine_regression_stats(stats, multiplicity)
    flat = np.asarray(stats, dtype=np.float64).reshape(stats.shape[0], -1)
    combined = np.asarray(multiplicity, dtype=np.float64) @ flat
    return combined.reshape(*combined.shape[:-1], *stats.shape[1:])


def merge_stats(family: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Statistics of the union of two disjoint sets of rows (histogram families add)."""
    if family == "regression":
        return merge_regression_stats(a, b)
    return np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)
