"""One sticky pull-request comment per model and workflow, edited in place.

A comment is mlci's when its body starts with the hidden marker
``<!-- mlci:comment model=NAME workflow=WORKFLOW -->``; the next line,
``<!-- mlci:version KEY -->``, says how new its content is (the time the results were made).

How runs converge, even two at once, with only list, create, update and delete:

1. List every comment on the pull request (all pages) and keep those with the marker.
2. If there is none, create one. If the create fails in a way that may have posted it (a
   timeout, a 5xx), list again and use the comment if it is there, so nothing is posted twice.
3. Converge: list again; the *oldest* marked comment is the one to keep; the content to put in
   it is the *newest* among all marked comments and this run's own (by version key, then
   text, so every run picks the same). Update the kept comment if it differs, delete every
   other marked comment by the same author (a 404 means another run deleted it first), and
   repeat until a round changes nothing.

Every run computes the same kept comment and the same content from the same list, so two
concurrent runs write the same thing; and a run with older results never overwrites newer
ones, so re-running an old job cannot make the comment go back in time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlci.github.client import GitHubClient, expand
from mlci.github.errors import NotFound, UnknownOutcome

MAX_BODY = 65536
_VERSION = re.compile(r"^<!-- mlci:version (\S*) -->$", re.MULTILINE)
_UNSAFE = re.compile(r"[\r\n<>]|--")


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


class StickyComment:
    """The marked comment of one model on one pull request."""

    def __init__(
        self, client: GitHubClient, owner: str, repo: str, number: int, mark: str, rounds: int = 4
    ) -> None:
        self.client = client
        self.owner = owner
        self.repo = repo
        self.number = number
        self.mark = mark
        self.rounds = rounds

    def _mine(self, comment: dict[str, Any]) -> bool:
        body = comment.get("body") or ""
        return body == self.mark or body.startswith(self.mark + "\n")

    def find(self) -> list[dict[str, Any]]:
        """Every marked comment on the pull request, oldest first."""
        path = expand(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            owner=self.owner,
            repo=self.repo,
            issue_number=self.number,
        )
        found = [
            c for c in self.client.paginate(path, permission="pull-requests: read") if self._mine(c)
        ]
        return sorted(found, key=lambda c: int(c["id"]))

    def _create(self, body: str) -> dict[str, Any]:
        path = expand(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            owner=self.owner,
            repo=self.repo,
            issue_number=self.number,
        )
        try:
            return dict(
                self.client.post(path, json={"body": body}, permission="pull-requests: write").data
            )
        except UnknownOutcome:
            found = self.find()
            if found:
                return found[0]
            return dict(
                self.client.post(path, json={"body": body}, permission="pull-requests: write").data
            )

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

    def upsert(self, body: str) -> CommentResult:
        """Create or update the comment so that exactly one holds the newest content."""
        if not self._mine({"body": body}):
            raise ValueError("the body must start with the comment's marker")
        result: CommentResult | None = None
        author: str | None = None
        created = False
        for _ in range(self.rounds + 1):
            found = self.find()
            if not found:
                if created:  # someone removed it meanwhile: do not fight over it
                    break
                comment = self._create(body)
                created = True
                author = _login(comment) or author
                result = CommentResult(int(comment["id"]), comment.get("html_url"), "created")
                continue
            keep = found[0]
            best = max([c.get("body") or "" for c in found] + [body], key=_rank)
            changed = False
            if result is None:
                result = CommentResult(int(keep["id"]), keep.get("html_url"), "unchanged")
            if (keep.get("body") or "") != best:
                try:
                    updated = self._update(int(keep["id"]), best)
                except NotFound:
                    continue
                author = _login(updated) or author
                if result.action == "unchanged":
                    result.action = "updated"
                changed = True
            author = author or _login(keep)
            result.id, result.url = int(keep["id"]), keep.get("html_url") or result.url
            for duplicate in found[1:]:
                if author and _login(duplicate) not in (None, author):
                    continue  # someone else's comment that happens to carry the marker
                if self._delete(int(duplicate["id"])):
                    result.deleted.append(int(duplicate["id"]))
                changed = True
            if not changed:
                break
        if result is None:  # pragma: no cover - only when rounds < 0
            raise RuntimeError("no comment was posted")
        return result


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
) -> CommentResult:
    """Create or update the one comment of ``model`` in ``workflow`` on a pull request."""
    mark = marker(model, workflow)
    body = compose(mark, version, content, overflow_url=overflow_url)
    return StickyComment(client, owner, repo, number, mark).upsert(body)


def _login(comment: dict[str, Any]) -> str | None:
    user = comment.get("user")
    return user.get("login") if isinstance(user, dict) else None


__all__: Sequence[str] = ["marker", "compose", "upsert_comment", "StickyComment", "CommentResult"]
