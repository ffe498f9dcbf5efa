"""Where mlci runs on GitHub: repository, pull request, commit and run, from the environment.

Read from ``GITHUB_EVENT_PATH`` (the webhook payload of the event that started the workflow)
and the ``GITHUB_*`` variables that Actions sets. For ``pull_request`` events the commit is the
pull request's head (``GITHUB_SHA`` is a merge commit GitHub made). For ``workflow_run`` events
(the fork-safe posting workflow) everything comes from the *triggering* run: its head commit,
its pull request (from the payload, or found by the head commit, or by the fork's branch) and
its URL. Nothing is ever taken from an artifact the pull request produced: a fork could write
any pull request number there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.github.errors import ContextError

if TYPE_CHECKING:
    from mlci.github.client import GitHubClient

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target", "pull_request_review")
# Events whose run executes the pull request's own code (and, from a fork, the fork's workflow).
# pull_request_target is not among them: it runs the base branch's workflow.
HEAD_CODE_EVENTS = ("pull_request", "pull_request_review", "workflow_run")


@dataclass(frozen=True)
class GitHubContext:
    """The facts a publisher needs about the current run."""

    repository: str | None
    event_name: str | None = None
    sha: str | None = None
    pull_number: int | None = None
    run_url: str | None = None
    workflow: str | None = None
    run_id: str | None = None
    run_attempt: str | None = None
    server_url: str = "https://github.com"
    head_repository: str | None = None
    head_branch: str | None = None
    event: Mapping[str, Any] | None = None

    @property
    def owner(self) -> str:
        return self.require_repository().split("/", 1)[0]

    @property
    def repo(self) -> str:
        return self.require_repository().split("/", 1)[1]

    @property
    def in_actions(self) -> bool:
        return self.run_id is not None

    @property
    def from_fork(self) -> bool:
        """Whether the results were produced by a fork's code (a fork can write any results).

        True for a pull request event whose head is in another repository, and for a
        ``workflow_run`` whose triggering run's head is in another repository (the
        comment-from-fork workflow posting what the fork's run uploaded).
        """
        if self.event_name not in HEAD_CODE_EVENTS:
            return False
        if not self.head_repository or not self.repository:
            return False
        return self.head_repository.casefold() != self.repository.casefold()

    def require_repository(self) -> str:
        if not self.repository or self.repository.count("/") != 1:
            raise ContextError(
                f"no repository to post to (got {self.repository!r})",
                tip="run inside GitHub Actions, or pass --repo OWNER/NAME",
            )
        return self.repository

    def require_sha(self) -> str:
        if not self.sha:
            raise ContextError(
                "no commit to report on", tip="run inside GitHub Actions, or pass --sha COMMIT"
            )
        return self.sha

    def require_pull_number(self) -> int:
        if self.pull_number is None:
            raise ContextError(
                f"no pull request for this run (event {self.event_name or 'unknown'})",
                tip="run on pull_request or workflow_run events, or pass --pr NUMBER",
            )
        return self.pull_number

    def with_overrides(self, **values: Any) -> GitHubContext:
        """A copy with the given non-None fields replaced (command-line options win)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def load_event(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The webhook payload at ``path`` ({} when there is none)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextError(
            f"{path}: GITHUB_EVENT_PATH names no file",
            tip="unset GITHUB_EVENT_PATH outside GitHub Actions",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContextError(f"{path}: not a readable event payload ({exc})") from None
    if not isinstance(data, dict):
        raise ContextError(f"{path}: not an event payload (expected a JSON object)")
    return data


def from_environment(env: Mapping[str, str] | None = None) -> GitHubContext:
    """The context of the current Actions run (every field None outside Actions)."""
    env = os.environ if env is None else env
    event_name = env.get("GITHUB_EVENT_NAME") or None
    event = load_event(env.get("GITHUB_EVENT_PATH"))
    server_url = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repository = env.get("GITHUB_REPOSITORY") or _dig(event, "repository", "full_name")
    run_id = env.get("GITHUB_RUN_ID") or None
    run_attempt = env.get("GITHUB_RUN_ATTEMPT") or None
    run_url = None
    if repository and run_id:
        run_url = f"{server_url}/{repository}/actions/runs/{run_id}"
        if run_attempt and run_attempt != "1":
            run_url += f"/attempts/{run_attempt}"
    context = GitHubContext(
        repository=repository,
        event_name=event_name,
        sha=env.get("GITHUB_SHA") or None,
        run_url=run_url,
        workflow=env.get("GITHUB_WORKFLOW") or None,
        run_id=run_id,
        run_attempt=run_attempt,
        server_url=server_url,
        event=event,
    )
    if event_name in PULL_REQUEST_EVENTS or (event_name is None and "pull_request" in event):
        pull = event.get("pull_request") or {}
        context = context.with_overrides(
            pull_number=_int(pull.get("number") or event.get("number")),
            sha=_dig(pull, "head", "sha"),
            head_repository=_dig(pull, "head", "repo", "full_name"),
            head_branch=_dig(pull, "head", "ref"),
        )
    elif event_name == "workflow_run" or (event_name is None and "workflow_run" in event):
        run = event.get("workflow_run") or {}
        head_sha = run.get("head_sha")
        number = None
        for pull in run.get("pull_requests") or []:
            if _dig(pull, "head", "sha") in (None, head_sha):
                number = _int(pull.get("number"))
                break
        context = context.with_overrides(
            sha=head_sha,
            pull_number=number,
            run_url=run.get("html_url"),
            workflow=run.get("name"),
            run_id=str(run["id"]) if run.get("id") is not None else None,
            run_attempt=str(run["run_attempt"]) if run.get("run_attempt") else None,
            head_repository=_dig(run, "head_repository", "full_name"),
            head_branch=run.get("head_branch"),
        )
    return context


def find_pull_request(context: GitHubContext, client: GitHubClient) -> GitHubContext:
    """Fill in the pull request of a ``workflow_run`` whose payload does not name one.

    GitHub leaves ``workflow_run.pull_requests`` empty for pull requests from forks, so look
    the pull request up: first among those associated with the head commit, then among the
    open pull requests from the fork's branch. Only a pull request whose head is exactly the
    run's head commit counts.
    """
    from mlci.github.client import expand

    if context.pull_number is not None or not context.sha or not context.repository:
        return context
    candidates = _pulls_of_commit(context, client)
    if not any(_dig(p, "head", "sha") == context.sha for p in candidates) and (
        context.head_repository and context.head_branch
    ):
        head_owner = context.head_repository.split("/", 1)[0]
        candidates = list(
            client.paginate(
                expand("/repos/{owner}/{repo}/pulls", owner=context.owner, repo=context.repo),
                params={"state": "open", "head": f"{head_owner}:{context.head_branch}"},
                permission="pull-requests: read",
            )
        )
    matching = sorted(
        _int(p.get("number"))
        for p in candidates
        if _dig(p, "head", "sha") == context.sha and p.get("number") is not None
    )
    if not matching:
        return context
    return replace(context, pull_number=matching[-1])


def find_merged_pull_request(context: GitHubContext, client: GitHubClient) -> GitHubContext:
    """Fill in the pull request whose merge made the commit of a ``push`` event (so that what
    happens after the merge, a promotion, can be said on the pull request)."""
    if context.pull_number is not None or not context.sha or not context.repository:
        return context
    merged = sorted(
        _int(p.get("number"))
        for p in _pulls_of_commit(context, client)
        if p.get("merge_commit_sha") == context.sha
        and p.get("merged_at")
        and p.get("number") is not None
    )
    return replace(context, pull_number=merged[-1]) if merged else context


def _pulls_of_commit(context: GitHubContext, client: GitHubClient) -> list[dict[str, Any]]:
    """The pull requests GitHub associates with the context's commit: those whose head it is,
    and the one whose merge made it."""
    from mlci.github.client import expand

    path = expand(
        "/repos/{owner}/{repo}/commits/{commit_sha}/pulls",
        owner=context.owner,
        repo=context.repo,
        commit_sha=context.sha,
    )
    return list(client.paginate(path, permission="pull-requests: read"))


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _int(value: Any) -> Any:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
