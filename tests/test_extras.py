"""What the setup action installs: the extras a configuration needs, and stage selection."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import pytest

from mlci.commands import main
from mlci.errors import ConfigError, UsageError
from mlci.extras import EXTRAS, extras_for, needed_extras, parse_extras
from mlci.pipeline import choose_stages, parse_stage_list
from mlci.stages import STAGES

ROOT = Path(__file__).resolve().parent.parent


def test_the_list_of_extras_is_the_packages() -> None:
    declared = set(metadata("mlci").get_all("Provides-Extra") or []) - {"test", "bench", "dev"}
    assert set(EXTRAS) == declared


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"models": [{"name": "m", "path": "m.onnx"}]}, []),
        ({"models": [{"name": "m", "path": "models/M.SKOPS"}]}, ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.onnx"}], "engine": {"kind": "dask"}}, ["dask"]),
        ({"models": [{"name": "m", "path": "m.onnx"}], "engine": {"kind": "local"}}, []),
        ({"models": [{"name": "m", "path": "m.onnx", "baseline": {"path": "b.joblib"}}]},
         ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.bin", "format": "pickle"}]}, ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.onnx", "convert": True}]}, ["sklearn"]),
        ({"models": [{"name": "m", "path": "m.onnx"}], "card": {"license": "MIT"}}, ["card"]),
        ({"models": [], "image": {"base": "b.tar"}}, ["supply"]),
        ({"models": [], "image": {"sbom": False, "sign": {"method": "none"}}}, []),
        ({"models": [], "image": {"sbom": False, "sign": {"method": "keyless"}}}, ["supply"]),
        ({"models": [{"name": "m", "source": "models:/credit@champion"}]}, ["mlflow"]),
        ({"models": [{"name": "m", "path": "m.onnx", "verify": {"key": "k.pub"}}]}, ["supply"]),
        ({"models": [{"name": "m", "source": "git:main:m.skops"}]}, ["sklearn"]),
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


def test_the_credit_example_needs_the_card_and_supply_extras() -> None:
    # The CycloneDX card, and the image's SBOM and signatures.
    assert needed_extras(ROOT / "examples" / "credit") == ["card", "supply"]


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


def test_the_command_prints_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mlci.yaml").write_text("models:\n  - {name: m, path: m.skops}\n")
    run = ["extras", "--config", str(tmp_path)]
    for extra, printed in (([], "sklearn"), (["--extras", "auto,image"], "sklearn,image")):
        assert main([*run, *extra]) == 0
        assert capsys.readouterr().out == printed + "\n"
    assert main([*run, "--extras", "none"]) == 0
    assert capsys.readouterr().out == "\n"
    assert main([*run, "--extras", "gpu"]) == 2
    assert capsys.readouterr().err.startswith("mlci: error: unknown extra 'gpu'")
    # The setup action runs it as a program.
    done = subprocess.run(
        [sys.executable, "-m", "mlci", *run], capture_output=True, text=True, check=True
    )
    assert done.stdout == "sklearn\n"


def test_stage_selection() -> None:
    configured = ["evaluate", "tests", "benchmark", "gate"]
    assert choose_stages(configured, (), ["benchmark"]) == ["evaluate", "tests", "gate"]
    # --only chooses among every stage, in the registry's order, whatever mlci.yaml lists.
    assert choose_stages(configured, ["gate", "tests"]) == ["tests", "gate"]
    assert choose_stages(["tests"], ["image", "evaluate"]) == ["evaluate", "image"]
    assert choose_stages(list(STAGES)) == list(STAGES)
    with pytest.raises(UsageError, match="no stage left"):
        choose_stages(configured, ["tests"], ["tests"])
    assert parse_stage_list(" evaluate, tests ", "--only") == ["evaluate", "tests"]
    assert parse_stage_list(None, "--only") == []
    with pytest.raises(UsageError, match="--skip: unknown stage 'test' \\(did you mean 'tests'"):
        parse_stage_list("test", "--skip")
