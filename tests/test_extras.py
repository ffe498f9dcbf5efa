"""What the setup action installs: the extras a configuration needs, and stage selection."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import pytest

from mlci.errors import ConfigError, UsageError
from mlci.extras import EXTRAS, extras_for, main, needed_extras, parse_extras
from mlci.stage_selection import STAGE_NAMES, parse_stage_list, select_stages

ROOT = Path(__file__).resolve().parent.parent


def test_the_list_of_extras_is_the_packages() -> None:
    declared = set(metadata("mlci").get_all("Provides-Extra") or []) - {"test", "bench", "dev"}
    assert set(EXTRAS) == declared


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"models": [{"name": "m", "path": "m.onnx"}]}, []),
        ({"models": [{"name": "m", "path": "models/M.SKOPS"}]}, ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.onnx", "baseline": {"path": "b.joblib"}}]},
         ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.bin", "format": "pickle"}]}, ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.onnx", "convert": True}]}, ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.onnx"}], "card": {"license": "MIT"}}, ["card"]),
        ({"models": [], "image": {"base": "b.tar"}}, ["supply"]),
        ({"models": [], "image": {"sbom": False, "sign": {"method": "none"}}}, []),
        ({"models": [], "image": {"sbom": False, "sign": {"method": "keyless"}}}, ["supply"]),
        ({"models": [], "image": {"sbom": False, "dockerfile": "Dockerfile"}}, ["image"]),
        ({"models": [], "stages": ["evaluate", "sign"]}, ["supply"]),
        ({"models": [{"name": "m", "path": "m.pkl"}], "card": {}, "image": {}},
         ["sklearn", "card", "supply"]),
        ({"models": [], "tests": {"pytest": ["model_tests/test_m.py"]}}, ["pytest"]),
        ({"models": [], "tests": {"checks": [{"kind": "contract"}]}}, []),
        ({"models": "not a list", "image": "nor a mapping"}, []),
    ],
)  # fmt: skip
def test_extras_follow_the_configuration(config: dict, expected: list[str]) -> None:
    assert extras_for(config) == expected


def test_the_credit_example_needs_the_card_extra() -> None:
    assert needed_extras(ROOT / "examples" / "credit") == ["card"]


def test_bad_configuration_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        needed_extras(tmp_path / "missing.yaml")
    bad = tmp_path / "mlci.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match=r"mlci.yaml:\d+:\d+: invalid YAML"):
        needed_extras(tmp_path)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        needed_extras(bad)


def test_named_extras_are_checked() -> None:
    assert parse_extras("supply, sklearn") == ["sklearn", "supply"]
    with pytest.raises(UsageError, match="unknown extra 'suply' \\(did you mean 'supply'\\?\\)"):
        parse_extras("suply")


def test_the_module_prints_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "mlci.yaml").write_text("models:\n  - {name: m, path: m.skops}\n")
    run = [sys.executable, "-m", "mlci.extras", "--config", str(tmp_path)]
    assert subprocess.run(run, capture_output=True, text=True).stdout == "sklearn\n"
    both = subprocess.run([*run, "--extras", "auto,image"], capture_output=True, text=True)
    assert both.stdout == "sklearn,image\n"
    none = subprocess.run([*run, "--extras", "none"], capture_output=True, text=True)
    assert none.stdout == "\n"
    bad = subprocess.run([*run, "--extras", "gpu"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("mlci: error: unknown extra 'gpu'")
    assert main(["--extras", "card"]) == 0


def test_stage_selection() -> None:
    available = {"evaluate", "tests", "benchmark", "gate"}
    configured = ["evaluate", "tests", "benchmark", "gate"]
    assert select_stages(configured, None, ["benchmark"], available) == [
        "evaluate", "tests", "gate",
    ]  # fmt: skip
    assert select_stages(configured, ["gate", "tests"], None, available) == ["tests", "gate"]
    assert select_stages(["tests"], ["evaluate"], None, available) == ["evaluate"]
    with pytest.raises(UsageError, match="stage 'image' is not available"):
        select_stages(configured, ["image"], None, available)
    with pytest.raises(UsageError, match="no stage left"):
        select_stages(configured, ["tests"], ["tests"], available)
    assert parse_stage_list(" evaluate, tests ", "--only") == ["evaluate", "tests"]
    assert parse_stage_list(None, "--only") is None
    with pytest.raises(UsageError, match="--skip: unknown stage 'test' \\(did you mean 'tests'"):
        parse_stage_list("test", "--skip")
    assert STAGE_NAMES[-1] == "gate"
