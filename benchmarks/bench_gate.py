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
(``delta > -margin`` promotes, anything else blocks). The same rule is also given the delta
without its interval, as ``evaluation.bootstrap: 0`` writes it: it must hold, never promote.

When mlci holds because the interval is wider than the margin, the gate's reason names about
how many rows would resolve it; the run reports the median and quartiles of that figure over
the held A/A trials, then runs the A/A scenario again at that many rows to check it.

Run: ``python benchmarks/bench_gate.py [--trials N] [--rows N] [--margin M]``; the figures
are in the README's section on the gate.
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


def document(delta: dict[str, float | None], rows: int) -> dict[str, object]:
    """The smallest results document the non-inferiority rule reads."""
    return {
        "model": {"sha256": None},
        "data": {"sha256": "0" * 64, "rows": rows},
        "config": {"sha256": "0" * 64},
        "stages": {"evaluate": {"status": "ran"}},
        "evaluation": {"primary_metric": "roc_auc", "metrics": {"delta": {"roc_auc": delta}}},
    }


def trial(
    rng: np.random.Generator, rows: int, sigma_candidate: float, gate: GateConfig, boot: int
) -> tuple[str, str, str, int | None]:
    """mlci's decision with and without the interval, the point-estimate decision, and the
    rows the gate said would resolve a hold."""
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
    section = evaluate_gate(document(delta, rows), gate)
    bare = evaluate_gate(document({**delta, "ci_low": None, "ci_high": None}, rows), gate)
    margin = gate.rules[0].margin or 0.0
    point = "promote" if d.value > -margin else "block"
    observed = section["rules"][0]["observed"] or {}
    return section["decision"], bare["decision"], point, observed.get("rows_needed")


def scenario(
    rng: np.random.Generator, rows: int, sigma: float, gate: GateConfig, args: argparse.Namespace
) -> tuple[Counter[str], Counter[str], Counter[str], list[int]]:
    mlci: Counter[str] = Counter()
    bare: Counter[str] = Counter()
    point: Counter[str] = Counter()
    needed: list[int] = []
    for _ in range(args.trials):
        decision, without, by_point, rows_needed = trial(rng, rows, sigma, gate, args.bootstrap)
        mlci[decision] += 1
        bare[without] += 1
        point[by_point] += 1
        if decision == "hold" and rows_needed is not None:
            needed.append(rows_needed)
    return mlci, bare, point, needed


def rate(c: Counter[str], key: str, n: int) -> str:
    p = c[key] / n
    return f"{p:.1%}"


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
    n = args.trials
    se = 100 * (0.25 / n) ** 0.5
    print(
        f"{n} trials per scenario, {args.rows:,} rows, baseline ROC AUC {base_auc:.4f}, "
        f"margin {args.margin}, {args.bootstrap} bootstrap replicates, 95% intervals; rates "
        f"carry at most ±{se:.1f} points of simulation error\n"
    )
    print(
        "| scenario | true delta | mlci promote / hold / block | without an interval "
        "promote / hold / block | point-estimate promote / block |"
    )
    print("|---|---|---|---|---|")
    started = time.perf_counter()
    held: list[int] = []
    for name, sigma in scenarios.items():
        mlci, bare, point, needed = scenario(rng, args.rows, sigma, gate, args)
        if name.startswith("A/A"):
            held = needed
        print(
            f"| {name} | {true_auc(sigma) - base_auc:+.4f} | "
            + " / ".join(rate(mlci, k, n) for k in ("promote", "hold", "block"))
            + " | "
            + " / ".join(rate(bare, k, n) for k in ("promote", "hold", "block"))
            + " | "
            + " / ".join(rate(point, k, n) for k in ("promote", "block"))
            + " |"
        )
    if held:
        q1, median, q3 = (int(v) for v in np.quantile(held, [0.25, 0.5, 0.75]))
        print(
            f"\nRows the gate named to resolve a held A/A comparison ({len(held)} holds): "
            f"median {median:,}, quartiles {q1:,} to {q3:,}."
        )
        more = int(round(median, -3))
        mlci, _, _, _ = scenario(rng, more, SIGMA_BASE, gate, args)
        print(
            f"A/A again with {more:,} rows: promote {rate(mlci, 'promote', n)}, hold "
            f"{rate(mlci, 'hold', n)}, block {rate(mlci, 'block', n)}."
        )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
