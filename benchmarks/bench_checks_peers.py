"""mlci's data checks against the peers that have them, on the same data in one run.

One churn-like dataset (reference and current, ``--rows`` each, one million by default) with
planted defects: monthly_charges up 30%, 1,000 current rows copied from the reference, a
misspelled contract category, a new payment category, 300 duplicated rows with flipped
labels, support_calls' relation to churn reversed, a constant country column, and a model
whose predictions favour one sex. Each check runs in its own process (time, peak memory, and
which defects it reports):

* drift: mlci's drift check against Evidently's DataDriftPreset;
* integrity: mlci's integrity check against Deepchecks' checks for the same defects;
* multivariate drift: mlci's domain classifier against Deepchecks' MultivariateDrift;
* fairness: mlci's per-group rates with 1,000 bootstrap replicates against fairlearn's
  MetricFrame (point values, and with its own bootstrap).

The peers need other library versions than mlci's test environment: Evidently 0.7 imports a
pandas internal that pandas 3 removed, and Deepchecks 0.19 needs numpy < 2 and an older
scikit-learn. Give their interpreters with ``--peers-python`` and ``--deepchecks-python``
(see the README); a peer that cannot run is reported as such.

    python benchmarks/bench_checks_peers.py --rows 1000000 --peers-python .venv-peers/bin/python \
        --deepchecks-python .venv-deepchecks/bin/python
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = ["tenure", "monthly_charges", "support_calls", "age", "usage_gb"]
CATEGORICAL = ["contract", "payment", "region", "sex", "country"]
FEATURES = NUMERIC + CATEGORICAL
DEFECTS = {
    "drift": ["monthly_charges"],
    "leakage": True,
    "spellings": ["contract"],
    "new_categories": ["payment"],
    "conflicting_labels": True,
    "relation_changed": ["support_calls"],
    "constant": ["country"],
    "multivariate_drift": True,
    "fairness": "sex",
}


# --------------------------------------------------------------------------- data


def make(n: int, seed: int, current: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    contract = rng.choice(
        np.array(["month-to-month", "one-year", "two-year"], dtype=object), n, p=[0.5, 0.3, 0.2]
    )
    frame: dict[str, np.ndarray] = {
        "tenure": rng.integers(0, 73, n).astype(np.float64),
        "monthly_charges": np.round(rng.lognormal(4.2, 0.3, n), 2),
        "support_calls": rng.poisson(1.5, n).astype(np.float64),
        "age": rng.integers(18, 81, n).astype(np.float64),
        "usage_gb": np.round(rng.gamma(2.0, 20.0, n), 1),
        "contract": contract,
        "payment": rng.choice(np.array(["card", "bank", "check"], dtype=object), n),
        "region": rng.choice(
            np.array(["north", "south", "east", "west", "central"], dtype=object), n
        ),
        "sex": rng.choice(np.array(["F", "M"], dtype=object), n),
        "country": np.full(n, "US", dtype=object),
    }
    calls = (-0.5 if current else 0.5) * (frame["support_calls"] - 1.5)
    logit = (
        -1.0
        - 0.03 * (frame["tenure"] - 36)
        + 0.02 * (frame["monthly_charges"] - 70)
        + calls
        + np.where(contract == "month-to-month", 0.8, 0.0)
    )
    frame["churn"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    if current:
        frame["monthly_charges"] = np.round(frame["monthly_charges"] * 1.3, 2)
    # A model that flags men more often, at the same risk.
    score = logit + np.where(frame["sex"] == "M", 0.6, 0.0) + rng.normal(0, 0.5, n)
    frame["predicted"] = (score > 0).astype(np.int64)
    return frame


def plant(reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> None:
    n = len(current["churn"])
    for name in [*FEATURES, "churn"]:
        current[name][:1000] = reference[name][:1000]  # leaked rows
    current["contract"][2000:4000] = "Month-to-month"  # misspelled
    current["payment"][4000:4500] = "crypto"  # new category
    for name in FEATURES:
        current[name][5300:5600] = current[name][5000:5300]
    current["churn"][5300:5600] = 1 - current["churn"][5000:5300]  # conflicting labels
    assert n > 6000


def write(folder: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    reference, current = make(rows, 1, False), make(rows, 2, True)
    plant(reference, current)
    for name, frame in (("reference", reference), ("current", current)):
        pq.write_table(pa.table(frame), folder / f"{name}.parquet")


def read(folder: Path, name: str) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    from mlci.data import to_numpy

    table = pq.read_table(folder / f"{name}.parquet")
    return {c: to_numpy(table.column(c))[0] for c in table.column_names}


def read_pandas(folder: Path, name: str) -> Any:
    import pandas as pd

    return pd.read_parquet(folder / f"{name}.parquet")


# --------------------------------------------------------------------------- jobs (one process each)


def job_mlci_drift(folder: Path) -> dict[str, Any]:
    from mlci.testing.data_checks import check_drift

    ref, cur = read(folder, "reference"), read(folder, "current")
    started = time.perf_counter()
    flagged = []
    for f in FEATURES:
        kind = "numeric" if f in NUMERIC else "categorical"
        if check_drift(f, ref[f], cur[f], kind).status == "failed":
            flagged.append(f)
    return {"seconds": time.perf_counter() - started, "found": {"drift": flagged}}


def job_evidently_drift(folder: Path) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref = read_pandas(folder, "reference")[FEATURES]
    cur = read_pandas(folder, "current")[FEATURES]
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    seconds = time.perf_counter() - started
    flagged, dataset = [], None
    for metric in snapshot.dict()["metrics"]:
        name = str(metric.get("metric_name") or metric.get("metric_id"))
        if name.startswith("ValueDrift("):
            column = name.split("column=")[1].split(",")[0]
            threshold = float(name.split("threshold=")[1].rstrip(")"))
            if float(metric["value"]) > threshold:
                flagged.append(column)
        elif name.startswith("DriftedColumnsCount"):
            dataset = metric["value"]
    return {"seconds": seconds, "found": {"drift": sorted(flagged), "dataset_drift": dataset}}


def job_mlci_integrity(folder: Path) -> dict[str, Any]:
    from mlci.testing import integrity as I

    ref, cur = read(folder, "reference"), read(folder, "current")
    kinds = {f: "numeric" if f in NUMERIC else "categorical" for f in FEATURES}
    categorical = [f for f in FEATURES if f in CATEGORICAL]
    started = time.perf_counter()
    found: dict[str, Any] = {}
    out = I.check_leakage(ref, cur, [*FEATURES, "churn"])
    found["leakage"] = out.details["count"]
    out = I.check_new_categories(ref, cur, categorical)
    found["new_categories"] = sorted({e["feature"] for e in out.details["examples"]})
    out = I.check_spellings({"current": cur, "reference": ref}, categorical)
    found["spellings"] = sorted({e["feature"] for e in out.details["examples"]})
    out = I.check_conflicting_labels(
        {"current": (cur, cur["churn"]), "reference": (ref, ref["churn"])}, FEATURES
    )
    found["conflicting_labels"] = out.details["count"]
    out = I.check_relation_changed(
        ref, ref["churn"], cur, cur["churn"], FEATURES, kinds, "binary", n_classes=2
    )
    found["relation_changed"] = sorted(
        e["feature"] for e in out.details["features"] if e["status"] == "changed"
    )
    out = I.check_constant({"current": cur, "reference": ref}, FEATURES)
    found["constant"] = sorted({e["feature"] for e in out.details["examples"]})
    return {"seconds": time.perf_counter() - started, "found": found}


def _deepchecks_datasets(folder: Path) -> tuple[Any, Any]:
    from deepchecks.tabular import Dataset

    columns = [*FEATURES, "churn"]
    ref = read_pandas(folder, "reference")[columns]
    cur = read_pandas(folder, "current")[columns]
    return (
        Dataset(ref, label="churn", cat_features=CATEGORICAL),
        Dataset(cur, label="churn", cat_features=CATEGORICAL),
    )


def job_deepchecks_integrity(folder: Path) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from deepchecks.tabular import checks as C

    train, test = _deepchecks_datasets(folder)
    started = time.perf_counter()
    found: dict[str, Any] = {}
    result = C.TrainTestSamplesMix().run(train, test)
    found["leakage"] = round(float(result.value["ratio"]) * len(test.data))
    result = C.NewCategoryTrainTest().run(train, test)
    table = result.value
    found["new_categories"] = sorted(str(i) for i in table.index[table["# New Categories"] > 0])
    result = C.StringMismatch().run(test)
    found["spellings"] = sorted(c for c, v in result.value["columns"].items() if v)
    result = C.ConflictingLabels().run(test)
    found["conflicting_labels"] = round(
        result.value["percent_of_conflicting_samples"] * len(test.data)
    )
    # Deepchecks' own condition: predictive power (PPS) changed by more than 0.2.
    result = C.FeatureLabelCorrelationChange().run(train, test)
    change = result.value["train-test difference"]
    found["relation_changed"] = sorted(f for f, d in change.items() if abs(d) > 0.2)
    result = C.IsSingleValue().run(test)
    found["constant"] = sorted(f for f, k in result.value.items() if k == 1)
    return {"seconds": time.perf_counter() - started, "found": found}


def job_mlci_domain(folder: Path) -> dict[str, Any]:
    from mlci.testing.domain import check_multivariate_drift

    ref, cur = read(folder, "reference"), read(folder, "current")
    kinds = {f: "numeric" if f in NUMERIC else "categorical" for f in FEATURES}
    started = time.perf_counter()
    out = check_multivariate_drift(ref, cur, FEATURES, kinds)
    return {
        "seconds": time.perf_counter() - started,
        "found": {
            "multivariate_drift": out.status == "failed",
            "auc": out.details["auc"],
            "top": [d["feature"] for d in out.details["drivers"][:2]],
        },
    }


def job_deepchecks_domain(folder: Path) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from deepchecks.tabular.checks import MultivariateDrift

    train, test = _deepchecks_datasets(folder)
    started = time.perf_counter()
    check = MultivariateDrift().add_condition_overall_drift_value_less_than()
    result = check.run(train, test)
    return {
        "seconds": time.perf_counter() - started,
        "found": {
            "multivariate_drift": not all(c.is_pass() for c in result.conditions_results),
            "value": str(result.value)[:200],
        },
    }


def job_mlci_fairness(folder: Path) -> dict[str, Any]:
    from mlci.evaluate.bootstrap import BucketBootstrap
    from mlci.evaluate.config import SensitiveFeature
    from mlci.evaluate.fairness import feature_fairness, groups_of

    cur = read(folder, "current")
    started = time.perf_counter()
    groups = groups_of(cur["sex"], "categorical", SensitiveFeature(feature="sex"))
    out = feature_fairness(
        "sex",
        groups,
        cur["churn"] == 1,
        cur["predicted"] == 1,
        None,
        weight=None,
        metrics=["selection_rate", "tpr", "fpr"],
        min_group_size=1,
        boot=BucketBootstrap(1000, seed=0),
        confidence=0.95,
    )
    dp = out.disparities["demographic_parity"].difference
    eo = out.disparities["equalized_odds"].difference
    return {
        "seconds": time.perf_counter() - started,
        "found": {
            "demographic_parity_difference": [dp.value, dp.ci_low, dp.ci_high],
            "equalized_odds_difference": [eo.value, eo.ci_low, eo.ci_high],
        },
    }


def job_fairlearn_fairness(folder: Path, n_boot: int = 0) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    cur = read_pandas(folder, "current")
    y, pred, sex = cur["churn"].to_numpy(), cur["predicted"].to_numpy(), cur["sex"].to_numpy()
    started = time.perf_counter()
    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
    }
    extra: dict[str, Any] = (
        {"n_boot": n_boot, "ci_quantiles": [0.025, 0.975], "random_state": 0} if n_boot else {}
    )
    frame = MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=sex, **extra)
    found: dict[str, Any] = {
        "demographic_parity_difference": demographic_parity_difference(
            y, pred, sensitive_features=sex
        ),
        "equalized_odds_difference": equalized_odds_difference(y, pred, sensitive_features=sex),
    }
    if n_boot:
        ci = frame.difference_ci() if callable(getattr(frame, "difference_ci", None)) else None
        found["difference_ci"] = None if ci is None else [str(c.to_dict()) for c in ci]
    return {"seconds": time.perf_counter() - started, "found": found}


JOBS = {
    "mlci drift": ("mlci", job_mlci_drift),
    "Evidently DataDriftPreset": ("peers", job_evidently_drift),
    "mlci integrity": ("mlci", job_mlci_integrity),
    "Deepchecks integrity checks": ("deepchecks", job_deepchecks_integrity),
    "mlci multivariate drift": ("mlci", job_mlci_domain),
    "Deepchecks MultivariateDrift": ("deepchecks", job_deepchecks_domain),
    "mlci fairness (1000 replicates)": ("mlci", job_mlci_fairness),
    "fairlearn MetricFrame": ("peers", job_fairlearn_fairness),
    "fairlearn MetricFrame (100 replicates)": ("peers", lambda f: job_fairlearn_fairness(f, 100)),
}


def run_job(name: str, python: str, folder: Path, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, __file__, "--job", name, "--data", str(folder)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"did not finish in {timeout:.0f} s"}
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"failed: {last[:160]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall"] = wall
    result["status"] = "ok"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "out" / "peers")
    parser.add_argument("--peers-python", default=sys.executable)
    parser.add_argument("--deepchecks-python", default=sys.executable)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--only", default=None, help="job names separated by semicolons")
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job is not None:
        result = JOBS[args.job][1](args.data)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result, default=str))
        return
    print(
        f"writing {args.rows:,} reference and {args.rows:,} current rows to {args.data}", flush=True
    )
    write(args.data, args.rows)
    pythons = {
        "mlci": sys.executable,
        "peers": args.peers_python,
        "deepchecks": args.deepchecks_python,
    }
    names = list(JOBS) if args.only is None else args.only.split(";")
    print(f"planted: {json.dumps(DEFECTS)}")
    print(f"{'check':<40} {'status':<8} {'check s':>8} {'peak MB':>8}  found")
    for name in names:
        result = run_job(name, pythons[JOBS[name][0]], args.data, args.timeout)
        if result["status"] != "ok":
            print(f"{name:<40} {result['status']}", flush=True)
            continue
        print(
            f"{name:<40} {'ok':<8} {result['seconds']:>8.1f} {result['peak_rss_mb']:>8.0f}  "
            f"{json.dumps(result['found'], default=str)[:400]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
