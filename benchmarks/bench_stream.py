"""`mlci evaluate` folded batch by batch (one process, or Dask workers) against all rows at once.

The data and models are bench_scale.py's: a synthetic credit-like task (8 numeric features,
a text column) written to Parquet row group by row group, so the generator never holds all
rows; an ONNX gradient-boosted candidate and an ONNX logistic baseline. The evaluation has
1000 bootstrap replicates, a declared slice per region, five bins of one feature and a
``where`` slice; SliceLine is off unless ``--discover LEVEL`` turns it on with that maximum
level on the candidate's own errors (a Dask fold's client searches what its workers send),
and the data get a planted slice (labels flipped where region is west, x4 > 0 and x5 < 0: 5%
of the rows) that SliceLine should find with three predicates.

Engines: ``local`` (every row in memory), ``stream`` (one process, batch by batch) and
``dask-1``, ``dask-2`` (engine dask with fold: true on a local cluster of one or two worker
processes: workers fold their partitions, the client merges). Each size is run by every
engine, interleaved and repeated; printed: medians of wall time and rows per second, the peak
resident memory of the client process and of the largest worker, and the speed ratio against
``stream``. ``local`` is skipped above ``--local-max`` rows, where it would need more memory
than the machine has (about 300 MB per million rows). Non-ranking metrics must agree with
``local`` to 1e-9 and ROC AUC to the sketch's reported bound; the folded engines must agree
with each other exactly. The crossover is the smallest size at which ``dask-2`` beats
``stream``.

Figures: see the README ("Evaluation beyond one job").

Run: ``python benchmarks/bench_stream.py [--rows 1000000,10000000,50000000]
[--engines local,stream,dask-1,dask-2] [--repeat 1] [--discover 3]`` (needs the test extra: scikit-learn,
skl2onnx, dask[distributed]).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import run, train_models, write_data  # noqa: E402


def config(root: Path, name: str, engine: dict[str, object], discover: int) -> Path:
    path = root / f"mlci-{name}.yaml"
    document = {
        "version": 1,
        "data": {"path": "data.parquet", "target": "y", "id": "id"},
        "models": [{"name": "m", "path": "candidate.onnx", "baseline": {"path": "baseline.onnx"}}],
        "evaluation": {
            "bootstrap": 1000,
            # The candidate's own errors, on the features of the planted slice and one more,
            # split at their medians (three predicates of five bins each would be 0.8% of the
            # rows, under SliceLine's default support of 1%).
            "discover": {
                "enabled": discover > 0,
                "max_level": max(discover, 1),
                "error": "model",
                "features": ["region", "x4", "x5", "x6"],
                "numeric_bins": 2,
            },
            "slices": [
                {"feature": "region"},
                {"feature": "x0", "bins": [-10, -1.5, -0.5, 0.5, 1.5, 10]},
                {"name": "tail", "where": "x1 > 2 and region == 'north'"},
            ],
        },
        "engine": engine,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def agree(local: dict[str, Any], stream: dict[str, Any]) -> float:
    """The largest ROC AUC difference; SystemExit when any other number differs."""
    worst = 0.0

    def walk(a: Any, b: Any, path: str, ranking: bool) -> None:
        nonlocal worst
        if isinstance(a, dict):
            for key in a:
                if key in b and key != "roc_auc_sketch_error":
                    walk(a[key], b[key], f"{path}.{key}", ranking or key in RANKING)
        elif isinstance(a, list):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]", ranking)
        elif isinstance(a, float) and isinstance(b, float):
            if ranking or path.endswith(("q_value", "reason")):
                if ".roc_auc.value" in path:
                    worst = max(worst, abs(a - b))
            elif abs(a - b) > 1e-9 * max(1.0, abs(a)):
                raise SystemExit(f"{path}: local {a!r}, stream {b!r}")
        elif not ranking and not path.endswith(("reason", "q_value", "flagged")) and a != b:
            raise SystemExit(f"{path}: local {a!r}, stream {b!r}")

    walk(local, stream, "", False)
    return worst


RANKING = ("roc_auc", "pr_auc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000,100000000")
    parser.add_argument("--engines", default="local,stream,dask-1,dask-2")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--group-rows", type=int, default=500_000)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--local-max", type=int, default=10_000_000)
    parser.add_argument("--discover", type=int, default=0, help="SliceLine's max level (0: off)")
    args = parser.parse_args()
    sizes = [int(v) for v in args.rows.split(",")]
    batch = args.batch_rows
    engines = {
        "local": {"kind": "local"},
        "stream": {"kind": "stream", "partition_rows": batch},
        "dask-1": {"kind": "dask", "fold": True, "workers": 1, "partition_rows": batch},
        "dask-2": {"kind": "dask", "fold": True, "workers": 2, "partition_rows": batch},
    }
    chosen = args.engines.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_models(root)
        configs = {name: config(root, name, engines[name], args.discover) for name in chosen}
        crossover = None
        print(f"{'rows':>11} {'engine':>7} {'wall s':>8} {'rows/s':>10} {'client MiB':>11} "
              f"{'worker MiB':>11} {'vs stream':>10}")  # fmt: skip
        for rows in sizes:
            write_data(root / "data.parquet", rows, args.group_rows, rows, args.discover > 0)
            names = [n for n in chosen if n != "local" or rows <= args.local_max]
            times: dict[str, list[float]] = {name: [] for name in names}
            peaks: dict[str, list[float]] = {name: [] for name in names}
            workers: dict[str, list[float]] = {name: [] for name in names}
            sections: dict[str, dict[str, Any]] = {}
            for r in range(args.repeat):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    wall, peak, worker, sections[name] = run(configs[name], root / f"out-{name}")
                    times[name].append(wall)
                    peaks[name].append(peak)
                    if worker is not None:
                        workers[name].append(worker)
            folded = [n for n in names if n != "local"]
            for name in folded[1:]:
                if sections[name] != sections[folded[0]]:
                    raise SystemExit(f"{name} at {rows} rows: differs from {folded[0]}")
            note = ""
            if "local" in sections and folded:
                gap = agree(sections["local"], sections[folded[0]])
                bound = sections[folded[0]]["roc_auc_sketch_error"]
                note = f"  (ROC AUC within {gap:.2g} of exact; reported bound {bound:.2g})"
            base = statistics.median(times["stream"]) if "stream" in times else None
            for name in names:
                wall = statistics.median(times[name])
                ratio = f"{base / wall:>9.2f}x" if base else f"{'-':>10}"
                worker = f"{max(workers[name]):.0f}" if workers[name] else "-"
                print(f"{rows:>11} {name:>7} {wall:>8.1f} {rows / wall:>10.0f} "
                      f"{max(peaks[name]):>11.0f} {worker:>11} {ratio}")  # fmt: skip
            if note:
                print(note)
            shown = sections[(folded or names)[0]]
            if shown.get("discovery"):
                searched = shown["discovery"]["rows_searched"]
                levels = [
                    s["name"].count("=") for s in shown["slices"] if s["source"] != "declared"
                ]
                print(f"  SliceLine: {len(levels)} slices found on {searched:,} rows searched; "
                      f"predicates per slice: {levels}")  # fmt: skip
            if crossover is None and base and "dask-2" in times:
                if statistics.median(times["dask-2"]) < base:
                    crossover = rows
            (root / "data.parquet").unlink()
        if "dask-2" in chosen and "stream" in chosen:
            print(f"crossover (dask-2 faster than stream): {crossover or 'not reached'} rows")


if __name__ == "__main__":
    main()
