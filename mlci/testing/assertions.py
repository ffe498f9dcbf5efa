"""Assertion helpers for model tests written with pytest.

Each helper runs the same check as the declarative test of the same kind and raises
``AssertionError`` with the same message (which rows broke it and by how much); on success
it returns the :class:`~mlci.testing.outcome.Outcome` for further inspection::

    from mlci.testing import assert_invariant

    def test_id_does_not_matter(mlci_model, mlci_data):
        assert_invariant(mlci_model, mlci_data, "application_id")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.testing import checks as C
from mlci.testing import data_checks as D
from mlci.testing import perturb as P
from mlci.testing.outcome import Outcome

if TYPE_CHECKING:
    from mlci.config import LoadedConfig
    from mlci.data import Dataset
    from mlci.models.interface import Model

Rows = np.ndarray | Sequence[int] | None

__all__ = [
    "assert_directional",
    "assert_invariant",
    "assert_metric_at_least",
    "assert_no_drift",
    "assert_probabilities_valid",
    "assert_robust",
    "load_reference",
]


def _check(outcome: Outcome) -> Outcome:
    __tracebackhide__ = True
    if outcome.status != "passed":
        raise AssertionError(outcome.message)
    return outcome


def _rows(rows: Rows, n: int) -> np.ndarray | None:
    if rows is None:
        return None
    array = np.asarray(rows)
    if array.dtype == bool:
        if array.shape != (n,):
            raise ValueError(f"a row mask needs {n} entries, got {array.shape}")
        return np.flatnonzero(array)
    return array.astype(np.intp)


def _frame(
    model: Model, data: Dataset, rows: np.ndarray | None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    from mlci.stages import model_frame

    frame = dict(model_frame(model, data))
    if rows is None:
        return frame, np.arange(1, data.rows + 1)
    return {k: v[rows] for k, v in frame.items()}, rows + 1


def _std(data: Dataset, feature: str) -> float:
    values = np.asarray(data.columns[feature], dtype=np.float64)
    s = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
    return s if s > 0 else 1.0


def _dtype(model: Model, feature: str) -> str:
    return next((s.dtype for s in model.info.inputs if s.name == feature), "float")


def load_reference(loaded: LoadedConfig, data: Dataset) -> Dataset:
    """The reference dataset of ``data.reference``, with the evaluation data's roles."""
    from dataclasses import replace

    from mlci.data import read_columns
    from mlci.errors import ConfigError
    from mlci.hashing import sha256_file

    path = loaded.config.data.reference
    if path is None:
        raise ConfigError(f"{loaded.path}: data.reference is not set")
    fmt, _, columns, kinds = read_columns(path)
    return replace(
        data,
        path=path,
        display=str(path),
        format=fmt,
        sha256=sha256_file(path),
        columns=columns,
        kinds=kinds,
        features=tuple(f for f in data.features if f in columns),
    )


def assert_metric_at_least(
    model: Model, data: Dataset, metric: str, minimum: float, *, rows: Rows = None
) -> Outcome:
    """``metric`` of ``model`` on ``data`` (or the chosen rows) is at least ``minimum``."""
    from mlci.evaluate.alignment import align, infer_task
    from mlci.evaluate.evaluator import Evaluator
    from mlci.stages import model_frame

    idx = _rows(rows, data.rows)
    pred = model.predict(model_frame(model, data))
    task = infer_task(pred, model.info.task)
    aligned = align(task, data.columns[data.target], [pred])
    if task != "regression":
        task = (
            "binary" if aligned.classes is not None and len(aligned.classes) == 2 else "multiclass"
        )
    evaluator = Evaluator(
        task,
        aligned.y_true,
        metrics=[metric],
        n_classes=len(aligned.classes) if aligned.classes is not None else None,
        weight=data.columns[data.weight] if data.weight else None,
        n_boot=0,
    )
    value = evaluator.estimate(aligned.outputs[0], idx)[metric].value
    n = data.rows if idx is None else len(idx)
    ok = value == value and value >= minimum
    message = f"{metric} is {value:.4g} on {n:,} rows, " + (
        f">= {minimum:g}" if ok else f"below the minimum {minimum:g} by {minimum - value:.4g}"
    )
    return _check(Outcome("passed" if ok else "failed", message, value, minimum, {"rows": n}))


def assert_invariant(
    model: Model,
    data: Dataset,
    feature: str,
    *,
    perturb: str = "shuffle",
    within: str | None = None,
    value: Any = None,
    tolerance: float = 1e-6,
    max_rate: float = 0.0,
    rows: Rows = None,
    seed: int = 0,
    class_: Any = None,
) -> Outcome:
    """Shuffling ``feature`` (within ``within`` groups), or replacing it by ``value``, changes
    no score by more than ``tolerance`` in more than ``max_rate`` of the rows."""
    idx = _rows(rows, data.rows)
    frame, numbers = _frame(model, data, idx)
    if feature not in frame:
        frame[feature] = data.columns[feature] if idx is None else data.columns[feature][idx]
    base = model.predict(frame)
    values = frame[feature]
    if perturb == "replace":
        perturbed = P.replace(values, value)
        how = f"replacing with {value!r}"
    else:
        groups = None
        if within is not None:
            groups = data.columns[within] if idx is None else data.columns[within][idx]
        perturbed = P.shuffle(values, np.random.default_rng(seed), groups)
        how = "shuffling" + (f" within '{within}'" if within else "")
    column = C.class_column(base, class_, single=False)
    return _check(
        C.invariance(
            model.predict,
            frame,
            base,
            feature,
            perturbed,
            how=how,
            tolerance=tolerance,
            max_rate=max_rate,
            column=column,
            rows=numbers,
        )
    )


def assert_directional(
    model: Model,
    data: Dataset,
    feature: str,
    *,
    direction: str = "increasing",
    step: float | None = None,
    tolerance: float = 1e-6,
    max_rate: float = 0.0,
    rows: Rows = None,
    class_: Any = None,
) -> Outcome:
    """Raising ``feature`` by ``step`` (default one standard deviation) does not lower the score
    (``direction="increasing"``) or raise it (``"decreasing"``)."""
    if direction not in ("increasing", "decreasing"):
        raise ValueError(f"direction must be 'increasing' or 'decreasing', got {direction!r}")
    idx = _rows(rows, data.rows)
    frame, numbers = _frame(model, data, idx)
    base = model.predict(frame)
    size = step if step is not None else _std(data, feature)
    if _dtype(model, feature) in ("int", "bool"):
        size = float(max(1, round(size)))
    column = C.class_column(base, class_, single=True)
    return _check(
        C.directional(
            model.predict,
            frame,
            base,
            feature,
            step=size,
            direction=direction,
            tolerance=tolerance,
            max_rate=max_rate,
            column=column,
            rows=numbers,
        )
    )


def assert_robust(
    model: Model,
    data: Dataset,
    *,
    features: Sequence[str] | None = None,
    noise: float = 0.1,
    max_rate: float = 0.05,
    tolerance: float | None = None,
    rows: Rows = None,
    seed: int = 0,
) -> Outcome:
    """Uniform noise of at most ``noise`` standard deviations on numeric features flips the
    label of at most ``max_rate`` of the rows; a regressor's prediction counts as flipped
    when it moves by more than ``tolerance`` (default: ``2 * noise`` standard deviations of
    the target)."""
    from mlci.testing.config import REGRESSION_ROBUSTNESS_FACTOR

    idx = _rows(rows, data.rows)
    frame, numbers = _frame(model, data, idx)
    chosen = (
        list(features)
        if features is not None
        else [f for f in frame if data.kinds.get(f) == "numeric"]
    )
    base = model.predict(frame)
    if tolerance is None:
        regression = base.values is not None
        tolerance = (
            REGRESSION_ROBUSTNESS_FACTOR * noise * _std(data, data.target) if regression else 0.0
        )
    return _check(
        C.robustness(
            model.predict,
            frame,
            base,
            chosen,
            noise=noise,
            stds={f: _std(data, f) for f in chosen},
            integer=[f for f in chosen if _dtype(model, f) == "int"],
            max_rate=max_rate,
            tolerance=tolerance,
            seed=seed,
            rows=numbers,
        )
    )


def assert_probabilities_valid(model: Model, data: Dataset, *, tolerance: float = 1e-4) -> Outcome:
    """Every probability is in [0, 1] and every row sums to 1 within ``tolerance``."""
    frame, numbers = _frame(model, data, None)
    return _check(C.contract_probabilities(model.predict(frame), tolerance, numbers))


def assert_no_drift(
    reference: Dataset,
    data: Dataset,
    features: Sequence[str] | None = None,
    *,
    wasserstein: float | None = 0.1,
    jensen_shannon: float | None = 0.1,
    psi: float | None = 0.2,
    ks_pvalue: float | None = None,
    chi2_pvalue: float | None = None,
    bins: int = 10,
    evidence: str = "interval",
) -> list[Outcome]:
    """No feature drifted between ``reference`` and ``data``, judged as the drift check
    judges it: by effect size on its interval (p-values only when their limits are set)."""
    chosen = (
        list(features)
        if features is not None
        else [f for f in data.features if f in reference.columns]
    )
    outcomes = [
        D.check_drift(
            f,
            reference.columns[f],
            data.columns[f],
            data.kinds[f],
            wasserstein=wasserstein,
            jensen_shannon=jensen_shannon,
            psi=psi,
            ks_pvalue=ks_pvalue,
            chi2_pvalue=chi2_pvalue,
            bins=bins,
            evidence=evidence,
        )
        for f in chosen
    ]
    failed = [o.message for o in outcomes if o.status != "passed"]
    if failed:
        raise AssertionError(
            f"{len(failed)} of {len(outcomes)} feature(s) drifted: " + "; ".join(failed)
        )
    return outcomes
