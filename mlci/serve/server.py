"""An Open Inference Protocol (KServe v2) REST server for one ONNX model, on uvicorn::

    GET  /v2/health/live                          200 while the process runs
    GET  /v2/health/ready                         200 once the model is loaded; 503 when draining
    GET  /v2                                      server metadata and extensions
    GET  /v2/models/{name}[/versions/{v}]         model metadata: inputs, outputs, platform
    GET  /v2/models/{name}[/versions/{v}]/ready   model readiness
    POST /v2/models/{name}[/versions/{v}]/infer   inference: JSON tensors, or the binary
                                                  tensor data extension; classification
    GET  /metrics                                 Prometheus text format

One process: uvicorn's event loop (uvloop and httptools) parses HTTP and routes; a pool of
worker threads decodes requests, runs the ONNX Runtime session (thread-safe, and it
releases the GIL) and encodes answers. Bad requests get a 4xx and ``{"error": "..."}``
with one line naming the input and the problem.

On SIGTERM (or SIGINT) the server reports not ready, stops accepting connections, closes
idle ones, lets requests in flight finish (up to ``grace`` seconds) and exits: 0 when every
request was answered, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from mlci.serve.app import MAX_BODY_BYTES, InferenceApp, Observer
from mlci.serve.http import guarded_protocol
from mlci.serve.model import ModelRunner
from mlci.serve.sampling import SampleOptions, TrafficSampler

REQUEST_TIMEOUT = 30.0
# Longer than the idle timeout of common load balancers (60 s), so that the balancer, not
# the server, closes idle connections and never sends a request on a closing one.
KEEP_ALIVE_SECONDS = 75
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServeOptions:
    """How the server listens and what it accepts."""

    host: str = "0.0.0.0"
    port: int = 8080
    grace: float = 30.0  # seconds to let requests in flight finish after SIGTERM
    threads: int | None = None  # worker threads; None: the CPUs this process may use
    request_timeout: float = REQUEST_TIMEOUT  # first byte to last byte of a request
    max_body_bytes: int = MAX_BODY_BYTES
    access_log: bool = False
    sampling: SampleOptions | None = None  # write a sample of the traffic (mlci watch reads it)


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its CPU affinity, capped by a container's CPU quota
    (cgroup v2 ``cpu.max``), which affinity does not show."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server with mlci's drain and no signal handling of its own."""

    def __init__(self, config: uvicorn.Config, grace: float) -> None:
        super().__init__(config)
        self.grace = grace
        self.clean = True
        self.on_started: Callable[[], None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after shutting down, so a clean drain would end with
        # "killed by SIGTERM"; ``serve`` installs handlers that only ask the server to stop.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()  # idle ones close now, busy ones after their answer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while state.tasks and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.02)
        self.clean = not state.tasks
        for task in list(state.tasks):
            task.cancel()
        for _ in range(50):  # answers written with "connection: close" finish closing
            if not state.connections:
                break
            await asyncio.sleep(0.02)
        for connection in list(state.connections):
            transport = connection.transport
            getattr(transport, "force_close", transport.close)()


class InferenceServer:
    """The application on uvicorn, bound to its socket (so the port is known at once)."""

    def __init__(
        self,
        runner: ModelRunner,
        options: ServeOptions = ServeOptions(),
        *,
        observers: Sequence[Observer] = (),
    ) -> None:
        """Bind the socket (OSError when it cannot) and prepare the server."""
        self.runner = runner
        self.options = options
        # SampleError before anything is bound or started
        self.sampler = None if options.sampling is None else _sampler(runner, options.sampling)
        try:
            self.socket = _bind(options.host, options.port)
        except OSError:
            if self.sampler is not None:
                self.sampler.close()
            raise
        self.executor = ThreadPoolExecutor(
            options.threads or available_cpus(), thread_name_prefix="mlci-serve"
        )
        if self.sampler is not None:
            observers = (*observers, self.sampler)
        self.app = InferenceApp(
            runner, self.executor, max_body_bytes=options.max_body_bytes, observers=observers
        )
        if self.sampler is not None:
            _count_samples(self.sampler, self.app)
        protocol = guarded_protocol(
            options.request_timeout,
            MAX_HEADER_BYTES,
            lambda status: self.app.metrics.http_request("other", status),
        )
        _configure_logging(options.access_log)
        config = uvicorn.Config(
            self.app,
            http=protocol,
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=options.access_log,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self._server = _Uvicorn(config, options.grace)
        self._stopping = False

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server listens on."""
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.address[1]

    def run(self, on_started: Callable[[], None] | None = None) -> bool:
        """Serve until ``stop``, then drain; True when every request was answered."""
        self._server.on_started = on_started
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)
            if self.sampler is not None:
                self.sampler.close()  # what was answered before the stop is written
        return self._server.clean

    def stop(self) -> None:
        """Report not ready and begin draining; safe from signal handlers and threads.
        A second call stops at once, without waiting for requests in flight."""
        if self._stopping:
            self._server.force_exit = True
        self._stopping = True
        self.app.set_ready(False)
        self._server.should_exit = True

    @contextlib.contextmanager
    def running(self) -> Iterator[InferenceServer]:
        """Serve from a background thread for the duration of a ``with`` block."""
        started = threading.Event()
        outcome: list[bool] = []
        thread = threading.Thread(
            target=lambda: outcome.append(self.run(on_started=started.set)),
            name="mlci-serve-loop",
            daemon=True,
        )
        thread.start()
        if not started.wait(30):
            raise RuntimeError("the inference server did not start within 30 s")
        try:
            yield self
        finally:
            self.stop()
            thread.join(self.options.grace + 10)


def _sampler(runner: ModelRunner, options: SampleOptions) -> TrafficSampler:
    """The traffic sampler for ``runner``; SampleError when the options cannot work."""
    return TrafficSampler(
        options,
        model=runner.name,
        version=runner.version,
        model_path=runner.path,
        inputs=[spec.name for spec in runner.inputs],
    )


def _count_samples(sampler: TrafficSampler, app: InferenceApp) -> None:
    registry, labels = app.metrics.registry, app.metrics.labels
    registry.describe(
        "mlci_serve_sample_rows_total", "counter", "Rows written to the traffic sample."
    )
    registry.describe(
        "mlci_serve_sample_dropped_total",
        "counter",
        "Requests the traffic sampler dropped because its queue was full.",
    )
    registry.inc("mlci_serve_sample_rows_total", labels, 0)
    registry.inc("mlci_serve_sample_dropped_total", labels, 0)
    sampler.on_events(
        lambda: registry.inc("mlci_serve_sample_dropped_total", labels),
        lambda rows: registry.inc("mlci_serve_sample_rows_total", labels, rows),
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _configure_logging(access_log: bool) -> None:
    formatter = logging.Formatter("mlci.serve: %(message)s")
    errors = logging.getLogger("uvicorn.error")
    if not errors.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        errors.addHandler(handler)
    errors.setLevel(logging.ERROR)
    errors.propagate = False
    access = logging.getLogger("uvicorn.access")
    if access_log and not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def serve(runner: ModelRunner, options: ServeOptions = ServeOptions()) -> int:
    """Serve ``runner`` until SIGTERM or SIGINT, then drain; return an exit code (0: clean).

    OSError when the address cannot be bound."""
    server = InferenceServer(runner, options)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        server.stop()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    host, port = server.address

    def announce() -> None:
        print(
            f"mlci.serve: model {runner.name} version {runner.version} on http://{host}:{port}",
            file=sys.stderr,
            flush=True,
        )

    try:
        clean = server.run(on_started=announce)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not clean:
        print(
            f"mlci.serve: stopped with requests still running after {options.grace:g}s",
            file=sys.stderr,
            flush=True,
        )
        return 1
    print("mlci.serve: stopped", file=sys.stderr, flush=True)
    return 0
