"""The local runner itself: expressions and step semantics as GitHub documents them.

Expected values come from GitHub's documentation ("Evaluate expressions in workflows and
actions", "Workflow commands", "Metadata syntax"), so the runner that tests mlci's actions is
itself held to the platform's rules.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
from actions_expressions import ExpressionError, Scope, condition, evaluate, interpolate, parse
from actions_runner import ActionError, JobState, Runner, parse_file_commands

CONTEXTS = {
    "github": {"event_name": "push", "event": {"issue": {"labels": [{"name": "bug"},
                                                                    {"name": "help"}]}}},
    "needs": {"a": {"result": "success"}, "b": {"result": "failure"}},
    "inputs": {"fail-on": "block", "empty": ""},
    "steps": {"check": {"outputs": {"exit-code": "2"}}},
}  # fmt: skip


def value(text: str, status: str = "success") -> Any:
    scope = Scope(CONTEXTS, tuple(CONTEXTS), status=status)
    return evaluate(parse(text), scope)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # literals and the documented coercions
        ("null", None), ("true", True), ("0x10", 16), ("-2.5", -2.5), ("'it''s'", "it's"),
        ("1 == '1'", True), ("'abc' == 'ABC'", True), ("null == 0", True), ("'' == 0", True),
        ("'abc' == 0", False), ("true == 1", True), ("'2' > 10", False), ("'b' > 'A'", True),
        ("!''", True), ("!'0'", False), ("!0", True),
        # && and || return operands: the ternary idiom
        ("github.event_name == 'push' && 'yes' || 'no'", "yes"),
        ("github.event_name == 'pull_request' && 'yes' || 'no'", "no"),
        # property access: case-insensitive names, missing is null, index and filter
        ("GitHub.Event_Name", "push"), ("github.nothing.here", None), ("inputs.fail-on", "block"),
        ("inputs['fail-on']", "block"), ("steps.check.outputs.exit-code != '2'", False),
        ("github.event.issue.labels[1].name", "help"),
        ("contains(github.event.issue.labels.*.name, 'bug')", True),
        ("join(github.event.issue.labels.*.name, ', ')", "bug, help"),
        ("contains(needs.*.result, 'failure')", True),
        # functions, as in the documentation's examples
        ("contains('Hello world', 'llo')", True), ("startsWith('Hello world', 'he')", True),
        ("endsWith('Hello world', 'LD')", True),
        ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
        ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
         "{Hello Mona the Octocat!}"),
        ("fromJSON('{\"a\": [1, 2]}').a[1]", 2), ("toJSON(true)", "true"),
    ],
)  # fmt: skip
def test_expressions(expression: str, expected: Any) -> None:
    assert value(expression) == expected


def test_status_functions_and_conditions() -> None:
    scope = Scope(CONTEXTS, tuple(CONTEXTS), status="failure")
    assert condition("always()", scope) and condition("failure()", scope)
    assert not condition("true", scope)  # an if without status function means success() && ...
    assert not condition("${{ inputs.fail-on == 'block' }}", scope)
    assert condition("", Scope(CONTEXTS, tuple(CONTEXTS)))
    with pytest.raises(ExpressionError, match="mixes text"):
        condition("${{ true }} && false", scope)
    assert math.isnan(float("nan"))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fooBar('x')", "Unrecognized function: 'fooBar'"),
        ("secrets.TOKEN", "Unrecognized named-value: 'secrets'"),
        ("contains('a')", "takes 2 to 2 arguments"),
        ("inputs.x ==", "expected more"),
        ("format('{1}', 'a')", "bad placeholder"),
        ("a $ b", "unexpected symbol"),
    ],
)
def test_what_github_refuses_is_refused(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        value(expression)


def test_interpolation_keeps_a_lone_expressions_type_and_strings_others() -> None:
    scope = Scope(CONTEXTS, tuple(CONTEXTS))
    assert interpolate("${{ 1 == 1 }}", scope) is True
    assert interpolate("code ${{ steps.check.outputs.exit-code }}!", scope) == "code 2!"
    assert interpolate("${{ '}}' }}", scope) == "}}"
    assert interpolate("no expression", scope) == "no expression"


def test_file_commands_are_read_as_the_runner_reads_them() -> None:
    text = "a=1\nb<<EOF\nline 1\nline=2\nEOF\nc=x=y\n"
    assert parse_file_commands(text) == {"a": "1", "b": "line 1\nline=2", "c": "x=y"}
    with pytest.raises(ValueError, match="matching delimiter"):
        parse_file_commands("b<<EOF\nnever closed\n")


# -- steps --------------------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root / "inner/action.yml", """\
        name: inner
        description: inner
        inputs:
          word: {description: w, required: true}
        outputs:
          shout: {description: s, value: "${{ steps.up.outputs.value }}"}
        runs:
          using: composite
          steps:
            - id: up
              shell: bash
              env:
                WORD: ${{ inputs.word }}
              run: |
                echo "value=${WORD^^}" >> "$GITHUB_OUTPUT"
                echo "from inner: INPUT_WORD=${INPUT_WORD:-unset} path=${GITHUB_ACTION_PATH##*/}"
                echo "INNER_SET=yes" >> "$GITHUB_ENV"
        """)  # fmt: skip
    write(root / "outer/action.yml", """\
        name: outer
        description: outer
        inputs:
          word: {description: w, default: "${{ github.event_name }}"}
          fail: {description: f, default: "false"}
        outputs:
          shout: {description: s, value: "${{ steps.inner.outputs.shout }}"}
          env-seen: {description: e, value: "${{ steps.after.outputs.seen }}"}
          recovered: {description: r, value: "${{ steps.recover.outputs.ran }}"}
        runs:
          using: composite
          steps:
            - id: inner
              uses: ./inner
              with:
                word: ${{ inputs.word }}
            - id: after
              shell: bash
              run: |
                echo "seen=${INNER_SET:-no}" >> "$GITHUB_OUTPUT"
                mkdir -p "$RUNNER_TEMP/bin" && printf '#!/bin/sh\\necho tool\\n' > "$RUNNER_TEMP/bin/tool"
                chmod +x "$RUNNER_TEMP/bin/tool" && echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
                echo "## summary from outer" >> "$GITHUB_STEP_SUMMARY"
                echo "::warning title=w::careful%0Anow"
            - id: boom
              if: inputs.fail == 'true'
              shell: bash
              run: exit 3
            - id: recover
              if: failure()
              shell: bash
              run: echo "ran=yes" >> "$GITHUB_OUTPUT"
            - id: tool
              shell: bash
              run: tool
        """)  # fmt: skip
    return root


def run(workspace: Path, uses: str, **inputs: str) -> tuple[Any, JobState]:
    runner = Runner(workspace, event_name="push", temp=workspace.parent / "tmp")
    state = JobState()
    result = runner.run_action(uses, inputs, state=state, contexts={"env": {}})
    return result, state


def test_a_composite_action_runs_as_on_github(workspace: Path) -> None:
    result, state = run(workspace, "./outer", word="hello")
    assert result.outcome == "success", result.failure
    assert result.outputs == {"shout": "HELLO", "env-seen": "yes", "recovered": ""}
    inner = next(r for r in state.records if r.id == "up")
    # composite actions get no INPUT_* variables; GITHUB_ACTION_PATH is the inner action's
    assert "INPUT_WORD=unset path=inner" in inner.log
    assert state.env["INNER_SET"] == "yes" and state.summary == ["## summary from outer\n"]
    assert [(a.level, a.message) for a in state.annotations] == [("warning", "careful\nnow")]
    assert next(r for r in state.records if r.id == "tool").log.strip() == "tool"


def test_defaults_are_expressions_and_failures_run_failure_steps(workspace: Path) -> None:
    result, _ = run(workspace, "./outer", fail="true")
    assert result.outcome == "failure"
    assert result.outputs["shout"] == "PUSH"  # the default ${{ github.event_name }}
    assert result.outputs["recovered"] == "yes"


def test_a_missing_required_input_fails(workspace: Path) -> None:
    result, _ = run(workspace, "./inner")
    assert result.outcome == "failure" and "required input 'word'" in (result.failure or "")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"shell": "bash", "run": "echo ${{ inputs.word }}"}, "holds ${{ }}"),
        ({"run": "echo hi"}, "needs shell"),
        ({"shell": "bash", "run": "echo", "env": {"X": "${{ secrets.TOKEN }}"}},
         "Unrecognized named-value: 'secrets'"),
        ({"shell": "bash", "run": "echo", "if": "fromJson2('x')"}, "Unrecognized function"),
        ({"uses": "actions/missing@v1"}, "no stub"),
        ({"uses": "./inner", "with": {"word": "a", "extra": "b"}}, "unexpected inputs"),
        ({"shell": "bash", "run": "echo", "timeout": 3}, "unknown keys"),
    ],
)  # fmt: skip
def test_steps_github_would_refuse_are_refused(
    workspace: Path, step: dict[str, Any], message: str
) -> None:
    import yaml

    action = {"name": "bad", "description": "bad", "inputs": {"word": {"description": "w"}},
              "runs": {"using": "composite", "steps": [step]}}  # fmt: skip
    write(workspace / "bad/action.yml", yaml.safe_dump(action))
    with pytest.raises(ActionError, match=message.replace("$", r"\$").replace("{", r"\{")):
        run(workspace, "./bad", word="x")


def test_jobs_follow_needs_and_continue_on_error(tmp_path: Path) -> None:
    write(tmp_path / "ws/wf.yml", """\
        name: wf
        on: push
        permissions: {}
        jobs:
          fails:
            runs-on: ubuntu-latest
            steps:
              - id: bad
                continue-on-error: true
                run: exit 1
              - id: check
                env:
                  OUTCOME: ${{ steps.bad.outcome }}
                  CONCLUSION: ${{ steps.bad.conclusion }}
                run: echo "seen=$OUTCOME/$CONCLUSION" >> "$GITHUB_OUTPUT"
            outputs:
              seen: ${{ steps.check.outputs.seen }}
          broken:
            runs-on: ubuntu-latest
            steps:
              - run: exit 1
          skipped:
            needs: broken
            runs-on: ubuntu-latest
            steps:
              - run: echo never
          all:
            if: always()
            needs: [fails, broken, skipped]
            runs-on: ubuntu-latest
            steps:
              - env:
                  RESULTS: ${{ join(needs.*.result, ',') }}
                  SEEN: ${{ needs.fails.outputs.seen }}
                run: echo "$RESULTS $SEEN"
        """)  # fmt: skip
    runner = Runner(tmp_path / "ws", temp=tmp_path / "tmp")
    results = runner.run_workflow(tmp_path / "ws/wf.yml")
    assert {k: r.result for k, r in results.items()} == {
        "fails": "success", "broken": "failure", "skipped": "skipped", "all": "success",
    }  # fmt: skip
    assert results["fails"].outputs == {"seen": "failure/success"}
    assert results["all"].state.records[0].log.strip() == "success,failure,skipped failure/success"
