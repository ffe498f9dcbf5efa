"""Point values, bootstrap intervals and paired baseline comparisons of metrics.

An :class:`Evaluator` is built once per dataset (target, weights, metric names) and then
asked about any number of models and slices of rows. Metrics come from the mergeable
statistics of :mod:`mlci.evaluate.metrics`; intervals from the bucketed Poisson bootstrap
of :mod:`mlci.evaluate.bootstrap` (BCa, with the jackknife over the same buckets), whose
resampling weights are drawn once per evaluator so that every slice and both sides of a
comparison see the same replicates. Deltas get a p-value from their bootstrap standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from mlci.evaluate import metrics as M
from mlci.evaluate.bootstrap import (
    MIN_INTERVAL_UNITS,
    BucketBootstrap,
    bca_interval,
    leave_one_out,
    studentized_log_interval,
)
from mlci.evaluate.stats import mcnemar_exact, normal_p_value
from mlci.models.interface import Task

# None (all rows), a boolean mask over all rows, or an array of row indices.
Rows = np.ndarray | Sequence[int] | None

_PROBA_FAMILIES = frozenset({"proba", "calibration", "ranking"})
_PROBA_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Outputs:
    """Model outputs aligned row by row with the target, in class-index space."""

    labels: np.ndarray | None = None  # int64 class indices 0..k-1 (classification)
    proba: np.ndarray | None = None  # float64 (n, k), rows sum to 1 (classification, optional)
    values: np.ndarray | None = None  # float64 (n,) (regression)


@dataclass(frozen=True)
class Estimate:
    """A metric value with its interval (and, for deltas, its p-value)."""

    value: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None = None
    method: str = "bootstrap"


@dataclass(frozen=True)
class McNemar:
    """Discordant row counts between two classifiers and the exact McNemar p-value."""

    candidate_only: int
    baseline_only: int
    p_value: float


@dataclass(frozen=True)
class Comparison:
    """Candidate and baseline estimates on the same rows, and the paired delta."""

    candidate: dict[str, Estimate]
    baseline: dict[str, Estimate]
    delta: dict[str, Estimate]


@dataclass(frozen=True)
class _Data:
    """The selected rows of the target, the weights and one model's outputs."""

    idx: np.ndarray | None
    y: np.ndarray
    weight: np.ndarray | None
    labels: np.ndarray | None
    proba: np.ndarray | None
    values: np.ndarray | None


BOOTSTRAP_METHOD = "poisson-bootstrap"

# Metrics that are a power of a weighted mean of per-row errors: (family, column of the
# error sum, column of the weight, power). Their standard error follows from per-bucket
# sums, on the data and on every replicate, which a studentized interval needs.
MEAN_ERRORS: dict[str, tuple[str, int, int, float]] = {
    "mae": ("regression", M.R_ABS, M.R_W, 1.0),
    "rmse": ("regression", M.R_SQ, M.R_W, 0.5),
    "mape": ("regression", M.R_APE, M.R_W, 1.0),
    "log_loss": ("proba", 1, 0, 1.0),
    "brier": ("proba", 2, 0, 1.0),
}
# The interval each metric gets: means of per-row errors are studentized (bootstrap-t on the
# log scale), which covered best in benchmarks/bench_intervals.py (RMSE of heavy-tailed
# errors at n = 50: 90.6% against 87.8% for BCa and 85.2% for percentiles; log loss 95.6%
# against 94.4%); every other metric gets BCa.
STUDENTIZED = frozenset(MEAN_ERRORS)


def interval_kind(metric: str) -> str:
    """Which interval ``metric`` gets: "studentized-log" or "bca"."""
    return "studentized-log" if metric in STUDENTIZED else "bca"


@dataclass(frozen=True)
class Resampled:
    """What intervals are made of, per metric.

    ``replicates``: the bootstrap values; ``jackknife``: the values with each bucket left out;
    ``log_se``: for the means of per-row errors, the standard error of the log of the
    metric on the data and on every replicate.
    """

    replicates: dict[str, np.ndarray]
    jackknife: dict[str, np.ndarray]
    log_se: dict[str, tuple[float, np.ndarray]]
    units: int  # buckets holding at least one selected row


@dataclass(frozen=True)
class Sums:
    """Mergeable statistics of one model's outputs on one selection of rows, which
    :meth:`Evaluator.finish` turns into metrics and intervals.

    ``point``: each family's statistics over all the rows (ranking aside); ``buckets``: each
    family's statistics per bootstrap bucket (for ranking, score histograms), empty without
    a bootstrap; ``ranking``: the exact ROC AUC and average precision; ``rows``: the rows in
    each bucket (None without a bootstrap). Two disjoint sets of rows merge with
    :func:`merge_sums`, ranking aside.
    """

    point: dict[str, np.ndarray]
    buckets: dict[str, np.ndarray]
    ranking: dict[str, float]
    rows: np.ndarray | None


def merge_sums(a: Sums, b: Sums) -> Sums:
    """The statistics of the union of two disjoint sets of rows (ranking values excluded)."""
    if a.ranking or b.ranking:
        raise ValueError("exact ranking values do not merge; fold their score counts instead")
    return Sums(
        {f: M.merge_stats(f, a.point[f], b.point[f]) for f in a.point},
        {f: M.merge_stats(f, a.buckets[f], b.buckets[f]) for f in a.buckets},
        {},
        None if a.rows is None or b.rows is None else a.rows + b.rows,
    )


class Evaluator:
    """Metrics of model outputs against one target, with seeded bootstrap intervals."""

    def __init__(
        self,
        task: Task,
        y_true: np.ndarray,
        *,
        metrics: Sequence[str],
        n_classes: int | None = None,
        weight: np.ndarray | None = None,
        keys: np.ndarray | None = None,
        n_boot: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        max_buckets: int = 1000,
        n_score_bins: int = 256,
        bootstrap: BucketBootstrap | None = None,
    ) -> None:
        """Validate the target and settings; nothing is computed until asked.

        ``keys`` gives each row's resampling unit (its id, or its cluster: rows with one key
        are resampled together); by default every row is a unit keyed by its index.
        ``max_buckets`` is the number of buckets units are hashed into, and ``n_score_bins``
        the score grid used to resample ROC AUC and average precision. ``bootstrap`` shares
        another evaluator's weights (its n_boot, seed and buckets), as evaluators of batches
        of one dataset must.
        """
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"unknown task {task!r}; expected binary, multiclass or regression")
        if n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {n_boot}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        if max_buckets < 1 or n_score_bins < 2:
            raise ValueError("max_buckets must be >= 1 and n_score_bins >= 2")
        self.task: Task = task
        self._y, self.n_classes = _check_target(task, y_true, n_classes)
        self.n_rows = len(self._y)
        self._weight = _check_weight(weight, self.n_rows)
        self._keys = _check_keys(keys, self.n_rows)
        names = list(dict.fromkeys([metrics] if isinstance(metrics, str) else metrics))
        if not names:
            raise ValueError("at least one metric is needed")
        M.check_metric_names(names, task, has_proba=True)
        self.metrics: tuple[str, ...] = tuple(names)
        self._by_family: dict[str, list[str]] = {}
        for name in names:
            self._by_family.setdefault(M.FAMILY[name], []).append(name)
        self.n_boot = n_boot
        self.confidence = confidence
        self.seed = seed
        self.max_buckets = max_buckets
        self.n_score_bins = n_score_bins
        self._boot = bootstrap
        if bootstrap is not None:
            self.n_boot, self.seed = bootstrap.n_boot, bootstrap.seed
            self.max_buckets = bootstrap.n_buckets
        self._row_bucket: np.ndarray | None = None

    # ----------------------------------------------------------------- public API

    def point(self, out: Outputs, rows: Rows = None) -> dict[str, float]:
        """Point value of every metric on the selected rows (NaN where undefined)."""
        values, _ = self._evaluate(self._data(out, self._rows(rows)), replicates=False)
        return {name: float(values[name]) for name in self.metrics}

    def point_groups(
        self, out: Outputs, groups: np.ndarray, n_groups: int
    ) -> list[dict[str, float]]:
        """Point values of every metric on each of ``n_groups`` disjoint groups of rows.

        Row i belongs to group ``groups[i]`` (-1: to none). The result equals
        ``[self.point(out, rows=groups == g) for g in range(n_groups)]``, but the outputs
        are checked once and each family's statistics of all groups come from one pass
        (a ``np.bincount`` over group and cell; score tables from one grouping of the rows),
        instead of one selection and one pass per group. Counts and ranking metrics are
        exactly equal; sums of per-row losses are added in another order, so log loss,
        Brier score and the regression metrics may differ in the last digits (1e-12 or less).
        """
        ids = _check_groups(groups, n_groups, self.n_rows)
        data = self._data(out, None)
        # Group 0 collects the rows in no group, so every id is a valid bincount index.
        shifted, total = ids + 1, n_groups + 1

        def family_columns(family: str) -> dict[str, np.ndarray]:
            names = self._by_family[family]
            if family != "ranking":
                stats = self._family_stats(family, data, shifted, total)
                return M.metrics_from_stats(family, stats, names)
            assert data.proba is not None
            scores, positive = M.ranking_columns(data.y, data.proba)
            per_column = [
                M.grouped_summaries(
                    scores[:, c],
                    positive[:, c],
                    data.weight,
                    shifted,
                    total,
                    lambda table: M.ranking_values(table, names),
                )
                for c in range(scores.shape[1])
            ]
            values = [
                M.macro_ranking(per_group, names) for per_group in zip(*per_column, strict=True)
            ]
            return {name: np.array([v[name] for v in values]) for name in names}

        columns: dict[str, np.ndarray] = {}
        for part in M.in_threads(family_columns, list(self._by_family), self.n_rows):
            columns.update(part)
        return [{name: float(columns[name][g]) for name in self.metrics} for g in range(1, total)]

    def estimate(self, out: Outputs, rows: Rows = None) -> dict[str, Estimate]:
        """Point value and bootstrap BCa interval of every metric."""
        data = self._data(out, self._rows(rows))
        return self.estimates(*self._evaluate(data, replicates=self.n_boot > 0))

    def estimates(self, values: dict[str, float], boot: Resampled | None) -> dict[str, Estimate]:
        result: dict[str, Estimate] = {}
        for name in self.metrics:
            value = float(values[name])
            if boot is None:
                result[name] = Estimate(value, None, None, method="none")
                continue
            low, high = self.interval(name, value, boot)
            result[name] = Estimate(value, low, high, method=BOOTSTRAP_METHOD)
        return result

    def interval(
        self, name: str, value: float, boot: Resampled
    ) -> tuple[float | None, float | None]:
        """The interval mlci reports for metric ``name`` (see :func:`interval_kind`); none
        over fewer than ``MIN_INTERVAL_UNITS`` resampling units."""
        if boot.units < MIN_INTERVAL_UNITS:
            return None, None
        if name in STUDENTIZED and name in boot.log_se:
            point_se, replicate_se = boot.log_se[name]
            found = studentized_log_interval(
                value, boot.replicates[name], point_se, replicate_se, self.confidence
            )
            if found is not None:
                return found
        return bca_interval(boot.replicates[name], boot.jackknife[name], value, self.confidence)

    def replicates(self, out: Outputs, rows: Rows = None) -> dict[str, np.ndarray]:
        """Every metric's bootstrap replicate values, shape (n_boot,) each (NaN: undefined)."""
        if self.n_boot == 0:
            raise ValueError("this evaluator was built with n_boot=0")
        _, boot = self._evaluate(self._data(out, self._rows(rows)), replicates=True)
        assert boot is not None
        return {name: np.asarray(boot.replicates[name], dtype=np.float64) for name in self.metrics}

    def resampled(self, out: Outputs, rows: Rows = None) -> tuple[dict[str, float], Resampled]:
        """Point values, bootstrap replicates and jackknife values: what intervals are made of."""
        if self.n_boot == 0:
            raise ValueError("this evaluator was built with n_boot=0")
        values, boot = self._evaluate(self._data(out, self._rows(rows)), replicates=True)
        assert boot is not None
        return values, boot

    def compare(
        self, candidate: Outputs, baseline: Outputs, rows: Rows = None
    ) -> dict[str, Estimate]:
        """Paired candidate - baseline delta of every metric, with interval and p-value.

        Both models are resampled with the same bootstrap weights, so the interval and the
        p-value reflect the variation of the difference, not of each model separately.
        """
        return self.compare_both(candidate, baseline, rows).delta

    def compare_both(self, candidate: Outputs, baseline: Outputs, rows: Rows = None) -> Comparison:
        """Both models' estimates and the paired delta, from one evaluation of each."""
        idx = self._rows(rows)
        vc, rc = self._evaluate(self._data(candidate, idx), replicates=self.n_boot > 0)
        vb, rb = self._evaluate(self._data(baseline, idx), replicates=self.n_boot > 0)
        return Comparison(
            candidate=self.estimates(vc, rc),
            baseline=self.estimates(vb, rb),
            delta=self.deltas(vc, rc, vb, rb),
        )

    def deltas(
        self,
        vc: dict[str, float],
        rc: Resampled | None,
        vb: dict[str, float],
        rb: Resampled | None,
    ) -> dict[str, Estimate]:
        """Paired deltas from both models' values and resamples (see :meth:`resampled`)."""
        result: dict[str, Estimate] = {}
        for name in self.metrics:
            delta = float(vc[name] - vb[name])
            if rc is None or rb is None:
                result[name] = Estimate(delta, None, None, None, method="none")
                continue
            low = high = p = None
            if np.isfinite(delta) and min(rc.units, rb.units) >= MIN_INTERVAL_UNITS:
                # Both models were resampled with the same weights and jackknifed over the
                # same buckets, so their differences are the paired delta's.
                deltas = rc.replicates[name] - rb.replicates[name]
                jackknife = rc.jackknife[name] - rb.jackknife[name]
                low, high = bca_interval(deltas, jackknife, delta, self.confidence)
                if low is not None:
                    p = normal_p_value(delta, deltas)
            result[name] = Estimate(delta, low, high, p, method=BOOTSTRAP_METHOD)
        return result

    def mcnemar(self, candidate: Outputs, baseline: Outputs, rows: Rows = None) -> McNemar:
        """Exact McNemar test on the rows exactly one of the two classifiers gets right.

        Counts are numbers of rows; sample weights are not used, because the exact test
        needs counts.
        """
        if self.task == "regression":
            raise ValueError("McNemar's test needs a classification task")
        idx = self._rows(rows)
        y = _take(self._y, idx)
        right_c = self._labels(candidate, idx) == y
        right_b = self._labels(baseline, idx) == y
        candidate_only = int(np.count_nonzero(right_c & ~right_b))
        baseline_only = int(np.count_nonzero(right_b & ~right_c))
        return McNemar(candidate_only, baseline_only, mcnemar_exact(candidate_only, baseline_only))

    # ------------------------------------------------------------------ computing

    def _evaluate(
        self, data: _Data, *, replicates: bool
    ) -> tuple[dict[str, float], Resampled | None]:
        return self.finish(self._sums(data, resample=replicates))

    def sums(
        self, out: Outputs, rows: Rows = None, *, resample: bool, ranking: bool = True
    ) -> Sums:
        """The mergeable statistics of ``out`` on the selected rows (see :class:`Sums`).

        Without ``ranking``, ROC AUC and average precision are left out: their exact tables
        and score grid are not sums of rows, so a fold over batches keeps them apart.
        """
        return self._sums(self._data(out, self._rows(rows)), resample=resample, ranking=ranking)

    def _sums(self, data: _Data, *, resample: bool, ranking: bool = True) -> Sums:
        boot = self._bootstrap() if resample and self.n_boot > 0 else None
        group = None if boot is None else _take(self._buckets(), data.idx)
        point: dict[str, np.ndarray] = {}
        buckets: dict[str, np.ndarray] = {}
        exact: dict[str, float] = {}
        for family, names in self._by_family.items():
            if family == "ranking":
                if not ranking:
                    continue
                assert data.proba is not None
                if boot is None:
                    tables = M.ranking_tables(data.y, data.proba, data.weight)
                    exact.update(M.ranking_metrics_from_tables(tables, names))
                    continue
                tables, bins = M.ranking_bins(data.y, data.proba, data.weight, self.n_score_bins)
                exact.update(M.ranking_metrics_from_tables(tables, names))
                positive = M.ranking_columns(data.y, data.proba)[1]
                buckets[family] = M.ranking_histograms(
                    bins, positive, data.weight, self.n_score_bins, group, boot.n_buckets
                )
                continue
            point[family] = self._family_stats(family, data)
            if boot is not None:
                buckets[family] = self._family_stats(family, data, group, boot.n_buckets)
        rows = None
        if boot is not None and group is not None:
            rows = np.bincount(group, minlength=boot.n_buckets)
        return Sums(point, buckets, exact, rows)

    def finish(self, sums: Sums) -> tuple[dict[str, float], Resampled | None]:
        """Point values, and (when ``sums`` were resampled) every metric's bootstrap and
        jackknife values.

        All families' bucket statistics are resampled by one matrix product, so the
        bootstrap costs a single (n_boot x buckets) @ (buckets x statistics) product; the
        jackknife leaves out each bucket that holds a selected row.
        """
        values: dict[str, float] = dict(sums.ranking)
        blocks: list[tuple[np.ndarray, Callable[[np.ndarray], dict[str, np.ndarray]]]] = []
        means: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        for family, names in self._by_family.items():
            if family != "ranking":
                point = M.metrics_from_stats(family, sums.point[family], names)
                values.update({name: float(v[0]) for name, v in point.items()})
            if sums.rows is None:
                continue
            bucket_stats = sums.buckets[family]
            if family == "ranking":
                exact = {name: sums.ranking[name] for name in names}
                binned_all = M.metrics_from_stats("ranking", bucket_stats.sum(axis=0), names)
                blocks.append((bucket_stats, partial(_finish_ranking, names, exact, binned_all)))
                continue
            for name in names:
                if name in MEAN_ERRORS:
                    _, total, weight, power = MEAN_ERRORS[name]
                    means[name] = (bucket_stats[:, total], bucket_stats[:, weight], power)
            if family == "regression":
                columns, centre = M.regression_linear_form(bucket_stats)
                blocks.append((columns, partial(_finish_regression, names, centre)))
            else:
                blocks.append((bucket_stats, partial(M.metrics_from_stats, family, names=names)))
        if sums.rows is None:
            return values, None
        boot = self._bootstrap()
        used = np.flatnonzero(sums.rows)
        return values, Resampled(
            _resample_blocks(boot, blocks),
            _jackknife_blocks(used, blocks),
            _log_standard_errors(boot, means),
            len(used),
        )

    def _family_stats(
        self, family: str, data: _Data, group: np.ndarray | None = None, n_groups: int = 1
    ) -> np.ndarray:
        if family == "confusion":
            assert data.labels is not None
            return M.confusion_stats(
                data.y, data.labels, self.n_classes, data.weight, group, n_groups
            )
        if family == "proba":
            assert data.proba is not None
            return M.proba_stats(data.y, data.proba, data.weight, group, n_groups)
        if family == "calibration":
            assert data.proba is not None
            return M.calibration_stats(data.y, data.proba, data.weight, group, n_groups)
        if family == "regression":
            assert data.values is not None
            return M.regression_stats(data.y, data.values, data.weight, group, n_groups)
        raise KeyError(family)

    def _bootstrap(self) -> BucketBootstrap:
        if self._boot is None:
            self._boot = BucketBootstrap(self.n_boot, seed=self.seed, n_buckets=self.max_buckets)
        return self._boot

    def _buckets(self) -> np.ndarray:
        """The bucket of every row: a seeded hash of its unit's key."""
        if self._row_bucket is None:
            keys = np.arange(self.n_rows) if self._keys is None else self._keys
            self._row_bucket = self._bootstrap().assign(keys)
        return self._row_bucket

    # ----------------------------------------------------------------- selecting

    def _rows(self, rows: Rows) -> np.ndarray | None:
        """Row indices of a selection (None for all rows)."""
        if rows is None:
            return None
        arr = np.asarray(rows)
        if arr.dtype == np.bool_:
            if arr.shape != (self.n_rows,):
                raise ValueError(f"row mask has shape {arr.shape}, expected ({self.n_rows},)")
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.zeros(0, dtype=np.intp)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError("rows must be a boolean mask or a 1-D array of row indices")
        if arr.min() < 0 or arr.max() >= self.n_rows:
            raise ValueError(f"row indices must be in [0, {self.n_rows})")
        return arr.astype(np.intp, copy=False)

    def _data(self, out: Outputs, idx: np.ndarray | None) -> _Data:
        families = self._by_family.keys()
        labels = self._labels(out, idx) if "confusion" in families else None
        proba = self._proba(out, idx) if _PROBA_FAMILIES & families else None
        values = self._values(out, idx) if "regression" in families else None
        return _Data(
            idx=idx,
            y=_take(self._y, idx),
            weight=None if self._weight is None else _take(self._weight, idx),
            labels=labels,
            proba=proba,
            values=values,
        )

    def _labels(self, out: Outputs, idx: np.ndarray | None) -> np.ndarray:
        """Predicted class indices; the top class of ``proba`` when labels are missing."""
        if out.labels is None:
            if out.proba is None:
                raise ValueError("classification metrics need predicted labels or probabilities")
            return np.asarray(np.argmax(self._proba(out, idx), axis=1))
        labels = _full(out.labels, self.n_rows, "labels")
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        sel = _take(labels, idx)
        if sel.size and (sel.min() < 0 or sel.max() >= self.n_classes):
            raise ValueError(f"labels must be class indices in [0, {self.n_classes})")
        return sel.astype(np.intp, copy=False)

    def _proba(self, out: Outputs, idx: np.ndarray | None) -> np.ndarray:
        if out.proba is None:
            needing = [n for n in self.metrics if M.METRICS[n].needs_proba]
            raise ValueError(
                f"metrics {needing} need predicted probabilities, which these outputs lack"
            )
        proba = np.asarray(out.proba)
        if proba.shape != (self.n_rows, self.n_classes):
            raise ValueError(
                f"proba has shape {proba.shape}, expected ({self.n_rows}, {self.n_classes})"
            )
        sel = np.asarray(_take(proba, idx), dtype=np.float64)
        if sel.size:
            low, high = float(sel.min()), float(sel.max())
            if not (np.isfinite(low) and np.isfinite(high)):
                raise ValueError("proba contains NaN or infinite values")
            if low < -_PROBA_TOLERANCE or high > 1.0 + _PROBA_TOLERANCE:
                raise ValueError(f"proba must lie in [0, 1], found values in [{low}, {high}]")
            if low < 0.0 or high > 1.0:
                sel = np.clip(sel, 0.0, 1.0)
        return sel

    def _values(self, out: Outputs, idx: np.ndarray | None) -> np.ndarray:
        if out.values is None:
            raise ValueError("regression metrics need predicted values")
        values = _full(out.values, self.n_rows, "values")
        sel = np.asarray(_take(values, idx), dtype=np.float64)
        if not np.all(np.isfinite(sel)):
            raise ValueError("predicted values contain NaN or infinite values")
        return sel


def _resample_blocks(
    boot: BucketBootstrap,
    blocks: list[tuple[np.ndarray, Callable[[np.ndarray], dict[str, np.ndarray]]]],
) -> dict[str, np.ndarray]:
    """Resample every block of bucket statistics at once and finish each into metrics."""
    flat = [stats.reshape(stats.shape[0], -1) for stats, _ in blocks]
    replicated = boot.resample(np.concatenate(flat, axis=1))
    reps: dict[str, np.ndarray] = {}
    offset = 0
    for (stats, finish), columns in zip(blocks, flat, strict=True):
        part = replicated[:, offset : offset + columns.shape[1]]
        reps.update(finish(part.reshape(boot.n_boot, *stats.shape[1:])))
        offset += columns.shape[1]
    return reps


def _jackknife_blocks(
    used: np.ndarray,
    blocks: list[tuple[np.ndarray, Callable[[np.ndarray], dict[str, np.ndarray]]]],
) -> dict[str, np.ndarray]:
    """Every metric with each used bucket left out in turn (the grouped jackknife)."""
    values: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for stats, finish in blocks:
            values.update(finish(leave_one_out(stats, used)))
    return values


def _log_standard_errors(
    boot: BucketBootstrap, means: dict[str, tuple[np.ndarray, np.ndarray, float]]
) -> dict[str, tuple[float, np.ndarray]]:
    """Standard error of log(metric) for means of per-row errors, on the data and per replicate.

    For a weighted mean m = sum S_j / sum W_j over buckets j (S: error sum, W: weight), the
    variance is sum_j (S_j - m W_j)^2 / (sum_j W_j)^2: with one row per bucket the usual
    variance of a weighted mean, with clusters the cluster-robust one. On a replicate the
    sums are weighted by its Poisson counts, which the bucket products S^2, S W and W^2
    resampled alongside S and W give exactly. A metric m^power has log standard error
    power * se(m) / m.
    """
    if not means:
        return {}
    columns = []
    for s, w, _ in means.values():
        columns += [s, w, s * s, s * w, w * w]
    replicated = boot.resample(np.column_stack(columns))
    out: dict[str, tuple[float, np.ndarray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, (name, (s, w, power)) in enumerate(means.items()):
            rs, rw, rss, rsw, rww = (replicated[:, 5 * i + k] for k in range(5))
            m = rs / rw
            var = np.maximum(rss - 2.0 * m * rsw + m * m * rww, 0.0) / (rw * rw)
            total_w = float(w.sum())
            point_m = float(s.sum()) / total_w if total_w > 0 else math.nan
            point_var = float(np.sum((s - point_m * w) ** 2)) / total_w**2 if total_w > 0 else 0.0
            point_se = power * math.sqrt(point_var) / point_m if point_m > 0 else math.nan
            out[name] = (point_se, power * np.sqrt(var) / m)
    return out


def _finish_regression(
    names: list[str], centre: float, combined: np.ndarray
) -> dict[str, np.ndarray]:
    return M.regression_metrics(M.regression_from_linear_form(combined, centre), names)


def _finish_ranking(
    names: list[str],
    exact: dict[str, float],
    binned_all: dict[str, np.ndarray],
    hist: np.ndarray,
) -> dict[str, np.ndarray]:
    # Exact value plus the replicate's deviation of the binned metric from the binned
    # metric on all rows (see the bootstrap module for why this is sound).
    binned = M.metrics_from_stats("ranking", hist, names)
    return {n: exact[n] + (binned[n] - binned_all[n]) for n in names}


def _take(arr: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    """Rows ``idx`` of ``arr`` (all when None); np.take is far faster than arr[idx] on 2-D."""
    return arr if idx is None else np.take(arr, idx, axis=0)


def _full(arr: np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != (n,):
        raise ValueError(f"{what} has shape {arr.shape}, expected ({n},)")
    return arr


def _check_target(task: Task, y_true: np.ndarray, n_classes: int | None) -> tuple[np.ndarray, int]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if task == "regression":
        y = y.astype(np.float64, copy=False)
        if not np.all(np.isfinite(y)):
            raise ValueError("y_true contains NaN or infinite values")
        return y, 0
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.intp, copy=False)
    k = n_classes if n_classes is not None else max(2, int(y.max()) + 1 if y.size else 2)
    if task == "binary" and k != 2:
        raise ValueError(f"a binary task has 2 classes, got n_classes={k}")
    if k < 2:
        raise ValueError(f"n_classes must be at least 2, got {k}")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"y_true must hold class indices in [0, {k})")
    return y, k


def _check_groups(groups: np.ndarray, n_groups: int, n: int) -> np.ndarray:
    """Group ids as intp, after checking their shape, type and range [-1, n_groups)."""
    ids = np.asarray(groups)
    if ids.shape != (n,):
        raise ValueError(f"groups has shape {ids.shape}, expected ({n},)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"groups must hold integer group ids, got dtype {ids.dtype}")
    if n_groups < 0:
        raise ValueError(f"n_groups must be >= 0, got {n_groups}")
    if ids.size and (ids.min() < -1 or ids.max() >= n_groups):
        raise ValueError(f"group ids must be in [-1, {n_groups}) (-1: in no group)")
    return ids.astype(np.intp, copy=False)


def _check_keys(keys: np.ndarray | None, n: int) -> np.ndarray | None:
    if keys is None:
        return None
    k = np.asarray(keys)
    if k.shape != (n,):
        raise ValueError(f"keys has shape {k.shape}, expected ({n},)")
    return k


def _check_weight(weight: np.ndarray | None, n: int) -> np.ndarray | None:
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weight has shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)) or (w.size and w.min() < 0):
        raise ValueError("weights must be finite and non-negative")
    return w
