"""The REST client against a fake GitHub that validates every request against the description:
retries, rate limits, pagination and the one-line errors, with faults injected on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from github_fake import OWNER, REPO, FakeGitHub
from github_openapi import description

from mlci.github.client import GitHubClient, expand, token_from_environment
from mlci.github.comment import upsert_comment
from mlci.github.errors import (
    AuthenticationError,
    ContextError,
    GitHubError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnknownOutcome,
    Unprocessable,
)

COMMENTS = expand("/repos/{o}/{r}/issues/{n}/comments", o=OWNER, r=REPO, n=7)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(fake: FakeGitHub, sleeps: list[float], **kwargs: object) -> GitHubClient:
    options: dict[str, object] = {"timeout": 0.5, "backoff": 0.01, "sleep": sleeps.append}
    options.update(kwargs)
    return GitHubClient("ghs_test", api_url=fake.url, **options)  # type: ignore[arg-type]


def test_description_is_the_pinned_one() -> None:
    spec = description()
    assert spec.version == "23.0.2"
    assert "issues/create-comment" in spec.by_id


def test_fake_rejects_requests_that_break_the_description(
    fake: FakeGitHub, sleeps: list[float]
) -> None:
    client = make_client(fake, sleeps)
    with pytest.raises(GitHubError, match="400"):
        client.post(COMMENTS, json={"text": "no body field"})
    with pytest.raises(GitHubError, match="400"):
        client.get(COMMENTS, params={"perpage": 3})
    assert any("'body' is a required property" in v for v in fake.violations)
    assert any("unknown query parameter 'perpage'" in v for v in fake.violations)
    fake.violations.clear()


def test_headers_and_enterprise_base_url(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.prefix = "/api/v3"
    client = GitHubClient.from_environment(
        {"GITHUB_API_URL": fake.url + "/api/v3", "GITHUB_TOKEN": "ghs_abc"}, sleep=sleeps.append
    )
    assert client.get(COMMENTS).data == []
    received = fake.requests[-1]
    assert received.headers["authorization"] == "Bearer ghs_abc"
    assert received.headers["x-github-api-version"] == "2022-11-28"
    assert received.headers["user-agent"].startswith("mlci/")


def test_token_sources() -> None:
    assert token_from_environment({"GH_TOKEN": "b", "GITHUB_TOKEN": " "}) == "b"
    assert token_from_environment({"MLCI_GITHUB_TOKEN": "a", "GITHUB_TOKEN": "b"}) == "a"
    with pytest.raises(ContextError, match="no GitHub token"):
        GitHubClient.from_environment({})
    with pytest.raises(ContextError, match="not an http"):
        GitHubClient("t", api_url="ftp://example.com")


def test_pagination_follows_next_links(fake: FakeGitHub, sleeps: list[float]) -> None:
    for i in range(230):
        fake.add_comment(7, f"comment {i}")
    items = list(make_client(fake, sleeps).paginate(COMMENTS))
    assert [c["body"] for c in items] == [f"comment {i}" for i in range(230)]
    assert len(fake.calls("issues/list-comments")) == 3


def test_next_link_to_another_host_is_refused(fake: FakeGitHub, sleeps: list[float]) -> None:
    client = make_client(fake, sleeps)
    with pytest.raises(GitHubError, match="refusing to follow a link"):
        client.get("https://evil.example.com/repos/x/y/issues/1/comments")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_a_read_is_retried(fake: FakeGitHub, sleeps: list[float], status: int) -> None:
    fake.fault("issues/list-comments", status=status, body={"message": "boom"}, times=2)
    assert make_client(fake, sleeps).get(COMMENTS).status == 200
    assert len(fake.calls("issues/list-comments")) == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] / 2


def test_5xx_that_persists_gives_up_with_one_line(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fault("issues/list-comments", status=502, body={"message": "Server Error"}, times=99)
    with pytest.raises(Unavailable) as caught:
        make_client(fake, sleeps, max_retries=3).get(COMMENTS)
    text = caught.value.diagnostics()
    assert "502" in text and "4 times" in text and "\n" not in text
    assert len(fake.calls("issues/list-comments")) == 4


def test_timeouts_on_a_read_are_retried(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fault("issues/list-comments", delay=0.6, times=1)
    assert make_client(fake, sleeps, timeout=0.2).get(COMMENTS).status == 200
    assert len(sleeps) == 1


def test_connection_refused_is_retried_then_reported(sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GitHubClient(
        "t", api_url=f"http://127.0.0.1:{port}", sleep=sleeps.append, max_retries=2, timeout=0.5
    )
    with pytest.raises(Unavailable, match="connection failed after 3 attempts"):
        client.post(COMMENTS, json={"body": "x"})
    assert len(sleeps) == 2


def test_secondary_rate_limit_waits_retry_after(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fault(
        "issues/create-comment",
        status=403,
        headers={"Retry-After": "3"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    client = make_client(fake, sleeps)
    client.post(COMMENTS, json={"body": "hello"})
    assert sleeps == [3.0]
    assert len(fake.issue_comments(7)) == 1  # refused once, posted once


def test_primary_rate_limit_waits_until_reset(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fault(
        "issues/list-comments",
        status=403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1010"},
        body={"message": "API rate limit exceeded for installation."},
    )
    make_client(fake, sleeps, clock=lambda: 1000.0).get(COMMENTS)
    assert sleeps == [11.0]


def test_secondary_rate_limit_without_headers_backs_off_a_minute(
    fake: FakeGitHub, sleeps: list[float]
) -> None:
    fake.fault(
        "issues/list-comments",
        status=429,
        body={"message": "You have exceeded a secondary rate limit."},
        times=2,
    )
    make_client(fake, sleeps).get(COMMENTS)
    assert sleeps == [60.0, 120.0]


def test_rate_limit_longer_than_allowed_is_an_error(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fault(
        "issues/create-comment",
        status=403,
        headers={"Retry-After": "3600"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    with pytest.raises(RateLimited, match="rate limit exceeded") as caught:
        make_client(fake, sleeps, max_wait=60).post(COMMENTS, json={"body": "x"})
    assert "3600 s" in caught.value.diagnostics()
    assert sleeps == [] and fake.issue_comments(7) == []


@pytest.mark.parametrize(
    ("status", "message", "error", "words"),
    [
        (401, "Bad credentials", AuthenticationError, ["401", "token", "github-token"]),
        (403, "Resource not accessible by integration", PermissionDenied,
         ["403", "pull-requests: write", "fork", "comment-from-fork.yml"]),
        (404, "Not Found", NotFound, ["404", "private repository"]),
        (422, "Validation Failed", Unprocessable, ["422", "Validation Failed: body is too long"]),
    ],
)  # fmt: skip
def test_client_errors_are_one_actionable_line(
    fake: FakeGitHub,
    sleeps: list[float],
    status: int,
    message: str,
    error: type[GitHubError],
    words: list[str],
) -> None:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    if status == 422:
        body["errors"] = [
            {"resource": "IssueComment", "code": "custom", "message": "body is too long"}
        ]
    fake.fault("issues/create-comment", status=status, body=body)
    with pytest.raises(error) as caught:
        make_client(fake, sleeps).post(
            COMMENTS, json={"body": "x"}, permission="pull-requests: write"
        )
    text = caught.value.diagnostics()
    assert "\n" not in text and "POST /repos/octo-org/octo-repo/issues/7/comments" in text
    for word in words:
        assert word in text
    assert caught.value.exit_code == 1
    assert len(fake.calls("issues/create-comment")) == 1  # never retried
    assert sleeps == []


def test_a_create_is_never_retried_blindly(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fault("issues/create-comment", status=500, body={"message": "oops"})
    with pytest.raises(UnknownOutcome, match="may or may not"):
        make_client(fake, sleeps).post(COMMENTS, json={"body": "x"})
    assert len(fake.calls("issues/create-comment")) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"delay": 0.5, "apply_first": True},  # created, then the answer timed out
        {"status": 502, "apply_first": True},  # created, then a proxy answered 502
        {"drop": True},  # the connection dropped before anything happened
        {"status": 500, "body": {"message": "boom"}},  # refused with 500
    ],
)
def test_comment_is_posted_exactly_once_whatever_breaks(
    fake: FakeGitHub, sleeps: list[float], fault: dict[str, object]
) -> None:
    fake.fault("issues/create-comment", **fault)  # type: ignore[arg-type]
    client = make_client(fake, sleeps, timeout=0.25)
    result = upsert_comment(
        client, OWNER, REPO, 7, model="m", workflow="ci", version="2026-01-01T00:00:00Z",
        content="report",
    )  # fmt: skip
    comments = fake.issue_comments(7)
    assert len(comments) == 1 and comments[0]["id"] == result.id
    assert comments[0]["body"].endswith("report")


def test_timeout_on_update_is_retried(fake: FakeGitHub, sleeps: list[float]) -> None:
    first = fake.add_comment(7, "<!-- mlci:comment model=m workflow=ci -->\nold")
    fake.fault("issues/update-comment", delay=0.5, apply_first=True)
    result = upsert_comment(
        make_client(fake, sleeps, timeout=0.25), OWNER, REPO, 7, model="m", workflow="ci",
        version="2", content="new",
    )  # fmt: skip
    assert result.id == first["id"]
    assert [c["body"].splitlines()[-1] for c in fake.issue_comments(7)] == ["new"]
