"""`mlci test` end to end: the tests section, JUnit XML, the report, config errors, pytest files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlci.commands import main
from mlci.results import schema
from project import Project, make_frame, write_csv

TESTS = """\
tests:
  checks:
    - kind: metric
      metric: roc_auc
      min: 0.6
    - kind: metric
      metric: accuracy
      min: 0.99
      slice: region=north
      required: false
    - kind: metric
      metric: log_loss
      max: 2.0
      where: "age < 40"
    - kind: invariance
      feature: id
    - kind: invariance
      id: region-within-age
      feature: region
      within: age
    - kind: directional
      feature: income
    - kind: directional
      feature: age
      direction: decreasing
      step: 5
    - kind: robustness
      noise: 0.05
    - kind: contract
    - kind: schema
    - kind: missing
    - kind: range
    - kind: drift
      features: [age, income, region]
"""


def configure(project: Project, tests: str, reference: bool = True, shift: float = 1.0) -> None:
    if reference:
        frame = make_frame(3000, seed=1)
        frame["income"] = frame["income"] * shift
        write_csv(project.root / "data" / "reference.csv", frame)
        text = project.config.read_text().replace(
            "  id: id\n", "  id: id\n  reference: data/reference.csv\n"
        )
        project.config.write_text(text)
    with project.config.open("a") as handle:
        handle.write(textwrap.dedent(tests))


def run_test(project: Project, out: Path, expected: int) -> dict[str, Any]:
    assert main(["test", "--config", str(project.config), "--out", str(out), "-q"]) == expected
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def tested(
    built_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    project = built_project.copy(tmp_path_factory.mktemp("tests") / "project")
    configure(project, TESTS)
    out = project.root / "out"
    return run_test(project, out, 1), out


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in results["tests"]["results"]}


def test_the_section_follows_the_schema_and_counts_add_up(tested) -> None:
    results, _ = tested
    jsonschema.Draft202012Validator(schema()).validate(results)
    section = results["tests"]
    rows = section["results"]
    summary = section["summary"]
    assert summary["total"] == len(rows) == 19
    for status in ("passed", "failed", "error", "skipped"):
        assert summary[status] == sum(r["status"] == status for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert results["stages"]["tests"]["status"] == "ran"
    assert section["junit"] == "junit.xml"


def test_outcomes_of_each_kind(tested) -> None:
    results, _ = tested
    tests = by_id(results)
    assert tests["metric:roc_auc"]["status"] == "passed"
    assert tests["metric:roc_auc"]["threshold"] == 0.6
    north = tests["metric:accuracy[region=north]"]
    assert north["status"] == "failed" and north["required"] is False
    assert north["observed"] < 0.99 and "on slice 'region=north' (" in north["message"]
    assert tests["metric:log_loss[age < 40]"]["status"] == "passed"
    assert tests["invariance:id"]["status"] == "passed"
    # The candidate reads region: shuffling it within age groups changes its scores.
    region = tests["region-within-age"]
    assert region["status"] == "failed" and region["kind"] == "invariance"
    assert region["details"]["examples"] and region["details"]["count"] > 0
    assert tests["directional:income"]["status"] == "passed"
    # Older applicants are less likely to default in the generated data.
    assert tests["directional:age"]["status"] == "passed"
    assert tests["robustness"]["status"] == "passed"
    for part in ("inputs", "outputs", "probabilities", "determinism"):
        assert tests[f"contract:{part}"]["status"] == "passed", tests[f"contract:{part}"]
    assert tests["contract:parity"]["status"] == "skipped"
    for name in ("schema", "missing", "range", "drift:age", "drift:income", "drift:region"):
        assert tests[name]["status"] == "passed", tests[name]["message"]
    assert all(r["duration_s"] >= 0 for r in results["tests"]["results"])


def test_junit_xml_is_written_next_to_the_results(tested) -> None:
    results, out = tested
    root = ET.parse(out / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    summary = results["tests"]["summary"]
    assert int(suite.get("tests")) == len(cases) == summary["total"]
    assert int(suite.get("failures")) == summary["failed"]
    assert int(suite.get("skipped")) == summary["skipped"]
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {r["id"] for r in results["tests"]["results"] if r["status"] == "failed"}
    from junitparser import Failure, JUnitXml, Skipped

    parsed = JUnitXml.fromfile(str(out / "junit.xml"))
    seen = {}
    for parsed_suite in parsed:
        for case in parsed_suite:
            kinds = {type(r) for r in case.result}
            seen[case.name] = (
                "failed" if Failure in kinds else "skipped" if Skipped in kinds else "passed"
            )
            assert case.time >= 0
    assert seen == {r["id"]: r["status"] for r in results["tests"]["results"]}


def test_the_report_lists_failures_first(tested) -> None:
    _, out = tested
    report = (out / "report.md").read_text()
    section = report[report.index("## Tests") :]
    failures = section.index("region-within-age")
    assert failures < section.index("<details><summary>")
    assert "(advisory)" in section
    passed = section.index("passed</summary>")
    assert passed < section.index("`metric:roc_auc`")


def test_all_passing_tests_exit_zero_and_check_writes_junit(
    project: Project, tmp_path: Path
) -> None:
    configure(
        project,
        """\
        tests:
          checks:
            - kind: metric
              metric: roc_auc
              min: 0.6
            - kind: invariance
              feature: tenure
              perturb: replace
              value: 3
              tolerance: 1.0
            - kind: drift
        """,
    )
    results = run_test(project, tmp_path / "out", 0)
    assert results["tests"]["summary"]["failed"] == 0
    assert main(["check", "-c", str(project.config), "-o", str(tmp_path / "all"), "-q"]) == 0
    assert (tmp_path / "all" / "junit.xml").is_file()
    document = json.loads((tmp_path / "all" / "results.json").read_text())
    assert document["tests"]["summary"]["total"] == 6 and "evaluation" in document


def test_a_shifted_reference_fails_drift(project: Project, tmp_path: Path) -> None:
    configure(project, "tests:\n  checks:\n    - kind: drift\n      psi: 0.1\n", shift=1.6)
    results = run_test(project, tmp_path / "out", 1)
    tests = by_id(results)
    assert tests["drift:income"]["status"] == "failed"
    assert tests["drift:income"]["observed"] > 0.1
    assert tests["drift:age"]["status"] == "passed"


def test_no_tests_section_skips_the_stage(project: Project, tmp_path: Path) -> None:
    results = run_test(project, tmp_path / "out", 0)
    assert results["stages"]["tests"] == {
        "status": "skipped",
        "reason": "no tests configured",
        "duration_s": results["stages"]["tests"]["duration_s"],
    }
    assert "tests" not in results


def test_a_model_failing_at_run_time_is_an_error(project: Project, tmp_path: Path) -> None:
    configure(
        project,
        """\
        tests:
          checks:
            - kind: invariance
              feature: age
              perturb: replace
              value: old
        """,
    )
    results = run_test(project, tmp_path / "out", 1)
    (row,) = results["tests"]["results"]
    assert row["status"] == "error"
    assert "'age'" in row["message"] and "numeric" in row["message"]


BAD_CONFIGS = [
    (
        "    - kind: invariance\n      feature: regoin\n",
        r"mlci.yaml:\d+:\d+: tests.checks\[0\].feature: no column 'regoin' in .*eval.csv "
        r"\(did you mean 'region'\?\)",
    ),
    (
        "    - kind: metric\n      metric: roc_auc\n      min: 0.5\n      slice: region=nort\n",
        r"tests.checks\[0\].slice: no declared slice 'region=nort' \(did you mean 'region=north'\?\)",
    ),
    (
        "    - kind: metric\n      metric: roc_acu\n      min: 0.5\n",
        r"tests.checks\[0\].metric: .*roc_acu",
    ),
    (
        "    - kind: drift\n      tolerance: 0.1\n",
        r"tests.checks\[0\]: 'tolerance' does not apply to a drift test \(it takes: ",
    ),
    (
        "    - kind: invariance\n      feature: age\n      tolerence: 0.1\n",
        r"tests.checks\[0\].tolerence: unknown key 'tolerence' \(did you mean 'tolerance'\?\)",
    ),
    ("    - kind: directional\n", r"tests.checks\[0\]: a directional test needs 'feature'"),
    (
        "    - kind: directional\n      feature: region\n",
        r"tests.checks\[0\].feature: 'region' is categorical, not numeric",
    ),
    (
        "    - kind: invariance\n      feature: age\n      where: 'agee > 3'\n",
        r"tests.checks\[0\].where: no column 'agee' \(did you mean 'age'\?\)",
    ),
    (
        "    - kind: drift\n      features: [income, tenur]\n",
        r"tests.checks\[0\].features\[1\]: no column 'tenur'",
    ),
    ("    - kind: fairness\n", r"tests.checks\[0\].kind: "),
]


@pytest.mark.parametrize(("check", "pattern"), BAD_CONFIGS)
def test_bad_test_configuration_is_one_line_and_exit_2(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str], check: str, pattern: str
) -> None:
    configure(project, "tests:\n  checks:\n" + check)
    out = tmp_path / "out"
    assert main(["test", "-c", str(project.config), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mlci: error: ")
    import re

    assert re.search(pattern, err), err
    assert not out.exists()


def test_data_checks_without_a_reference_are_a_config_error(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(project, "tests:\n  checks:\n    - kind: drift\n", reference=False)
    assert main(["test", "-c", str(project.config), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "tests.checks[0].kind: a drift check compares with reference data" in err
    assert "tip: set data.reference" in err


USER_TESTS = """\
from mlci.testing import assert_directional, assert_invariant, assert_metric_at_least


def test_id_does_not_matter(mlci_model, mlci_data):
    assert_invariant(mlci_model, mlci_data, "id")


def test_region_does_not_matter(mlci_model, mlci_data):
    assert_invariant(mlci_model, mlci_data, "region")


def test_north(mlci_model, mlci_data, mlci_slices):
    assert_metric_at_least(mlci_model, mlci_data, "roc_auc", 0.6, rows=mlci_slices["region=north"])


def test_fixtures(mlci_config, mlci_baseline, mlci_reference, mlci_data):
    assert mlci_reference.rows == 3000 and mlci_data.rows == 1500
    assert mlci_baseline.info.name == "demo (baseline)"
"""


def test_user_pytest_files_run_as_part_of_the_stage(project: Project, tmp_path: Path) -> None:
    (project.root / "model_tests").mkdir()
    (project.root / "model_tests" / "test_model.py").write_text(USER_TESTS)
    configure(project, "tests:\n  pytest: [model_tests/test_model.py]\n")
    results = run_test(project, tmp_path / "out", 1)
    tests = by_id(results)
    prefix = "pytest:model_tests.test_model::"
    assert set(tests) == {
        prefix + n
        for n in (
            "test_id_does_not_matter",
            "test_region_does_not_matter",
            "test_north",
            "test_fixtures",
        )
    }
    assert tests[prefix + "test_id_does_not_matter"]["status"] == "passed"
    assert tests[prefix + "test_fixtures"]["status"] == "passed"
    region = tests[prefix + "test_region_does_not_matter"]
    assert region["status"] == "failed" and region["kind"] == "pytest"
    assert "shuffling 'region' changed the score of" in region["message"]

    # The same files run the same way with plain pytest, collected from mlci.yaml.
    plain = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--mlci-config",
            "mlci.yaml",
        ],
        cwd=project.root,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 1, plain.stdout
    assert "1 failed, 3 passed" in plain.stdout


def test_fixtures_skip_without_a_configuration(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "def test_model(mlci_model):\n    pass\n\n\ndef test_plain():\n    assert True\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout
    assert "run pytest with --mlci-config" in proc.stdout


def test_a_missing_pytest_file_is_a_config_error(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(project, "tests:\n  pytest: [model_tests/test_nothing.py]\n")
    assert main(["test", "-c", str(project.config), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "tests.pytest[0]: no such test file 'model_tests/test_nothing.py'" in err


def test_reading_the_config_does_not_import_the_checks() -> None:
    # Importing the configuration schema does not import the checks (or numpy through them).
    code = (
        "import sys, mlci.config; "
        "print('mlci.testing.checks' in sys.modules, 'mlci.testing.stage' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]
