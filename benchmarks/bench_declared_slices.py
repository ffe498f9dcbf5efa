"""Declared-slice evaluation at scale: mlci's Evaluator against pandas + scikit-learn.

A synthetic binary task with a text column of 20 values (as read from a CSV) gives 20 slices,
expanded by mlci's declared-slice code exactly as `- feature: segment` in mlci.yaml would be.
Eight metrics are computed on every slice:

* point values with ``Evaluator.point``;
* point values and 95% bootstrap intervals (1000 replicates) with ``Evaluator.estimate``;
* the same point values with a pandas groupby and a loop over scikit-learn metrics.

Run: ``python benchmarks/bench_declared_slices.py [--rows N]`` (default 10,000,000).
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from collections.abc import Callable

import numpy as np

from mlci.evaluate import slicing
from mlci.evaluate.evaluator import Evaluator, Outputs

METRICS = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier",
]


def make_data(n: int, n_slices: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice codes, binary truth and the model's positive-class probability (float32 grid)."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, n_slices, size=n).astype(np.int16)
    signal = rng.standard_normal(n)
    # Slices differ in base rate and in how informative the score is.
    offset = np.linspace(-1.0, 1.0, n_slices)[cat]
    strength = np.linspace(0.5, 2.0, n_slices)[cat]
    truth_p = 1.0 / (1.0 + np.exp(-(offset + strength * signal)))
    y = (rng.random(n) < truth_p).astype(np.int64)
    noisy = signal + 0.5 * rng.standard_normal(n)
    # Models usually emit float32; rounding also creates tied scores.
    p1 = (1.0 / (1.0 + np.exp(-(offset + strength * noisy)))).astype(np.float32).astype(np.float64)
    return cat, y, p1


def peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def mlci_points(ev: Evaluator, out: Outputs, masks: list[np.ndarray]) -> list[dict[str, float]]:
    return [ev.point(out, rows=mask) for mask in masks]


def mlci_estimates(ev: Evaluator, out: Outputs, masks: list[np.ndarray]) -> list[dict]:
    return [ev.estimate(out, rows=mask) for mask in masks]


def sklearn_points(cat: np.ndarray, y: np.ndarray, p1: np.ndarray) -> list[dict[str, float]]:
    """The usual way: pandas groupby, then one scikit-learn call per metric and group."""
    import pandas as pd
    import sklearn.metrics as skm

    frame = pd.DataFrame({"cat": cat, "y": y, "p1": p1})
    frame["label"] = (frame["p1"] >= 0.5).astype(np.int64)
    results = []
    for _, group in frame.groupby("cat", sort=True):
        yt, yl, ys = group["y"].to_numpy(), group["label"].to_numpy(), group["p1"].to_numpy()
        proba = np.column_stack([1.0 - ys, ys])
        results.append(
            {
                "accuracy": skm.accuracy_score(yt, yl),
                "balanced_accuracy": skm.balanced_accuracy_score(yt, yl),
                "precision": skm.precision_score(yt, yl, zero_division=0),
                "recall": skm.recall_score(yt, yl, zero_division=0),
                "f1": skm.f1_score(yt, yl, zero_division=0),
                "roc_auc": skm.roc_auc_score(yt, ys),
                "log_loss": skm.log_loss(yt, proba, labels=[0, 1]),
                "brier": skm.brier_score_loss(yt, ys),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip the pandas baseline")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time paired candidate-baseline deltas on every slice",
    )
    args = parser.parse_args()

    t_data, (cat, y, p1) = timed(lambda: make_data(args.rows, args.slices, args.seed))
    labels = (p1 >= 0.5).astype(np.int64)
    out = Outputs(labels=labels, proba=np.column_stack([1.0 - p1, p1]))
    names = np.array([f"segment-{v:02d}" for v in range(args.slices)], dtype=object)
    segment = names[cat]
    t_masks, defs = timed(
        lambda: slicing.expand(
            {"feature": "segment"}, {"segment": segment}, {"segment": "categorical"}
        )
    )
    masks = [d.mask for d in defs]  # type: ignore[attr-defined]
    print(
        f"rows {args.rows:,}, slices {args.slices}, metrics {len(METRICS)}, "
        f"bootstrap replicates {args.boot} (data made in {t_data:.1f} s)"
    )

    print(f"mlci slice masks (20 values): {t_masks:6.2f} s")
    ev_point = Evaluator("binary", y, metrics=METRICS, n_boot=0)
    t_point, points = timed(lambda: mlci_points(ev_point, out, masks))
    print(
        f"mlci points:                 {t_point:7.2f} s   (with masks {t_masks + t_point:.2f} s; target 5 s)"
    )

    ev_boot = Evaluator("binary", y, metrics=METRICS, n_boot=args.boot, seed=args.seed)
    t_boot, estimates = timed(lambda: mlci_estimates(ev_boot, out, masks))
    print(
        f"mlci points + intervals:     {t_boot:7.2f} s   (with masks {t_masks + t_boot:.2f} s; target 30 s)"
    )

    first = estimates[0]  # type: ignore[index]
    for name in ("accuracy", "roc_auc"):
        e = first[name]
        print(f"  slice 0 {name}: {e.value:.4f} [{e.ci_low:.4f}, {e.ci_high:.4f}]")

    if args.compare:
        # A baseline that is a little worse: noisier scores.
        noise = np.random.default_rng(args.seed + 1).standard_normal(args.rows) * 0.05
        p0 = np.clip(p1 + noise, 0.0, 1.0)
        base = Outputs(labels=(p0 >= 0.5).astype(np.int64), proba=np.column_stack([1.0 - p0, p0]))
        t_cmp, deltas = timed(lambda: [ev_boot.compare(out, base, rows=m) for m in masks])
        d = deltas[0]["roc_auc"]  # type: ignore[index]
        print(f"mlci paired deltas + p:      {t_cmp:7.2f} s")
        print(
            f"  slice 0 roc_auc delta: {d.value:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}], "
            f"p = {d.p_value:.3g}"
        )

    print(f"peak memory after mlci:      {peak_mb():7.0f} MB")

    if not args.skip_sklearn:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_sk, reference = timed(lambda: sklearn_points(cat, y, p1))
        worst = max(
            abs(ours[m] - ref[m])
            for ours, ref in zip(points, reference, strict=True)  # type: ignore[arg-type]
            for m in METRICS
        )
        print(f"pandas groupby + sklearn:    {t_sk:7.2f} s")
        print(
            f"speed-up of mlci points:     {t_sk / t_point:7.1f} x ({t_sk / (t_point + t_masks):.1f} x with masks)"
        )
        print(f"largest |mlci - sklearn|:    {worst:.2e}")

    print(f"peak memory at the end:      {peak_mb():7.0f} MB")


if __name__ == "__main__":
    main()
