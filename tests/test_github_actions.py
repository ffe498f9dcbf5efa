"""The composite actions and workflows: actionlint, zizmor, and mlci's own rules for them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from readme_actions import ACTIONS, action_reference, load_action_file, permissions_of

from mlci import __version__
from mlci.init import ACTION_PLACEHOLDER, COMMIT_PLACEHOLDER

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATES = sorted((ROOT / "workflows").glob("*.yml"))
OWN = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
STUBS = sorted((ROOT / "tests" / "action_stubs").glob("*/action.yml"))
STAGES = {"setup", "promote", "watch", "canary", "test", "evaluate", "benchmark", "build", "sbom", "sign", "verify", "card",
          "gate", "comment", "publish"}  # fmt: skip
PINNED = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")
PLACEHOLDER = re.compile(
    rf"^\s*(?:-\s*)?uses:\s*{re.escape(ACTION_PLACEHOLDER)}(/actions/[a-z]+)?@{COMMIT_PLACEHOLDER}"
    rf" # v{re.escape(__version__)}\s*$"
)
LOCAL = re.compile(r"^\s*(?:-\s*)?uses:\s*\./[\w/.-]* # zizmor: ignore\[self-repository\] .+$")


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
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads `on` as True
        data["on"] = data.pop(True)
    return data


def name_of(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_one_action_per_stage_and_every_workflow() -> None:
    assert {p.parent.name for p in ACTIONS[1:]} == STAGES
    assert {p.name for p in TEMPLATES} == {
        "pull-request.yml", "comment-from-fork.yml", "trusted-run.yml", "gpu-benchmark.yml",
        "release.yml", "drift.yml", "promote.yml", "watch.yml", "canary.yml",
        "sharded-evaluation.yml",
    }  # fmt: skip
    assert {p.name for p in OWN} == {"ci.yml", "selftest.yml"}


def local_copy(path: Path) -> str:
    """A template with the placeholder pointed at this checkout, so actionlint checks inputs."""
    text = path.read_text()
    text = re.sub(rf"{re.escape(ACTION_PLACEHOLDER)}(/actions/[a-z]+)?@{COMMIT_PLACEHOLDER} # \S+",
                  lambda m: f".{m.group(1) or '/'}", text)  # fmt: skip
    return text


def test_actionlint_on_every_workflow_and_action(tmp_path: Path) -> None:
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    shutil.copytree(ROOT / "actions", tmp_path / "actions")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # how actionlint recognises a project root
    for path in OWN:
        shutil.copy(path, tmp_path / ".github" / "workflows" / path.name)
    for path in TEMPLATES:
        # as users get them (the placeholder), and pointed at these actions (inputs checked)
        shutil.copy(path, tmp_path / ".github" / "workflows" / f"template-{path.name}")
        (tmp_path / ".github" / "workflows" / f"local-{path.name}").write_text(local_copy(path))
    result = subprocess.run(
        [tool("actionlint"), "-no-color"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "local-" in "".join(p.name for p in (tmp_path / ".github/workflows").iterdir())


@pytest.mark.parametrize("persona", [[], ["--persona=pedantic"]], ids=["default", "pedantic"])
def test_zizmor_finds_nothing(persona: list[str]) -> None:
    names = [name_of(p) for p in [*ACTIONS, *TEMPLATES, *OWN]]
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", *persona, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


ALL_YAML = [*ACTIONS, *TEMPLATES, *OWN, *STUBS]


@pytest.mark.parametrize("path", ALL_YAML, ids=name_of)
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path}: step {step.get('name')!r}"


@pytest.mark.parametrize("path", ACTIONS, ids=name_of)
def test_action_inputs_arrive_as_namespaced_environment(path: Path) -> None:
    document = load(path)
    assert document["runs"]["using"] == "composite"
    for step in steps(document):
        for name, value in (step.get("env") or {}).items():
            if "inputs." in str(value):
                assert name.startswith("MLCI_INPUT_"), f"{path}: {name}"
        if "run" in step:
            assert step.get("shell") == "bash"
            # every script an action runs lives in this repository and exists
            for script in re.findall(r'"\$\{GITHUB_ACTION_PATH\}/([^"]+)"', step["run"]):
                assert (path.parent / script).resolve().is_file(), f"{path}: {script}"
    text = path.read_text()
    for name in document.get("inputs", {}):
        assert f"inputs.{name}" in text, f"{path}: input {name} is never used"


@pytest.mark.parametrize("path", ACTIONS, ids=name_of)
def test_every_action_says_which_permissions_it_needs(path: Path) -> None:
    assert permissions_of(load_action_file(path)), f"{path}: no 'Permissions:' in the description"


@pytest.mark.parametrize("path", TEMPLATES + OWN, ids=name_of)
def test_workflows_are_locked_down(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {}
    for job in document["jobs"].values():
        assert "permissions" in job
    for step in steps(document):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    for line in path.read_text().splitlines():
        if not re.match(r"^\s*(-\s*)?uses:", line):
            continue
        if "YOUR_ORG" in line:
            assert path in TEMPLATES and PLACEHOLDER.match(line), f"{path}: {line}"
        elif "./" in line:
            assert path in OWN and LOCAL.match(line), f"{path}: {line}"
        else:
            assert PINNED.match(line), f"{path}: not pinned to a commit with a version: {line}"


def test_templates_never_install_mlci_from_the_package_index() -> None:
    for path in TEMPLATES:
        text = path.read_text()
        assert "pip install" not in text and "mlci==" not in text, path
        assert ACTION_PLACEHOLDER in text, path


def test_the_pull_request_template_is_what_mlci_init_writes() -> None:
    packaged = ROOT / "mlci" / "templates" / "workflow.yml"
    assert (ROOT / "workflows" / "pull-request.yml").read_text() == packaged.read_text()


def test_fork_workflow_never_runs_the_forks_code() -> None:
    document = load(ROOT / "workflows" / "comment-from-fork.yml")
    assert list(document["on"]) == ["workflow_run"]
    (job,) = document["jobs"].values()
    uses = [s.get("uses", "") for s in job["steps"]]
    assert not any(u.startswith("actions/checkout@") for u in uses)
    assert not [s for s in job["steps"] if "run" in s]  # only actions, none of them the fork's
    (download,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download")]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    assert "runner.temp" in download["with"]["path"]
    assert [u.split("@")[0] for u in uses[1:]] == [
        f"{ACTION_PLACEHOLDER}/actions/comment", f"{ACTION_PLACEHOLDER}/actions/publish",
    ]  # fmt: skip
    assert job["permissions"] == {
        "actions": "read",
        "checks": "write",
        "statuses": "write",
        "pull-requests": "write",
    }


def test_trusted_run_takes_only_model_files_from_the_pull_request() -> None:
    document = load(ROOT / "workflows" / "trusted-run.yml")
    assert document["on"] == {"pull_request_target": {"types": ["labeled"]}}
    (job,) = document["jobs"].values()
    (checkout,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert "ref" not in checkout["with"] and "repository" not in checkout["with"]  # the base
    fetch = next(s for s in job["steps"] if "contents/" in s.get("run", ""))
    assert fetch["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert not re.search(r"(?m)^\s*(bash|sh|python3?|source|\.)\s+\S*\$\{path\}", runs)


def test_the_self_tests_last_job_needs_every_other_job() -> None:
    jobs = load(ROOT / ".github" / "workflows" / "selftest.yml")["jobs"]
    last = jobs["all"]
    assert last["if"] == "always()"
    assert set(last["needs"]) == set(jobs) - {"all"}
    expected_failures = [
        job for job in jobs.values()
        if any(s.get("continue-on-error") is True for s in job.get("steps", []))
    ]  # fmt: skip
    assert len(expected_failures) >= 3  # the gate blocks, a bad config, a failing test


def test_stand_ins_declare_every_input_our_files_pass() -> None:
    from selftest_support import PINS

    for path in [*ACTIONS, *TEMPLATES, *OWN]:
        for step in steps(load(path)):
            uses = step.get("uses", "")
            if uses in PINS:
                stub = load(ROOT / "tests" / "action_stubs" / PINS[uses] / "action.yml")
                missing = set(step.get("with") or {}) - set(stub["inputs"])
                assert not missing, f"{path}: {uses} gets {missing}, which its stand-in lacks"


def test_readme_documents_every_input_output_and_permission() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- action reference: start -->\n", "<!-- action reference: end -->\n"
    assert start in readme and end in readme
    documented = readme.split(start, 1)[1].split(end, 1)[0]
    assert documented == action_reference(), (
        "README's action reference is out of date: paste the output of "
        "`python tests/readme_actions.py` between its markers"
    )


def test_the_readmes_workflows_pass_actionlint_and_zizmor(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "jobs:" in b]
    assert blocks, "the README shows no workflow"
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    shutil.copytree(ROOT / "actions", tmp_path / "actions")
    (tmp_path / ".git").mkdir()
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for index, block in enumerate(blocks):
        (workflows / f"readme-{index}.yml").write_text(block)
        local = re.sub(rf"{re.escape(ACTION_PLACEHOLDER)}(/actions/[a-z]+)?@{COMMIT_PLACEHOLDER} # \S+",
                       lambda m: f".{m.group(1) or '/'}", block)  # fmt: skip
        (workflows / f"local-{index}.yml").write_text(local)
    lint = subprocess.run([tool("actionlint"), "-no-color"], cwd=tmp_path, capture_output=True,
                          text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr
    names = [str(p.relative_to(tmp_path)) for p in sorted(workflows.glob("readme-*.yml"))]
    audit = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", "--persona=pedantic", *names],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr
