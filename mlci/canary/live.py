"""The live analysis: every metric queried for both deployments once per interval.

As Flagger and Argo Rollouts do, each iteration waits one interval and then runs every
metric's query twice, with ``{{target}}`` set to the primary's label matchers and then to the
canary's, at the same instant. Each query is run once before the first wait, so a query
Prometheus refuses fails at once rather than after an interval.

Early stop: from ``min_iterations`` on, after every iteration, a critical metric whose
interval lies entirely beyond its allowed change in the harmful direction stops the analysis.
Those looks are judged at confidence ``1 - (1 - c) / iterations`` each, so that all the looks
together add at most ``1 - c`` to the chance of a wrong roll back (Bonferroni).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mlci.canary.config import LiveConfig, render
from mlci.canary.judge import MetricSpec, clearly_harmful
from mlci.canary.prometheus import Prometheus, QueryError
from mlci.errors import ConfigError

Progress = Callable[[str], None]


def promql_duration(seconds: float) -> str:
    """A PromQL duration for ``{{interval}}`` (whole milliseconds, or seconds)."""
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


@dataclass(frozen=True)
class LiveMetric:
    """A metric ready to query: its judgement settings and both rendered queries."""

    spec: MetricSpec
    primary_query: str
    canary_query: str
    field: str  # where it is in mlci.yaml, for errors


def live_metrics(config: LiveConfig, primary: str, canary: str, where: str) -> list[LiveMetric]:
    """Each metric's two queries with every variable filled in."""
    variables = {
        **config.variables,
        "primary": primary,
        "canary": canary,
        "interval": promql_duration(config.interval),
    }
    metrics = []
    for i, metric in enumerate(config.metrics):
        query, unit, bad, tolerance, tolerance_abs, critical = metric.resolved
        spec = MetricSpec(
            name=metric.name,
            source="live",
            bad=bad,
            tolerance=tolerance,
            tolerance_abs=tolerance_abs,
            weight=metric.weight,
            critical=critical,
            unit=unit,
            query=query,
        )
        metrics.append(
            LiveMetric(
                spec,
                render(query, {**variables, "target": primary}),
                render(query, {**variables, "target": canary}),
                f"{where}.metrics[{i}]",
            )
        )
    return metrics


@dataclass
class LiveSamples:
    """What the iterations gathered: per metric, one value per iteration and side."""

    primary: dict[str, list[float | None]] = field(default_factory=dict)
    canary: dict[str, list[float | None]] = field(default_factory=dict)
    iterations: int = 0
    stop_reason: str = ""


def _ask(client: Prometheus, metric: LiveMetric, query: str, at: float) -> float | None:
    try:
        return client.query(query, at)
    except QueryError as exc:
        raise ConfigError(
            f"{metric.field}: metric '{metric.spec.name}': the query {query!r}: {exc}"
        ) from None


def run_live(
    config: LiveConfig,
    metrics: Sequence[LiveMetric],
    client: Prometheus,
    confidence: float,
    progress: Progress,
) -> LiveSamples:
    """Query every metric for both sides once per interval; stop early when a critical
    metric is clearly harmful."""
    samples = LiveSamples(
        primary={m.spec.name: [] for m in metrics}, canary={m.spec.name: [] for m in metrics}
    )
    start = time.time()
    for metric in metrics:  # refused queries fail now, not after the first interval
        _ask(client, metric, metric.primary_query, start)
        _ask(client, metric, metric.canary_query, start)
    for iteration in range(1, config.iterations + 1):
        due = start + iteration * config.interval
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        at = time.time()
        for metric in metrics:
            name = metric.spec.name
            samples.primary[name].append(_ask(client, metric, metric.primary_query, at))
            samples.canary[name].append(_ask(client, metric, metric.canary_query, at))
        samples.iterations = iteration
        progress(f"live analysis: iteration {iteration} of {config.iterations}")
        samples.stop_reason = early_stop(
            [m.spec for m in metrics],
            samples.primary,
            samples.canary,
            iteration,
            config.iterations,
            config.min_iterations,
            confidence,
        )
        if samples.stop_reason:
            break
    return samples


def early_stop(
    specs: Sequence[MetricSpec],
    primary: Mapping[str, Sequence[float | None]],
    canary: Mapping[str, Sequence[float | None]],
    iteration: int,
    iterations: int,
    min_iterations: int,
    confidence: float,
) -> str:
    """Why the analysis stops after ``iteration`` (empty: it goes on)."""
    if iteration < min_iterations or iteration >= iterations:
        return ""
    interim = 1.0 - (1.0 - confidence) / iterations
    for spec in specs:
        if spec.critical and clearly_harmful(
            spec, _numbers(primary[spec.name]), _numbers(canary[spec.name]), interim
        ):
            return (
                f"critical metric '{spec.name}' was clearly harmful after {iteration} of "
                f"{iterations} iterations (judged at {interim:.2%} confidence), so the "
                "analysis stopped early"
            )
    return ""


def _numbers(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]
