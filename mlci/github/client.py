"""A small GitHub REST client on ``requests``: the only module of mlci that touches the network.

Policy, in one place:

* **Where**: ``GITHUB_API_URL`` (GitHub Enterprise Server sets it to ``https://HOST/api/v3``),
  else ``https://api.github.com``. Every request carries ``Accept: application/vnd.github+json``,
  ``X-GitHub-Api-Version`` and a ``User-Agent`` naming mlci; the token goes in
  ``Authorization: Bearer``. Pagination follows ``Link: rel="next"`` only on the same host, so
  the token never leaves for another server.
* **Retries**: connection failures, timeouts and 500/502/503/504 are retried with exponential
  backoff and jitter (``backoff * 2**attempt``, at most ``max_retries`` retries). Requests that
  are not safe to repeat (``POST`` that creates something) are retried only when they surely did
  not reach GitHub (the connection could not be opened) or were refused by a rate limit; any
  other failure raises :class:`UnknownOutcome` so the caller can look before it posts again.
* **Rate limits**: a 403 or 429 with ``Retry-After`` waits that many seconds; with
  ``x-ratelimit-remaining: 0`` it waits until ``x-ratelimit-reset``; a secondary rate limit
  without either header waits a minute, doubling on each retry. A wait longer than
  ``max_wait`` seconds is not taken: the client raises :class:`RateLimited` instead.
* **Errors**: 401, 403, 404, 410 and 422 raise one-line errors that name the request and say
  what to do.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from mlci import __version__
from mlci.github.errors import (
    FORK_TIP,
    AuthenticationError,
    ContextError,
    GitHubError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnknownOutcome,
    Unprocessable,
)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
USER_AGENT = f"mlci/{__version__} (+https://github.com/mlci)"
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
TOKEN_VARIABLES = ("MLCI_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")


@dataclass(frozen=True)
class Response:
    """What a request returned: status, headers (lower-case names) and the decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    data: Any
    url: str = ""
    links: Mapping[str, str] = field(default_factory=dict)


def token_from_environment(env: Mapping[str, str] | None = None) -> str | None:
    """The first non-empty token among MLCI_GITHUB_TOKEN, GITHUB_TOKEN and GH_TOKEN."""
    env = os.environ if env is None else env
    for name in TOKEN_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def expand(template: str, **values: Any) -> str:
    """Fill a path template such as ``/repos/{owner}/{repo}``, quoting every value."""
    return template.format(**{k: quote(str(v), safe="") for k, v in values.items()})


class GitHubClient:
    """Talks to one GitHub API server with one token."""

    def __init__(
        self,
        token: str | None,
        *,
        api_url: str | None = None,
        timeout: float | tuple[float, float] = (10.0, 30.0),
        max_retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        session: Any = None,
    ) -> None:
        self.token = token
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ContextError(
                f"GITHUB_API_URL {self.api_url!r} is not an http(s) URL",
                tip="leave it unset for github.com, or set https://HOST/api/v3 for "
                "GitHub Enterprise Server",
            )
        self._origin = (parts.scheme, parts.netloc)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self._session = session

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, *, token: str | None = None, **kwargs: Any
    ) -> GitHubClient:
        """A client for ``GITHUB_API_URL`` with ``token`` or the token from the environment."""
        env = os.environ if env is None else env
        token = token or token_from_environment(env)
        if not token:
            raise ContextError(
                "no GitHub token: set GITHUB_TOKEN (or MLCI_GITHUB_TOKEN)",
                tip="in a workflow pass the github-token input, or env GITHUB_TOKEN set from "
                "the workflow's token",
            )
        return cls(token, api_url=env.get("GITHUB_API_URL") or None, **kwargs)

    # -- plumbing -------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            if (parts.scheme, parts.netloc) != self._origin:
                raise GitHubError(
                    f"refusing to follow a link to {parts.scheme}://{parts.netloc}, which is "
                    f"not the GitHub API at {self.api_url}",
                    tip="check GITHUB_API_URL",
                )
            return path
        return self.api_url + "/" + path.lstrip("/")

    def _backoff(self, attempt: int) -> float:
        return float(self.backoff * (2**attempt) * (0.5 + random.random() / 2))

    def _rate_limit_wait(self, response: Any, attempt: int) -> float | None:
        """Seconds to wait when ``response`` is a rate-limit refusal, else None."""
        if response.status_code not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - float(self.clock())) + 1.0
            except ValueError:
                return 60.0
        message = _message(response).lower()
        if response.status_code == 429 or "rate limit" in message:
            return float(60.0 * (2**attempt))
        return None

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        permission: str | None = None,
    ) -> Response:
        """Send one request, retrying what may be retried; return the response or raise.

        ``idempotent`` overrides the method's default (POST is not safe to repeat);
        ``permission`` names the token permission the request needs, for the error tip.
        """
        import requests

        method = method.upper()
        safe = method in SAFE_METHODS if idempotent is None else idempotent
        url = self._url(path)
        what = f"{method} {urlsplit(url).path}"
        attempt = 0
        rate_limit_retries = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=self._headers(),
                    timeout=self.timeout,
                    allow_redirects=method in ("GET", "HEAD"),
                )
            except requests.exceptions.RequestException as exc:
                not_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
                    isinstance(exc, requests.exceptions.ConnectionError) and _connect_failed(exc)
                )
                reason = _network_reason(exc)
                if not (safe or not_sent):
                    raise UnknownOutcome(
                        f"{what}: {reason}; GitHub may or may not have acted on it",
                        tip="run the command again; mlci looks for what it posted before "
                        "posting again",
                        method=method,
                        path=what,
                    ) from None
                if attempt >= self.max_retries:
                    raise Unavailable(
                        f"{what}: {reason} after {attempt + 1} attempts",
                        tip=f"check that {self.api_url} is reachable from this runner",
                        method=method,
                        path=what,
                    ) from None
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue

            status = response.status_code
            if status < 300:
                return _response(response)
            wait = self._rate_limit_wait(response, rate_limit_retries)
            if wait is not None:
                if wait > self.max_wait or rate_limit_retries >= self.max_retries:
                    raise RateLimited(
                        f"{what}: GitHub API rate limit exceeded ({status}: {_message(response)}); "
                        f"it would lift in {wait:.0f} s",
                        tip="wait and run again, reduce concurrent jobs, or use a token with a "
                        "higher limit",
                        status=status,
                        method=method,
                        path=what,
                    )
                self.sleep(wait)
                rate_limit_retries += 1
                continue
            if status in RETRYABLE_STATUS:
                if not safe:
                    raise UnknownOutcome(
                        f"{what}: GitHub answered {status} ({_message(response)}); it may or "
                        "may not have acted on it",
                        tip="run the command again; mlci looks for what it posted before "
                        "posting again",
                        status=status,
                        method=method,
                        path=what,
                    )
                if attempt >= self.max_retries:
                    raise Unavailable(
                        f"{what}: GitHub answered {status} ({_message(response)}) "
                        f"{attempt + 1} times",
                        tip="GitHub may be having an outage (see githubstatus.com); run again "
                        "later",
                        status=status,
                        method=method,
                        path=what,
                    )
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            raise _error(response, what, method, permission)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        per_page: int = 100,
        max_pages: int = 1000,
        permission: str | None = None,
    ) -> Iterator[Any]:
        """Yield the items of a list endpoint, following ``Link: rel="next"``."""
        query = dict(params or {})
        query.setdefault("per_page", per_page)
        response = self.get(path, params=query, permission=permission)
        pages = 1
        while True:
            data = response.data
            if isinstance(
                data, dict
            ):  # wrapped lists, e.g. {"total_count": n, "check_runs": [...]}
                lists = [v for v in data.values() if isinstance(v, list)]
                data = lists[0] if len(lists) == 1 else []
            yield from data or []
            next_url = response.links.get("next")
            if not next_url or pages >= max_pages:
                return
            response = self.get(next_url, permission=permission)
            pages += 1


# -- helpers ------------------------------------------------------------------------------


def _response(response: Any) -> Response:
    data: Any = None
    if response.content:
        try:
            data = response.json()
        except ValueError:
            data = response.text
    links = {name: link["url"] for name, link in (response.links or {}).items() if "url" in link}
    return Response(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        data=data,
        url=response.url,
        links=links,
    )


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip().replace("\n", " ")
        return text[:200] or response.reason or "no message"
    if isinstance(body, dict):
        message = str(body.get("message") or response.reason or "no message")
        details = []
        for item in body.get("errors") or []:
            if isinstance(item, dict):
                detail = item.get("message") or " ".join(
                    str(item[k]) for k in ("resource", "field", "code") if item.get(k)
                )
                if detail:
                    details.append(str(detail))
            elif item:
                details.append(str(item))
        if details:
            message += ": " + "; ".join(details)
        return message.replace("\n", " ")
    return str(body)[:200]


def _connect_failed(exc: Exception) -> bool:
    """True when the connection was never established (so the request never left)."""
    text = repr(exc)
    return any(
        marker in text
        for marker in ("NewConnectionError", "NameResolutionError", "Connection refused")
    )


def _network_reason(exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer before the timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "the connection failed" if _connect_failed(exc) else "the connection broke"
    return f"request failed ({exc.__class__.__name__})"


def _error(response: Any, what: str, method: str, permission: str | None) -> GitHubError:
    status = response.status_code
    message = _message(response)
    kwargs: dict[str, Any] = {"status": status, "method": method, "path": what}
    if status == 401:
        return AuthenticationError(
            f"{what}: GitHub rejected the token (401 {message})",
            tip="the token is missing, expired or revoked; in a workflow pass "
            "github-token (the default workflow token works)",
            **kwargs,
        )
    if status == 403:
        need = f"grant '{permission}' in the job's permissions; " if permission else ""
        return PermissionDenied(
            f"{what}: the token may not do this (403 {message})",
            tip=f"{need}{FORK_TIP}",
            **kwargs,
        )
    if status == 404:
        return NotFound(
            f"{what}: not found (404 {message})",
            tip="check the repository and pull request number; a token without access to a "
            "private repository also gets 404",
            **kwargs,
        )
    if status == 410:
        return NotFound(
            f"{what}: gone (410 {message})",
            tip="issues may be disabled on this repository",
            **kwargs,
        )
    if status == 422:
        return Unprocessable(
            f"{what}: GitHub refused the content (422 {message})",
            tip="the commit may not be in this repository (for example a fork's commit), or "
            "a value is too long; check the message above",
            **kwargs,
        )
    return GitHubError(f"{what}: GitHub answered {status} ({message})", **kwargs)
