"""Prometheus metrics in the text exposition format (0.0.4), with no client library.

``Registry`` holds counters, gauges and histograms; ``ServeMetrics`` is the server's set,
labelled with the served model's name and version so that two versions side by side (a
canary) can be compared series by series. Labels never carry request text: a request for an
unknown model or version is counted by handler and status only.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable

# Latency buckets in seconds: fine below 10 ms, where tabular models answer.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Registry:
    """Counters, gauges and histograms keyed by label values; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = {}
        self._hist: dict[str, dict[Labels, list[float]]] = {}
        self._buckets: dict[str, tuple[float, ...]] = {}

    def describe(self, name: str, kind: str, text: str, buckets: tuple[float, ...] = ()) -> None:
        """Declare a metric (``counter``, ``gauge`` or ``histogram``) and its help text."""
        self._help[name] = (kind, text)
        if kind == "histogram":
            self._hist.setdefault(name, {})
            self._buckets[name] = buckets or LATENCY_BUCKETS
        else:
            self._values.setdefault(name, {})

    def inc(self, name: str, labels: Labels = (), amount: float = 1.0) -> None:
        """Add ``amount`` to a counter or gauge."""
        with self._lock:
            series = self._values[name]
            series[labels] = series.get(labels, 0.0) + amount

    def set(self, name: str, labels: Labels, value: float) -> None:
        """Set a gauge."""
        with self._lock:
            self._values[name][labels] = value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        """Record one observation in a histogram."""
        buckets = self._buckets[name]
        with self._lock:
            series = self._hist[name].get(labels)
            if series is None:
                # counts per bucket, then +Inf count, then sum
                series = self._hist[name][labels] = [0.0] * (len(buckets) + 2)
            series[bisect.bisect_left(buckets, value)] += 1
            series[-1] += value

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in self._help.items():
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
                if kind != "histogram":
                    for labels, value in sorted(self._values[name].items()):
                        lines.append(f"{name}{_labels(labels)} {_number(value)}")
                    continue
                buckets = self._buckets[name]
                for labels, series in sorted(self._hist[name].items()):
                    running = 0.0
                    for bound, count in zip((*buckets, float("inf")), series[:-1], strict=True):
                        running += count
                        le = (("le", _number(bound)),)
                        lines.append(f"{name}_bucket{_labels(labels, le)} {_number(running)}")
                    lines.append(f"{name}_sum{_labels(labels)} {series[-1]!r}")
                    lines.append(f"{name}_count{_labels(labels)} {_number(running)}")
        return "\n".join(lines) + "\n"


METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    """The inference server's metrics for one model version."""

    def __init__(self, model: str, version: str) -> None:
        self.registry = registry = Registry()
        self.labels: Labels = (("model", model), ("version", version))
        registry.describe(
            "mlci_serve_http_requests_total", "counter", "HTTP requests by handler and status."
        )
        registry.describe(
            "mlci_serve_inference_requests_total",
            "counter",
            "Inference requests for the model version, by HTTP status.",
        )
        registry.describe(
            "mlci_serve_inference_errors_total",
            "counter",
            "Inference requests for the model version that failed, by HTTP status.",
        )
        registry.describe(
            "mlci_serve_inference_rows_total", "counter", "Rows predicted (first dimension)."
        )
        registry.describe(
            "mlci_serve_inference_duration_seconds",
            "histogram",
            "Latency of successful inference requests, from the complete request body to the "
            "response, in seconds.",
        )
        registry.describe(
            "mlci_serve_inference_requests_in_flight",
            "gauge",
            "Inference requests received and not yet answered.",
        )
        registry.describe(
            "mlci_serve_model_ready", "gauge", "1 when the model version answers requests."
        )
        registry.set("mlci_serve_model_ready", self.labels, 1)
        registry.set("mlci_serve_inference_requests_in_flight", self.labels, 0)
        registry.inc("mlci_serve_inference_requests_total", (*self.labels, ("code", "200")), 0)
        registry.inc("mlci_serve_inference_rows_total", self.labels, 0)

    def http_request(self, handler: str, status: int) -> None:
        """Count one answered HTTP request (every endpoint, and refused requests)."""
        self.registry.inc(
            "mlci_serve_http_requests_total", (("handler", handler), ("code", str(status)))
        )

    def inference_started(self) -> None:
        """A complete inference request body was received."""
        self.registry.inc("mlci_serve_inference_requests_in_flight", self.labels, 1)

    def inference_finished(self, status: int, seconds: float, rows: int) -> None:
        """The answer to an inference request went out."""
        registry, labels = self.registry, self.labels
        registry.inc("mlci_serve_inference_requests_in_flight", labels, -1)
        code = (*labels, ("code", str(status)))
        registry.inc("mlci_serve_inference_requests_total", code)
        if status == 200:
            registry.inc("mlci_serve_inference_rows_total", labels, rows)
            registry.observe("mlci_serve_inference_duration_seconds", labels, seconds)
        else:
            registry.inc("mlci_serve_inference_errors_total", code)

    def inference_refused(self, status: int) -> None:
        """An inference request for this version refused before its body was complete."""
        code = (*self.labels, ("code", str(status)))
        self.registry.inc("mlci_serve_inference_requests_total", code)
        self.registry.inc("mlci_serve_inference_errors_total", code)

    def set_ready(self, ready: bool) -> None:
        """Record readiness."""
        self.registry.set("mlci_serve_model_ready", self.labels, 1 if ready else 0)

    def render(self) -> bytes:
        """The exposition text."""
        return self.registry.render().encode()
