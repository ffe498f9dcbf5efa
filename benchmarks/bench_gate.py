"""How often the gate decides wrongly: simulated A/A and A/B comparisons.

Each trial draws a fresh evaluation set (binary task) and scores it with a baseline and a
candidate whose true ROC AUC is known in closed form: the label shifts a Gaussian signal by
``MU`` and each model sees the signal through its own Gaussian noise, so
``AUC = Phi(MU / sqrt(2 (1 + sigma^2)))``.

* **A/A**: the candidate is exactly as good as the baseline (same noise level, independent
  noise). A gate that blocks it is wrong; holding is the honest "cannot tell".
* **A/B**: the candidate is truly worse than the baseline by twice the margin. A gate that
  promotes it is wrong.

mlci's evaluator computes the ROC AUC delta with its paired Poisson bootstrap, and the gate
judges it with the configured non-inferiority rule (``margin``, 95% intervals). For
comparison the same deltas are judged the way TFX's Evaluator and MLflow's
``validate_evaluation_results`` gate: on the point estimate alone
(``delta > -margin`` promotes, anything else blocks).

Run: ``python benchmarks/bench_gate.py [--trials N] [--rows N] [--margin M]``.

Measured with the defaults (300 trials per scenario, 5,000 rows, baseline ROC AUC 0.8286,
margin 0.01, 500 replicates; the rates carry about +/-3 points of simulation error):

| scenario | true delta | mlci promote | mlci hold | mlci block | point promote | point block |
|---|---|---|---|---|---|---|
| A/A (equal) | +0.0000 | 64.7% | 35.3% | 0.0% | 98.3% | 1.7% |
| A/B (worse by 0.02) | -0.0200 | 0.0% | 46.7% | 53.3% | 1.3% | 98.7% |
| A/B (worse by 0.005) | -0.0050 | 20.0% | 80.0% | 0.0% | 83.3% | 16.7% |

mlci never blocked an equal model and never promoted one worse by twice the margin; the price
is "hold" when 5,000 rows cannot resolve a 0.01 margin. Point-estimate gating promotes
nearly every equal model but blocks 1.7% of them, and promotes 1.3% of clearly worse ones.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from mlci.evaluate.evaluator import Evaluator, Outputs
from mlci.gate.config import GateConfig
from mlci.gate.rules import evaluate_gate

MU = 1.5
SIGMA_BASE = 0.5


def true_auc(sigma: float) -> float:
    return float(norm.cdf(MU / np.sqrt(2 * (1 + sigma**2))))


def sigma_for(auc: float) -> float:
    return float(brentq(lambda s: true_auc(s) - auc, 1e-6, 50))


def outputs(score: np.ndarray) -> Outputs:
    p = 1 / (1 + np.exp(-score))
    return Outputs(proba=np.column_stack([1 - p, p]))


def document(delta: dict[str, float]) -> dict[str, object]:
    """The smallest results document the non-inferiority rule reads."""
    return {
        "model": {"sha256": None},
        "data": {"sha256": "0" * 64},
        "config": {"sha256": "0" * 64},
        "stages": {"evaluate": {"status": "ran"}},
        "evaluation": {"primary_metric": "roc_auc", "metrics": {"delta": {"roc_auc": delta}}},
    }


def trial(
    rng: np.random.Generator, rows: int, sigma_candidate: float, gate: GateConfig, boot: int
) -> tuple[str, str]:
    y = (rng.random(rows) < 0.3).astype(np.int64)
    signal = MU * y + rng.standard_normal(rows)
    baseline = signal + SIGMA_BASE * rng.standard_normal(rows)
    candidate = signal + sigma_candidate * rng.standard_normal(rows)
    evaluator = Evaluator(
        "binary",
        y,
        metrics=["roc_auc"],
        n_classes=2,
        n_boot=boot,
        confidence=0.95,
        seed=int(rng.integers(2**31)),
    )
    d = evaluator.compare_both(outputs(candidate), outputs(baseline)).delta["roc_auc"]
    delta = {"value": d.value, "ci_low": d.ci_low, "ci_high": d.ci_high}
    decision = evaluate_gate(document(delta), gate)["decision"]
    margin = gate.rules[0].margin or 0.0
    point = "promote" if d.value > -margin else "block"
    return decision, point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    gate = GateConfig.model_validate(
        {"rules": [{"kind": "non_inferiority", "metric": "roc_auc", "margin": args.margin}]}
    )
    base_auc = true_auc(SIGMA_BASE)
    scenarios = {
        "A/A (equal)": SIGMA_BASE,
        f"A/B (worse by {2 * args.margin:g})": sigma_for(base_auc - 2 * args.margin),
        f"A/B (worse by {args.margin / 2:g}, inside the margin)": sigma_for(
            base_auc - args.margin / 2
        ),
    }
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.trials} trials per scenario, {args.rows:,} rows, baseline ROC AUC {base_auc:.4f}, "
        f"margin {args.margin}, {args.bootstrap} bootstrap replicates, 95% intervals\n"
    )
    print(
        "| scenario | true delta | mlci promote | mlci hold | mlci block | point-estimate promote | point-estimate block |"
    )
    print("|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    for name, sigma in scenarios.items():
        mlci: Counter[str] = Counter()
        point: Counter[str] = Counter()
        for _ in range(args.trials):
            decision, by_point = trial(rng, args.rows, sigma, gate, args.bootstrap)
            mlci[decision] += 1
            point[by_point] += 1
        n = args.trials

        def rate(c: Counter[str], key: str, n: int = n) -> str:
            return f"{c[key] / n:.1%}"

        print(
            f"| {name} | {true_auc(sigma) - base_auc:+.4f} | {rate(mlci, 'promote')} | "
            f"{rate(mlci, 'hold')} | {rate(mlci, 'block')} | {rate(point, 'promote')} | "
            f"{rate(point, 'block')} |"
        )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
