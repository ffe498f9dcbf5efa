"""`mlci check` end to end on a generated project, cross-checked with independent tools."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlci.commands import main
from mlci.results import SCHEMA_VERSION, schema
from project import FEATURES, Project


def run_check(project: Project, out: Path) -> dict[str, Any]:
    assert main(["check", "--config", str(project.config), "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


def onnx_proba(path: Path, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities straight from ONNX Runtime, independent of mlci's model code."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {
        name: frame[[name]].to_numpy().astype(object if name == "region" else np.float32)
        for name in FEATURES
    }
    outputs = session.run(None, feeds)
    return np.asarray(outputs[1], dtype=np.float64)


@pytest.fixture(scope="module")
def checked(
    built_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Project, dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("out")
    return built_project, run_check(built_project, out), out


def test_results_follow_the_schema(checked: tuple[Project, dict[str, Any], Path]) -> None:
    _, results, out = checked
    jsonschema.Draft202012Validator(schema()).validate(results)
    assert results["schema_version"] == SCHEMA_VERSION
    assert (out / "report.md").read_text().startswith("# mlci report: demo")


def test_digests_and_rows(checked: tuple[Project, dict[str, Any], Path]) -> None:
    project, results, _ = checked
    digest = hashlib.sha256(project.data.read_bytes()).hexdigest()
    assert results["data"]["sha256"] == digest
    assert results["data"]["rows"] == len(pd.read_csv(project.data))
    model = project.root / "models" / "candidate.onnx"
    assert results["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert results["model"]["size_bytes"] == model.stat().st_size
    assert results["model"]["format"] == "onnx"
    assert results["model"]["task"] == "binary"
    assert results["baseline"]["name"] == "demo (baseline)"


def test_overall_metrics_match_scikit_learn(checked: tuple[Project, dict[str, Any], Path]) -> None:
    project, results, _ = checked
    frame = pd.read_csv(project.data)
    y = frame["y"].to_numpy()
    metrics = results["evaluation"]["metrics"]
    for role, path in (("candidate", "candidate.onnx"), ("baseline", "baseline.onnx")):
        proba = onnx_proba(project.root / "models" / path, frame)
        labels = proba.argmax(axis=1)
        expected = {
            "accuracy": skm.accuracy_score(y, labels),
            "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
            "log_loss": skm.log_loss(y, proba),
            "f1": skm.f1_score(y, labels),
            "balanced_accuracy": skm.balanced_accuracy_score(y, labels),
        }
        for name, value in expected.items():
            got = metrics[role][name]
            assert got["value"] == pytest.approx(value, rel=1e-5), (role, name)
            assert got["ci_low"] <= got["value"] <= got["ci_high"]
        delta = metrics["delta"]["roc_auc"]
    assert delta["value"] == pytest.approx(
        metrics["candidate"]["roc_auc"]["value"] - metrics["baseline"]["roc_auc"]["value"],
        abs=1e-12,
    )


def test_declared_slices_match_pandas(checked: tuple[Project, dict[str, Any], Path]) -> None:
    project, results, _ = checked
    frame = pd.read_csv(project.data)
    proba = onnx_proba(project.root / "models" / "candidate.onnx", frame)
    slices = {s["name"]: s for s in results["evaluation"]["slices"] if s["source"] == "declared"}
    for region, group in frame.groupby("region"):
        s = slices[f"region={region}"]
        assert s["source"] == "declared"
        assert s["size"] == len(group)
        rows = group.index.to_numpy()
        accuracy = skm.accuracy_score(group["y"], proba[rows].argmax(axis=1))
        assert s["metrics"]["candidate"]["accuracy"]["value"] == pytest.approx(accuracy)
    young = frame[(frame.age >= 18) & (frame.age < 40)]
    assert slices["age in [18, 40)"]["size"] == len(young)
    assert slices["long-tenure"]["size"] == int((frame.tenure >= 20).sum())


def test_discovered_slices_are_reported(checked: tuple[Project, dict[str, Any], Path]) -> None:
    _, results, _ = checked
    discovered = [s for s in results["evaluation"]["slices"] if s["source"] == "discovered"]
    info = results["evaluation"]["discovery"]
    assert info["found"] == len(discovered) <= 5
    assert info["rows_searched"] + info["rows_tested"] == results["data"]["rows"]
    assert abs(info["rows_tested"] / results["data"]["rows"] - info["holdout"]) < 0.05
    for s in discovered:
        assert s["sliceline"]["score"] > 0
        # Measured on the held-out rows only.
        assert 0 < s["size"] <= info["rows_tested"]


def test_without_holdout_slices_are_measured_where_they_were_found(
    project: Project, tmp_path: Path
) -> None:
    project.config.write_text(
        project.config.read_text().replace("    top_k: 5\n", "    top_k: 5\n    holdout: 0\n")
    )
    results = run_check(project, tmp_path / "out")
    info = results["evaluation"]["discovery"]
    assert info["rows_searched"] == info["rows_tested"] == results["data"]["rows"]
    discovered = [s for s in results["evaluation"]["slices"] if s["source"] == "discovered"]
    assert discovered and all(s["size"] >= info["min_support"] for s in discovered)


def test_same_inputs_same_results(
    checked: tuple[Project, dict[str, Any], Path], tmp_path: Path
) -> None:
    project, first, _ = checked
    second = run_check(project, tmp_path / "again")
    for doc in (first, second):
        doc.pop("created")
        for stage in doc["stages"].values():
            stage.pop("duration_s")
        # The card says when its results were made, so its files' digests follow `created`.
        for card in doc["card"].values():
            if isinstance(card, dict):
                card.pop("sha256")
    assert first == second


def test_report_rerenders_from_results(
    checked: tuple[Project, dict[str, Any], Path], tmp_path: Path
) -> None:
    _, _, out = checked
    target = tmp_path / "again.md"
    assert main(["report", str(out / "results.json"), "--out", str(target)]) == 0
    assert target.read_text() == (out / "report.md").read_text()


def test_several_models_get_a_folder_each(project: Project, tmp_path: Path) -> None:
    text = project.config.read_text()
    text = text.replace(
        "evaluation:",
        "  - name: second\n    path: models/baseline.onnx\nevaluation:",
    )
    project.config.write_text(text)
    out = tmp_path / "out"
    assert main(["check", "--config", str(project.config), "--out", str(out)]) == 0
    first = json.loads((out / "demo" / "results.json").read_text())
    second = json.loads((out / "second" / "results.json").read_text())
    assert first["model"]["name"] == "demo" and second["model"]["name"] == "second"
    assert second["baseline"] is None and second["evaluation"]["metrics"]["delta"] is None
    assert (out / "second" / "report.md").exists()


def test_weights_change_the_metrics(project: Project, tmp_path: Path) -> None:
    frame = pd.read_csv(project.data)
    frame["w"] = np.where(frame["region"] == "north", 5.0, 1.0)
    frame.to_csv(project.data, index=False)
    project.config.write_text(
        project.config.read_text().replace("  id: id\n", "  id: id\n  weight: w\n")
    )
    results = run_check(project, tmp_path / "out")
    proba = onnx_proba(project.root / "models" / "candidate.onnx", frame)
    expected = skm.roc_auc_score(frame["y"], proba[:, 1], sample_weight=frame["w"])
    assert results["evaluation"]["metrics"]["candidate"]["roc_auc"]["value"] == pytest.approx(
        expected, rel=1e-6
    )
    assert "w" not in results["data"]["features"]


def test_parquet_gives_the_same_metrics(
    checked: tuple[Project, dict[str, Any], Path], project: Project, tmp_path: Path
) -> None:
    _, csv_results, _ = checked
    pd.read_csv(project.data).to_parquet(project.root / "data" / "eval.parquet")
    project.config.write_text(
        project.config.read_text().replace("data/eval.csv", "data/eval.parquet")
    )
    results = run_check(project, tmp_path / "out")
    assert results["data"]["format"] == "parquet"
    assert results["evaluation"]["metrics"] == csv_results["evaluation"]["metrics"]
