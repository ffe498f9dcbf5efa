from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlci import __version__
from mlci.commands import build_parser, main

README = Path(__file__).resolve().parent.parent / "README.md"
HEAVY = (
    "numpy",
    "onnxruntime",
    "onnx",
    "sklearn",
    "scipy",
    "pyarrow",
    "pydantic",
    "yaml",
    "jinja2",
    "rich",
)


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mlci {__version__}"


@pytest.mark.parametrize(
    "command",
    [[], *([c] for c in ["check", "test", "bench", "schema", "convert", "report", "gate", "card"])],
)
def test_every_help_is_useful(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text
    assert len(text.splitlines()) > 8


def test_readme_lists_exactly_the_commands() -> None:
    documented = sorted(set(re.findall(r"^\| `mlci ([a-z][\w-]*)", README.read_text(), flags=re.M)))
    assert documented == subcommands()


def test_help_imports_nothing_heavy() -> None:
    # Startup speed: the CLI must not import heavy libraries before a command needs them.
    code = (
        "import sys, mlci.commands; mlci.commands.build_parser(); "
        "print(','.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    modules = set(loaded.stdout.strip().split(","))
    assert not [m for m in HEAVY if m in modules]


@pytest.mark.parametrize("flag", [[], ["--results"]])
def test_schema_prints_a_valid_json_schema(
    flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", *flag]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: mlci" in capsys.readouterr().out


def test_report_rejects_a_bad_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"schema_version": "1.0"}))
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mlci: error: {bad}: results document is invalid")
    assert len(err.splitlines()) == 1


BASE_CONFIG = {
    "version": 1,
    "data": {"path": "data/eval.csv", "target": "y"},
    "models": [{"name": "m", "path": "m.onnx"}],
}


def readme_yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_configuration_examples_are_valid(tmp_path: Path) -> None:
    # Every mlci.yaml snippet in the README must be accepted by the real schema.
    import yaml

    from mlci.config import Config, load_config

    checked = 0
    for block in readme_yaml_blocks():
        snippet = yaml.safe_load(block)
        if not isinstance(snippet, dict) or not set(snippet) <= set(Config.model_fields):
            continue  # a GitHub workflow, not mlci.yaml
        document = {**BASE_CONFIG, **snippet}
        if "data" in snippet and "version" not in snippet:
            document["data"] = {**BASE_CONFIG["data"], **snippet["data"]}
        path = tmp_path / f"mlci{checked}.yaml"
        path.write_text(yaml.safe_dump(document))
        load_config(path)
        checked += 1
    assert checked >= 5


def test_check_runs_the_chosen_stages_and_fail_on_never(project: Any, tmp_path: Path) -> None:
    # a gate that blocks whatever happens: the candidate's ROC AUC can never reach 1.01
    project.config.write_text(
        project.config.read_text()
        + "gate:\n  rules:\n    - {kind: metric, metric: roc_auc, min: 1.01}\n"
    )
    out = tmp_path / "out"
    args = ["check", "-q", "-c", str(project.config), "-o", str(out)]
    assert main([*args, "--only", "evaluate,gate"]) == 1
    stages = json.loads((out / "results.json").read_text())["stages"]
    assert list(stages) == ["evaluate", "gate"]
    skip = "evaluate,benchmark,image,sbom,sign,canary,card,attest"
    assert main([*args, "--skip", skip, "--fail-on", "never"]) == 0
    document = json.loads((out / "results.json").read_text())
    assert list(document["stages"]) == ["tests", "gate"]
    assert document["gate"]["decision"] in ("block", "hold")
    assert main([*args, "--only", "imagee"]) == 2
    assert main(["evaluate", "-q", "-c", str(project.config), "-o", str(out)]) == 0
    assert list(json.loads((out / "results.json").read_text())["stages"]) == ["evaluate"]
