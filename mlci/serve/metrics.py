"""Prometheus metrics in the text exposition format (0.0.4), with no client library."""

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
