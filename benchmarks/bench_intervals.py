"""Do mlci's intervals and p-values mean what they say? Simulations with a known truth.

    python benchmarks/bench_intervals.py                      # every study (about an hour on 2 busy cores)
    python benchmarks/bench_intervals.py coverage --trials 400
    python benchmarks/bench_intervals.py clusters pvalues

Studies (each trial draws a fresh dataset from a model whose true metric is known in closed
form or by numerical integration, and runs mlci's own Evaluator on it):

- coverage: how often a nominal 95% interval holds the true value, at n = 50, 200 and 2,000
  rows, for accuracy, ROC AUC, log loss and RMSE, with three intervals computed from the same
  bootstrap replicates: the percentile interval (what mlci used before), BCa, and the
  studentized (bootstrap-t) interval on the log scale for means of per-row errors. The column
  "mlci" is the interval mlci reports for that metric.
- clusters: rows come in clusters (users, sessions) that share a random effect; coverage of
  intervals that resample rows (no ``data.group``) against intervals that resample clusters.
- pvalues: two equally good models on the same rows (the null): how often the paired delta's
  p-value falls below 5% and 1%, and a Kolmogorov-Smirnov test of its uniformity.

Monte Carlo error: a coverage c estimated from T trials has standard error sqrt(c (1 - c) / T),
about 0.7 points at 95% with 1,000 trials; the tables print it.

Data-generating models
- binary: 30% positives; a score z ~ N(1.5 y, 1); the model's probability is the calibrated
  P(y = 1 | z), its label the probability above 0.5. True ROC AUC = Phi(1.5 / sqrt 2) = 0.856;
  true accuracy and log loss by numerical integration.
- regression: y = x + e with e ~ Student t with 5 degrees of freedom (heavy tails: the squared
  errors have a finite but large fourth moment); the model predicts x. True RMSE = sqrt(5/3).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy import stats as sps

from mlci.evaluate.bootstrap import bca_interval, percentile_interval, studentized_log_interval
from mlci.evaluate.evaluator import MEAN_ERRORS, Evaluator, Outputs, interval_kind

PREVALENCE = 0.3
SHIFT = 1.5
T_DF = 5.0
CONFIDENCE = 0.95
BOOT = 1000

_LOGIT = math.log(PREVALENCE / (1 - PREVALENCE))
_CUT = (SHIFT**2 / 2 - _LOGIT) / SHIFT  # the score where the calibrated probability is 1/2


def p_positive(z: np.ndarray | float) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-(_LOGIT + SHIFT * np.asarray(z) - SHIFT**2 / 2))))


def _log_loss_truth() -> float:
    pos = integrate.quad(
        lambda z: -math.log(float(p_positive(z))) * sps.norm.pdf(z - SHIFT), -12, 14
    )[0]
    neg = integrate.quad(lambda z: -math.log(1 - float(p_positive(z))) * sps.norm.pdf(z), -14, 12)[
        0
    ]
    return PREVALENCE * pos + (1 - PREVALENCE) * neg


TRUTH = {
    "accuracy": PREVALENCE * sps.norm.sf(_CUT - SHIFT) + (1 - PREVALENCE) * sps.norm.cdf(_CUT),
    "roc_auc": float(sps.norm.cdf(SHIFT / math.sqrt(2))),
    "log_loss": _log_loss_truth(),
    "rmse": math.sqrt(T_DF / (T_DF - 2)),
}
TASK = {"accuracy": "binary", "roc_auc": "binary", "log_loss": "binary", "rmse": "regression"}


def binary(n: int, rng: np.random.Generator, noise: float = 1.0) -> tuple[np.ndarray, Outputs]:
    y = (rng.random(n) < PREVALENCE).astype(np.int64)
    z = SHIFT * y + noise * rng.standard_normal(n)
    p = p_positive(z)
    return y, Outputs(labels=(p >= 0.5).astype(np.int64), proba=np.column_stack([1 - p, p]))


def regression(n: int, rng: np.random.Generator) -> tuple[np.ndarray, Outputs]:
    x = rng.standard_normal(n)
    return x + sps.t.rvs(T_DF, size=n, random_state=rng), Outputs(values=x)


# --------------------------------------------------------------------------- intervals


def intervals(
    ev: Evaluator, out: Outputs
) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """Every metric's interval by every method, from the same replicates."""
    values, boot = ev.resampled(out)
    found: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    for name in ev.metrics:
        value, reps, jack = values[name], boot.replicates[name], boot.jackknife[name]
        methods = {
            "percentile": percentile_interval(reps, CONFIDENCE, value),
            "bca": bca_interval(reps, jack, value, CONFIDENCE),
            "mlci": ev.interval(name, value, boot),
        }
        if name in MEAN_ERRORS:
            se, rep_se = boot.log_se[name]
            methods["studentized"] = studentized_log_interval(
                value, reps, se, rep_se, CONFIDENCE
            ) or (None, None)
        found[name] = methods
    return found


@dataclass
class Tally:
    below: int = 0  # the truth is below the interval
    above: int = 0
    none: int = 0
    trials: int = 0

    def add(self, truth: float, interval: tuple[float | None, float | None]) -> None:
        self.trials += 1
        low, high = interval
        if low is None or high is None:
            self.none += 1
        elif truth < low:
            self.below += 1
        elif truth > high:
            self.above += 1

    def text(self) -> str:
        c = 1 - (self.below + self.above + self.none) / self.trials
        se = math.sqrt(max(c * (1 - c), 1e-12) / self.trials)
        return f"{c:.1%} ± {se:.1%} ({self.below}/{self.above})"


def coverage(trials: int, sizes: list[int], seed: int) -> None:
    print(
        f"## Coverage of 95% intervals ({trials} trials per row, {BOOT} replicates; "
        "misses: truth below / above the interval)\n"
    )
    tallies: dict[tuple[str, int, str], Tally] = {}
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        for i in range(trials):
            for task, make, names in (
                ("binary", binary, ["accuracy", "roc_auc", "log_loss"]),
                ("regression", regression, ["rmse"]),
            ):
                y, out = make(n, rng)
                ev = Evaluator(task, y, metrics=names, n_boot=BOOT, seed=i)  # type: ignore[arg-type]
                for name, methods in intervals(ev, out).items():
                    for method, interval in methods.items():
                        tallies.setdefault((name, n, method), Tally()).add(TRUTH[name], interval)
    print("| metric (mlci's interval) | n | percentile | BCa | studentized (log) | mlci reports |")
    print("|---|---|---|---|---|---|")
    for name in ("accuracy", "roc_auc", "log_loss", "rmse"):
        for n in sizes:
            cells = [
                tallies[(name, n, m)].text() if (name, n, m) in tallies else "—"
                for m in ("percentile", "bca", "studentized", "mlci")
            ]
            print(f"| {name} ({interval_kind(name)}) | {n:,} | " + " | ".join(cells) + " |")
    print()


# --------------------------------------------------------------------------- clusters

CLUSTERS = 100
CLUSTER_SIZE = 20
TAU = 1.0  # standard deviation of a cluster's shared effect


def clustered(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Outputs, Outputs]:
    """Binary and regression data whose rows share a per-cluster effect."""
    group = np.repeat(np.arange(CLUSTERS), CLUSTER_SIZE)
    effect = TAU * rng.standard_normal(CLUSTERS)[group]
    n = len(group)
    y = (rng.random(n) < PREVALENCE).astype(np.int64)
    z = SHIFT * y + effect + rng.standard_normal(n)
    p = p_positive(z)
    binary_out = Outputs(labels=(p >= 0.5).astype(np.int64), proba=np.column_stack([1 - p, p]))
    x = rng.standard_normal(n)
    target = x + effect + rng.standard_normal(n)
    return y, target, binary_out, Outputs(values=x)


def cluster_truth(name: str) -> float:
    """Truth over independent clusters, by a very large simulation where no closed form."""
    if name == "roc_auc":
        return float(sps.norm.cdf(SHIFT / math.sqrt(2 * (1 + TAU**2))))
    if name == "rmse":
        return math.sqrt(1 + TAU**2)
    rng = np.random.default_rng(12345)
    n = 4_000_000
    y = (rng.random(n) < PREVALENCE).astype(np.int64)
    z = SHIFT * y + TAU * rng.standard_normal(n) + rng.standard_normal(n)
    return float(np.mean((p_positive(z) >= 0.5) == y))


def clusters(trials: int, seed: int) -> None:
    print(
        f"## Clustered rows: {CLUSTERS} clusters of {CLUSTER_SIZE} rows sharing an effect of "
        f"standard deviation {TAU} ({trials} trials, 95% intervals)\n"
    )
    print("| metric | rows resampled (no data.group) | clusters resampled (data.group) |")
    print("|---|---|---|")
    names = {"accuracy": "binary", "roc_auc": "binary", "rmse": "regression"}
    truth = {name: cluster_truth(name) for name in names}
    tallies = {(name, how): Tally() for name in names for how in ("rows", "clusters")}
    rng = np.random.default_rng(seed)
    for i in range(trials):
        y, target, b_out, r_out = clustered(rng)
        group = np.repeat(np.arange(CLUSTERS), CLUSTER_SIZE)
        for how, keys in (("rows", None), ("clusters", group)):
            eb = Evaluator(
                "binary", y, metrics=["accuracy", "roc_auc"], keys=keys, n_boot=BOOT, seed=i
            )
            er = Evaluator("regression", target, metrics=["rmse"], keys=keys, n_boot=BOOT, seed=i)
            estimates = {**eb.estimate(b_out), **er.estimate(r_out)}
            for name in names:
                e = estimates[name]
                tallies[(name, how)].add(truth[name], (e.ci_low, e.ci_high))
    for name in names:
        print(
            f"| {name} | {tallies[(name, 'rows')].text()} | {tallies[(name, 'clusters')].text()} |"
        )
    print()


# --------------------------------------------------------------------------- p-values


def pvalues(trials: int, sizes: list[int], seed: int) -> None:
    print(
        f"## p-values under the null: two equally good models on the same rows ({trials} trials)\n"
    )
    print("| metric | n | p < 0.05 | p < 0.01 | Kolmogorov-Smirnov p (uniformity) |")
    print("|---|---|---|---|---|")
    names = ["accuracy", "roc_auc", "log_loss"]
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        found: dict[str, list[float]] = {name: [] for name in names}
        for i in range(trials):
            y = (rng.random(n) < PREVALENCE).astype(np.int64)
            signal = SHIFT * y + rng.standard_normal(n)
            models = []
            for _ in range(2):
                p = p_positive(signal + 0.7 * rng.standard_normal(n))
                models.append(
                    Outputs(labels=(p >= 0.5).astype(np.int64), proba=np.column_stack([1 - p, p]))
                )
            ev = Evaluator("binary", y, metrics=names, n_boot=BOOT, seed=i)
            for name, d in ev.compare(*models).items():
                if d.p_value is not None:
                    found[name].append(d.p_value)
        for name in names:
            p = np.asarray(found[name])
            k = len(p)

            def share(alpha: float, p: np.ndarray = p, k: int = k) -> str:
                r = float(np.mean(p < alpha))
                return f"{r:.1%} ± {math.sqrt(alpha * (1 - alpha) / k):.1%}"

            ks = sps.kstest(p, "uniform").pvalue
            print(f"| {name} | {n:,} | {share(0.05)} | {share(0.01)} | {ks:.2g} |")
    print()


STUDIES: dict[str, Callable[[argparse.Namespace], None]] = {
    "coverage": lambda a: coverage(a.trials, a.sizes, a.seed),
    "clusters": lambda a: clusters(a.trials, a.seed),
    "pvalues": lambda a: pvalues(a.trials, a.sizes, a.seed),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("studies", nargs="*", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 2000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for study in args.studies:
        started = time.perf_counter()
        STUDIES[study](args)
        print(f"({study}: {time.perf_counter() - started:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
