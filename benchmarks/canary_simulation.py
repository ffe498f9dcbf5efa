"""Simulated live canaries: per-interval metrics as Prometheus would report them, judged by
mlci's own judge (the same early stop and decision as ``mlci canary``).

Each run is one canary analysis of ``iterations`` intervals. Per interval and side:

* traffic: Poisson requests, ``rate`` per second split ``1 - weight`` / ``weight``;
* p99 latency: a lognormal request latency (shape ``sigma``) whose p99 is ``p99_ms``, times a
  load factor both sides share (AR(1) on the log scale: the machine, the time of day), times
  each deployment's own speed for the whole run (a pod on a slower node: ``pod_sd``, the
  primary's averaged over ``primary_pods`` pods), times the sampling error of a p99 measured
  on that interval's requests (its asymptotic standard error);
* error rate: binomial errors at a rate both sides share, bursty from interval to interval
  (lognormal, ``error_burst_sd``), plus the canary's extra rate.

The canary's latency is ``1 + latency_effect`` times the primary's and its error rate
``error_effect`` higher. Metrics are judged as the README's example configures them: the
error rate (critical, one point allowed) and the p99 latency (10% allowed).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from mlci.canary.judge import MetricSpec, decide, judge_metric
from mlci.canary.live import early_stop

SPECS = (
    MetricSpec(
        "error rate", "live", bad="increase", tolerance=0.0, tolerance_abs=0.01, critical=True,
        unit="ratio",
    ),
    MetricSpec("p99 latency", "live", bad="increase", tolerance=0.1, unit="s"),
)  # fmt: skip


@dataclass(frozen=True)
class World:
    """What the traffic and the deployments are like."""

    iterations: int = 10
    min_iterations: int = 5
    interval_s: float = 60.0
    rate: float = 100.0  # requests per second, both sides together
    weight: float = 0.1  # the canary's share
    p99_ms: float = 20.0
    sigma: float = 0.5
    load_sd: float = 0.10
    load_rho: float = 0.6
    pod_sd: float = 0.03
    primary_pods: int = 9
    error_rate: float = 0.005
    error_burst_sd: float = 0.3
    confidence: float = 0.95


def p99_relative_se(n: np.ndarray, sigma: float) -> np.ndarray:
    """Relative standard error of a p99 estimated from n lognormal(sigma) requests."""
    z = norm.ppf(0.99)
    return np.sqrt(0.99 * 0.01 / np.maximum(n, 1)) * sigma / norm.pdf(z)


def draw(
    world: World,
    runs: int,
    rng: np.random.Generator,
    latency_effect: float = 0.0,
    error_effect: float = 0.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric: (primary, canary) arrays of shape (runs, iterations)."""
    k = world.iterations
    per_interval = world.rate * world.interval_s
    n_primary = rng.poisson(per_interval * (1 - world.weight), size=(runs, k))
    n_canary = rng.poisson(per_interval * world.weight, size=(runs, k))
    load = np.empty((runs, k))
    load[:, 0] = rng.normal(0, world.load_sd, runs)
    innovation = world.load_sd * math.sqrt(1 - world.load_rho**2)
    for t in range(1, k):
        load[:, t] = world.load_rho * load[:, t - 1] + rng.normal(0, innovation, runs)
    pod_primary = rng.normal(0, world.pod_sd / math.sqrt(world.primary_pods), (runs, 1))
    pod_canary = rng.normal(0, world.pod_sd, (runs, 1))
    noise_p = rng.normal(0, 1, (runs, k)) * p99_relative_se(n_primary, world.sigma)
    noise_c = rng.normal(0, 1, (runs, k)) * p99_relative_se(n_canary, world.sigma)
    base = world.p99_ms / 1000
    p99_primary = base * np.exp(load + pod_primary + noise_p)
    p99_canary = base * np.exp(load + pod_canary + noise_c) * (1 + latency_effect)
    burst = np.exp(rng.normal(0, world.error_burst_sd, (runs, k)) - world.error_burst_sd**2 / 2)
    rate = np.clip(world.error_rate * burst, 0, 1)
    errors_primary = rng.binomial(n_primary, rate) / np.maximum(n_primary, 1)
    errors_canary = rng.binomial(n_canary, np.clip(rate + error_effect, 0, 1)) / np.maximum(
        n_canary, 1
    )
    return {
        "error rate": (errors_primary, errors_canary),
        "p99 latency": (p99_primary, p99_canary),
    }


def judge_run(world: World, data: dict[str, tuple[np.ndarray, np.ndarray]], run: int) -> str:
    """One analysis: early stop after each iteration, then the decision (or 'stopped')."""
    primary = {name: list(map(float, pair[0][run])) for name, pair in data.items()}
    canary = {name: list(map(float, pair[1][run])) for name, pair in data.items()}
    for i in range(world.min_iterations, world.iterations):
        reason = early_stop(
            SPECS,
            {n: v[:i] for n, v in primary.items()},
            {n: v[:i] for n, v in canary.items()},
            i,
            world.iterations,
            world.min_iterations,
            world.confidence,
        )
        if reason:
            return "stopped"
    judgements = [
        judge_metric(spec, primary[spec.name], canary[spec.name], world.confidence)
        for spec in SPECS
    ]
    verdict = decide(
        judgements, None, pass_score=95, marginal_score=75, weight=10, steps=[10, 25, 50, 100]
    )
    return verdict.decision


def simulate(
    world: World,
    runs: int,
    seed: int,
    latency_effect: float = 0.0,
    error_effect: float = 0.0,
) -> Counter[str]:
    """How many runs ended promote, hold, rollback, or stopped early (a roll back)."""
    rng = np.random.default_rng(seed)
    data = draw(world, runs, rng, latency_effect, error_effect)
    return Counter(judge_run(world, data, r) for r in range(runs))


def rollback_rate(counts: Counter[str]) -> tuple[float, float]:
    """Share of runs rolled back (early stops included) and its Monte Carlo standard error."""
    runs = sum(counts.values())
    rate = (counts["rollback"] + counts["stopped"]) / runs
    return rate, math.sqrt(rate * (1 - rate) / runs)
