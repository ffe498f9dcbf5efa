"""SliceLine slice finding (against the sliceline package and brute force) and slice significance."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sliceline import Slicefinder  # the reference implementation; CI must have it

from mlci.evaluate import sliceline as sl
from mlci.evaluate.significance import SliceTest, slice_significance
from mlci.evaluate.sliceline import (
    FoundSlice,
    bin_numeric,
    encode_categorical,
    find_slices,
    find_slices_in_blocks,
    slice_mask,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- helpers


def as_inputs(x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """Codes and labels for find_slices; every code is its own label (plus unseen ones)."""
    codes = {f"f{j}": x[:, j] for j in range(x.shape[1])}
    labels = {f"f{j}": list(range(max(int(x[:, j].max()), 0) + 2)) for j in range(x.shape[1])}
    return codes, labels


def ours(x: np.ndarray, errors: np.ndarray, **params: Any) -> list[FoundSlice]:
    codes, labels = as_inputs(x)
    return find_slices(codes, labels, errors, **params)


def package(
    x: np.ndarray, errors: np.ndarray, *, k: int, max_level: int, alpha: float, min_support: Any
) -> list[tuple[tuple[tuple[str, object], ...], int, float, float, float]]:
    """The sliceline package's top slices as (predicates, size, error sum, score, max error)."""
    finder = Slicefinder(alpha=alpha, k=k, max_l=max_level, min_sup=min_support, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder.fit(x, errors)
    out: list[tuple[tuple[tuple[str, object], ...], int, float, float, float]] = []
    for row, st_ in zip(finder.top_slices_, finder.top_slices_statistics_, strict=True):
        preds = tuple((f"f{j}", int(v)) for j, v in enumerate(row) if v is not None)
        out.append(
            (
                preds,
                int(st_["slice_size"]),
                st_["sum_slice_error"],
                st_["slice_score"],
                st_["max_slice_error"],
            )
        )
    return out


def brute_force(
    x: np.ndarray, errors: np.ndarray, *, k: int, max_level: int, alpha: float, min_support: int
) -> dict[tuple[tuple[str, object], ...], tuple[int, float, float]]:
    """Exhaustive top-k (ties with the k-th score included): every slice, no pruning."""
    n, n_features = x.shape
    avg = float(np.mean(errors))
    found: dict[tuple[tuple[str, object], ...], tuple[int, float, float]] = {}
    for level in range(1, min(n_features, max_level) + 1):
        for feats in itertools.combinations(range(n_features), level):
            rows = (x[:, feats] >= 0).all(axis=1)  # missing values are never in a slice
            if not rows.any():
                continue
            values, inverse = np.unique(x[rows][:, feats], axis=0, return_inverse=True)
            sizes = np.bincount(inverse.ravel())
            sums = np.bincount(inverse.ravel(), weights=errors[rows])
            for value, size, total in zip(values, sizes, sums, strict=True):
                if size < min_support or total <= 0:
                    continue
                score = alpha * ((total / size) / avg - 1) - (1 - alpha) * (n / size - 1)
                if score > 0:
                    preds = tuple((f"f{f}", int(v)) for f, v in zip(feats, value, strict=True))
                    found[preds] = (int(size), float(total), float(score))
    if len(found) > k:
        kth = sorted((s for _, _, s in found.values()), reverse=True)[k - 1]
        found = {p: v for p, v in found.items() if v[2] >= kth}
    return found


@st.composite
def datasets(draw: st.DrawFn, *, missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Small categorical datasets with errors whose sums are exact in floating point."""
    n = draw(st.integers(10, 160))
    cards = draw(st.lists(st.integers(1, 5), min_size=1, max_size=5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = np.column_stack([rng.integers(0, c, n) for c in cards])
    if missing:
        x[rng.random(x.shape) < draw(st.sampled_from([0.0, 0.1, 0.3]))] = -1
    kind = draw(st.sampled_from(["binary", "eighths", "sparse"]))
    if kind == "binary":  # classification errors: many exact ties
        errors = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(np.float64)
    elif kind == "eighths":
        errors = rng.integers(0, 9, n) / 8.0
    else:
        errors = rng.integers(0, 17, n) / 4.0 * (rng.random(n) < 0.3)
    assume(errors.sum() > 0)
    return x, errors


params = st.fixed_dictionaries(
    {
        "k": st.integers(1, 6),
        "max_level": st.integers(1, 4),
        "alpha": st.one_of(
            st.sampled_from([0.3, 0.6, 0.9, 0.95, 1.0]), st.floats(0.05, 1.0, allow_nan=False)
        ),
        "min_support": st.integers(1, 12),
    }
)


# --------------------------------------------------------------------------- finding


def test_planted_two_predicate_slice_is_found() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    x = np.column_stack([rng.integers(0, c, n) for c in (3, 5, 4, 8, 6, 7)])
    planted = (x[:, 1] == 2) & (x[:, 4] == 1)
    errors = (rng.random(n) < np.where(planted, 0.8, 0.1)).astype(float)

    found = ours(x, errors, k=5, max_level=3, alpha=0.95)

    top = found[0]
    assert top.predicates == (("f1", 2), ("f4", 1))
    assert top.size == int(planted.sum())
    assert top.error_sum == pytest.approx(errors[planted].sum())
    assert top.error_mean == pytest.approx(errors[planted].mean())
    assert top.max_error == 1.0
    assert all(s.score > 0 for s in found)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_planted_slice_over_binned_and_categorical_columns() -> None:
    rng = np.random.default_rng(3)
    n = 30_000
    age = rng.uniform(18, 90, n)
    plan = rng.choice(np.array(["basic", "plus", "pro"], dtype=object), n)
    region = rng.choice(np.array(["north", "south", "east", "west"]), n)
    planted = (age >= 70) & (plan == "pro")
    errors = np.abs(rng.normal(0, 0.2, n)) + np.where(planted, 1.5, 0.0)

    age_codes, age_labels = bin_numeric(age, 4)
    plan_codes, plan_labels = encode_categorical(plan)
    region_codes, region_labels = encode_categorical(region)
    codes = {"age": age_codes, "plan": plan_codes, "region": region_codes}
    labels: dict[str, list[Any]] = {"age": age_labels, "plan": plan_labels, "region": region_labels}
    found = find_slices(codes, labels, errors, k=3)

    assert found[0].predicates[1] == ("plan", "pro")
    age_label = found[0].predicates[0][1]
    assert found[0].predicates[0][0] == "age" and age_label == age_labels[-1]
    assert age_label.endswith("]")  # the last bin is closed
    mask = slice_mask(codes, labels, found[0])
    assert mask.sum() == found[0].size
    assert errors[mask].sum() == pytest.approx(found[0].error_sum)


@SETTINGS
@given(datasets(), params, st.sampled_from([None, 0.02, 0.05, 0.1, 0.2]))
def test_agrees_with_sliceline_package(
    data: tuple[np.ndarray, np.ndarray], p: dict[str, Any], fraction: float | None
) -> None:
    x, errors = data
    if fraction is not None:  # the package's way of giving σ as a fraction of the rows
        assume(int(fraction * x.shape[0]) >= 1)
        p = {**p, "min_support": fraction}
    want = package(x, errors, **p)
    got = ours(x, errors, **p)

    assert [s.predicates for s in got] == [w[0] for w in want]
    for s, (_, size, total, score, max_error) in zip(got, want, strict=True):
        assert s.size == size
        assert s.error_sum == pytest.approx(total, rel=1e-12)
        assert s.score == pytest.approx(score, rel=1e-12, abs=1e-12)
        assert s.max_error == max_error
        assert s.error_mean == pytest.approx(total / size, rel=1e-12)


def test_package_default_minimum_support() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, (400, 3))
    errors = rng.integers(0, 5, 400) / 4.0
    want = package(x, errors, k=4, max_level=2, alpha=0.9, min_support=10)
    assert [s.predicates for s in ours(x, errors, k=4, max_level=2, alpha=0.9)] == [
        w[0] for w in want
    ]
    assert sl.DEFAULT_MIN_SUPPORT == Slicefinder(verbose=False).min_sup


@SETTINGS
@given(datasets(missing=True), params)
def test_sound_pruning_equals_exhaustive_enumeration(
    data: tuple[np.ndarray, np.ndarray], p: dict[str, Any]
) -> None:
    x, errors = data
    want = brute_force(x, errors, **p)
    got = ours(x, errors, sound_pruning=True, **p)

    assert {s.predicates: (s.size, s.error_sum, s.score) for s in got} == want


@SETTINGS
@given(datasets(missing=True), params)
def test_default_pruning_reports_exact_statistics(
    data: tuple[np.ndarray, np.ndarray], p: dict[str, Any]
) -> None:
    # The package's pruning may skip a slice (see the next test), but what it reports is exact
    # and ranked, and one-predicate slices are never pruned.
    x, errors = data
    every = brute_force(x, errors, **{**p, "k": 10**9})
    got = ours(x, errors, **p)

    for s in got:
        assert every[s.predicates] == (s.size, s.error_sum, s.score)
    assert [s.score for s in got] == sorted((s.score for s in got), reverse=True)
    singles = [score for preds, (_, _, score) in every.items() if len(preds) == 1]
    if singles:
        assert got[0].score >= max(singles)


def test_where_the_package_prunes_more_than_the_paper() -> None:
    # Six rows where the sliceline package (a) bounds sizes with the number of one-hot columns
    # (9 here) rather than rows (6) and (b) prunes against a top-k holding fewer than k slices:
    # it drops two level-2 slices tied for second place. Default mode follows the package.
    x = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 2, 2], [1, 1, 2], [0, 0, 1]])
    errors = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    p: dict[str, Any] = {"k": 2, "max_level": 3, "alpha": 0.95, "min_support": 2}

    default = [s.predicates for s in ours(x, errors, **p)]
    assert default == [w[0] for w in package(x, errors, **p)] == [(("f1", 1),)]
    sound = [s.predicates for s in ours(x, errors, sound_pruning=True, **p)]
    # Tied slices come in the package's order: the one holding the earlier (feature, level)
    # of the predicates they do not share comes last.
    assert sound == [(("f1", 1),), (("f1", 1), ("f2", 0)), (("f0", 1), ("f1", 1))]
    assert set(sound) == set(brute_force(x, errors, **p))


def test_missing_values_are_never_part_of_a_slice() -> None:
    x = np.array([[-1, 0]] * 50 + [[0, 0]] * 50 + [[1, 1]] * 50)
    errors = np.array([1.0] * 50 + [0.0] * 100)
    found = ours(x, errors, k=5, max_level=2, alpha=0.95, sound_pruning=True)
    assert all(("f0", -1) not in s.predicates for s in found)
    assert found[0].predicates == (("f1", 0),)


def test_sparse_grouping_matches_dense_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, (3_000, 5))
    errors = rng.exponential(1.0, 3_000) * (x[:, 0] == 2)
    dense = ours(x, errors, k=8, max_level=3, alpha=0.9)
    monkeypatch.setattr(sl, "_dense_tables", lambda space, n_rows: False)
    assert ours(x, errors, k=8, max_level=3, alpha=0.9) == dense


EVALUATION_PATHS = {
    # name: (count on pivot rows?, dense tables?, table limit)
    "pivot rows": (True, True, None),
    "pivot rows, one mask per slice": (True, True, 0),
    "all rows": (False, True, None),
    "all rows, sparse grouping": (False, False, None),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datasets(missing=True),
    params,
    st.sampled_from(sorted(EVALUATION_PATHS)),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_every_evaluation_path_reports_the_same_exact_slices(
    data: tuple[np.ndarray, np.ndarray], p: dict[str, Any], path: str, sound: bool, seed: int
) -> None:
    # Errors whose sums round: statistics must still equal bincount's over all rows to the
    # last bit, whichever way the candidates were counted.
    x, errors = data
    errors = errors * (1.0 + np.random.default_rng(seed).random(errors.size))
    pivots, dense, limit = EVALUATION_PATHS[path]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sl, "_pivots_pay", lambda *_: pivots)
        mp.setattr(sl, "_dense_tables", lambda space, n_rows: dense)
        if limit is not None:
            mp.setattr(sl, "_MAX_DENSE_KEYS", limit)
        got = ours(x, errors, sound_pruning=sound, **p)
    assert got == ours(x, errors, sound_pruning=sound, **p)
    every = brute_force(x, errors, **{**p, "k": 10**9})
    for s in got:
        assert every[s.predicates] == (s.size, s.error_sum, s.score)
    if sound:
        want = brute_force(x, errors, **p)
        assert {s.predicates: (s.size, s.error_sum, s.score) for s in got} == want


@pytest.mark.parametrize("path", sorted(EVALUATION_PATHS))
def test_error_sums_add_up_in_row_order(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Sums in another order (pairwise, by blocks) differ in the last bits, which would break
    # ties between slices with the same rows; every path must add errors in row order.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, (5_000, 4))
    errors = rng.random(5_000) + 2.0 * ((x[:, 0] == 1) & (x[:, 2] == 3))
    pivots, dense, limit = EVALUATION_PATHS[path]
    monkeypatch.setattr(sl, "_pivots_pay", lambda *_: pivots)
    monkeypatch.setattr(sl, "_dense_tables", lambda space, n_rows: dense)
    if limit is not None:
        monkeypatch.setattr(sl, "_MAX_DENSE_KEYS", limit)
    found = ours(x, errors, k=6, max_level=3, alpha=0.95, min_support=20)
    assert any(len(s.predicates) >= 2 for s in found)
    codes, labels = as_inputs(x)
    for s in found:
        rows = slice_mask(codes, labels, s)
        assert s.error_sum == np.bincount(np.zeros(int(rows.sum()), dtype=int), errors[rows])[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(), st.floats(0.05, 1.0), st.integers(1, 12))
def test_reach_bound_covers_every_slice_inside_a_candidate(
    data: tuple[np.ndarray, np.ndarray], alpha: float, min_support: int
) -> None:
    # The search skips a candidate when this bound is below the k-th score, so it must bound
    # the score of the candidate and of every slice inside it, given the candidate's exact
    # size, error sum, largest error and rows per error bin (the tightest bounds it gets).
    x, errors = data
    codes, labels = as_inputs(x)
    prepared = sl._prepare(codes, labels, errors)
    n, n_features = x.shape
    p = sl._check_params(5, 3, alpha, min_support, False, n)
    ctx = sl._Context(prepared, p, n_columns=0, threshold=0.0, reach=0.0)
    avg = float(np.mean(errors))
    slices = {
        tuple(zip(feats, values, strict=True)): np.all(x[:, feats] == values, axis=1)
        for level in (1, 2, 3)
        for feats in itertools.combinations(range(n_features), level)
        for values in itertools.product(*(np.unique(x[:, f]).tolist() for f in feats))
    }
    for preds, rows in slices.items():
        if len(preds) > 2 or not rows.any():
            continue
        bins = np.bincount(prepared.grid.bins(errors)[rows], minlength=prepared.grid.n_bins)
        bound = sl._reach_bound(
            ctx,
            np.array([float(rows.sum())]),
            np.array([errors[rows].sum()]),
            np.array([errors[rows].max()]),
            bins[None, :],
        )[0]
        for other, sub in slices.items():
            size = int(sub.sum())
            if set(preds) <= set(other) and size >= min_support:
                score = alpha * ((errors[sub].sum() / size) / avg - 1) - (1 - alpha) * (
                    n / size - 1
                )
                assert score <= bound + 1e-9, (preds, other)


class CutBlocks:
    """Rows cut into consecutive blocks, read one at a time as a file's batches would be."""

    def __init__(self, codes: dict[str, np.ndarray], errors: np.ndarray, cuts: list[int]) -> None:
        self.codes, self.errors = codes, errors
        self.bounds = [0, *sorted(cuts), len(errors)]
        self.reads = 0

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def read(self, i: int, features: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        self.reads += 1
        lo, hi = self.bounds[i], self.bounds[i + 1]
        return {f: self.codes[f][lo:hi].copy() for f in features}, self.errors[lo:hi].copy()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datasets(missing=True),
    params,
    st.booleans(),
    st.lists(st.integers(0, 160), max_size=6),
    st.sampled_from([None, 1, 64]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_blocks_give_the_single_run_to_the_last_bit(
    data: tuple[np.ndarray, np.ndarray],
    p: dict[str, Any],
    sound: bool,
    cuts: list[int],
    dense_limit: int | None,
    pivots: bool,
    seed: int,
) -> None:
    # Fractional errors whose sums round: block sums added afterwards would differ in the
    # last bits; the search must continue each sum in row order instead.
    x, binary = data
    rng = np.random.default_rng(seed)
    errors = binary * rng.exponential(1.0, binary.size)
    assume(errors.sum() > 0)
    codes, labels = as_inputs(x)
    blocks = CutBlocks(codes, errors, [min(c, len(errors)) for c in cuts])
    limit, pivots_pay = sl._MAX_DENSE_KEYS, sl._pivots_pay
    try:
        if dense_limit is not None:
            sl._MAX_DENSE_KEYS = dense_limit  # grouped by sorting, and by masks on pivots
        if not pivots:
            sl._pivots_pay = lambda *_: False  # type: ignore[assignment]
        whole = find_slices(codes, labels, errors, sound_pruning=sound, **p)
        cut = find_slices_in_blocks(blocks, labels, sound_pruning=sound, **p)
    finally:
        sl._MAX_DENSE_KEYS, sl._pivots_pay = limit, pivots_pay
    assert cut == whole


def test_blocks_of_many_rows_give_the_single_run() -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    x = np.column_stack([rng.zipf(1.6, n).clip(max=c) - 1 for c in (4, 9, 30, 6, 12, 3)])
    x[rng.random(x.shape) < 0.02] = -1
    bad = (x[:, 0] == 1) & (x[:, 1] == 0) & (x[:, 3] == 0)
    errors = -np.log(np.clip(rng.beta(np.where(bad, 1, 8), 2), 1e-15, 1))
    codes, labels = as_inputs(x)
    blocks = CutBlocks(codes, errors, [1, 30_000, 30_000, 99_999, 150_001])
    settings_ = {"k": 8, "max_level": 3, "alpha": 0.95, "min_support": 0.01}
    whole = find_slices(codes, labels, errors, **settings_)
    cut = find_slices_in_blocks(blocks, labels, **settings_)
    assert any(len(s.predicates) == 3 for s in whole)
    assert cut == whole
    assert sum(s.error_sum for s in cut) != pytest.approx(0)


def test_ties_are_all_returned_in_package_order() -> None:
    x = np.array([[0, 0], [1, 1]] * 20)
    errors = np.array([1.0, 0.0] * 20)
    found = ours(x, errors, k=1, max_level=2, alpha=0.95, min_support=1)
    assert [s.predicates for s in found] == [
        w[0] for w in package(x, errors, k=1, max_level=2, alpha=0.95, min_support=1)
    ]
    assert len(found) == 3  # f0==0, f1==0 and their conjunction share the top score


def test_no_slices_when_no_errors() -> None:
    x = np.zeros((20, 2), dtype=int)
    assert ours(x, np.zeros(20)) == []


def _good_inputs() -> dict[str, Any]:
    return {
        "codes": {"a": np.array([0, 1, 0, 1]), "b": np.array([0, 0, 1, -1])},
        "labels": {"a": ["x", "y"], "b": ["u", "v"]},
        "errors": np.array([0.1, 0.2, 0.3, 0.4]),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"k": 0}, "k must"),
        ({"max_level": 0}, "max_level"),
        ({"min_support": 0}, "min_support"),
        ({"min_support": 1.5}, "min_support"),
        ({"min_support": "5"}, "min_support"),
        ({"errors": np.array([0.1, -0.2, 0.3, 0.4])}, "non-negative"),
        ({"errors": np.array([0.1, np.nan, 0.3, 0.4])}, "finite"),
        ({"errors": np.array([0.1, 0.2, 0.3])}, "one per error"),
        ({"errors": np.array([])}, "empty"),
        ({"codes": {"a": np.array([0, 1, 0, 1]), "b": np.array([0, 0, 2, 0])}}, "-1..1"),
        ({"codes": {"a": np.array([0, 1, 0, 1]), "b": np.array([0.0, 0, 1, 0])}}, "integers"),
        ({"codes": {"a": np.array([0, 1, 0, 1])}}, "same features"),
    ],
)
def test_bad_arguments_raise_value_error(change: dict[str, Any], message: str) -> None:
    args = _good_inputs()
    kwargs = {k: change.pop(k) for k in list(change) if k not in args}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        find_slices(args["codes"], args["labels"], args["errors"], **kwargs)


# --------------------------------------------------------------------------- encoding


def test_bin_numeric_quantile_bins() -> None:
    values = np.array([30.0, 31, 35, 40, 45, 50, 55, 60, np.nan])
    codes, labels = bin_numeric(values, 2)
    assert labels == ["[30, 42.5)", "[42.5, 60]"]
    assert codes.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, -1]


def test_bin_numeric_deduplicates_edges_and_formats_compactly() -> None:
    values = np.array([0.0] * 80 + [0.125, 0.25, 1234.5678, 1e7])
    codes, labels = bin_numeric(values, 10)
    assert len(labels) == len(set(labels)) == codes.max() + 1
    assert labels[0].startswith("[0, ")
    assert labels[-1].endswith("10000000]")
    assert (codes[:80] == 0).all()
    single_codes, single = bin_numeric(np.array([2.5, 2.5, np.nan]), 4)
    assert single == ["[2.5, 2.5]"] and single_codes.tolist() == [0, 0, -1]
    assert bin_numeric(np.array([np.nan, np.nan]), 3)[1] == []
    close_codes, close = bin_numeric(np.array([1.00001, 1.00002, 1.00003, 1.00004]), 2)
    assert len(set(close)) == 2 and close_codes.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="n_bins"):
        bin_numeric(values, 0)


def test_encode_categorical() -> None:
    codes, labels = encode_categorical(np.array(["b", None, "a", "b", float("nan")], dtype=object))
    assert labels == ["a", "b"]
    assert codes.tolist() == [1, -1, 0, 1, -1]
    num_codes, num_labels = encode_categorical(np.array([3.0, np.nan, 1.0, 3.0]))
    assert num_labels == [1.0, 3.0] and num_codes.tolist() == [1, -1, 0, 1]
    assert all(type(v) is float for v in num_labels)
    mixed_codes, mixed = encode_categorical(np.array([1, "x", 1, None], dtype=object))
    assert mixed == [1, "x"] and mixed_codes.tolist() == [0, 1, 0, -1]


# --------------------------------------------------------------------------- significance


def test_significance_flags_planted_slice_not_null_slices() -> None:
    rng = np.random.default_rng(1)
    n = 5_000
    planted = rng.random(n) < 0.05
    errors = rng.exponential(1.0, n) + np.where(planted, 0.6, 0.0)
    nulls = [rng.random(n) < 0.1 for _ in range(5)]

    results = slice_significance(errors, [planted, *nulls])

    assert results[0].significant
    assert not any(r.significant for r in results[1:])
    want_p = [
        sps.ttest_ind(errors[m], errors[~m], equal_var=False, alternative="greater").pvalue
        for m in [planted, *nulls]
    ]
    assert [r.p_value for r in results] == pytest.approx(want_p, rel=1e-12)
    want_q = sps.false_discovery_control(np.array(want_p))
    assert [r.q_value for r in results] == pytest.approx(want_q.tolist(), rel=1e-12)
    assert all(isinstance(r, SliceTest) for r in results)


def test_significance_of_untestable_slices() -> None:
    errors = np.ones(10)
    one_row = np.zeros(10, dtype=bool)
    one_row[0] = True
    half = np.arange(10) < 5
    results = slice_significance(errors, [one_row, half.astype(int)])
    assert [r.p_value for r in results] == [1.0, 1.0]
    assert not any(r.significant for r in results)
    separated = np.where(half, 1.0, 0.0)  # every row inside wrong, every row outside right
    assert [r.p_value for r in slice_significance(separated, [half, ~half])] == [0.0, 1.0]
    assert slice_significance(errors, []) == []
    with pytest.raises(ValueError, match="shape"):
        slice_significance(errors, [np.ones(3, dtype=bool)])
    with pytest.raises(ValueError, match="fdr"):
        slice_significance(errors, [half], fdr=1.0)
