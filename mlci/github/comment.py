"""One sticky pull-request comment per model and workflow, edited in place.

A comment is mlci's when its body starts with the hidden marker
``<!-- mlci:comment model=NAME workflow=WORKFLOW -->`` **and** it was written by the identity
the token belongs to (see :func:`token_identity`). Anyone can paste the marker into a comment of
their own; such a comment is never edited, deleted, counted or taken as the current content.
The next line, ``<!-- mlci:version KEY -->``, says how new the content is (the time the results
were made, never later than the time of posting).

How runs converge, even two at once, with only list, create, update and delete:

1. List every comment on the pull request (all pages) and keep ours: marked and by our author.
2. If there is none, create one. If the create fails in a way that may have posted it (a
   timeout, a 5xx), list again, a few times with growing pauses because the listing can lag
   behind a create, and use the comment if it shows up, so nothing is posted twice.
3. Converge: list again; the *oldest* of ours is the one to keep; the content to put in it is
   the *newest* among ours and this run's own (by version key, then text, so every run picks
   the same). Update the kept comment if it differs, delete every other copy (a 404 means
   another run deleted it first), and repeat until a round changes nothing.

Every run computes the same kept comment and the same content from the same list, so two
concurrent runs write the same thing; and a run with older results never overwrites newer
ones, so re-running an old job cannot make the comment go back in time. A copy that a lagging
listing hid during the run is removed by :meth:`StickyComment.converge` at the end of the run.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlci.github.client import GitHubClient, expand
from mlci.github.errors import NotFound, UnknownOutcome
from mlci.github.identity import GITHUB_ACTIONS_BOT, login_of, marked, ours, token_identity

MAX_BODY = 65536
# Pauses (seconds) between look-ups after a create whose outcome is unknown: the comment list
# can lag a few seconds behind a create.
LOOKUP_PAUSES = (1.0, 2.0, 4.0, 8.0)
_VERSION = re.compile(r"^<!-- mlci:version (\S*) -->$", re.MULTILINE)
_UNSAFE = re.compile(r"[\r\n<>]|--")
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")


def marker(model: str, workflow: str) -> str:
    """The hidden first line that identifies one model's comment in one workflow."""

    def clean(value: str) -> str:
        return _UNSAFE.sub("_", value.strip()) or "_"

    return f"<!-- mlci:comment model={clean(model)} workflow={clean(workflow)} -->"


def compose(mark: str, version: str, content: str, *, overflow_url: str | None = None) -> str:
    """The full comment body: marker, version line, content (cut to GitHub's size limit)."""
    if content.startswith("<!-- mlci:comment"):  # a template's own marker: ours replaces it
        content = content.split("\n", 1)[1] if "\n" in content else ""
    head = f"{mark}\n<!-- mlci:version {_UNSAFE.sub('_', version) or '_'} -->\n"
    body = head + content
    if len(body) <= MAX_BODY:
        return body
    note = "\n\n---\n*The report is longer than a comment may be and was cut here"
    note += (
        f"; the full report is in [the run's summary]({overflow_url}).*\n"
        if overflow_url
        else ".*\n"
    )
    return body[: MAX_BODY - len(note)] + note


def version_of(body: str) -> str:
    found = _VERSION.search(body or "")
    return found.group(1) if found else ""


def clamp_version(created: str, now: dt.datetime) -> str:
    """The version key for results made at ``created``: never later than ``now``.

    The time comes from the results document, which a fork can write as it likes; a time in
    the future would otherwise outrank every later, trusted run's comment forever.
    """
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return stamp
    if when.tzinfo is None or when > now:
        return stamp
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fork_notice(head_repository: str | None) -> str:
    """The banner above results that a fork's own workflow run produced."""
    where = f" (`{_UNSAFE.sub('_', head_repository)}`)" if head_repository else ""
    return (
        "> [!WARNING]\n"
        "> **Unverified: produced by the fork's code.** These results come from a run of the "
        f"pull request's fork{where}, which can change its own workflow and upload any "
        "results, so its check run is neutral, never a success. A maintainer can evaluate the "
        "model with this repository's workflow and data in a trusted run.\n\n"
    )


def defang_mentions(text: str) -> str:
    """Keep ``@name`` in text a fork wrote from notifying anyone (a zero-width space after @)."""
    return _MENTION.sub("@\u200b", text)


def _rank(body: str) -> tuple[str, str]:
    return (version_of(body), body)


@dataclass
class CommentResult:
    """What ``upsert`` did: the comment kept, whether it was created or updated, what it deleted."""

    id: int
    url: str | None
    action: str
    deleted: list[int] = field(default_factory=list)
    requests: int = 0
    author: str | None = None


class StickyComment:
    """The marked comment of one model on one pull request, written by one author."""

    def __init__(
        self,
        client: GitHubClient,
        owner: str,
        repo: str,
        number: int,
        mark: str,
        author: str,
        rounds: int = 4,
        sleep: Callable[[float], None] | None = None,
        pauses: Sequence[float] = LOOKUP_PAUSES,
    ) -> None:
        self.client = client
        self.owner = owner
        self.repo = repo
        self.number = number
        self.mark = mark
        self.author = author
        self.rounds = rounds
        client_sleep: Callable[[float], None] = getattr(client, "sleep", time.sleep)
        self.sleep = sleep or client_sleep
        self.pauses = tuple(pauses)

    def _ours(self, comment: dict[str, Any]) -> bool:
        return ours(comment, self.mark, self.author)

    @property
    def _comments_path(self) -> str:
        return expand(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            owner=self.owner,
            repo=self.repo,
            issue_number=self.number,
        )

    def find(self) -> list[dict[str, Any]]:
        """Our marked comments on the pull request, oldest first (others' are ignored)."""
        found = [
            c
            for c in self.client.paginate(self._comments_path, permission="pull-requests: read")
            if self._ours(c)
        ]
        return sorted(found, key=lambda c: int(c["id"]))

    def _post(self, body: str) -> dict[str, Any]:
        return dict(
            self.client.post(
                self._comments_path, json={"body": body}, permission="pull-requests: write"
            ).data
        )

    def _create(self, body: str) -> dict[str, Any]:
        try:
            return self._post(body)
        except UnknownOutcome:
            pass
        # The create may have happened, and the listing may not show it yet: look a few times.
        for pause in (0.0, *self.pauses):
            if pause:
                self.sleep(pause)
            found = self.find()
            if found:
                return found[0]
        return self._post(body)

    def _update(self, comment_id: int, body: str) -> dict[str, Any]:
        path = expand(
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            owner=self.owner,
            repo=self.repo,
            comment_id=comment_id,
        )
        return dict(
            self.client.patch(path, json={"body": body}, permission="pull-requests: write").data
        )

    def _delete(self, comment_id: int) -> bool:
        path = expand(
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            owner=self.owner,
            repo=self.repo,
            comment_id=comment_id,
        )
        try:
            self.client.delete(path, permission="pull-requests: write")
        except NotFound:  # another run deleted it first
            return False
        return True

    def _adopt_author(self, comment: dict[str, Any]) -> None:
        # What GitHub says about a comment we created is authoritative about who we are.
        login = login_of(comment)
        if login and login.casefold() != self.author.casefold():
            self.author = login

    def upsert(self, body: str) -> CommentResult:
        """Create or update the comment so that exactly one of ours holds the newest content."""
        if not marked(body, self.mark):
            raise ValueError("the body must start with the comment's marker")
        found = self.find()
        if found:
            result = CommentResult(int(found[0]["id"]), found[0].get("html_url"), "unchanged")
        else:
            comment = self._create(body)
            self._adopt_author(comment)
            result = CommentResult(int(comment["id"]), comment.get("html_url"), "created")
        self._converge(result, body)
        result.author = self.author
        return result

    def converge(self) -> CommentResult | None:
        """One final pass: keep the oldest of ours with the newest content, delete the rest.

        Run at the end, when a listing that lagged during the run has caught up; returns None
        when there is no comment of ours.
        """
        found = self.find()
        if not found:
            return None
        result = CommentResult(int(found[0]["id"]), found[0].get("html_url"), "unchanged")
        self._converge(result, None)
        result.author = self.author
        return result

    def _converge(self, result: CommentResult, body: str | None) -> None:
        for _ in range(self.rounds):
            found = self.find()
            if not found:  # removed meanwhile (or not listed yet): do not fight over it
                return
            keep = found[0]
            bodies = [c.get("body") or "" for c in found] + ([body] if body is not None else [])
            best = max(bodies, key=_rank)
            changed = False
            if (keep.get("body") or "") != best:
                try:
                    self._update(int(keep["id"]), best)
                except NotFound:
                    continue
                if result.action == "unchanged":
                    result.action = "updated"
                changed = True
            result.id, result.url = int(keep["id"]), keep.get("html_url") or result.url
            for duplicate in found[1:]:
                if self._delete(int(duplicate["id"])):
                    result.deleted.append(int(duplicate["id"]))
                changed = True
            if not changed:
                return


def upsert_comment(
    client: GitHubClient,
    owner: str,
    repo: str,
    number: int,
    *,
    model: str,
    workflow: str,
    version: str,
    content: str,
    overflow_url: str | None = None,
    author: str | None = None,
) -> CommentResult:
    """Create or update the one comment of ``model`` in ``workflow`` on a pull request.

    ``author`` is the login the token posts as (default: :func:`token_identity`).
    """
    mark = marker(model, workflow)
    body = compose(mark, version, content, overflow_url=overflow_url)
    who = author or token_identity(client)
    return StickyComment(client, owner, repo, number, mark, who).upsert(body)


@dataclass(frozen=True)
class Posting:
    """One model's comment to post: its content and how new it is."""

    model: str
    version: str
    content: str


@dataclass(frozen=True)
class Posted:
    """What happened to one model's comment in a run, including the final clean-up."""

    model: str
    result: CommentResult
    removed_at_end: list[int]


def post_all(
    client: GitHubClient,
    owner: str,
    repo: str,
    number: int,
    postings: Sequence[Posting],
    *,
    workflow: str,
    author: str | None = None,
    overflow_url: str | None = None,
    fork_repository: str | None = None,
    now: dt.datetime | None = None,
) -> list[Posted]:
    """Post each model's comment, then remove any extra copy a lagging listing hid meanwhile.

    ``fork_repository`` names the fork whose code produced the results: the comment then says
    so above the content, and mentions in the content notify no one. Versions later than
    ``now`` are clamped to it (see :func:`clamp_version`).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    who = author or token_identity(client)
    comments: list[tuple[str, StickyComment, CommentResult]] = []
    for posting in postings:
        content = posting.content
        if fork_repository is not None:
            content = fork_notice(fork_repository) + defang_mentions(content)
        mark = marker(posting.model, workflow)
        body = compose(
            mark, clamp_version(posting.version, now), content, overflow_url=overflow_url
        )
        sticky = StickyComment(client, owner, repo, number, mark, who)
        result = sticky.upsert(body)
        who = sticky.author
        comments.append((posting.model, sticky, result))
    posted = []
    for model, sticky, result in comments:
        final = sticky.converge()
        removed = final.deleted if final is not None else []
        if final is not None:
            result.id, result.url = final.id, final.url or result.url
        posted.append(Posted(model, result, removed))
    return posted


__all__: Sequence[str] = [
    "Posting",
    "Posted",
    "post_all",
    "marker",
    "compose",
    "clamp_version",
    "fork_notice",
    "defang_mentions",
    "token_identity",
    "upsert_comment",
    "StickyComment",
    "CommentResult",
    "GITHUB_ACTIONS_BOT",
]
