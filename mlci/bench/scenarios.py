"""Scenarios after MLPerf LoadGen: single stream, offline and server, run in interleaved blocks.

Every model in a scenario (the candidate, and the baseline when there is one) first warms up
(at least a number of queries and at least a number of seconds), then the models take turns
in blocks, each pair of rounds in both orders (candidate-baseline then baseline-candidate,
or the reverse, at random), so neither model always runs first. The run ends once every model has at least ``min_queries`` queries, the measurement
(after warm-up) has lasted ``min_duration`` seconds and ``min_blocks`` rounds have run; if the
``time_budget`` (warm-up included) runs out first, it ends with status ``not_enough_samples``
and says what was missing. Each round uses the next of every model's sessions.

Every block starts with ``settle_queries`` queries that are run and not recorded. Switching
to the other model, and to another session, leaves the caches holding the previous
session's weights and buffers: measured on a 16 us model with five sessions per model, the
first query after a switch took 4 times the steady latency and the next three up to 12%
more, which made the reported p99 1.5 to 2 times that of a plain loop over ``session.run``
(``benchmarks/bench_latency_proofs.py harness``). In production a model serves query after
query on one session; the settled blocks describe that, not the harness.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlci.bench import timing
from mlci.bench.timing import Call

OK = "ok"
NOT_ENOUGH = "not_enough_samples"


@dataclass
class Target:
    """One model's prebuilt queries, one list per session, and where it is in them.

    Round ``k`` uses session ``k mod len(sessions)``, so every session of every model is
    measured across the whole run.
    """

    label: str
    sessions: Sequence[Sequence[Call]]
    cursor: int = 0
    active: int = 0
    blocks: list[np.ndarray] = field(default_factory=list)  # latencies in milliseconds
    groups: list[int] = field(default_factory=list)  # session of each block
    busy_ns: int = 0
    warmup_queries: int = 0

    @property
    def calls(self) -> Sequence[Call]:
        return self.sessions[self.active]

    @property
    def queries(self) -> int:
        return sum(len(b) for b in self.blocks)


@dataclass(frozen=True)
class Plan:
    """When a scenario may stop, and how long its blocks are."""

    min_queries: int
    min_duration_s: float
    time_budget_s: float
    min_blocks: int
    block_queries: int
    block_seconds: float
    warmup_queries: int
    warmup_seconds: float
    settle_queries: int = 0


@dataclass(frozen=True)
class Outcome:
    """How a scenario ended."""

    status: str
    reason: str | None
    elapsed_s: float
    rounds: int


# A block runner: (target, most queries, most nanoseconds) -> (latencies ns, wall ns).
BlockRunner = Callable[[Target, int, int], tuple[np.ndarray, int]]


def back_to_back_runner(target: Target, queries: int, max_ns: int) -> tuple[np.ndarray, int]:
    start = time.perf_counter_ns()
    latencies, target.cursor = timing.back_to_back(target.calls, target.cursor, queries, max_ns)
    return latencies, time.perf_counter_ns() - start


def poisson_runner(rate: float, seed: int) -> BlockRunner:
    """Server blocks: exponential gaps with mean ``1 / rate`` seconds, one seeded stream."""
    rng = np.random.default_rng(seed)

    def run(target: Target, queries: int, max_ns: int) -> tuple[np.ndarray, int]:
        gaps = (rng.exponential(1e9 / rate, size=queries)).astype(np.int64)
        start = time.perf_counter_ns()
        latencies, target.cursor = timing.poisson_arrivals(
            target.calls, target.cursor, gaps, max_ns
        )
        return latencies, time.perf_counter_ns() - start

    return run


def warm_up(target: Target, plan: Plan, deadline_ns: int) -> None:
    """Run and discard queries until both warm-up minimums are met (or the budget ends).

    Every session runs at least ``warmup_queries``; the sessions share ``warmup_seconds``.
    """
    clock = time.perf_counter_ns
    want_ns = int(plan.warmup_seconds * 1e9 / len(target.sessions))
    total = 0
    for index, calls in enumerate(target.sessions):
        start = clock()
        done = 0
        while done < plan.warmup_queries or clock() - start < want_ns:
            left = min(deadline_ns - clock(), max(want_ns - (clock() - start), 1_000_000))
            if left <= 0:
                break
            latencies, _ = timing.back_to_back(
                calls, target.cursor + index, max(plan.warmup_queries - done, 16), left
            )
            done += len(latencies)
        total += done
    target.warmup_queries = total


def interleave(
    targets: Sequence[Target], plan: Plan, runner: BlockRunner, seed: int = 0
) -> Outcome:
    """Warm up every target, then run them in alternating blocks until the plan is satisfied.

    Python's garbage collector is off while measuring (as in ``timeit``): its pauses come at a
    fixed allocation count and could otherwise fall in one model's blocks more than the
    other's. Each pair of rounds runs the models in both orders, which pair goes first drawn
    at random, so that no periodic disturbance can lock onto one model's blocks.
    """
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return _interleave(targets, plan, runner, np.random.default_rng(seed))
    finally:
        if enabled:
            gc.enable()


def _interleave(
    targets: Sequence[Target], plan: Plan, runner: BlockRunner, rng: np.random.Generator
) -> Outcome:
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(plan.time_budget_s * 1e9)
    for target in targets:
        warm_up(target, plan, deadline)
    measuring = clock()
    rounds = 0
    block_ns = int(plan.block_seconds * 1e9)
    flip = False
    while True:
        if rounds % 2 == 0:
            flip = bool(rng.integers(2))
        order = list(targets) if (rounds % 2 == 0) != flip else list(reversed(targets))
        left = deadline - clock()
        if left <= 0 and rounds > 0:
            break
        per_block = max(1, min(block_ns, max(left, 0) // max(len(targets), 1)))
        for target in order:
            target.active = rounds % len(target.sessions)
            if plan.settle_queries:
                _, target.cursor = timing.back_to_back(
                    target.calls, target.cursor, plan.settle_queries, per_block
                )
            latencies, wall = runner(target, plan.block_queries, per_block)
            target.blocks.append(latencies.astype(np.float64) / 1e6)
            target.groups.append(target.active)
            target.busy_ns += wall
        rounds += 1
        measured = (clock() - measuring) / 1e9
        if _satisfied(targets, plan, rounds, measured):
            return Outcome(OK, None, (clock() - start) / 1e9, rounds)
    measured = (clock() - measuring) / 1e9
    reason = _missing(targets, plan, rounds, measured)
    return Outcome(NOT_ENOUGH, reason, (clock() - start) / 1e9, rounds)


def _satisfied(targets: Sequence[Target], plan: Plan, rounds: int, measured_s: float) -> bool:
    # As in LoadGen, the minimum duration is the measurement's (after warm-up), not a model's.
    return (
        rounds >= plan.min_blocks
        and measured_s >= plan.min_duration_s
        and all(t.queries >= plan.min_queries for t in targets)
    )


def _missing(targets: Sequence[Target], plan: Plan, rounds: int, measured_s: float) -> str:
    fewest = min(targets, key=lambda t: t.queries)
    parts = []
    if fewest.queries < plan.min_queries:
        parts.append(f"{fewest.queries} of the {plan.min_queries} queries needed")
    if measured_s < plan.min_duration_s:
        parts.append(f"{measured_s:.2f} s of the {plan.min_duration_s:g} s minimum duration")
    if rounds < plan.min_blocks:
        parts.append(f"{rounds} of the {plan.min_blocks} blocks needed")
    return (
        f"not enough samples: the {plan.time_budget_s:g} s time budget ran out after "
        + "; ".join(parts or ["too few samples"])
        + " (tip: raise time_budget or lower min_queries)"
    )


def max_rate_search(
    target: Target,
    start_rate: float,
    meets: Callable[[np.ndarray], bool],
    probe_seconds: float,
    deadline_ns: int,
    seed: int,
    steps: int = 8,
) -> tuple[float | None, list[dict[str, float | bool]]]:
    """Highest Poisson rate whose latencies ``meets`` the bound, by doubling then bisection.

    Each probe runs for ``probe_seconds``; the search stops early when the budget ends.
    Returns the best rate found (None if even the lowest probed rate failed) and the probes.
    """
    probes: list[dict[str, float | bool]] = []
    good: float | None = None
    bad: float | None = None
    rate = start_rate
    for step in range(steps):
        left = deadline_ns - time.perf_counter_ns()
        if left <= probe_seconds * 1e9:
            break
        queries = max(16, int(rate * probe_seconds * 2))
        latencies, _ = poisson_runner(rate, seed + step)(target, queries, int(probe_seconds * 1e9))
        ok = len(latencies) > 0 and meets(latencies.astype(np.float64) / 1e6)
        probes.append({"rate_per_s": rate, "queries": len(latencies), "met": ok})
        if ok:
            good = rate if good is None else max(good, rate)
        else:
            bad = rate if bad is None else min(bad, rate)
        if bad is None:
            rate *= 2
        elif good is None:
            rate /= 2
        else:
            rate = (good + bad) / 2
            if bad - good <= 0.05 * good:
                break
    return good, probes
