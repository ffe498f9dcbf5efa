"""Twenty declarative model tests and data checks on 100,000 rows with an ONNX model.

Usage::

    python benchmarks/bench_model_tests.py [--rows 100000] [--repeat 3]

Builds a project in a temporary folder (data, a scikit-learn pipeline exported to ONNX, a
reference dataset, and mlci.yaml with twenty entries under ``tests.checks``), then times the
tests stage the way ``mlci test`` runs it: reading the data, loading the model, predicting once,
and every test. Prints the best wall time of ``--repeat`` runs and the per-test breakdown of
that run. The target is at most 10 s for 100,000 rows.

On the development machine (shared CPU runner), 100,000 rows: 0.34 s best of 3 (0.34 to 0.45 s),
of which 0.22 s in the tests themselves; the rest is reading the CSV and predicting once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from project import make_frame, train_onnx, write_csv  # noqa: E402

TESTS = """\
tests:
  checks:
    - {kind: metric, metric: roc_auc, min: 0.6}
    - {kind: metric, metric: accuracy, min: 0.5, slice: region=north}
    - {kind: metric, metric: log_loss, max: 1.0, where: "age < 40"}
    - {kind: metric, metric: f1, min: 0.1, slice: long-tenure}
    - {kind: invariance, feature: id}
    - {kind: invariance, feature: region, within: tenure, tolerance: 0.5}
    - {kind: invariance, feature: tenure, perturb: replace, value: 10, tolerance: 1.0}
    - {kind: invariance, feature: region, perturb: replace, value: east, tolerance: 1.0, where: "age > 60"}
    - {kind: directional, feature: income}
    - {kind: directional, feature: tenure}
    - {kind: directional, feature: age, direction: decreasing, step: 5}
    - {kind: directional, feature: income, slice: region=south, step: 1000}
    - {kind: robustness, noise: 0.05}
    - {kind: robustness, features: [income], noise: 0.1, max_rate: 0.1}
    - {kind: robustness, noise: 0.02, where: "tenure < 5"}
    - {kind: contract}
    - {kind: schema}
    - {kind: missing}
    - {kind: range, margin: 0.1}
    - {kind: drift}
"""


def build(root: Path, rows: int) -> Path:
    # The same generator and pipeline as the test suite's project (tests/project.py).
    write_csv(root / "data" / "eval.csv", make_frame(rows, seed=2))
    write_csv(root / "data" / "reference.csv", make_frame(rows // 2, seed=3))
    train_onnx(
        make_frame(20_000, seed=1), root / "models" / "candidate.onnx", c=1.0, use_region=True
    )
    config = root / "mlci.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            version: 1
            data:
              path: data/eval.csv
              target: y
              id: id
              reference: data/reference.csv
            models:
              - name: bench
                path: models/candidate.onnx
            evaluation:
              slices:
                - feature: region
                - name: long-tenure
                  where: "tenure >= 20"
            stages: [tests]
            """
        )
        + TESTS
    )
    return config


def run_once(config: Path, out: Path) -> tuple[float, dict]:
    from mlci.check import check
    from mlci.config import load_config

    started = time.perf_counter()
    loaded = load_config(config)
    (run,) = check(loaded, out, lambda message: None, ["tests"])
    return time.perf_counter() - started, run.document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlci-bench-tests-") as tmp:
        root = Path(tmp)
        config = build(root / "project", args.rows)
        runs = [run_once(config, root / f"out{i}") for i in range(args.repeat)]
    elapsed, document = min(runs, key=lambda r: r[0])
    section = document["tests"]
    entries = len(TESTS.strip().splitlines()) - 2
    print(
        f"{entries} declarative tests ({section['summary']['total']} results) on "
        f"{document['data']['rows']:,} rows "
        f"with an ONNX model: best of {args.repeat}: {elapsed:.2f} s "
        f"(all runs: {', '.join(f'{r[0]:.2f}' for r in runs)} s; target <= 10 s)"
    )
    stage = document["stages"]["tests"]["duration_s"]
    tests_total = sum(r["duration_s"] for r in section["results"])
    print(
        f"  tests stage {stage:.2f} s, of which the tests themselves {tests_total:.2f} s "
        f"(the rest: predicting once and loading the reference)"
    )
    print(f"  {'test':<48} {'status':<8} {'seconds':>8}")
    for r in sorted(section["results"], key=lambda r: -r["duration_s"]):
        print(f"  {r['id']:<48} {r['status']:<8} {r['duration_s']:>8.3f}")


if __name__ == "__main__":
    main()
