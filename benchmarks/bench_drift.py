"""Drift decisions as the data grows: false alarms on unshifted data, and power on a shift.

Three decisions on the same features, at 10k, 100k, 1M and 10M rows per dataset:

* mlci: the effect size (normalised Wasserstein distance or Jensen-Shannon distance, and PSI)
  judged on its bootstrap interval (the defaults of the drift check);
* p-value: Kolmogorov-Smirnov (numeric) or chi-square (categorical) p < 0.01, as mlci
  decided before and as many monitoring tools do;
* PSI > 0.2 on the point estimate.

Data: "identical" draws both datasets from one distribution; "negligible" moves numeric
features by 0.02 standard deviations and one category's share by one point, the kind of
change real data always has and nobody should be paged for; "shift" moves numeric features by
0.25 standard deviations and one category's share by twenty points. Each feature is one trial;
the share flagged is printed with its Monte Carlo standard error.

    python benchmarks/bench_drift.py [--sizes 10000,100000,1000000,10000000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from mlci.testing.data_checks import check_drift

CATS = np.array(["branch", "online", "broker", "phone"], dtype=object)
SHARES = np.array([0.4, 0.3, 0.2, 0.1])
SCENARIOS = {"identical": (0.0, 0.0), "negligible": (0.02, 0.01), "shift": (0.25, 0.20)}


def trials_for(n: int) -> int:
    return max(4, min(40, 10_000_000 // n))


def feature(rng: np.random.Generator, n: int, kind: str, move: float) -> np.ndarray:
    if kind == "numeric":
        return rng.normal(move, 1.0, n)
    shares = SHARES.copy()
    shares[2] += move
    shares[0] -= move
    return CATS[rng.choice(len(CATS), n, p=shares)]


def decisions(ref: np.ndarray, cur: np.ndarray, kind: str, seed: int) -> dict[str, bool]:
    out = check_drift("x", ref, cur, kind, seed=seed)
    details = out.details
    return {
        "mlci": out.status == "failed",
        "p-value": details["p_value"] < 0.01,
        "PSI > 0.2": details["psi"] > 0.2,
    }


def cell(k: int, n: int) -> str:
    """``k`` of ``n`` trials flagged, as a share with its binomial standard error."""
    p = k / n
    return f"{k}/{n} {p:4.0%} ± {math.sqrt(p * (1 - p) / n):3.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = ("mlci", "p-value", "PSI > 0.2")
    print("features flagged as drifted, of the trials (share ± its binomial standard error)")
    print(
        f"{'rows':>11} {'data':>11} {'trials':>6} "
        + " ".join(f"{m:>16}" for m in methods)
        + "  s/feature"
    )
    for n in sizes:
        trials = trials_for(n)
        for scenario, (numeric_move, share_move) in SCENARIOS.items():
            flagged = dict.fromkeys(methods, 0)
            started = time.perf_counter()
            count = 0
            for t in range(trials):
                rng = np.random.default_rng([n, t, len(scenario)])
                kind = "numeric" if t % 2 == 0 else "categorical"
                move = numeric_move if kind == "numeric" else share_move
                ref = feature(rng, n, kind, 0.0)
                cur = feature(rng, n, kind, move)
                for method, hit in decisions(ref, cur, kind, t).items():
                    flagged[method] += hit
                count += 1
            took = (time.perf_counter() - started) / count
            print(
                f"{n:>11,} {scenario:>11} {count:>6} "
                + " ".join(f"{cell(flagged[m], count):>16}" for m in methods)
                + f"  {took:8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
