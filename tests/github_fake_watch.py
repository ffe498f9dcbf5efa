"""The GitHub fake, extended with what mlci watch calls and the base fake lacks: the
authenticated user, issues (list, create, update), a commit by ref, workflow dispatches,
and what a pull request skeleton needs (a branch, a file's contents, a pull request).

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
        self.files: dict[tuple[str, str], dict[str, str]] = {}  # (branch, path): sha, content

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
            if op == "git/create-ref":
                name = request.body["ref"].removeprefix("refs/heads/")
                if name in self.refs:
                    return 422, {}, {"message": "Reference already exists", "status": "422",
                                     "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
                self.refs[name] = request.body["sha"]
                ref = self.spec.example("git/create-ref", 201)
                ref.update(ref=request.body["ref"])
                ref["object"]["sha"] = request.body["sha"]
                return 201, {}, ref
            if op in ("repos/get-content", "repos/create-or-update-file-contents"):
                path = "/".join(parts[4:])
                branch = (
                    parse_qs(request.query).get("ref", ["main"])[0]
                    if op == "repos/get-content"
                    else request.body.get("branch", "main")
                )
                found = self.files.get((branch, path))
                if op == "repos/get-content":
                    if found is None:
                        return 404, {}, {"message": "Not Found", "status": "404",
                                         "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
                    content = self.spec.example("repos/get-content", 200)
                    if isinstance(content, list):
                        content = content[0]
                    content.update(path=path, sha=found["sha"], content=found["content"])
                    return 200, {}, content
                if branch not in self.refs:
                    return 404, {}, {"message": "Branch not found", "status": "404",
                                     "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
                if (found is None) != ("sha" not in request.body) or (
                    found is not None and request.body["sha"] != found["sha"]
                ):
                    return 409, {}, {"message": "sha does not match", "status": "409",
                                     "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
                sha = f"{self._id():040x}"
                self.files[(branch, path)] = {"sha": sha, "content": request.body["content"]}
                status = 201 if found is None else 200
                made = self.spec.example("repos/create-or-update-file-contents", status)
                made["content"]["sha"] = sha
                return status, {}, made
            if op == "pulls/create":
                body = request.body
                pull = self.spec.example("pulls/create", 201)
                pull["requested_teams"] = []  # the example lacks the required "type"
                number = len(self.pulls) + 1
                pull.update(number=number, title=body["title"], body=body.get("body"),
                            draft=body.get("draft", False), state="open",
                            html_url=f"https://github.com/{OWNER}/{REPO}/pull/{number}")  # fmt: skip
                pull["head"].update(ref=body["head"], label=f"{OWNER}:{body['head']}",
                                    sha=self.refs.get(body["head"], "0" * 40))  # fmt: skip
                pull["base"].update(ref=body["base"])
                self.pulls.append(pull)
                return 201, {}, copy.deepcopy(pull)
        return super().handle(request, base)
