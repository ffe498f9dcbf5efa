"""Check runs and statuses from the gate, annotations 50 at a time, and the two commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from documents import typed
from github_fake import OWNER, REPO, FakeGitHub

from mlci.commands import build_parser
from mlci.commands import github as commands
from mlci.errors import InputError, MlciError
from mlci.github.checks import Annotation, conclusion_for, publish
from mlci.github.client import GitHubClient
from mlci.github.workflow import parse_file_commands

SHA = "d" * 40


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def client(fake: FakeGitHub) -> GitHubClient:
    return GitHubClient("ghs_test", api_url=fake.url, backoff=0.01, sleep=lambda s: None)


def document(model: str = "credit-default", gate: dict[str, Any] | None = None) -> dict[str, Any]:
    digest = "0" * 64
    doc: dict[str, Any] = {
        "schema_version": "1.0",
        "mlci_version": "0.1.0",
        "created": "2026-11-22T02:24:24Z",
        "config": {"path": "/work/repo/mlci.yaml", "sha256": digest},
        "model": {"name": model, "path": "models/c.onnx", "format": "onnx", "sha256": digest,
                  "size_bytes": 10, "task": "binary"},
        "baseline": None,
        "data": {"path": "data/eval.csv", "sha256": digest, "rows": 10, "format": "csv",
                 "target": "y", "features": ["a"], "id": None, "weight": None},
        "stages": {"evaluate": {"status": "skipped", "reason": "not configured", "duration_s": 0.0}},
    }  # fmt: skip
    if gate is not None:
        doc["gate"] = gate
    return doc


def gate(decision: str, *rules: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A gate section as the gate writes it (see mlci/schemas/sections/gate.json)."""
    digest = "0" * 64
    return {
        "decision": decision,
        "reason": f"the gate says {decision}",
        "model_sha256": digest,
        "image_digest": None,
        "data_sha256": digest,
        "rules": [
            {
                "id": rule,
                "kind": "metric",
                "required": True,
                "status": status,
                "observed": 0.8,
                "threshold": 0.81,
                "explanation": f"{rule} is {status}",
            }
            for rule, status in rules
        ],  # fmt: skip
        "digest": digest,
        "counts": {
            status: sum(rule_status == status for _, rule_status in rules)
            for status in ("pass", "fail", "inconclusive", "missing")
        },
        **extra,
    }


def write(tmp_path: Path, doc: dict[str, Any], name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def actions_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGitHub, pull: int = 7
) -> dict[str, Path]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": pull, "head": {"sha": SHA}}}))
    files = {name: tmp_path / name for name in ("output", "summary")}
    for path in files.values():
        path.write_text("")
    values = {
        "GITHUB_API_URL": fake.url,
        "GITHUB_TOKEN": "ghs_test",
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SHA": "e" * 40,
        "GITHUB_RUN_ID": "77",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKFLOW": "Model CI",
        "GITHUB_WORKSPACE": "/work/repo",
        "GITHUB_OUTPUT": str(files["output"]),
        "GITHUB_STEP_SUMMARY": str(files["summary"]),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in ("MLCI_GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return files


@pytest.mark.parametrize(
    ("decision", "expected"),
    [("promote", ("success", "success")), ("hold", ("neutral", "success")),
     ("block", ("failure", "failure")), (None, ("neutral", "success"))],
)  # fmt: skip
def test_decision_mapping(decision: str | None, expected: tuple[str, str]) -> None:
    assert conclusion_for(decision) == expected
    with pytest.raises(ValueError, match="unknown gate decision"):
        conclusion_for("maybe")


def test_annotations_go_fifty_per_request(fake: FakeGitHub) -> None:
    notes = [Annotation("mlci.yaml", i + 1, i + 1, "warning", f"note {i}") for i in range(120)]
    result = publish(
        client(fake), OWNER, REPO, SHA, name="mlci / m", decision="block", title="m: block",
        summary="- rule: block", annotations=notes, details_url="https://github.com/o/r/actions/runs/1",
        external_id="mlci:1:1:m",
    )  # fmt: skip
    assert (result.kind, result.conclusion) == ("check_run", "failure")
    sizes = [len(r.body["output"].get("annotations", [])) for r in fake.requests]
    assert [r.operation for r in fake.requests] == [
        "checks/create",
        "checks/update",
        "checks/update",
    ]
    assert sizes == [50, 50, 20]
    stored = fake.annotations[result.id]  # type: ignore[index]
    assert [a["message"] for a in stored] == [f"note {i}" for i in range(120)]
    assert fake.check_runs[result.id]["conclusion"] == "failure"  # type: ignore[index]


def test_no_token_for_check_runs_falls_back_to_a_status(fake: FakeGitHub) -> None:
    fake.forbidden.add("checks/create")
    notes = [Annotation("mlci.yaml", 1, 1, "failure", "blocked")]
    result = publish(
        client(fake), OWNER, REPO, SHA, name="mlci / m", decision="hold", title="m: hold",
        summary="s", annotations=notes,
    )  # fmt: skip
    assert (result.kind, result.conclusion) == ("status", "success")
    assert "403" in (result.fallback_reason or "")
    assert result.unsent_annotations == notes
    assert notes[0].to_command() == "::error file=mlci.yaml,line=1,endLine=1::blocked"
    (status,) = fake.statuses
    assert status["context"] == "mlci / m" and status["description"] == "m: hold"


def test_check_run_create_that_timed_out_is_not_repeated(fake: FakeGitHub) -> None:
    fake.fault("checks/create", delay=0.5, apply_first=True)
    slow = GitHubClient("t", api_url=fake.url, timeout=0.25, sleep=lambda s: None)
    publish(slow, OWNER, REPO, SHA, name="mlci / m", decision="promote", title="t", summary="s",
            external_id="mlci:9:1:m")  # fmt: skip
    assert len(fake.check_runs) == 1
    assert [r.operation for r in fake.requests] == ["checks/create", "checks/list-for-ref"]


def test_annotations_point_at_the_configuration() -> None:
    doc = document(gate=gate("block", ("roc_auc", "fail")))
    flagged = {
        "name": "region=north",
        "definition": "region == 'north'",
        "source": "declared",
        "size": 60,
        "status": "evaluated",
        "metrics": {"candidate": {}},
        "delta": None,
        "flagged": True,
        "reason": "worse",
    }
    doc["evaluation"] = {
        "task": "binary",
        "primary_metric": "roc_auc",
        "confidence": 0.95,
        "interval_method": "poisson-bootstrap",
        "bootstrap": 100,
        "seed": 0,
        "metrics": {"candidate": {}, "baseline": None, "delta": None},
        "slices": [flagged, {**flagged, "name": "region=south", "flagged": False}],
    }
    doc = typed(doc)
    notes = commands.annotations_for(doc, {"GITHUB_WORKSPACE": "/work/repo"})
    assert [(n.path, n.level) for n in notes] == [
        ("mlci.yaml", "warning"),
        ("mlci.yaml", "failure"),
        ("mlci.yaml", "failure"),
    ]
    assert "region=north" in notes[0].message
    assert commands.annotations_for(doc, {"GITHUB_WORKSPACE": "/elsewhere"}) == []
    assert commands.annotations_for(doc, {}) == []


def test_comment_command_posts_and_updates(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    actions_env(monkeypatch, tmp_path, fake)
    path = write(tmp_path, document())
    for _ in range(2):
        args = parse(["comment", str(path)])
        assert args.run(args) == 0
    (comment,) = fake.issue_comments(7)
    assert comment["body"].startswith(
        "<!-- mlci:comment model=credit-default workflow=Model CI -->\n"
    )
    assert comment["body"].count("<!-- mlci:comment") == 1  # the template's marker is replaced
    assert "credit-default" in comment["body"].split("\n", 2)[2]
    assert (
        "[workflow run](https://github.com/octo-org/octo-repo/actions/runs/77)" in comment["body"]
    )
    out = capsys.readouterr().out
    assert "comment created" in out and "comment unchanged" in out


def test_comment_command_with_markdown_and_dry_run(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    actions_env(monkeypatch, tmp_path, fake)
    report = tmp_path / "report.md"
    report.write_text("# hello\n")
    with pytest.raises(MlciError, match="does not say which model"):
        args = parse(["comment", str(report)])
        args.run(args)
    args = parse(["comment", "--model", "m", "--dry-run", str(report)])
    assert args.run(args) == 0
    assert "<!-- mlci:comment model=m workflow=Model CI -->" in capsys.readouterr().out
    assert fake.requests == []


def test_comment_command_without_pull_request(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions_env(monkeypatch, tmp_path, fake)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    (tmp_path / "event.json").write_text("{}")
    path = write(tmp_path, document())
    args = parse(["comment", "--skip-without-pr", str(path)])
    assert args.run(args) == 0
    args = parse(["comment", str(path)])
    with pytest.raises(MlciError, match="no pull request") as caught:
        args.run(args)
    assert caught.value.exit_code == 2


def test_comment_command_with_a_read_only_token(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions_env(monkeypatch, tmp_path, fake)
    fake.forbidden.add("issues/create-comment")
    args = parse(["comment", str(write(tmp_path, document()))])
    with pytest.raises(MlciError) as caught:
        args.run(args)
    text = caught.value.diagnostics()
    assert "pull-requests: write" in text and "comment-from-fork.yml" in text


def test_publish_command_writes_outputs_and_summary(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = actions_env(monkeypatch, tmp_path, fake)
    path = write(tmp_path, document())
    (tmp_path / "report.md").write_text("# r\n")
    args = parse(["publish", "--image-digest", "sha256:" + "1" * 64, str(path)])
    assert args.run(args) == 0
    (run,) = fake.check_runs.values()
    assert (run["name"], run["conclusion"], run["head_sha"]) == (
        "mlci / credit-default",
        "neutral",
        SHA,
    )
    assert run["output"]["title"] == "credit-default: no gate decision in the results"
    outputs = parse_file_commands(files["output"].read_text())
    assert outputs == {
        "decision": "none",
        "results-path": str(path),
        "report-path": str(tmp_path / "report.md"),
        "image-digest": "sha256:" + "1" * 64,
    }
    assert "credit-default" in files["summary"].read_text()


def test_publish_command_follows_the_gate(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = actions_env(monkeypatch, tmp_path, fake)
    doc = document(gate=gate("block", ("roc_auc", "fail"), ("latency", "pass")))
    blocked = write(tmp_path, doc, "a.json")
    promoted = write(tmp_path, document("other", gate=gate("promote")), "b.json")
    args = parse(["publish", str(promoted), str(blocked)])
    assert args.run(args) == 1
    conclusions = {r["name"]: r["conclusion"] for r in fake.check_runs.values()}
    assert conclusions == {"mlci / credit-default": "failure", "mlci / other": "success"}
    blocked_run = next(r for r in fake.check_runs.values() if r["conclusion"] == "failure")
    notes = fake.annotations[blocked_run["id"]]
    assert [(n["path"], n["annotation_level"], n["message"]) for n in notes] == [
        ("mlci.yaml", "failure", "credit-default: the gate says block"),
        ("mlci.yaml", "failure", "credit-default: roc_auc (required): fail: roc_auc is fail"),
    ]
    outputs = parse_file_commands(files["output"].read_text())
    assert outputs["decision"] == "block"
    assert outputs["results-path"].splitlines() == [str(promoted), str(blocked)]
    args = parse(["publish", "--exit-zero", "--no-check", str(blocked)])
    assert args.run(args) == 0
    unknown = write(tmp_path, document(gate=gate("x")), "x.json")
    with pytest.raises(InputError, match="x.json: results document is invalid at gate/decision"):
        parse(["publish", str(unknown)]).run(parse(["publish", str(unknown)]))


def test_publish_command_hold(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = actions_env(monkeypatch, tmp_path, fake)
    held = write(tmp_path, document(gate=gate("hold", ("roc_auc", "inconclusive"))), "h.json")
    args = parse(["publish", "--status-only", str(held)])
    assert args.run(args) == 0
    assert [s["state"] for s in fake.statuses] == ["success"]
    strict = document(gate=gate("hold", ("roc_auc", "inconclusive"), fail_on="hold"))
    args = parse(["publish", str(write(tmp_path, strict, "s.json"))])
    assert args.run(args) == 1
    (run,) = fake.check_runs.values()
    assert run["conclusion"] == "failure" and run["output"]["title"] == "credit-default: hold"
    assert parse_file_commands(files["output"].read_text())["decision"] == "hold"


def fork_run_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGitHub) -> None:
    """The comment-from-fork workflow: a workflow_run event whose run came from a fork."""
    actions_env(monkeypatch, tmp_path, fake)
    event = {
        "workflow_run": {
            "id": 99,
            "name": "Model CI",
            "head_sha": SHA,
            "head_branch": "feature",
            "html_url": "https://github.com/octo-org/octo-repo/actions/runs/99",
            "pull_requests": [],
            "head_repository": {"full_name": "mallory/octo-repo"},
        }
    }
    (tmp_path / "event.json").write_text(json.dumps(event))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "workflow_run")
    fake.add_pull(7, SHA, "mallory:feature")


@pytest.mark.parametrize(
    ("decision", "conclusion", "state"),
    [("promote", "neutral", "pending"), ("hold", "neutral", "pending"),
     ("block", "failure", "failure")],
)  # fmt: skip
def test_results_from_a_forks_run_never_conclude_in_success(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    decision: str, conclusion: str, state: str,
) -> None:  # fmt: skip
    fork_run_env(monkeypatch, tmp_path, fake)
    path = write(tmp_path, document(gate=gate(decision, ("roc_auc", "pass"))))
    args = parse(["publish", "--exit-zero", str(path)])
    assert args.run(args) == 0
    (run,) = fake.check_runs.values()
    assert run["conclusion"] == conclusion
    assert run["output"]["title"] == f"unverified, from the fork's code: credit-default: {decision}"
    args = parse(["publish", "--exit-zero", "--status-only", str(path)])
    assert args.run(args) == 0
    assert [s["state"] for s in fake.statuses] == [state]
    assert conclusion_for(decision, fork=False)[0] != "neutral" or decision == "hold"


def test_comment_from_a_forks_run_says_so(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fork_run_env(monkeypatch, tmp_path, fake)
    future = document(gate=gate("promote", ("roc_auc", "pass")))
    future["created"] = "9999-01-01T00:00:00Z"  # a fork can write any time it likes
    args = parse(["comment", str(write(tmp_path, future))])
    assert args.run(args) == 0
    (comment,) = fake.issue_comments(7)
    assert "Unverified: produced by the fork's code" in comment["body"]
    assert "`mallory/octo-repo`" in comment["body"]
    assert "9999" not in comment["body"].splitlines()[1]  # the version line is clamped
    assert fake.calls("repos/list-pull-requests-associated-with-commit")
