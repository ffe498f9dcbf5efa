"""The bundled credit example tells its story: better overall, worse on one subgroup."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlci.commands import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("example") / "credit"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "models", "mlci-out"))
    subprocess.run([sys.executable, str(root / "train.py")], check=True, capture_output=True)
    out = root / "mlci-out"
    # The gate blocks the candidate for its subgroup regression: exit 1.
    assert main(["check", "--quiet", "--config", str(root / "mlci.yaml"), "--out", str(out)]) == 1
    return json.loads((out / "results.json").read_text())


def test_candidate_is_better_overall(results: dict) -> None:
    delta = results["evaluation"]["metrics"]["delta"]
    assert delta["roc_auc"]["verdict"] == "better"
    assert delta["roc_auc"]["ci_low"] > 0


def test_declared_subgroup_is_flagged(results: dict) -> None:
    slices = {s["name"]: s for s in results["evaluation"]["slices"] if s["source"] == "declared"}
    subgroup = slices["employment=self-employed, channel=broker"]
    assert subgroup["flagged"]
    assert subgroup["delta"]["roc_auc"]["ci_high"] < 0
    assert not slices["channel=online"]["flagged"]


def test_slice_finding_discovers_the_subgroup(results: dict) -> None:
    discovered = [s for s in results["evaluation"]["slices"] if s["source"] == "discovered"]
    names = [s["name"] for s in discovered]
    assert "employment=self-employed, channel=broker" in names
    flagged = [s for s in discovered if s["flagged"]]
    assert flagged and all("self-employed" in s["name"] or "broker" in s["name"] for s in flagged)


def test_gate_blocks_on_the_slice_regression(results: dict) -> None:
    gate = results["gate"]
    assert gate["decision"] == "block"
    failing = [r for r in gate["rules"] if r["status"] == "fail" and r["required"]]
    # The slice regression, and the model test that guards the same subgroup.
    assert sorted(r["kind"] for r in failing) == ["slices", "tests"]
    failed_tests = [
        t["id"] for t in results["tests"]["results"] if t["status"] == "failed" and t["required"]
    ]
    # The new broker deal also shows against the training data: not in any one feature (the
    # channel's distance straddles its limit), but in how employment and channel go together.
    assert sorted(failed_tests) == ["multivariate_drift", "subgroup-roc-auc"]
    tests = {t["id"]: t for t in results["tests"]["results"]}
    assert tests["drift:channel"]["details"]["decision"] == "inconclusive"
    drivers = [d["feature"] for d in tests["multivariate_drift"]["details"]["drivers"][:2]]
    assert sorted(drivers) == ["channel", "employment"]
    assert tests["trivial_model"]["status"] == "passed"
    assert all(
        tests[f"integrity:{part}"]["status"] == "passed"
        for part in ("leakage", "new_categories", "spellings", "conflicting_labels", "constant")
    )
    assert gate["model_sha256"] == results["model"]["sha256"]
