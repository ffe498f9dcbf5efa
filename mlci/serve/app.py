"""The Open Inference Protocol as a raw ASGI application.

Routing, request bodies and answers happen on the event loop; checking a request, running
the model and encoding the answer happen on worker threads (one hop per request), so the
loop stays free for health checks while a large request is decoded or a slow model runs.

Bodies: an endpoint that takes no body answers without reading one. uvicorn still parses
and discards a body the application did not read, so it cannot be taken for the next
request; bodies over ``DISCARD_LIMIT`` (or of unknown length) are not waited for: the
answer closes the connection instead. Inference bodies are read up to ``max_body_bytes``
(413 and close beyond it).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from concurrent.futures import Executor
from typing import Any

from mlci import __version__
from mlci.serve.http import CLOCK, RequestClock
from mlci.serve.metrics import METRICS_CONTENT_TYPE, ServeMetrics
from mlci.serve.model import Inference, ModelRunner
from mlci.serve.protocol import BadRequest, dumps, error_body, header_length

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024 * 1024
# An unread body up to this size is parsed and dropped by the server, keeping the
# connection; a larger one closes it.
DISCARD_LIMIT = 64 * 1024
EXTENSIONS = ["binary_tensor_data", "classification"]

_JSON = b"application/json"
_BINARY = b"application/octet-stream"
_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]*))?(/ready|/infer)?/?$")


# Called on the event loop after an inference answer has been sent (with the checked
# request, the outputs and the body): keep it quick, hand heavy work to a queue.
Observer = Callable[[Inference], None]


class _Body:
    """What the request says about its body."""

    __slots__ = ("chunked", "expect_continue", "length")

    def __init__(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.length = 0
        self.chunked = False
        self.expect_continue = False
        for name, value in headers:
            if name == b"content-length":
                # The HTTP parser has checked it; whatever it let through is not trusted.
                self.length = int(value) if value.isdigit() else DISCARD_LIMIT + 1
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"expect":
                self.expect_continue = True

    @property
    def discardable(self) -> bool:
        """Read and dropped by the server after an early answer, keeping the connection.

        Not so when the client waits for "100 Continue" before sending it: it may never
        come, and what comes next must not be taken for the body or for a request."""
        return not self.chunked and not self.expect_continue and self.length <= DISCARD_LIMIT


class InferenceApp:
    """The ASGI application serving one model version."""

    def __init__(
        self,
        runner: ModelRunner,
        executor: Executor,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.runner = runner
        self.executor = executor
        self.max_body_bytes = max_body_bytes
        self.observers = tuple(observers)
        self.metrics = ServeMetrics(runner.name, runner.version)
        self.ready = True
        base = f"/v2/models/{runner.name}"
        version = f"{base}/versions/{runner.version}"
        self._model_paths = {
            p: a for root in (base, version) for p, a in ((root, ""), (f"{root}/ready", "/ready"))
        }
        self._infer_paths = {f"{base}/infer", f"{version}/infer"}
        self._server_metadata = dumps(
            {"name": "mlci-serve", "version": __version__, "extensions": EXTENSIONS}
        )
        self._model_metadata = dumps(runner.metadata())

    def set_ready(self, ready: bool) -> None:
        """Report ready (200) or not (503) on the readiness endpoints."""
        self.ready = ready
        self.metrics.set_ready(ready)

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        method: str = scope["method"]
        body = _Body(scope["headers"])
        if path in self._infer_paths:
            if method == "POST":
                await self._infer(scope, receive, send, body)
            else:
                payload = error_body("use POST for inference")
                await self._send(send, "infer", 405, payload, close=not body.discardable,
                                 extra=((b"allow", b"POST"),))  # fmt: skip
            return
        extra: tuple[tuple[bytes, bytes], ...] = ()
        if method not in ("GET", "HEAD"):
            handler, status, payload, content_type = self._route(path, render=False)
            if status != 404:
                status, content_type, extra = 405, _JSON, ((b"allow", b"GET, HEAD"),)
                payload = error_body(f"{method[:20]} is not allowed on {path[:200]}; use GET")
        else:
            handler, status, payload, content_type = self._route(path)
        await self._send(send, handler, status, payload, content_type,
                         close=not body.discardable, extra=extra)  # fmt: skip

    def _route(self, path: str, render: bool = True) -> tuple[str, int, bytes, bytes]:
        """The answer to a GET: handler name, status, body and content type."""
        if path == "/v2/health/live":
            return "live", 200, b'{"live":true}', _JSON
        if path == "/v2/health/ready":
            return "ready", *_ready(self.ready, None), _JSON
        if path == "/metrics":
            text = self.metrics.render() if render else b""
            return "metrics", 200, text, METRICS_CONTENT_TYPE.encode()
        if path in ("/v2", "/v2/"):
            return "server_metadata", 200, self._server_metadata, _JSON
        action = self._model_paths.get(path)
        if action == "":
            return "model_metadata", 200, self._model_metadata, _JSON
        if action == "/ready":
            return "model_ready", *_ready(self.ready, self.runner.name), _JSON
        match = _MODEL_PATH.match(path)
        if match is None:
            return "other", 404, error_body(f"no such endpoint: {path[:200]}"), _JSON
        handler = {"": "model_metadata", "/ready": "model_ready", "/infer": "infer"}
        return handler[match.group(3) or ""], 404, error_body(self._unknown(match)), _JSON

    def _unknown(self, match: re.Match[str]) -> str:
        name, version = match.group(1), match.group(2)
        runner = self.runner
        if name != runner.name:
            return f"unknown model {name[:100]!r}; this server has {runner.name!r}"
        return (
            f"model {name!r} has no version {version[:50]!r}; "
            f"this server has version {runner.version!r}"
        )

    # -- inference -----------------------------------------------------------------------

    async def _infer(self, scope: Scope, receive: Receive, send: Send, body: _Body) -> None:
        metrics = self.metrics
        if body.length > self.max_body_bytes:
            metrics.inference_refused(413)
            await self._send(send, "infer", 413, self._too_large(), close=True)
            return
        clock: RequestClock | None = scope.get("extensions", {}).get(CLOCK)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            if clock is not None and clock.refusal is not None:
                status, text = clock.refusal
                metrics.inference_refused(status)
                await self._send(send, "infer", status, error_body(text), close=True)
                return
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    metrics.inference_refused(413)
                    await self._send(send, "infer", 413, self._too_large(), close=True)
                    return
                parts.append(chunk)
            if not message.get("more_body", False):
                break
        raw = parts[0] if len(parts) == 1 else b"".join(parts)

        start = time.perf_counter()
        metrics.inference_started()
        inference: Inference | None = None
        try:
            json_length = header_length(_header(scope, b"inference-header-content-length"))
            inference = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.runner.infer, raw, json_length
            )
            status, payload = 200, inference.body
        except BadRequest as exc:
            status, payload = exc.status, error_body(str(exc))
        except RuntimeError as exc:  # the model failed on valid inputs
            status, payload = 500, error_body(str(exc))
        except Exception as exc:  # a bug: say so in one line, keep the detail in the log
            traceback.print_exc(file=sys.stderr)
            status = 500
            payload = error_body(f"internal error ({type(exc).__name__}); see the server log")
        headers = [(b"content-length", b"%d" % len(payload))]
        if inference is not None and inference.json_length is not None:
            headers += [
                (b"content-type", _BINARY),
                (b"inference-header-content-length", b"%d" % inference.json_length),
            ]
        else:
            headers.append((b"content-type", _JSON))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            metrics.inference_finished(status, time.perf_counter() - start, _rows(inference))
            metrics.http_request("infer", status)
        if inference is not None:
            for observe in self.observers:
                _notify(observe, inference)

    async def _send(
        self,
        send: Send,
        handler: str,
        status: int,
        payload: bytes,
        content_type: bytes = _JSON,
        *,
        close: bool = False,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(payload))]
        headers += extra
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.http_request(handler, status)

    def _too_large(self) -> bytes:
        return error_body(
            f"request body over {self.max_body_bytes} bytes; send fewer rows per request"
        )


def _notify(observe: Observer, inference: Inference) -> None:
    try:
        observe(inference)
    except Exception:  # an observer's bug must not cost the connection
        traceback.print_exc(file=sys.stderr)


def _ready(ready: bool, name: str | None) -> tuple[int, bytes]:
    body: dict[str, Any] = {"name": name, "ready": ready} if name else {"ready": ready}
    return (200 if ready else 503), dumps(body)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _rows(inference: Inference | None) -> int:
    return inference.rows if inference is not None else 0
