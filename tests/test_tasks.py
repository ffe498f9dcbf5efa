"""`mlci check` on regression and multiclass models, scikit-learn formats and conversion."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from mlci.commands import main

FEATURES = ["x1", "x2", "x3"]


def write_project(root: Path, frame: pd.DataFrame, models: str, extra: str = "") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "data" / "eval.csv", index=False)
    config = root / "mlci.yaml"
    config.write_text(
        "version: 1\ndata:\n  path: data/eval.csv\n  target: y\n  features: [x1, x2, x3]\n"
        + textwrap.dedent(models)
        + "evaluation:\n  bootstrap: 200\n  min_slice_size: 10\n"
        + extra
    )
    return config


def check(config: Path, out: Path) -> dict[str, Any]:
    assert main(["check", "--quiet", "--config", str(config), "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


def numeric_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame(x, columns=FEATURES)


def test_regression_single_tensor_onnx(tmp_path: Path) -> None:
    train, evaluation = numeric_frame(800, 1), numeric_frame(400, 2)
    coef = np.array([1.5, -2.0, 0.5])
    rng = np.random.default_rng(3)
    train["y"] = train[FEATURES].to_numpy() @ coef + 10 + rng.normal(size=800)
    evaluation["y"] = evaluation[FEATURES].to_numpy() @ coef + 10 + rng.normal(size=400)
    models = tmp_path / "models"
    models.mkdir()
    x = train[FEATURES].to_numpy(np.float32)
    for name, model in (("candidate", LinearRegression()), ("baseline", Ridge(alpha=500.0))):
        model.fit(x, train["y"])
        (models / f"{name}.onnx").write_bytes(to_onnx(model, x[:1]).SerializeToString())
    config = write_project(
        tmp_path,
        evaluation,
        """\
        models:
          - name: reg
            path: models/candidate.onnx
            baseline:
              path: models/baseline.onnx
        """,
        "  metrics: [mae, rmse, r2, mape]\n  slices:\n    - feature: x1\n      quantiles: 3\n",
    )
    results = check(config, tmp_path / "out")
    ev = results["evaluation"]
    assert results["model"]["task"] == "regression" and ev["primary_metric"] == "rmse"
    y = evaluation["y"].to_numpy()
    pred = LinearRegression().fit(x, train["y"]).predict(evaluation[FEATURES].to_numpy(np.float32))
    expected = {
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": np.sqrt(skm.mean_squared_error(y, pred)),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }
    for name, value in expected.items():
        assert ev["metrics"]["candidate"][name]["value"] == pytest.approx(value, rel=1e-4), name
    # The heavily regularised baseline is clearly worse: lower error means "better".
    assert ev["metrics"]["delta"]["rmse"]["verdict"] == "better"
    assert ev["metrics"]["delta"]["rmse"]["value"] < 0
    assert ev["mcnemar"] is None
    assert len([s for s in ev["slices"] if s["source"] == "declared"]) == 3


def test_multiclass_zipmap_with_text_labels(tmp_path: Path) -> None:
    train, evaluation = numeric_frame(900, 4), numeric_frame(450, 5)
    names = np.array(["high", "low", "mid"])
    for frame in (train, evaluation):
        score = frame["x1"] + 0.5 * frame["x2"]
        frame["y"] = names[np.digitize(score, [-0.5, 0.5])]
    models = tmp_path / "models"
    models.mkdir()
    x = train[FEATURES].to_numpy(np.float32)
    model = LogisticRegression(max_iter=500).fit(x, train["y"])
    # Default options keep skl2onnx's ZipMap: probabilities arrive as a list of dicts.
    (models / "candidate.onnx").write_bytes(to_onnx(model, x[:1]).SerializeToString())
    config = write_project(
        tmp_path,
        evaluation,
        """\
        models:
          - name: multi
            path: models/candidate.onnx
        """,
    )
    results = check(config, tmp_path / "out")
    ev = results["evaluation"]
    assert results["model"]["task"] == "multiclass"
    assert ev["classes"] == ["high", "low", "mid"]
    y = evaluation["y"].to_numpy()
    xe = evaluation[FEATURES].to_numpy(np.float32)
    proba, labels = model.predict_proba(xe), model.predict(xe)
    expected = {
        "accuracy": skm.accuracy_score(y, labels),
        "f1_macro": skm.f1_score(y, labels, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr"),
        "log_loss": skm.log_loss(y, proba),
    }
    for name, value in expected.items():
        assert ev["metrics"]["candidate"][name]["value"] == pytest.approx(value, rel=1e-4), name
    assert ev["metrics"]["baseline"] is None and ev["metrics"]["delta"] is None


def test_skops_candidate_converted_and_entrypoint_baseline(tmp_path: Path) -> None:
    import skops.io as sio

    train, evaluation = numeric_frame(600, 6), numeric_frame(300, 7)
    for frame in (train, evaluation):
        frame["y"] = (frame["x1"] - frame["x3"] > 0).astype(int)
    model = LogisticRegression().fit(train[FEATURES], train["y"])
    models = tmp_path / "models"
    models.mkdir()
    sio.dump(model, models / "candidate.skops")
    (tmp_path / "baseline_model.py").write_text(
        textwrap.dedent(
            """\
            import numpy as np

            class Threshold:
                classes_ = np.array([0, 1])

                def predict_proba(self, x):
                    x = np.asarray(x, dtype=float)
                    p = 1 / (1 + np.exp(-x[:, 0]))
                    return np.column_stack([1 - p, p])

                def predict(self, x):
                    return self.predict_proba(x).argmax(axis=1)

            def load():
                return Threshold()
            """
        )
    )
    config = write_project(
        tmp_path,
        evaluation,
        """\
        models:
          - name: sk
            path: models/candidate.skops
            convert: true
            baseline:
              entrypoint: "baseline_model.py:load"
        """,
    )
    out = tmp_path / "out"
    results = check(config, out)
    assert results["model"]["format"] == "skops"
    assert results["baseline"]["format"] == "entrypoint"
    conversion = results["conversion"]
    assert conversion["status"] == "converted", conversion["message"]
    assert conversion["max_abs_diff"] < 1e-4 and conversion["label_agreement"] == 1.0
    assert (out / "sk.onnx").is_file()
    expected = skm.roc_auc_score(evaluation["y"], model.predict_proba(evaluation[FEATURES])[:, 1])
    assert results["evaluation"]["metrics"]["candidate"]["roc_auc"]["value"] == pytest.approx(
        expected
    )

    converted = tmp_path / "converted"
    assert main(["convert", "--config", str(config), "--out", str(converted)]) == 0
    assert (converted / "sk.onnx").is_file()


def test_convert_reports_failure_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = numeric_frame(300, 8)
    train["y"] = (train["x1"] > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=5).fit(train[FEATURES], train["y"])
    (tmp_path / "models").mkdir()
    sio.dump(model, tmp_path / "models" / "hgb.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "models" / "hgb.skops")
    config = write_project(
        tmp_path,
        train,
        f"""\
        models:
          - name: hgb
            path: models/hgb.skops
            trusted_types: {json.dumps(untrusted)}
        """,
    )
    code = main(["convert", "--config", str(config), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    if "converted" in printed.split(":")[1]:
        assert code == 0  # a newer skl2onnx may learn to convert it
    else:
        assert code == 1
        assert printed.startswith(
            "hgb: failed: skl2onnx cannot convert HistGradientBoostingClassifier"
        )
        assert not (tmp_path / "out" / "hgb.onnx").exists()
