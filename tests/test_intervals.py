"""Bootstrap intervals: determinism, coverage, pairing and the bucketed variant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.stats import norm

from mlci.evaluate import metrics as M
from mlci.evaluate.bootstrap import BucketBootstrap, percentile_interval
from mlci.evaluate.evaluator import Estimate, Evaluator, Outputs


def binary_data(n: int, seed: int, separation: float = 1.0) -> tuple[np.ndarray, Outputs]:
    """Scores N(separation, 1) for positives and N(0, 1) for negatives, squashed to (0, 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = rng.standard_normal(n) + separation * y
    p1 = norm.cdf(z - separation / 2)
    proba = np.column_stack([1 - p1, p1])
    return y, Outputs(labels=(p1 >= 0.5).astype(np.int64), proba=proba)


def multiclass_data(n: int, k: int, seed: int) -> tuple[np.ndarray, Outputs]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.standard_normal((n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, Outputs(labels=proba.argmax(axis=1), proba=proba)


def regression_data(n: int, seed: int) -> tuple[np.ndarray, Outputs]:
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 3.0, n)
    return y, Outputs(values=y + rng.standard_normal(n))


CASES = {
    "binary": (binary_data(500, 0), None),
    "multiclass": (multiclass_data(500, 4, 1), 4),
    "regression": (regression_data(500, 2), None),
}


def evaluator(task: str, **kwargs: object) -> tuple[Evaluator, Outputs]:
    (y, out), k = CASES[task]
    names = M.valid_metrics(task, has_proba=True)  # type: ignore[arg-type]
    return Evaluator(task, y, metrics=names, n_classes=k, **kwargs), out  # type: ignore[arg-type]


@pytest.mark.parametrize("task", list(CASES))
def test_intervals_are_deterministic_for_a_seed(task: str) -> None:
    ev_a, out = evaluator(task, n_boot=200, seed=7)
    ev_b, _ = evaluator(task, n_boot=200, seed=7)
    ev_c, _ = evaluator(task, n_boot=200, seed=8)
    first = ev_a.estimate(out)
    assert first == ev_a.estimate(out) == ev_b.estimate(out)
    assert first != ev_c.estimate(out)


@pytest.mark.parametrize("task", list(CASES))
@pytest.mark.parametrize("max_buckets", [1000, 50])
def test_intervals_contain_the_point_value(task: str, max_buckets: int) -> None:
    ev, out = evaluator(task, n_boot=300, max_buckets=max_buckets)
    for name, e in ev.estimate(out).items():
        assert e.method == "poisson-bootstrap"
        assert e.ci_low is not None and e.ci_high is not None, name
        assert e.ci_low <= e.value <= e.ci_high, name
        assert e.ci_low < e.ci_high, name


def test_percentile_intervals_contain_the_point_without_widening() -> None:
    # Widening is a guard for degenerate samples; on ordinary data it never acts.
    y, out = CASES["binary"][0]
    ev = Evaluator("binary", y, metrics=["accuracy", "roc_auc", "log_loss", "f1"], n_boot=500)
    reps = ev.replicates(out)
    for name, value in ev.point(out).items():
        assert reps[name].shape == (500,)
        low, high = percentile_interval(reps[name], 0.95)
        assert low is not None and high is not None
        assert low < value < high, name


@pytest.mark.parametrize("task", list(CASES))
def test_no_bootstrap_gives_no_interval(task: str) -> None:
    ev, out = evaluator(task, n_boot=0)
    for e in ev.estimate(out).values():
        assert (e.ci_low, e.ci_high, e.p_value, e.method) == (None, None, None, "none")
    for e in ev.compare(out, out).values():
        assert (e.value, e.ci_low, e.ci_high, e.p_value, e.method) == (
            0.0,
            None,
            None,
            None,
            "none",
        )


@pytest.mark.parametrize("task", list(CASES))
def test_comparing_a_model_with_itself_gives_an_exact_zero(task: str) -> None:
    ev, out = evaluator(task, n_boot=300, max_buckets=100)
    copy = Outputs(
        labels=None if out.labels is None else out.labels.copy(),
        proba=None if out.proba is None else out.proba.copy(),
        values=None if out.values is None else out.values.copy(),
    )
    for name, e in ev.compare(out, copy).items():
        assert (e.value, e.ci_low, e.ci_high, e.p_value) == (0.0, 0.0, 0.0, 1.0), name


def test_a_clearly_better_model_has_a_delta_interval_excluding_zero() -> None:
    y, weak = binary_data(2000, 3, separation=0.5)
    rng = np.random.default_rng(4)
    z = rng.standard_normal(len(y)) + 2.5 * y
    p1 = norm.cdf(z - 1.25)
    strong = Outputs(labels=(p1 >= 0.5).astype(np.int64), proba=np.column_stack([1 - p1, p1]))
    names = ["accuracy", "f1", "roc_auc", "pr_auc", "log_loss", "brier"]
    ev = Evaluator("binary", y, metrics=names, n_boot=500)
    for name, e in ev.compare(strong, weak).items():
        better = M.METRICS[name].higher_is_better
        assert (e.value > 0) == better, name
        assert e.ci_low is not None and e.ci_high is not None
        assert (e.ci_low > 0) if better else (e.ci_high < 0), name
        assert e.p_value is not None and e.p_value < 0.01, name
    # And the other way round.
    assert ev.compare(weak, strong)["accuracy"].ci_high < 0  # type: ignore[operator]


def test_comparison_is_paired() -> None:
    # The candidate differs from the baseline on 1% of rows; an unpaired view of the two
    # intervals would say nothing, the paired delta is precise.
    y, base = binary_data(5000, 5)
    rng = np.random.default_rng(6)
    labels = base.labels.copy()  # type: ignore[union-attr]
    fix = np.flatnonzero(labels != y)[:50]
    labels[fix] = y[fix]
    cand = Outputs(labels=labels)
    ev = Evaluator("binary", y, metrics=["accuracy"], n_boot=500, seed=int(rng.integers(100)))
    delta = ev.compare(cand, Outputs(labels=base.labels))["accuracy"]
    single = ev.estimate(cand)["accuracy"]
    assert delta.value == pytest.approx(50 / 5000)
    # Every replicate's delta is 0.01 up to resampling of the 50 fixed rows.
    assert delta.ci_low > 0.005 and delta.ci_high < 0.015  # type: ignore[operator]
    assert (delta.ci_high - delta.ci_low) < 0.5 * (single.ci_high - single.ci_low)  # type: ignore[operator]


def test_slices_by_mask_and_by_index_agree() -> None:
    ev, out = evaluator("binary", n_boot=200, max_buckets=100)
    mask = np.arange(500) % 3 == 0
    by_mask = ev.estimate(out, rows=mask)
    by_index = ev.estimate(out, rows=np.flatnonzero(mask))
    by_list = ev.estimate(out, rows=np.flatnonzero(mask).tolist())
    assert by_mask == by_index == by_list
    (y, _), _ = CASES["binary"]
    sub = Evaluator("binary", y[mask], metrics=ev.metrics, n_boot=0)
    sub_out = Outputs(labels=out.labels[mask], proba=out.proba[mask])  # type: ignore[index]
    for name, value in sub.point(sub_out).items():
        assert by_mask[name].value == pytest.approx(value, rel=1e-12, nan_ok=True)


def test_bucketed_and_row_level_bootstrap_agree_on_the_spread() -> None:
    y, out = binary_data(20_000, 8)
    names = ["accuracy", "roc_auc", "log_loss"]
    widths = {}
    for buckets in (20_000, 200):
        ev = Evaluator("binary", y, metrics=names, n_boot=1000, max_buckets=buckets, seed=1)
        widths[buckets] = {
            n: e.ci_high - e.ci_low  # type: ignore[operator]
            for n, e in ev.estimate(out).items()
        }
    for name in names:
        ratio = widths[200][name] / widths[20_000][name]
        assert 0.8 < ratio < 1.25, (name, ratio)


def test_binned_ranking_bootstrap_is_exact_with_few_distinct_scores() -> None:
    y, out = binary_data(3000, 9)
    coarse = np.round(out.proba, 2)  # type: ignore[arg-type]
    out = Outputs(proba=coarse / coarse.sum(axis=1, keepdims=True))
    results = []
    for bins in (256, 4096):
        ev = Evaluator(
            "binary",
            y,
            metrics=["roc_auc", "pr_auc"],
            n_boot=200,
            max_buckets=100,
            n_score_bins=bins,
        )
        results.append(ev.estimate(out))
    for name in ("roc_auc", "pr_auc"):
        a, b = results[0][name], results[1][name]
        assert a.value == b.value
        assert a.ci_low == pytest.approx(b.ci_low, abs=1e-12)
        assert a.ci_high == pytest.approx(b.ci_high, abs=1e-12)


def _coverage(
    make: object, truth: float, name: str, task: str, n: int, max_buckets: int, n_data: int = 200
) -> float:
    hits = 0
    for i in range(n_data):
        y, out = make(n, 1000 + i)  # type: ignore[operator]
        ev = Evaluator(
            task,
            y,
            metrics=[name],
            n_boot=300,
            seed=i,  # type: ignore[arg-type]
            max_buckets=max_buckets,
        )
        e: Estimate = ev.estimate(out)[name]
        hits += e.ci_low <= truth <= e.ci_high  # type: ignore[operator]
    return hits / n_data


def _accuracy_data(n: int, seed: int) -> tuple[np.ndarray, Outputs]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    right = rng.random(n) < 0.8
    return y, Outputs(labels=np.where(right, y, 1 - y))


def _mae_data(n: int, seed: int) -> tuple[np.ndarray, Outputs]:
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 5.0, n)
    return y, Outputs(values=y + rng.standard_normal(n))


@pytest.mark.parametrize(
    ("name", "task", "make", "truth"),
    [
        ("accuracy", "binary", _accuracy_data, 0.8),
        ("mae", "regression", _mae_data, float(np.sqrt(2 / np.pi))),
        ("roc_auc", "binary", binary_data, float(norm.cdf(1 / np.sqrt(2)))),
    ],
)
@pytest.mark.parametrize(("n", "max_buckets"), [(300, 1000), (2000, 100)])
def test_95_percent_intervals_cover_the_truth(
    name: str, task: str, make: object, truth: float, n: int, max_buckets: int
) -> None:
    coverage = _coverage(make, truth, name, task, n, max_buckets)
    assert coverage >= 0.9, coverage


def test_bucket_bootstrap_weights_depend_on_the_seed_only() -> None:
    boot = BucketBootstrap(2000, seed=3, n_buckets=500)
    assert boot.weights.shape == (2000, 500)
    assert boot.weights.mean() == pytest.approx(1.0, abs=0.01)
    assert boot.weights.var() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_array_equal(
        boot.weights, BucketBootstrap(2000, seed=3, n_buckets=500).weights
    )
    assert not np.array_equal(boot.weights, BucketBootstrap(2000, seed=4, n_buckets=500).weights)
    with pytest.raises(ValueError):
        boot.weights[0, 0] = 2.0


def test_a_units_bucket_is_a_function_of_seed_and_key_only() -> None:
    boot = BucketBootstrap(10, seed=3)
    ids = np.arange(100_000) * 7 + 11
    buckets = boot.assign(ids)
    # Uniform over the buckets (chi-square on 1,000 cells, 100 rows expected in each).
    counts = np.bincount(buckets, minlength=1000)
    assert sps.chisquare(counts).pvalue > 1e-4
    # Any order, any shard: the same key always lands in the same bucket.
    order = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(boot.assign(ids[order]), buckets[order])
    np.testing.assert_array_equal(boot.assign(ids[50_000:]), buckets[50_000:])
    # An id read as a float, or as text of another width, is the same key.
    np.testing.assert_array_equal(boot.assign(ids.astype(np.float64)), buckets)
    text = np.array([f"user-{i}" for i in range(1000)], dtype=object)
    wide = np.array([f"user-{i}" for i in range(1000)] + ["x" * 40], dtype=object)[:-1]
    np.testing.assert_array_equal(boot.assign(text), boot.assign(wide))
    np.testing.assert_array_equal(boot.assign(text[::-1]), boot.assign(text)[::-1])
    assert sps.chisquare(np.bincount(boot.assign(text), minlength=1000)).pvalue > 1e-4
    # Another seed hashes differently.
    assert np.mean(BucketBootstrap(10, seed=4).assign(ids) == buckets) < 0.01


def test_intervals_do_not_depend_on_row_order_when_rows_have_ids() -> None:
    # The weight of a row in every replicate is a function of (seed, id): shuffling the rows
    # (or splitting them into shards) cannot change an interval.
    (y, out), _ = CASES["binary"]
    ids = np.arange(len(y)) * 3 + 1000
    order = np.random.default_rng(5).permutation(len(y))
    names = ["accuracy", "roc_auc", "log_loss", "ece"]
    first = Evaluator("binary", y, metrics=names, keys=ids, n_boot=300, seed=2)
    again = Evaluator("binary", y[order], metrics=names, keys=ids[order], n_boot=300, seed=2)
    shuffled = Outputs(labels=out.labels[order], proba=out.proba[order])  # type: ignore[index]
    a, b = first.estimate(out), again.estimate(shuffled)
    for name in names:
        assert a[name].value == pytest.approx(b[name].value, rel=1e-12)
        assert a[name].ci_low == pytest.approx(b[name].ci_low, rel=1e-9)
        assert a[name].ci_high == pytest.approx(b[name].ci_high, rel=1e-9)


def test_per_bucket_statistics_of_two_shards_add_up() -> None:
    # What makes sharded evaluation exact: each shard's bucket statistics, computed with its
    # own rows' keys, sum to the statistics of the whole.
    (y, out), _ = CASES["multiclass"]
    boot = BucketBootstrap(5, seed=9)
    keys = np.arange(len(y))
    whole = M.confusion_stats(y, out.labels, 4, None, boot.assign(keys), boot.n_buckets)  # type: ignore[arg-type]
    half = len(y) // 3
    parts = [
        M.confusion_stats(y[s], out.labels[s], 4, None, boot.assign(keys[s]), boot.n_buckets)  # type: ignore[index]
        for s in (slice(0, half), slice(half, None))
    ]
    np.testing.assert_array_equal(parts[0] + parts[1], whole)


def test_a_cluster_is_resampled_as_a_whole() -> None:
    groups = np.repeat(np.arange(40), 25)
    buckets = BucketBootstrap(10, seed=1).assign(groups)
    for g in range(40):
        assert len(set(buckets[groups == g])) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(list(CASES)),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2, 5, 40]),
    st.booleans(),
)
def test_any_slice_gives_well_formed_estimates(
    task: str, seed: int, size: int, weighted: bool
) -> None:
    # Tiny, empty and single-class slices must not fail: an interval is either missing or
    # contains its value, and p-values lie in (0, 1].
    (y, out), k = CASES[task]
    rng = np.random.default_rng(seed)
    names = M.valid_metrics(task, has_proba=True)  # type: ignore[arg-type]
    weight = rng.uniform(0.1, 3.0, len(y)) if weighted else None
    ev = Evaluator(
        task,
        y,
        metrics=names,
        n_classes=k,
        weight=weight,
        n_boot=50,  # type: ignore[arg-type]
        max_buckets=int(rng.choice([20, 1000])),
        seed=seed,
    )
    rows = rng.choice(len(y), size=size, replace=False)
    other = Outputs(
        labels=None if out.labels is None else rng.permutation(out.labels),
        proba=None if out.proba is None else rng.permutation(out.proba),
        values=None if out.values is None else rng.permutation(out.values),
    )
    for result in (ev.estimate(out, rows), ev.compare(out, other, rows)):
        for name, e in result.items():
            if e.ci_low is None:
                assert e.ci_high is None, name
                continue
            assert np.isfinite(e.value) and e.ci_low <= e.value <= e.ci_high, name
            if e.p_value is not None:
                assert 0.0 < e.p_value <= 1.0
