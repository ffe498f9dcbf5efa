"""The gate's decision on the commit: a check run, or a commit status where that is refused.

Decision to result:

=========  =================  ==============  ==========================================
decision   check conclusion   status state    why
=========  =================  ==============  ==========================================
promote    success            success         the candidate may replace production
hold       neutral            success         not promoted, not blocked: the comment says
                                              what evidence is missing; "pending" would look
                                              like a check that never finished and block a
                                              required check forever
block      failure            failure         blocks merging when the check is required
(none)     neutral            success         no gate ran: nothing to block on, said so
=========  =================  ==============  ==========================================

Results that a fork's own run produced (the comment-from-fork path) are a claim, not evidence:
the fork can change its workflow and upload any results. They never conclude ``success``:

=========  =================  ==============  ==========================================
decision   check conclusion   status state    why
=========  =================  ==============  ==========================================
promote    neutral            pending         unverified; a trusted run of this
hold       neutral            pending         repository's workflow sets the real result
(none)     neutral            pending         (the same context replaces the pending one)
block      failure            failure         a fork can only make its own pull request
                                              look worse
=========  =================  ==============  ==========================================

Check runs accept at most 50 annotations per request: the first 50 go with the create, the
rest follow in updates of 50 (GitHub appends them). Only GitHub Apps (and the workflow token)
may create check runs; a personal token gets 403, and then mlci sets a commit status instead
and returns the annotations for the caller to print as workflow commands.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlci.github.client import GitHubClient, expand
from mlci.github.errors import NotFound, PermissionDenied, UnknownOutcome
from mlci.github.workflow import annotation as annotation_command

BATCH = 50
MAX_TEXT = 65535
DECISIONS: dict[str | None, tuple[str, str]] = {
    "promote": ("success", "success"),
    "hold": ("neutral", "success"),
    "block": ("failure", "failure"),
    None: ("neutral", "success"),
}
LEVELS = ("notice", "warning", "failure")


@dataclass(frozen=True)
class Annotation:
    """One annotation on a file of the repository (paths relative to its root)."""

    path: str
    start_line: int
    end_line: int
    level: str
    message: str
    title: str | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"annotation level must be one of {LEVELS}, not {self.level!r}")

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "annotation_level": self.level,
            "message": self.message[:MAX_TEXT],
        }
        if self.title:
            data["title"] = self.title[:255]
        return data

    def to_command(self) -> str:
        level = "error" if self.level == "failure" else self.level
        return annotation_command(
            level,
            self.message,
            file=self.path,
            line=self.start_line,
            end_line=self.end_line,
            title=self.title,
        )


FORK_DECISIONS: dict[str | None, tuple[str, str]] = {
    "promote": ("neutral", "pending"),
    "hold": ("neutral", "pending"),
    "block": ("failure", "failure"),
    None: ("neutral", "pending"),
}
FORK_TITLE = "unverified, from the fork's code: "


def conclusion_for(decision: str | None, *, fork: bool = False) -> tuple[str, str]:
    """(check run conclusion, commit status state) for a gate decision.

    ``fork``: the results came from a fork's own run, so they never conclude in success.
    """
    table = FORK_DECISIONS if fork else DECISIONS
    if decision not in table:
        raise ValueError(f"unknown gate decision {decision!r} (expected promote, hold or block)")
    return table[decision]


def batches(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Publication:
    """What was published: a check run or a commit status."""

    kind: str
    conclusion: str
    url: str | None = None
    id: int | None = None
    requests: int = 0
    fallback_reason: str | None = None
    unsent_annotations: list[Annotation] = field(default_factory=list)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(
    client: GitHubClient,
    owner: str,
    repo: str,
    sha: str,
    *,
    name: str,
    decision: str | None,
    title: str,
    summary: str,
    text: str | None = None,
    annotations: Sequence[Annotation] = (),
    details_url: str | None = None,
    external_id: str | None = None,
    use_checks: bool = True,
    fork: bool = False,
) -> Publication:
    """Publish the decision as a check run, falling back to a commit status on 403.

    ``fork``: the results came from a fork's own run; they conclude neutral (status pending)
    at best, and the title says they are unverified.
    """
    conclusion, state = conclusion_for(decision, fork=fork)
    if fork:
        title = FORK_TITLE + title
    reason = None
    if use_checks:
        try:
            return create_check_run(
                client,
                owner,
                repo,
                sha,
                name=name,
                conclusion=conclusion,
                title=title,
                summary=summary,
                text=text,
                annotations=annotations,
                details_url=details_url,
                external_id=external_id,
            )
        except (PermissionDenied, NotFound) as exc:
            reason = exc.message
    publication = create_status(
        client,
        owner,
        repo,
        sha,
        context=name,
        state=state,
        description=title,
        target_url=details_url,
    )
    publication.fallback_reason = reason
    publication.unsent_annotations = list(annotations)
    return publication


def create_check_run(
    client: GitHubClient,
    owner: str,
    repo: str,
    sha: str,
    *,
    name: str,
    conclusion: str,
    title: str,
    summary: str,
    text: str | None = None,
    annotations: Sequence[Annotation] = (),
    details_url: str | None = None,
    external_id: str | None = None,
) -> Publication:
    """A completed check run carrying every annotation, 50 per request."""
    groups = list(batches([a.to_api() for a in annotations])) or [[]]
    output: dict[str, Any] = {"title": title[:255], "summary": summary[:MAX_TEXT]}
    if text:
        output["text"] = text[:MAX_TEXT]
    body: dict[str, Any] = {
        "name": name,
        "head_sha": sha,
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": _now(),
        "output": {**output, "annotations": list(groups[0])} if groups[0] else output,
    }
    if details_url:
        body["details_url"] = details_url
    if external_id:
        body["external_id"] = external_id
    path = expand("/repos/{owner}/{repo}/check-runs", owner=owner, repo=repo)
    requests = 1
    try:
        run = client.post(path, json=body, permission="checks: write").data
    except UnknownOutcome:
        run = _find_check_run(client, owner, repo, sha, name, external_id) if external_id else None
        requests += 1
        if run is None:
            run = client.post(path, json=body, permission="checks: write").data
            requests += 1
    run_id = int(run["id"])
    update = expand(
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        owner=owner,
        repo=repo,
        check_run_id=run_id,
    )
    for group in groups[1:]:
        client.patch(
            update,
            json={"output": {**output, "annotations": list(group)}},
            permission="checks: write",
        )
        requests += 1
    return Publication(
        kind="check_run",
        conclusion=conclusion,
        url=run.get("html_url"),
        id=run_id,
        requests=requests,
    )


def _find_check_run(
    client: GitHubClient, owner: str, repo: str, sha: str, name: str, external_id: str
) -> dict[str, Any] | None:
    path = expand("/repos/{owner}/{repo}/commits/{ref}/check-runs", owner=owner, repo=repo, ref=sha)
    for run in client.paginate(path, params={"check_name": name}, permission="checks: read"):
        if run.get("external_id") == external_id:
            return dict(run)
    return None


def create_status(
    client: GitHubClient,
    owner: str,
    repo: str,
    sha: str,
    *,
    context: str,
    state: str,
    description: str,
    target_url: str | None = None,
) -> Publication:
    """A commit status (setting one twice is harmless: the latest per context wins)."""
    body: dict[str, Any] = {"state": state, "context": context, "description": description[:140]}
    if target_url:
        body["target_url"] = target_url
    path = expand("/repos/{owner}/{repo}/statuses/{sha}", owner=owner, repo=repo, sha=sha)
    data = client.post(path, json=body, idempotent=True, permission="statuses: write").data
    return Publication(
        kind="status", conclusion=state, url=target_url, id=data.get("id"), requests=1
    )
