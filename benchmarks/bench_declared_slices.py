"""Declared-slice evaluation at scale: mlci against pandas + scikit-learn.

A synthetic binary task with a text column of 20 values gives 20 slices, expanded by mlci's
declared-slice code exactly as `- feature: segment` in mlci.yaml would be. The text column is
read as mlci reads a data file's (``mlci.data.to_numpy``: Arrow's dictionary encoding, whose
level codes come along; timed apart and printed), as pandas is given integer codes. Eight
metrics are computed on every slice, point values only:

* mlci, slices evaluated together: ``slicing.partition`` and ``Evaluator.point_groups`` (one
  pass per metric family over all slices);
* mlci, one boolean mask and one ``Evaluator.point`` call per slice;
* a pandas groupby (on the integer codes, so pandas does not pay for the text) and a loop over
  scikit-learn metrics.

The three run interleaved, ``--repeat`` times (alternating the order); the medians and their
ratios are printed, with the largest difference between the three results. ``--intervals``
also times 95% bootstrap intervals (1000 replicates) once, ``--compare`` paired deltas.

Figures (shared 2-core AMD Zen 4 machine, 10,000,000 rows, medians of 7, the first run cold):
together 0.40 s (runs 0.35 to 0.54 s once warm), per slice 1.24 s, pandas + scikit-learn
10.29 s: 25.8x. That is with the numpy kernels mlci chooses on Zen 4 (its AVX2 sort; see
mlci/numpy_dispatch.py). With numpy's own choice (``NPY_DISABLE_CPU_FEATURES=`` keeps it),
whose AVX-512 sort is five times slower there: 0.52 s against pandas' 10.39 s, 20.0x; pandas
+ scikit-learn take the same time either way. Before: 0.56 s, 18.0x, and 1.69 s, 5.8x, before
text columns came with their codes and slices were evaluated on both cores. What is left is
grouping the rows by slice (a stable counting sort and a gather), the per-row sums of the
other metric families, and the page faults of fresh temporaries. Reading the text column,
apart: 0.2 to 0.7 s, 246 MiB (ten million Python strings before: 0.6 s, 651 MiB).

Run: ``python benchmarks/bench_declared_slices.py [--rows N]`` (default 10,000,000).
"""

from __future__ import annotations  # noqa: I001 (mlci before numpy, below)

# mlci first, as the mlci command loads it: it chooses numpy's CPU kernels before numpy loads
# (mlci/numpy_dispatch.py). Both peers below run on the numpy this gives.
from mlci import numpy_dispatch

import argparse
import os
import resource
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

from mlci.data import Converted, to_numpy
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


def read_segment(cat: np.ndarray, n_slices: int) -> tuple[float, Converted]:
    """The text column as a data file holds it, read the way mlci reads one (timed)."""
    import pyarrow as pa

    names = pa.array([f"segment-{v:02d}" for v in range(n_slices)])
    column = pa.chunked_array(
        [
            pa.DictionaryArray.from_arrays(cat[i : i + 1_000_000].astype(np.int32), names).cast(
                pa.string()
            )
            for i in range(0, len(cat), 1_000_000)
        ]
    )
    elapsed, converted = timed(lambda: to_numpy(column, "segment"))
    return elapsed, converted  # type: ignore[return-value]


def declared(segment: Converted) -> list[slicing.SliceDef]:
    """The slices `- feature: segment` declares, expanded as `mlci check` expands them."""
    text = segment.text
    assert text is not None
    return slicing.expand(
        {"feature": "segment"},
        {"segment": segment.values},
        {"segment": "categorical"},
        encode=lambda _: (text.codes, text.labels),
    )


def mlci_points(
    ev: Evaluator, out: Outputs, segment: Converted
) -> tuple[list[str], list[dict[str, float]]]:
    """What `- feature: segment` costs: expand the slices, then evaluate all of them."""
    defs = declared(segment)
    groups = slicing.partition(defs)
    assert groups is not None
    return [d.name for d in defs], ev.point_groups(out, groups, len(defs))


def mlci_points_per_slice(
    ev: Evaluator, out: Outputs, segment: Converted
) -> tuple[list[str], list[dict[str, float]]]:
    """The same, one slice mask and one ``Evaluator.point`` call per slice."""
    defs = declared(segment)
    return [d.name for d in defs], [ev.point(out, rows=d.mask) for d in defs]


def mlci_estimates(ev: Evaluator, out: Outputs, segment: Converted) -> list[dict]:
    return [ev.estimate(out, rows=d.mask) for d in declared(segment)]


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


def worst_difference(ours: list[dict[str, float]], reference: list[dict[str, float]]) -> float:
    return max(abs(a[m] - b[m]) for a, b in zip(ours, reference, strict=True) for m in METRICS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip the pandas baseline")
    parser.add_argument(
        "--intervals", action="store_true", help="also time bootstrap intervals (once)"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time paired candidate-baseline deltas on every slice (once)",
    )
    args = parser.parse_args()

    t_data, (cat, y, p1) = timed(lambda: make_data(args.rows, args.slices, args.seed))
    labels = (p1 >= 0.5).astype(np.int64)
    out = Outputs(labels=labels, proba=np.column_stack([1.0 - p1, p1]))
    t_read, segment = read_segment(cat, args.slices)
    dispatch = os.environ.get(numpy_dispatch.VARIABLE)
    print(
        f"numpy kernels: {numpy_dispatch.VARIABLE}={dispatch!r}"
        if dispatch
        else "numpy kernels: numpy's own choice"
    )
    print(
        f"rows {args.rows:,}, slices {args.slices}, metrics {len(METRICS)}, "
        f"{args.repeat} interleaved repetitions (data made in {t_data:.1f} s; "
        f"the text column read as mlci reads it in {t_read:.2f} s)"
    )
    ev_point = Evaluator("binary", y, metrics=METRICS, n_boot=0)

    runners: dict[str, Callable[[], object]] = {
        "mlci (slices expanded, evaluated together)": lambda: mlci_points(ev_point, out, segment),
        "mlci, one mask and point() per slice": lambda: mlci_points_per_slice(
            ev_point, out, segment
        ),
    }
    if not args.skip_sklearn:
        runners["pandas groupby + scikit-learn"] = lambda: sklearn_points(cat, y, p1)
    times: dict[str, list[float]] = {name: [] for name in runners}
    results: dict[str, object] = {}
    order = list(runners)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rep in range(args.repeat):
            for name in order if rep % 2 == 0 else order[::-1]:
                elapsed, results[name] = timed(runners[name])
                times[name].append(elapsed)

    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        spread = ", ".join(f"{x:.2f}" for x in t)
        print(f"{name:45s} {median[name]:6.2f} s median  (runs: {spread})")
    mlci_names, grouped = results[order[0]]  # type: ignore[misc]
    _, per_slice = results[order[1]]  # type: ignore[misc]
    print(
        f"largest |together - per slice|:               {worst_difference(grouped, per_slice):.2e}"
    )
    if not args.skip_sklearn:
        reference = results[order[2]]
        print(
            f"largest |mlci - sklearn|:                     {worst_difference(grouped, reference):.2e}"
        )  # type: ignore[arg-type]
        sk = median[order[2]]
        print(
            f"speed-up over pandas + scikit-learn (medians): {sk / median[order[0]]:.1f} x "
            f"(per slice: {sk / median[order[1]]:.1f} x)"
        )
    print(f"peak memory after points:    {peak_mb():7.0f} MB")

    if args.intervals or args.compare:
        ev_boot = Evaluator("binary", y, metrics=METRICS, n_boot=args.boot, seed=args.seed)
    if args.intervals:
        t_boot, estimates = timed(lambda: mlci_estimates(ev_boot, out, segment))
        print(f"mlci points + intervals ({args.boot} replicates, masks included): {t_boot:.2f} s")
        first = estimates[0]  # type: ignore[index]
        for name in ("accuracy", "roc_auc"):
            e = first[name]
            print(f"  slice 0 {name}: {e.value:.4f} [{e.ci_low:.4f}, {e.ci_high:.4f}]")

    if args.compare:
        masks = [d.mask for d in declared(segment)]
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

    print(f"peak memory at the end:      {peak_mb():7.0f} MB")


if __name__ == "__main__":
    main()
