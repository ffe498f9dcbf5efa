"""The sticky comment: one per model and workflow, edited in place, converging under races."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from github_fake import OWNER, REPO, FakeGitHub

from mlci.github.client import GitHubClient
from mlci.github.comment import (
    MAX_BODY,
    Posting,
    clamp_version,
    compose,
    defang_mentions,
    marker,
    post_all,
    upsert_comment,
    version_of,
)

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


# -- whose comment it is ----------------------------------------------------------------------

STRANGER_BODY = compose(MARK, "9999-12-31T23:59:59Z", "a stranger's copy with a high version")


def test_a_strangers_marked_comment_before_ours_is_ignored(fake: FakeGitHub) -> None:
    planted = fake.add_comment(7, STRANGER_BODY, login="mallory")
    result = upsert_comment(client(fake), OWNER, REPO, 7, model="credit", workflow="Model CI",
                            version="2026-01-01T00:00:00Z", content="ours")  # fmt: skip
    assert result.action == "created" and result.id != planted["id"]
    comments = {c["id"]: c for c in fake.issue_comments(7)}
    assert comments[planted["id"]]["body"] == STRANGER_BODY  # never edited
    assert comments[result.id]["body"].endswith("ours")  # its high version did not win
    assert comments[result.id]["user"]["login"] == "github-actions[bot]"
    assert not fake.calls("issues/update-comment") and not fake.calls("issues/delete-comment")


def test_a_strangers_marked_comment_after_ours_is_ignored(fake: FakeGitHub) -> None:
    first = post(fake, "2026-01-01T00:00:00Z", "ours, first")
    planted = fake.add_comment(7, STRANGER_BODY, login="mallory")
    result = upsert_comment(client(fake), OWNER, REPO, 7, model="credit", workflow="Model CI",
                            version="2026-01-02T00:00:00Z", content="ours, second")  # fmt: skip
    assert (result.id, result.action, result.deleted) == (first, "updated", [])
    comments = {c["id"]: c for c in fake.issue_comments(7)}
    assert comments[first]["body"].endswith("ours, second")
    assert comments[planted["id"]]["body"] == STRANGER_BODY
    updated = {int(r.path.rsplit("/", 1)[1]) for r in fake.calls("issues/update-comment")}
    assert updated == {first}


def test_a_stranger_copying_our_exact_body_is_not_taken_as_unchanged(fake: FakeGitHub) -> None:
    body = compose(MARK, "1", "same")
    fake.add_comment(7, body, login="mallory")
    result = upsert_comment(client(fake), OWNER, REPO, 7, model="credit", workflow="Model CI",
                            version="1", content="same")  # fmt: skip
    assert result.action == "created"
    assert sorted(c["user"]["login"] for c in marked(fake)) == ["github-actions[bot]", "mallory"]


def test_a_personal_token_is_identified_by_its_user() -> None:
    with FakeGitHub(login="model-bot", token="user") as fake:
        bot = fake.add_comment(7, compose(MARK, "5", "by the workflow token"))
        fake.comments[bot["id"]]["user"]["login"] = "github-actions[bot]"
        result = upsert_comment(client(fake), OWNER, REPO, 7, model="credit",
                                workflow="Model CI", version="1", content="by model-bot")  # fmt: skip
        assert result.action == "created" and result.author == "model-bot"
        assert fake.issue_comments(7)[0]["body"].endswith("by the workflow token")
        assert [r.operation for r in fake.requests][0] == "users/get-authenticated"
        fake.assert_valid()


def test_an_apps_token_learns_its_login_from_the_comment_it_creates() -> None:
    with FakeGitHub(login="mlci-app[bot]") as fake:
        first = upsert_comment(client(fake), OWNER, REPO, 7, model="credit",
                               workflow="Model CI", version="1", content="one")  # fmt: skip
        assert first.author == "mlci-app[bot]"
        again = upsert_comment(client(fake), OWNER, REPO, 7, model="credit", workflow="Model CI",
                               version="2", content="two", author="mlci-app[bot]")  # fmt: skip
        assert (again.id, again.action) == (first.id, "updated")
        fake.assert_valid()


def test_versions_from_the_future_are_clamped_to_now() -> None:
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert clamp_version("2026-02-01T00:00:00Z", now) == "2026-02-01T00:00:00Z"
    assert clamp_version("2026-02-01T01:00:00+01:00", now) == "2026-02-01T00:00:00Z"
    for bad in ("9999-12-31T23:59:59Z", "not a time", "2026-02-01T00:00:00", ""):
        assert clamp_version(bad, now) == "2026-03-01T12:00:00Z"


def test_fork_results_are_labelled_and_mention_no_one(fake: FakeGitHub) -> None:
    (posted,) = post_all(
        client(fake), OWNER, REPO, 7, [Posting("credit", "1", "ping @octo-org/admins and @bob")],
        workflow="Model CI", fork_repository="mallory/octo-repo",
    )  # fmt: skip
    body = fake.issue_comments(7)[0]["body"]
    assert body.startswith(MARK + "\n")
    assert "Unverified: produced by the fork's code" in body and "`mallory/octo-repo`" in body
    assert "@octo-org" not in body and "@bob" not in body and "@\u200bbob" in body
    assert defang_mentions("mail a@b.c, `@x`, @y") == "mail a@b.c, `@x`, @\u200by"


# -- the listing lags behind a create ----------------------------------------------------------


def test_an_unknown_create_is_found_even_when_the_listing_lags(fake: FakeGitHub) -> None:
    fake.list_lag = 3  # the new comment shows only in the fourth listing after its create
    fake.fault("issues/create-comment", delay=0.5, apply_first=True)
    pauses: list[float] = []
    slow = GitHubClient("ghs_test", api_url=fake.url, timeout=0.25, sleep=pauses.append)
    result = upsert_comment(slow, OWNER, REPO, 7, model="credit", workflow="Model CI",
                            version="1", content="once")  # fmt: skip
    assert len(fake.calls("issues/create-comment")) == 1  # never posted again
    assert [c["id"] for c in fake.issue_comments(7)] == [result.id]
    assert pauses == [1.0, 2.0, 4.0]  # looked again with growing pauses until it showed


def test_extra_copies_left_by_a_long_lag_are_removed_at_the_end(
    fake: FakeGitHub, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from test_github_publish import actions_env, document, parse, write

    actions_env(monkeypatch, tmp_path, fake)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    fake.list_lag = 6  # longer than every look-up: the comment is posted twice
    fake.fault("issues/create-comment", delay=0.5, apply_first=True)

    def on_request(received: Any) -> None:
        if received.operation == "issues/create-comment":
            fake.list_lag = 0 if len(fake.calls("issues/create-comment")) > 1 else 6

    fake.on_request = on_request
    import mlci.commands.github as commands_module

    monkeypatch.setattr(
        commands_module,
        "_client",
        lambda env: GitHubClient("ghs_test", api_url=fake.url, timeout=0.25, sleep=lambda s: None),
    )
    args = parse(["comment", str(write(tmp_path, document()))])
    assert args.run(args) == 0
    assert len(fake.calls("issues/create-comment")) == 2
    assert len(fake.issue_comments(7)) == 1  # the extra copy is gone
    out = capsys.readouterr().out
    assert "removed 1 extra copy(ies) of mlci's comment" in out
