"""Data integrity: planted defects found exactly (checked against pandas), clean data passes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from mlci.testing import integrity as I
from mlci.testing.encode import categorical_codes, column_codes, row_keys

REGIONS = np.array(["north", "south", "east", "west"], dtype=object)


def frame(n: int, seed: int, *, flip: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(0, 1, n), 6)
    region = rng.choice(REGIONS, n)
    logit = (-1.5 if flip else 1.5) * x + np.where(region == "north", 0.5, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return {"x": x, "region": region, "tenure": rng.integers(0, 30, n).astype(float)}, y


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", None])), min_size=1))
def test_equal_rows_get_equal_keys(rows: list[tuple[int, str | None]]) -> None:
    numbers = np.array([float(r[0]) for r in rows])
    text = np.array([r[1] for r in rows], dtype=object)
    keys = row_keys([column_codes(numbers)[0], column_codes(text)[0]])
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (keys[i] == keys[j]) == (rows[i] == rows[j])


def test_leaked_rows_are_found_exactly() -> None:
    ref, ref_y = frame(5000, 1)
    cur, cur_y = frame(3000, 2)
    planted = np.arange(100, 160)
    for name in cur:
        cur[name][planted] = ref[name][planted + 1000]
    cur_y[planted] = ref_y[planted + 1000]
    columns = ["x", "region", "tenure", "y"]
    out = I.check_leakage({**ref, "y": ref_y}, {**cur, "y": cur_y}, columns)
    # Reference: pandas' inner join on every column.
    left = pd.DataFrame({**cur, "y": cur_y}).reset_index()
    right = pd.DataFrame({**ref, "y": ref_y}).drop_duplicates()
    joined = left.merge(right, on=columns, how="inner")
    assert out.status == "failed"
    assert out.details["count"] == len(joined) == len(planted)
    assert out.details["examples"][0] == {"row": 101, "reference_row": 1101}
    assert "60 of 3,000 evaluation rows (2.00%) also occur in the reference" in out.message
    clean = I.check_leakage(
        {**ref, "y": ref_y}, {**frame(3000, 3)[0], "y": frame(3000, 3)[1]}, columns
    )
    assert clean.status == "passed" and clean.details["count"] == 0
    allowed = I.check_leakage({**ref, "y": ref_y}, {**cur, "y": cur_y}, columns, max_share=0.05)
    assert allowed.status == "passed"


def test_new_categories_and_spellings() -> None:
    ref, _ = frame(2000, 1)
    cur, _ = frame(2000, 2)
    region = cur["region"].copy()
    region[:40] = "North "
    region[40:45] = "Nórth"
    region[45:60] = "mars"
    new = I.check_new_categories(ref, {**cur, "region": region}, ["region"])
    assert new.status == "failed"
    assert new.details["count"] == 3
    assert new.details["examples"][0] == {
        "feature": "region",
        "value": "North ",
        "rows": 40,
        "row": 1,
    }
    spell = I.check_spellings({"evaluation": {"region": region}, "reference": ref}, ["region"])
    assert spell.status == "failed" and spell.details["count"] == 1
    group = spell.details["examples"][0]
    assert group["key"] == "north"
    assert {s["value"] for s in group["spellings"]} == {"North ", "Nórth", "north"}
    assert "'region' has" in spell.message
    assert I.check_new_categories(ref, cur, ["region"]).status == "passed"
    assert I.check_spellings({"evaluation": cur, "reference": ref}, ["region"]).status == "passed"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Self-Employed", "self employed", True),
        ("  café ", "Cafe", True),
        ("self_employed", "SELF EMPLOYED", True),
        ("-1", "1", False),
        ("north", "northern", False),
    ],
)
def test_spelling_keys(a: str, b: str, same: bool) -> None:
    assert (I.spelling_key(a) == I.spelling_key(b)) is same


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20))
def test_spelling_keys_ignore_case_and_are_stable(text: str) -> None:
    key = I.spelling_key(text)
    assert (
        I.spelling_key(text.upper()) == I.spelling_key(text.lower())
        or text.upper().lower() != text.lower()
    )
    assert I.spelling_key(key) == key


def test_conflicting_labels_match_pandas() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    columns = {
        "a": rng.integers(0, 40, n).astype(float),
        "b": rng.choice(REGIONS, n),
    }
    y = rng.integers(0, 2, n)
    rows = I.conflicting_rows(list(columns.values()), y)
    df = pd.DataFrame({**columns, "y": y})
    labels = df.groupby(["a", "b"])["y"].transform("nunique")
    assert rows.tolist() == np.flatnonzero(labels.to_numpy() > 1).tolist()
    distinct = {"a": np.arange(n, dtype=float), "b": columns["b"]}
    assert len(I.conflicting_rows(list(distinct.values()), y)) == 0


def test_a_planted_conflict_fails_and_clean_data_passes() -> None:
    cur, y = frame(3000, 4)
    out = I.check_conflicting_labels({"evaluation": (cur, y)}, ["x", "region", "tenure"])
    assert out.status == "passed"
    cur2 = {k: v.copy() for k, v in cur.items()}
    y2 = y.copy()
    for name in cur2:
        cur2[name][10] = cur2[name][20]
    y2[10] = 1 - y2[20]
    bad = I.check_conflicting_labels({"evaluation": (cur2, y2)}, ["x", "region", "tenure"])
    assert bad.status == "failed" and bad.details["count"] == 2
    assert [e["row"] for e in bad.details["examples"]] == [11, 21]


def test_constant_and_almost_constant_features() -> None:
    cur, _ = frame(2000, 5)
    flag = np.zeros(2000)
    flag[:5] = 1.0
    out = I.check_constant(
        {"evaluation": {**cur, "one": np.full(2000, "x", dtype=object), "flag": flag}},
        ["x", "region", "one", "flag"],
    )
    assert out.status == "failed" and out.details["count"] == 2
    assert [e["feature"] for e in out.details["examples"]] == ["one", "flag"]
    assert out.details["examples"][0]["values"] == 1 and out.details["examples"][0]["value"] == "x"
    assert out.details["examples"][1]["share"] == pytest.approx(0.9975)
    assert I.check_constant({"evaluation": cur}, ["x", "region", "tenure"]).status == "passed"


def test_relation_power_is_the_gini_of_the_reference_rates() -> None:
    ref, ref_y = frame(6000, 1)
    cur, cur_y = frame(6000, 2, flip=True)
    ref_bins, cur_bins, k = I.feature_bins(ref["x"], cur["x"], True, 10)
    result = I.relation_change(
        ref["x"], ref_y, cur["x"], cur_y, numeric=True, task="binary", n_classes=2, n_boot=0
    )
    rates = np.bincount(ref_bins, weights=ref_y, minlength=k) / np.maximum(
        np.bincount(ref_bins, minlength=k), 1
    )
    assert result["reference"] == pytest.approx(2 * roc_auc_score(ref_y, rates[ref_bins]) - 1)
    assert result["current"] == pytest.approx(2 * roc_auc_score(cur_y, rates[cur_bins]) - 1)
    assert result["current"] < 0 < result["reference"]


def test_relation_power_of_a_regressor_is_a_correlation() -> None:
    rng = np.random.default_rng(3)
    x_ref, x_cur = rng.normal(0, 1, 3000), rng.normal(0, 1, 3000)
    y_ref, y_cur = 2 * x_ref + rng.normal(0, 1, 3000), 0.5 * x_cur + rng.normal(0, 1, 3000)
    r = I.relation_change(
        x_ref, y_ref, x_cur, y_cur, numeric=True, task="regression", n_classes=0, n_boot=200
    )
    ref_bins, cur_bins, k = I.feature_bins(x_ref, x_cur, True, 10)
    means = np.bincount(ref_bins, weights=y_ref, minlength=k) / np.maximum(
        np.bincount(ref_bins, minlength=k), 1
    )
    assert r["reference"] == pytest.approx(np.corrcoef(means[ref_bins], y_ref)[0, 1])
    assert r["current"] == pytest.approx(np.corrcoef(means[cur_bins], y_cur)[0, 1])
    assert r["ci_low"] < r["change"] < r["ci_high"] < 0


def test_a_reversed_relation_fails_and_a_stable_one_passes() -> None:
    ref, ref_y = frame(5000, 1)
    same, same_y = frame(5000, 2)
    flipped, flipped_y = frame(5000, 3, flip=True)
    kinds = {"x": "numeric", "region": "categorical", "tenure": "numeric"}
    features = ["x", "region", "tenure"]
    ok = I.check_relation_changed(ref, ref_y, same, same_y, features, kinds, "binary", n_classes=2)
    bad = I.check_relation_changed(
        ref, ref_y, flipped, flipped_y, features, kinds, "binary", n_classes=2
    )
    assert ok.status == "passed", ok.message
    assert bad.status == "failed"
    assert bad.details["count"] == 1 and bad.details["examples"][0]["feature"] == "x"
    assert "'x': Gini" in bad.message


def test_categorical_codes_share_one_table() -> None:
    (a, b), labels = categorical_codes(
        np.array(["b", None, "a"], dtype=object), np.array(["c", "a", True], dtype=object)
    )
    assert labels == ["True", "a", "b", "c"] or labels == ["a", "b", "c", "true"]
    assert a[1] == -1 and labels[a[0]] == "b" and labels[b[1]] == "a"
