"""Can mlci flag a clearly worse slice among 200, without flagging equal ones? Simulations.

    python benchmarks/bench_slice_flags.py                  # 5 bad, 5 mild (30 min, busy 2 cores)
    python benchmarks/bench_slice_flags.py --trials 30 --bad 1 --mild 4 --rows 300   # one bad

Each trial draws a binary dataset of ``slices x rows`` rows split into equal slices. The
baseline and the candidate see the same signal through independent noise of the same level,
so on most slices they are equally good (null slices); on a few the candidate's noise is far
larger, so its ROC AUC there is lower by about 0.2 ("bad") or 0.05 ("mild"). Every slice is
compared with mlci's Evaluator (paired bootstrap, 1,000 replicates) and flagged with mlci's
rule (Benjamini-Hochberg at FDR 5% on the one-sided p-value of "worse", and a BCa interval
that excludes zero), with two p-values from the same replicates:

- counting: twice the share of replicates on the far side of zero, (1 + count) / (1 + B);
  what mlci used before. It cannot go below 2 / (B + 1), and Benjamini-Hochberg over m
  slices needs p <= q / m for the first discovery: with 200 slices, 0.00025 < 0.002.
- mlci: the normal approximation from the bootstrap standard error of the delta.

Reported: the share of bad and mild slices flagged, and the false discovery proportion
(flagged null slices among all flagged), averaged over trials, with Monte Carlo errors.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.stats import norm

from mlci.evaluate.evaluator import Evaluator, Outputs
from mlci.evaluate.stats import flag_worse

SHIFT = 1.5
NOISE = 0.6
FDR = 0.05
BOOT = 1000


def counting_p_value(deltas: np.ndarray) -> float | None:
    """The replicate-counting p-value mlci used before (floored at 2 / (B + 1))."""
    d = deltas[np.isfinite(deltas)]
    if len(d) == 0:
        return None
    below = (1.0 + np.count_nonzero(d <= 0.0)) / (1.0 + len(d))
    above = (1.0 + np.count_nonzero(d >= 0.0)) / (1.0 + len(d))
    return float(min(1.0, 2.0 * min(below, above)))


def auc(noise: float) -> float:
    return float(norm.cdf(SHIFT / math.sqrt(2 * (1 + noise**2))))


def bad_noise(drop: float) -> float:
    """The candidate noise level that lowers the ROC AUC by ``drop``."""
    target = auc(NOISE) - drop
    z = norm.ppf(target)
    return math.sqrt((SHIFT / z) ** 2 / 2 - 1)


def trial(
    rng: np.random.Generator, slices: int, rows: int, kinds: np.ndarray, seed: int
) -> dict[str, tuple[int, int]]:
    n = slices * rows
    which = np.repeat(np.arange(slices), rows)
    y = (rng.random(n) < 0.3).astype(np.int64)
    signal = SHIFT * y + rng.standard_normal(n)
    noise_c = np.full(slices, NOISE)
    noise_c[kinds == 1] = bad_noise(0.2)
    noise_c[kinds == 2] = bad_noise(0.05)

    def outputs(score: np.ndarray) -> Outputs:
        p = 1 / (1 + np.exp(-score))
        return Outputs(proba=np.column_stack([1 - p, p]))

    baseline = outputs(signal + NOISE * rng.standard_normal(n))
    candidate = outputs(signal + noise_c[which] * rng.standard_normal(n))
    ev = Evaluator("binary", y, metrics=["roc_auc"], n_boot=BOOT, seed=seed)
    values, p_mlci, p_count, excludes = [], [], [], []
    for s in range(slices):
        rows_s = np.flatnonzero(which == s)
        vc, rc = ev.resampled(candidate, rows_s)
        vb, rb = ev.resampled(baseline, rows_s)
        delta = ev.deltas(vc, rc, vb, rb)["roc_auc"]
        values.append(delta.value)
        p_mlci.append(delta.p_value)
        p_count.append(counting_p_value(rc.replicates["roc_auc"] - rb.replicates["roc_auc"]))
        excludes.append(delta.ci_high is not None and delta.ci_high < 0)
    out = {}
    for how, p in (("counting", p_count), ("mlci", p_mlci)):
        _, flagged = flag_worse(values, p, excludes, True, FDR)
        out[how] = flagged
    return {
        f"{how}:{name}": (int(flagged[kinds == k].sum()), int((kinds == k).sum()))
        for how, flagged in out.items()
        for k, name in ((1, "bad"), (2, "mild"), (0, "null"))
    } | {f"{how}:flagged": (int(flagged.sum()), 0) for how, flagged in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--rows", type=int, default=150, help="rows per slice")
    parser.add_argument("--bad", type=int, default=5, help="slices worse by 0.2 ROC AUC")
    parser.add_argument("--mild", type=int, default=5, help="slices worse by 0.05 ROC AUC")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kinds = np.zeros(args.slices, dtype=int)
    kinds[: args.bad] = 1
    kinds[args.bad : args.bad + args.mild] = 2
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    hits: dict[str, list[int]] = {}
    fdp: dict[str, list[float]] = {"counting": [], "mlci": []}
    for t in range(args.trials):
        found = trial(rng, args.slices, args.rows, kinds, t)
        for key, (k, total) in found.items():
            hits.setdefault(key, [0, 0])
            hits[key][0] += k
            hits[key][1] += total
        for how in fdp:
            flagged = found[f"{how}:flagged"][0]
            fdp[how].append(found[f"{how}:null"][0] / flagged if flagged else 0.0)
    print(
        f"{args.trials} trials, {args.slices} slices of {args.rows} rows, {args.bad} worse by "
        f"0.2 ROC AUC, {args.mild} worse by 0.05, the rest equal; FDR {FDR:.0%}, {BOOT} "
        "replicates\n"
    )
    print("| p-value | bad slices flagged | mild slices flagged | false discovery proportion |")
    print("|---|---|---|---|")
    for how in ("counting", "mlci"):
        cells = []
        for name in ("bad", "mild"):
            k, total = hits[f"{how}:{name}"]
            p = k / total if total else 0.0
            cells.append(f"{p:.1%} ± {math.sqrt(p * (1 - p) / max(total, 1)):.1%}")
        f = np.asarray(fdp[how])
        cells.append(f"{f.mean():.1%} ± {f.std(ddof=1) / math.sqrt(len(f)):.1%}")
        label = (
            "replicate counting (before)"
            if how == "counting"
            else "bootstrap standard error (mlci)"
        )
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
