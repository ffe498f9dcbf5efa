"""The `benchmark:` section of mlci.yaml.

Durations take seconds as a number or a string with a unit (``"500ms"``, ``"2s"``, ``"1m"``);
fractions take a number or a percentage (``0.1`` or ``"10%"``). Latency metrics are named
``p50``, ``p90``, ``p95``, ``p99``, ``p99.9`` (any ``pNN`` between 0 and 100 exclusive) and
``mean``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from mlci.configbase import Strict

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s|sec|m|min)?\s*$")
_UNITS = {
    None: 1.0,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
}
_METRIC = re.compile(r"^p([0-9]{1,2}(\.[0-9]+)?)$")


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 2s or 500ms")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 2s or 500ms, got {value!r}")
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


def _fraction(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a fraction such as 0.1 or 10%")
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a fraction such as 0.1 or 10%, got {value!r}") from None
    return value


def metric_quantile(name: str) -> float | None:
    """``'p99.9'`` -> 0.999; ``'mean'`` -> None; ValueError for anything else."""
    if name == "mean":
        return None
    match = _METRIC.match(name)
    if match is None or not 0 < float(match.group(1)) < 100:
        raise ValueError(f"unknown latency metric {name!r}; use p50, p90, p99, p99.9 or mean")
    return float(match.group(1)) / 100


def _metric(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"p{value:g}"
    if isinstance(value, str):
        metric_quantile(value)
    return value


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0, le=10)]
Metric = Annotated[str, BeforeValidator(_metric)]


class WarmupConfig(Strict):
    """Queries run and thrown away before measuring: at least this many, for at least this long."""

    queries: int = Field(20, ge=0, le=1_000_000, description="Fewest warm-up queries per session.")
    seconds: Annotated[float, BeforeValidator(_duration), Field(ge=0)] = Field(
        0.2, description="Shortest warm-up per model (shared by its sessions)."
    )
    per_block: int = Field(
        4,
        ge=0,
        le=10_000,
        description="Queries run and discarded at the start of every block. The models (and "
        "their sessions) take turns, and the first queries after a switch find cold caches: "
        "recorded, they would make the p99 describe the harness rather than the model.",
    )


class ThreadsConfig(Strict):
    """ONNX Runtime thread pools on the CPU (0 lets ONNX Runtime choose)."""

    intra_op: int = Field(1, ge=0, le=1024, description="Threads inside one operator.")
    inter_op: int = Field(1, ge=0, le=1024, description="Threads across independent operators.")


class ScenarioConfig(Strict):
    """One load pattern, after MLPerf LoadGen's scenarios."""

    kind: Literal["single_stream", "offline", "server"] = Field(
        description="single_stream: one query at a time; offline: batches back to back; "
        "server: Poisson arrivals at 'rate'."
    )
    name: str | None = Field(None, description="Label in the report (default: the kind).")
    metrics: list[Metric] | None = Field(
        None,
        description="Latency statistics reported (default: p50 p90 p95 p99 p99.9 mean; "
        "offline: p50 p99 mean).",
    )
    compare: list[Metric] | None = Field(
        None,
        description="Statistics compared with the baseline (default: p50 and p99; offline: mean).",
    )
    max_regression: Fraction | dict[Metric, Fraction] = Field(
        0.1,
        description="Slowdown tolerated before the candidate counts as slower: one value for "
        "every compared statistic, or one per statistic, e.g. {p99: 10%, p50: 5%}.",
    )
    budgets: dict[Metric, Seconds] = Field(
        default_factory=dict, description="Absolute latency limits, e.g. {p99: 5ms}."
    )
    batch_size: int = Field(
        1, ge=1, le=1_000_000, description="Rows per query (single_stream, server)."
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=lambda: [1, 32],
        min_length=1,
        description="Offline: rows per query, one result per batch size.",
    )
    rate: float | None = Field(
        None, gt=0, le=1_000_000, description="Server: mean arrival rate in queries per second."
    )
    latency_bound: Seconds | None = Field(
        None, description="Server: the latency the bound percentile must stay under."
    )
    bound_percentile: Metric = Field("p99", description="Server: the percentile held to the bound.")
    find_max_rate: bool = Field(
        False, description="Server: also search for the highest rate that meets the bound."
    )
    min_queries: int | Literal["auto"] = Field(
        "auto",
        description="Fewest measured queries per model; 'auto' derives it from LoadGen's "
        "early-stopping rule for the highest percentile compared or budgeted.",
    )
    min_duration: Seconds = Field(0.5, description="Shortest measurement per model.")
    time_budget: Seconds = Field(
        10.0,
        description="Longest the scenario may take (warm-up included); when it runs out first "
        "the result says 'not enough samples'.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioConfig:
        if isinstance(self.min_queries, int) and self.min_queries < 1:
            raise ValueError("'min_queries' must be at least 1 (or 'auto')")
        if self.kind == "server":
            if self.rate is None:
                raise ValueError("a server scenario needs 'rate' (queries per second)")
            if self.find_max_rate and self.latency_bound is None:
                raise ValueError("'find_max_rate' needs 'latency_bound'")
            if metric_quantile(self.bound_percentile) is None:
                raise ValueError("'bound_percentile' must be a percentile such as p99")
        else:
            for key in ("rate", "latency_bound"):
                if getattr(self, key) is not None:
                    raise ValueError(f"'{key}' goes with kind 'server'")
            if self.find_max_rate:
                raise ValueError("'find_max_rate' goes with kind 'server'")
        if self.min_duration > self.time_budget:
            raise ValueError("'min_duration' is longer than 'time_budget'")
        compared = self.compared_metrics()
        if isinstance(self.max_regression, dict):
            extra = [m for m in self.max_regression if m not in compared]
            if extra:
                raise ValueError(
                    f"max_regression names {extra[0]!r}, which is not compared "
                    f"(compared: {', '.join(compared)})"
                )
        return self

    def label(self) -> str:
        return self.name or self.kind.replace("_", "-")

    def reported_metrics(self) -> list[str]:
        default = (
            ["p50", "p99", "mean"]
            if self.kind == "offline"
            else ["p50", "p90", "p95", "p99", "p99.9", "mean"]
        )
        chosen = list(self.metrics or default)
        for extra in [*self.compared_metrics(), *self.budgets]:
            if extra not in chosen:
                chosen.append(extra)
        if self.kind == "server" and self.bound_percentile not in chosen:
            chosen.append(self.bound_percentile)
        return chosen

    def compared_metrics(self) -> list[str]:
        if self.compare is not None:
            return list(self.compare)
        return ["mean"] if self.kind == "offline" else ["p50", "p99"]

    def tolerance(self, metric: str) -> float:
        if isinstance(self.max_regression, dict):
            return self.max_regression.get(metric, 0.1)
        return self.max_regression


class BenchmarkConfig(Strict):
    """Latency and throughput scenarios."""

    device: Literal["auto", "cpu", "cuda", "tensorrt"] = Field(
        "auto",
        description="Where models run; 'auto' takes the GPU when ONNX Runtime offers CUDA (or "
        "TensorRT) and a GPU is visible, else the CPU. MLCI_BENCHMARK_DEVICE overrides it.",
    )
    device_id: int = Field(0, ge=0, le=64, description="GPU index.")
    threads: ThreadsConfig = Field(default_factory=ThreadsConfig)
    io_binding: bool = Field(
        False,
        description="GPU only: place inputs and outputs on the device before timing, so that "
        "host-device copies are excluded from the latencies (labelled in the results).",
    )
    sessions: int = Field(
        5,
        ge=1,
        le=64,
        description="ONNX Runtime sessions per model, taken in turn: where a session lands in "
        "memory moves its latency by a few percent, so intervals and verdicts come from "
        "several sessions (1 to save memory on large models, at the price of that bias).",
    )
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    baseline: bool = Field(True, description="Compare with the baseline when there is one.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of every interval.")
    early_stopping_confidence: float = Field(
        0.99, gt=0.5, lt=1, description="Confidence of LoadGen's early-stopping rule."
    )
    bootstrap: int = Field(1000, ge=100, le=100_000, description="Bootstrap replicates.")
    seed: int = Field(0, ge=0, description="Seed of the bootstrap and of server arrivals.")
    block_queries: int = Field(
        10, ge=1, le=1_000_000, description="Queries per block when models alternate."
    )
    block_seconds: Seconds = Field(0.1, description="Longest block when models alternate.")
    min_blocks: int = Field(
        10, ge=2, le=10_000, description="Fewest blocks per model (the bootstrap resamples blocks)."
    )
    rows: int = Field(
        1024, ge=1, le=1_000_000, description="Evaluation rows used to build the queries."
    )
    scenarios: list[ScenarioConfig] = Field(min_length=1)
