"""An Open Inference Protocol (KServe v2) REST server for one ONNX model.

Standard library HTTP server, one thread per connection, ONNX Runtime underneath::

    GET  /v2/health/live                          200 while the process runs
    GET  /v2/health/ready                         200 once the model is loaded; 503 when draining
    GET  /v2                                      server metadata
    GET  /v2/models/{name}[/versions/{v}]         model metadata: inputs, outputs, platform
    GET  /v2/models/{name}[/versions/{v}]/ready   model readiness
    POST /v2/models/{name}[/versions/{v}]/infer   inference, JSON tensors in and out
    GET  /metrics                                 Prometheus text format

Bad requests get 400 and ``{"error": "..."}`` with one line naming the input and the
problem. On SIGTERM (or SIGINT) the server stops accepting connections, reports not ready,
lets requests in flight finish (up to ``grace`` seconds) and exits.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlci import __version__
from mlci.serve.metrics import Registry
from mlci.serve.protocol import (
    BadRequest,
    TensorSpec,
    decode_inputs,
    encode_output,
    parse_body,
    requested_outputs,
    spec_from_ort,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(?:/(ready|infer))?/?$")


class ModelLoadError(Exception):
    """The model file cannot be served."""


class ModelRunner:
    """An ONNX model behind the protocol: its metadata and an ``infer`` on request JSON."""

    platform = "onnxruntime_onnx"

    def __init__(self, path: str | Path, name: str, version: str = "1") -> None:
        """Open ``path`` with ONNX Runtime on the CPU; ModelLoadError when it cannot."""
        import onnxruntime as ort

        self.path = Path(path)
        self.name = name
        self.version = version
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: no such model file")
        if hasattr(ort, "disable_telemetry_events"):
            ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: not a usable ONNX model ({reason})") from None
        inputs = [spec_from_ort(i) for i in self.session.get_inputs()]
        if any(spec is None for spec in inputs):
            kinds = ", ".join(f"{i.name}: {i.type}" for i in self.session.get_inputs())
            raise ModelLoadError(f"{self.path}: inputs that are not tensors ({kinds})")
        self.inputs: list[TensorSpec] = [s for s in inputs if s is not None]
        # Non-tensor outputs (a ZipMap's list of dicts) have no OIP form and are not offered.
        self.outputs: list[TensorSpec] = [
            s for s in (spec_from_ort(o) for o in self.session.get_outputs()) if s is not None
        ]
        if not self.outputs:
            raise ModelLoadError(f"{self.path}: no tensor outputs to serve")

    def metadata(self) -> dict[str, Any]:
        """The model metadata response."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
        }

    def infer(self, request: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The inference response for a parsed request body, and the number of rows."""
        feeds = decode_inputs(request, self.inputs)
        names = requested_outputs(request, [o.name for o in self.outputs])
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
            raise BadRequest(f"the model cannot run on these inputs ({text[:200]})") from None
        response: dict[str, Any] = {
            "model_name": self.name,
            "model_version": self.version,
            "outputs": [encode_output(n, v) for n, v in zip(names, values, strict=True)],
        }
        if isinstance(request.get("id"), str):
            response["id"] = request["id"]
        rows = next((int(v.shape[0]) for v in feeds.values() if v.ndim), 1)
        return response, rows


class InferenceServer(ThreadingHTTPServer):
    """The HTTP server: the model, its metrics, and what graceful shutdown needs to know."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        runner: ModelRunner,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        access_log: bool = False,
    ) -> None:
        self.runner = runner
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.ready = True
        self.draining = False
        self._lock = threading.Condition()
        self._in_flight = 0
        self._connections: dict[socket.socket, bool] = {}  # socket -> busy
        self.metrics = _metrics(runner.name)
        super().__init__(address, _Handler)

    # -- request accounting ---------------------------------------------------------------

    def connection_opened(self, sock: socket.socket) -> None:
        """A new client connection (idle until a request arrives)."""
        with self._lock:
            self._connections[sock] = False

    def connection_closed(self, sock: socket.socket) -> None:
        """A client connection ended."""
        with self._lock:
            self._connections.pop(sock, None)

    def request_started(self, sock: socket.socket) -> None:
        """A request was received on ``sock``."""
        with self._lock:
            self._in_flight += 1
            self._connections[sock] = True
        self.metrics.set("mlci_serve_requests_in_flight", (), self._in_flight)

    def request_finished(self, sock: socket.socket) -> None:
        """The response to the request on ``sock`` was written."""
        with self._lock:
            self._in_flight -= 1
            if sock in self._connections:
                self._connections[sock] = False
            self._lock.notify_all()
        self.metrics.set("mlci_serve_requests_in_flight", (), self._in_flight)

    # -- graceful shutdown ----------------------------------------------------------------

    def stop(self) -> None:
        """Stop accepting requests; safe to call from a signal handler."""
        if self.draining:
            return
        self.draining = True
        self.ready = False
        self.metrics.set("mlci_serve_model_ready", (("model", self.runner.name),), 0)
        threading.Thread(target=self.shutdown, daemon=True).start()

    def drain(self, grace: float) -> bool:
        """After ``serve_forever`` returned: close the listening socket and idle
        connections, and wait up to ``grace`` seconds for requests in flight.
        True when every request finished in time."""
        try:
            self.socket.close()
        except OSError:
            pass
        deadline = time.monotonic() + grace
        with self._lock:
            while True:
                for sock, busy in list(self._connections.items()):
                    if not busy:
                        _shutdown_read(sock)
                if self._in_flight == 0:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))


def _shutdown_read(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RD)  # wakes a handler waiting for its next request
    except OSError:
        pass


def _metrics(model: str) -> Registry:
    registry = Registry()
    registry.describe(
        "mlci_serve_http_requests_total", "counter", "HTTP requests by handler and status code."
    )
    registry.describe(
        "mlci_serve_inference_requests_total", "counter", "Inference requests by model."
    )
    registry.describe(
        "mlci_serve_inference_errors_total",
        "counter",
        "Inference requests that failed, by model and status code.",
    )
    registry.describe(
        "mlci_serve_inference_rows_total", "counter", "Rows predicted (first dimension)."
    )
    registry.describe(
        "mlci_serve_inference_duration_seconds",
        "histogram",
        "Inference request latency, from the full request body to the response, in seconds.",
    )
    registry.describe("mlci_serve_requests_in_flight", "gauge", "Requests being handled.")
    registry.describe("mlci_serve_model_ready", "gauge", "1 when the model answers requests.")
    labels = (("model", model),)
    registry.set("mlci_serve_model_ready", labels, 1)
    registry.set("mlci_serve_requests_in_flight", (), 0)
    registry.inc("mlci_serve_inference_requests_total", labels, 0)
    registry.inc("mlci_serve_inference_rows_total", labels, 0)
    return registry


class _Handler(BaseHTTPRequestHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"
    server_version = f"mlci-serve/{__version__}"
    timeout = 60  # idle keep-alive connections are closed after a minute

    def setup(self) -> None:
        super().setup()
        self.server.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.access_log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.server.request_started(self.connection)
        handler = "other"
        try:
            handler, code, body, content_type = self._route(method)
        except Exception as exc:  # a bug: answer 500 rather than dropping the connection
            code, body, content_type = (
                500,
                _error(f"internal error: {exc.__class__.__name__}"),
                "json",
            )
        finally:
            pass
        try:
            self._send(code, body, content_type)
        finally:
            self.server.metrics.inc(
                "mlci_serve_http_requests_total", (("handler", handler), ("code", str(code)))
            )
            self.server.request_finished(self.connection)
            if self.server.draining:
                self.close_connection = True

    def _route(self, method: str) -> tuple[str, int, bytes, str]:
        path = self.path.split("?", 1)[0]
        runner = self.server.runner
        if path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/", "/metrics"):
            if method != "GET":
                return "other", 405, _error(f"{method} is not allowed on {path}"), "json"
            if path == "/v2/health/live":
                return "live", 200, _json({"live": True}), "json"
            if path == "/v2/health/ready":
                ready = self.server.ready
                return "ready", 200 if ready else 503, _json({"ready": ready}), "json"
            if path == "/metrics":
                return "metrics", 200, self.server.metrics.render().encode(), "metrics"
            server_meta = {"name": "mlci-serve", "version": __version__, "extensions": []}
            return "server_metadata", 200, _json(server_meta), "json"
        match = _MODEL_PATH.match(path)
        if match is None:
            return "other", 404, _error(f"no such endpoint: {path}"), "json"
        name, version, action = match.groups()
        handler = action or "model_metadata"
        if name != runner.name or (version is not None and version != runner.version):
            known = f"{runner.name} (version {runner.version})"
            return handler, 404, _error(f"unknown model {name!r}; this server has {known}"), "json"
        if action == "infer":
            if method != "POST":
                return handler, 405, _error("use POST for inference"), "json"
            code, body = self._infer()
            return handler, code, body, "json"
        if method != "GET":
            return handler, 405, _error(f"{method} is not allowed on {path}"), "json"
        if action == "ready":
            ready = self.server.ready
            return handler, 200 if ready else 503, _json({"name": name, "ready": ready}), "json"
        return handler, 200, _json(runner.metadata()), "json"

    def _infer(self) -> tuple[int, bytes]:
        server = self.server
        labels = (("model", server.runner.name),)
        server.metrics.inc("mlci_serve_inference_requests_total", labels)
        code, body = 200, b""
        start = time.perf_counter()
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                code, body = 411, _error("send the request body with a Content-Length header")
                self.close_connection = True
            else:
                length_text = self.headers.get("Content-Length")
                if length_text is None or not length_text.strip().isdigit():
                    code, body = 411, _error("a Content-Length header is required")
                    self.close_connection = True
                elif int(length_text) > server.max_body_bytes:
                    code = 413
                    body = _error(f"request body over {server.max_body_bytes} bytes")
                    self.close_connection = True
                else:
                    raw = self.rfile.read(int(length_text))
                    if len(raw) < int(length_text):
                        code, body = 400, _error("the request body ended early")
                        self.close_connection = True
                    else:
                        response, rows = server.runner.infer(parse_body(raw))
                        server.metrics.inc("mlci_serve_inference_rows_total", labels, rows)
                        body = _json(response)
        except BadRequest as exc:
            code, body = 400, _error(str(exc))
        except Exception as exc:
            code, body = 500, _error(f"inference failed ({exc.__class__.__name__}: {exc})")
        server.metrics.observe(
            "mlci_serve_inference_duration_seconds", labels, time.perf_counter() - start
        )
        if code != 200:
            server.metrics.inc("mlci_serve_inference_errors_total", (*labels, ("code", str(code))))
        return code, body

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        kind = (
            "text/plain; version=0.0.4; charset=utf-8"
            if content_type == "metrics"
            else "application/json"
        )
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection or self.server.draining:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def _error(message: str) -> bytes:
    return _json({"error": message})


def serve(
    runner: ModelRunner,
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    grace: float = 30.0,
    access_log: bool = False,
    on_ready: Callable[[InferenceServer], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Serve ``runner`` until SIGTERM or SIGINT, then drain; return an exit code (0: clean)."""
    server = InferenceServer((host, port), runner, access_log=access_log)
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: server.stop())
    bound_host, bound_port = server.server_address[:2]
    host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
    print(
        f"mlci.serve: model {runner.name} on http://{host_text}:{bound_port}",
        file=sys.stderr,
        flush=True,
    )
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        clean = server.drain(grace)
        server.server_close()
    if not clean:
        print(
            f"mlci.serve: stopped with requests still running after {grace:g}s",
            file=sys.stderr,
            flush=True,
        )
        return 1
    print("mlci.serve: stopped", file=sys.stderr, flush=True)
    return 0
