"""Report a watch where the team works: one issue per model, a status on the production ref,
a retraining workflow or a pull request skeleton when a rule fires. Each is opt-in.

The issue follows the sticky comment's trust rule (``mlci.github.identity``): it is ours only
when its body starts with ``<!-- mlci:watch model=NAME -->`` and its author is the token's
identity; an issue anyone else wrote with the same marker is never edited or closed. The oldest
of ours is kept and edited in place; later copies (a create whose answer was lost) are closed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlci.github.checks import create_check_run, create_status
from mlci.github.client import GitHubClient, expand
from mlci.github.errors import NotFound, UnknownOutcome, Unprocessable
from mlci.github.identity import login_of, own_items, token_identity
from mlci.results import Results
from mlci.watch.config import ActionsConfig

MAX_ISSUE_BODY = 65536
MAX_DISPATCH_INPUT = 65535
LOOKUP_PAUSES = (1.0, 2.0, 4.0)
_UNSAFE = re.compile(r"[\r\n<>]|--")
# Watch status -> (commit status state, check run conclusion)
STATES = {"alarm": ("failure", "failure"), "ok": ("success", "success"),
          "no data": ("success", "neutral")}  # fmt: skip


def issue_marker(model: str) -> str:
    """The hidden first line of a model's watch issue."""
    return f"<!-- mlci:watch model={_UNSAFE.sub('_', model.strip()) or '_'} -->"


@dataclass
class Published:
    """What was done, one line per action, for the command to print."""

    lines: list[str] = field(default_factory=list)
    issue_url: str | None = None


class WatchIssue:
    """The one watch issue of a model in a repository."""

    def __init__(
        self,
        client: GitHubClient,
        owner: str,
        repo: str,
        model: str,
        author: str,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.owner = owner
        self.repo = repo
        self.mark = issue_marker(model)
        self.author = author
        self.sleep: Callable[[float], None] = sleep if sleep is not None else client.sleep

    @property
    def _issues(self) -> str:
        return expand("/repos/{owner}/{repo}/issues", owner=self.owner, repo=self.repo)

    def _issue(self, number: int) -> str:
        return expand(
            "/repos/{owner}/{repo}/issues/{issue_number}",
            owner=self.owner,
            repo=self.repo,
            issue_number=number,
        )

    def find(self) -> list[dict[str, Any]]:
        """Our watch issues for the model, open or closed, oldest first."""
        items = self.client.paginate(
            self._issues, params={"state": "all"}, permission="issues: read"
        )
        return own_items((i for i in items if "pull_request" not in i), self.mark, self.author)

    def upsert(
        self, title: str, body: str, labels: list[str], reopen: bool
    ) -> tuple[str, dict[str, Any]]:
        """Create the issue or edit ours in place; returns (what was done, the issue)."""
        if not body.startswith(self.mark + "\n"):
            raise ValueError("the body must start with the issue's marker")
        found = self.find()
        if not found:
            created = self._create(title, body, labels)
            self.author = login_of(created) or self.author
            found = self.find() or [created]
            action = "created"
        else:
            action = "updated"
        keep = found[0]
        update: dict[str, Any] = {}
        if (keep.get("body") or "") != body:
            update["body"] = body
        if keep.get("title") != title:
            update["title"] = title
        if reopen and keep.get("state") == "closed":
            update["state"] = "open"
        if update:
            keep = dict(
                self.client.patch(
                    self._issue(int(keep["number"])), json=update, permission="issues: write"
                ).data
            )
        elif action == "updated":
            action = "unchanged"
        for duplicate in found[1:]:
            if duplicate.get("state") != "closed":
                try:
                    self.client.patch(
                        self._issue(int(duplicate["number"])),
                        json={"state": "closed", "state_reason": "not_planned"},
                        permission="issues: write",
                    )
                except NotFound:
                    continue
        return action, keep

    def _create(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"title": title, "body": body}
        if labels:
            payload["labels"] = labels
        try:
            return dict(
                self.client.post(self._issues, json=payload, permission="issues: write").data
            )
        except UnknownOutcome:
            pass
        for pause in (0.0, *LOOKUP_PAUSES):  # the listing can lag behind a create
            if pause:
                self.sleep(pause)
            found = self.find()
            if found:
                return found[0]
        return dict(self.client.post(self._issues, json=payload, permission="issues: write").data)


def compose_issue(model: str, content: str) -> str:
    """Marker, then the report, cut to GitHub's size limit."""
    body = f"{issue_marker(model)}\n{content}"
    if len(body) <= MAX_ISSUE_BODY:
        return body
    note = "\n\n*The report was cut to fit an issue; the rest is in results.json.*\n"
    return body[: MAX_ISSUE_BODY - len(note)] + note


def evidence(document: Results, run_url: str | None) -> str:
    """The alarms as compact JSON for a workflow input (at most 65,535 characters)."""
    watch = document.watch
    assert watch is not None
    latest = watch.latest
    data: dict[str, Any] = {
        "model": document.model.name,
        "model_sha256": document.model.sha256,
        "window": None if latest is None else latest.key,
        "rows": None if latest is None else latest.rows,
        "alarms": [a.model_dump(mode="json", exclude_none=True) for a in watch.alarms],
        "run_url": run_url,
    }
    text = json.dumps(data, separators=(",", ":"))
    while len(text) > MAX_DISPATCH_INPUT and data["alarms"]:
        data["alarms"] = data["alarms"][:-1]
        data["truncated"] = True
        text = json.dumps(data, separators=(",", ":"))
    return text


def resolve_sha(client: GitHubClient, owner: str, repo: str, ref: str) -> str:
    """The commit a branch, tag or sha names."""
    path = expand("/repos/{owner}/{repo}/commits/{ref}", owner=owner, repo=repo, ref=ref)
    return str(client.get(path, permission="contents: read").data["sha"])


def publish(
    client: GitHubClient,
    owner: str,
    repo: str,
    document: Results,
    actions: ActionsConfig,
    *,
    report: str,
    run_url: str | None = None,
    author: str | None = None,
) -> Published:
    """Carry out every configured action for one model's watch results."""
    watch = document.watch
    if watch is None:
        raise ValueError("the results hold no watch section")
    model = document.model.name
    done = Published()
    alarm = watch.status == "alarm"
    if actions.issue is not None and actions.issue.enabled:
        issue = WatchIssue(client, owner, repo, model, author or token_identity(client))
        title = actions.issue.title or f"mlci watch: {model}"
        status_word = {"alarm": "alarm", "ok": "ok", "no data": "no data"}[watch.status]
        action, item = issue.upsert(
            f"{title} ({status_word})", compose_issue(model, report), actions.issue.labels, alarm
        )
        done.issue_url = item.get("html_url")
        done.lines.append(f"{model}: issue #{item.get('number')} {action}: {done.issue_url}")
    if actions.status is not None:
        cfg = actions.status
        sha = resolve_sha(client, owner, repo, cfg.ref)
        state, conclusion = STATES[watch.status]
        alarms = watch.alarms
        title = (
            f"{model}: {len(alarms)} alarm(s): {alarms[0].message}"
            if alarms
            else f"{model}: {watch.status}"
        )
        if cfg.kind == "check":
            made = create_check_run(
                client, owner, repo, sha, name=cfg.context, conclusion=conclusion,
                title=title, summary=report, details_url=done.issue_url or run_url,
            )  # fmt: skip
        else:
            made = create_status(
                client, owner, repo, sha, context=cfg.context, state=state,
                description=title, target_url=done.issue_url or run_url,
            )  # fmt: skip
        done.lines.append(f"{model}: {made.kind} {made.conclusion} on {cfg.ref} ({sha[:12]})")
    if alarm and actions.dispatch is not None:
        cfg_d = actions.dispatch
        path = expand(
            "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
            owner=owner,
            repo=repo,
            workflow_id=cfg_d.workflow,
        )
        inputs = {**cfg_d.inputs, cfg_d.evidence_input: evidence(document, run_url)}
        # not repeated blindly: a lost answer is an error rather than a second retraining
        client.post(path, json={"ref": cfg_d.ref, "inputs": inputs}, permission="actions: write")
        done.lines.append(f"{model}: dispatched {cfg_d.workflow} on {cfg_d.ref}")
    if alarm and actions.pull_request is not None:
        url = pull_request_skeleton(client, owner, repo, document, actions, report)
        done.lines.append(f"{model}: pull request {url}")
    return done


def pull_request_skeleton(
    client: GitHubClient,
    owner: str,
    repo: str,
    document: Results,
    actions: ActionsConfig,
    report: str,
) -> str | None:
    """A draft pull request on its own branch holding the evidence, for a person to finish."""
    cfg = actions.pull_request
    assert cfg is not None
    model = document.model.name
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", model)
    branch = cfg.branch or f"mlci/watch-{safe}"
    path = cfg.path or f".mlci/watch/{safe}.md"
    base = resolve_sha(client, owner, repo, cfg.base)
    refs = expand("/repos/{owner}/{repo}/git/refs", owner=owner, repo=repo)
    try:
        client.post(
            refs, json={"ref": f"refs/heads/{branch}", "sha": base}, idempotent=True,
            permission="contents: write",
        )  # fmt: skip
    except Unprocessable:
        pass  # the branch is there from an earlier alarm: update it
    contents = expand("/repos/{owner}/{repo}/contents/{path}", owner=owner, repo=repo, path=path)
    contents = contents.replace("%2F", "/")
    existing: str | None = None
    try:
        found = client.get(contents, params={"ref": branch}, permission="contents: read").data
        existing = found.get("sha") if isinstance(found, dict) else None
    except NotFound:
        existing = None
    put: dict[str, Any] = {
        "message": f"mlci watch: evidence for {model}",
        "content": base64.b64encode(report.encode()).decode(),
        "branch": branch,
    }
    if existing:
        put["sha"] = existing
    client.request("PUT", contents, json=put, permission="contents: write")
    pulls = expand("/repos/{owner}/{repo}/pulls", owner=owner, repo=repo)
    for pull in client.paginate(
        pulls,
        params={"head": f"{owner}:{branch}", "state": "open"},
        permission="pull-requests: read",
    ):
        return str(pull.get("html_url"))
    made = client.post(
        pulls,
        json={
            "title": cfg.title or f"Retrain {model}: mlci watch fired",
            "head": branch,
            "base": cfg.base,
            "body": f"mlci watch raised an alarm for `{model}`; the evidence is in `{path}`.\n\n"
            "This pull request is a skeleton: add the retrained model and let mlci check it.",
            "draft": cfg.draft,
        },
        permission="pull-requests: write",
    ).data
    return str(made.get("html_url"))
