"""Behavioural and contract checks on real ONNX Runtime sessions with planted defects.

Each defect gets a purpose-built model (scikit-learn exported with skl2onnx, or a small graph
written with onnx.helper where scikit-learn cannot misbehave) that the check must catch, and a
clean model it must pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlci.models.interface import InputSpec
from mlci.models.onnx import OnnxModel
from mlci.testing import assert_directional, assert_invariant, assert_robust, perturb
from mlci.testing import checks as C

N = 2000
COLUMNS = ["id", "age", "income"]


def make_data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "id": rng.permutation(N).astype(np.float64),
        "age": rng.uniform(18, 80, N).round(),
        "income": rng.lognormal(10.5, 0.4, N).round(2),
    }


def stacked(frame: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([frame[c] for c in COLUMNS]).astype(np.float32)


def export(estimator: object, x: np.ndarray, path: Path) -> OnnxModel:
    from skl2onnx import to_onnx

    onx = to_onnx(estimator, x[:1], options={id(estimator): {"zipmap": False}})
    path.write_bytes(onx.SerializeToString())
    return OnnxModel(path)


def helper_model(path: Path, nodes: list, outputs: list) -> OnnxModel:
    """A hand-written classifier graph over one [N, 3] float input X."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "planted",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return OnnxModel(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OnnxModel]:
    from onnx import TensorProto, helper
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    folder = tmp_path_factory.mktemp("planted")
    frame = make_data(1)
    x = stacked(frame)
    rng = np.random.default_rng(1)
    z_income = (np.log(frame["income"]) - 10.5) / 0.4
    z_id = (frame["id"] - N / 2) / (N / 3)
    y_clean = (rng.random(N) < 1 / (1 + np.exp(-1.5 * z_income))).astype(int)
    y_id = (rng.random(N) < 1 / (1 + np.exp(-(1.5 * z_income + 2.0 * z_id)))).astype(int)
    y_u = (rng.random(N) < 1 / (1 + np.exp(-(2.0 * z_income**2 - 1.5)))).astype(int)

    def linear(columns: list[int]) -> Pipeline:
        return Pipeline(
            [
                ("pick", ColumnTransformer([("num", StandardScaler(), columns)])),
                ("clf", LogisticRegression(max_iter=500)),
            ]
        )

    built = {
        "clean": export(linear([1, 2]).fit(x, y_clean), x, folder / "clean.onnx"),
        "reads_id": export(linear([0, 1, 2]).fit(x, y_id), x, folder / "reads_id.onnx"),
        "u_shaped": export(
            GradientBoostingClassifier(n_estimators=60, max_depth=2, random_state=0).fit(
                x[:, 1:] * 1, y_u
            ),
            x[:, 1:],
            folder / "u_shaped.onnx",
        ),
        "brittle": export(
            DecisionTreeClassifier(random_state=0).fit(x, rng.integers(0, 2, N)),
            x,
            folder / "brittle.onnx",
        ),
    }
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    w = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [0.0, 0.0, 0.01, 0.02, 1e-5, 2e-5])
    # Probabilities from two independent sigmoids: in [0, 1] but not summing to 1.
    built["unnormalised"] = helper_model(
        folder / "unnormalised.onnx",
        [
            helper.make_node("Constant", [], ["w"], value=w),
            helper.make_node("MatMul", ["X", "w"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        [label, probs],
    )
    # Softmax of logits plus fresh random noise at every run.
    built["random"] = helper_model(
        folder / "random.onnx",
        [
            helper.make_node("Constant", [], ["w"], value=w),
            helper.make_node("MatMul", ["X", "w"], ["logits"]),
            helper.make_node("RandomUniformLike", ["logits"], ["noise"], high=0.5, low=0.0),
            helper.make_node("Add", ["logits", "noise"], ["noisy"]),
            helper.make_node("Softmax", ["noisy"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        [label, probs],
    )
    return built


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return make_data(2)


ROWS = np.arange(1, N + 1)


def run_invariance(model: OnnxModel, frame: dict[str, np.ndarray], feature: str, **kw):
    base = model.predict(frame)
    perturbed = perturb.shuffle(frame[feature], np.random.default_rng(0), kw.pop("groups", None))
    column = C.class_column(base, None, single=False)
    return C.invariance(
        model.predict,
        frame,
        base,
        feature,
        perturbed,
        how="shuffling",
        tolerance=kw.get("tolerance", 1e-6),
        max_rate=kw.get("max_rate", 0.0),
        column=column,
        rows=ROWS,
    )


def test_a_model_that_reads_the_id_fails_invariance(models, data) -> None:
    out = run_invariance(models["reads_id"], data, "id")
    assert out.status == "failed"
    assert out.observed > 0.9 and out.threshold == 0.0
    assert out.message.startswith("shuffling 'id' changed the score of ")
    assert "by more than 1e-06, allowed 0; largest change" in out.message
    first = out.details["examples"][0]
    assert first["change"] == pytest.approx(out.details["max_change"])
    assert abs(first["score_after"] - first["score_before"]) == pytest.approx(first["change"])
    assert first["before"] == data["id"][first["row"] - 1]
    assert out.details["count"] == round(out.observed * N)


def test_a_model_that_ignores_the_id_passes_invariance(models, data) -> None:
    out = run_invariance(models["clean"], data, "id")
    assert out.status == "passed", out.message
    assert out.details["max_change"] == 0.0
    # Shuffling a feature the model does use is caught by the same check.
    assert run_invariance(models["clean"], data, "income").status == "failed"


def test_invariance_tolerance_and_allowed_share(models, data) -> None:
    strict = run_invariance(models["reads_id"], data, "id")
    loose = run_invariance(models["reads_id"], data, "id", tolerance=1.0)
    share = run_invariance(models["reads_id"], data, "id", max_rate=1.0)
    assert strict.status == "failed"
    assert loose.status == "passed" and loose.observed == 0.0
    assert share.status == "passed" and share.observed == strict.observed


def frame2(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"age": data["age"], "income": data["income"]}


def test_a_non_monotone_model_fails_the_directional_test(models, data) -> None:
    model = models["u_shaped"]
    frame = frame2(data)
    base = model.predict(frame)
    out = C.directional(
        model.predict,
        frame,
        base,
        "income",
        step=5000.0,
        direction="increasing",
        tolerance=1e-6,
        max_rate=0.0,
        column=1,
        rows=ROWS,
    )
    assert out.status == "failed"
    assert out.message.startswith("raising 'income' by 5,000 lowered the score in ")
    worst = out.details["examples"][0]
    after = model.predict({**frame, "income": frame["income"] + 5000.0}).proba[:, 1]
    i = worst["row"] - 1
    assert worst["score_after"] == pytest.approx(after[i])
    assert worst["score_before"] == pytest.approx(base.proba[i, 1])
    assert worst["change"] < 0
    # The same model moves the other way on the other side of the U: "decreasing" fails too.
    down = C.directional(
        model.predict,
        frame,
        base,
        "income",
        step=5000.0,
        direction="decreasing",
        tolerance=1e-6,
        max_rate=0.0,
        column=1,
        rows=ROWS,
    )
    assert down.status == "failed"


def test_a_monotone_model_passes_the_directional_test(models, data) -> None:
    model = models["clean"]
    out = C.directional(
        model.predict,
        data,
        model.predict(data),
        "income",
        step=5000.0,
        direction="increasing",
        tolerance=1e-6,
        max_rate=0.0,
        column=1,
        rows=ROWS,
    )
    assert out.status == "passed", out.message
    assert out.details["count"] == 0


def run_robustness(model: OnnxModel, frame: dict[str, np.ndarray], features: list[str]):
    return C.robustness(
        model.predict,
        frame,
        model.predict(frame),
        features,
        noise=0.05,
        stds={f: float(np.std(frame[f])) for f in features},
        max_rate=0.05,
        seed=0,
        rows=ROWS,
    )


def test_a_brittle_model_fails_robustness(models, data) -> None:
    out = run_robustness(models["brittle"], data, ["age", "income"])
    assert out.status == "failed"
    assert out.observed > 0.05 and out.threshold == 0.05
    assert "standard deviations on 2 features flipped the label of" in out.message
    example = out.details["examples"][0]
    assert example["before"] != example["after"]
    assert abs(example["changes"]["income"]) <= 0.05 * np.std(data["income"]) + 1e-6


def test_a_smooth_model_passes_robustness(models, data) -> None:
    out = run_robustness(models["clean"], data, ["age", "income"])
    assert out.status == "passed", out.message
    assert out.observed < 0.05


def test_unnormalised_probabilities_fail_the_contract(models, data) -> None:
    from mlci.errors import ModelError

    # Model.predict refuses such output outright; the contract check judges what the runtime
    # itself returned, with the test's own (tighter) tolerance.
    with pytest.raises(ModelError, match="probabilities are not a distribution in 2,000 rows"):
        models["unnormalised"].predict(data)
    bad = models["unnormalised"]._predict(data)
    out = C.contract_probabilities(bad, 1e-4, ROWS)
    assert out.status == "failed"
    assert "not summing to 1" in out.message and f"{N:,} of {N:,} rows" in out.message
    example = out.details["examples"][0]
    assert example["sum"] == pytest.approx(sum(example["probabilities"]))
    good = models["clean"].predict(data)
    assert C.contract_probabilities(good, 1e-4, ROWS).status == "passed"


def test_a_random_model_fails_determinism(models, data) -> None:
    model = models["random"]
    out = C.contract_determinism(model.predict(data), model.predict(data), ROWS)
    assert out.status == "failed"
    assert out.observed > 0 and "two runs on the same rows disagree in" in out.message
    clean = models["clean"]
    assert C.contract_determinism(clean.predict(data), clean.predict(data), ROWS).status == "passed"


def test_outputs_and_inputs_contract(models, data) -> None:
    model = models["clean"]
    pred = model.predict(data)
    assert C.contract_outputs(pred, N).status == "passed"
    short = C.contract_outputs(C.take(pred, np.arange(10)), N)
    assert short.status == "failed" and "10 labels for 2000 rows" in short.message
    specs = (InputSpec("age", "float", (None, 1)), InputSpec("region", "string", (None, 1)))
    kinds = {"age": "numeric", "region": "categorical"}
    assert C.contract_inputs(specs, ["age", "region"], kinds).status == "passed"
    wrong = C.contract_inputs(specs, ["age", "region"], kinds, {"age": "int", "tenure": "float"})
    assert wrong.status == "failed"
    assert "input 'age' is float, expected int" in wrong.message
    assert "expected input 'tenure' (float) is missing" in wrong.message
    swapped = C.contract_inputs(
        specs, ["age", "region"], {"age": "categorical", "region": "numeric"}
    )
    assert "input 'age' is float but the column is categorical" in swapped.message


def test_parity_check() -> None:
    assert C.contract_parity(1e-6, 1.0, 1e-4, 100).status == "passed"
    out = C.contract_parity(0.02, 0.99, 1e-4, 100)
    assert out.status == "failed" and out.observed == 0.02 and "labels agree on 99" in out.message


def test_class_selection_errors_name_the_classes(models, data) -> None:
    pred = models["clean"].predict(data)
    assert C.class_column(pred, 1, single=True) == 1
    with pytest.raises(C.CheckError, match="the model has no class 'yes'"):
        C.class_column(pred, "yes", single=True)


def test_assertion_helpers_raise_with_the_check_message(models, tmp_path: Path) -> None:
    from mlci.data import Dataset

    frame = make_data(3)
    y = np.zeros(N, dtype=np.int64)
    dataset = Dataset(
        path=tmp_path / "x.csv",
        display="x.csv",
        format="csv",
        sha256="0" * 64,
        columns={**frame, "y": y},
        kinds={"id": "numeric", "age": "numeric", "income": "numeric", "y": "numeric"},
        target="y",
        features=("id", "age", "income"),
    )
    assert_invariant(models["clean"], dataset, "id")
    with pytest.raises(AssertionError, match="shuffling 'id' changed the score of"):
        assert_invariant(models["reads_id"], dataset, "id")
    with pytest.raises(AssertionError, match="flipped the label of"):
        assert_robust(models["brittle"], dataset, features=["age", "income"], noise=0.05)
    assert_directional(models["clean"], dataset, "income", step=1000.0)
    first_half = np.arange(N) < N // 2
    out = assert_invariant(models["clean"], dataset, "id", rows=first_half)
    assert out.details["rows"] == N // 2
