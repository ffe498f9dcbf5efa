"""The canary judge (pure), its configuration, and the gate's canary rule."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlci.canary.config import CanaryConfig, render, target_of
from mlci.canary.judge import (
    MetricSpec,
    allowed_shift,
    classify,
    clearly_harmful,
    decide,
    is_harmful,
    judge_metric,
    next_weight,
    score,
)
from mlci.canary.live import early_stop, live_metrics, promql_duration
from mlci.canary.stage import Overrides
from mlci.config import load_config
from mlci.errors import ConfigError, UsageError
from mlci.gate.config import GateConfig
from mlci.gate.rules import evaluate_gate
from mlci.results.canary import Agreement, Shadow, ShadowSide
from mlci.results.evaluation import Estimate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from canary_simulation import World, rollback_rate, simulate  # noqa: E402
from documents import fixture  # noqa: E402

LATENCY = MetricSpec("latency", "live", bad="increase", tolerance=0.1, unit="s")
ERRORS = MetricSpec(
    "errors", "live", bad="increase", tolerance=0.0, tolerance_abs=0.01, critical=True,
    unit="ratio",
)  # fmt: skip


def spread(centre: float, n: int = 10, width: float = 0.1, seed: int = 0) -> list[float]:
    """n values within ``width`` (relative) of ``centre``."""
    return list(centre * (1 + np.random.default_rng(seed).uniform(-width, width, n)))


def test_classification_needs_significance_and_an_effect_beyond_the_tolerance() -> None:
    assert classify(0.5, 0.01, 0.1, 0.95) == "high"
    assert classify(-0.5, 0.01, 0.1, 0.95) == "low"
    assert classify(0.05, 0.01, 0.1, 0.95) == "pass"  # significant but within the tolerance
    assert classify(0.5, 0.2, 0.1, 0.95) == "pass"  # large but not significant
    assert is_harmful("increase", "high") and not is_harmful("increase", "low")
    assert is_harmful("decrease", "low") and not is_harmful("decrease", "high")
    assert is_harmful("either", "low") and is_harmful("either", "high")
    assert not is_harmful("either", "pass")


def test_allowed_change_is_the_larger_tolerance() -> None:
    assert allowed_shift(LATENCY, 0.02) == pytest.approx(0.002)
    assert allowed_shift(ERRORS, 0.0) == 0.01
    both = MetricSpec("x", "live", tolerance=0.5, tolerance_abs=3.0)
    assert allowed_shift(both, 10.0) == 5.0 and allowed_shift(both, 2.0) == 3.0


def test_a_clear_slowdown_is_high_and_harmful() -> None:
    j = judge_metric(LATENCY, spread(0.010), spread(0.015, seed=1), 0.95)
    assert j.classification == "high" and j.harmful
    assert j.effect.value == pytest.approx(0.005, abs=0.002)
    assert j.effect.ci_low is not None and j.effect.ci_low > 0
    assert j.relative_effect == pytest.approx(0.5, abs=0.2)
    assert j.method == "exact" and j.primary.n == j.canary.n == 10
    assert "significantly higher" in j.explanation and "(harmful)" in j.explanation
    faster = judge_metric(LATENCY, spread(0.015), spread(0.010, seed=1), 0.95)
    assert faster.classification == "low" and not faster.harmful


def test_no_data_and_missing_intervals() -> None:
    j = judge_metric(ERRORS, [None, None], [0.1, 0.2], 0.95)
    assert j.classification == "nodata" and not j.harmful
    assert "no data for the primary" in j.explanation
    # intervals without data are left out, not counted as zeros
    k = judge_metric(LATENCY, [0.01, None, float("nan"), 0.011], [0.01, 0.012], 0.95)
    assert k.primary.n == 2 and k.primary.values[1] is None


def test_score_weighs_metrics_with_data() -> None:
    bad = judge_metric(LATENCY, spread(0.01), spread(0.02, seed=1), 0.95)
    good = judge_metric(ERRORS, spread(0.001, width=0.0005), spread(0.001, seed=2), 0.95)
    empty = judge_metric(ERRORS, [], [], 0.95)
    heavy = good.model_copy(update={"weight": 3.0})
    assert score([bad, good]) == 50.0
    assert score([bad, heavy]) == 75.0
    assert score([bad, good, empty]) == 50.0
    assert score([empty]) is None


def _shadow(status: str = "pass", slices: tuple[str, ...] = (), errors: str = "pass") -> Shadow:
    side = ShadowSide(requests=10, errors=0, error_rate=Estimate(value=0, ci_low=0, ci_high=0.1))
    agreement = [Agreement(name="all rows", rows=10, status=status, explanation="all rows: x.")]
    agreement += [
        Agreement(name=f"s{i}", rows=5, status=s, explanation=f"slice 's{i}': y.")
        for i, s in enumerate(slices)
    ]
    none = Estimate(value=0, ci_low=0, ci_high=0)
    return Shadow(
        source="data", source_path="d.csv", requests=10, rows=10, batch=1, rate=None,
        concurrency=1, duration_s=1, throughput=10, primary=side, canary=side,
        error_rate_delta=none, max_error_increase=0.01, errors_status=errors,
        errors_explanation="errors: z.", agreement=agreement,
    )  # fmt: skip


def verdict(judgements: list[Any], shadow: Shadow | None = None, weight: float = 10) -> Any:
    return decide(
        judgements, shadow, pass_score=95, marginal_score=75, weight=weight, steps=[10, 50, 100]
    )


def test_decisions() -> None:
    good = judge_metric(LATENCY, spread(0.01), spread(0.01, seed=1), 0.95)
    slow = judge_metric(LATENCY, spread(0.01), spread(0.02, seed=1), 0.95)
    failing = judge_metric(ERRORS, spread(0.001), spread(0.05, seed=1), 0.95)
    empty = judge_metric(ERRORS, [], [], 0.95)

    promote = verdict([good])
    assert promote.decision == "promote" and promote.next_weight == 50
    assert promote.reason == "Promote to 50% of traffic: no harmful change found (score 100)."
    assert verdict([good], weight=100).reason.endswith("the rollout is complete.")

    critical = verdict([good, failing, good, good, good])
    assert critical.decision == "rollback" and critical.next_weight == 0
    assert critical.reason.startswith("Roll back: critical metric errors: ")

    assert verdict([good, slow, good, good]).decision == "hold"  # score 75
    assert verdict([good, slow]).decision == "rollback"  # score 50 < 75
    held = verdict([good, empty])
    assert held.decision == "hold" and held.next_weight == 10
    assert held.reason.startswith("Hold at 10% of traffic: critical metric errors: no data")

    assert verdict([good], _shadow("fail")).decision == "rollback"
    assert verdict([good], _shadow("inconclusive")).decision == "hold"
    assert verdict([good], _shadow(errors="fail")).decision == "rollback"
    assert verdict([good], _shadow(errors="inconclusive")).decision == "hold"
    # a slice that cannot rule out a difference is reported, and holds nothing back
    noted = verdict([good], _shadow("pass", ("inconclusive", "pass")))
    assert noted.decision == "promote" and "slice 's0': y." in noted.reasons
    assert verdict([good], _shadow("pass", ("pass", "fail"))).decision == "rollback"
    assert verdict([], None).decision == "hold"


def test_next_weight() -> None:
    assert next_weight("promote", 0, [10, 50, 100]) == 10
    assert next_weight("promote", 10, [10, 50, 100]) == 50
    assert next_weight("promote", 30, [10, 50, 100]) == 50
    assert next_weight("promote", 100, [10, 50, 100]) == 100
    assert next_weight("hold", 30, [10, 50, 100]) == 30
    assert next_weight("rollback", 30, [10, 50, 100]) == 0


def test_early_stop_only_for_a_critical_metric_clearly_beyond_its_tolerance() -> None:
    primary = {"errors": spread(0.001, 6, 0.0005), "latency": spread(0.01, 6)}
    canary = {"errors": spread(0.10, 6, 0.01, seed=1), "latency": spread(0.05, 6, seed=1)}
    specs = [ERRORS, LATENCY]
    reason = early_stop(specs, primary, canary, 6, 10, 5, 0.95)
    assert "critical metric 'errors' was clearly harmful after 6 of 10" in reason
    assert early_stop(specs, primary, canary, 4, 10, 5, 0.95) == ""  # before min_iterations
    assert early_stop(specs, primary, canary, 10, 10, 5, 0.95) == ""  # the last look decides
    # not critical: latency alone never stops early
    calm = {"errors": spread(0.001, 6, 0.0005, seed=3), "latency": canary["latency"]}
    assert early_stop(specs, primary, calm, 6, 10, 5, 0.95) == ""
    # significant but inside the tolerance at the stricter level: no stop
    near = {"errors": spread(0.0105, 6, 0.0005, seed=4)}
    assert not clearly_harmful(ERRORS, primary["errors"], near["errors"], 0.995)


def test_live_queries_are_rendered_for_both_sides(tmp_path: Path) -> None:
    config = canary_config(
        tmp_path,
        """
        primary: {url: "http://p:8080", version: "1"}
        canary: {url: "http://c:8080", target: 'pod=~"canary-.*"'}
        live:
          prometheus: http://prom:9090
          interval: 90s
          variables: {job: serving}
          metrics:
            - {name: errors, template: error_rate}
            - {name: custom, query: 'sum(x{ {{target}}, job="{{job}}" }[{{interval}}]) / sum(y{ {{primary}} })'}
        """,
    )
    assert config.live is not None
    metrics = live_metrics(config.live, target_of(config.primary, "demo"), 'pod=~"canary-.*"', "x")
    errors, custom = metrics
    assert 'model="demo",version="1"' in errors.primary_query
    assert 'pod=~"canary-.*"' in errors.canary_query and "[90s]" in errors.canary_query
    assert (
        errors.spec.critical and errors.spec.tolerance_abs == 0.01 and errors.spec.unit == "ratio"
    )
    assert custom.canary_query == (
        'sum(x{ pod=~"canary-.*", job="serving" }[90s]) / sum(y{ model="demo",version="1" })'
    )
    assert not custom.spec.critical and custom.spec.bad == "increase"
    assert promql_duration(0.5) == "500ms" and promql_duration(60) == "60s"
    assert render("{{ a }}-{{b}}", {"a": "1", "b": "2"}) == "1-2"


def canary_config(tmp_path: Path, text: str) -> CanaryConfig:
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n")
    body = textwrap.indent(textwrap.dedent(text).strip(), "  ")
    (tmp_path / "mlci.yaml").write_text(
        "version: 1\ndata: {path: d.csv, target: y}\nmodels: [{name: demo, path: m.onnx}]\n"
        f"canary:\n{body}\n"
    )
    loaded = load_config(tmp_path / "mlci.yaml")
    assert loaded.config.canary is not None
    return loaded.config.canary


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("primary: {url: 'http://p'}\ncanary: {url: 'http://c'}", "needs 'shadow', 'live' or both"),
        (
            "primary: {url: 'http://p', image: x}\ncanary: {url: 'http://c'}\nshadow: {}",
            "give 'url' or 'image', not both",
        ),
        (
            "primary: {}\ncanary: {url: 'http://c'}\nshadow: {}",
            "needs primary.url or primary.image",
        ),
        (
            "primary: {url: 'ftp://p'}\ncanary: {url: 'http://c'}\nshadow: {}",
            "canary.primary.url: string should match pattern",
        ),
        (
            "primary: {url: 'http://p'}\ncanary: {url: 'http://c'}\nshadow: {bootstrap: 20}",
            "shadow.bootstrap: 20 replicates are too few for 95% intervals",
        ),
        (
            "primary: {url: 'http://p'}\ncanary: {url: 'http://c'}\nshadow: {}\nsteps: [50, 10]",
            "'steps' must be strictly increasing",
        ),
        (
            "primary: {url: 'http://p'}\ncanary: {url: 'http://c'}\nshadow: {}\n"
            "pass_score: 50\nmarginal_score: 60",
            "'marginal_score' is above 'pass_score'",
        ),
        (
            "primary: {url: 'http://p'}\ncanary: {url: 'http://c', digest: 'sha256:12'}\nshadow: {}",
            "canary.canary.digest: string should match pattern",
        ),
        (
            "primary: {version: '1'}\ncanary: {}\nlive: {prometheus: 'http://x', metrics: "
            "[{name: e, template: error_rate}]}",
            "live queries need canary.target",
        ),
        (
            "primary: {version: '1'}\ncanary: {version: '2'}\nlive: {prometheus: 'http://x', "
            "metrics: [{name: e, query: 'sum(x)'}]}",
            "the query must use {{target}}",
        ),
        (
            "primary: {version: '1'}\ncanary: {version: '2'}\nlive: {prometheus: 'http://x', "
            "metrics: [{name: e, query: 'x{ {{target}} }[{{window}}]'}]}",
            "unknown variable {{window}}",
        ),
        (
            "primary: {version: '1'}\ncanary: {version: '2'}\nlive: {prometheus: 'http://x', "
            "metrics: [{name: e, template: error_rate, query: 'x{ {{target}} }'}]}",
            "exactly one of 'template' or 'query'",
        ),
        (
            "primary: {version: '1'}\ncanary: {version: '2'}\nlive: {prometheus: 'http://x', "
            "variables: {target: x}, metrics: [{name: e, template: error_rate}]}",
            "'target' is set by mlci",
        ),
        (
            "primary: {version: '1'}\ncanary: {version: '2'}\nlive: {prometheus: 'http://x', "
            "iterations: 3, metrics: [{name: e, template: error_rate}]}",
            "live.min_iterations is above live.iterations",
        ),
        (
            "primary: {url: 'http://p'}\ncanary: {url: 'http://c'}\nshadow: {rate: 0}",
            "canary.shadow.rate: input should be greater than 0",
        ),
        (
            "primary: {url: 'http://p'}\ncanary: {url: 'http://c'}\nshadow: {file: ../x.jsonl}",
            "is outside the folder that holds mlci.yaml",
        ),
    ],
)
def test_bad_configuration_is_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        canary_config(tmp_path, text)
    line = caught.value.diagnostics()
    assert message in line, line
    assert "mlci.yaml:" in line and "\n" not in line


def test_command_line_overrides(tmp_path: Path) -> None:
    config = canary_config(
        tmp_path, "primary: {url: 'http://p'}\ncanary: {image: 'reg/x:1'}\nshadow: {}\nweight: 5"
    )
    changed = Overrides(weight=25, endpoints={"canary": {"url": "http://c:1"}}).apply(config)
    assert changed.weight == 25 and changed.canary.url == "http://c:1"
    assert changed.canary.image is None  # a URL replaces the image
    with pytest.raises(UsageError, match="--canary-digest: string should match"):
        Overrides(endpoints={"canary": {"digest": "sha256:nothex"}}).apply(config)
    with pytest.raises(UsageError, match="--weight 150"):
        Overrides(weight=150).apply(config)


# -- the gate's canary rule ---------------------------------------------------------------


def gate_on(document: dict[str, Any]) -> dict[str, Any]:
    from mlci.results import Results

    gate = evaluate_gate(
        Results.model_validate(document), GateConfig.model_validate({"rules": [{"kind": "canary"}]})
    )
    return gate.rules[0].model_dump()


def test_the_gate_binds_canary_evidence_to_the_image_and_model() -> None:
    doc = fixture("promote")
    digest = doc["image"]["digest"]
    canary = {
        "decision": "promote",
        "reason": "Promote to 50% of traffic: no harmful change found (score 100).",
        "weight": 10,
        "score": 100,
        "canary": {"digest": digest},
        "model_sha256": doc["model"]["sha256"],
    }
    rule = gate_on({**doc, "canary": canary})
    assert rule["status"] == "pass"
    assert rule["explanation"] == (
        "The canary analysis at 10% of traffic says: promote to 50% of traffic: no harmful "
        "change found (score 100)."
    )
    assert rule["observed"]["digest"] == digest
    other = gate_on({**doc, "canary": {**canary, "canary": {"digest": "sha256:" + "1" * 64}}})
    assert other["status"] == "missing"
    assert "judged image sha256:111111111111, not this candidate's image" in other["explanation"]
    unnamed = gate_on({**doc, "canary": {**canary, "canary": {}}})
    assert unnamed["status"] == "missing" and "does not say which image" in unnamed["explanation"]
    model = gate_on({**doc, "canary": {**canary, "model_sha256": "0" * 64}})
    assert model["status"] == "missing" and "about model 000000000000" in model["explanation"]
    # without an image in the results there is nothing to bind to but the model
    no_image = {k: v for k, v in doc.items() if k != "image"}
    assert gate_on({**no_image, "canary": {**canary, "canary": {}}})["status"] == "pass"
    assert gate_on({**doc, "canary": {**canary, "decision": "rollback"}})["status"] == "fail"


# -- how often the judge is wrong: a short simulation (benchmarks/bench_canary.py runs more) --


def test_simulated_false_rollbacks_and_power() -> None:
    world = World()
    runs = 300
    aa, aa_se = rollback_rate(simulate(world, runs, seed=11))
    assert aa <= 0.05 + 3 * max(aa_se, math.sqrt(0.05 * 0.95 / runs)), aa
    slow, slow_se = rollback_rate(simulate(world, runs, seed=12, latency_effect=0.2))
    assert slow >= 0.8, slow
    errors, _ = rollback_rate(simulate(world, runs, seed=13, error_effect=0.02))
    assert errors >= 0.95, errors
