"""The ``benchmark`` section: latency and throughput scenarios, candidate against baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Count, Estimate, Number, Seconds, Section

Device = Literal["cpu", "cuda", "tensorrt"]
LatencyVerdict = Literal["faster", "slower", "no detectable difference", "inconclusive"]


class Summary(Section):
    scenarios: Count
    slower: Count
    faster: Count
    no_difference: Count
    inconclusive: Count
    not_enough_samples: Count = 0
    budgets_missed: Count = 0


class DeviceChoice(Section):
    requested: Literal["auto", "cpu", "cuda", "tensorrt"]
    selected: Device
    reason: str
    providers: list[str]


class Fingerprint(Section):
    id: str | None = None
    cpu: str
    cores: int
    usable_cores: int | None = None
    gpu: str | None
    driver: str | None
    cuda: str | None
    onnxruntime: str
    providers: list[str]
    session_providers: list[str] = Field(default_factory=list)
    threads: dict[str, int] = Field(default_factory=dict)
    python: str
    platform: str


class ModelLoad(Section):
    name: str | None = None
    load_s: float
    peak_memory_bytes: int | None
    size_bytes: int
    sessions: int | None = None


class Models(Section):
    candidate: ModelLoad
    baseline: ModelLoad | None


class EarlyStop(Section):
    upper_ms: Number
    min_queries: int


class RateProbe(Section):
    rate_per_s: float
    queries: int
    met: bool


class ModelResult(Section):
    queries: Count
    warmup_queries: Count | None = None
    blocks: Count | None = None
    duration_s: Seconds
    latency_ms: dict[str, Estimate]
    early_stopping: dict[str, EarlyStop] = Field(default_factory=dict)
    throughput_per_s: Estimate | None
    max_rate_per_s: Number = None
    rate_probes: list[RateProbe] | None = None


class Comparison(Section):
    metric: str
    ratio: Estimate
    max_regression: float
    verdict: LatencyVerdict


class Budget(Section):
    metric: str
    limit_ms: float
    observed_ms: Number
    upper_ms: Number = None
    basis: str | None = None
    met: bool


class Warmup(Section):
    queries: Count
    seconds: float
    per_block: Count = Field(
        0, description="Queries that open every block, run but not recorded (cold caches)."
    )


class Blocks(Section):
    queries: Count | None = None
    seconds: float | None = None
    min: Count | None = None
    sessions_per_model: Count | None = None
    rounds: Count


class Settings(Section):
    """How the scenario ran."""

    batch_size: int
    metrics: list[str] = Field(default_factory=list)
    compare: list[str] = Field(default_factory=list)
    min_queries: int | None = None
    min_queries_rule: str | None = None
    min_duration_s: float | None = None
    time_budget_s: float | None = None
    warmup: Warmup | None = None
    blocks: Blocks | None = None
    confidence: float | None = None
    early_stopping_confidence: float | None = None
    bootstrap: int | None = None
    device: Device | None = None
    threads: dict[str, int] = Field(default_factory=dict)
    io_binding: bool = False
    copies: str | None = None
    elapsed_s: float | None = None
    rate_per_s: Number = None
    latency_bound_ms: Number = None
    bound_percentile: str | None = None
    arrivals: str | None = None


class Scenario(Section):
    name: str
    kind: Literal["single_stream", "offline", "server"]
    status: Literal["ok", "not_enough_samples"]
    reason: str | None
    settings: Settings
    candidate: ModelResult
    baseline: ModelResult | None
    comparison: list[Comparison] | None
    budgets: list[Budget]

    def compared(self, metric: str) -> Comparison | None:
        return next((c for c in self.comparison or [] if c.metric == metric), None)


class Benchmark(Section):
    """Latency and throughput of the candidate (and baseline, interleaved)."""

    summary: Summary
    device: DeviceChoice
    fingerprint: Fingerprint
    models: Models
    scenarios: list[Scenario]
    notes: list[str] = Field(default_factory=list)
