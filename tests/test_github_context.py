"""Context from GITHUB_EVENT_PATH and GITHUB_* for pull_request and workflow_run events.

Payloads are built from the webhook schemas in GitHub's description (which carry no full
examples) and checked against them, so fixtures cannot drift from what GitHub sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github_fake import OWNER, REPO, FakeGitHub
from github_openapi import description

from mlci.github.client import GitHubClient
from mlci.github.context import find_merged_pull_request, find_pull_request, from_environment
from mlci.github.errors import ContextError

HEAD = "a" * 40
MERGE = "b" * 40


def payload(schema: str, **overrides: Any) -> dict[str, Any]:
    spec = description()
    event = spec.instance(spec.component(schema))
    for path, value in overrides.items():
        node = event
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    errors = spec.errors(spec.component(schema), event)
    assert not errors, errors[:5]
    return event


def environment(tmp_path: Path, event_name: str, event: dict[str, Any]) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return {
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_SHA": MERGE,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_WORKFLOW": "Post mlci results",
        "GITHUB_SERVER_URL": "https://github.example.com",
    }


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def test_pull_request_event(tmp_path: Path) -> None:
    event = payload("webhook-pull-request-synchronize", number=17)
    event["pull_request"]["number"] = 17
    event["pull_request"]["head"]["sha"] = HEAD
    context = from_environment(environment(tmp_path, "pull_request", event))
    assert (context.owner, context.repo) == (OWNER, REPO)
    assert context.pull_number == 17
    assert context.sha == HEAD  # the head, not GitHub's merge commit
    assert (
        context.run_url == f"https://github.example.com/{OWNER}/{REPO}/actions/runs/4242/attempts/2"
    )
    assert context.workflow == "Post mlci results"


def test_workflow_run_event_with_its_pull_request(tmp_path: Path) -> None:
    event = payload("webhook-workflow-run-completed")
    run = event["workflow_run"]
    run.update(
        head_sha=HEAD, name="Model CI", id=99, html_url="https://github.com/o/r/actions/runs/99"
    )
    run["pull_requests"] = [{"number": 5, "head": {"sha": HEAD}}]
    context = from_environment(environment(tmp_path, "workflow_run", event))
    assert (context.pull_number, context.sha, context.workflow) == (5, HEAD, "Model CI")
    assert context.run_url == "https://github.com/o/r/actions/runs/99"


def test_workflow_run_from_a_fork_finds_the_pull_request(tmp_path: Path, fake: FakeGitHub) -> None:
    event = payload("webhook-workflow-run-completed")
    run = event["workflow_run"]
    run.update(head_sha=HEAD, head_branch="feature", pull_requests=[])
    run["head_repository"]["full_name"] = "forker/octo-repo"
    context = from_environment(environment(tmp_path, "workflow_run", event))
    assert context.pull_number is None
    fake.add_pull(31, HEAD, "forker:feature")
    found = find_pull_request(context, GitHubClient("t", api_url=fake.url))
    assert found.pull_number == 31
    assert fake.calls("repos/list-pull-requests-associated-with-commit")


def test_workflow_run_falls_back_to_the_forks_branch(tmp_path: Path, fake: FakeGitHub) -> None:
    event = payload("webhook-workflow-run-completed")
    run = event["workflow_run"]
    run.update(head_sha=HEAD, head_branch="feature", pull_requests=[])
    run["head_repository"]["full_name"] = "forker/octo-repo"
    context = from_environment(environment(tmp_path, "workflow_run", event))
    fake.add_pull(32, HEAD, "forker:feature")
    fake.pulls[0]["head"]["sha"] = HEAD
    original = fake.handle

    def no_commit_pulls(request: Any, base: str) -> Any:  # as GitHub does for some fork commits
        if request.operation == "repos/list-pull-requests-associated-with-commit":
            return 200, {}, []
        return original(request, base)

    fake.handle = no_commit_pulls  # type: ignore[method-assign]
    found = find_pull_request(context, GitHubClient("t", api_url=fake.url))
    assert found.pull_number == 32
    assert "head=forker%3Afeature" in fake.calls("pulls/list")[0].query


def test_a_push_finds_the_pull_request_whose_merge_made_it(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    context = from_environment(environment(tmp_path, "push", payload("webhook-push")))
    pushed = context.sha
    assert context.pull_number is None and pushed
    fake.add_pull(40, "c" * 40, "octo:feature")  # merged: its merge commit is the push
    fake.pulls[-1].update(merge_commit_sha=pushed, merged_at="2026-11-30T12:00:00Z")
    fake.add_pull(41, pushed, "octo:other")  # open, with this commit as its head: not merged
    fake.add_pull(42, "d" * 40, "octo:older")  # merged earlier, elsewhere
    fake.pulls[-1].update(merge_commit_sha="d" * 40, merged_at="2026-11-01T12:00:00Z")
    found = find_merged_pull_request(context, GitHubClient("t", api_url=fake.url))
    assert found.pull_number == 40
    fake.pulls[0]["merged_at"] = None  # closed without merging
    assert (
        find_merged_pull_request(context, GitHubClient("t", api_url=fake.url)).pull_number is None
    )


def test_a_pull_request_with_another_head_is_not_taken(tmp_path: Path, fake: FakeGitHub) -> None:
    event = payload("webhook-workflow-run-completed")
    event["workflow_run"].update(head_sha=HEAD, pull_requests=[], head_branch="x")
    context = from_environment(environment(tmp_path, "workflow_run", event))
    fake.add_pull(33, "c" * 40, "forker:x")
    assert find_pull_request(context, GitHubClient("t", api_url=fake.url)).pull_number is None


def test_push_event_has_no_pull_request(tmp_path: Path) -> None:
    context = from_environment(environment(tmp_path, "push", {"ref": "refs/heads/main"}))
    assert context.sha == MERGE and context.pull_number is None
    with pytest.raises(ContextError, match="no pull request for this run"):
        context.require_pull_number()


def test_outside_actions_and_bad_event_files(tmp_path: Path) -> None:
    context = from_environment({})
    assert context.repository is None and context.run_url is None
    with pytest.raises(ContextError, match="no repository") as caught:
        context.require_repository()
    assert "--repo OWNER/NAME" in caught.value.diagnostics()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ContextError, match="not a readable event payload"):
        from_environment({"GITHUB_EVENT_PATH": str(tmp_path / "bad.json")})
    with pytest.raises(ContextError, match="names no file"):
        from_environment({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")})


@pytest.mark.parametrize(
    ("event_name", "schema", "head", "fork"),
    [
        ("workflow_run", "webhook-workflow-run-completed", "forker/octo-repo", True),
        ("workflow_run", "webhook-workflow-run-completed", f"{OWNER}/{REPO}", False),
        ("workflow_run", "webhook-workflow-run-completed", f"{OWNER.upper()}/{REPO}", False),
        ("pull_request", "webhook-pull-request-opened", "forker/octo-repo", True),
        ("pull_request_target", "webhook-pull-request-opened", "forker/octo-repo", False),
        ("pull_request", "webhook-pull-request-opened", f"{OWNER}/{REPO}", False),
    ],
)
def test_results_from_a_forks_code_are_recognised(
    tmp_path: Path, event_name: str, schema: str, head: str, fork: bool
) -> None:
    event = payload(schema)
    if event_name == "workflow_run":
        event["workflow_run"]["head_repository"]["full_name"] = head
    else:
        event["pull_request"]["head"]["repo"]["full_name"] = head
    context = from_environment(environment(tmp_path, event_name, event))
    assert context.head_repository == head
    assert context.from_fork is fork
