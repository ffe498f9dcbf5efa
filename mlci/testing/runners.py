"""The tests stage's runners for multivariate drift, data integrity and the trivial model.

Each runner takes the stage's :class:`~mlci.testing.stage.Runner` (shared predictions, the
reference data, config errors pointing at mlci.yaml) and yields ``(id, outcome, seconds)``
for every result of one configured check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.testing.config import INTEGRITY_PARTS, CheckConfig
from mlci.testing.outcome import Outcome

if TYPE_CHECKING:
    from mlci.testing.stage import Runner

Results = Iterator[tuple[str, Outcome, float]]
# Parts of the integrity check that compare with the reference data.
NEEDS_REFERENCE = frozenset({"leakage", "new_categories", "relation_changed"})


def _reference(runner: Runner) -> tuple[dict[str, np.ndarray], dict[str, str], str] | None:
    if runner.ctx.loaded.config.data.reference is None:
        return None
    return runner._reference


def _shared_kinds(runner: Runner, ref_kinds: dict[str, str], features: list[str]) -> dict[str, str]:
    """numeric where a feature is numeric in both datasets, categorical otherwise."""
    return {
        f: "numeric"
        if runner.data.kinds.get(f) == "numeric" and ref_kinds.get(f) == "numeric"
        else "categorical"
        for f in features
    }


# --------------------------------------------------------------------------- multivariate drift


def multivariate_drift(runner: Runner, i: int, check: CheckConfig) -> Results:
    from mlci.testing.domain import MissingDependency, check_multivariate_drift, require_sklearn

    try:
        require_sklearn()
    except MissingDependency:
        raise runner.error(
            i,
            "kind",
            "a multivariate_drift check trains a classifier with scikit-learn, which is not "
            "installed",
            tip="pip install 'mlci[sklearn]'",
        ) from None
    ref_columns, ref_kinds, _ = runner.reference(i, check.kind)
    features = runner.data_features(i, check, ref_columns)
    kinds = _shared_kinds(runner, ref_kinds, features)
    outcome, took = runner.timed(
        i,
        lambda: check_multivariate_drift(
            ref_columns,
            runner.data.columns,
            features,
            kinds,
            max_auc=check.max_auc,
            max_rows=check.max_rows,
            folds=check.folds,
            evidence=check.evidence,
            confidence=check.confidence,
            seed=check.seed,
        ),
    )
    yield check.id or "multivariate_drift", outcome, took


# --------------------------------------------------------------------------- integrity


def integrity(runner: Runner, i: int, check: CheckConfig) -> Results:
    from mlci.testing import integrity as I

    parts = list(check.checks or INTEGRITY_PARTS)
    prefix = check.id or "integrity"
    reference = _reference(runner)
    data = runner.data
    current = data.columns
    if reference is None:
        asked = [p for p in parts if p in NEEDS_REFERENCE and check.checks is not None]
        if asked:
            raise runner.error(
                i,
                "checks",
                f"integrity part '{asked[0]}' compares with reference data, but data.reference "
                "is not set",
                tip="set data.reference to the training data (CSV or Parquet)",
            )
        ref_columns: dict[str, np.ndarray] = {}
        ref_kinds: dict[str, str] = {}
        features = runner.data_features(i, check, {f: current[f] for f in data.features})
    else:
        ref_columns, ref_kinds, _ = reference
        features = runner.data_features(i, check, ref_columns)
    kinds = _shared_kinds(runner, ref_kinds or dict(data.kinds), features)
    categorical = [f for f in features if kinds[f] != "numeric" and data.kinds[f] != "bool"]
    max_share = check.max_share if check.max_share is not None else 0.0
    datasets = {"evaluation": current}
    if reference is not None:
        datasets["reference"] = ref_columns
    target = data.target
    leak_columns = [*features, *([target] if target in ref_columns else [])]
    runs: dict[str, Callable[[], Outcome]] = {
        "leakage": partial(
            I.check_leakage, ref_columns, current, leak_columns, max_share=max_share
        ),
        "new_categories": partial(
            I.check_new_categories, ref_columns, current, categorical, max_share=max_share
        ),
        "spellings": partial(I.check_spellings, datasets, categorical),
        "conflicting_labels": partial(_conflicting, runner, ref_columns, features, max_share),
        "relation_changed": partial(_relation, runner, ref_columns, features, kinds, check),
        "constant": partial(
            I.check_constant, datasets, features, dominant_share=check.dominant_share
        ),
    }
    for part in parts:
        test_id = f"{prefix}:{part}"
        if part in NEEDS_REFERENCE and reference is None:
            yield test_id, Outcome("skipped", "needs data.reference to compare with"), 0.0
            continue
        outcome, took = runner.timed(i, runs[part])
        yield test_id, outcome, took


def _conflicting(
    runner: Runner, ref_columns: dict[str, np.ndarray], features: list[str], max_share: float
) -> Outcome:
    from mlci.testing.integrity import check_conflicting_labels

    if runner.ctx.task == "regression":
        return Outcome(
            "skipped", "equal features with different values of a continuous target is noise"
        )
    data = runner.data
    datasets: dict[str, tuple[Any, np.ndarray]] = {
        "evaluation": (data.columns, data.columns[data.target])
    }
    if data.target in ref_columns:
        labels = ref_columns[data.target]
        present = _present(labels)
        datasets["reference"] = ({f: ref_columns[f][present] for f in features}, labels[present])
    return check_conflicting_labels(datasets, features, max_share=max_share)


def _present(values: np.ndarray) -> np.ndarray:
    from mlci.data import missing_mask

    return ~missing_mask(values)


def _relation(
    runner: Runner,
    ref_columns: dict[str, np.ndarray],
    features: list[str],
    kinds: dict[str, str],
    check: CheckConfig,
) -> Outcome:
    from mlci.testing.encode import categorical_codes
    from mlci.testing.integrity import check_relation_changed

    data = runner.data
    if data.target not in ref_columns:
        return Outcome("skipped", f"the reference data has no target column '{data.target}'")
    task = runner.ctx.task
    present = _present(ref_columns[data.target])
    ref = {f: ref_columns[f][present] for f in features}
    ref_y_raw, cur_y_raw = ref_columns[data.target][present], data.columns[data.target]
    n_classes = 0
    if task == "regression":
        ref_y = np.asarray(ref_y_raw, dtype=np.float64)
        cur_y = np.asarray(cur_y_raw, dtype=np.float64)
    else:
        (ref_y, cur_y), labels = categorical_codes(ref_y_raw, cur_y_raw)
        n_classes = len(labels)
    return check_relation_changed(
        ref,
        ref_y,
        data.columns,
        cur_y,
        features,
        kinds,
        task,
        n_classes=n_classes,
        max_change=check.max_change,
        bins=check.bins,
        evidence=check.evidence,
        n_boot=check.bootstrap,
        confidence=check.confidence,
        seed=check.seed,
    )


# --------------------------------------------------------------------------- trivial model


def trivial_model(runner: Runner, i: int, check: CheckConfig) -> Results:
    outcome, took = runner.timed(i, lambda: _trivial(runner, i, check))
    yield check.id or "trivial_model", outcome, took


def default_metric(primary: str | None, task: str, has_proba: bool) -> str:
    """The evaluation's primary metric, or the one it would default to."""
    if primary is not None:
        return primary
    if task == "regression":
        return "rmse"
    return "roc_auc" if has_proba else "accuracy"


def _trivial(runner: Runner, i: int, check: CheckConfig) -> Outcome:
    from mlci.evaluate.alignment import label_key
    from mlci.evaluate.metrics import check_metric_names
    from mlci.testing.trivial import check_trivial_model, trivial_outputs

    ctx = runner.ctx
    aligned = ctx.aligned
    task = ctx.task
    candidate = aligned.outputs[0]
    has_proba = candidate.proba is not None
    config = ctx.loaded.config
    metric = check.metric or default_metric(config.evaluation.primary_metric, task, has_proba)
    try:
        check_metric_names([metric], task, has_proba)
    except ValueError as exc:
        field = "metric" if check.metric else "kind"
        raise runner.error(i, field, str(exc)) from None
    data = runner.data
    weight = data.columns[data.weight] if data.weight else None
    n_classes = None if aligned.classes is None else len(aligned.classes)
    prior: np.ndarray = aligned.y_true
    prior_weight = weight
    source = "evaluation"
    reference = _reference(runner)
    if reference is not None and data.target in reference[0]:
        labels = reference[0][data.target]
        labels = labels[_present(labels)]
        if task == "regression":
            prior, prior_weight, source = np.asarray(labels, dtype=np.float64), None, "reference"
        else:
            assert aligned.classes is not None
            index = {label_key(c): j for j, c in enumerate(aligned.classes)}
            mapped = np.array([index.get(label_key(v), -1) for v in labels], dtype=np.int64)
            if (mapped >= 0).any():
                prior, prior_weight, source = mapped[mapped >= 0], None, "reference"
    trivial, name = trivial_outputs(task, data.rows, n_classes, prior, prior_weight)
    outcome = check_trivial_model(
        task,
        aligned.y_true,
        candidate,
        aligned.outputs[1] if ctx.baseline is not None else None,
        trivial,
        f"{name}, from the {source} data",
        metric=metric,
        n_classes=n_classes,
        weight=weight,
        margin=check.margin,
        evidence=check.evidence,
        n_boot=check.bootstrap,
        confidence=check.confidence,
        seed=check.seed,
    )
    return outcome


EXTRA_CHECKS: dict[str, Callable[[Runner, int, CheckConfig], Results]] = {
    "multivariate_drift": multivariate_drift,
    "integrity": integrity,
    "trivial_model": trivial_model,
}
