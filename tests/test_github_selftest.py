"""mlci's self-test workflow, run locally job by job the way GitHub's runner runs it.

From a clean clone of this tree, every job of .github/workflows/selftest.yml runs through the
local runner (tests/actions_runner.py) against the fake GitHub API, which holds every request
to GitHub's published description. The workflow's own steps assert what each action must
produce (outputs, files, expected failures); these tests add what only the outside can see:
what reached the API, what was uploaded, how mlci was installed, what the logs hold.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from actions_runner import JobResult, Runner
from github_fake import FakeGitHub
from selftest_support import (
    PULL,
    base_image,
    clean_checkout,
    pull_request_event,
    runner,
    stub_calls,
)

MODEL = "credit-default"
MARK = f"<!-- mlci:comment model={MODEL} workflow=Self-test -->"


@dataclass
class SelfTest:
    results: dict[str, JobResult]
    fake: FakeGitHub
    temp: Path
    workspace: Path
    runner: Runner

    def artifact(self, name: str) -> Path:
        return self.temp / "artifacts" / "artifacts" / name


@pytest.fixture(scope="module")
def selftest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SelfTest]:
    temp = tmp_path_factory.mktemp("selftest")
    workspace = clean_checkout(temp / "mlci")
    with FakeGitHub() as fake:
        local = runner(workspace, temp, fake.url, vars={"MLCI_SELFTEST_BASE": base_image()})
        results = local.run_workflow(workspace / ".github" / "workflows" / "selftest.yml")
        yield SelfTest(results, fake, temp, workspace, local)
        fake.assert_valid()


def test_every_job_of_the_self_test_passes(selftest: SelfTest) -> None:
    failed = {n: r.failure for n, r in selftest.results.items() if r.result != "success"}
    assert not failed, "\n\n".join(f"{name}: {why}" for name, why in failed.items())
    assert list(selftest.results)[-1] == "all"


def test_the_pull_request_gets_one_comment_and_one_failing_check(selftest: SelfTest) -> None:
    comments = selftest.fake.issue_comments(PULL)
    # the root action (check-blocks) and the comment action (stages) share one comment
    assert [c["user"]["login"] for c in comments] == ["github-actions[bot]"]
    assert comments[0]["body"].startswith(MARK + "\n")
    assert "block" in comments[0]["body"].lower()
    (run,) = selftest.fake.check_runs.values()  # check-never and stages publish none
    assert (run["name"], run["conclusion"]) == (f"mlci / {MODEL}", "failure")
    assert run["head_sha"] == pull_request_event()["pull_request"]["head"]["sha"]
    assert any(
        "flagged slice" in (a.get("title") or "") for a in selftest.fake.annotations[run["id"]]
    )


def test_results_are_uploaded_and_summarised(selftest: SelfTest) -> None:
    uploaded = selftest.artifact("selftest-check-blocks")
    document = json.loads((uploaded / "results.json").read_text())
    assert document["gate"]["decision"] == "block"
    assert (uploaded / "report.md").is_file()
    assert not selftest.artifact("mlci-results").exists()  # the other jobs named none, or ""
    summary = "".join(selftest.results["check-blocks"].state.summary)
    assert MODEL in summary and "block" in summary.lower()
    outputs = selftest.results["check-blocks"].step("mlci").outputs
    assert outputs["decision"] == "block" and outputs["exit-code"] == "1"
    assert outputs["results-path"].endswith("/mlci-out/results.json")


def test_mlci_comes_from_the_actions_own_checkout(selftest: SelfTest) -> None:
    venv = selftest.workspace / ".mlci-venv"
    (dist,) = venv.glob("lib/python*/site-packages/mlci-*.dist-info")
    origin = json.loads((dist / "direct_url.json").read_text())
    assert origin["url"] == selftest.workspace.resolve().as_uri()
    setup = selftest.results["check-blocks"].step("setup").outputs
    assert setup["mlci"] == str(venv / "bin" / "mlci")
    assert "card" in setup["extras"].split(",")  # found in the example's mlci.yaml ("auto")


def package_hash(root: Path) -> str:
    """sha256 of `sha256sum` lines of pyproject.toml and mlci/ in byte order, first 16 hex."""
    files = [root / "pyproject.toml"] + [
        p for p in (root / "mlci").rglob("*")
        if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts
    ]  # fmt: skip
    names = sorted(p.relative_to(root).as_posix() for p in files)
    lines = "".join(f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def test_pip_downloads_are_cached_under_the_actions_package(selftest: SelfTest) -> None:
    keys = {c["key"] for c in stub_calls(selftest.temp) if c["action"] == "cache"}
    (key,) = keys  # the same package in every job: one key
    assert re.fullmatch(r"mlci-pip-Linux-X64-py3\.\d+-[0-9a-f]{16}", key)
    assert key.endswith(package_hash(selftest.workspace))
    restore = {c["restore-keys"] for c in stub_calls(selftest.temp) if c["action"] == "cache"}
    assert restore == {key.rsplit("-", 1)[0] + "-"}


def test_the_token_never_reaches_a_log(selftest: SelfTest) -> None:
    token = selftest.runner.token
    for result in selftest.results.values():
        assert token not in result.log


def example_in(selftest: SelfTest) -> None:
    target = selftest.workspace / "examples" / "credit"
    shutil.copytree(selftest.artifact("credit-example"), target, dirs_exist_ok=True)


def test_a_fork_pull_request_gets_neither_comment_nor_check_run(selftest: SelfTest) -> None:
    example_in(selftest)
    before = (len(selftest.fake.requests), len(selftest.fake.check_runs))
    fork = runner(
        selftest.workspace, selftest.temp / "fork", selftest.fake.url,
        event=pull_request_event("mallory/octo-repo"),
    )  # fmt: skip
    result, state = fork.run_single(
        "./", {"config": "examples/credit", "artifact": "", "skip": "benchmark", "out": "fork-out"}
    )
    assert result.outcome == "failure" and result.outputs["decision"] == "block"
    notices = [a.message for a in state.annotations if a.level == "notice"]
    assert any("fork mallory/octo-repo" in n and "comment" in n for n in notices)
    assert any("fork mallory/octo-repo" in n and "check run" in n for n in notices)
    assert (len(selftest.fake.requests), len(selftest.fake.check_runs)) == before


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"config": "--version"}, "the config input must be a path"),
        ({"fail-on": "maybe"}, "fail-on must be block, hold or never"),
        ({"stages": "evaluate,imagine"}, "--only: unknown stage 'imagine'"),
        ({"extras": "sklearn;touch /tmp/x"}, "extras must be names separated by commas"),
    ],
)
def test_bad_inputs_fail_with_one_line(selftest: SelfTest, inputs: dict, message: str) -> None:
    example_in(selftest)
    result, state = selftest.runner.run_single(
        "./", {"config": "examples/credit", "artifact": "", "comment": "false", **inputs}
    )
    assert result.outcome == "failure"
    text = "\n".join(r.log for r in state.records) + "\n".join(a.message for a in state.annotations)
    assert message in text
    if "extras" not in inputs:
        assert result.outputs["exit-code"] == "2" and result.outputs["decision"] == ""


def test_setup_without_cache_adds_the_extras_it_is_asked_for(selftest: SelfTest) -> None:
    quiet = runner(selftest.workspace, selftest.temp / "nocache", selftest.fake.url)
    result, state = quiet.run_single("./actions/setup", {"cache": "false", "extras": "image"})
    assert result.outcome == "success", result.failure
    assert "image" in result.outputs["extras"].split(",")
    assert result.outputs["version"]
    assert not [c for c in stub_calls(selftest.temp / "nocache") if c["action"] == "cache"]
    assert state.path == [str(selftest.workspace / ".mlci-bin")]  # only mlci goes on PATH
    assert sorted(p.name for p in (selftest.workspace / ".mlci-bin").iterdir()) == ["mlci"]
