"""mlci watch's drift on 10 million logged rows against Evidently's data drift preset.

    pip install -e '.[bench]'          # evidently (with pandas < 3)
    python benchmarks/bench_watch.py [--rows 10000000] [--reference 100000] [--repeats 2]

The data: 8 numeric and 4 categorical features; the reference holds ``--reference`` rows, the
traffic ``--rows`` rows written as one Parquet sample file in the layout python -m mlci.serve
writes (request_id, row, timestamp, inputs.*). Two features drift (numeric ``n0``: mean +0.3
standard deviations; categorical ``c0``: one category's share from 25% to 45%), the others do
not.

Each method runs in its own process (so its peak memory is its own), alternating, repeated:

* mlci: read the sample (mlci.watch.sample.read_sample: every column through mlci's data
  conversion), then the watch's drift of one window holding every row (PSI, Kolmogorov-Smirnov
  or chi-square per feature, Benjamini-Hochberg, the PSI >= 0.1 decision);
* Evidently 0.7: pandas.read_parquet of the same file, then Report([DataDriftPreset()]) with
  its defaults (above 1,000 rows: normed Wasserstein distance for numeric features,
  Jensen-Shannon distance for categorical ones, threshold 0.1);
* floor: pyarrow reads the columns and scipy's ks_2samp / chi2_contingency run on them
  directly, nothing else (the least any exhaustive test of every row can do).

Printed: seconds and peak resident memory (medians), and the features each flagged.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUMERIC = [f"n{i}" for i in range(8)]
CATEGORICAL = [f"c{i}" for i in range(4)]


def generate(folder: Path, rows: int, reference: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)

    def frame(n: int, shifted: bool) -> dict[str, object]:
        columns: dict[str, object] = {}
        for i, name in enumerate(NUMERIC):
            values = rng.normal(i, 1 + i / 4, n) if i % 2 else rng.lognormal(1, 0.5, n)
            if shifted and name == "n0":
                values = values + 0.3 * values.std()
            columns[name] = values
        for i, name in enumerate(CATEGORICAL):
            cats = [f"v{j}" for j in range(3 + i)]
            p = np.full(len(cats), 1 / len(cats))
            if name == "c0":
                p = (
                    np.array([0.25, 0.375, 0.375])
                    if not shifted
                    else np.array([0.45, 0.275, 0.275])
                )
            columns[name] = pa.DictionaryArray.from_arrays(
                pa.array(rng.choice(len(cats), n, p=p), pa.int32()), pa.array(cats)
            )
        return columns

    ref = frame(reference, False)
    pq.write_table(pa.table(ref), folder / "reference.parquet")
    cur = frame(rows, True)
    start = 1_764_547_200_000_000
    table = pa.table(
        {
            "request_id": pa.array(np.arange(rows).astype(str)),
            "row": pa.array(np.zeros(rows, dtype=np.int64)),
            "timestamp": pa.array(start + np.arange(rows) * 1000, pa.timestamp("us", tz="UTC")),
            **{f"inputs.{k}": v for k, v in cur.items()},
        }
    )
    (folder / "sample").mkdir()
    pq.write_table(table, folder / "sample" / "mlci-sample-bench.parquet", row_group_size=1 << 20)


def run_mlci(folder: Path) -> list[str]:
    from mlci.data import read_columns
    from mlci.watch.drift import SignificantAndLarge, window_drift
    from mlci.watch.sample import find_files, read_sample

    _, _, reference, kinds = read_columns(folder / "reference.parquet")
    sample = read_sample(find_files(folder / "sample"))
    found = window_drift(reference, sample.inputs, kinds, NUMERIC + CATEGORICAL,
                         SignificantAndLarge(0.05, 0.1))  # fmt: skip
    return [d.feature for d in found if d.drifted]


def run_evidently(folder: Path) -> list[str]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(
        folder / "sample" / "mlci-sample-bench.parquet",
        columns=[f"inputs.{c}" for c in NUMERIC + CATEGORICAL],
    )
    current.columns = [c.split(".", 1)[1] for c in current.columns]
    for c in CATEGORICAL:
        reference[c] = reference[c].astype(str)
        current[c] = current[c].astype(str)
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift") and metric["value"] >= config["threshold"]:
            flagged.append(config["column"])
    return flagged


def run_floor(folder: Path) -> list[str]:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from scipy.stats import chi2_contingency, ks_2samp

    reference = pq.read_table(folder / "reference.parquet")
    current = pq.read_table(
        folder / "sample" / "mlci-sample-bench.parquet",
        columns=[f"inputs.{c}" for c in NUMERIC + CATEGORICAL],
    )
    p = {}
    for c in NUMERIC:
        p[c] = ks_2samp(reference[c].to_numpy(), current[f"inputs.{c}"].to_numpy()).pvalue
    for c in CATEGORICAL:
        ref = pc.value_counts(reference[c].combine_chunks().dictionary_decode())
        cur = pc.value_counts(current[f"inputs.{c}"].combine_chunks().dictionary_decode())
        a = dict(zip(ref.field("values").to_pylist(), ref.field("counts").to_pylist(), strict=True))
        b = dict(zip(cur.field("values").to_pylist(), cur.field("counts").to_pylist(), strict=True))
        keys = sorted(set(a) | set(b))
        table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]])
        p[c] = chi2_contingency(table, correction=False)[1]
    return [c for c, v in p.items() if v < 0.05 / len(p)]


METHODS = {"mlci": run_mlci, "evidently": run_evidently, "floor": run_floor}


def child(method: str, folder: Path) -> None:
    start = time.perf_counter()
    flagged = METHODS[method](folder)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "flagged": sorted(flagged)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reference", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        generate(folder, args.rows, args.reference)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        results: dict[str, list[dict[str, object]]] = {m: [] for m in args.methods}
        for r in range(args.repeats):
            order = args.methods[r % len(args.methods) :] + args.methods[: r % len(args.methods)]
            for method in order:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", method, str(folder)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(f"{method} failed:\n{done.stderr[-2000:]}")
                results[method].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(method, results[method][-1], flush=True)
    print(f"\n{args.rows:,} rows against {args.reference:,}; medians of {args.repeats}")
    print("| method | seconds | peak MB | flagged | time ratio to mlci |")
    print("|---|---|---|---|---|")
    base = statistics.median(
        float(x["seconds"]) for x in results.get("mlci", results[args.methods[0]])
    )  # type: ignore[arg-type]
    for method, runs in results.items():
        seconds = statistics.median(float(x["seconds"]) for x in runs)  # type: ignore[arg-type]
        peak = statistics.median(float(x["peak_mb"]) for x in runs)  # type: ignore[arg-type]
        print(f"| {method} | {seconds:.1f} | {peak:,.0f} | {', '.join(runs[0]['flagged'])} | "  # type: ignore[arg-type]
              f"{seconds / base:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
