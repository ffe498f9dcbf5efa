"""`mlci check` with the data-quality checks: planted defects fail, clean counterparts pass."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from mlci.commands import main
from mlci.results import schema
from project import Project, make_frame, train_onnx, write_csv

CHECKS = """\
tests:
  checks:
    - kind: drift
    - kind: multivariate_drift
      max_rows: 2000
    - kind: integrity
    - kind: trivial_model
"""
EVALUATION = """\
  fairness:
    features: [region, {feature: age, bins: [18, 40, 60, 80]}]
  importance:
    repeats: 3
"""
GATE = """\
gate:
  rules:
    - kind: fairness
      feature: region
      metric: demographic_parity
      max_difference: 0.05
    - kind: fairness
      id: loose
      feature: age
      metric: equalized_odds
      max_difference: 0.9
    - kind: tests
      kinds: [drift, multivariate_drift, integrity, trivial_model]
"""


def configure(project: Project, reference: dict[str, np.ndarray]) -> None:
    write_csv(project.root / "data" / "reference.csv", reference)
    text = project.config.read_text()
    text = text.replace("  id: id\n", "  id: id\n  reference: data/reference.csv\n")
    text = text.replace("  discover:\n", EVALUATION + "  discover:\n")
    project.config.write_text(text + textwrap.dedent(CHECKS) + GATE)


def check(project: Project, out: Path) -> dict[str, Any]:
    main(["check", "--config", str(project.config), "--out", str(out), "-q"])
    document: dict[str, Any] = json.loads((out / "results.json").read_text())
    jsonschema.Draft202012Validator(schema()).validate(document)
    return document


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in document["tests"]["results"]}


@pytest.fixture(scope="module")
def clean(built_project: Project, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = built_project.copy(tmp_path_factory.mktemp("clean") / "project")
    configure(project, make_frame(3000, seed=1))
    return check(project, project.root / "out")


@pytest.fixture(scope="module")
def broken(built_project: Project, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = built_project.copy(tmp_path_factory.mktemp("broken") / "project")
    reference = make_frame(3000, seed=1)
    reference["income"] = np.round(reference["income"] * 1.3, 2)  # a +30% shift
    evaluation = pd.read_csv(project.data)
    # 40 evaluation rows leaked into the training data, ids aside.
    leaked = evaluation.iloc[100:140]
    for column in reference:
        if column != "id":
            reference[column][:40] = leaked[column].to_numpy()
    evaluation.loc[:29, "region"] = "North "  # a misspelled category
    evaluation.to_csv(project.data, index=False)
    configure(project, reference)
    # A candidate trained on shuffled labels learned nothing; the baseline is broken too.
    train = make_frame(3000, seed=1)
    train["y"] = np.random.default_rng(0).permutation(train["y"])
    train_onnx(train, project.root / "models" / "candidate.onnx", c=1.0, use_region=True)
    train_onnx(train, project.root / "models" / "baseline.onnx", c=1.0, use_region=False)
    return check(project, project.root / "out")


def test_clean_data_passes_every_check(clean: dict[str, Any]) -> None:
    tests = by_id(clean)
    expected = {
        "drift:age",
        "drift:income",
        "drift:region",
        "drift:tenure",
        "multivariate_drift",
        "integrity:leakage",
        "integrity:new_categories",
        "integrity:spellings",
        "integrity:conflicting_labels",
        "integrity:relation_changed",
        "integrity:constant",
        "trivial_model",
    }
    assert set(tests) == expected
    for name, result in tests.items():
        assert result["status"] == "passed", (name, result["message"])
    assert clean["gate"]["rules"][2]["status"] == "pass"


def test_planted_defects_fail(broken: dict[str, Any]) -> None:
    tests = by_id(broken)
    income = tests["drift:income"]
    assert income["status"] == "failed" and income["details"]["wasserstein"]["ci_low"] > 0.1
    assert tests["drift:age"]["status"] == "passed"
    drift = tests["multivariate_drift"]
    assert drift["status"] == "failed"
    assert drift["details"]["drivers"][0]["feature"] == "income"
    leak = tests["integrity:leakage"]
    assert leak["status"] == "failed" and leak["details"]["count"] == 40
    assert leak["details"]["examples"][0] == {"row": 101, "reference_row": 1}
    assert tests["integrity:new_categories"]["status"] == "failed"
    spelling = tests["integrity:spellings"]
    assert spelling["status"] == "failed" and "'North '" in spelling["message"]
    trivial = tests["trivial_model"]
    assert trivial["status"] == "failed"
    assert "the baseline is not shown better than the trivial model either" in trivial["message"]
    gate = broken["gate"]
    assert gate["decision"] == "block"
    assert gate["rules"][2]["status"] == "fail"


def test_fairness_and_importance_in_the_evaluation(clean: dict[str, Any]) -> None:
    ev = clean["evaluation"]
    region = next(f for f in ev["fairness"]["features"] if f["feature"] == "region")
    assert [g["group"] for g in region["groups"]] == ["east", "north", "south", "west"]
    dp = region["disparities"]["demographic_parity"]
    # The candidate reads region, which raises scores in the north; the baseline does not.
    assert dp["difference"]["ci_low"] > 0.2 > 0.1 > dp["baseline_difference"]["value"]
    assert dp["difference_delta"]["ci_low"] > 0
    rules = {r["id"]: r for r in clean["gate"]["rules"]}
    assert rules["fairness:demographic_parity:region"]["status"] == "fail"
    assert "region" in rules["fairness:demographic_parity:region"]["observed_text"]
    assert rules["loose"]["status"] == "pass"
    importance = {f["feature"]: f for f in ev["importance"]["features"]}
    assert importance["region"]["baseline"]["value"] == 0.0
    assert importance["region"]["reliance"] == "more"
    report = (Path(ev and clean["config"]["path"]).parent / "out" / "report.md").read_text()
    assert "## Fairness" in report and "## Feature importance" in report


def test_multivariate_drift_without_scikit_learn_is_a_one_line_error(
    built_project: Project, tmp_path: Path
) -> None:
    project = built_project.copy(tmp_path / "project")
    configure(project, make_frame(3000, seed=1))
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from mlci.commands import main\n"
        f"sys.exit(main(['test', '-c', {str(project.config)!r}, '-o', {str(tmp_path / 'o')!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        "tests.checks[1].kind: a multivariate_drift check trains a classifier with scikit-learn"
        in lines[-1]
    )
    assert "pip install 'mlci[sklearn]'" in lines[-1]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("evaluation", "checks", "gate", "message"),
    [
        (
            "",
            "    - {kind: integrity, checks: [inputs]}\n",
            "",
            "'inputs' is not a part of the integrity check",
        ),
        (
            "",
            "    - {kind: drift, wasserstein: null, jensen_shannon: null, psi: null}\n",
            "",
            "a drift check needs at least one of",
        ),
        (
            "",
            "    - {kind: trivial_model, metric: roc_uac}\n",
            "",
            "tests.checks[0].metric: unknown metric 'roc_uac'",
        ),
        (
            "  fairness:\n    features: [regoin]\n",
            "",
            "",
            "evaluation.fairness.features[0]: no column 'regoin' in",
        ),
        ("  fairness:\n    features: [income]\n", "", "", "'income' has 1"),
        (
            "",
            "",
            "gate:\n  rules:\n    - {kind: fairness, feature: region}\n",
            "a fairness rule needs 'max_difference' or 'min_ratio'",
        ),
        (
            "",
            "",
            "gate:\n  rules:\n    - {kind: fairness, metric: parity, min_ratio: 0.8}\n",
            "unknown fairness measure 'parity'",
        ),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    project: Project,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    evaluation: str,
    checks: str,
    gate: str,
    message: str,
) -> None:
    text = project.config.read_text()
    text = text.replace("  discover:\n", evaluation + "  discover:\n")
    text = text.replace("  id: id\n", "  id: id\n  reference: data/eval.csv\n")
    if checks:
        text += "tests:\n  checks:\n" + checks
    project.config.write_text(text + gate)
    assert main(["check", "-c", str(project.config), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()
