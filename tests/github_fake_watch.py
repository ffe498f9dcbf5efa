"""The GitHub fake, extended with what mlci watch calls and the base fake lacks: the
authenticated user, issues (list, create, update), a commit by ref and workflow dispatches.

Requests are validated against GitHub's description exactly as in the base fake; operations
the base fake implements are answered by it.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import parse_qs

from github_fake import OWNER, REPO, FakeGitHub, Received

__all__ = ["OWNER", "REPO", "WatchFakeGitHub"]


class WatchFakeGitHub(FakeGitHub):
    """``token``: "installation" (GET /user is refused, as for the workflow's token) or
    "user" (GET /user names ``login``). Issues created through the API are written by
    ``login``; ``add_issue`` plants one written by anyone."""

    def __init__(self, *args: Any, token: str = "installation", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = token
        self.issues: dict[int, dict[str, Any]] = {}
        self.dispatches: list[dict[str, Any]] = []
        self.refs: dict[str, str] = {"main": "a" * 40}

    def add_issue(self, title: str, body: str, login: str, state: str = "open") -> dict[str, Any]:
        with self.lock:
            return self._new_issue(title, body, login, state)

    def _new_issue(self, title: str, body: str, login: str, state: str = "open") -> dict[str, Any]:
        issue = self.spec.example("issues/create", 201)
        number = len(self.issues) + 1
        iid = self._id()
        issue.update(
            id=iid,
            number=number,
            title=title,
            body=body,
            state=state,
            url=f"{self.url}/repos/{OWNER}/{REPO}/issues/{number}",
            html_url=f"https://github.com/{OWNER}/{REPO}/issues/{number}",
        )
        issue.pop("pull_request", None)
        issue["user"]["login"] = login
        self.issues[number] = issue
        return copy.deepcopy(issue)

    def handle(self, request: Received, base: str) -> tuple[int, dict[str, str], Any]:
        op = request.operation
        parts = request.path.strip("/").split("/")
        if op in self.forbidden:
            return super().handle(request, base)
        with self.lock:
            if op == "users/get-authenticated":
                if self.token != "user":
                    return 403, {}, {
                        "message": "Resource not accessible by integration",
                        "documentation_url": "https://docs.github.com/rest",
                        "status": "403",
                    }  # fmt: skip
                user = self.spec.example("users/get-authenticated", 200)
                user["login"] = self.login
                return 200, {}, user
            if op == "issues/list-for-repo":
                q = parse_qs(request.query)
                state = q.get("state", ["open"])[0]
                items = [
                    i for _, i in sorted(self.issues.items())
                    if state == "all" or i["state"] == state
                ]  # fmt: skip
                return self._page(items, q, base, request.path)
            if op == "issues/create":
                body = request.body
                return 201, {}, self._new_issue(body["title"], body.get("body", ""), self.login)
            if op == "issues/update":
                number = int(parts[4])
                if number not in self.issues:
                    return 404, {}, {"message": "Not Found", "status": "404",
                                     "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
                issue = self.issues[number]
                for key in ("title", "body", "state", "state_reason"):
                    if key in request.body:
                        issue[key] = request.body[key]
                return 200, {}, copy.deepcopy(issue)
            if op == "repos/get-commit":
                sha = self.refs.get(parts[4], parts[4])
                commit = self.spec.example("repos/get-commit", 200)
                commit["sha"] = sha
                commit["files"] = []  # the description's example lacks required file fields
                return 200, {}, commit
            if op == "actions/create-workflow-dispatch":
                self.dispatches.append({"workflow": parts[5], **request.body})
                return 204, {}, None
        return super().handle(request, base)
