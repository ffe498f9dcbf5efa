"""`mlci init`: inspect a model and its data, write mlci.yaml and the workflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlci.commands import main
from mlci.config import load_config
from mlci.errors import InputError, UsageError
from mlci.init import (
    ACTION_PLACEHOLDER,
    COMMIT_PLACEHOLDER,
    ColumnProfile,
    ModelProfile,
    choose_target,
    init,
    plan,
    render_workflow,
)

ROOT = Path(__file__).resolve().parent.parent
SHA = "1234567890abcdef1234567890abcdef12345678"


def col(
    name: str, kind: str, distinct: int, values: tuple[str, ...] = (), **kw: object
) -> ColumnProfile:
    return ColumnProfile(name, kind, distinct, 0, values=values, **kw)  # type: ignore[arg-type]


COLUMNS = {
    "row": col("row", "numeric", 100, integral=True),
    "age": col("age", "numeric", 60, integral=True),
    "region": col("region", "categorical", 4, ("e", "n", "s", "w")),
    "flag": col("flag", "numeric", 2, ("0", "1"), integral=True),
    "churned": col("churned", "numeric", 2, ("0", "1"), integral=True),
}
CLASSIFIER = ModelProfile("onnx", ("age", "region", "flag"), "binary", ("0", "1"))


def test_the_target_is_the_one_column_that_fits_the_model() -> None:
    assert choose_target(100, COLUMNS, CLASSIFIER) == ("churned", ("churned",))
    # without input names, both 0/1 columns fit: ambiguous, unless one has a usual name
    blind = ModelProfile("onnx", (), "binary", ("0", "1"))
    with pytest.raises(UsageError, match="flag, churned could all be"):
        choose_target(100, COLUMNS, blind)
    named = {**COLUMNS, "label": col("label", "categorical", 2, ("0", "1"))}
    named.pop("churned")
    assert choose_target(100, named, blind)[0] == "label"
    # a regressor's target is numeric; an id (unique per row) is never the target
    regressor = ModelProfile("onnx", ("age", "region"), "regression", None)
    assert (
        choose_target(100, {**COLUMNS, "flag": col("flag", "categorical", 2)}, regressor)[0]
        == "churned"
    )
    with pytest.raises(
        UsageError, match="--target agee: no such column \\(did you mean 'age'\\?\\)"
    ):
        choose_target(100, COLUMNS, CLASSIFIER, "agee")
    three = ModelProfile("onnx", ("age",), "multiclass", ("a", "b", "c"))
    with pytest.raises(UsageError, match="holds only its classes \\(a, b, c\\)"):
        choose_target(100, COLUMNS, three)


def test_plan_finds_the_id_and_the_slicing_columns() -> None:
    found = plan(100, COLUMNS, CLASSIFIER)
    assert (found.target, found.task, found.id) == ("churned", "binary", "row")
    assert found.categorical == ("flag", "region") and found.numeric == ("age",)
    assert found.cross == ("flag", "region")
    reads_id = ModelProfile("onnx", ("row", "age", "region", "flag"), "binary", ("0", "1"))
    found = plan(100, COLUMNS, reads_id)
    assert found.id is None and found.id_like_inputs == ("row",)


def test_init_on_the_credit_example_passes_mlci_check(
    credit_example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(credit_example / "data", repo / "data")
    shutil.copytree(credit_example / "models", repo / "models")
    args = ["init", "--dir", str(repo), "--model", str(repo / "models/candidate.onnx"),
            "--baseline", str(repo / "models/baseline.onnx"), "--data", str(repo / "data/eval.csv"),
            "--reference", str(repo / "data/reference.csv")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "target 'defaulted' (binary), id application_id" in out
    config = load_config(repo / "mlci.yaml").config
    slices = config.evaluation.slices
    assert {s.feature for s in slices if s.feature} >= {"employment", "channel", "region"}
    assert {c.kind for c in config.tests.checks} >= {"contract", "metric", "drift"}  # type: ignore[union-attr]
    assert {r.kind for r in config.gate.rules} >= {"non_inferiority", "slices", "tests"}  # type: ignore[union-attr]
    # mlci check runs every stage on it and, as the example intends, blocks the candidate for
    # the broker subgroup its slices and SliceLine find
    out_dir = repo / "mlci-out"
    assert main(["check", "-q", "-c", str(repo / "mlci.yaml"), "-o", str(out_dir)]) == 1
    results = json.loads((out_dir / "results.json").read_text())
    stages = results["stages"]
    # every stage it configured ran; the image stages wait for an image section
    assert {n for n, s in stages.items() if s["status"] == "ran"} == {
        "evaluate", "tests", "benchmark", "gate", "card",
    }  # fmt: skip
    assert stages["image"]["reason"] == "no image section in mlci.yaml"
    assert all(stages[n]["reason"].startswith("needs the ") for n in ("sbom", "sign", "attest"))
    assert results["gate"]["decision"] == "block"
    flagged = [s["name"] for s in results["evaluation"]["slices"] if s["flagged"]]
    assert any("self-employed" in name or "broker" in name for name in flagged)
    # again: refused, nothing changed
    before = (repo / "mlci.yaml").read_text()
    assert main(args) == 2
    assert "already exist" in capsys.readouterr().err
    assert (repo / "mlci.yaml").read_text() == before
    assert main([*args, "--force", "--target", "defaulted", "--name", "credit"]) == 0
    assert "name: credit\n" in (repo / "mlci.yaml").read_text()


def test_the_workflow_passes_actionlint(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "placeholder.yml").write_text(render_workflow(None, "mlci.yaml"))
    pinned = render_workflow(f"my-org/mlci@{SHA}", "ml/mlci.yaml")
    (workflows / "pinned.yml").write_text(pinned)
    assert ACTION_PLACEHOLDER not in pinned and COMMIT_PLACEHOLDER not in pinned
    assert f"my-org/mlci/actions/comment@{SHA}" in pinned and "config: ml/mlci.yaml" in pinned
    assert yaml.safe_load(pinned)["jobs"]["check"]["steps"][1]["uses"] == f"my-org/mlci@{SHA}"
    actionlint = Path(sys.executable).parent / "actionlint"
    result = subprocess.run(
        [str(actionlint), "-no-color"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for bad in ("my-org/mlci@v1", "my-org/mlci", f"-x/mlci@{SHA}", f"my-org/mlci@{SHA[:12]}"):
        with pytest.raises(UsageError, match="expected OWNER/REPO@SHA"):
            render_workflow(bad, "mlci.yaml")


def test_bad_inputs_write_nothing(built_project: object, tmp_path: Path) -> None:
    project = Path(built_project.root)  # type: ignore[attr-defined]
    repo = tmp_path / "repo"
    shutil.copytree(project, repo)
    (repo / "mlci.yaml").unlink()
    model, data = repo / "models" / "candidate.onnx", repo / "data" / "eval.csv"
    with pytest.raises(InputError, match="no such model file"):
        init(model=repo / "missing.onnx", data=data, directory=repo)
    with pytest.raises(UsageError, match="outside"):
        init(model=model, data=project / "data" / "eval.csv", directory=repo)
    with pytest.raises(UsageError, match="--action"):
        init(model=model, data=data, directory=repo, action="org/mlci@main")
    assert not (repo / "mlci.yaml").exists() and not (repo / ".github").exists()
    result = init(model=model, data=data, directory=repo, workflow=False)
    assert [p.name for p in result.written] == ["mlci.yaml"] and not (repo / ".github").exists()
    assert (result.plan.target, result.plan.id) == ("y", "id")
    # a model better than chance, tests that pass, no baseline to lose to: promoted
    assert main(["check", "-q", "-c", str(repo / "mlci.yaml"), "-o", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["gate"]["decision"] == "promote"
