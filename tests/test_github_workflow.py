"""Workflow commands and files: escaping of annotations, random delimiters for outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlci.errors import UsageError
from mlci.github import workflow


def test_message_and_property_escaping() -> None:
    line = workflow.annotation(
        "error",
        "100% worse\r\non slice a,b",
        file="models/a:b,c.onnx",
        line=3,
        title="gate: block\n::warning::injected",
    )
    assert line == (
        "::error file=models/a%3Ab%2Cc.onnx,line=3,title=gate%3A block%0A%3A%3Awarning%3A%3Ainjected"
        "::100%25 worse%0D%0Aon slice a,b"
    )
    assert "\n" not in line


def test_empty_properties_are_left_out() -> None:
    assert workflow.command("notice", "hi", file=None, title="") == "::notice::hi"
    assert workflow.annotation("warning", "w", file="a.py") == "::warning file=a.py::w"
    with pytest.raises(ValueError, match="annotation level"):
        workflow.annotation("fatal", "x")
    with pytest.raises(ValueError, match="command name"):
        workflow.command("bad name", "x")


def test_outputs_use_random_delimiters(tmp_path: Path) -> None:
    output = tmp_path / "output"
    env = {"GITHUB_OUTPUT": str(output)}
    hostile = "line 1\nEOF\nghadelimiter_\ninjected=1"
    assert workflow.set_outputs({"report": hostile, "decision": "block", "empty": None}, env)
    assert workflow.set_outputs({"decision": "promote"}, env)  # appended; the last one wins
    text = output.read_text()
    delimiters = {line.split("<<", 1)[1] for line in text.splitlines() if "<<" in line}
    assert len(delimiters) == 4 and all(d.startswith("ghadelimiter_") for d in delimiters)
    assert workflow.parse_file_commands(text) == {
        "report": hostile,
        "decision": "promote",
        "empty": "",
    }


def test_delimiter_never_occurs_in_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["aa", "bb"])
    monkeypatch.setattr(workflow.secrets, "token_hex", lambda n: next(tokens))
    assert workflow.delimiter_for("x ghadelimiter_aa y") == "ghadelimiter_bb"


def test_env_and_summary(tmp_path: Path) -> None:
    env = {"GITHUB_ENV": str(tmp_path / "env"), "GITHUB_STEP_SUMMARY": str(tmp_path / "sum")}
    assert workflow.set_env({"MLCI_DECISION": "hold"}, env)
    assert workflow.append_summary("# one", env) and workflow.append_summary("# two\n", env)
    assert workflow.parse_file_commands((tmp_path / "env").read_text()) == {"MLCI_DECISION": "hold"}
    assert (tmp_path / "sum").read_text() == "# one\n# two\n"
    with pytest.raises(UsageError, match="not a valid output"):
        workflow.set_outputs({"bad\nname": "x"}, env | {"GITHUB_OUTPUT": str(tmp_path / "o")})


def test_outside_actions_nothing_is_written() -> None:
    assert workflow.set_outputs({"a": "b"}, {}) is False
    assert workflow.append_summary("x", {}) is False
