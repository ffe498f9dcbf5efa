"""Fairness summaries: rates of the favourable prediction per group of a sensitive feature.

For a binary classifier and each group: the selection rate (share predicted positive), the
true-positive rate and the false-positive rate; across groups, the largest difference and
the smallest ratio of each, and fairlearn's summaries: demographic parity (of the selection
rate) and equalized odds (the worse of the true- and false-positive rates). Candidate and
baseline are measured on the same rows with the evaluation's bucketed Poisson bootstrap, so
each rate, difference and ratio has an interval, and the candidate-minus-baseline change is
paired.

Every rate is a ratio of weighted counts per group, so the whole computation is a handful of
``np.bincount`` calls, per bucket of rows for the bootstrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.evaluate.bootstrap import BucketBootstrap, percentile_interval
from mlci.evaluate.config import FAIRNESS_METRICS, SensitiveFeature
from mlci.results import fairness as R
from mlci.results.base import Estimate, jsonable

if TYPE_CHECKING:
    from mlci.evaluate.evaluator import Outputs
    from mlci.stages import ModelContext

# Columns of the per-group statistics: weight of rows, predicted positive, actually
# positive, true positives, false positives.
N, SELECTED, POSITIVE, TP, FP = range(5)
MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class Groups:
    """Each row's group (-1: in no group) and the groups' names."""

    codes: np.ndarray
    names: list[str]
    definition: str


def groups_of(values: np.ndarray, kind: str, spec: SensitiveFeature) -> Groups:
    """The groups of a sensitive feature: its values, or numeric bins ``[a, b)``."""
    from mlci.evaluate.slicing import format_value
    from mlci.testing.encode import MISSING, categorical_codes

    if spec.bins is not None:
        if kind != "numeric":
            raise ValueError(f"'{spec.feature}' is {kind}; bins need a numeric feature")
        edges = np.asarray(spec.bins, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        codes = np.searchsorted(edges, x, side="right") - 1
        codes[x == edges[-1]] = len(edges) - 2  # the last bin is closed
        codes[(codes < 0) | (codes > len(edges) - 2) | np.isnan(x)] = -1
        names = [
            f"[{format_value(lo)}, {format_value(hi)}{']' if j == len(edges) - 2 else ')'}"
            for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
        ]
        return Groups(codes, names, f"{spec.feature} in bins {names[0]} ... {names[-1]}")
    (codes,), names = categorical_codes(values)
    if (codes == MISSING).any():
        codes = np.where(codes == MISSING, len(names), codes)
        names = [*names, MISSING_GROUP]
    return Groups(codes, names, f"{spec.feature} = each of its {len(names)} values")


def group_stats(
    groups: np.ndarray,
    n_groups: int,
    actual: np.ndarray,
    predicted: np.ndarray,
    weight: np.ndarray | None,
    bucket: np.ndarray | None = None,
    n_buckets: int = 1,
) -> np.ndarray:
    """(n_buckets, n_groups, 5) weighted counts; rows in no group (-1) are left out."""
    keep = groups >= 0
    g = groups[keep]
    b = np.zeros(len(g), dtype=np.intp) if bucket is None else bucket[keep]
    w = np.ones(len(g)) if weight is None else np.asarray(weight, dtype=np.float64)[keep]
    a, p = actual[keep], predicted[keep]
    cell = b * n_groups + g
    size = n_buckets * n_groups
    columns = [w, w * p, w * a, w * (a & p), w * (~a & p)]
    stats = np.stack([np.bincount(cell, weights=c, minlength=size) for c in columns], axis=-1)
    return stats.reshape(n_buckets, n_groups, 5)


def rates(stats: np.ndarray) -> dict[str, np.ndarray]:
    """selection_rate, tpr and fpr from statistics (any leading axes; NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "selection_rate": stats[..., SELECTED] / stats[..., N],
            "tpr": stats[..., TP] / stats[..., POSITIVE],
            "fpr": stats[..., FP] / (stats[..., N] - stats[..., POSITIVE]),
        }


def disparity(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest difference and smallest ratio between groups (last axis), ignoring NaN."""
    if values.shape[-1] == 0:
        undefined = np.full(values.shape[:-1], np.nan)
        return undefined, undefined.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: undefined, stays NaN
            high = np.nanmax(values, axis=-1)
            low = np.nanmin(values, axis=-1)
        defined = np.sum(np.isfinite(values), axis=-1) >= 2
        difference = np.where(defined, high - low, np.nan)
        ratio = np.where(defined & (high > 0), low / np.where(high > 0, high, 1.0), np.nan)
        ratio = np.where(defined & (high == 0), 1.0, ratio)  # every group at 0: equal
    return difference, ratio


def summaries(per_group: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Difference and ratio of each rate, demographic parity and equalized odds."""
    out = {name: disparity(values) for name, values in per_group.items()}
    if "selection_rate" in out:
        out["demographic_parity"] = out["selection_rate"]
    if "tpr" in out and "fpr" in out:
        (dt, rt), (df, rf) = out["tpr"], out["fpr"]
        out["equalized_odds"] = (np.fmax(dt, df), np.fmin(rt, rf))
    return out


def _estimate(value: float, reps: np.ndarray | None, confidence: float) -> Estimate:
    if reps is None or not np.isfinite(value):
        return Estimate(value=value, ci_low=None, ci_high=None)
    low, high = percentile_interval(reps, confidence, value)
    return Estimate(value=value, ci_low=low, ci_high=high)


def feature_fairness(
    feature: str,
    groups: Groups,
    actual: np.ndarray,
    candidate: np.ndarray,
    baseline: np.ndarray | None,
    *,
    weight: np.ndarray | None,
    metrics: Sequence[str],
    min_group_size: int,
    boot: BucketBootstrap | None,
    confidence: float,
    keys: np.ndarray | None = None,
) -> R.FeatureFairness:
    """Rates per group and disparities for one sensitive feature.

    ``actual``, ``candidate`` and ``baseline`` say, per row, whether the label and each
    model's prediction are the favourable class. ``keys`` are the rows' resampling units
    (clusters or ids, as in the evaluation); by default each row is its own unit.
    """
    buckets = None
    if boot is not None:
        buckets = boot.assign(np.arange(len(actual)) if keys is None else keys)
    k = len(groups.names)
    sizes = np.bincount(groups.codes[groups.codes >= 0], minlength=k)
    big = sizes >= min_group_size
    models = [candidate] if baseline is None else [candidate, baseline]
    points: list[dict[str, np.ndarray]] = []
    replicated: list[dict[str, np.ndarray] | None] = []
    for predicted in models:
        stats = group_stats(groups.codes, k, actual, predicted, weight)[0]
        points.append({m: v for m, v in rates(stats).items() if m in metrics})
        if boot is None:
            replicated.append(None)
            continue
        bucket_stats = group_stats(
            groups.codes, k, actual, predicted, weight, buckets, boot.n_buckets
        )
        reps = boot.resample(bucket_stats)
        replicated.append({m: v for m, v in rates(reps).items() if m in metrics})

    def table(j: int, g: int) -> dict[str, Estimate]:
        reps = replicated[j]
        return {
            m: _estimate(
                float(points[j][m][g]), None if reps is None else reps[m][:, g], confidence
            )
            for m in metrics
        }

    group_rows = [
        R.GroupRates(
            group=name,
            size=int(sizes[g]),
            status="evaluated" if big[g] else "too_small",
            candidate=table(0, g),
            baseline=table(1, g) if baseline is not None else None,
        )
        for g, name in enumerate(groups.names)
    ]
    point_summary = [summaries({m: v[big] for m, v in p.items()}) for p in points]
    rep_summary = [
        None if r is None else summaries({m: v[:, big] for m, v in r.items()}) for r in replicated
    ]
    disparities: dict[str, R.Disparity] = {}
    for name in point_summary[0]:
        fields: dict[str, Any] = {}
        for part, index in (("difference", 0), ("ratio", 1)):
            values = [float(s[name][index]) for s in point_summary]
            spread = [None if r is None else r[name][index] for r in rep_summary]
            fields[part] = _estimate(values[0], spread[0], confidence)
            if baseline is not None:
                fields[f"baseline_{part}"] = _estimate(values[1], spread[1], confidence)
                first, second = spread[0], spread[-1]
                paired = None if first is None or second is None else first - second
                fields[f"{part}_delta"] = _estimate(values[0] - values[1], paired, confidence)
        disparities[name] = R.Disparity(**fields)
    return R.FeatureFairness(
        feature=feature,
        definition=groups.definition,
        groups=group_rows,
        disparities=disparities,
    )


def _favourable(out: Outputs, positive: int) -> np.ndarray:
    if out.labels is not None:
        return np.asarray(np.asarray(out.labels) == positive)
    assert out.proba is not None
    return np.asarray(np.argmax(out.proba, axis=1) == positive)


def run(ctx: ModelContext) -> R.Fairness:
    """The fairness sub-section for one model (and its baseline)."""
    from mlci.evaluate.alignment import label_key
    from mlci.suggest import did_you_mean

    loaded = ctx.loaded
    evaluation = loaded.config.evaluation
    cfg = evaluation.fairness
    assert cfg is not None
    where = ("evaluation", "fairness")
    task = ctx.task
    if task != "binary":
        raise loaded.error(
            where,
            f"fairness rates need a binary classifier, but '{ctx.name}' is a {task} model",
            tip="remove evaluation.fairness, or compare slices by metric in evaluation.slices",
        )
    aligned = ctx.aligned
    classes = list(aligned.classes or ())
    positive = 1
    if cfg.positive_class is not None:
        keys = [label_key(c) for c in classes]
        wanted = label_key(cfg.positive_class)
        if wanted not in keys:
            raise loaded.error(
                (*where, "positive_class"),
                f"the model has no class {cfg.positive_class!r}{did_you_mean(wanted, keys)}; "
                f"classes: {', '.join(keys)}",
            )
        positive = keys.index(wanted)
    data = ctx.data
    weight = data.columns[data.weight] if data.weight else None
    boot = (
        BucketBootstrap(evaluation.bootstrap, seed=evaluation.seed)
        if evaluation.bootstrap
        else None
    )
    actual = aligned.y_true == positive
    candidate = _favourable(aligned.outputs[0], positive)
    baseline = _favourable(aligned.outputs[1], positive) if ctx.baseline is not None else None
    min_size = cfg.min_group_size or evaluation.min_slice_size
    metrics = [m for m in FAIRNESS_METRICS if m in cfg.metrics]
    features = []
    for j, spec in enumerate(cfg.feature_specs()):
        at = (*where, "features", j)
        if spec.feature not in data.columns:
            raise loaded.error(
                at,
                f"no column '{spec.feature}' in {data.display}"
                f"{did_you_mean(spec.feature, data.columns)}",
            )
        try:
            groups = groups_of(data.columns[spec.feature], data.kinds[spec.feature], spec)
        except ValueError as exc:
            raise loaded.error(at, str(exc)) from None
        if len(groups.names) > cfg.max_groups:
            raise loaded.error(
                at,
                f"'{spec.feature}' has {len(groups.names)} distinct values, more than "
                f"max_groups ({cfg.max_groups})",
                tip="give numeric features bins: {feature: age, bins: [18, 30, 50, 100]}",
            )
        ctx.progress(f"fairness: {spec.feature}")
        features.append(
            feature_fairness(
                spec.feature,
                groups,
                actual,
                candidate,
                baseline,
                weight=weight,
                metrics=metrics,
                min_group_size=min_size,
                boot=boot,
                confidence=evaluation.confidence,
                keys=data.unit_keys,
            )
        )
    return R.Fairness(
        positive_class=jsonable(classes[positive]) if classes else positive,
        min_group_size=min_size,
        rates=metrics,
        features=features,
    )
