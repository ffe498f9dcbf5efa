"""Permutation importance of every feature, for the candidate and the baseline.

A feature's importance to a model is how much worse the model gets, on the evaluation's
metric, when that feature's values are shuffled across rows (Breiman 2001; scikit-learn's
``permutation_importance``): model-agnostic, and it needs nothing but predictions. Each
feature is shuffled ``repeats`` times on a seeded sample of at most ``max_rows`` rows, with
the same shuffles for both models. Intervals are percentile intervals of the evaluation's
bucketed Poisson bootstrap over the rows, applied to the average over repeats; both models
see the same replicates, so "the candidate relies more (or less) on this feature than the
baseline" is judged on a paired interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mlci.evaluate.bootstrap import percentile_interval
from mlci.evaluate.evaluator import Evaluator, Outputs
from mlci.evaluate.metrics import METRICS
from mlci.models.interface import Predictions
from mlci.results import importance as R
from mlci.results.base import Estimate

if TYPE_CHECKING:
    from mlci.models.interface import Model
    from mlci.stages import ModelContext


# Bootstrap replicates of the importance intervals: every feature and shuffle is scored on
# them, so they cost more here than in the evaluation; 200 give stable 95% intervals.
REPLICATES = 200


class OutputsOf:
    """Model k's predictions as outputs in the candidate's class order, as the evaluation
    aligns them; the class mapping is worked out once per model, not once per shuffle."""

    def __init__(
        self,
        task: str,
        classes: Sequence[object] | None,
        target: np.ndarray,
        predictions: Sequence[Predictions],
    ) -> None:
        self.task = task
        self.target = target
        self.predictions = predictions
        self.classes = classes
        self.keys: dict[str, int] = {}
        if classes is not None:
            from mlci.evaluate.alignment import label_key

            self.keys = {label_key(c): j for j, c in enumerate(classes)}

    def __call__(self, k: int, pred: Predictions) -> Outputs:
        if self.task == "regression" or self.classes is None or pred.classes is None:
            from mlci.evaluate.alignment import align

            return align(self.task, self.target, [self.predictions[0], pred]).outputs[1]  # type: ignore[arg-type]
        from mlci.evaluate.alignment import label_key

        order = [[label_key(c) for c in pred.classes].index(label_key(c)) for c in self.classes]
        proba = None if pred.proba is None else np.asarray(pred.proba, dtype=np.float64)[:, order]
        labels = None
        if pred.labels is not None:
            uniques, inverse = np.unique(np.asarray(pred.labels), return_inverse=True)
            lookup = np.array([self.keys[label_key(u)] for u in uniques], dtype=np.int64)
            labels = lookup[inverse.reshape(-1)]
        elif proba is not None:
            labels = np.argmax(proba, axis=1)
        return Outputs(labels=labels, proba=proba)


def take(pred: Predictions, rows: np.ndarray) -> Predictions:
    """The predictions of some rows."""
    return Predictions(
        labels=None if pred.labels is None else np.asarray(pred.labels)[rows],
        proba=None if pred.proba is None else np.asarray(pred.proba)[rows],
        classes=pred.classes,
        values=None if pred.values is None else np.asarray(pred.values)[rows],
    )


def sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` row indices, sorted, drawn without replacement (all when fewer)."""
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng([seed, 4099])
    return np.sort(rng.choice(n, max_rows, replace=False))


def _reliance(delta: Estimate) -> R.Reliance:
    if delta.value is None or not np.isfinite(delta.value):
        return "undefined"
    if delta.ci_low is None or delta.ci_high is None:
        return "no detectable difference" if delta.value == 0 else "undefined"
    if delta.ci_low > 0:
        return "more"
    if delta.ci_high < 0:
        return "less"
    return "no detectable difference"


def _estimate(value: float, reps: np.ndarray | None, confidence: float) -> Estimate:
    if reps is None or not np.isfinite(value):
        return Estimate(value=value, ci_low=None, ci_high=None)
    low, high = percentile_interval(reps, confidence, value)
    return Estimate(value=value, ci_low=low, ci_high=high)


class Scorer:
    """One metric of outputs on fixed rows, point value and bootstrap replicates."""

    def __init__(self, evaluator: Evaluator, metric: str) -> None:
        self.evaluator = evaluator
        self.metric = metric
        # Importance is a loss: positive when shuffling makes the model worse.
        self.sign = 1.0 if METRICS[metric].higher_is_better else -1.0

    def score(self, out: Outputs) -> tuple[float, np.ndarray | None]:
        value = self.evaluator.point(out)[self.metric]
        if self.evaluator.n_boot == 0:
            return self.sign * value, None
        return self.sign * value, self.sign * self.evaluator.replicates(out)[self.metric]


def permutation_importance(
    models: Sequence[tuple[Model, Sequence[str], Predictions]],
    columns: dict[str, np.ndarray],
    convert: Callable[[int, Predictions], Outputs],
    scorer: Scorer,
    features: Sequence[str],
    *,
    repeats: int,
    seed: int,
    confidence: float,
    progress: Callable[[str], None] | None = None,
) -> list[R.FeatureImportance]:
    """Importance of each feature to each model (the first is the candidate).

    Each model comes with the columns it reads and its predictions on the sampled rows
    ``columns``; ``convert(k, predictions)`` turns model k's predictions into the outputs the
    scorer reads.
    """
    n = len(next(iter(columns.values())))
    frames = [{f: columns[f] for f in reads} for _, reads, _ in models]
    base = [scorer.score(convert(k, pred)) for k, (_, _, pred) in enumerate(models)]
    rng = np.random.default_rng([seed, 6151])
    results: list[R.FeatureImportance] = []
    for feature in features:
        if progress is not None:
            progress(f"importance: {feature}")
        shuffles = [rng.permutation(n) for _ in range(repeats)]
        per_model: list[tuple[float, np.ndarray | None]] = []
        for k, (model, _, _) in enumerate(models):
            if feature not in frames[k]:
                per_model.append((0.0, None if base[k][1] is None else np.zeros_like(base[k][1])))
                continue
            values: list[float] = []
            reps: list[np.ndarray] = []
            for order in shuffles:
                frame = {**frames[k], feature: frames[k][feature][order]}
                value, replicates = scorer.score(convert(k, model.predict(frame)))
                values.append(base[k][0] - value)
                if replicates is not None and base[k][1] is not None:
                    reps.append(base[k][1] - replicates)
            per_model.append((float(np.mean(values)), np.mean(reps, axis=0) if reps else None))
        cand_value, cand_reps = per_model[0]
        entry: dict[str, object] = {
            "feature": feature,
            "candidate": _estimate(cand_value, cand_reps, confidence),
        }
        if len(models) > 1:
            base_value, base_reps = per_model[1]
            paired = None if cand_reps is None or base_reps is None else cand_reps - base_reps
            delta = _estimate(cand_value - base_value, paired, confidence)
            entry.update(
                baseline=_estimate(base_value, base_reps, confidence),
                delta=delta,
                reliance=_reliance(delta),
            )
        results.append(R.FeatureImportance.model_validate(entry))
    results.sort(key=lambda f: -(f.candidate.value or 0.0))
    return results


def run(ctx: ModelContext, primary: str) -> R.Importance:
    """The importance sub-section for one model (and its baseline)."""
    from mlci.evaluate.metrics import check_metric_names
    from mlci.suggest import did_you_mean

    loaded = ctx.loaded
    evaluation = loaded.config.evaluation
    cfg = evaluation.importance
    assert cfg is not None
    where = ("evaluation", "importance")
    aligned = ctx.aligned
    task = ctx.task
    metric = cfg.metric or primary
    try:
        check_metric_names([metric], task, aligned.outputs[0].proba is not None)
    except ValueError as exc:
        raise loaded.error((*where, "metric"), str(exc)) from None
    data = ctx.data
    models = [ctx.candidate] if ctx.baseline is None else [ctx.candidate, ctx.baseline]
    reads = [list(m.info.features or data.features) for m in models]
    read = [f for r in reads for f in r]
    if cfg.features is not None:
        for j, f in enumerate(cfg.features):
            if f not in data.columns:
                raise loaded.error(
                    (*where, "features", j),
                    f"no column '{f}' in {data.display}{did_you_mean(f, data.columns)}",
                )
        features = list(cfg.features)
    else:
        features = list(dict.fromkeys(read))
    rows = sample_rows(data.rows, cfg.max_rows, evaluation.seed)
    columns = {f: data.columns[f][rows] for f in dict.fromkeys([*read, *features])}
    predictions = [take(p, rows) for p in ctx.predictions]
    target = data.columns[data.target][rows]
    weight = data.columns[data.weight][rows] if data.weight else None

    convert = OutputsOf(task, aligned.classes, target, predictions)
    evaluator = Evaluator(
        task,
        aligned.y_true[rows],
        metrics=[metric],
        n_classes=None if aligned.classes is None else len(aligned.classes),
        weight=weight,
        n_boot=min(evaluation.bootstrap, REPLICATES),
        confidence=evaluation.confidence,
        seed=evaluation.seed,
    )
    ranked = permutation_importance(
        list(zip(models, reads, predictions, strict=False)),
        columns,
        convert,
        Scorer(evaluator, metric),
        features,
        repeats=cfg.repeats,
        seed=evaluation.seed,
        confidence=evaluation.confidence,
        progress=ctx.progress,
    )
    return R.Importance(metric=metric, repeats=cfg.repeats, rows=len(rows), features=ranked)
