"""How often does the latency comparison call an identical model "slower"? A/A simulations.

    python benchmarks/bench_latency_stats.py                 # about 30 minutes on 2 busy cores
    python benchmarks/bench_latency_stats.py --rounds 400 --noise separate --tau 30 100
    python benchmarks/bench_latency_stats.py --trials 300

The comparison in ``mlci/bench/compare.py`` promises that an identical candidate is judged
"slower" (the lower end of the 95% ratio interval above 1 + tolerance) at most 2.5% of the
time. That holds when the resampled units are independent. Here latencies are simulated with
noise correlated across queries, run through the same interleaving the benchmark uses
(blocks of 10 queries, the models alternating, each pair of rounds in both orders, sessions
taken in turn) and judged by ``compare()`` twice on the same data:

- before: every round resampled independently (what mlci did);
- mlci: batches of rounds as long as the estimated autocorrelation time of the rounds'
  paired differences.

Noise model, per query: log latency = AR(1) process (standard deviation 10%, correlation
time ``tau`` queries) + independent noise (5%) + rare spikes (2% of queries), in one of two
ways:

- shared: one time line that both models run in, block after block (the machine's load);
  interleaving cancels most of it;
- separate: each model drifts on its own (its own process state); only resampling can
  account for it.

With one session per model the bootstrap alone makes the interval; with five, each session
has its own offset (standard deviation 2%), as where a session lands in memory moves its
latency, and the t interval over session pairs joins it. 100 rounds per run (1,000 queries
per model).

Monte Carlo error: a rate p from T trials has standard error sqrt(p (1 - p) / T), about 0.5
points at 2.5% with 1,000 trials; the table prints it.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from mlci.bench import compare as stats

ROUNDS = 100
BLOCK = 10
AR_SD = 0.10
NOISE_SD = 0.05
SESSION_SD = 0.02
REPLICATES = 1000
METRICS = ("p50", "p99")
README_TOLERANCE = {"p50": 0.05, "p99": 0.10}


def latencies(rng: np.random.Generator, n: int, tau: float) -> np.ndarray:
    """Latencies (around 1) with AR(1) log noise of correlation time ``tau`` queries."""
    phi = math.exp(-1.0 / tau) if tau > 0 else 0.0
    shocks = rng.standard_normal(n) * AR_SD * math.sqrt(1 - phi * phi)
    level = np.empty(n)
    level[0] = AR_SD * rng.standard_normal()
    for i in range(1, n):
        level[i] = phi * level[i - 1] + shocks[i]
    spikes = (rng.random(n) < 0.02) * 0.3 * rng.exponential(1.0, n) ** 2
    return np.exp(level + NOISE_SD * rng.standard_normal(n) + spikes)


def interleaved(
    rng: np.random.Generator, tau: float, sessions: int, shared: bool
) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """An A/A run in the benchmark's block order, from one shared time line or two."""
    stream = latencies(rng, ROUNDS * 2 * BLOCK, tau)
    own = {
        "c": latencies(rng, ROUNDS * BLOCK, tau) if not shared else None,
        "b": latencies(rng, ROUNDS * BLOCK, tau) if not shared else None,
    }
    spread = SESSION_SD if sessions > 1 else 0.0
    offset_c = np.exp(spread * rng.standard_normal(sessions))
    offset_b = np.exp(spread * rng.standard_normal(sessions))
    candidate: list[np.ndarray] = []
    baseline: list[np.ndarray] = []
    groups: list[int] = []
    at = 0
    flip = False
    for k in range(ROUNDS):
        if k % 2 == 0:
            flip = bool(rng.integers(2))
        order = ("c", "b") if (k % 2 == 0) != flip else ("b", "c")
        session = k % sessions
        for who in order:
            mine = own[who]
            block = stream[at : at + BLOCK] if mine is None else mine[k * BLOCK : (k + 1) * BLOCK]
            at += BLOCK
            if who == "c":
                candidate.append(block * offset_c[session])
            else:
                baseline.append(block * offset_b[session])
        groups.append(session)
    return candidate, baseline, groups


def rate(count: int, n: int) -> str:
    """A share with its Monte Carlo standard error (none seen: the rule-of-three bound)."""
    if count == 0:
        return f"0 of {n:,} (< {3 / n:.1%})"
    p = count / n
    return f"{p:.1%} ± {math.sqrt(p * (1 - p) / n):.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tau",
        type=float,
        nargs="+",
        default=[0.0, 10.0, 30.0, 100.0],
        help="correlation times in queries (0: independent)",
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[1])
    parser.add_argument("--noise", nargs="+", default=["shared", "separate"])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds per run")
    args = parser.parse_args()
    globals()["ROUNDS"] = args.rounds
    print(
        f"A/A, {args.trials} trials per row, {ROUNDS} rounds of {BLOCK}-query blocks; share "
        'judged "slower" (95% intervals: at most 2.5% promised)\n'
    )
    print(
        "| noise | sessions | correlation time | tolerance | p50 before | p50 mlci "
        "| p99 before | p99 mlci | median batch (rounds) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    runs = [(n, s, t) for n in args.noise for s in args.sessions for t in args.tau]
    for noise, sessions, tau in runs:
        rng = np.random.default_rng([args.seed, len(noise), sessions, int(tau * 10)])
        slower = {
            (m, how, tol): 0
            for m in METRICS
            for how in ("before", "mlci")
            for tol in ("zero", "readme")
        }
        batches = []
        for t in range(args.trials):
            cand, base, groups = interleaved(rng, tau, sessions, noise == "shared")
            resampled = stats.resampling(ROUNDS, REPLICATES, t)
            paired = stats.log_block_medians(cand) - stats.log_block_medians(base)
            batches.append(stats.batch_length(paired, ROUNDS)[0])
            for how, weights in (("before", resampled.weights(1)), ("mlci", resampled)):
                by_session = groups if sessions > 1 else None
                for tol, tolerances in (
                    ("zero", dict.fromkeys(METRICS, 0.0)),
                    ("readme", README_TOLERANCE),
                ):
                    for c in stats.compare(
                        cand, base, METRICS, tolerances, 0.95, weights, groups=by_session
                    ):
                        slower[(c.metric, how, tol)] += c.verdict == stats.SLOWER
        n = args.trials
        label = "independent" if tau == 0 else f"{tau:g} queries ({tau / BLOCK:g} blocks)"

        for tol, shown in (("zero", "0"), ("readme", "p50 5%, p99 10%")):
            cells = [rate(slower[(m, how, tol)], n) for m in METRICS for how in ("before", "mlci")]
            batch = np.median(batches)
            head = f"| {noise} | {sessions} | {label} | {shown} | "
            print(head + " | ".join(cells) + f" | {batch:g} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
