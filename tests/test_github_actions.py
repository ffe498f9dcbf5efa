"""The composite actions and workflow templates: actionlint, zizmor, and mlci's own rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from github_fake import OWNER, REPO, FakeGitHub

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ACTIONS = [ROOT / "action.yml", *sorted((ROOT / "actions").glob("*/action.yml"))]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.yml"))
PINNED = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: pip install the test extras", pytrace=False)
    return str(path)


def steps(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in document:
        yield from document["runs"].get("steps", [])
    for job in (document.get("jobs") or {}).values():
        yield from job.get("steps", [])


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_there_is_something_to_check() -> None:
    names = {p.parent.name for p in ACTIONS}
    assert {"setup", "check", "comment", "publish"} <= names
    assert {p.name for p in WORKFLOWS} >= {"pull-request.yml", "comment-from-fork.yml"}


def test_actionlint_on_workflows_and_local_actions(tmp_path: Path) -> None:
    # actionlint reads a local action's metadata when a workflow uses it: use each one
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    shutil.copytree(ROOT / "actions", tmp_path / "actions")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # how actionlint recognises a project root
    for path in WORKFLOWS:
        shutil.copy(path, tmp_path / ".github" / "workflows" / path.name)
    uses = [
        {"uses": "./", "with": {"config": "examples/credit", "comment": "false"}},
        {"uses": "./actions/setup", "with": {"python": "python3"}},
        {"uses": "./actions/check", "with": {"config": ".", "out": "mlci-out"}},
        {"uses": "./actions/comment", "with": {"results": "mlci-out"}},
        {"uses": "./actions/publish", "with": {"results": "mlci-out", "exit-zero": "true"}},
        {"uses": "./actions/canary", "with": {"results": "mlci-out/results.json", "weight": "10"}},
    ]
    selftest = {
        "name": "selftest",
        "on": {"pull_request": None},
        "permissions": {},
        "jobs": {
            "selftest": {
                "runs-on": "ubuntu-latest",
                "permissions": {"contents": "read"},
                "steps": [
                    {
                        "uses": "actions/checkout@1af3b93b6815bc44a9784bd300feb67ff0d1eeb3",
                        "with": {"persist-credentials": False},
                    },
                    *uses,
                ],
            }
        },
    }
    (tmp_path / ".github" / "workflows" / "selftest.yml").write_text(yaml.safe_dump(selftest))
    result = subprocess.run(
        [tool("actionlint"), "-no-color"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def zizmor(files: list[Path], *options: str) -> None:
    names = [str(p.relative_to(ROOT)) for p in files]
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", *options, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


def test_zizmor_finds_nothing() -> None:
    zizmor([*ACTIONS, *WORKFLOWS])


def test_zizmor_pedantic_finds_nothing_in_the_github_integration() -> None:
    mine = [ROOT / "action.yml", ROOT / "workflows/pull-request.yml"]
    mine += [ROOT / "workflows/comment-from-fork.yml"]
    mine += [ROOT / "workflows/canary.yml"]
    mine += [
        ROOT / f"actions/{stage}/action.yml"
        for stage in ("setup", "check", "comment", "publish", "canary")
    ]
    zizmor(mine, "--persona=pedantic")


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path}: step {step.get('name')!r}"


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_action_inputs_arrive_as_namespaced_environment(path: Path) -> None:
    document = load(path)
    assert document["runs"]["using"] == "composite"
    for step in steps(document):
        for name, value in (step.get("env") or {}).items():
            if "inputs." in str(value):
                assert name.startswith("MLCI_INPUT_"), f"{path}: {name}"
        if "run" in step:
            assert step.get("shell") == "bash"
    text = path.read_text()
    for name in document.get("inputs", {}):
        assert f"inputs.{name}" in text, f"{path}: input {name} is never used"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_are_locked_down(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {}
    for job in document["jobs"].values():
        assert "permissions" in job
    for step in steps(document):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    for line in path.read_text().splitlines():
        if re.match(r"^\s*(-\s*)?uses:", line):
            assert PINNED.match(line), f"{path}: not pinned to a commit with a version: {line}"


def test_fork_workflow_never_runs_the_forks_code() -> None:
    document = load(ROOT / "workflows" / "comment-from-fork.yml")
    assert list(document[True]) == ["workflow_run"]  # YAML 1.1 reads `on` as True
    (job,) = document["jobs"].values()
    uses = [s.get("uses", "") for s in job["steps"]]
    assert not any(u.startswith("actions/checkout@") for u in uses)
    (download,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download")]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    assert "runner.temp" in download["with"]["path"]
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "mlci==" in runs and "MLCI_RESULTS" in runs
    assert not re.search(r"(?m)^\s*(bash|sh|python|source|\.)\s+\S*MLCI_RESULTS", runs)
    assert job["permissions"] == {
        "actions": "read",
        "checks": "write",
        "statuses": "write",
        "pull-requests": "write",
    }


def _fake_mlci(tmp_path: Path) -> Path:
    """An `mlci` executable running this checkout's command line."""
    script = tmp_path / "bin" / "mlci"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom mlci.commands import main\nsys.exit(main())\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _run_step(
    action: Path, name: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess:
    (step,) = [s for s in steps(load(action)) if s.get("name") == name]
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, cwd=cwd, capture_output=True, text=True
    )


def test_comment_and_publish_steps_post_through_the_fake(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_github_publish import document

    out = tmp_path / "work" / "mlci-out"
    for model in ("credit", "fraud"):
        (out / model).mkdir(parents=True)
        (out / model / "results.json").write_text(json.dumps(document(model)))
    (out / "credit" / "report.md").write_text("# report\n")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 9, "head": {"sha": "f" * 40}}}))
    (tmp_path / "output").write_text("")
    with FakeGitHub() as fake:
        env = {
            "PATH": os.environ["PATH"],
            "GITHUB_ACTION_PATH": str(ROOT / "actions" / "comment"),
            "GITHUB_API_URL": fake.url,
            "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_RUN_ID": "5",
            "GITHUB_WORKFLOW": "Model CI",
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "MLCI_BIN": str(_fake_mlci(tmp_path)),
            "MLCI_INPUT_RESULTS": "mlci-out",
            "MLCI_INPUT_GITHUB_TOKEN": "ghs_from_input",
            "MLCI_INPUT_WORKFLOW": "",
            "MLCI_INPUT_CHECK_NAME": "mlci",
            "MLCI_INPUT_IMAGE_DIGEST": "",
            "MLCI_INPUT_EXIT_ZERO": "false",
        }
        for _ in range(2):
            result = _run_step(
                ROOT / "actions/comment/action.yml", "Post the comment", env, out.parent
            )
            assert result.returncode == 0, result.stderr
        env["GITHUB_ACTION_PATH"] = str(ROOT / "actions" / "publish")
        result = _run_step(
            ROOT / "actions/publish/action.yml", "Publish the decision", env, out.parent
        )
        assert result.returncode == 0, result.stderr
        fake.assert_valid()
        assert len(fake.issue_comments(9)) == 2  # one per model
        assert sorted(r["name"] for r in fake.check_runs.values()) == [
            "mlci / credit",
            "mlci / fraud",
        ]
        assert {r.headers["authorization"] for r in fake.requests} == {"Bearer ghs_from_input"}
    env["MLCI_INPUT_RESULTS"] = "missing-folder"
    result = _run_step(ROOT / "actions/publish/action.yml", "Publish the decision", env, out.parent)
    assert (
        result.returncode != 0 and "no such results file or folder" in result.stdout + result.stderr
    )
