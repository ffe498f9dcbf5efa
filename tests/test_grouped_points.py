"""Evaluating many disjoint slices at once equals evaluating them one by one."""

from __future__ import annotations

import math
import warnings
from unittest.mock import patch

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.evaluate import metrics as M
from mlci.evaluate import slicing
from mlci.evaluate.evaluator import Evaluator, Outputs

# Metrics whose statistics are counts (or exact score tables): batched values are identical.
EXACT = {
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "f1_macro",
    "precision_weighted",
    "roc_auc",
    "pr_auc",
    "ece",
}


def assert_same(grouped: list[dict[str, float]], single: list[dict[str, float]]) -> None:
    assert len(grouped) == len(single)
    for a, b in zip(grouped, single, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            if math.isnan(b[name]):
                assert math.isnan(a[name]), name
            elif name in EXACT:
                assert a[name] == b[name], name
            else:
                # Sums of per-row losses are added in another order.
                assert a[name] == pytest.approx(b[name], rel=1e-12, abs=1e-12), name


def assert_same_table(a: M.ScoreTable, b: M.ScoreTable) -> None:
    assert np.array_equal(a.scores, b.scores)
    assert np.array_equal(a.pos, b.pos)
    assert np.array_equal(a.neg, b.neg)


SCORES = st.sampled_from(
    [
        # Continuous float64, float32 grid (many ties), a few levels, zeros of both signs.
        lambda rng, n: rng.random(n),
        lambda rng, n: rng.random(n).astype(np.float32).astype(np.float64),
        lambda rng, n: rng.choice([0.0, 0.1, 0.5, 1.0], n),
        lambda rng, n: rng.choice([-0.0, 0.0, 1e-310, 0.3], n),
    ]
)


@given(st.integers(0, 2**32 - 1), st.integers(0, 300), SCORES)
@settings(max_examples=80, deadline=None)
def test_packed_score_tables_equal_the_argsort_tables(seed: int, n: int, make) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    scores, positive = make(rng, n), rng.random(n) < 0.4
    # Unit weights take the general (argsort) path; no weights the packed-key path.
    assert_same_table(M.score_table(scores, positive), M.score_table(scores, positive, np.ones(n)))
    groups = rng.integers(0, 5, n)
    for weight in (None, rng.random(n)):
        tables = M.grouped_summaries(scores, positive, weight, groups, 5, lambda table: table)
        for g, table in enumerate(tables):
            rows = groups == g
            w = None if weight is None else weight[rows]
            assert_same_table(table, M.score_table(scores[rows], positive[rows], w))


def test_negative_scores_keep_the_general_path() -> None:
    scores = np.array([-2.0, -1.0, 0.5, -1.0, np.inf])
    positive = np.array([True, False, True, True, False])
    assert M.score_keys(scores, positive) is None
    table = M.score_table(scores, positive)
    assert table.scores.tolist() == [-2.0, -1.0, 0.5, np.inf]
    assert table.pos.tolist() == [1, 1, 1, 0]
    assert table.neg.tolist() == [0, 1, 0, 1]


def _outputs(task: str, rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, Outputs]:
    if task == "regression":
        y = rng.normal(size=n)
        return y, Outputs(values=y + rng.normal(size=n))
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    # Rounded probabilities make tied scores.
    proba = np.round(proba, 2)
    proba /= proba.sum(axis=1, keepdims=True)
    return y, Outputs(labels=rng.integers(0, k, n), proba=proba)


METRICS = {
    "binary": [
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "ece",
    ],
    "multiclass": ["accuracy", "f1_macro", "precision_weighted", "roc_auc", "log_loss", "brier"],
    "regression": ["mae", "rmse", "r2", "mape"],
}


@given(
    st.sampled_from(sorted(METRICS)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 400),
    st.integers(1, 8),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_point_groups_equal_point_per_group(
    task: str, seed: int, n: int, n_groups: int, weighted: bool, threaded: bool
) -> None:
    rng = np.random.default_rng(seed)
    k = 3 if task == "multiclass" else 2
    y, out = _outputs(task, rng, n, k)
    weight = rng.random(n) if weighted else None
    ev = Evaluator(
        task,  # type: ignore[arg-type]
        y,
        metrics=METRICS[task],
        n_classes=None if task == "regression" else k,
        weight=weight,
        n_boot=0,
    )
    # -1: rows in no group; the last group may be empty.
    groups = rng.integers(-1, n_groups, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = [ev.point(out, rows=groups == g) for g in range(n_groups)]
    # Threads start only for a million rows or more; here they start for any number.
    with patch.object(M, "THREADED_ROWS", 0 if threaded else M.THREADED_ROWS):
        grouped = ev.point_groups(out, groups, n_groups)
    assert_same(grouped, single)


def test_point_groups_match_scikit_learn() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    groups = rng.integers(0, 4, n)
    p1 = rng.random(n).astype(np.float32).astype(np.float64)
    y = (rng.random(n) < p1).astype(np.int64)
    labels = (p1 >= 0.5).astype(np.int64)
    out = Outputs(labels=labels, proba=np.column_stack([1.0 - p1, p1]))
    ev = Evaluator("binary", y, metrics=METRICS["binary"][:-1], n_boot=0)
    for g, got in enumerate(ev.point_groups(out, groups, 4)):
        rows = groups == g
        yt, yl, ys = y[rows], labels[rows], p1[rows]
        expected = {
            "accuracy": skm.accuracy_score(yt, yl),
            "balanced_accuracy": skm.balanced_accuracy_score(yt, yl),
            "precision": skm.precision_score(yt, yl),
            "recall": skm.recall_score(yt, yl),
            "f1": skm.f1_score(yt, yl),
            "roc_auc": skm.roc_auc_score(yt, ys),
            "pr_auc": skm.average_precision_score(yt, ys),
            "log_loss": skm.log_loss(yt, np.column_stack([1.0 - ys, ys])),
            "brier": skm.brier_score_loss(yt, ys),
        }
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("groups", "n_groups", "message"),
    [
        (np.zeros(3, dtype=np.int64), 2, "shape"),
        (np.zeros(4), 2, "integer"),
        (np.array([0, 1, 2, 0]), 2, r"\[-1, 2\)"),
        (np.array([0, -2, 1, 0]), 2, r"\[-1, 2\)"),
    ],
)
def test_point_groups_rejects_bad_groups(groups: np.ndarray, n_groups: int, message: str) -> None:
    ev = Evaluator("binary", np.array([0, 1, 1, 0]), metrics=["accuracy"], n_boot=0)
    out = Outputs(labels=np.array([0, 1, 0, 0]))
    with pytest.raises(ValueError, match=message):
        ev.point_groups(out, groups, n_groups)


COLUMNS = {
    "region": np.array(["north", "south", None, "north", "east", "south"], dtype=object),
    "n": np.array([1, 2, 3, 1, 2, 3]),
    "age": np.array([20.0, 30.0, 40.0, 50.0, 60.0, 70.0]),
}
KINDS = {"region": "categorical", "n": "numeric", "age": "numeric"}


@pytest.mark.parametrize(
    "spec",
    [
        {"feature": "region"},
        {"feature": "region", "values": ["south", "north"]},
        {"feature": "n", "values": [3], "name": "three"},
        {"cross": ["region", "n"]},
    ],
)
def test_partition_puts_each_row_in_its_slice(spec: dict[str, object]) -> None:
    slices = slicing.expand(spec, COLUMNS, KINDS)
    groups = slicing.partition(slices)
    assert groups is not None
    expected = np.full(6, -1)
    for i, s in enumerate(slices):
        assert not (expected[s.mask] >= 0).any(), "slices of a partition are disjoint"
        expected[s.mask] = i
    assert groups.tolist() == expected.tolist()


def test_cross_slices_are_the_pairs_present() -> None:
    slices = slicing.expand({"cross": ["region", "n"]}, COLUMNS, KINDS)
    assert [(s.name, s.mask.tolist()) for s in slices] == [
        ("region=east, n=2", [False, False, False, False, True, False]),
        ("region=north, n=1", [True, False, False, True, False, False]),
        ("region=south, n=2", [False, True, False, False, False, False]),
        ("region=south, n=3", [False, False, False, False, False, True]),
    ]


def test_no_partition_for_masks() -> None:
    assert (
        slicing.partition(slicing.expand({"feature": "age", "bins": [0, 45, 90]}, COLUMNS, KINDS))
        is None
    )
    assert (
        slicing.partition(slicing.expand({"name": "old", "where": "age > 45"}, COLUMNS, KINDS))
        is None
    )
    assert slicing.partition([]) is None
    # Slices of two different columns are not one partition.
    two = slicing.expand({"feature": "region"}, COLUMNS, KINDS) + slicing.expand(
        {"feature": "n"}, COLUMNS, KINDS
    )
    assert slicing.partition(two) is None
