from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mlci.evaluate import expressions, slicing
from mlci.evaluate.alignment import AlignmentError, align, label_key
from mlci.models.interface import Predictions

COLUMNS = {
    "age": np.array([25.0, 35.0, 45.0, np.nan, 65.0]),
    "region": np.array(["north", "south", None, "north", "east"], dtype=object),
    "n": np.array([1, 2, 3, 4, 5]),
}
KINDS = {"age": "numeric", "region": "categorical", "n": "numeric"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("age < 40", [True, True, False, False, False]),
        ("age >= 35 and region == 'north'", [False, False, False, False, False]),
        ("region == 'north' or n > 4", [True, False, False, True, True]),
        ("not region == 'north'", [False, True, True, False, True]),
        ("region != 'north'", [False, True, False, False, True]),
        ("region in ['south', 'east']", [False, True, False, False, True]),
        ("region not in ['south']", [True, False, False, True, True]),
        ("30 <= age < 50", [False, True, True, False, False]),
        ("age / 5 > n * 4", [True, False, False, False, False]),
        ("-n < -3", [False, False, False, True, True]),
    ],
)
def test_expressions(expression: str, expected: list[bool]) -> None:
    assert expressions.evaluate(expression, COLUMNS).tolist() == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("regoin == 'north'", "did you mean 'region'"),
        ("__import__('os').system('true')", "not allowed"),
        ("age.real > 3", "not allowed"),
        ("age <", "invalid expression"),
        ("age + 1", "not a condition"),
        ("region < 3", "cannot order text"),
        ("region in 'north'", "needs a list"),
        ("[x for x in age]", "not allowed"),
    ],
)
def test_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises(expressions.ExpressionError, match=message):
        expressions.evaluate(expression, COLUMNS)


@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=50),
    st.floats(-100, 100, allow_nan=False),
)
def test_expression_agrees_with_numpy(values: list[float], threshold: float) -> None:
    column = np.array(values)
    got = expressions.evaluate(f"x > {threshold!r} or x <= {threshold / 2!r}", {"x": column})
    assert got.tolist() == ((column > threshold) | (column <= threshold / 2)).tolist()


def test_slices_by_value_skip_missing() -> None:
    slices = slicing.expand({"feature": "region"}, COLUMNS, KINDS)
    assert [s.name for s in slices] == ["region=east", "region=north", "region=south"]
    assert slices[1].definition == "region == 'north'"
    assert slices[1].mask.tolist() == [True, False, False, True, False]


def test_chosen_values_with_typo_suggest() -> None:
    with pytest.raises(slicing.SliceError, match="did you mean 'north'") as info:
        slicing.expand({"feature": "region", "values": ["nrth"]}, COLUMNS, KINDS)
    assert info.value.field == ("values", 0)


def test_numeric_values_match_across_types() -> None:
    slices = slicing.expand({"feature": "n", "values": [2, "3", 4.0]}, COLUMNS, KINDS)
    assert [int(s.mask.sum()) for s in slices] == [1, 1, 1]


def test_bins_are_half_open_and_last_closed() -> None:
    slices = slicing.expand({"feature": "age", "bins": [25, 45, 65]}, COLUMNS, KINDS)
    assert [s.name for s in slices] == ["age in [25, 45)", "age in [45, 65]"]
    assert [s.mask.tolist() for s in slices] == [
        [True, True, False, False, False],
        [False, False, True, False, True],
    ]


@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=4, max_size=200), st.integers(2, 8))
def test_quantile_bins_partition_the_values(values: list[float], q: int) -> None:
    assume(len(set(values)) > 1)
    column = np.array(values)
    slices = slicing.expand({"feature": "x", "quantiles": q}, {"x": column}, {"x": "numeric"})
    total = np.sum([s.mask for s in slices], axis=0)
    assert (total == 1).all()  # every value in exactly one bin


def test_cross_gives_observed_pairs() -> None:
    columns = {"a": np.array(["x", "x", "y"], dtype=object), "b": np.array([1, 2, 1])}
    slices = slicing.expand({"cross": ["a", "b"]}, columns, {"a": "categorical", "b": "numeric"})
    assert [s.name for s in slices] == ["a=x, b=1", "a=x, b=2", "a=y, b=1"]
    assert slices[2].definition == "a == 'y' and b == 1"


def test_where_slice_keeps_name() -> None:
    [s] = slicing.expand({"name": "young", "where": "age < 30"}, COLUMNS, KINDS)
    assert (s.name, s.definition, s.mask.sum()) == ("young", "age < 30", 1)


def test_binning_text_and_unknown_column_are_errors() -> None:
    with pytest.raises(slicing.SliceError, match="not numeric"):
        slicing.expand({"feature": "region", "quantiles": 4}, COLUMNS, KINDS)
    with pytest.raises(slicing.SliceError, match="did you mean 'region'") as info:
        slicing.expand({"feature": "regoin"}, COLUMNS, KINDS)
    assert info.value.field == ("feature",)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([np.nan, np.nan, np.inf], "no numeric values to take quantiles of"),
        ([2.0, 2.0, np.nan, 2.0], "a single value; quantile bins need more"),
    ],
)
def test_quantiles_of_too_few_values_are_errors(values: list[float], message: str) -> None:
    columns = {"x": np.array(values)}
    with pytest.raises(slicing.SliceError, match=message) as info:
        slicing.expand({"feature": "x", "quantiles": 4}, columns, {"x": "numeric"})
    assert info.value.field == ("quantiles",)


def test_continuous_feature_needs_bins() -> None:
    columns = {"x": np.linspace(0, 1, 500)}
    with pytest.raises(slicing.SliceError, match="give 'bins' or 'quantiles'"):
        slicing.expand({"feature": "x"}, columns, {"x": "numeric"})


def test_label_keys_unify_types() -> None:
    assert label_key(1) == label_key(1.0) == label_key("1") == label_key(np.int64(1)) == "1"
    assert label_key(True) == "true"
    assert label_key("north") == "north"


def test_align_reorders_baseline_probabilities() -> None:
    target = np.array(["a", "b", "c", "a"], dtype=object)
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    cand = Predictions(labels=np.array(["a", "b", "c", "a"]), proba=proba, classes=("a", "b", "c"))
    base = Predictions(
        labels=np.array(["a", "b", "c", "a"]), proba=proba[:, ::-1], classes=("c", "b", "a")
    )
    aligned = align("multiclass", target, [cand, base])
    assert aligned.y_true.tolist() == [0, 1, 2, 0]
    np.testing.assert_array_equal(aligned.outputs[0].proba, aligned.outputs[1].proba)
    np.testing.assert_array_equal(aligned.outputs[1].labels, aligned.y_true)


def test_align_rejects_labels_the_model_never_predicts() -> None:
    target = np.array([0, 1, 2, 2])
    cand = Predictions(labels=np.array([0, 1, 1, 0]), proba=np.full((4, 2), 0.5), classes=(0, 1))
    with pytest.raises(AlignmentError, match="label '2' in 2 rows"):
        align("binary", target, [cand])


def test_slice_row_errors_are_what_the_readme_says() -> None:
    # The README says slice discovery scores a classifier's rows by their log loss,
    # -log p(true class), and a regressor's by squared error; the code must agree.
    from pathlib import Path

    from sklearn.metrics import log_loss

    from mlci.evaluate.evaluator import Outputs
    from mlci.evaluate.stage import row_errors

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet([1.0, 1.0, 1.0], 200)
    errors = row_errors("multiclass", y, Outputs(proba=proba))
    for i in range(0, 200, 37):
        assert errors[i] == pytest.approx(log_loss([y[i]], proba[i : i + 1], labels=[0, 1, 2]))
    assert errors.mean() == pytest.approx(log_loss(y, proba))
    values = rng.normal(size=200)
    target = rng.normal(size=200)
    np.testing.assert_allclose(
        row_errors("regression", target, Outputs(values=values)), (values - target) ** 2
    )
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Slices") : readme.index("## Comparison with the baseline")]
    assert "log loss, `-log p(true class)`" in section
    assert "1 - p(true class)" not in readme
