"""The benchmark stage end to end on the generated project, and its configuration errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from mlci.bench.config import BenchmarkConfig
from mlci.bench.stage import run as run_stage
from mlci.commands import main
from mlci.config import load_config
from mlci.errors import ConfigError
from mlci.results import schema
from mlci.stages import StageSkipped
from project import Project

FAST = """\
benchmark:
  warmup: {queries: 5, seconds: 0.01}
  bootstrap: 200
  min_blocks: 4
  block_queries: 20
  scenarios:
"""

SCENARIOS = """\
    - kind: single_stream
      min_queries: 200
      min_duration: 0.05s
      time_budget: 3s
      max_regression: {p99: 10%, p50: 5%}
      budgets: {p99: 1000ms, mean: 1000ms}
    - kind: offline
      batch_sizes: [1, 16]
      min_duration: 0.05s
      time_budget: 2s
    - kind: server
      rate: 2000
      latency_bound: 500ms
      find_max_rate: true
      min_queries: 100
      min_duration: 0.05s
      time_budget: 2s
"""


def with_benchmark(project: Project, scenarios: str = SCENARIOS, head: str = FAST) -> Project:
    project.config.write_text(project.config.read_text() + head + scenarios)
    return project


def bench(project: Project, out: Path) -> tuple[int, dict[str, Any]]:
    code = main(["bench", "--config", str(project.config), "--out", str(out)])
    return code, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def benched(
    built_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, dict[str, Any], Path]:
    project = with_benchmark(built_project.copy(tmp_path_factory.mktemp("b") / "p"))
    out = tmp_path_factory.mktemp("out")
    code, results = bench(project, out)
    return code, results, out


def test_results_follow_the_schema_and_the_contract(
    benched: tuple[int, dict[str, Any], Path],
) -> None:
    code, results, out = benched
    jsonschema.Draft202012Validator(schema()).validate(results)
    section = results["benchmark"]
    assert results["stages"]["benchmark"]["status"] == "ran"
    assert set(section["summary"]) >= {
        "scenarios",
        "slower",
        "faster",
        "no_difference",
        "inconclusive",
    }
    assert section["device"]["selected"] == "cpu" and section["device"]["reason"]
    assert section["fingerprint"]["onnxruntime"] and section["fingerprint"]["cores"] >= 1
    assert section["models"]["candidate"]["size_bytes"] > 0
    assert section["models"]["baseline"]["load_s"] >= 0
    names = [s["name"] for s in section["scenarios"]]
    assert names == ["single-stream", "offline (batch 1)", "offline (batch 16)", "server"]
    assert section["summary"]["scenarios"] == 4
    verdicts = [c["verdict"] for s in section["scenarios"] for c in s["comparison"]]
    assert len(verdicts) == 2 + 1 + 1 + 2
    summary = section["summary"]
    assert (
        summary["slower"] + summary["faster"] + summary["no_difference"] + summary["inconclusive"]
        == 6
    )
    assert code == (1 if summary["slower"] else 0)
    assert "## Benchmark" in (out / "report.md").read_text()


def test_each_scenario_reports_what_it_promises(benched: tuple[int, dict[str, Any], Path]) -> None:
    single, off1, off16, server = benched[1]["benchmark"]["scenarios"]
    for sc in (single, off1, off16, server):
        for label in ("candidate", "baseline"):
            result = sc[label]
            assert result["queries"] >= 1 and result["warmup_queries"] >= 5
            for est in result["latency_ms"].values():
                if est["ci_low"] is not None and est["ci_high"] is not None:
                    assert est["ci_low"] <= est["value"] <= est["ci_high"]
    assert list(single["candidate"]["latency_ms"]) == ["p50", "p90", "p95", "p99", "p99.9", "mean"]
    assert single["settings"]["min_queries"] == 200
    if single["status"] == "ok":
        assert single["candidate"]["queries"] >= 200 and single["baseline"]["queries"] >= 200
    assert [c["max_regression"] for c in single["comparison"]] == [0.05, 0.1]
    assert {b["metric"] for b in single["budgets"]} == {"p99", "mean"}
    assert (
        off16["settings"]["batch_size"] == 16
        and off16["candidate"]["throughput_per_s"]["value"] > 0
    )
    assert (
        off1["candidate"]["throughput_per_s"] is not None
        and single["candidate"]["throughput_per_s"] is None
    )
    assert server["settings"]["arrivals"] == "poisson" and server["settings"]["rate_per_s"] == 2000
    assert server["budgets"][0]["metric"] == "p99" and server["budgets"][0]["limit_ms"] == 500
    assert "max_rate_per_s" in server["candidate"] and server["candidate"]["rate_probes"]


def test_tiny_time_budget_ends_with_not_enough_samples(project: Project, tmp_path: Path) -> None:
    scenarios = """\
    - kind: single_stream
      min_queries: 10000000
      min_duration: 0.05s
      time_budget: 0.3s
"""
    code, results = bench(with_benchmark(project, scenarios), tmp_path / "out")
    (sc,) = results["benchmark"]["scenarios"]
    assert sc["status"] == "not_enough_samples"
    assert "0.3 s time budget ran out" in sc["reason"] and "10000000 queries needed" in sc["reason"]
    assert {c["verdict"] for c in sc["comparison"]} == {"inconclusive"}
    assert results["benchmark"]["summary"]["not_enough_samples"] == 1
    assert code == 0


def test_auto_minimum_comes_from_early_stopping(project: Project, tmp_path: Path) -> None:
    scenarios = """\
    - kind: single_stream
      compare: [p50]
      budgets: {p99.9: 1s}
      min_duration: 0.01s
      time_budget: 0.2s
"""
    _, results = bench(with_benchmark(project, scenarios), tmp_path / "out")
    settings = results["benchmark"]["scenarios"][0]["settings"]
    assert settings["min_queries"] == 4603
    assert "p99.9 at 99% confidence" in settings["min_queries_rule"]


def test_without_baseline_the_candidate_runs_alone(project: Project, tmp_path: Path) -> None:
    text = project.config.read_text().replace(
        "    baseline:\n      path: models/baseline.onnx\n", ""
    )
    project.config.write_text(text)
    scenarios = "    - kind: single_stream\n      min_queries: 50\n      min_duration: 0.02s\n      time_budget: 1s\n"
    code, results = bench(with_benchmark(project, scenarios), tmp_path / "out")
    (sc,) = results["benchmark"]["scenarios"]
    assert sc["baseline"] is None and sc["comparison"] is None and code == 0
    assert results["benchmark"]["models"]["baseline"] is None


def test_device_override_from_the_environment(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenarios = "    - kind: single_stream\n      min_queries: 20\n      min_duration: 0.01s\n      time_budget: 1s\n"
    with_benchmark(project, scenarios)
    monkeypatch.setenv("MLCI_BENCHMARK_DEVICE", "cpu")
    _, results = bench(project, tmp_path / "out")
    assert results["benchmark"]["device"]["requested"] == "cpu"
    monkeypatch.setenv("MLCI_BENCHMARK_DEVICE", "gpu")
    assert main(["bench", "--config", str(project.config), "--out", str(tmp_path / "o2")]) == 2
    assert "MLCI_BENCHMARK_DEVICE='gpu' is not a device" in capsys.readouterr().err


def test_no_section_skips_the_stage(project: Project, tmp_path: Path) -> None:
    code = main(["bench", "--config", str(project.config), "--out", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0
    assert results["stages"]["benchmark"] == {
        "status": "skipped",
        "reason": "no benchmark configured",
        "duration_s": results["stages"]["benchmark"]["duration_s"],
    }


def test_a_model_that_is_not_onnx_is_skipped_with_a_reason() -> None:
    cfg = BenchmarkConfig.model_validate({"scenarios": [{"kind": "single_stream"}]})
    ctx = SimpleNamespace(
        loaded=SimpleNamespace(config=SimpleNamespace(benchmark=cfg)),
        candidate=SimpleNamespace(info=SimpleNamespace(format="skops")),
        baseline=None,
    )
    with pytest.raises(StageSkipped, match="the candidate is skops"):
        run_stage(ctx)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- configuration


def config_error(project: Project, scenarios: str, head: str = FAST) -> str:
    with_benchmark(project, scenarios, head)
    with pytest.raises(ConfigError) as info:
        load_config(project.config)
    return info.value.diagnostics()


def line_of(project: Project, needle: str) -> int:
    return next(
        i for i, line in enumerate(project.config.read_text().splitlines(), 1) if needle in line
    )


def test_unknown_scenario_key_points_at_it(project: Project) -> None:
    text = config_error(project, "    - kind: single_stream\n      time_budjet: 2s\n")
    assert (
        f"mlci.yaml:{line_of(project, 'time_budjet')}:7: benchmark.scenarios[0].time_budjet" in text
    )
    assert "did you mean 'time_budget'" in text


@pytest.mark.parametrize(
    ("scenarios", "message"),
    [
        ("    - kind: server\n", "needs 'rate'"),
        ("    - kind: single_stream\n      time_budget: 5 parsecs\n", "expected a duration"),
        ("    - kind: single_stream\n      compare: [p100]\n", "unknown latency metric 'p100'"),
        (
            "    - kind: single_stream\n      max_regression: {p90: 5%}\n",
            "max_regression names 'p90'",
        ),
        ("    - kind: single_stream\n      max_regression: lots\n", "expected a fraction"),
        (
            "    - kind: offline\n      find_max_rate: true\n",
            "'find_max_rate' goes with kind 'server'",
        ),
        (
            "    - kind: single_stream\n      min_duration: 5s\n      time_budget: 1s\n",
            "longer than 'time_budget'",
        ),
        ("    - kind: warp_speed\n", "benchmark.scenarios[0].kind"),
        ("    - kind: offline\n      batch_sizes: []\n", "batch_sizes"),
    ],
)
def test_bad_scenarios(project: Project, scenarios: str, message: str) -> None:
    text = config_error(project, scenarios)
    assert message in text
    assert "mlci.yaml:" in text


def test_bad_device(project: Project) -> None:
    head = FAST.replace("  warmup:", "  device: tpu\n  warmup:")
    text = config_error(project, "    - kind: single_stream\n", head)
    assert f"mlci.yaml:{line_of(project, 'device: tpu')}:3: benchmark.device" in text


def test_plan_that_cannot_fit_its_budget_points_at_the_budget(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios = "    - kind: single_stream\n      min_duration: 0.99s\n      time_budget: 1s\n"
    with_benchmark(project, scenarios)
    assert main(["bench", "--config", str(project.config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (
        f"mlci.yaml:{line_of(project, 'time_budget: 1s')}:7: benchmark.scenarios[0].time_budget"
        in err
    )
    assert "cannot hold the warm-up of 2 model(s)" in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_schema_rejects_a_malformed_section(benched: tuple[int, dict[str, Any], Path]) -> None:
    results = json.loads(json.dumps(benched[1]))
    results["benchmark"]["scenarios"][0]["comparison"][0]["verdict"] = "a bit slower"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(results)
    del results["benchmark"]["scenarios"][0]["comparison"][0]["verdict"]
    results["benchmark"]["scenarios"][0]["comparison"][0]["verdict"] = "slower"
    results["benchmark"]["scenarios"][0]["candidate"]["latency_ms"]["p50"]["extra"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(results)


def test_every_block_starts_with_settling_queries_that_are_not_recorded() -> None:
    # The first queries after switching model or session find cold caches; they run but are
    # not recorded, so the percentiles describe the model rather than the harness.
    from mlci.bench.scenarios import Plan, Target, back_to_back_runner, interleave

    log: list[tuple[str, int]] = []

    def sessions(label: str) -> list[list[Any]]:
        return [[(lambda s=s: log.append((label, s)))] for s in range(3)]

    targets = [Target("candidate", sessions("c")), Target("baseline", sessions("b"))]
    plan = Plan(
        min_queries=1,
        min_duration_s=0.0,
        time_budget_s=10.0,
        min_blocks=6,
        block_queries=5,
        block_seconds=1.0,
        warmup_queries=2,
        warmup_seconds=0.0,
        settle_queries=3,
    )
    outcome = interleave(targets, plan, back_to_back_runner, seed=1)
    assert outcome.rounds == 6
    for target, label in zip(targets, "cb", strict=True):
        assert [len(b) for b in target.blocks] == [5] * 6
        assert target.groups == [0, 1, 2, 0, 1, 2]
        calls = [s for who, s in log if who == label]
        # Warm-up of every session, then per block 3 settling and 5 recorded queries.
        assert len(calls) == target.warmup_queries + 6 * (3 + 5)
        measured = calls[target.warmup_queries :]
        for k in range(6):
            assert measured[8 * k : 8 * k + 8] == [k % 3] * 8
