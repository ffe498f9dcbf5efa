"""Generate the fixture results documents the golden tests render.

Run ``python tests/golden/make_fixtures.py`` after changing it; the JSON files are committed.
Everything is deterministic: fixed numbers, fixed timestamps, no randomness.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from mlci.gate.config import GateConfig
from mlci.gate.rules import evaluate_gate
from mlci.results import Results, dumps

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"

MODEL_SHA = "a3" * 32
BASE_SHA = "b4" * 32
DATA_SHA = "c5" * 32
CONFIG_SHA = "d6" * 32
IMAGE_DIGEST = "sha256:" + "e7" * 32

METRICS = {  # name: (candidate, baseline, half-width of the delta interval)
    "accuracy": (0.861, 0.842, 0.011),
    "roc_auc": (0.912, 0.884, 0.009),
    "log_loss": (0.321, 0.356, 0.012),
    "brier": (0.101, 0.112, 0.004),
}
HIGHER = {"accuracy": True, "roc_auc": True, "log_loss": False, "brier": False}


def estimate(value: float, half: float) -> dict[str, float]:
    return {
        "value": round(value, 6),
        "ci_low": round(value - half, 6),
        "ci_high": round(value + half, 6),
    }


def delta(metric: str, value: float, half: float) -> dict[str, Any]:
    low, high = value - half, value + half
    sign = 1 if HIGHER[metric] else -1
    lo, hi = sorted((sign * low, sign * high))
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no detectable difference"
    return {
        "value": round(value, 6),
        "ci_low": round(low, 6),
        "ci_high": round(high, 6),
        "p_value": 0.001 if verdict != "no detectable difference" else 0.4,
        "verdict": verdict,
    }


def a_slice(
    name: str, source: str, size: int, shift: float, half: float, flagged: bool
) -> dict[str, Any]:
    cand = {
        m: estimate(c + shift * (1 if HIGHER[m] else -1), 0.02) for m, (c, _, _) in METRICS.items()
    }
    base = {m: estimate(b, 0.02) for m, (_, b, _) in METRICS.items()}
    deltas = {m: delta(m, cand[m]["value"] - base[m]["value"], half) for m in METRICS}
    return {
        "name": name,
        "definition": name.replace("=", " == "),
        "source": source,
        "size": size,
        "status": "evaluated",
        "metrics": {"candidate": cand, "baseline": base},
        "delta": deltas,
        "flagged": flagged,
        "reason": f"roc_auc {deltas['roc_auc']['value']:+.3g} against the baseline"
        if flagged
        else None,
        "q_value": 0.002 if flagged else 0.6,
        "vs_rest": None,
        "sliceline": None,
    }


def evaluation(slices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "task": "binary",
        "classes": [0, 1],
        "primary_metric": "roc_auc",
        "confidence": 0.95,
        "interval_method": "poisson-bootstrap",
        "bootstrap": 1000,
        "seed": 0,
        "fdr": 0.05,
        "min_slice_size": 50,
        "metrics": {
            "candidate": {m: estimate(c, 0.01) for m, (c, _, _) in METRICS.items()},
            "baseline": {m: estimate(b, 0.01) for m, (_, b, _) in METRICS.items()},
            "delta": {m: delta(m, c - b, h) for m, (c, b, h) in METRICS.items()},
        },
        "mcnemar": {"candidate_only": 120, "baseline_only": 80, "p_value": 0.0057},
        "slices": slices,
        "discovery": None,
        "calibration": {
            "kind": "positive_class",
            "bins": 5,
            "candidate": [
                {
                    "lower": i / 5,
                    "upper": (i + 1) / 5,
                    "weight": 100.0 * (5 - i),
                    "mean_predicted": i / 5 + 0.1,
                    "observed": i / 5 + 0.08,
                }
                for i in range(5)
            ],
            "baseline": [
                {
                    "lower": i / 5,
                    "upper": (i + 1) / 5,
                    "weight": 100.0 * (5 - i),
                    "mean_predicted": i / 5 + 0.1,
                    "observed": min(1.0, i / 5 + 0.16),
                }
                for i in range(5)
            ],
        },
    }


def model(name: str, sha: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "path": path,
        "format": "onnx",
        "sha256": sha,
        "size_bytes": 123456,
        "task": "binary",
        "classes": [0, 1],
        "inputs": [
            {"name": "age", "dtype": "float32", "shape": [None, 1]},
            {"name": "region", "dtype": "string", "shape": [None, 1]},
        ],
    }


def base_document() -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "mlci_version": "0.1.0",
        "created": "2026-01-15T12:00:00Z",
        "config": {"path": "mlci.yaml", "sha256": CONFIG_SHA},
        "model": model("credit-default", MODEL_SHA, "models/candidate.onnx"),
        "baseline": model("credit-default (baseline)", BASE_SHA, "models/baseline.onnx"),
        "data": {
            "path": "data/eval.csv",
            "sha256": DATA_SHA,
            "rows": 20000,
            "format": "csv",
            "target": "defaulted",
            "features": ["age", "region"],
            "id": "application_id",
            "weight": None,
        },
        "conversion": None,
        "stages": {
            "evaluate": {"status": "ran", "reason": None, "duration_s": 3.2},
            "tests": {"status": "ran", "reason": None, "duration_s": 1.1},
            "benchmark": {"status": "ran", "reason": None, "duration_s": 9.5},
        },
    }


def tests_section(failing: bool) -> dict[str, Any]:
    results = [
        {
            "id": "invariance:application_id",
            "kind": "invariance",
            "status": "passed",
            "message": "predictions do not depend on application_id",
            "observed": 0.0,
            "threshold": 0.0,
            "duration_s": 0.2,
            "required": True,
            "details": {"examples": [], "count": 0},
        },
        {
            "id": "metric:roc_auc",
            "kind": "metric",
            "status": "passed",
            "message": "roc_auc 0.912 >= 0.85",
            "observed": 0.912,
            "threshold": 0.85,
            "duration_s": 0.1,
            "required": True,
            "details": {"examples": [], "count": 0},
        },
        {
            "id": "directional:income",
            "kind": "directional",
            "status": "failed" if failing else "passed",
            "message": "risk rose with income for 12% of rows"
            if failing
            else "risk falls with income",
            "observed": 0.12 if failing else 0.0,
            "threshold": 0.01,
            "duration_s": 0.3,
            "required": True,
            "details": {"examples": [], "count": 0},
        },
        {
            "id": "drift:debt_to_income",
            "kind": "drift",
            "status": "skipped",
            "message": "no reference data",
            "observed": None,
            "threshold": 0.2,
            "duration_s": 0.0,
            "required": False,
            "details": {"examples": [], "count": 0},
        },
    ]
    summary = {
        "total": 4,
        "passed": 2 if failing else 3,
        "failed": 1 if failing else 0,
        "error": 0,
        "skipped": 1,
    }
    return {"summary": summary, "junit": "junit.xml", "results": results}


def scenario(
    name: str, kind: str, p50: float, p99: float, ratio: float, verdict: str
) -> dict[str, Any]:
    def lat(p50: float, p99: float) -> dict[str, Any]:
        return {
            "p50": estimate(p50, p50 * 0.02),
            "p99": estimate(p99, p99 * 0.05),
            "mean": estimate(p50 * 1.1, p50 * 0.02),
        }

    return {
        "name": name,
        "kind": kind,
        "status": "ok",
        "reason": None,
        "settings": {
            "batch_size": 1,
            "min_queries": 1000,
            "min_queries_rule": "early stopping, p99",
            "blocks": {"queries": 100, "seconds": 0.5, "min": 10, "rounds": 20},
            "confidence": 0.95,
            "copies": "none (CPU)",
        },
        "candidate": {
            "queries": 2000,
            "duration_s": 4.0,
            "latency_ms": lat(p50, p99),
            "throughput_per_s": None,
        },
        "baseline": {
            "queries": 2000,
            "duration_s": 4.0,
            "latency_ms": lat(p50 / ratio, p99 / ratio),
            "throughput_per_s": None,
        },
        "comparison": [
            {
                "metric": "p99",
                "ratio": estimate(ratio, 0.03),
                "max_regression": 0.1,
                "verdict": verdict,
            }
        ],
        "budgets": [
            {
                "metric": "p99",
                "limit_ms": 5.0,
                "observed_ms": p99,
                "upper_ms": p99 * 1.05,
                "basis": "upper confidence bound",
                "met": p99 <= 5.0,
            }
        ],
    }


def benchmark_section(ratio: float = 1.01) -> dict[str, Any]:
    verdict = "slower" if ratio - 0.03 > 1 else "no detectable difference"
    return {
        "summary": {
            "scenarios": 2,
            "slower": int(verdict == "slower") * 2,
            "faster": 0,
            "no_difference": int(verdict != "slower") * 2,
            "inconclusive": 0,
        },
        "device": {
            "requested": "auto",
            "selected": "cpu",
            "reason": "no GPU found",
            "providers": ["CPUExecutionProvider"],
        },
        "fingerprint": {
            "cpu": "Example CPU @ 3.0GHz",
            "cores": 4,
            "gpu": None,
            "driver": None,
            "cuda": None,
            "onnxruntime": "1.20.0",
            "providers": ["CPUExecutionProvider"],
            "python": "3.11.9",
            "platform": "Linux-x86_64",
        },
        "models": {
            "candidate": {"load_s": 0.05, "peak_memory_bytes": 1000000, "size_bytes": 123456},
            "baseline": {"load_s": 0.04, "peak_memory_bytes": 900000, "size_bytes": 100000},
        },
        "scenarios": [
            scenario("single-stream", "single_stream", 0.8, 1.9, ratio, verdict),
            scenario("offline", "offline", 2.5, 4.1, ratio, verdict),
        ],
    }


GATE = {
    "rules": [
        {"kind": "metric", "metric": "roc_auc", "min": 0.85},
        {"kind": "non_inferiority", "metric": "roc_auc", "margin": 0.01},
        {"kind": "slices", "margin": 0.02},
        {"kind": "latency", "metric": "p99", "budget_ms": 5, "max_regression": 0.1},
        {"kind": "tests"},
        {"kind": "supply_chain", "required": False},
        {
            "id": "accuracy-on-north",
            "kind": "metric",
            "metric": "accuracy",
            "slice": "region=north",
            "min": 0.8,
            "required": False,
        },
    ]
}


def canary_section() -> dict[str, Any]:
    """A canary at 10% of traffic judged by mlci's own judge on fixed samples."""
    from mlci.canary.judge import MetricSpec, decide, judge_metric
    from mlci.results.canary import Shadow

    errors = MetricSpec(
        "error rate", "live", tolerance=0.0, tolerance_abs=0.01, critical=True, unit="ratio",
        query="(sum(rate(mlci_serve_inference_errors_total{ {{target}} }[{{interval}}])) or "
        "vector(0)) / sum(rate(mlci_serve_inference_requests_total{ {{target}} }[{{interval}}]))",
    )  # fmt: skip
    p99 = MetricSpec("p99 latency", "live", tolerance=0.1, unit="s")
    shadow_latency = MetricSpec("shadow latency", "shadow", tolerance=0.2, unit="s")
    judgements = [
        judge_metric(
            errors,
            [0.004, 0.006, 0.005, 0.003, 0.0052, 0.0041, 0.0062, 0.0049, 0.0038, 0.0055],
            [0.0045, 0.007, 0.0031, 0.0058, 0.0049, 0.0063, 0.0035, 0.0044, 0.0051, 0.0047],
            0.95,
        ),
        judge_metric(
            p99,
            [0.0201, 0.0213, 0.0198, 0.0224, 0.0207, 0.0219, 0.0202, 0.0211, 0.0196, 0.0208],
            [0.0209, 0.0221, 0.0203, 0.0217, 0.0214, 0.0226, 0.0199, 0.0212, 0.0205, 0.0218],
            0.95,
        ),
        judge_metric(
            shadow_latency,
            [0.00112, 0.00108, 0.00121, 0.00115, 0.00109, 0.00117, 0.00111, 0.00113],
            [0.00114, 0.00111, 0.00118, 0.00119, 0.00107, 0.00116, 0.00112, 0.00115],
            0.95,
            keep_samples=False,
        ),
    ]
    side = {
        "requests": 5000,
        "errors": 0,
        "error_rate": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.000768},
    }
    agreement = [
        ("all rows", "", 5000, 31, (0.0062, 0.00437, 0.00879), (0.0081, 0.0074, 0.0088), "pass"),
        ("region=north", "region == 'north'", 1290, 9, (0.00698, 0.00368, 0.01321), (0.0093, 0.0079, 0.0108), "pass"),
        ("channel=broker", "channel == 'broker'", 640, 11, (0.01719, 0.00963, 0.03047), (0.0122, 0.0098, 0.0147), "inconclusive"),
    ]  # fmt: skip
    shadow = Shadow.model_validate(
        {
            "source": "data", "source_path": "data/eval.csv", "requests": 5000, "rows": 5000,
            "batch": 1, "rate": 200.0, "concurrency": 4, "duration_s": 25.2, "throughput": 198.4,
            "primary": side, "canary": side,
            "error_rate_delta": {"value": 0.0, "ci_low": -0.000768, "ci_high": 0.000768},
            "max_error_increase": 0.01, "errors_status": "pass",
            "errors_explanation": "errors: canary 0 and primary 0 of 5,000 requests, a change of "
            "0.00% [-0.08%, 0.08%] against the 1.00% allowed: within it.",
            "agreement": [
                {
                    "name": name, "definition": definition, "rows": rows, "label_flips": flips,
                    "flip_rate": dict(zip(("value", "ci_low", "ci_high"), rate, strict=True)),
                    "mean_abs_diff": dict(zip(("value", "ci_low", "ci_high"), mad, strict=True)),
                    "max_abs_diff": 0.21, "status": status,
                    "explanation": f"{'all rows' if name == 'all rows' else repr(name).join(('slice ', ''))}: "
                    f"{flips} of {rows:,} labels flipped ({rate[0]:.2%} [{rate[1]:.2%}, {rate[2]:.2%}], "
                    f"allowed 2.00%); mean absolute difference {mad[0]:.4g} [{mad[1]:.4g}, {mad[2]:.4g}] "
                    f"(allowed 0.02): "
                    + ("within the limits." if status == "pass" else "too few rows to rule out a "
                       "difference beyond the limits."),
                }
                for name, definition, rows, flips, rate, mad, status in agreement
            ],
        }
    )  # fmt: skip
    verdict = decide(
        judgements, shadow, pass_score=95, marginal_score=75, weight=10, steps=[10, 25, 50, 100]
    )
    return {
        "decision": verdict.decision,
        "reason": verdict.reason,
        "reasons": verdict.reasons,
        "weight": 10.0,
        "next_weight": verdict.next_weight,
        "score": verdict.score,
        "confidence": 0.95,
        "model_sha256": MODEL_SHA,
        "primary": {"url": "http://credit-default-primary:8080", "digest": "sha256:" + "f1" * 32,
                    "model": "credit-default", "version": "1"},
        "canary": {"url": "http://credit-default-canary:8080", "digest": IMAGE_DIGEST,
                   "model": "credit-default", "version": "2"},
        "metrics": [j.model_dump(mode="json") for j in judgements],
        "shadow": shadow.model_dump(mode="json"),
        "live": {
            "prometheus": "http://prometheus:9090",
            "primary_target": 'model="credit-default",version="1"',
            "canary_target": 'model="credit-default",version="2"',
            "interval_s": 60.0, "iterations_planned": 10, "iterations_run": 10,
        },
        "duration_s": 626.4,
    }  # fmt: skip


def fixtures() -> dict[str, dict[str, Any]]:
    good_slices = [
        a_slice("region=north", "declared", 5200, 0.005, 0.015, False),
        a_slice("region=south", "declared", 4800, 0.02, 0.015, False),
        a_slice("channel=broker", "declared", 3100, -0.004, 0.01, False),
        a_slice(
            "employment=self-employed, channel=broker", "discovered", 2400, 0.001, 0.012, False
        ),
    ]
    promote = base_document()
    promote["evaluation"] = evaluation(good_slices)
    promote["tests"] = tests_section(failing=False)
    promote["benchmark"] = benchmark_section()
    promote["image"] = {
        "reference": "ghcr.io/example/credit-default:pr-42",
        "digest": IMAGE_DIGEST,
        "signatures": [
            {
                "kind": "signature",
                "referrer": "sha256:" + "5a" * 32,
                "identity": "https://github.com/example/credit/.github/workflows/ci.yml@refs/pull/42/merge",
                "issuer": "https://token.actions.githubusercontent.com",
                "verified": True,
            }
        ],
        "sbom": {"path": "sbom.cdx.json", "attached": True},
    }
    promote["canary"] = canary_section()
    promote["stages"]["canary"] = {"status": "ran", "reason": None, "duration_s": 626.4}

    hold = base_document()
    hold["evaluation"] = evaluation(good_slices)
    hold["evaluation"]["metrics"]["delta"]["roc_auc"] = delta("roc_auc", 0.002, 0.016)
    hold["stages"]["tests"] = {
        "status": "skipped",
        "reason": "no tests configured",
        "duration_s": 0.0,
    }
    hold["stages"]["benchmark"] = {
        "status": "skipped",
        "reason": "no benchmark configured",
        "duration_s": 0.0,
    }

    bad_slices = [
        *good_slices[:3],
        a_slice("employment=self-employed, channel=broker", "discovered", 2400, -0.09, 0.02, True),
        a_slice("employment=self-employed", "declared", 2900, -0.05, 0.02, True),
    ]
    block = base_document()
    block["evaluation"] = evaluation(bad_slices)
    block["tests"] = tests_section(failing=True)
    block["benchmark"] = benchmark_section(ratio=1.25)

    nogate = base_document()
    nogate["baseline"] = None
    ev = evaluation([])
    ev["metrics"]["baseline"] = None
    ev["metrics"]["delta"] = None
    ev["mcnemar"] = None
    ev["calibration"]["baseline"] = None
    nogate["evaluation"] = ev
    nogate["stages"] = {"evaluate": {"status": "ran", "reason": None, "duration_s": 1.0}}

    gate = GateConfig.model_validate(GATE)
    for doc in (promote, hold, block):
        doc["gate"] = evaluate_gate(Results.model_validate(doc), gate).model_dump(mode="json")
        doc["stages"]["gate"] = {"status": "ran", "reason": None, "duration_s": 0.0}
    return {
        "promote": promote,
        "hold": hold,
        "block": block,
        "nogate": nogate,
        "checks": checks_document(block),
    }


def test_result(
    test_id: str,
    kind: str,
    status: str,
    message: str,
    observed: Any,
    threshold: Any,
    **details: Any,
) -> dict[str, Any]:
    return {
        "id": test_id,
        "kind": kind,
        "status": status,
        "message": message,
        "observed": observed,
        "threshold": threshold,
        "duration_s": 0.1,
        "required": True,
        "details": {"examples": [], "count": 0, **details},
    }


def drift_result(
    feature: str, distance: str, value: float, half: float, p: float
) -> dict[str, Any]:
    drifted = value - half > 0.1
    psi = estimate(value * 0.8, half)
    return test_result(
        f"drift:{feature}",
        "drift",
        "failed" if drifted else "passed",
        f"'{feature}' drifted" if drifted else f"'{feature}' is stable",
        value,
        0.1,
        decision="drift" if drifted else "no drift",
        evidence="interval",
        distance=distance,
        **{distance: estimate(value, half)},
        psi=psi["value"],
        psi_interval=psi,
        test="ks" if distance == "wasserstein" else "chi2",
        statistic=0.05,
        p_value=p,
        thresholds={distance: 0.1, "psi": 0.2, "p_value": None},
    )


def data_check_results() -> list[dict[str, Any]]:
    parts = [
        "leakage",
        "new_categories",
        "spellings",
        "conflicting_labels",
        "relation_changed",
        "constant",
    ]
    return [
        drift_result("income", "wasserstein", 0.31, 0.02, 1e-40),
        drift_result("age", "wasserstein", 0.012, 0.004, 0.003),
        drift_result("region", "jensen_shannon", 0.02, 0.006, 1e-5),
        test_result(
            "multivariate_drift",
            "multivariate_drift",
            "failed",
            "a classifier tells evaluation rows from reference rows: ROC AUC 0.640 [0.632, 0.648] > 0.55",
            0.64,
            0.55,
            auc=estimate(0.64, 0.008),
            reference_rows=5000,
            current_rows=20000,
            folds=3,
            drivers=[
                {"feature": "income", "auc_drop": 0.11},
                {"feature": "region", "auc_drop": 0.004},
                {"feature": "age", "auc_drop": -0.001},
            ],
        ),
        *[
            test_result(
                f"integrity:{part}",
                "integrity",
                "failed" if part in ("leakage", "spellings") else "passed",
                "40 of 20,000 evaluation rows (0.20%) also occur in the reference data"
                if part == "leakage"
                else "1 category is spelled several ways; 'region' has 'North ', 'north'"
                if part == "spellings"
                else f"{part.replace('_', ' ')}: nothing found",
                0.002 if part == "leakage" else 0,
                0,
            )
            for part in parts
        ],
        test_result(
            "trivial_model",
            "trivial_model",
            "passed",
            "the candidate beats the trivial model by more than 0: roc_auc 0.912 against 0.5",
            0.412,
            0.0,
        ),
    ]


def fairness_section() -> dict[str, Any]:
    def rates(sr: float, tpr: float, fpr: float) -> dict[str, Any]:
        return {
            "selection_rate": estimate(sr, 0.02),
            "tpr": estimate(tpr, 0.03),
            "fpr": estimate(fpr, 0.02),
        }

    def disparity(diff: float, ratio: float, base_diff: float, base_ratio: float) -> dict[str, Any]:
        return {
            "difference": estimate(diff, 0.03),
            "ratio": estimate(ratio, 0.04),
            "baseline_difference": estimate(base_diff, 0.03),
            "baseline_ratio": estimate(base_ratio, 0.04),
            "difference_delta": estimate(diff - base_diff, 0.035),
            "ratio_delta": estimate(ratio - base_ratio, 0.045),
        }

    groups = [
        ("north", 5200, 0.31, 0.72, 0.12),
        ("south", 4800, 0.18, 0.55, 0.07),
        ("east", 90, 0.2, 0.5, 0.1),
    ]
    return {
        "positive_class": 1,
        "min_group_size": 100,
        "rates": ["selection_rate", "tpr", "fpr"],
        "features": [
            {
                "feature": "region",
                "definition": "region = each of its 3 values",
                "groups": [
                    {
                        "group": g,
                        "size": n,
                        "status": "evaluated" if n >= 100 else "too_small",
                        "candidate": rates(sr, tpr, fpr),
                        "baseline": rates(sr - 0.05, tpr - 0.04, fpr - 0.01),
                    }
                    for g, n, sr, tpr, fpr in groups
                ],
                "disparities": {
                    "selection_rate": disparity(0.13, 0.58, 0.08, 0.72),
                    "tpr": disparity(0.17, 0.76, 0.1, 0.84),
                    "fpr": disparity(0.05, 0.58, 0.04, 0.62),
                    "demographic_parity": disparity(0.13, 0.58, 0.08, 0.72),
                    "equalized_odds": disparity(0.17, 0.58, 0.1, 0.62),
                },
            }
        ],
    }


def importance_section() -> dict[str, Any]:
    rows = [
        ("income", 0.081, 0.0, "more"),
        ("age", 0.032, 0.041, "less"),
        ("region", 0.004, 0.003, "no detectable difference"),
    ]
    return {
        "method": "permutation",
        "metric": "roc_auc",
        "repeats": 5,
        "rows": 20000,
        "features": [
            {
                "feature": f,
                "candidate": estimate(c, 0.004),
                "baseline": estimate(b, 0.004)
                if b
                else {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0},
                "delta": estimate(c - b, 0.005),
                "reliance": r,
            }
            for f, c, b, r in rows
        ],
    }


def checks_document(block: dict[str, Any]) -> dict[str, Any]:
    """The block document with every data check, fairness and importance."""
    doc = copy.deepcopy(block)
    doc.pop("gate")
    results = [*doc["tests"]["results"], *data_check_results()]
    doc["tests"]["results"] = results
    doc["tests"]["summary"] = {
        "total": len(results),
        "passed": sum(r["status"] == "passed" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
        "error": 0,
        "skipped": sum(r["status"] == "skipped" for r in results),
    }
    doc["evaluation"]["fairness"] = fairness_section()
    doc["evaluation"]["importance"] = importance_section()
    rules = [
        *GATE["rules"],
        {
            "kind": "fairness",
            "feature": "region",
            "metric": "equalized_odds",
            "max_difference": 0.1,
        },
        {"kind": "fairness", "metric": "demographic_parity", "min_ratio": 0.5, "required": False},
    ]
    doc["gate"] = evaluate_gate(
        Results.model_validate(doc), GateConfig.model_validate({"rules": rules})
    ).model_dump(mode="json")
    return doc


CARD = {
    "description": "Scores personal-loan applications by their risk of default within a year.",
    "version": "2.1.0",
    "owners": ["credit-risk team"],
    "license": "Apache-2.0",
    "architecture": "gradient-boosted trees",
    "intended_use": "Ranking applications for manual review by credit officers.",
    "users": ["credit officers", "risk analysts"],
    "out_of_scope": ["fully automated rejection", "business loans"],
    "training_data": [
        {
            "name": "applications-2024",
            "description": "four quarters of applications",
            "path": None,
            "sha256": "f8" * 32,
        }
    ],
    "limitations": ["Trained on few self-employed applicants introduced by brokers."],
    "risks": [
        {
            "name": "Self-certified income can be padded",
            "mitigation": "verify income for broker applications",
        }
    ],
    "fairness": ["region=north"],
}


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, doc in fixtures().items():
        (FIXTURES / f"{name}.json").write_text(dumps(Results.model_validate(copy.deepcopy(doc))))
    (FIXTURES / "card.json").write_text(json.dumps(CARD, indent=2) + "\n")


if __name__ == "__main__":
    main()
