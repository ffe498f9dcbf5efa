"""Metric values against scikit-learn, and the mergeability of their statistics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.evaluate import metrics as M
from mlci.evaluate.evaluator import Evaluator, Outputs

REL = 1e-9
ABS = 1e-12
LABEL_METRICS = [n for n, f in M.FAMILY.items() if f == "confusion"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    k: int
    y: np.ndarray
    labels: np.ndarray
    proba: np.ndarray
    weight: np.ndarray | None

    @property
    def task(self) -> str:
        return "binary" if self.k == 2 else "multiclass"


def _proba(rng: np.random.Generator, n: int, k: int, coarse: bool) -> np.ndarray:
    p = rng.dirichlet(np.full(k, 0.7), size=n)
    if coarse:
        # Few distinct values, hence many tied scores (rounding first keeps ties after
        # renormalising, since equal rows stay equal).
        p = np.round(p, 1) + 0.01
    return p / p.sum(axis=1, keepdims=True)


@st.composite
def classification_cases(draw: st.DrawFn, k: int | None = None, min_n: int = 1) -> Case:
    k = k if k is not None else draw(st.integers(2, 5))
    n = draw(st.integers(min_n, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Draw the classes that actually occur, so some classes are often absent.
    occurring = rng.choice(k, size=draw(st.integers(1, k)), replace=False)
    y = rng.choice(occurring, size=n)
    right = rng.random(n) < draw(st.floats(0.0, 1.0))
    labels = np.where(right, y, rng.integers(0, k, size=n))
    proba = _proba(rng, n, k, coarse=draw(st.booleans()))
    if draw(st.booleans()):
        # Some certain predictions, right or wrong: log loss must clip like scikit-learn.
        sure = rng.random(n) < 0.2
        proba[sure] = np.eye(k)[rng.integers(0, k, size=n)][sure]
    weight = None
    kind = draw(st.sampled_from(["none", "uniform", "integer"]))
    if kind == "uniform":
        weight = rng.uniform(0.05, 5.0, size=n)
    elif kind == "integer":
        weight = rng.integers(1, 4, size=n).astype(np.float64)
    return Case(k, y.astype(np.int64), labels.astype(np.int64), proba, weight)


def sklearn_reference(case: Case, name: str) -> float:
    """The metric as scikit-learn computes it (our conventions where it has none)."""
    y, lab, p, w, k = case.y, case.labels, case.proba, case.weight, case.k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "accuracy":
            return skm.accuracy_score(y, lab, sample_weight=w)
        if name == "balanced_accuracy":
            return skm.balanced_accuracy_score(y, lab, sample_weight=w)
        verb, _, avg = name.partition("_")
        if verb in ("precision", "recall", "f1"):
            fn = getattr(skm, f"{verb}_score")
            if avg:
                return fn(y, lab, average=avg, sample_weight=w)
            return fn(y, lab, average="binary", pos_label=1, sample_weight=w)
        if name == "log_loss":
            return skm.log_loss(y, p, labels=list(range(k)), sample_weight=w)
        if name == "brier":
            if k == 2:
                return skm.brier_score_loss(y, p[:, 1], pos_label=1, sample_weight=w)
            return skm.brier_score_loss(y, p, labels=list(range(k)), sample_weight=w)
        if name == "roc_auc":
            if k == 2:
                return skm.roc_auc_score(y, p[:, 1], sample_weight=w)
            return skm.roc_auc_score(
                y, p, multi_class="ovr", average="macro", labels=list(range(k)), sample_weight=w
            )
        if name == "pr_auc":
            cols = [(y == 1, p[:, 1])] if k == 2 else [(y == c, p[:, c]) for c in range(k)]
            # Documented choice: NaN without positives, where scikit-learn says 0.0.
            if any(not truth.any() for truth, _ in cols):
                return float("nan")
            return float(
                np.mean(
                    [
                        skm.average_precision_score(truth, score, sample_weight=w)
                        for truth, score in cols
                    ]
                )
            )
        if name == "ece":
            return ece_direct(y, p, w)
    raise KeyError(name)


def ece_direct(y: np.ndarray, proba: np.ndarray, weight: np.ndarray | None) -> float:
    """ECE written out plainly: loop over 15 equal-width bins of top-class confidence."""
    w = np.ones(len(y)) if weight is None else weight
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, 16)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            wb = w[in_bin]
            acc = np.sum(wb * correct[in_bin]) / wb.sum()
            mean_conf = np.sum(wb * conf[in_bin]) / wb.sum()
            total += wb.sum() / w.sum() * abs(acc - mean_conf)
    return total


def assert_close(got: float, want: float, name: str, rel: float = REL) -> None:
    if np.isnan(want):
        assert np.isnan(got), (name, got, want)
    else:
        assert got == pytest.approx(want, rel=rel, abs=ABS), (name, got, want)


def evaluate(case: Case, names: list[str]) -> dict[str, float]:
    ev = Evaluator(case.task, case.y, metrics=names, n_classes=case.k, weight=case.weight, n_boot=0)
    return ev.point(Outputs(labels=case.labels, proba=case.proba))


# --------------------------------------------------------------- vs scikit-learn


@SETTINGS
@given(classification_cases())
def test_classification_metrics_match_sklearn(case: Case) -> None:
    names = M.valid_metrics(case.task, has_proba=True)  # type: ignore[arg-type]
    got = evaluate(case, names)
    for name in names:
        assert_close(got[name], sklearn_reference(case, name), name)


@SETTINGS
@given(classification_cases(k=2))
def test_binary_metrics_match_sklearn(case: Case) -> None:
    names = M.valid_metrics("binary", has_proba=True)
    got = evaluate(case, names)
    for name in names:
        assert_close(got[name], sklearn_reference(case, name), name)


@st.composite
def regression_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    y = rng.uniform(-100, 100, size=n) * scale
    if draw(st.booleans()):
        # Exact zeros exercise MAPE's epsilon.
        y[rng.random(n) < 0.1] = 0.0
    pred = y + rng.standard_normal(n) * scale * draw(st.sampled_from([0.0, 0.1, 10.0, 100.0]))
    weight = rng.uniform(0.05, 5.0, size=n) if draw(st.booleans()) else None
    return y, pred, weight


@SETTINGS
@given(regression_cases())
def test_regression_metrics_match_sklearn(case: tuple) -> None:
    y, pred, w = case
    ev = Evaluator("regression", y, metrics=["mae", "rmse", "r2", "mape"], weight=w, n_boot=0)
    got = ev.point(Outputs(values=pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = {
            "mae": skm.mean_absolute_error(y, pred, sample_weight=w),
            "rmse": skm.root_mean_squared_error(y, pred, sample_weight=w),
            "r2": skm.r2_score(y, pred, sample_weight=w),
            "mape": skm.mean_absolute_percentage_error(y, pred, sample_weight=w),
        }
    for name, value in want.items():
        assert_close(got[name], value, name)


@pytest.mark.parametrize(("pred", "r2"), [(5.0, 1.0), (4.0, 0.0)])
def test_r2_of_a_constant_target_follows_sklearn_force_finite(pred: float, r2: float) -> None:
    y = np.full(10, 5.0)
    ev = Evaluator("regression", y, metrics=["r2"], n_boot=0)
    got = ev.point(Outputs(values=np.full(10, pred)))["r2"]
    assert got == r2 == skm.r2_score(y, np.full(10, pred))


# ------------------------------------------------------------ explicit conventions


def test_no_predicted_positive_gives_zero_precision_like_sklearn_zero_division() -> None:
    y = np.array([0, 1, 1, 0])
    lab = np.zeros(4, dtype=np.int64)
    ev = Evaluator("binary", y, metrics=["precision", "recall", "f1", "precision_macro"], n_boot=0)
    got = ev.point(Outputs(labels=lab))
    assert got == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "precision_macro": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert skm.precision_score(y, lab) == 0.0
        assert skm.precision_score(y, lab, average="macro") == 0.25


def test_absent_class_is_left_out_of_macro_averages() -> None:
    # Class 2 of 3 never occurs, in truth or prediction: macro averages use classes 0 and 1.
    y = np.array([0, 0, 1, 1])
    lab = np.array([0, 1, 1, 1])
    ev = Evaluator(
        "multiclass", y, metrics=["recall_macro", "balanced_accuracy"], n_classes=3, n_boot=0
    )
    got = ev.point(Outputs(labels=lab))
    assert got["recall_macro"] == pytest.approx(0.75)
    assert got["balanced_accuracy"] == pytest.approx(0.75)


def test_ranking_metrics_are_nan_without_both_classes() -> None:
    y = np.zeros(5, dtype=np.int64)
    proba = np.column_stack([np.linspace(0.9, 0.1, 5), np.linspace(0.1, 0.9, 5)])
    ev = Evaluator("binary", y, metrics=["roc_auc", "pr_auc", "log_loss"], n_boot=0)
    got = ev.point(Outputs(proba=proba))
    assert np.isnan(got["roc_auc"]) and np.isnan(got["pr_auc"])
    assert np.isfinite(got["log_loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # scikit-learn's own answer without positives: 0.0, which mlci reports as undefined.
        assert skm.average_precision_score(y, proba[:, 1]) == 0.0


def test_every_metric_is_nan_on_an_empty_slice() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 20)
    names = M.valid_metrics("multiclass", True)
    ev = Evaluator("multiclass", y, metrics=names, n_classes=3, n_boot=0)
    out = Outputs(labels=y, proba=_proba(rng, 20, 3, False))
    got = ev.point(out, rows=np.zeros(20, dtype=bool))
    assert all(np.isnan(v) for v in got.values())


def test_labels_default_to_the_top_class_of_proba() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 50)
    proba = _proba(rng, 50, 3, False)
    ev = Evaluator("multiclass", y, metrics=["accuracy"], n_boot=0)
    assert ev.point(Outputs(proba=proba))["accuracy"] == pytest.approx(
        skm.accuracy_score(y, proba.argmax(axis=1))
    )


def test_ece_of_a_calibrated_and_an_overconfident_model() -> None:
    rng = np.random.default_rng(2)
    n = 200_000
    p1 = rng.uniform(0.0, 1.0, n)
    y = (rng.random(n) < p1).astype(np.int64)
    ev = Evaluator("binary", y, metrics=["ece"], n_boot=0)
    calibrated = ev.point(Outputs(proba=np.column_stack([1 - p1, p1])))["ece"]
    sharp = np.where(p1 > 0.5, 1.0, 0.0) * 0.999 + 0.0005
    overconfident = ev.point(Outputs(proba=np.column_stack([1 - sharp, sharp])))["ece"]
    assert calibrated < 0.01
    # Confidence ~1 while accuracy is 3/4: the gap is about a quarter.
    assert overconfident == pytest.approx(0.25, abs=0.01)


# ------------------------------------------------------------------- registry


def test_registry_is_consistent() -> None:
    assert set(M.METRICS) == set(M.FAMILY)
    for name, d in M.METRICS.items():
        assert d.name == name
        assert d.tasks <= {"binary", "multiclass", "regression"} and d.tasks
        assert d.description.endswith(".") and d.description.count(". ") == 0
        assert M.FAMILY[name] in M.FAMILIES
        assert d.needs_proba == (M.FAMILY[name] in ("proba", "calibration", "ranking"))
    for task in ("binary", "multiclass", "regression"):
        for has_proba in (True, False):
            names = M.default_metrics(task, has_proba)  # type: ignore[arg-type]
            M.check_metric_names(names, task, has_proba)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("names", "task", "has_proba", "pieces"),
    [
        (["accuracy", "acuracy"], "binary", True, ["'acuracy'", "'accuracy'"]),
        (["rmse"], "binary", True, ["'rmse'", "binary"]),
        (["f1"], "multiclass", True, ["'f1'", "'f1_macro'"]),
        (["roc_auc"], "binary", False, ["'roc_auc'", "probabilities"]),
        (["r_2"], "regression", False, ["'r_2'", "'r2'"]),
    ],
)
def test_check_metric_names_names_the_bad_metric_and_the_closest(
    names: list[str], task: str, has_proba: bool, pieces: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        M.check_metric_names(names, task, has_proba)  # type: ignore[arg-type]
    for piece in pieces:
        assert piece in str(info.value)


def test_evaluator_rejects_bad_inputs() -> None:
    y = np.array([0, 1, 1, 0])
    with pytest.raises(ValueError, match="'acc'"):
        Evaluator("binary", y, metrics=["acc"])
    with pytest.raises(ValueError, match="2 classes"):
        Evaluator("binary", y, metrics=["accuracy"], n_classes=3)
    ev = Evaluator("binary", y, metrics=["roc_auc"], n_boot=0)
    with pytest.raises(ValueError, match="probabilities"):
        ev.point(Outputs(labels=y))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.point(Outputs(proba=np.array([[0.5, 0.5], [1.5, -0.5], [0, 1], [1, 0]])))
    with pytest.raises(ValueError, match="row mask"):
        ev.point(Outputs(proba=np.full((4, 2), 0.5)), rows=np.ones(3, dtype=bool))


# ------------------------------------------------------- mergeable statistics


def _split(data: st.DataObject, n: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def _stats_close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)


@SETTINGS
@given(classification_cases(), st.data())
def test_classification_statistics_of_two_shards_add_up(case: Case, data: st.DataObject) -> None:
    a, b = _split(data, len(case.y))
    w = case.weight

    def part(idx: np.ndarray | None, fn, *arrays: np.ndarray) -> np.ndarray:
        sel = [x if idx is None else x[idx] for x in arrays]
        ws = w if idx is None or w is None else w[idx]
        return fn(*sel, ws)

    def conf(yy: np.ndarray, ll: np.ndarray, ww: np.ndarray | None) -> np.ndarray:
        return M.confusion_stats(yy, ll, case.k, ww)

    for fam, fn, arrays in [
        ("confusion", conf, (case.y, case.labels)),
        ("proba", M.proba_stats, (case.y, case.proba)),
        ("calibration", M.calibration_stats, (case.y, case.proba)),
    ]:
        merged = M.merge_stats(fam, part(a, fn, *arrays), part(b, fn, *arrays))
        _stats_close(merged, part(None, fn, *arrays))

    for c in range(case.k if case.k > 2 else 1):
        cls = c if case.k > 2 else 1
        truth = case.y == cls
        score = case.proba[:, cls]
        whole = M.score_table(score, truth, w)
        merged = M.merge_score_tables(
            M.score_table(score[a], truth[a], None if w is None else w[a]),
            M.score_table(score[b], truth[b], None if w is None else w[b]),
        )
        np.testing.assert_array_equal(merged.scores, whole.scores)
        _stats_close(merged.pos, whole.pos)
        _stats_close(merged.neg, whole.neg)


@SETTINGS
@given(regression_cases(), st.data())
def test_regression_statistics_merge_with_chan(case: tuple, data: st.DataObject) -> None:
    y, pred, w = case
    a, b = _split(data, len(y))

    def stats(idx: np.ndarray) -> np.ndarray:
        return M.regression_stats(y[idx], pred[idx], None if w is None else w[idx])[0]

    whole = M.regression_stats(y, pred, w)[0]
    merged = M.merge_regression_stats(stats(a), stats(b))
    scale = np.maximum(np.abs(whole), 1e-300)
    assert np.all(np.abs(merged - whole) <= 1e-9 * scale + 1e-12 * np.max(np.abs(y)) ** 2)
    combined = M.combine_regression_stats(np.stack([stats(a), stats(b)]), np.ones(2))
    assert np.all(np.abs(combined - whole) <= 1e-9 * scale + 1e-12 * np.max(np.abs(y)) ** 2)


@SETTINGS
@given(classification_cases(min_n=2), st.integers(1, 6), st.data())
def test_grouped_statistics_equal_per_group_statistics(
    case: Case, n_groups: int, data: st.DataObject
) -> None:
    group = np.array(
        data.draw(
            st.lists(st.integers(0, n_groups - 1), min_size=len(case.y), max_size=len(case.y))
        ),
        dtype=np.intp,
    )
    w = case.weight
    grouped = {
        "confusion": M.confusion_stats(case.y, case.labels, case.k, w, group, n_groups),
        "proba": M.proba_stats(case.y, case.proba, w, group, n_groups),
        "calibration": M.calibration_stats(case.y, case.proba, w, group, n_groups),
    }
    for g in range(n_groups):
        sel = group == g
        ws = None if w is None else w[sel]
        _stats_close(
            grouped["confusion"][g], M.confusion_stats(case.y[sel], case.labels[sel], case.k, ws)[0]
        )
        _stats_close(grouped["proba"][g], M.proba_stats(case.y[sel], case.proba[sel], ws)[0])
        _stats_close(
            grouped["calibration"][g], M.calibration_stats(case.y[sel], case.proba[sel], ws)[0]
        )
    # Metric functions keep leading batch axes: all groups at once equal one at a time.
    names = [n for n in LABEL_METRICS if case.task in M.METRICS[n].tasks]
    batched = M.confusion_metrics(grouped["confusion"], names)
    for g in range(n_groups):
        single = M.confusion_metrics(grouped["confusion"][g], names)
        for name in names:
            np.testing.assert_array_equal(batched[name][g], single[name])


def test_exact_ranking_statistics_are_histograms_with_one_bin_per_score() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500), 2)
    table = M.score_table(score, y == 1)
    cuts = M.score_cuts(table, 256)  # 101 distinct scores: one bin each
    bins = np.searchsorted(cuts, score)[:, None]
    hist = M.ranking_histograms(bins, (y == 1)[:, None], None, 256)[0, 0]
    binned = M.ranking_metrics(hist[None, :, 1], hist[None, :, 0], ["roc_auc", "pr_auc"])
    exact = M.ranking_metrics_from_tables([table], ["roc_auc", "pr_auc"])
    for name in exact:
        assert float(binned[name]) == pytest.approx(exact[name], rel=1e-12)
    # Coarser bins: quantile bins of roughly equal weight, ties never split.
    coarse = M.score_cuts(table, 8)
    assert len(coarse) <= 7
    coarse_bins = np.searchsorted(coarse, score)
    for s in np.unique(score):
        assert len(np.unique(coarse_bins[score == s])) == 1
    sizes = np.bincount(coarse_bins)
    assert sizes.max() < 3 * 500 / 8
