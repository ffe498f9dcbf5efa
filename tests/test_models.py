"""Loading, running and converting models: ONNX, skops, pickle/joblib and entry points.

Every model is fitted and exported into a temporary directory at test time.
"""

from __future__ import annotations

import hashlib
import operator
import pickle
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlci.errors import DataError, ModelError  # noqa: E402
from mlci.models import interface  # noqa: E402
from mlci.models.convert import convert_to_onnx  # noqa: E402
from mlci.models.load import load_model  # noqa: E402
from mlci.models.onnx import OnnxModel  # noqa: E402
from mlci.models.sklearn import SklearnModel  # noqa: E402

# --------------------------------------------------------------------------- model factory

N_ROWS = 400


def make_data(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """A small mixed-type table: one text column, two floats, one integer."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], n),
            "x1": rng.normal(size=n),
            "x2": rng.normal(scale=3.0, size=n),
            "k": rng.integers(0, 5, n),
        }
    )


def to_frame(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The mlci Frame for a DataFrame: text columns as object arrays."""
    frame = {}
    for column in df.columns:
        values = df[column].to_numpy()
        if values.dtype.kind not in "biuf":
            values = values.astype(object)
        frame[column] = values
    return frame


def binary_target(df: pd.DataFrame) -> np.ndarray:
    score = df["x1"] + 0.3 * df["x2"] + (df["color"] == "red") - 0.2 * df["k"]
    return (score > 0).astype(int).to_numpy()


def multiclass_target(df: pd.DataFrame) -> np.ndarray:
    score = df["x1"] + 0.2 * df["x2"] + 0.5 * (df["color"] == "blue")
    return np.where(score < -0.5, "low", np.where(score < 0.5, "mid", "high"))


def make_pipeline(df: pd.DataFrame, y: np.ndarray) -> Any:
    """ColumnTransformer (one-hot text + scaled numbers) feeding a LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["color"]),
            ("num", StandardScaler(), ["x1", "x2", "k"]),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(df, y)


def make_regressor(df: pd.DataFrame) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    X = df[["x1", "x2", "k"]]
    y = 2.0 * df["x1"] - df["x2"] + 0.5 * df["k"]
    return RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0).fit(X, y)


def column_types(df: pd.DataFrame, columns: list[str]) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    types = []
    for column in columns:
        kind = df[column].to_numpy().dtype.kind
        if kind in "iu":
            types.append((column, Int64TensorType([None, 1])))
        elif kind == "f":
            types.append((column, FloatTensorType([None, 1])))
        else:
            types.append((column, StringTensorType([None, 1])))
    return types


def export_onnx(
    estimator: Any, initial_types: list[tuple[str, Any]], path: Path, **options: Any
) -> Path:
    from skl2onnx import to_onnx

    proto = to_onnx(
        estimator,
        initial_types=initial_types,
        options={id(estimator): options} if options else None,
    )
    path.write_bytes(proto.SerializeToString())
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return make_data()


@pytest.fixture(scope="module")
def frame(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return to_frame(data)


@pytest.fixture(scope="module")
def binary_pipe(data: pd.DataFrame) -> Any:
    return make_pipeline(data, binary_target(data))


@pytest.fixture(scope="module")
def multi_pipe(data: pd.DataFrame) -> Any:
    return make_pipeline(data, multiclass_target(data))


@pytest.fixture(scope="module")
def regressor(data: pd.DataFrame) -> Any:
    return make_regressor(data)


# --------------------------------------------------------------------------- ONNX runtime


@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_binary_pipeline_matches_native(
    tmp_path: Path, data: pd.DataFrame, frame: dict, binary_pipe: Any, zipmap: bool
) -> None:
    path = export_onnx(
        binary_pipe,
        column_types(data, list(data.columns)),
        tmp_path / "binary.onnx",
        **({} if zipmap else {"zipmap": False}),
    )
    model = load_model(path, name="binary")
    assert isinstance(model, OnnxModel)
    assert model.info.format == "onnx"
    assert model.info.classes == (0, 1)
    assert model.info.task == "binary"
    assert model.info.features == ("color", "x1", "x2", "k")
    assert [i.dtype for i in model.info.inputs] == ["string", "float", "float", "int"]
    assert model.info.sha256 == sha256_of(path)
    assert model.info.size_bytes == path.stat().st_size

    pred = model.predict(frame)
    assert pred.classes == (0, 1)
    np.testing.assert_allclose(pred.proba, binary_pipe.predict_proba(data), atol=1e-5)
    np.testing.assert_array_equal(pred.labels, binary_pipe.predict(data))
    assert pred.values is None


@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_multiclass_string_classes(
    tmp_path: Path, data: pd.DataFrame, frame: dict, multi_pipe: Any, zipmap: bool
) -> None:
    path = export_onnx(
        multi_pipe,
        column_types(data, list(data.columns)),
        tmp_path / "multi.onnx",
        **({} if zipmap else {"zipmap": False}),
    )
    model = load_model(path, name="multi")
    expected_classes = tuple(multi_pipe.classes_)
    assert model.info.classes == expected_classes == ("high", "low", "mid")
    assert model.info.task == "multiclass"

    pred = model.predict(frame)
    assert pred.classes == expected_classes
    np.testing.assert_allclose(pred.proba, multi_pipe.predict_proba(data), atol=1e-5)
    assert list(pred.labels) == list(multi_pipe.predict(data))


def test_onnx_single_tensor_input_uses_frame_order(tmp_path: Path, data: pd.DataFrame) -> None:
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    columns = ["x1", "x2", "k"]
    X = data[columns].to_numpy(dtype=np.float64)
    clf = LogisticRegression().fit(X, binary_target(data))
    path = export_onnx(clf, [("X", FloatTensorType([None, 3]))], tmp_path / "tensor.onnx")

    model = load_model(path, name="tensor")
    assert model.info.extra["input_mode"] == "tensor"
    assert model.info.features == ()
    frame = {c: data[c].to_numpy() for c in columns}
    pred = model.predict(frame)
    np.testing.assert_allclose(pred.proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(pred.labels, clf.predict(X))

    # Frame order is the feature order: swapping columns changes the answer.
    swapped = model.predict({c: frame[c] for c in ["x2", "x1", "k"]})
    assert not np.allclose(swapped.proba, pred.proba)

    with pytest.raises(
        DataError, match=r"tensor\.onnx: model input 'X' takes 3 columns but the data has 2"
    ):
        model.predict({"x1": frame["x1"], "x2": frame["x2"]})
    with pytest.raises(DataError, match=r"'color'.* not numeric"):
        model.predict({"x1": frame["x1"], "x2": frame["x2"], "color": to_frame(data)["color"]})


def test_onnx_regression(tmp_path: Path, data: pd.DataFrame, regressor: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    columns = ["x1", "x2", "k"]
    path = export_onnx(regressor, [("X", FloatTensorType([None, 3]))], tmp_path / "rf.onnx")
    model = load_model(path, name="rf")
    assert model.info.task == "regression"
    assert model.info.classes is None
    pred = model.predict({c: data[c].to_numpy() for c in columns})
    assert pred.labels is None and pred.proba is None
    assert pred.values is not None and pred.values.shape == (N_ROWS,)
    np.testing.assert_allclose(pred.values, regressor.predict(data[columns]), rtol=1e-5, atol=1e-5)


def test_models_predict_in_chunks(
    tmp_path: Path,
    data: pd.DataFrame,
    frame: dict,
    binary_pipe: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = export_onnx(binary_pipe, column_types(data, list(data.columns)), tmp_path / "b.onnx")
    model = load_model(path, name="b")
    whole = model.predict(frame)
    calls = []
    run = model._predict
    monkeypatch.setattr(
        model, "_predict", lambda chunk: calls.append(len(chunk["k"])) or run(chunk)
    )
    monkeypatch.setattr(interface, "PREDICT_CHUNK_ROWS", 7)
    chunked = model.predict(frame)
    assert calls == [7] * (N_ROWS // 7) + ([N_ROWS % 7] if N_ROWS % 7 else [])
    np.testing.assert_array_equal(chunked.labels, whole.labels)
    np.testing.assert_array_equal(chunked.proba, whole.proba)


def test_onnx_casts_columns_to_input_types(
    tmp_path: Path, data: pd.DataFrame, frame: dict, binary_pipe: Any
) -> None:
    path = export_onnx(binary_pipe, column_types(data, list(data.columns)), tmp_path / "b.onnx")
    model = load_model(path, name="b")
    # Integers held as floats are fine for an int64 input; a missing value is not.
    as_float = dict(frame, k=frame["k"].astype(np.float64))
    np.testing.assert_array_equal(model.predict(as_float).labels, model.predict(frame).labels)
    with_nan = dict(frame, k=np.where(np.arange(N_ROWS) == 3, np.nan, frame["k"].astype(float)))
    with pytest.raises(
        DataError, match=r"b\.onnx: column 'k' cannot be read as the integer values"
    ):
        model.predict(with_nan)


def test_onnx_missing_input_column_names_closest(
    tmp_path: Path, data: pd.DataFrame, frame: dict, binary_pipe: Any
) -> None:
    path = export_onnx(binary_pipe, column_types(data, list(data.columns)), tmp_path / "b.onnx")
    model = load_model(path, name="b")
    renamed = {("colour" if k == "color" else k): v for k, v in frame.items()}
    with pytest.raises(DataError) as info:
        model.predict(renamed)
    message = info.value.diagnostics()
    assert str(path) in message
    assert "'color' (closest: 'colour')" in message


def test_corrupt_and_empty_onnx(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf\xff\xfe" * 10)
    with pytest.raises(ModelError, match=r"corrupt\.onnx: not a valid ONNX model \(.+\)"):
        load_model(corrupt, name="corrupt")

    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(
        ModelError, match=r"empty\.onnx: not a valid ONNX model \(the file is empty\)"
    ):
        load_model(empty, name="empty")


# --------------------------------------------------------------------------- load_model errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=rf"^{path}: no such model file$"):
        load_model(path, name="nope")


def test_unknown_suffix_lists_formats(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"x")
    with pytest.raises(ModelError) as info:
        load_model(path, name="m")
    message = info.value.message
    assert message.startswith(f"{path}: cannot tell the model format from the suffix '.h5'")
    for suffix in (".onnx", ".skops", ".pkl", ".pickle", ".joblib"):
        assert suffix in message


def test_unknown_format_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model format 'tflite'"):
        load_model(tmp_path / "m.onnx", name="m", format="tflite")
    with pytest.raises(ModelError, match="is a directory"):
        load_model(tmp_path, name="m")


def test_explicit_format_overrides_suffix(
    tmp_path: Path, data: pd.DataFrame, frame: dict, binary_pipe: Any
) -> None:
    path = export_onnx(binary_pipe, column_types(data, list(data.columns)), tmp_path / "model.bin")
    model = load_model(path, name="m", format="onnx")
    assert model.info.format == "onnx"
    np.testing.assert_array_equal(model.predict(frame).labels, binary_pipe.predict(data))


# --------------------------------------------------------------------------- skops and pickle


def test_skops_loads_and_matches(
    tmp_path: Path, data: pd.DataFrame, frame: dict, multi_pipe: Any
) -> None:
    import skops.io as sio

    path = tmp_path / "multi.skops"
    sio.dump(multi_pipe, path)
    model = load_model(path, name="multi")
    assert isinstance(model, SklearnModel)
    assert model.info.format == "skops"
    assert model.info.sha256 == sha256_of(path)
    assert model.info.classes == ("high", "low", "mid")
    assert model.info.task == "multiclass"
    assert model.info.features == ("color", "x1", "x2", "k")
    pred = model.predict(frame)
    np.testing.assert_allclose(pred.proba, multi_pipe.predict_proba(data), atol=1e-12)
    assert list(pred.labels) == list(multi_pipe.predict(data))


def test_skops_regressor(tmp_path: Path, data: pd.DataFrame, frame: dict, regressor: Any) -> None:
    import skops.io as sio

    path = tmp_path / "rf.skops"
    sio.dump(regressor, path)
    # skops does not trust tree internals by default: they must be listed explicitly.
    untrusted = sio.get_untrusted_types(file=path)
    assert "sklearn.tree._tree.Tree" in untrusted
    with pytest.raises(ModelError, match=r"rf\.skops: .*sklearn\.tree\._tree\.Tree"):
        load_model(path, name="rf")
    model = load_model(path, name="rf", trusted_types=untrusted)
    assert model.info.extra["trusted_types"] == sorted(untrusted)
    assert model.info.task == "regression"
    pred = model.predict(frame)
    np.testing.assert_allclose(pred.values, regressor.predict(data[["x1", "x2", "k"]]))


def test_skops_untrusted_types_refused_unless_listed(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline as sk_make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = np.random.default_rng(1).normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    est = sk_make_pipeline(FunctionTransformer(operator.neg), LogisticRegression()).fit(X, y)
    path = tmp_path / "custom.skops"
    sio.dump(est, path)
    assert sio.get_untrusted_types(file=path) == ["_operator.neg"]

    with pytest.raises(ModelError) as info:
        load_model(path, name="custom")
    assert str(path) in info.value.message
    assert "_operator.neg" in info.value.message
    assert info.value.tip and "trusted_types" in info.value.tip

    with pytest.raises(ModelError, match="_operator.neg"):
        load_model(path, name="custom", trusted_types=["numpy.something_else"])

    model = load_model(path, name="custom", trusted_types=["_operator.neg"])
    frame = {"a": X[:, 0], "b": X[:, 1]}
    np.testing.assert_array_equal(model.predict(frame).labels, est.predict(X))


def test_skops_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    path.write_bytes(b"definitely not a zip")
    with pytest.raises(ModelError, match=r"broken\.skops: not a valid skops file"):
        load_model(path, name="broken")
    empty = tmp_path / "empty.skops"
    empty.write_bytes(b"")
    with pytest.raises(
        ModelError, match=r"empty\.skops: not a valid skops file \(the file is empty\)"
    ):
        load_model(empty, name="empty")


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_pickle_refused_without_trust(tmp_path: Path, binary_pipe: Any, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(binary_pipe))
    with pytest.raises(ModelError) as info:
        load_model(path, name="m")
    error = info.value
    assert error.message.startswith(f"{path}: refusing to load a pickle/joblib file")
    assert "arbitrary code" in error.message
    assert error.tip and "skops.io.dump" in error.tip and "trust_pickle: true" in error.tip


def test_pickle_and_joblib_load_with_trust(
    tmp_path: Path, data: pd.DataFrame, frame: dict, binary_pipe: Any
) -> None:
    import joblib

    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(binary_pipe))
    job = tmp_path / "model.joblib"
    joblib.dump(binary_pipe, job)
    for path in (pkl, job):
        model = load_model(path, name="m", trust_pickle=True)
        assert model.info.format == "pickle"
        assert model.info.sha256 == sha256_of(path)
        assert model.info.classes == (0, 1)
        pred = model.predict(frame)
        np.testing.assert_allclose(pred.proba, binary_pipe.predict_proba(data))
        np.testing.assert_array_equal(pred.labels, binary_pipe.predict(data))


def test_pickle_of_something_without_predict(tmp_path: Path) -> None:
    path = tmp_path / "dict.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(
        ModelError, match=r"dict\.pkl: the loaded dict object has no predict method"
    ):
        load_model(path, name="d", trust_pickle=True)


def test_sklearn_missing_feature_column(tmp_path: Path, frame: dict, binary_pipe: Any) -> None:
    model = SklearnModel(binary_pipe, name="m", path="model.skops")
    partial = {k: v for k, v in frame.items() if k != "x2"}
    with pytest.raises(
        DataError, match=r"model\.skops: the data lacks the column the model reads: 'x2'"
    ):
        model.predict(partial)


def test_sklearn_array_model_uses_frame_order(data: pd.DataFrame) -> None:
    from sklearn.linear_model import LinearRegression

    X = data[["x1", "x2"]].to_numpy()
    reg = LinearRegression().fit(X, 3 * X[:, 0] - X[:, 1])
    model = SklearnModel(reg, name="lin")
    assert model.info.task == "regression"
    assert model.info.features == ()
    pred = model.predict({"x1": X[:, 0], "x2": X[:, 1]})
    np.testing.assert_allclose(pred.values, reg.predict(X))
    with pytest.raises(DataError, match="fitted on 2 columns but the data has 3"):
        model.predict({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 1]})


# --------------------------------------------------------------------------- entry points

ENTRYPOINT_SOURCE = """
import numpy as np
from sklearn.linear_model import LogisticRegression


class Wrapped:
    def __init__(self):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(80, 2))
        self.inner = LogisticRegression().fit(X, np.where(X[:, 0] > 0, "yes", "no"))
        self.classes_ = self.inner.classes_

    def predict(self, X):
        return self.inner.predict(X)

    def predict_proba(self, X):
        return self.inner.predict_proba(X)


def build():
    return Wrapped()


def build_bad():
    return {"not": "a model"}


def build_broken():
    raise RuntimeError("no weights found")
"""


def test_entrypoint_file(tmp_path: Path) -> None:
    source = tmp_path / "models" / "ep_file_model.py"
    source.parent.mkdir()
    source.write_text(textwrap.dedent(ENTRYPOINT_SOURCE))
    model = load_model(
        None, name="ep", entrypoint="models/ep_file_model.py:build", base_dir=tmp_path
    )
    assert model.info.format == "entrypoint"
    assert model.info.sha256 == sha256_of(source)
    assert model.info.path == str(source)
    assert model.info.classes == ("no", "yes")
    assert model.info.task == "binary"
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    pred = model.predict({"a": X[:, 0], "b": X[:, 1]})
    assert list(pred.labels) == ["yes", "no"]
    assert pred.proba is not None and pred.proba.shape == (2, 2)


def test_entrypoint_module(tmp_path: Path) -> None:
    (tmp_path / "ep_module_model.py").write_text(textwrap.dedent(ENTRYPOINT_SOURCE))
    model = load_model(None, name="ep", entrypoint="ep_module_model:build", base_dir=tmp_path)
    assert model.info.sha256 == sha256_of(tmp_path / "ep_module_model.py")
    assert model.info.classes == ("no", "yes")


def test_entrypoint_errors(tmp_path: Path) -> None:
    source = tmp_path / "ep_errors_model.py"
    source.write_text(textwrap.dedent(ENTRYPOINT_SOURCE))
    (tmp_path / "ep_raises.py").write_text("raise ImportError('needs tensorflow')\n")

    cases = {
        "no_colon_here": "expected 'module:function' or 'path/to/file.py:function'",
        "ep_errors_model.py:": "expected 'module:function'",
        "missing.py:build": r"missing\.py: no such file",
        "mlci_no_such_module_xyz:build": "no module named 'mlci_no_such_module_xyz'",
        "ep_errors_model.py:biuld": "has no function 'biuld'",
        "ep_errors_model.py:build_bad": r"build_bad\(\) returned a dict with no predict method",
        "ep_errors_model.py:build_broken": r"build_broken\(\) raised RuntimeError: no weights found",
        "ep_raises.py:build": r"importing .*ep_raises\.py failed \(ImportError: needs tensorflow\)",
    }
    for spec, pattern in cases.items():
        with pytest.raises(ModelError, match=pattern) as info:
            load_model(None, name="ep", entrypoint=spec, base_dir=tmp_path)
        assert spec in info.value.message
    with pytest.raises(ModelError) as info:
        load_model(None, name="ep", entrypoint="ep_errors_model.py:biuld", base_dir=tmp_path)
    assert info.value.tip == "did you mean 'build'?"


# --------------------------------------------------------------------------- conversion


def test_convert_pipeline(
    tmp_path: Path, data: pd.DataFrame, frame: dict, binary_pipe: Any
) -> None:
    model = SklearnModel(binary_pipe, name="pipe")
    out = tmp_path / "out" / "pipe.onnx"
    result = convert_to_onnx(model, frame, out)
    assert result.status == "converted", result.message
    assert result.onnx_path == out and out.is_file()
    assert result.rows_checked == N_ROWS
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert result.label_agreement is not None and result.label_agreement >= 0.999
    assert "\n" not in result.message
    assert sorted(p.name for p in out.parent.iterdir()) == ["pipe.onnx"]

    onnx_model = load_model(out, name="pipe")
    assert onnx_model.info.classes == (0, 1)
    assert onnx_model.info.extra["outputs"] == ["label", "probabilities"]  # no ZipMap
    np.testing.assert_allclose(
        onnx_model.predict(frame).proba, binary_pipe.predict_proba(data), atol=1e-4
    )


def test_convert_multiclass_and_regressor(
    tmp_path: Path, frame: dict, multi_pipe: Any, regressor: Any
) -> None:
    multi = convert_to_onnx(SklearnModel(multi_pipe, name="multi"), frame, tmp_path / "multi.onnx")
    assert multi.status == "converted", multi.message
    assert load_model(tmp_path / "multi.onnx", name="m").info.classes == ("high", "low", "mid")

    reg = convert_to_onnx(SklearnModel(regressor, name="rf"), frame, tmp_path / "rf.onnx")
    assert reg.status == "converted", reg.message
    assert reg.label_agreement is None and reg.max_abs_diff is not None


def test_convert_array_model(tmp_path: Path, data: pd.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression

    X = data[["x1", "x2"]].to_numpy()
    clf = LogisticRegression().fit(X, binary_target(data))
    result = convert_to_onnx(
        SklearnModel(clf, name="arr"), {"x1": X[:, 0], "x2": X[:, 1]}, tmp_path / "arr.onnx"
    )
    assert result.status == "converted", result.message
    assert load_model(tmp_path / "arr.onnx", name="a").info.extra["input_mode"] == "tensor"


def test_convert_hist_gradient_boosting_never_raises(tmp_path: Path, data: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = data[["x1", "x2", "k"]]
    clf = HistGradientBoostingClassifier(max_iter=10).fit(X, binary_target(data))
    out = tmp_path / "hgb.onnx"
    result = convert_to_onnx(SklearnModel(clf, name="hgb"), to_frame(X), out)
    assert result.status in ("failed", "converted")
    assert "\n" not in result.message and len(result.message) < 600
    if result.status == "failed":
        assert "HistGradientBoostingClassifier" in result.message
        assert result.onnx_path is None
        assert list(tmp_path.iterdir()) == []
    else:
        assert out.is_file()


def test_convert_failure_leaves_existing_file_alone(tmp_path: Path, data: pd.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression

    X = data[["x1", "x2"]].to_numpy()
    clf = LogisticRegression().fit(X, binary_target(data))
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous")
    # Text in a model without feature names cannot become a float tensor.
    result = convert_to_onnx(
        SklearnModel(clf, name="arr"), {"x1": X[:, 0], "c": to_frame(data)["color"]}, out
    )
    assert result.status == "failed"
    assert "text column" in result.message
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_convert_parity_lost_on_float32_precision(tmp_path: Path) -> None:
    """Timestamps stored as large floats lose their fractional part in float32."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    t = 1.7e9 + rng.normal(scale=5.0, size=300)
    df = pd.DataFrame({"t": t})
    y = (t > 1.7e9).astype(int)
    est = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(df, y)

    result = convert_to_onnx(SklearnModel(est, name="ts"), {"t": t}, tmp_path / "ts.onnx")
    assert result.status == "parity_lost", result.message
    assert result.max_abs_diff is not None and result.max_abs_diff > 1e-4
    assert result.onnx_path == tmp_path / "ts.onnx" and result.onnx_path.is_file()
    assert "differ" in result.message


def test_convert_parity_lost_with_zero_tolerance(
    tmp_path: Path, frame: dict, binary_pipe: Any
) -> None:
    """float32 arithmetic never reproduces float64 probabilities bit for bit."""
    result = convert_to_onnx(
        SklearnModel(binary_pipe, name="pipe"), frame, tmp_path / "p.onnx", atol=0.0, rtol=0.0
    )
    assert result.status == "parity_lost"
    assert result.max_abs_diff is not None and 0 < result.max_abs_diff <= 1e-4
    assert result.label_agreement == 1.0


def test_convert_empty_sample(tmp_path: Path, frame: dict, binary_pipe: Any) -> None:
    empty = {k: v[:0] for k, v in frame.items()}
    result = convert_to_onnx(SklearnModel(binary_pipe, name="pipe"), empty, tmp_path / "p.onnx")
    assert result.status == "failed" and "no rows" in result.message
    assert list(tmp_path.iterdir()) == []
