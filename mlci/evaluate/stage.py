"""The evaluation stage: metrics, slices and baseline comparison for one model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlci.config import EvaluationConfig, LoadedConfig
from mlci.data import Dataset
from mlci.evaluate import slicing
from mlci.evaluate.bootstrap import N_BUCKETS
from mlci.evaluate.evaluator import Estimate, Evaluator, Outputs, interval_kind
from mlci.evaluate.metrics import METRICS, check_metric_names, default_metrics
from mlci.evaluate.rows import SliceRows, declared_slices
from mlci.evaluate.significance import slice_significance
from mlci.evaluate.sliceline import (
    FoundSlice,
    bin_numeric,
    find_slices,
    slice_mask,
)
from mlci.evaluate.stats import benjamini_hochberg, flag_worse
from mlci.models.interface import Task
from mlci.results import base as RB
from mlci.results import evaluation as R
from mlci.stages import ModelContext, Progress

# Below this, SliceLine's default support (1% of rows) would admit slices too small to judge.
MIN_DISCOVERY_SUPPORT = 30


def primary_metric(cfg: EvaluationConfig, task: Task, metrics: Sequence[str]) -> str:
    """The metric that decides slice flags."""
    if cfg.primary_metric is not None:
        return cfg.primary_metric
    for name in ("roc_auc", "accuracy", "rmse"):
        if name in metrics:
            return name
    return metrics[0]


def row_errors(task: Task, y_true: np.ndarray, out: Outputs) -> np.ndarray:
    """A non-negative error per row: squared error, log loss, or 0/1 misclassification."""
    if task == "regression":
        assert out.values is not None
        return np.asarray(np.square(out.values - y_true), dtype=np.float64)
    if out.proba is not None:
        # Log loss rather than 1 - p: confident mistakes are what a slice finder should see.
        p_true = out.proba[np.arange(len(y_true)), y_true]
        return np.asarray(-np.log(np.clip(p_true, 1e-15, 1.0)), dtype=np.float64)
    assert out.labels is not None
    return np.asarray(out.labels != y_true, dtype=np.float64)


def checked_primary(loaded: LoadedConfig, task: Task, metrics: Sequence[str]) -> str:
    """The primary metric, which must be among the metrics computed."""
    primary = primary_metric(loaded.config.evaluation, task, metrics)
    if primary not in metrics:
        raise loaded.error(
            ("evaluation", "primary_metric"),
            f"'{primary}' is not among the metrics computed for this {task} model",
            tip=f"choose one of: {', '.join(metrics)}",
        )
    return primary


def chosen_metrics(loaded: LoadedConfig, task: Task, has_proba: bool) -> list[str]:
    cfg = loaded.config.evaluation
    if cfg.metrics is None:
        return default_metrics(task, has_proba)
    try:
        check_metric_names(cfg.metrics, task, has_proba)
    except ValueError as exc:
        raise loaded.error(("evaluation", "metrics"), str(exc)) from None
    return list(cfg.metrics)


class Holdout:
    """Rows to search and rows to test on: a seeded random split (the same rows when 0).

    One uniform draw per row, in row order: batches split one after another get the split
    of all their rows at once.
    """

    def __init__(self, holdout: float, seed: int) -> None:
        self.holdout = holdout
        self.draws = np.random.default_rng([seed, 20211])

    def split(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``rows`` rows: (searched, tested)."""
        if self.holdout == 0:
            everything = np.ones(rows, dtype=bool)
            return everything, everything
        tested = self.draws.random(rows) < self.holdout
        return ~tested, tested


def discovery_mode(loaded: LoadedConfig, has_baseline: bool) -> Literal["model", "regression"]:
    """Whose errors SliceLine searches: the model's, or where it is worse than the baseline."""
    mode = loaded.config.evaluation.discover.error
    if mode == "auto":
        return "regression" if has_baseline else "model"
    if mode == "regression" and not has_baseline:
        raise loaded.error(
            ("evaluation", "discover", "error"),
            "'regression' compares with a baseline, but this model has none",
            tip="add a baseline to the model or use error: model",
        )
    return mode


def discovery_errors(
    task: Task,
    y_true: np.ndarray,
    candidate: Outputs,
    baseline: Outputs | None,
    mode: Literal["model", "regression"],
) -> np.ndarray:
    """Each row's error as SliceLine sees it in ``mode``."""
    errors = row_errors(task, y_true, candidate)
    if mode == "regression":
        assert baseline is not None
        errors = np.maximum(errors - row_errors(task, y_true, baseline), 0.0)
    return errors


def discovery_support(loaded: LoadedConfig, search_rows: int) -> int:
    """SliceLine's minimum support: as configured, else 1% of the rows searched."""
    cfg = loaded.config.evaluation.discover
    return cfg.min_support or max(MIN_DISCOVERY_SUPPORT, search_rows // 100)


def discover_slices(
    loaded: LoadedConfig, data: Dataset, errors: np.ndarray
) -> tuple[list[SliceRows], dict[str, Any]]:
    """Find the top-k problematic slices with SliceLine.

    The search sees only part of the rows; the slices it returns hold only the other rows, so
    their metrics, deltas and flags are measured on data the search never saw. Testing on the
    rows a search picked would make every found slice look significant.
    """
    cfg = loaded.config.evaluation.discover
    searched, tested = Holdout(cfg.holdout, loaded.config.evaluation.seed).split(data.rows)
    features = cfg.features if cfg.features is not None else list(data.features)
    codes: dict[str, np.ndarray] = {}
    labels: dict[str, list[Any]] = {}
    for i, feature in enumerate(features):
        if feature not in data.columns:
            raise loaded.error(
                ("evaluation", "discover", "features", i),
                f"no column '{feature}' in {data.display}",
            )
        values = data.columns[feature]
        if data.kinds[feature] == "numeric" and len(np.unique(values)) > cfg.numeric_bins:
            codes[feature], labels[feature] = bin_numeric(values, cfg.numeric_bins)
        else:
            codes[feature], labels[feature] = data.encoded(feature)
    search_rows = int(searched.sum())
    support = discovery_support(loaded, search_rows)
    # Too few rows to hold one slice of the minimum size: there is nothing to search.
    found = (
        find_slices(
            {f: c[searched] for f, c in codes.items()},
            labels,
            errors[searched],
            k=cfg.top_k,
            max_level=cfg.max_level,
            alpha=cfg.alpha,
            min_support=support,
        )
        if search_rows >= support
        else []
    )
    slices = [
        SliceRows(
            found_name(s),
            found_definition(s, data.kinds),
            "discovered",
            slice_mask(codes, labels, s) & tested,
            s,
        )
        for s in found
    ]
    return slices, discovery_info(loaded, features, search_rows, int(tested.sum()), support, found)


def discovery_info(
    loaded: LoadedConfig,
    features: Sequence[str],
    searched: int,
    tested: int,
    support: int,
    found: Sequence[FoundSlice],
) -> dict[str, Any]:
    """What the ``discovery`` record says of a search besides its error mode."""
    cfg = loaded.config.evaluation.discover
    return {
        "holdout": cfg.holdout,
        "rows_searched": searched,
        "rows_tested": tested,
        "features": list(features),
        "max_level": cfg.max_level,
        "top_k": cfg.top_k,
        "alpha": cfg.alpha,
        "min_support": support,
        "found": len(found),
    }


def found_name(s: FoundSlice) -> str:
    return ", ".join(f"{f}={v}" for f, v in s.predicates)


def found_definition(s: FoundSlice, kinds: Mapping[str, str]) -> str:
    parts = []
    for feature, label in s.predicates:
        if isinstance(label, str) and label.startswith("[") and kinds[feature] == "numeric":
            parts.append(f"{feature} in {label}")
        else:
            parts.append(f"{feature} == {slicing.format_value(label)}")
    return " and ".join(parts)


def estimate_table(estimates: dict[str, Estimate]) -> dict[str, RB.Estimate]:
    return {
        k: RB.Estimate(value=e.value, ci_low=e.ci_low, ci_high=e.ci_high)
        for k, e in estimates.items()
    }


def delta_table(deltas: dict[str, Estimate]) -> dict[str, R.Delta]:
    return {
        name: R.Delta(
            value=d.value,
            ci_low=d.ci_low,
            ci_high=d.ci_high,
            p_value=d.p_value,
            verdict=verdict(name, d),
        )
        for name, d in deltas.items()
    }


def verdict(metric: str, delta: Estimate) -> R.Verdict:
    """better / worse when the interval excludes zero, judged in the metric's direction."""
    if delta.value != delta.value or delta.ci_low is None or delta.ci_high is None:
        return "undefined"
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    low, high = sorted((sign * delta.ci_low, sign * delta.ci_high))
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no detectable difference"


def run(ctx: ModelContext) -> R.Evaluation:
    """The evaluation stage."""
    aligned = ctx.aligned
    section = evaluate_model(
        ctx.loaded,
        ctx.data,
        ctx.task,
        aligned.y_true,
        aligned.outputs[0],
        aligned.outputs[1] if ctx.baseline is not None else None,
        aligned.classes,
        ctx.progress,
    )
    cfg = ctx.loaded.config.evaluation
    if cfg.fairness is not None:
        from mlci.evaluate import fairness

        section = section.model_copy(update={"fairness": fairness.run(ctx)})
    if cfg.importance is not None:
        from mlci.evaluate import importance

        update = {"importance": importance.run(ctx, section.primary_metric)}
        section = section.model_copy(update=update)
    return section


def evaluate_model(
    loaded: LoadedConfig,
    data: Dataset,
    task: Task,
    y_true: np.ndarray,
    candidate: Outputs,
    baseline: Outputs | None,
    classes: Sequence[Any] | None,
    progress: Progress,
) -> R.Evaluation:
    """The ``evaluation`` section of the results document."""
    cfg = loaded.config.evaluation
    metrics = chosen_metrics(loaded, task, candidate.proba is not None)
    primary = checked_primary(loaded, task, metrics)
    weight = data.columns[data.weight] if data.weight else None
    n_classes = len(classes) if classes is not None else None
    evaluator = Evaluator(
        task,
        y_true,
        metrics=metrics,
        n_classes=n_classes,
        weight=weight,
        keys=data.unit_keys,
        n_boot=cfg.bootstrap,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )
    progress("overall metrics")
    overall = _metric_tables(evaluator, candidate, baseline, None)
    mcnemar = None
    if baseline is not None and task != "regression":
        m = evaluator.mcnemar(candidate, baseline)
        mcnemar = R.McNemar(
            candidate_only=m.candidate_only, baseline_only=m.baseline_only, p_value=m.p_value
        )

    progress("declared slices")
    slices = declared_slices(loaded, data)
    discovery = None
    if cfg.discover.enabled:
        mode = discovery_mode(loaded, baseline is not None)
        errors = discovery_errors(task, y_true, candidate, baseline, mode)
        progress("finding slices (SliceLine)")
        found, info = discover_slices(loaded, data, errors)
        discovery = R.Discovery(error=mode, **info)
        slices.extend(found)

    progress(f"evaluating {len(slices)} slices")
    return evaluation_section(
        cfg,
        task,
        classes,
        metrics,
        primary,
        resampling_unit(data.group, data.id),
        metrics=overall,
        mcnemar=mcnemar,
        slices=_evaluate_slices(evaluator, slices, task, y_true, candidate, baseline, primary, cfg),
        discovery=discovery,
        calibration=calibration(task, y_true, candidate, baseline, weight),
    )


def evaluation_section(
    cfg: EvaluationConfig,
    task: Task,
    classes: Sequence[Any] | None,
    metric_names: Sequence[str],
    primary: str,
    unit: tuple[str, str | None],
    **measured: Any,
) -> R.Evaluation:
    """The ``evaluation`` section from what was measured (metrics, mcnemar, slices,
    discovery, calibration) and the settings it was measured with."""
    return R.Evaluation(
        task=task,
        classes=None if classes is None else list(classes),
        primary_metric=primary,
        confidence=cfg.confidence,
        interval_method="poisson-bootstrap" if cfg.bootstrap else "none",
        interval_kinds={m: interval_kind(m) for m in metric_names} if cfg.bootstrap else None,
        resampling=R.Resampling(unit=unit[0], column=unit[1], buckets=N_BUCKETS),
        bootstrap=cfg.bootstrap,
        seed=cfg.seed,
        fdr=cfg.fdr,
        min_slice_size=cfg.min_slice_size,
        metric_info={
            name: R.MetricInfo(
                higher_is_better=METRICS[name].higher_is_better,
                description=METRICS[name].description,
            )
            for name in metric_names
        },
        **measured,
    )


def resampling_unit(group: str | None, id_column: str | None) -> tuple[str, str | None]:
    """What the bootstrap resamples: clusters (data.group), rows by id (data.id), or rows."""
    if group is not None:
        return "group", group
    if id_column is not None:
        return "id", id_column
    return "row", None


CALIBRATION_BINS = 10


def calibration(
    task: Task,
    y_true: np.ndarray,
    candidate: Outputs,
    baseline: Outputs | None,
    weight: np.ndarray | None,
    bins: int = CALIBRATION_BINS,
) -> R.Calibration | None:
    """Reliability curves of the candidate (and baseline), for the calibration plot."""
    if task == "regression" or candidate.proba is None:
        return None
    kind = calibration_kind(task)
    return calibration_section(
        task,
        curve_sums(kind, y_true, candidate.proba, weight, bins),
        curve_sums(kind, y_true, baseline.proba, weight, bins)
        if baseline is not None and baseline.proba is not None
        else None,
    )


def calibration_section(
    task: Task, candidate: np.ndarray, baseline: np.ndarray | None
) -> R.Calibration:
    """The calibration section from both models' :func:`curve_sums`."""
    return R.Calibration(
        kind=calibration_kind(task),
        bins=candidate.shape[1],
        candidate=curve(candidate),
        baseline=None if baseline is None else curve(baseline),
    )


def calibration_kind(task: Task) -> Literal["positive_class", "top_label"]:
    return "positive_class" if task == "binary" else "top_label"


def curve_sums(
    kind: str, y_true: np.ndarray, proba: np.ndarray, weight: np.ndarray | None, bins: int
) -> np.ndarray:
    """Per reliability bin: total weight, weighted predicted score, weighted hits (3, bins)."""
    proba = np.asarray(proba, dtype=np.float64)
    if kind == "positive_class":
        score = proba[:, 1]
        hit = (y_true == 1).astype(np.float64)
    else:
        top = proba.argmax(axis=1)
        score = proba[np.arange(len(top)), top]
        hit = (top == y_true).astype(np.float64)
    w = np.ones_like(score) if weight is None else np.asarray(weight, dtype=np.float64)
    index = np.clip(np.ceil(score * bins).astype(np.int64) - 1, 0, bins - 1)
    return np.stack(
        [
            np.bincount(index, weights=w, minlength=bins),
            np.bincount(index, weights=w * score, minlength=bins),
            np.bincount(index, weights=w * hit, minlength=bins),
        ]
    )


def curve(sums: np.ndarray) -> list[R.CalibrationBin]:
    """The reliability curve from :func:`curve_sums` (of one batch of rows or of many)."""
    total, predicted, observed = sums
    bins = len(total)
    return [
        R.CalibrationBin(
            lower=i / bins,
            upper=(i + 1) / bins,
            weight=float(total[i]),
            mean_predicted=float(predicted[i] / total[i]) if total[i] > 0 else None,
            observed=float(observed[i] / total[i]) if total[i] > 0 else None,
        )
        for i in range(bins)
    ]


def _metric_tables(
    evaluator: Evaluator, candidate: Outputs, baseline: Outputs | None, rows: np.ndarray | None
) -> R.MetricTables:
    if baseline is None:
        return metric_tables(evaluator.estimate(candidate, rows))
    both = evaluator.compare_both(candidate, baseline, rows)
    return metric_tables(both.candidate, both.baseline, both.delta)


def metric_tables(
    candidate: dict[str, Estimate],
    baseline: dict[str, Estimate] | None = None,
    delta: dict[str, Estimate] | None = None,
) -> R.MetricTables:
    return R.MetricTables(
        candidate=estimate_table(candidate),
        baseline=None if baseline is None else estimate_table(baseline),
        delta=None if delta is None else delta_table(delta),
    )


def sliceline_score(found: FoundSlice | None) -> R.SliceLineScore | None:
    if found is None:
        return None
    return R.SliceLineScore(
        score=found.score,
        error_sum=found.error_sum,
        error_mean=found.error_mean,
        max_error=found.max_error,
    )


@dataclass(frozen=True)
class SliceMeasure:
    """What was measured on a slice big enough to evaluate."""

    tables: R.MetricTables
    error_mean: float
    rest_error_mean: float | None
    p_value: float  # one-sided Welch test of its errors against the other rows'


def _evaluate_slices(
    evaluator: Evaluator,
    slices: Sequence[SliceRows],
    task: Task,
    y_true: np.ndarray,
    candidate: Outputs,
    baseline: Outputs | None,
    primary: str,
    cfg: EvaluationConfig,
) -> list[R.SliceResult]:
    sizes = [int(s.mask.sum()) for s in slices]
    big = [i for i, n in enumerate(sizes) if n >= cfg.min_slice_size]
    measured: dict[int, SliceMeasure] = {}
    if big:
        errors = row_errors(task, y_true, candidate)
        tests = slice_significance(errors, [slices[i].mask for i in big], fdr=cfg.fdr)
        for i, test in zip(big, tests, strict=True):
            mask = slices[i].mask
            rest = errors[~mask]
            measured[i] = SliceMeasure(
                _metric_tables(evaluator, candidate, baseline, mask),
                float(errors[mask].mean()),
                float(rest.mean()) if rest.size else None,
                test.p_value,
            )
    return slice_results(
        [(s.name, s.definition, s.source, sliceline_score(s.found)) for s in slices],
        sizes,
        measured,
        baseline is not None,
        primary,
        cfg,
    )


def slice_results(
    slices: Sequence[tuple[str, str, str, R.SliceLineScore | None]],
    sizes: Sequence[int],
    measured: dict[int, SliceMeasure],
    has_baseline: bool,
    primary: str,
    cfg: EvaluationConfig,
) -> list[R.SliceResult]:
    """Slice records, with flags: slices worse than the baseline (or, without one, than the
    other rows) at the false discovery rate ``cfg.fdr`` across the slices measured.

    ``slices``: (name, definition, source, SliceLine score) of each slice; ``measured``:
    what was measured on each slice of at least ``cfg.min_slice_size`` rows, by index.
    """
    records = [
        R.SliceResult(
            name=name,
            definition=definition,
            source="discovered" if source == "discovered" else "declared",
            size=size,
            status="too_small",
            metrics=R.SliceMetrics(candidate={}, baseline={} if has_baseline else None),
            delta=None,
            flagged=False,
            reason=f"fewer than {cfg.min_slice_size} rows",
            sliceline=score,
        )
        for (name, definition, source, score), size in zip(slices, sizes, strict=True)
    ]
    big = sorted(measured)
    if not big:
        return records
    q_rest, significant = benjamini_hochberg(np.array([measured[i].p_value for i in big]), cfg.fdr)
    evaluated: dict[int, dict[str, Any]] = {}
    for i, q, sig in zip(big, q_rest, significant, strict=True):
        m = measured[i]
        evaluated[i] = {
            "status": "evaluated",
            "reason": None,
            "metrics": R.SliceMetrics(candidate=m.tables.candidate, baseline=m.tables.baseline),
            "delta": m.tables.delta,
            "vs_rest": R.VsRest(
                error_mean=m.error_mean,
                rest_error_mean=m.rest_error_mean,
                p_value=m.p_value,
                q_value=float(q),
                significant=bool(sig),
            ),
        }
    if not has_baseline:
        for i in big:
            vs_rest = evaluated[i]["vs_rest"]
            evaluated[i].update(
                flagged=vs_rest.significant,
                q_value=vs_rest.q_value,
                reason=f"error {vs_rest.error_mean:.3g} against {vs_rest.rest_error_mean:.3g} "
                f"on the other rows (q = {vs_rest.q_value:.2g})"
                if vs_rest.significant
                else None,
            )
    else:
        # Many slices are compared at once: control the false discovery rate across them.
        deltas = [evaluated[i]["delta"][primary] for i in big]
        q_values, flags = flag_worse(
            [d.value for d in deltas],
            [d.p_value for d in deltas],
            [d.verdict == "worse" for d in deltas],
            METRICS[primary].higher_is_better,
            cfg.fdr,
        )
        for i, q, flag, delta in zip(big, q_values, flags, deltas, strict=True):
            evaluated[i].update(q_value=float(q), flagged=bool(flag))
            if flag:
                evaluated[i]["reason"] = (
                    f"{primary} {delta.value:+.3g} against the baseline "
                    f"[{delta.ci_low:+.3g}, {delta.ci_high:+.3g}], q = {q:.2g}"
                )
    return [
        r.model_copy(update=evaluated[i]) if i in evaluated else r for i, r in enumerate(records)
    ]
