"""The sticky comment: one per model and workflow, edited in place, converging under races."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from github_fake import OWNER, REPO, FakeGitHub

from mlci.github.client import GitHubClient
from mlci.github.comment import MAX_BODY, compose, marker, upsert_comment, version_of

MARK = "<!-- mlci:comment model=credit workflow=Model CI -->"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def client(fake: FakeGitHub) -> GitHubClient:
    return GitHubClient("ghs_test", api_url=fake.url, backoff=0.01, sleep=lambda s: None)


def post(fake: FakeGitHub, version: str, content: str, model: str = "credit") -> int:
    return upsert_comment(
        client(fake), OWNER, REPO, 7, model=model, workflow="Model CI", version=version,
        content=content,
    ).id  # fmt: skip


def marked(fake: FakeGitHub, mark: str = MARK) -> list[dict]:
    return [c for c in fake.issue_comments(7) if c["body"].startswith(mark + "\n")]


def test_marker_is_hidden_and_cannot_be_broken_out_of() -> None:
    assert marker("credit", "Model CI") == MARK
    assert marker("a-->b\n", "x\ny") == "<!-- mlci:comment model=a__b workflow=x_y -->"
    body = compose(MARK, "2026-01-01T00:00:00Z", "hello")
    assert body.splitlines()[:2] == [MARK, "<!-- mlci:version 2026-01-01T00:00:00Z -->"]
    assert version_of(body) == "2026-01-01T00:00:00Z"


def test_long_reports_are_cut_to_the_limit() -> None:
    body = compose(MARK, "1", "x" * 100_000, overflow_url="https://github.com/o/r/actions/runs/1")
    assert len(body) <= MAX_BODY and "actions/runs/1" in body


def test_five_runs_in_a_row_leave_one_comment_with_the_latest_content(fake: FakeGitHub) -> None:
    fake.add_comment(7, "LGTM", login="octocat")
    ids = {post(fake, f"2026-01-0{i}T00:00:00Z", f"run {i}") for i in range(1, 6)}
    assert len(ids) == 1
    comments = marked(fake)
    assert len(comments) == 1 and comments[0]["body"].endswith("run 5")
    assert len(fake.calls("issues/create-comment")) == 1
    assert len(fake.calls("issues/delete-comment")) == 0
    assert [c["body"] for c in fake.issue_comments(7)][0] == "LGTM"  # others untouched


def test_unchanged_content_is_not_rewritten(fake: FakeGitHub) -> None:
    post(fake, "1", "same")
    post(fake, "1", "same")
    assert len(fake.calls("issues/update-comment")) == 0


def test_models_and_workflows_get_their_own_comments(fake: FakeGitHub) -> None:
    post(fake, "1", "a", model="credit")
    post(fake, "1", "b", model="fraud")
    upsert_comment(client(fake), OWNER, REPO, 7, model="credit", workflow="nightly", version="1",
                   content="c")  # fmt: skip
    assert len(fake.issue_comments(7)) == 3


def test_marker_found_beyond_the_first_page(fake: FakeGitHub) -> None:
    for i in range(150):
        fake.add_comment(7, f"chatter {i}", login="octocat")
    first = post(fake, "1", "one")
    for i in range(60):
        fake.add_comment(7, f"more {i}", login="octocat")
    assert post(fake, "2", "two") == first
    assert len(marked(fake)) == 1 and marked(fake)[0]["body"].endswith("two")


def test_existing_duplicates_are_cleaned_up(fake: FakeGitHub) -> None:
    for i in range(3):
        fake.add_comment(7, compose(MARK, f"0{i}", f"old {i}"))
    kept = post(fake, "03", "new")
    comments = marked(fake)
    assert [c["id"] for c in comments] == [kept] and comments[0]["body"].endswith("new")


def test_older_results_never_overwrite_newer_ones(fake: FakeGitHub) -> None:
    post(fake, "2026-02-01T00:00:00Z", "newer")
    post(fake, "2026-01-01T00:00:00Z", "older (a re-run of an old job)")
    assert marked(fake)[0]["body"].endswith("newer")


def test_someone_elses_comment_with_the_marker_is_not_deleted(fake: FakeGitHub) -> None:
    post(fake, "1", "ours")
    fake.add_comment(7, compose(MARK, "0", "quoted by a human"), login="octocat")
    post(fake, "2", "ours again")
    logins = sorted(c["user"]["login"] for c in marked(fake))
    assert logins == ["github-actions[bot]", "octocat"]


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("round_", range(4))
def test_two_concurrent_runs_converge_to_one_comment(
    fake: FakeGitHub, existing: bool, round_: int
) -> None:
    if existing:
        fake.add_comment(7, compose(MARK, "2026-01-01T00:00:00Z", "from last week"))
    barrier = threading.Barrier(2)
    # make the two runs interleave differently each round: every request waits a little
    rhythm = random.Random(round_)

    def run(name: str, version: str) -> None:
        barrier.wait()
        post(fake, version, f"content from the {name} run")

    def slow(received: object) -> None:
        threading.Event().wait(rhythm.uniform(0, 0.01))

    fake.on_request = slow
    threads = [
        threading.Thread(target=run, args=("older", "2026-03-01T10:00:00Z"), name="older"),
        threading.Thread(target=run, args=("newer", "2026-03-01T10:05:00Z"), name="newer"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    comments = marked(fake)

    assert len(comments) == 1, [c["body"] for c in comments]
    assert comments[0]["body"].endswith("content from the newer run")
