"""A stateful fake GitHub API on loopback that holds every request to GitHub's description.

It implements only what mlci calls (the authenticated user; issue comments: list, create,
update, delete; check runs: create, update, list for a ref; commit statuses: create; pull
requests: list, and those of a commit).

``token`` says what kind of token the client holds: ``"installation"`` (the workflow's
``GITHUB_TOKEN``; ``GET /user`` is refused with 403, as GitHub does) or ``"user"`` (a personal
token; ``GET /user`` answers with ``login``). Comments created through the API are written by
``login``. ``list_lag`` hides each comment created through the API from that many of the
following comment listings, as GitHub's listing sometimes lags behind a create. Every request it receives is checked against the OpenAPI operation it calls (method,
path template, path and query parameters, JSON body against the request body schema); every
violation is recorded and answered with 400, and :meth:`FakeGitHub.assert_valid` fails the
test. Responses start from the description's own examples and are checked against the
operation's response schema before they are sent.

Faults are queued with :meth:`FakeGitHub.fault`: an error status with headers, a delay longer
than the client's timeout (optionally after the request took effect), or a dropped connection.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from github_openapi import Spec, description

OWNER, REPO = "octo-org", "octo-repo"


@dataclass
class Fault:
    operation: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    apply_first: bool = False
    drop: bool = False
    times: int = 1


@dataclass
class Received:
    method: str
    path: str
    query: str
    operation: str | None
    body: Any
    headers: dict[str, str]
    answered: int = 0


class FakeGitHub:
    """State plus a server; use as a context manager or through the ``fake_github`` fixture."""

    def __init__(
        self,
        spec: Spec | None = None,
        *,
        login: str = "github-actions[bot]",
        token: str = "installation",
    ) -> None:
        self.spec = spec or description()
        self.login = login
        self.token = token
        self.list_lag = 0
        self.hidden: dict[int, int] = {}  # comment id -> listings that will not show it yet
        self.lock = threading.RLock()
        self.comments: dict[int, dict[str, Any]] = {}
        self.comment_issue: dict[int, int] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[Received] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.forbidden: set[str] = set()
        self.page_size_cap = 100
        self.prefix = ""  # e.g. "/api/v3", as on GitHub Enterprise Server
        self.on_request: Callable[[Received], None] | None = None
        self._next_id = 1000
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def assert_valid(self) -> None:
        assert not self.violations, "requests not valid per GitHub's description:\n" + "\n".join(
            self.violations
        )

    # -- helpers for tests --------------------------------------------------------------------

    def fault(self, operation: str, **kwargs: Any) -> Fault:
        item = Fault(operation, **kwargs)
        with self.lock:
            self.faults.append(item)
        return item

    def calls(self, operation: str) -> list[Received]:
        return [r for r in self.requests if r.operation == operation]

    def issue_comments(self, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(c)
                for cid, c in sorted(self.comments.items())
                if self.comment_issue[cid] == number
            ]

    def add_comment(self, number: int, body: str, login: str | None = None) -> dict[str, Any]:
        with self.lock:
            return self._create_comment(number, body, login or self.login)

    def add_pull(self, number: int, head_sha: str, head_label: str) -> None:
        pull = self.spec.example("pulls/list", 200)[0]
        pull.update(number=number, id=number, state="open")
        pull["requested_teams"] = []  # the description's example lacks the required "type"
        pull["head"]["sha"] = head_sha
        pull["head"]["label"] = head_label
        pull["head"]["ref"] = head_label.split(":", 1)[1]
        self.pulls.append(pull)

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- behaviour ---------------------------------------------------------------------------

    def _create_comment(self, number: int, body: str, login: str) -> dict[str, Any]:
        comment = self.spec.example("issues/create-comment", 201)
        cid = self._id()
        comment.update(
            id=cid,
            node_id=f"IC_{cid}",
            body=body,
            url=f"{self.url}/repos/{OWNER}/{REPO}/issues/comments/{cid}",
            html_url=f"https://github.com/{OWNER}/{REPO}/pull/{number}#issuecomment-{cid}",
            issue_url=f"{self.url}/repos/{OWNER}/{REPO}/issues/{number}",
        )
        comment["user"]["login"] = login
        self.comments[cid] = comment
        self.comment_issue[cid] = number
        return comment

    def _find_fault(self, operation: str) -> Fault | None:
        with self.lock:
            for item in self.faults:
                if item.operation == operation and item.times > 0:
                    item.times -= 1
                    return item
        return None

    def handle(self, request: Received, base: str) -> tuple[int, dict[str, str], Any]:
        op = request.operation
        q = parse_qs(request.query)
        parts = request.path.strip("/").split("/")
        if op in self.forbidden:
            return (
                403,
                {},
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "403",
                },
            )
        with self.lock:
            if op == "users/get-authenticated":
                if self.token != "user":
                    return (
                        403,
                        {},
                        {
                            "message": "Resource not accessible by integration",
                            "documentation_url": "https://docs.github.com/rest/users/users"
                            "#get-the-authenticated-user",
                            "status": "403",
                        },
                    )
                user = self.spec.example("users/get-authenticated", 200)
                user["login"] = self.login
                return 200, {}, user
            if op == "issues/list-comments":
                number = int(parts[4])
                first_page = q.get("page", ["1"])[0] == "1"
                items = []
                for cid, c in sorted(self.comments.items()):
                    if self.comment_issue[cid] != number:
                        continue
                    if self.hidden.get(cid, 0) > 0:
                        if first_page:
                            self.hidden[cid] -= 1
                        continue
                    items.append(c)
                return self._page(items, q, base, request.path)
            if op == "issues/create-comment":
                comment = self._create_comment(int(parts[4]), request.body["body"], self.login)
                if self.list_lag:
                    self.hidden[int(comment["id"])] = self.list_lag
                return 201, {}, comment
            if op in ("issues/update-comment", "issues/delete-comment"):
                cid = int(parts[5])
                if cid not in self.comments:
                    return (
                        404,
                        {},
                        {
                            "message": "Not Found",
                            "documentation_url": "https://docs.github.com/rest",
                            "status": "404",
                        },
                    )
                if op == "issues/delete-comment":
                    del self.comments[cid]
                    return 204, {}, None
                self.comments[cid]["body"] = request.body["body"]
                self.comments[cid]["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ")
                return 200, {}, copy.deepcopy(self.comments[cid])
            if op == "checks/create":
                run = self.spec.example("checks/create", 201)
                rid = self._id()
                run.update(
                    id=rid,
                    name=request.body["name"],
                    head_sha=request.body["head_sha"],
                    status=request.body.get("status", "queued"),
                    conclusion=request.body.get("conclusion"),
                    external_id=request.body.get("external_id", ""),
                    html_url=f"https://github.com/{OWNER}/{REPO}/runs/{rid}",
                )
                run["output"]["title"] = request.body.get("output", {}).get("title")
                run["output"]["summary"] = request.body.get("output", {}).get("summary")
                self.check_runs[rid] = run
                self.annotations[rid] = list(request.body.get("output", {}).get("annotations", []))
                return 201, {}, copy.deepcopy(run)
            if op == "checks/update":
                rid = int(parts[4])
                run = self.check_runs[rid]
                self.annotations[rid] += request.body.get("output", {}).get("annotations", [])
                return 200, {}, copy.deepcopy(run)
            if op == "checks/list-for-ref":
                name = q.get("check_name", [None])[0]
                runs = [
                    r
                    for r in self.check_runs.values()
                    if r["head_sha"] == parts[4] and (name is None or r["name"] == name)
                ]
                return 200, {}, {"total_count": len(runs), "check_runs": copy.deepcopy(runs)}
            if op == "repos/create-commit-status":
                status = self.spec.example("repos/create-commit-status", 201)
                status.update(
                    id=self._id(),
                    state=request.body["state"],
                    context=request.body.get("context", "default"),
                    description=request.body.get("description"),
                    target_url=request.body.get("target_url"),
                )
                status["sha"] = parts[4]
                self.statuses.append(status)
                return 201, {}, copy.deepcopy(status)
            if op == "repos/list-pull-requests-associated-with-commit":
                # GitHub lists the pull requests whose head is the commit, and the one whose
                # merge made it.
                return (
                    200,
                    {},
                    [
                        p
                        for p in self.pulls
                        if parts[4] in (p["head"]["sha"], p.get("merge_commit_sha"))
                    ],
                )
            if op == "pulls/list":
                head = q.get("head", [None])[0]
                return (
                    200,
                    {},
                    [p for p in self.pulls if head is None or p["head"]["label"] == head],
                )
        return 501, {}, {"message": f"the fake does not implement {op}"}

    def _page(self, items: list[Any], q: dict[str, list[str]], base: str, path: str) -> Any:
        per_page = min(int(q.get("per_page", ["30"])[0]), self.page_size_cap)
        page = int(q.get("page", ["1"])[0])
        chunk = copy.deepcopy(items[(page - 1) * per_page : page * per_page])
        headers = {}
        if page * per_page < len(items):
            headers["Link"] = (
                f'<{base}{path}?per_page={per_page}&page={page + 1}>; rel="next", '
                f"<{base}{path}?per_page={per_page}&page={(len(items) - 1) // per_page + 1}>; "
                'rel="last"'
            )
        return 200, headers, chunk

    # -- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                split = urlsplit(self.path)
                if fake.prefix:
                    if not split.path.startswith(fake.prefix + "/"):
                        with fake.lock:
                            fake.violations.append(f"{split.path}: not under {fake.prefix}")
                    split = split._replace(path=split.path[len(fake.prefix) :])
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                operation, problems = fake.spec.check_request(
                    self.command, split.path, split.query, raw, self.headers.get("Content-Type")
                )
                if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
                    problems.append(f"{self.command} {split.path}: no X-GitHub-Api-Version")
                if "json" not in (self.headers.get("Accept") or ""):
                    problems.append(f"{self.command} {split.path}: Accept is not JSON")
                if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                    problems.append(f"{self.command} {split.path}: no bearer token")
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                received = Received(
                    self.command,
                    split.path,
                    split.query,
                    operation.id if operation else None,
                    body,
                    {k.lower(): v for k, v in self.headers.items()},
                )
                with fake.lock:
                    fake.requests.append(received)
                if fake.on_request:
                    fake.on_request(received)
                if problems:
                    with fake.lock:
                        fake.violations.extend(problems)
                    return self._send(400, {}, {"message": "; ".join(problems)}, received)
                fault = fake._find_fault(received.operation or "")
                if fault and fault.drop:
                    self.close_connection = True
                    self.connection.close()
                    return None
                if fault and fault.apply_first:
                    status, headers, data = fake.handle(received, fake.url + fake.prefix)
                    time.sleep(fault.delay)
                    return self._send(status, headers, data, received)
                if fault:
                    time.sleep(fault.delay)
                    if fault.status is not None:
                        return self._send(fault.status, fault.headers, fault.body, received)
                status, headers, data = fake.handle(received, fake.url + fake.prefix)
                if 200 <= status < 300 and data is not None and received.operation:
                    schema = fake.spec.response_schema(received.operation, status)
                    if schema is not None:
                        errors = fake.spec.errors(schema, data)
                        if errors:
                            with fake.lock:
                                fake.violations.append(
                                    f"fake's own {received.operation} response: {errors[:3]}"
                                )
                return self._send(status, headers, data, received)

            def _send(
                self, status: int, headers: dict[str, str], data: Any, received: Received
            ) -> None:
                payload = b"" if data is None else json.dumps(data).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    received.answered = status
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        return Handler


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeGitHub]:
    with FakeGitHub(**kwargs) as fake:
        yield fake
