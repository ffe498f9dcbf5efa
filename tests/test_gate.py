"""The promotion gate: rule statuses, the decision, the binding digest, exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from documents import dump, fixture, plain, typed

from mlci.commands import main
from mlci.gate.config import GateConfig
from mlci.gate.rules import binding_digest, decide, evaluate_gate, rows_to_resolve
from mlci.results.gate import RuleResult
from project import Project


def gate(*rules: dict[str, Any], **settings: Any) -> GateConfig:
    return GateConfig.model_validate({"rules": list(rules), **settings})


def one(doc: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    section = plain(evaluate_gate(typed(doc), gate(rule)))
    typed({**doc, "gate": section})
    result: dict[str, Any] = section["rules"][0]
    return result


def with_delta(value: float, low: float, high: float, metric: str = "roc_auc") -> dict[str, Any]:
    doc = fixture("promote")
    doc["evaluation"]["metrics"]["delta"][metric].update(value=value, ci_low=low, ci_high=high)
    return doc


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [
        (0.001, 0.02, "pass"),
        (-0.009, 0.01, "pass"),
        (-0.02, 0.01, "inconclusive"),
        (-0.05, -0.02, "fail"),
    ],
)
def test_non_inferiority_uses_the_lower_end_of_the_interval(
    low: float, high: float, status: str
) -> None:
    result = one(
        with_delta((low + high) / 2, low, high), {"kind": "non_inferiority", "margin": 0.01}
    )
    assert result["status"] == status
    assert result["threshold"] == {"margin": 0.01, "superiority": False}
    assert result["observed"]["ci_low"] == low


def test_non_inferiority_follows_the_metric_direction() -> None:
    # log_loss: lower is better, so a positive delta is a loss.
    doc = with_delta(0.03, 0.02, 0.04, metric="log_loss")
    rule = {"kind": "non_inferiority", "metric": "log_loss", "margin": 0.01}
    assert one(doc, rule)["status"] == "fail"
    doc = with_delta(-0.03, -0.04, 0.005, metric="log_loss")
    assert one(doc, rule)["status"] == "pass"


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [(0.001, 0.02, "pass"), (-0.01, 0.02, "inconclusive"), (-0.02, -0.001, "fail")],
)
def test_superiority(low: float, high: float, status: str) -> None:
    rule = {"kind": "non_inferiority", "margin": 0.01, "superiority": True}
    assert one(with_delta(0.0, low, high), rule)["status"] == status


def test_point_evidence_ignores_the_interval() -> None:
    doc = with_delta(-0.005, -0.03, 0.02)
    assert one(doc, {"kind": "non_inferiority", "margin": 0.01})["status"] == "inconclusive"
    assert (
        one(doc, {"kind": "non_inferiority", "margin": 0.01, "evidence": "point"})["status"]
        == "pass"
    )


def without_intervals(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as evaluation.bootstrap: 0 writes it: values, no intervals."""
    ev = doc["evaluation"]
    tables = [ev["metrics"]["candidate"], ev["metrics"]["baseline"], ev["metrics"]["delta"]]
    for s in ev["slices"]:
        tables += [s["metrics"]["candidate"], s["metrics"]["baseline"], s["delta"]]
    for table in tables:
        for entry in (table or {}).values():
            entry.update(ci_low=None, ci_high=None)
            if "p_value" in entry:
                entry.update(p_value=None, verdict="undefined")
    return doc


def test_a_rule_that_judges_an_interval_is_inconclusive_without_one() -> None:
    # With bootstrap: 0 a delta of -0.072 has no interval; judged as if its interval were the
    # point, a margin of 0.1 would promote it. Without an interval nothing is shown.
    doc = without_intervals(with_delta(-0.072, -0.1, -0.05))
    rule = {"kind": "non_inferiority", "margin": 0.1}
    result = one(doc, rule)
    assert result["status"] == "inconclusive"
    assert "no interval" in result["explanation"] and "bootstrap" in result["explanation"]
    assert one(doc, {**rule, "evidence": "point"})["status"] == "pass"
    for metric_rule in (
        {"kind": "metric", "metric": "roc_auc", "min": 0.5},
        {"kind": "metric", "metric": "roc_auc", "max": 0.99},
        {"kind": "metric", "metric": "roc_auc", "min": 0.5, "slice": "region=north"},
    ):
        assert one(doc, metric_rule)["status"] == "inconclusive", metric_rule
        assert one(doc, {**metric_rule, "evidence": "point"})["status"] == "pass", metric_rule
    assert one(doc, {"kind": "non_inferiority", "margin": 0.1, "superiority": True})["status"] == (
        "inconclusive"
    )
    section = plain(evaluate_gate(typed(doc), gate(rule)))
    assert section["decision"] == "hold"


def test_a_flagged_slice_without_an_interval_is_inconclusive() -> None:
    doc = fixture("block")
    flagged = next(s for s in doc["evaluation"]["slices"] if s["flagged"])
    flagged["delta"]["roc_auc"].update(ci_low=None, ci_high=None)
    assert one(doc, {"kind": "slices", "margin": 0.5})["status"] == "inconclusive"
    assert one(doc, {"kind": "slices", "margin": 0.5, "evidence": "point"})["status"] == "pass"


def test_latency_without_an_interval_is_inconclusive() -> None:
    doc = fixture("promote")
    scenario = doc["benchmark"]["scenarios"][0]
    scenario["candidate"]["latency_ms"]["p99"].update(ci_low=None, ci_high=None)
    result = one(doc, {"kind": "latency", "budget_ms": 50, "scenario": scenario["name"]})
    assert result["status"] == "inconclusive"
    doc = fixture("promote")
    scenario = doc["benchmark"]["scenarios"][0]
    for c in scenario["comparison"]:
        c["ratio"].update(ci_low=None, ci_high=None)
    rule = {"kind": "latency", "max_regression": 5.0, "scenario": scenario["name"]}
    assert one(doc, rule)["status"] == "inconclusive"
    assert one(doc, {**rule, "evidence": "point"})["status"] == "pass"


@pytest.mark.parametrize(
    ("rows", "value", "low", "high", "threshold", "expected"),
    [
        (5000, 0.0, -0.02, 0.02, -0.01, 20_000),  # half-width 0.02 must reach 0.01: 4x
        (5000, 0.0, -0.015, 0.015, -0.01, 11_250),
        (5000, -0.02, -0.03, -0.005, -0.01, 11_250),  # below: the upper half-width 0.015
        (1000, 0.8, 0.6, 0.9, 0.8, None),  # on the threshold: no amount of data
        (None, 0.0, -0.02, 0.02, -0.01, None),
    ],
)
def test_rows_to_resolve(
    rows: int | None, value: float, low: float, high: float, threshold: float, expected: int | None
) -> None:
    assert rows_to_resolve(rows, value, low, high, threshold) == expected


def test_a_hold_names_the_rows_that_would_resolve_it() -> None:
    doc = with_delta(0.0, -0.02, 0.02)
    doc["data"]["rows"] = 5000
    result = one(doc, {"kind": "non_inferiority", "margin": 0.01})
    assert result["status"] == "inconclusive"
    assert result["observed"]["rows_needed"] == 20_000
    assert "About 20,000 rows (now 5,000) would resolve it" in result["explanation"]
    section = plain(evaluate_gate(typed(doc), gate({"kind": "non_inferiority", "margin": 0.01})))
    assert section["decision"] == "hold"
    assert "about 20,000 rows (now 5,000) would resolve it" in section["reason"]
    # A slice's figure counts the slice's rows.
    slice_rule = {"kind": "metric", "metric": "roc_auc", "min": 0.9, "slice": "region=north"}
    result = one(fixture("promote"), slice_rule)
    size = next(
        s["size"] for s in fixture("promote")["evaluation"]["slices"] if s["name"] == "region=north"
    )
    assert result["observed"]["rows"] == size
    assert "rows in the slice" in result["explanation"]


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"kind": "metric", "metric": "roc_auc", "min": 0.85}, "pass"),
        ({"kind": "metric", "metric": "roc_auc", "min": 0.91}, "inconclusive"),
        ({"kind": "metric", "metric": "roc_auc", "min": 0.95}, "fail"),
        ({"kind": "metric", "metric": "log_loss", "max": 0.4}, "pass"),
        ({"kind": "metric", "metric": "log_loss", "max": 0.3}, "fail"),
        (
            {"kind": "metric", "metric": "roc_auc", "min": 0.9, "slice": "region=north"},
            "inconclusive",
        ),
        ({"kind": "metric", "metric": "roc_auc", "min": 0.9, "slice": "nowhere"}, "missing"),
        ({"kind": "metric", "metric": "mae", "min": 0.9}, "missing"),
    ],
)
def test_metric_thresholds(rule: dict[str, Any], status: str) -> None:
    assert one(fixture("promote"), rule)["status"] == status


def test_slice_regressions() -> None:
    rule = {"kind": "slices", "margin": 0.02}
    assert one(fixture("promote"), rule)["status"] == "pass"
    result = one(fixture("block"), rule)
    assert result["status"] == "fail"
    assert result["observed"]["slice"] == "employment=self-employed, channel=broker"
    # A flagged slice whose interval reaches past the margin but not wholly: inconclusive.
    assert one(fixture("block"), {"kind": "slices", "margin": 0.05})["status"] == "inconclusive"
    assert one(fixture("block"), {"kind": "slices", "margin": 0.1})["status"] == "pass"
    assert one(fixture("block"), {**rule, "source": "declared"})["status"] == "inconclusive"
    assert one(fixture("nogate"), rule)["status"] == "missing"  # no baseline


def test_latency_budgets_and_regressions() -> None:
    assert one(fixture("promote"), {"kind": "latency", "budget_ms": 5})["status"] == "pass"
    assert one(fixture("promote"), {"kind": "latency", "budget_ms": 3.5})["status"] == "fail"
    assert (
        one(fixture("promote"), {"kind": "latency", "budget_ms": 4, "scenario": "single-stream"})[
            "status"
        ]
        == "pass"
    )
    assert (
        one(fixture("promote"), {"kind": "latency", "budget_ms": 1.9, "scenario": "single-stream"})[
            "status"
        ]
        == "inconclusive"
    )
    assert one(fixture("block"), {"kind": "latency", "max_regression": 0.1})["status"] == "fail"
    assert (
        one(fixture("block"), {"kind": "latency", "max_regression": 0.25})["status"]
        == "inconclusive"
    )
    assert one(fixture("hold"), {"kind": "latency", "budget_ms": 5})["status"] == "missing"
    doc = fixture("promote")
    doc["benchmark"]["scenarios"][0]["status"] = "not_enough_samples"
    assert one(doc, {"kind": "latency", "budget_ms": 5})["status"] == "inconclusive"


def test_tests_rule() -> None:
    assert one(fixture("promote"), {"kind": "tests"})["status"] == "pass"
    assert one(fixture("block"), {"kind": "tests"})["status"] == "fail"
    assert (
        one(fixture("block"), {"kind": "tests", "kinds": ["invariance", "metric"]})["status"]
        == "pass"
    )
    assert one(fixture("block"), {"kind": "tests", "names": ["metric:roc_auc"]})["status"] == "pass"
    assert one(fixture("block"), {"kind": "tests", "names": ["nope"]})["status"] == "missing"
    assert (
        one(fixture("block"), {"kind": "tests", "names": ["drift:debt_to_income"]})["status"]
        == "missing"
    )
    result = one(fixture("hold"), {"kind": "tests"})
    assert result["status"] == "missing"
    assert "no tests configured" in result["explanation"]


def test_supply_chain_and_canary() -> None:
    doc = fixture("promote")
    assert one(doc, {"kind": "supply_chain"})["status"] == "pass"
    identity = doc["image"]["signatures"][0]["identity"]
    assert one(doc, {"kind": "supply_chain", "identity": identity})["status"] == "pass"
    assert one(doc, {"kind": "supply_chain", "identity": "someone@else"})["status"] == "fail"
    unsigned = copy.deepcopy(doc)
    unsigned["image"]["signatures"] = []
    unsigned["image"]["sbom"]["attached"] = False
    result = one(unsigned, {"kind": "supply_chain"})
    assert result["status"] == "fail"
    assert result["explanation"] == "The image is not signed; no SBOM is attached."
    assert (
        one(unsigned, {"kind": "supply_chain", "signed": False, "sbom": False})["status"] == "pass"
    )
    assert one(fixture("hold"), {"kind": "supply_chain"})["status"] == "missing"
    assert one(fixture("hold"), {"kind": "canary"})["status"] == "missing"
    assert one(doc, {"kind": "canary"})["status"] == "pass"
    judged = {"digest": doc["image"]["digest"]}
    for decision, status in (("promote", "pass"), ("hold", "inconclusive"), ("rollback", "fail")):
        canary = {"decision": decision, "canary": judged}
        assert one({**doc, "canary": canary}, {"kind": "canary"})["status"] == status
    # evidence about another image, or an image it does not name, is no evidence
    for other in ({"digest": "sha256:" + "0" * 64}, {}):
        canary = {"decision": "promote", "canary": other}
        assert one({**doc, "canary": canary}, {"kind": "canary"})["status"] == "missing"


def rule(status: str, required: bool = True, id: str = "r") -> RuleResult:
    return RuleResult.model_validate(
        {
            "id": id,
            "kind": "metric",
            "status": status,
            "required": required,
            "observed": None,
            "threshold": None,
            "explanation": "",
        }
    )


@pytest.mark.parametrize(
    ("rules", "decision"),
    [
        ([rule("pass"), rule("pass", id="s")], "promote"),
        ([rule("pass"), rule("fail", required=False)], "promote"),
        ([rule("pass"), rule("missing", required=False)], "promote"),
        ([rule("pass"), rule("inconclusive")], "hold"),
        ([rule("missing"), rule("pass")], "hold"),
        ([rule("inconclusive"), rule("fail")], "block"),
        ([rule("missing"), rule("fail", id="x")], "block"),
    ],
)
def test_decision(rules: list[RuleResult], decision: str) -> None:
    assert decide(rules)[0] == decision


def test_section_binds_the_decision_to_the_digests() -> None:
    doc = fixture("promote")
    section = doc["gate"]
    assert section["model_sha256"] == doc["model"]["sha256"]
    assert section["image_digest"] == doc["image"]["digest"]
    assert section["data_sha256"] == doc["data"]["sha256"]
    assert section["digest"] == binding_digest(section)
    tampered = {**section, "decision": "promote", "model_sha256": "0" * 64}
    assert binding_digest(tampered) != section["digest"]
    assert fixture("hold")["gate"]["image_digest"] is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("[{kind: metric, metric: roc_auc}]", "a metric rule needs 'min' or 'max'"),
        ("[{kind: non_inferiority}]", "needs 'margin'"),
        ("[{kind: tests, margin: 0.1}]", "'margin' does not apply to a tests rule"),
        ("[{kind: latency, metric: p99}]", "needs 'budget_ms' or 'max_regression'"),
        ("[{kind: latency, metric: p42, budget_ms: 1}]", "unknown latency statistic 'p42'"),
        ("[{kind: slice, margin: 0.1}]", "input should be 'metric', 'non_inferiority'"),
        ("[{kind: tests}, {kind: tests}]", "two gate rules are named 'tests'"),
        ("[{kind: tests, requird: false}]", "unknown key 'requird' (did you mean 'required'?)"),
    ],
)
def test_config_errors(
    rules: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mlci.yaml"
    config.write_text(
        "version: 1\ndata: {path: eval.csv, target: y}\nmodels: [{name: m, path: m.onnx}]\n"
        f"gate:\n  rules: {rules}\n"
    )
    results = tmp_path / "results.json"
    results.write_text(dump(fixture("promote")))
    assert main(["gate", str(results), "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert f"{config}:5:" in err or f"{config}:4:" in err


def test_unknown_metric_points_at_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mlci.yaml"
    config.write_text(
        "version: 1\ndata: {path: eval.csv, target: y}\nmodels: [{name: m, path: m.onnx}]\n"
        "gate:\n  rules:\n    - kind: non_inferiority\n      metric: roc_uac\n      margin: 0\n"
    )
    results = tmp_path / "results.json"
    results.write_text(dump(fixture("promote")))
    assert main(["gate", str(results), "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        "mlci.yaml:7:7: gate.rules[0].metric: unknown metric 'roc_uac' (did you mean 'roc_auc'?)"
        in err
    )


GATE_YAML = """gate:
  rules:
    - kind: non_inferiority
      margin: 0.01
    - kind: slices
      margin: 0.02
    - kind: tests
"""


@pytest.mark.parametrize(
    ("name", "fail_on", "code"),
    [("promote", None, 0), ("hold", None, 0), ("hold", "hold", 1), ("block", None, 1)],
)
def test_gate_cli_exit_codes(
    name: str, fail_on: str | None, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mlci.yaml"
    config.write_text(
        "version: 1\ndata: {path: eval.csv, target: y}\nmodels: [{name: m, path: m.onnx}]\n"
        + GATE_YAML
    )
    results = tmp_path / "results.json"
    results.write_text(dump(fixture(name)))
    args = ["gate", str(results), "-c", str(config)] + (["--fail-on", fail_on] if fail_on else [])
    assert main(args) == code
    out = capsys.readouterr().out
    rewritten = json.loads(results.read_text())
    assert rewritten["gate"]["decision"] == name
    assert [r["id"] for r in rewritten["gate"]["rules"]] == ["non_inferiority", "slices", "tests"]
    assert f"{name.upper()}: " in out


def test_gate_without_a_gate_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mlci.yaml"
    config.write_text(
        "version: 1\ndata: {path: eval.csv, target: y}\nmodels: [{name: m, path: m.onnx}]\n"
    )
    results = tmp_path / "results.json"
    results.write_text(dump(fixture("promote")))
    before = results.read_text()
    assert main(["gate", str(results), "-c", str(config)]) == 2
    assert "no gate section" in capsys.readouterr().err
    assert results.read_text() == before


def add_gate(project: Project, text: str) -> None:
    project.config.write_text(project.config.read_text() + text)


@pytest.mark.parametrize(
    ("rules", "extra", "code", "decision"),
    [
        ("    - {kind: metric, metric: roc_auc, min: 0.5}\n", [], 0, "promote"),
        ("    - {kind: metric, metric: roc_auc, min: 0.5}\n    - {kind: tests}\n", [], 0, "hold"),
        (
            "    - {kind: metric, metric: roc_auc, min: 0.5}\n    - {kind: tests}\n",
            ["--fail-on", "hold"],
            1,
            "hold",
        ),
        ("    - {kind: metric, metric: roc_auc, min: 0.99}\n", [], 1, "block"),
    ],
)
def test_check_runs_the_gate_last_and_exits_with_its_decision(
    project: Project, tmp_path: Path, rules: str, extra: list[str], code: int, decision: str
) -> None:
    add_gate(project, "gate:\n  rules:\n" + rules)
    out = tmp_path / "out"
    assert main(["check", "-q", "-c", str(project.config), "-o", str(out), *extra]) == code
    results = json.loads((out / "results.json").read_text())
    assert results["gate"]["decision"] == decision
    # The gate judges every stage that gathers evidence; only the card and the signed
    # decision, which show the decision, come after it.
    order = list(results["stages"])
    assert order[order.index("gate") + 1 :] == ["card", "attest"]
    assert {"evaluate", "tests", "benchmark", "image", "sbom", "sign"} <= set(
        order[: order.index("gate")]
    )
    assert results["gate"]["model_sha256"] == results["model"]["sha256"]
    comment = (out / "comment.md").read_text()
    assert comment.startswith("<!-- mlci:comment model=demo -->")
    assert decision in comment.splitlines()[1]
    for name in ("report.md", "summary.md", "report.html"):
        assert (out / name).exists()


def test_check_without_a_gate_still_exits_zero(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["check", "-q", "-c", str(project.config), "-o", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert "gate" not in results
    assert results["stages"]["gate"] == {
        "status": "skipped",
        "reason": "no gate configured",
        "duration_s": results["stages"]["gate"]["duration_s"],
    }
