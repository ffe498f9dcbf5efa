"""Benchmark mlci's SliceLine against the obvious floor and the ``sliceline`` package.

Run ``python benchmarks/bench_slicefinding.py``. On 1,000,000 rows (12 categorical features
with 2 to 50 Zipf-distributed levels, a few planted problem slices; top 10, max level 3,
alpha 0.95, minimum support 1%) it

1. times ``mlci.evaluate.sliceline.find_slices`` against the floor, exhaustive counting: one
   ``np.bincount`` of sizes and one of error sums for every single feature, pair and triple
   of features, every slice scored, the same top-k kept. Both run on identical data in this
   process, interleaved, five times each (the order alternating); it prints the medians and
   floor/mlci, and checks that both return the same slices, sizes, error sums and scores;
2. measures mlci's time and peak memory in a separate process, also with the package's
   default minimum support of 10 rows;
3. runs the ``sliceline`` package on the same data at increasing sizes until one run takes
   longer than the time budget (or fails, e.g. runs out of memory) or 1,000,000 rows finish;
4. at the largest size the package finished, times both on identical data, checks that the top
   slices agree and prints the speed ratio.

Each step runs in subprocesses of its own, so that peak memory (``ru_maxrss``) belongs to
that run alone. ``--no-package`` stops after step 2; ``--quick`` shrinks the sizes
for a smoke test (100,000 rows).

Measured on 2 shared cores (Python 3.11, numpy 2.4): mlci 0.40 s against the floor's 1.25 s
at 1,000,000 rows (3.1x; 3.09x to 3.26x over five runs, 2.96x once on a busier machine), peak
RSS 213 MB of which 142 MB is the data; at 100,000 rows the two are even (0.12 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlci.evaluate.sliceline import DEFAULT_MIN_SUPPORT, find_slices  # noqa: E402

ROWS = 1_000_000
CARDINALITIES = (2, 6, 11, 15, 19, 24, 28, 33, 37, 41, 46, 50)
PARAMS = {"k": 10, "max_level": 3, "alpha": 0.95, "min_support": 0.01}
PACKAGE_SIZES = (50_000, 100_000, 200_000, 300_000, 400_000, 700_000, 1_000_000)
PACKAGE_BUDGET_S = 150.0  # stop growing the package's input after a run this long
PACKAGE_TIMEOUT_S = 600.0  # hard stop for a single package run
PACKAGE_MEMORY_LIMIT = 16 * 2**30  # address-space cap so a runaway run fails, not the machine
TARGET_SECONDS, TARGET_RSS_MB, TARGET_RATIO = 5.0, 1536.0, 10.0
TARGET_FLOOR_RATIO = 3.0  # the floor's time over mlci's
FLOOR_REPEATS = 5


# --------------------------------------------------------------------------- data


def make_data(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes (n_rows x 12, int32) and errors with three planted problem slices.

    Levels follow a Zipf-like distribution (level j has weight 1/(j+1)), as categorical data
    usually does, so multi-predicate slices can reach 1% support.
    """
    rng = np.random.default_rng(seed)
    columns = []
    for card in CARDINALITIES:
        weights = 1.0 / np.arange(1, card + 1)
        columns.append(rng.choice(card, size=n_rows, p=weights / weights.sum()).astype(np.int32))
    x = np.column_stack(columns)
    errors = rng.exponential(0.3, n_rows)
    errors[(x[:, 1] == 1) & (x[:, 4] == 0)] += 0.8
    errors[(x[:, 3] == 0) & (x[:, 7] == 0) & (x[:, 10] == 0)] += 2.0
    errors[x[:, 8] == 3] += 0.7
    return x, errors


PLANTED = (
    (("f1", 1), ("f4", 0)),
    (("f3", 0), ("f7", 0), ("f10", 0)),
    (("f8", 3),),
)


def as_mlci_inputs(x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    codes = {f"f{j}": x[:, j] for j in range(x.shape[1])}
    labels = {f"f{j}": list(range(card)) for j, card in enumerate(CARDINALITIES)}
    return codes, labels


# --------------------------------------------------------------------------- the floor


FLOOR_NAME = "exhaustive bincount, levels 1-3"


def exhaustive_top_k(
    codes: dict[str, np.ndarray],
    labels: dict[str, list[int]],
    errors: np.ndarray,
    *,
    k: int,
    max_level: int,
    alpha: float,
    min_support: float | int,
) -> list[dict[str, Any]]:
    """The obvious floor: count every slice of 1..max_level predicates, score all, keep top-k.

    One ``np.bincount`` of sizes and one of error sums per combination of features, over
    mixed-radix keys of all rows; no pruning. Ties with the k-th score are kept, as SliceLine
    keeps them. The data has no missing values, so every code is a level.
    """
    names = list(codes)
    columns = [np.asarray(codes[f], dtype=np.int64) for f in names]
    radix = [len(labels[f]) for f in names]
    n = errors.shape[0]
    sigma = max(int(min_support * n), 1) if isinstance(min_support, float) else min_support
    avg = float(np.mean(errors))
    key = np.empty(n, dtype=np.int64)
    found: list[tuple[float, tuple[int, ...], int, int, float]] = []
    for level in range(1, max_level + 1):
        for feats in itertools.combinations(range(len(names)), level):
            np.copyto(key, columns[feats[0]])
            for f in feats[1:]:
                key *= radix[f]
                key += columns[f]
            space = math.prod(radix[f] for f in feats)
            size = np.bincount(key, minlength=space)
            err = np.bincount(key, weights=errors, minlength=space)
            cells = np.flatnonzero((size >= sigma) & (err > 0))
            s, e = size[cells], err[cells]
            score = alpha * ((e / s) / avg - 1) - (1 - alpha) * (n / s - 1)
            found.extend(
                (float(score[i]), feats, int(cells[i]), int(s[i]), float(e[i]))
                for i in np.flatnonzero(score > 0).tolist()
            )
    if len(found) > k:
        kth = sorted((f[0] for f in found), reverse=True)[k - 1]
        found = [f for f in found if f[0] >= kth]
    out = []
    for score, feats, cell, size, err in found:
        values = []
        for f in reversed(feats):
            cell, v = divmod(cell, radix[f])
            values.append(v)
        predicates = [
            [names[f], labels[names[f]][v]] for f, v in zip(feats, reversed(values), strict=True)
        ]
        out.append({"predicates": predicates, "size": size, "error_sum": err, "score": score})
    return canonical(out)


def canonical(slices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first, ties by predicates: an order both methods share."""
    return sorted(slices, key=lambda s: (-s["score"], s["predicates"]))


def versus_floor(n_rows: int, repeats: int) -> tuple[float, float, list[dict[str, Any]], list[str]]:
    """Median seconds of mlci and of the floor on identical data, interleaved; and agreement."""
    x, errors = make_data(n_rows)
    codes, labels = as_mlci_inputs(x)
    times: dict[str, list[float]] = {"mlci": [], "floor": []}
    results: dict[str, list[dict[str, Any]]] = {}
    for rep in range(repeats):
        order = ("mlci", "floor") if rep % 2 == 0 else ("floor", "mlci")
        for which in order:
            start = time.perf_counter()
            if which == "mlci":
                found = find_slices(codes, labels, errors, **PARAMS)
                seconds = time.perf_counter() - start
                results[which] = canonical([
                    {"predicates": [list(p) for p in s.predicates], "size": s.size,
                     "error_sum": s.error_sum, "score": s.score}
                    for s in found
                ])  # fmt: skip
            else:
                results[which] = exhaustive_top_k(codes, labels, errors, **PARAMS)
                seconds = time.perf_counter() - start
            times[which].append(seconds)
    problems = compare(results["mlci"], results["floor"])
    return (
        statistics.median(times["mlci"]),
        statistics.median(times["floor"]),
        results["mlci"],
        problems,
    )


# --------------------------------------------------------------------------- workers


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(n_rows: int, min_support: float | int | None = None) -> dict[str, Any]:
    x, errors = make_data(n_rows)
    codes, labels = as_mlci_inputs(x)
    params = dict(PARAMS) if min_support is None else {**PARAMS, "min_support": min_support}
    baseline = _rss_mb()
    start = time.perf_counter()
    found = find_slices(codes, labels, errors, **params)
    seconds = time.perf_counter() - start
    slices = [
        {"predicates": [list(p) for p in s.predicates], "size": s.size,
         "error_sum": s.error_sum, "score": s.score}
        for s in found
    ]  # fmt: skip
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "data_rss_mb": baseline, "slices": slices}


def run_package(n_rows: int) -> dict[str, Any]:
    resource.setrlimit(resource.RLIMIT_AS, (PACKAGE_MEMORY_LIMIT, PACKAGE_MEMORY_LIMIT))
    import sliceline
    from sliceline import Slicefinder

    x, errors = make_data(n_rows)
    finder = Slicefinder(
        alpha=PARAMS["alpha"],
        k=PARAMS["k"],
        max_l=PARAMS["max_level"],
        min_sup=PARAMS["min_support"],
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        finder.fit(x, errors)
        seconds = time.perf_counter() - start
    slices = []
    for row, stats in zip(finder.top_slices_, finder.top_slices_statistics_, strict=True):
        predicates = [[f"f{j}", int(v)] for j, v in enumerate(row) if v is not None]
        slices.append(
            {
                "predicates": predicates,
                "size": int(stats["slice_size"]),
                "error_sum": stats["sum_slice_error"],
                "score": stats["slice_score"],
            }
        )
    return {
        "seconds": seconds,
        "peak_rss_mb": _rss_mb(),
        "slices": slices,
        "numba": bool(sliceline.is_numba_available()),
        "version": sliceline.__dict__.get("__version__", _package_version()),
    }


def _package_version() -> str:
    from importlib.metadata import version

    return version("sliceline")


@dataclass
class Outcome:
    ok: bool
    result: dict[str, Any]
    error: str = ""


def in_subprocess(which: str, n_rows: int, timeout: float, *extra: str) -> Outcome:
    """Run one worker in a fresh interpreter; its result comes back as JSON on stdout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", which, str(n_rows), *extra]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(False, {}, f"timed out after {timeout:.0f} s")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        if "MemoryError" in tail:
            cap = PACKAGE_MEMORY_LIMIT / 2**30
            detail = tail[tail.find("Unable") :] if "Unable" in tail else tail
            return Outcome(False, {}, f"out of memory under a {cap:.0f} GiB cap: {detail[:80]}")
        return Outcome(False, {}, tail[:120])
    return Outcome(True, json.loads(proc.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- comparison


def compare(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Differences between two top-k lists (empty when they agree)."""
    problems = []
    if len(ours) != len(theirs):
        problems.append(f"{len(ours)} slices vs {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a["predicates"] != b["predicates"]:
            problems.append(f"#{i}: predicates {a['predicates']} vs {b['predicates']}")
        elif a["size"] != b["size"]:
            problems.append(f"#{i}: size {a['size']} vs {b['size']}")
        elif not math.isclose(a["error_sum"], b["error_sum"], rel_tol=1e-9):
            problems.append(f"#{i}: error sum {a['error_sum']} vs {b['error_sum']}")
        elif not math.isclose(a["score"], b["score"], rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"#{i}: score {a['score']} vs {b['score']}")
    return problems


def show_slices(slices: list[dict]) -> None:
    planted = {tuple(map(tuple, p)) for p in PLANTED}
    print(f"  {'slice':<44} {'size':>8} {'mean err':>9} {'score':>8}")
    for s in slices:
        preds = tuple(tuple(p) for p in s["predicates"])
        text = " & ".join(f"{f}=={v}" for f, v in preds)
        mark = "  <- planted" if preds in planted else ""
        mean = s["error_sum"] / s["size"]
        print(f"  {text:<44} {s['size']:>8} {mean:>9.3f} {s['score']:>8.3f}{mark}")


def fmt_row(cols: list[str], widths: list[int]) -> str:
    cells = [
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True))
    ]
    return "  ".join(cells)


# --------------------------------------------------------------------------- main


def main(quick: bool, with_package: bool) -> int:
    rows = 100_000 if quick else ROWS
    sizes = (5_000, 10_000, 20_000) if quick else PACKAGE_SIZES
    budget = 20.0 if quick else PACKAGE_BUDGET_S
    params = ", ".join(f"{k}={v}" for k, v in PARAMS.items())
    print(f"SliceLine benchmark: 12 categorical features, levels {CARDINALITIES}; {params}")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, numpy {np.__version__}"
    )
    print()

    # In a subprocess too: the peak memory of later workers would include this process's
    # (Linux keeps ru_maxrss across fork and exec).
    versus = in_subprocess("versus", rows, timeout=PACKAGE_TIMEOUT_S)
    if not versus.ok:
        print(f"floor comparison failed: {versus.error}")
        return 1
    t_mlci, t_floor = versus.result["mlci"], versus.result["floor"]
    problems = versus.result["problems"]
    ratio = t_floor / t_mlci
    print(f"against the floor ({FLOOR_NAME}) at {rows:,} rows, {FLOOR_REPEATS} runs each, "
          "interleaved, medians:")  # fmt: skip
    verdict = "met" if ratio >= TARGET_FLOOR_RATIO else "MISSED"
    target = "" if quick else f" (target at 1,000,000 rows >= {TARGET_FLOOR_RATIO:.0f}x: {verdict})"
    print(f"  mlci {t_mlci:.3f} s, floor {t_floor:.3f} s -> floor/mlci = {ratio:.2f}x{target}")
    if problems:
        print("  top slices DISAGREE with the floor:")
        for p in problems:
            print(f"    {p}")
        return 1
    print("  same top slices as the floor: predicates, sizes, error sums and scores")
    print()

    ours = in_subprocess("ours", rows, timeout=PACKAGE_TIMEOUT_S)
    if not ours.ok:
        print(f"mlci run failed: {ours.error}")
        return 1
    r = ours.result
    print(f"mlci find_slices at {rows:,} rows: {r['seconds']:.2f} s, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (peak before the search, i.e. making the data: "
          f"{r['data_rss_mb']:.0f} MB)")  # fmt: skip
    print(f"  targets: <= {TARGET_SECONDS:.0f} s -> {'met' if r['seconds'] <= TARGET_SECONDS else 'MISSED'}; "
          f"<= {TARGET_RSS_MB:.0f} MB -> {'met' if r['peak_rss_mb'] <= TARGET_RSS_MB else 'MISSED'}")  # fmt: skip
    show_slices(r["slices"])
    tiny = in_subprocess("ours", rows, PACKAGE_TIMEOUT_S, str(DEFAULT_MIN_SUPPORT))
    if tiny.ok:
        print(f"  with min_support={DEFAULT_MIN_SUPPORT} (the package's default; far more candidates "
              f"survive): {tiny.result['seconds']:.2f} s, peak RSS {tiny.result['peak_rss_mb']:.0f} MB")  # fmt: skip
    print()
    if not with_package:
        return 0

    print("sliceline package (as `pip install sliceline` installs it) at increasing sizes:")
    widths = [10, 12, 12, 14, 9, 10]
    print(fmt_row(["rows", "sliceline s", "mlci s", "sliceline MB", "ratio", "agree"], widths))
    largest: tuple[int, Outcome, Outcome] | None = None
    numba: bool | None = None
    for n in sizes:
        theirs = in_subprocess("sliceline", n, timeout=PACKAGE_TIMEOUT_S)
        if not theirs.ok:
            print(fmt_row([f"{n:,}", "failed", "", "", "", ""], widths) + f"  ({theirs.error})")
            break
        mine = ours if n == rows else in_subprocess("ours", n, timeout=PACKAGE_TIMEOUT_S)
        numba = bool(theirs.result["numba"])
        t_theirs, t_mine = theirs.result["seconds"], mine.result["seconds"]
        agree = not compare(mine.result["slices"], theirs.result["slices"])
        print(fmt_row([f"{n:,}", f"{t_theirs:.2f}", f"{t_mine:.3f}",
                       f"{theirs.result['peak_rss_mb']:.0f}", f"{t_theirs / t_mine:.0f}x",
                       "yes" if agree else "NO"], widths))  # fmt: skip
        largest = (n, theirs, mine)
        if t_theirs > budget:
            print(f"  (stopping: the last run took longer than {budget:.0f} s)")
            break
    print()

    if largest is None:
        print("the sliceline package finished no size; nothing to compare")
        return 1
    n, theirs, mine = largest
    print(f"numba active in the sliceline package: {'yes' if numba else 'no'} "
          "(numba is only installed by the optional 'sliceline[optimized]' extra)")  # fmt: skip
    problems = compare(mine.result["slices"], theirs.result["slices"])
    t_theirs, t_mine = theirs.result["seconds"], mine.result["seconds"]
    ratio = t_theirs / t_mine
    print(f"largest size the package finished: {n:,} rows")
    print(f"  sliceline {t_theirs:.2f} s vs mlci {t_mine:.3f} s -> mlci is {ratio:.0f}x faster "
          f"(target >= {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'MISSED'})")  # fmt: skip
    if problems:
        print("  top slices DISAGREE:")
        for p in problems:
            print(f"    {p}")
        return 1
    print(
        f"  top slices agree: {len(mine.result['slices'])} slices, same predicates, sizes, "
        "error sums and scores"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--no-package", action="store_true", help="skip the (slow) sliceline package comparison"
    )
    parser.add_argument("--worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        which, n = args.worker[0], int(args.worker[1])
        support = int(args.worker[2]) if len(args.worker) > 2 else None
        if which == "versus":
            t_mlci, t_floor, _, problems = versus_floor(n, FLOOR_REPEATS)
            result = {"mlci": t_mlci, "floor": t_floor, "problems": problems}
        else:
            result = run_ours(n, support) if which == "ours" else run_package(n)
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main(args.quick, not args.no_package))
