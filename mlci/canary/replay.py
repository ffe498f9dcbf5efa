"""Mirrored replay: the same requests to two Open Inference Protocol endpoints.

Worker threads take requests in order; each sends its request to both endpoints on its own
keep-alive connections, the primary first for even requests and the canary first for odd
ones, so that neither side is always the one answering second. With a rate, request ``i`` is
sent no earlier than ``i / rate`` seconds after the start (an open schedule: a slow endpoint
does not slow the schedule down, it only falls behind it). Latency is measured by the client,
from sending the request to reading the whole answer.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Endpoint:
    """Where one side answers: scheme, host, port and the infer path of its model."""

    scheme: str
    host: str
    port: int
    prefix: str
    model: str
    version: str | None = None

    @classmethod
    def from_url(cls, url: str, model: str, version: str | None = None) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), model, version)

    @property
    def model_path(self) -> str:
        """The model's metadata path, below the URL's own path."""
        path = f"/v2/models/{quote(self.model, safe='')}"
        if self.version:
            path += f"/versions/{quote(self.version, safe='')}"
        return path

    @property
    def infer_path(self) -> str:
        return f"{self.prefix}{self.model_path}/infer"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout)

    def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        """One GET of ``path`` (below the URL's own path) on a fresh connection: status and
        body; OSError when nothing answers."""
        connection = self.connect(timeout)
        try:
            connection.request("GET", self.prefix + path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


@dataclass
class Answer:
    """One endpoint's answer to one request; status 0 when none came."""

    status: int
    seconds: float
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Replayed:
    """Every mirrored request's two answers (None where the request was never sent)."""

    primary: list[Answer | None]
    canary: list[Answer | None]
    sent: int = 0
    elapsed: float = 0.0
    stopped: str = ""

    @property
    def throughput(self) -> float:
        """Mirrored requests (both answers in) per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


class _Side:
    """One worker's keep-alive connection to one endpoint."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def send(self, body: bytes) -> Answer:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = self.endpoint.connect(self.timeout)
            started = time.perf_counter()
            try:
                self.connection.request("POST", self.endpoint.infer_path, body, headers)
                response = self.connection.getresponse()
                payload = response.read()
                seconds = time.perf_counter() - started
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return Answer(response.status, seconds, payload)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server had closed: one fresh try.
                self.close()
                if attempt == 2:
                    return Answer(0, time.perf_counter() - started, error="connection reset")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                return Answer(0, time.perf_counter() - started, error=type(exc).__name__)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def mirror(
    bodies: Sequence[bytes],
    primary: Endpoint,
    canary: Endpoint,
    *,
    rate: float | None = None,
    concurrency: int = 4,
    duration: float | None = None,
    timeout: float = 10.0,
    progress: Progress = lambda _m: None,
) -> Replayed:
    """Send every body to both endpoints; stop early after ``duration`` seconds."""
    total = len(bodies)
    outcome = Replayed(primary=[None] * total, canary=[None] * total)
    lock = threading.Lock()
    state = {"next": 0, "done": 0}
    start = time.perf_counter()
    deadline = None if duration is None else start + duration
    report_every = max(1, total // 10)

    def take() -> int | None:
        with lock:
            index = state["next"]
            if index >= total or (deadline is not None and time.perf_counter() >= deadline):
                if index < total and not outcome.stopped:
                    outcome.stopped = f"stopped after {duration:g}s"
                return None
            state["next"] = index + 1
            return index

    def work() -> None:
        sides = (_Side(primary, timeout), _Side(canary, timeout))
        try:
            while (index := take()) is not None:
                if rate is not None:
                    wait = start + index / rate - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                body = bodies[index]
                first, second = (0, 1) if index % 2 == 0 else (1, 0)
                answers: list[Answer | None] = [None, None]
                answers[first] = sides[first].send(body)
                answers[second] = sides[second].send(body)
                outcome.primary[index], outcome.canary[index] = answers
                with lock:
                    state["done"] += 1
                    done = state["done"]
                if done % report_every == 0:
                    progress(f"shadow replay: {done:,} of {total:,} requests mirrored")
        finally:
            for side in sides:
                side.close()

    threads = [
        threading.Thread(target=work, name=f"mlci-replay-{i}", daemon=True)
        for i in range(max(1, min(concurrency, total)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.elapsed = time.perf_counter() - start
    outcome.sent = state["done"]
    return outcome
