"""Model tests that must not fail or hold the gate for no reason: contracts on ONNX-only and
regression models, determinism within a tolerance, robustness of regressors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlci.commands import main
from mlci.models.interface import Predictions
from mlci.testing import assert_robust
from mlci.testing import checks as C
from project import Project, make_frame, write_csv

ROWS = np.arange(1, 101)


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in results["tests"]["results"]}


def test_determinism_compares_within_the_tolerance() -> None:
    # Two runs of a parallel random forest differ in the last bits of a probability.
    rng = np.random.default_rng(0)
    p = rng.random(100)
    first = Predictions(labels=(p > 0.5).astype(int), proba=np.column_stack([1 - p, p]))
    q = p + rng.choice([0.0, 4.4e-16, -2.2e-16], 100)
    second = Predictions(labels=(q > 0.5).astype(int), proba=np.column_stack([1 - q, q]))
    strict = C.contract_determinism(first, second, ROWS, 0.0)
    assert strict.status == "failed" and "by more than ±0" in strict.message
    loose = C.contract_determinism(first, second, ROWS, 1e-9)
    assert loose.status == "passed", loose.message
    assert loose.observed == pytest.approx(4.4e-16, rel=0.01)
    assert "within ±1e-09" in loose.message
    # A real difference still fails at the same tolerance.
    r = p.copy()
    r[7] += 1e-3
    third = Predictions(labels=(r > 0.5).astype(int), proba=np.column_stack([1 - r, r]))
    out = C.contract_determinism(first, third, ROWS, 1e-9)
    assert out.status == "failed" and out.details["count"] == 1
    assert out.details["examples"][0]["row"] == 8


def test_determinism_of_a_regressor_compares_values_relatively() -> None:
    values = np.linspace(1e5, 2e5, 100)
    first = Predictions(values=values)
    # float32 rounding of values near 1e5 is about 0.008: relative, not absolute.
    second = Predictions(values=values.astype(np.float32).astype(np.float64))
    assert C.contract_determinism(first, second, ROWS, 1e-6).status == "passed"
    moved = values.copy()
    moved[3] *= 1.001
    out = C.contract_determinism(first, Predictions(values=moved), ROWS, 1e-6)
    assert out.status == "failed" and out.details["labels_changed"] == 0


def test_robustness_of_a_regressor_tolerance_scales_with_the_noise_and_the_target_spread(
    tmp_path: Path,
) -> None:
    from mlci.data import Dataset
    from mlci.models.onnx import OnnxModel

    rng = np.random.default_rng(3)
    n = 1000
    x1, x2 = rng.normal(0, 1, n), rng.normal(5, 2, n)
    target = 3 * x1 + x2 + rng.normal(0, 1, n)
    data = Dataset(
        path=tmp_path / "d.csv",
        display="d.csv",
        format="csv",
        sha256="0" * 64,
        columns={"x1": x1, "x2": x2, "y": target},
        kinds={"x1": "numeric", "x2": "numeric", "y": "numeric"},
        target="y",
        features=("x1", "x2"),
    )
    smooth = OnnxModel(_regressor(tmp_path / "smooth.onnx", x1, x2, target, steps=False))
    # A linear model moves with the noise, by less than twice its share of the target spread.
    out = assert_robust(smooth, data, noise=0.1)
    assert out.details["tolerance"] == pytest.approx(2 * 0.1 * np.std(target))
    assert out.observed <= 0.05
    # An explicit tolerance of 0 counts every move, as before.
    with pytest.raises(AssertionError, match="moved the prediction by more than 0 in"):
        assert_robust(smooth, data, noise=0.1, tolerance=0.0)
    # A brittle model (sharp steps) still fails at the default.
    brittle = OnnxModel(_regressor(tmp_path / "steps.onnx", x1, x2, target, steps=True))
    with pytest.raises(AssertionError, match="moved the prediction by more than"):
        assert_robust(brittle, data, noise=0.1)


def _regressor(path: Path, x1: np.ndarray, x2: np.ndarray, y: np.ndarray, steps: bool) -> Path:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    x = np.column_stack([x1, x2]).astype(np.float32)
    model = DecisionTreeRegressor(random_state=0) if steps else LinearRegression()
    model.fit(x, y)
    path.write_bytes(to_onnx(model, x[:1]).SerializeToString())
    return path


# --------------------------------------------------------------------------- end to end

CONTRACT = """\
tests:
  checks:
    - kind: contract
    - kind: robustness
      noise: 0.1
gate:
  rules:
    - kind: tests
"""


def test_a_contract_on_an_onnx_model_against_itself_promotes(
    built_project: Project, tmp_path: Path
) -> None:
    # A/A: the candidate is its own baseline. Parity cannot apply to an ONNX-only model, and
    # a check that cannot apply is not missing evidence: the tests rule passes.
    project = built_project.copy(tmp_path / "project")
    (project.root / "models" / "baseline.onnx").write_bytes(
        (project.root / "models" / "candidate.onnx").read_bytes()
    )
    text = project.config.read_text().replace("stages:", "#stages:")
    project.config.write_text(
        text
        + "stages: [tests, gate]\n"
        + textwrap.dedent(CONTRACT).replace("noise: 0.1", "noise: 0.01")
    )
    out = tmp_path / "out"
    assert main(["check", "--config", str(project.config), "--out", str(out), "-q"]) == 0
    results = json.loads((out / "results.json").read_text())
    tests = by_id(results)
    parity = tests["contract:parity"]
    assert parity["status"] == "skipped" and parity["details"]["applicable"] is False
    rule = results["gate"]["rules"][0]
    assert rule["status"] == "pass", rule
    assert rule["observed"]["not_applicable"] == 1
    assert results["gate"]["decision"] == "promote"


def test_contract_and_robustness_work_on_a_regression_model(tmp_path: Path) -> None:
    # A scikit-learn regressor of a target in the hundreds of thousands: every contract part
    # runs (probabilities cannot apply), parity holds within float32 rounding (relative), and
    # robustness uses a tolerance on the target's scale.
    import pandas as pd
    import skops.io as sio
    from sklearn.ensemble import RandomForestRegressor

    frame = make_frame(800, seed=4)
    frame["price"] = 2000.0 * frame["age"] + 0.5 * frame["income"] + 1000.0 * frame["tenure"]
    del frame["y"], frame["region"]
    write_csv(tmp_path / "data.csv", frame)
    features = ["age", "income", "tenure"]
    x = np.column_stack([frame[f] for f in features])
    forest = RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=2)
    forest.fit(pd.DataFrame(x, columns=features), frame["price"])
    sio.dump(forest, tmp_path / "model.skops")
    (tmp_path / "mlci.yaml").write_text(
        "version: 1\n"
        "data: {path: data.csv, target: price, id: id}\n"
        "models: [{name: house, path: model.skops, trusted_types: [sklearn.tree._tree.Tree]}]\n"
        "stages: [tests, gate]\n" + CONTRACT
    )
    out = tmp_path / "out"
    code = main(["check", "--config", str(tmp_path / "mlci.yaml"), "--out", str(out), "-q"])
    results = json.loads((out / "results.json").read_text())
    tests = by_id(results)
    for part in ("inputs", "outputs", "determinism", "parity"):
        assert tests[f"contract:{part}"]["status"] == "passed", tests[f"contract:{part}"]
    probabilities = tests["contract:probabilities"]
    assert probabilities["status"] == "skipped"
    assert probabilities["details"]["applicable"] is False
    robustness = tests["robustness"]
    assert robustness["details"]["tolerance"] == pytest.approx(
        2 * 0.1 * np.std(frame["price"]), rel=1e-6
    )
    assert results["gate"]["decision"] == "promote", results["gate"]["rules"]
    assert code == 0
