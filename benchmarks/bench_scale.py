"""`mlci evaluate` on one process against a Dask cluster of one and of two workers.

A synthetic credit-like task (8 numeric features and a text column) is written to Parquet in
row groups of ``--group-rows``, chunk by chunk, so the generator never holds all rows. The
candidate is a gradient-boosted ensemble and the baseline a logistic regression, both ONNX
(skl2onnx), so prediction is a real share of the work. The same `mlci evaluate` (1000
bootstrap replicates, a declared slice per region, SliceLine at level 2) then runs:

* ``local``: engine local, one process;
* ``dask-1``, ``dask-2``: engine dask with a local cluster of one or two worker processes
  (one thread each), partitions of ``--partition-rows`` rows.

Runs are interleaved and repeated (the order rotates); medians of wall time, rows per second,
the client's peak memory and the largest worker's peak memory are printed, with the speed-up
against ``local``, for every size. Every run's evaluation section must equal the local one.
The crossover is the smallest size at which ``dask-2`` beats ``local``.

Figures (shared 2-core machine, medians of 3): 250,000 rows 3.5 s local, 6.2 s dask-1, 6.4 s
dask-2; 1,000,000 rows 7.7 / 11.2 / 11.5 s; 4,000,000 rows 24.9 / 31.0 / 32.6 s (0.76x to
0.80x); workers' peak memory 402 to 456 MiB at every size, the client's 453 to 2,282 MiB. No
crossover here: prediction is about a quarter of the run and ONNX Runtime already uses both
cores in one process.

Run: ``python benchmarks/bench_scale.py [--rows 200000,1000000,4000000] [--repeat 3]``
(needs the test extra: scikit-learn, skl2onnx, dask[distributed]).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

FEATURES = [f"x{i}" for i in range(8)]
REGIONS = np.array(["north", "south", "east", "west", "centre"])


def chunk(rng: np.random.Generator, start: int, n: int, planted: bool = False) -> pa.Table:
    """Rows ``start`` to ``start + n``; ``planted``: labels flipped where region is west, x4
    positive and x5 negative (5% of the rows), where models trained without it go wrong."""
    x = rng.standard_normal((n, len(FEATURES)))
    region = rng.integers(0, len(REGIONS), n)
    logit = x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.3 * (region == 1) - 0.5
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    if planted:
        flip = (REGIONS[region] == "west") & (x[:, 4] > 0) & (x[:, 5] < 0)
        y[flip] = 1 - y[flip]
    columns = {name: x[:, i] for i, name in enumerate(FEATURES)}
    return pa.table(
        {"id": np.arange(start, start + n), **columns, "region": REGIONS[region], "y": y}
    )


def write_data(path: Path, rows: int, group_rows: int, seed: int, planted: bool = False) -> None:
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, group_rows):
        table = chunk(rng, start, min(group_rows, rows - start), planted)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=group_rows)
    assert writer is not None
    writer.close()


def train_models(root: Path) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = chunk(np.random.default_rng(99), 0, 20_000).to_pandas()
    frame, y = train[[*FEATURES, "region"]], train["y"]
    frame[FEATURES] = frame[FEATURES].astype(np.float32)
    encode = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="ignore"), ["region"])],
        remainder="passthrough",
        sparse_threshold=0.0,
    )
    inputs = [(c, FloatTensorType([None, 1])) for c in FEATURES]
    inputs.append(("region", StringTensorType([None, 1])))
    candidate = GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=0)
    baseline = LogisticRegression(max_iter=1000)
    for name, classifier in (("candidate", candidate), ("baseline", baseline)):
        model = make_pipeline(encode, classifier).fit(frame, y)
        options = {id(classifier): {"zipmap": False}}
        onnx = to_onnx(model, initial_types=inputs, options=options)
        (root / f"{name}.onnx").write_bytes(onnx.SerializeToString())


def config(root: Path, engine: dict[str, object]) -> Path:
    path = root / f"mlci-{engine.get('kind')}-{engine.get('workers', 0)}.yaml"
    document = {
        "version": 1,
        "data": {"path": "data.parquet", "target": "y", "id": "id"},
        "models": [{"name": "m", "path": "candidate.onnx", "baseline": {"path": "baseline.onnx"}}],
        "evaluation": {"bootstrap": 1000, "slices": [{"feature": "region"}]},
        "engine": engine,
    }
    path.write_text(yaml.safe_dump(document))
    return path


PEAK = re.compile(r"peak worker memory (\d+) MiB")


def run(config_path: Path, out: Path) -> tuple[float, float, float | None, dict[str, object]]:
    """Wall seconds, client peak MiB, largest worker peak MiB, and the evaluation section."""
    script = (
        "import resource, sys; from mlci.commands import main; code = main(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
        "sys.exit(code)"
    )
    argv = [sys.executable, "-c", script, "evaluate", "-c", str(config_path), "-o", str(out)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{config_path.name} failed:\n{done.stderr[-3000:]}")
    client = int(done.stderr.rsplit("PEAK", 1)[1].split()[0]) / 1024
    found = PEAK.search(done.stderr)
    worker = float(found[1]) if found else None
    evaluation = json.loads((out / "results.json").read_text())["evaluation"]
    return wall, client, worker, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000,1000000,4000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--group-rows", type=int, default=100_000)
    parser.add_argument("--partition-rows", type=int, default=250_000)
    args = parser.parse_args()
    sizes = [int(v) for v in args.rows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_models(root)
        engines = {
            "local": {"kind": "local"},
            "dask-1": {"kind": "dask", "workers": 1, "partition_rows": args.partition_rows},
            "dask-2": {"kind": "dask", "workers": 2, "partition_rows": args.partition_rows},
        }
        configs = {name: config(root, engine) for name, engine in engines.items()}
        crossover = None
        print(f"{'rows':>10} {'engine':>7} {'wall s':>8} {'rows/s':>10} {'vs local':>9} "
              f"{'client MiB':>11} {'worker MiB':>11}")  # fmt: skip
        for rows in sizes:
            write_data(root / "data.parquet", rows, args.group_rows, seed=rows)
            times: dict[str, list[float]] = {name: [] for name in engines}
            client: dict[str, list[float]] = {name: [] for name in engines}
            worker: dict[str, list[float]] = {name: [] for name in engines}
            reference = None
            names = list(engines)
            for r in range(args.repeat):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    wall, c, w, evaluation = run(configs[name], root / f"out-{name}")
                    if reference is None:
                        reference = evaluation
                    elif evaluation != reference:
                        raise SystemExit(f"{name} at {rows} rows: the evaluation differs")
                    times[name].append(wall)
                    client[name].append(c)
                    if w is not None:
                        worker[name].append(w)
            local = statistics.median(times["local"])
            for name in names:
                wall = statistics.median(times[name])
                peak = f"{max(worker[name]):.0f}" if worker[name] else "-"
                print(f"{rows:>10} {name:>7} {wall:>8.2f} {rows / wall:>10.0f} "
                      f"{local / wall:>8.2f}x {max(client[name]):>11.0f} {peak:>11}")  # fmt: skip
            if crossover is None and statistics.median(times["dask-2"]) < local:
                crossover = rows
        print(f"crossover (dask-2 faster than local): {crossover or 'not reached'} rows")


if __name__ == "__main__":
    main()
