"""Run composite actions and workflow jobs locally, the way GitHub's runner runs them.

What it does as the runner does (GitHub's documentation of composite actions, workflow syntax,
contexts, expressions and workflow commands):

* An action's ``inputs`` reach its steps only as the ``inputs`` context (composite actions get
  no ``INPUT_*`` variables; those are for JavaScript and Docker actions); a default may be an
  expression (``${{ github.token }}``); a required input that is missing fails the step.
* ``${{ }}`` in ``with:``, ``env:``, ``if:``, ``name:``, ``working-directory:``,
  ``continue-on-error:`` and ``outputs.*.value`` is evaluated (see ``actions_expressions``),
  with exactly the contexts GitHub makes available there: ``secrets`` is unknown inside a
  composite action. An ``if:`` without a status function means ``success() && (...)``.
* Each ``run:`` step gets fresh ``GITHUB_OUTPUT``, ``GITHUB_ENV``, ``GITHUB_PATH``,
  ``GITHUB_STEP_SUMMARY`` and ``GITHUB_STATE`` files, read after the step (also after a failed
  one); ``GITHUB_ENV`` and ``GITHUB_PATH`` apply to every later step of the job, including
  those after the composite action that wrote them. ``GITHUB_ACTION_PATH`` is the folder of the
  action whose step runs. ``shell: bash`` is ``bash --noprofile --norc -eo pipefail {0}``.
* ``uses: ./path`` is relative to the workspace (also inside a composite action, as on GitHub);
  ``uses: owner/repo@ref`` is resolved through ``stubs`` (folders holding an action.yml that
  stands in for an action we cannot download here), and fails otherwise.
* ``continue-on-error``, ``steps.<id>.outcome`` and ``.conclusion``, job ``needs``, ``if``,
  ``outputs`` and results, the job summary, ``::error``/``::warning``/``::notice`` annotations
  and ``::add-mask::``.

Stricter than GitHub where GitHub merely warns, because those are mistakes: ``${{ }}`` inside a
``run:`` script (inputs must pass through ``env:``), an input the action does not declare, a
``run:`` step without ``shell`` in a composite action, unknown keys in a step, a node or docker
action without a stub, and an ``if:`` that mixes text with ``${{ }}`` (always true on GitHub).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from actions_expressions import ExpressionError, Scope, condition, interpolate, to_string

STEP_KEYS = {"id", "name", "if", "run", "shell", "uses", "with", "env", "working-directory",
             "continue-on-error", "timeout-minutes"}  # fmt: skip
ACTION_KEYS = {"name", "description", "author", "inputs", "outputs", "runs", "branding"}
JOB_KEYS = {"name", "runs-on", "permissions", "needs", "if", "steps", "outputs", "env",
            "defaults", "continue-on-error", "timeout-minutes", "concurrency", "services",
            "environment", "strategy"}  # fmt: skip
# Contexts GitHub makes available (docs: "Context availability").
ACTION_STEP_CONTEXTS = ("github", "needs", "strategy", "matrix", "job", "runner", "env", "vars",
                        "inputs", "steps")  # fmt: skip
ACTION_DEFAULT_CONTEXTS = ("github", "needs", "strategy", "matrix", "job", "runner", "env",
                           "vars", "inputs")  # fmt: skip
JOB_STEP_CONTEXTS = ("github", "needs", "strategy", "matrix", "job", "runner", "env", "vars",
                     "secrets", "steps", "inputs")  # fmt: skip
JOB_IF_CONTEXTS = ("github", "needs", "vars", "inputs")
JOB_ENV_CONTEXTS = ("github", "needs", "strategy", "matrix", "vars", "secrets", "inputs")
JOB_OUTPUT_CONTEXTS = ("github", "needs", "strategy", "matrix", "job", "runner", "env", "vars",
                       "secrets", "steps", "inputs")  # fmt: skip
WORKFLOW_ENV_CONTEXTS = ("github", "secrets", "inputs", "vars")
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"],
    "sh": ["sh", "-e", "{0}"],
    "python": ["python3", "{0}"],
}
DEFAULT_JOB_SHELL = ["bash", "-e", "{0}"]
_COMMAND = re.compile(r"^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$")


class ActionError(Exception):
    """A definition GitHub would refuse, or that cannot run here."""


@dataclass
class StepRecord:
    """One step that ran (or was skipped), inside a job or a composite action."""

    id: str
    name: str
    outcome: str  # success, failure, skipped
    conclusion: str
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    depth: int = 0
    seconds: float = 0.0


@dataclass
class Annotation:
    level: str
    message: str
    properties: str = ""


@dataclass
class JobState:
    """What accumulates over a job: environment from GITHUB_ENV/PATH, summary, annotations."""

    env: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)


@dataclass
class ActionResult:
    outcome: str
    outputs: dict[str, Any]
    steps: list[StepRecord]
    failure: str | None = None


@dataclass
class JobResult:
    result: str  # success, failure, skipped
    outputs: dict[str, Any]
    state: JobState
    failure: str | None = None

    @property
    def log(self) -> str:
        return "\n".join(f"--- {r.name} [{r.outcome}]\n{r.log}" for r in self.state.records)

    def step(self, step_id: str) -> StepRecord:
        found = [r for r in self.state.records if r.id == step_id]
        if not found:
            raise KeyError(f"no step {step_id!r}: {[r.id for r in self.state.records]}")
        return found[-1]


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ActionError(f"{path}: not a mapping")
    if True in data and "on" not in data:  # YAML 1.1 reads the key `on` as True
        data["on"] = data.pop(True)
    return data


def load_action(folder: Path) -> dict[str, Any]:
    for name in ("action.yml", "action.yaml"):
        if (folder / name).is_file():
            action = load_yaml(folder / name)
            break
    else:
        raise ActionError(f"{folder}: no action.yml")
    unknown = set(action) - ACTION_KEYS
    if unknown:
        raise ActionError(f"{folder}/action.yml: unknown keys {sorted(unknown)}")
    for key in ("name", "description", "runs"):
        if key not in action:
            raise ActionError(f"{folder}/action.yml: '{key}' is required")
    for name, spec in (action.get("inputs") or {}).items():
        if not isinstance(spec, dict) or "description" not in spec:
            raise ActionError(f"{folder}/action.yml: input {name} needs a description")
    using = action["runs"].get("using")
    if using == "composite":
        for name, spec in (action.get("outputs") or {}).items():
            if "value" not in spec:
                raise ActionError(
                    f"{folder}/action.yml: output {name} of a composite needs a value"
                )
        if not isinstance(action["runs"].get("steps"), list):
            raise ActionError(f"{folder}/action.yml: a composite action needs steps")
    return action


class Runner:
    """Runs jobs of one workspace (a checkout) against a fake GitHub."""

    def __init__(
        self,
        workspace: Path,
        *,
        event_name: str = "push",
        event: Mapping[str, Any] | None = None,
        repository: str = "octo-org/octo-repo",
        api_url: str = "https://api.github.com",
        token: str = "ghs_local_runner_token",
        sha: str = "0" * 40,
        ref: str = "refs/heads/main",
        workflow: str = "local",
        stubs: Mapping[str, Path] | None = None,
        vars: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        temp: Path | None = None,
        timeout: float = 900,
        fresh_jobs: Sequence[str] | None = None,
    ) -> None:
        self.workspace = workspace.resolve()
        self.temp = (temp or Path(tempfile.mkdtemp(prefix="runner-"))).resolve()
        self.temp.mkdir(parents=True, exist_ok=True)
        self.event_name = event_name
        self.event = dict(event or {})
        self.repository = repository
        self.api_url = api_url
        self.token = token
        self.sha = sha
        self.ref = ref
        self.workflow = workflow
        self.stubs = {k.lower(): v for k, v in (stubs or {}).items()}
        self.vars = dict(vars or {})
        self.secrets = {"GITHUB_TOKEN": token, **(secrets or {})}
        self.extra_env = dict(extra_env or {})
        self.timeout = timeout
        # Every job starts from a clean checkout, as on GitHub; these paths survive (for
        # example an installed tool, as on a self-hosted runner). None: jobs share the tree.
        self.fresh_jobs = fresh_jobs
        self.event_path = self.temp / "event.json"
        self.event_path.write_text(json.dumps(self.event))
        self.run_id = str(abs(hash(str(self.temp))) % 10**9)
        self.job_id = "local"

    # -- contexts and environment ------------------------------------------------------------

    def github_context(self, action_path: Path | None = None) -> dict[str, Any]:
        server = "https://github.com"
        return {
            "token": self.token,
            "repository": self.repository,
            "repository_owner": self.repository.split("/")[0],
            "event_name": self.event_name,
            "event": self.event,
            "event_path": str(self.event_path),
            "sha": self.sha,
            "ref": self.ref,
            "workflow": self.workflow,
            "run_id": self.run_id,
            "run_number": "1",
            "run_attempt": "1",
            "job": self.job_id,
            "actor": "octocat",
            "workspace": str(self.workspace),
            "server_url": server,
            "api_url": self.api_url,
            "action_path": str(action_path) if action_path else "",
            "head_ref": (self.event.get("pull_request") or {}).get("head", {}).get("ref", ""),
            "base_ref": (self.event.get("pull_request") or {}).get("base", {}).get("ref", ""),
        }

    def runner_context(self) -> dict[str, Any]:
        return {
            "os": "Linux",
            "arch": "X64",
            "name": "local",
            "temp": str(self.temp / "runner-temp"),
            "tool_cache": str(self.temp / "tool-cache"),
            "environment": "self-hosted",
        }

    def base_env(self) -> dict[str, str]:
        github = self.github_context()
        runner = self.runner_context()
        Path(runner["temp"]).mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_REPOSITORY_OWNER": github["repository_owner"],
            "GITHUB_EVENT_NAME": self.event_name,
            "GITHUB_EVENT_PATH": str(self.event_path),
            "GITHUB_SHA": self.sha,
            "GITHUB_REF": self.ref,
            "GITHUB_RUN_ID": self.run_id,
            "GITHUB_RUN_NUMBER": "1",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_WORKFLOW": self.workflow,
            "GITHUB_JOB": self.job_id,
            "GITHUB_ACTOR": "octocat",
            "GITHUB_SERVER_URL": github["server_url"],
            "GITHUB_API_URL": self.api_url,
            "RUNNER_OS": runner["os"],
            "RUNNER_ARCH": runner["arch"],
            "RUNNER_TEMP": runner["temp"],
            "RUNNER_TOOL_CACHE": runner["tool_cache"],
        }
        env.update(self.extra_env)
        return env

    # -- steps -----------------------------------------------------------------------------

    def _step_files(self) -> dict[str, Path]:
        folder = self.temp / "files" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        files = {
            name: folder / name.lower()
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY",
                         "GITHUB_STATE")
        }  # fmt: skip
        for path in files.values():
            path.write_text("")
        return files

    def _run_script(
        self,
        script: str,
        shell: list[str],
        env: dict[str, str],
        cwd: Path,
        state: JobState,
    ) -> tuple[int, str, dict[str, str]]:
        if "${{" in script:
            raise ActionError(
                "a run: script holds ${{ }}: pass the value through env: instead "
                f"(script: {script.strip().splitlines()[0]!r})"
            )
        files = self._step_files()
        script_path = files["GITHUB_OUTPUT"].parent / "script"
        script_path.write_text(script)
        env = {**env, **{k: str(v) for k, v in files.items()}}
        if state.path:
            env["PATH"] = ":".join([*reversed(state.path), env.get("PATH", "")])
        if not cwd.is_dir():
            return 1, f"working-directory {cwd} does not exist\n", {}
        command = [part.replace("{0}", str(script_path)) for part in shell]
        process = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=self.timeout,
        )
        log = self._workflow_commands(process.stdout, state)
        code = process.returncode
        try:
            outputs = parse_file_commands(files["GITHUB_OUTPUT"].read_text())
            state.env.update(parse_file_commands(files["GITHUB_ENV"].read_text()))
        except ValueError as exc:
            return 1, log + f"\nfile command error: {exc}\n", {}
        state.path.extend(p for p in files["GITHUB_PATH"].read_text().splitlines() if p)
        summary = files["GITHUB_STEP_SUMMARY"].read_text()
        if summary:
            state.summary.append(summary)
        return code, log, outputs

    def _workflow_commands(self, text: str, state: JobState) -> str:
        stop: str | None = None
        for line in text.splitlines():
            if stop is not None:
                if line == f"::{stop}::":
                    stop = None
                continue
            found = _COMMAND.match(line)
            if not found:
                continue
            name, properties, message = found.group(1), found.group(2) or "", found.group(3)
            message = message.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
            if name in ("error", "warning", "notice"):
                state.annotations.append(Annotation(name, message, properties))
            elif name == "add-mask" and message:
                state.masks.append(message)
            elif name == "stop-commands":
                stop = message
        for secret in state.masks:
            text = text.replace(secret, "***")
        return text

    def run_steps(
        self,
        steps: list[dict[str, Any]],
        *,
        state: JobState,
        contexts: dict[str, Any],
        allowed: tuple[str, ...],
        action_path: Path | None,
        composite: bool,
        depth: int = 0,
        default_shell: list[str] | None = None,
        default_workdir: str | None = None,
    ) -> tuple[str, dict[str, dict[str, Any]], str | None]:
        """Run steps in order; returns (status, steps context, first failure)."""
        steps_context: dict[str, dict[str, Any]] = {}
        status = "success"
        failure: str | None = None
        ids: set[str] = set()
        for index, step in enumerate(steps):
            unknown = set(step) - STEP_KEYS
            if unknown:
                raise ActionError(f"step {index}: unknown keys {sorted(unknown)}")
            if ("run" in step) == ("uses" in step):
                raise ActionError(f"step {index}: needs exactly one of run and uses")
            step_id = str(step.get("id") or f"__step{index}")
            if step_id in ids:
                raise ActionError(f"step id {step_id!r} is used twice")
            if "id" in step and not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", step_id):
                raise ActionError(f"step id {step_id!r} is not valid")
            ids.add(step_id)
            env_context = {**self.job_env(state, contexts)}
            scope = Scope(
                contexts={**contexts, "steps": steps_context, "env": env_context},
                allowed=allowed,
                status=status,
                workspace=self.workspace,
            )
            try:
                step_env = {
                    str(k): to_string(interpolate(v, scope))
                    for k, v in (step.get("env") or {}).items()
                }
                scope.contexts = {**scope.contexts, "env": {**env_context, **step_env}}
                name = to_string(interpolate(step.get("name"), scope)) or (
                    step.get("run", "").strip().splitlines()[0] if "run" in step else step["uses"]
                )
                record = StepRecord(step_id, name, "skipped", "skipped", depth=depth)
                state.records.append(record)
                if not condition(step.get("if"), scope):
                    steps_context[step_id] = {"outputs": {}, "outcome": "skipped",
                                              "conclusion": "skipped"}  # fmt: skip
                    continue
                continue_on_error = interpolate(step.get("continue-on-error", False), scope)
                workdir_text = interpolate(step.get("working-directory", default_workdir), scope)
                cwd = self.workspace / to_string(workdir_text) if workdir_text else self.workspace
            except ExpressionError as exc:
                raise ActionError(f"step {step.get('name') or step_id!r}: {exc}") from None
            started = time.perf_counter()
            try:
                if "run" in step:
                    shell_name = step.get("shell")
                    if composite and not shell_name:
                        raise ActionError(
                            f"step {name!r}: a composite action's run step needs shell"
                        )
                    shell = (
                        SHELLS[shell_name] if shell_name else (default_shell or DEFAULT_JOB_SHELL)
                    )
                    env = {**self.base_env(), **env_context, **step_env}
                    if action_path is not None:
                        env["GITHUB_ACTION_PATH"] = str(action_path)
                    env["GITHUB_ACTION"] = step_id
                    code, log, outputs = self._run_script(str(step["run"]), shell, env, cwd, state)
                    record.log, record.outputs = log, outputs
                    outcome = "success" if code == 0 else "failure"
                    if code:
                        record.log += f"\n(exit code {code})"
                else:
                    if "working-directory" in step or "shell" in step:
                        raise ActionError(
                            f"step {name!r}: uses: takes no shell or working-directory"
                        )
                    with_values = {
                        str(k): to_string(interpolate(v, scope))
                        for k, v in (step.get("with") or {}).items()
                    }
                    result = self.run_action(
                        str(step["uses"]),
                        with_values,
                        state=state,
                        contexts=contexts,
                        env={**step_env},
                        depth=depth + 1,
                    )
                    outputs = {k: to_string(v) for k, v in result.outputs.items()}
                    record.outputs = outputs
                    outcome = result.outcome
                    record.log = result.failure or ""
            except ExpressionError as exc:
                raise ActionError(f"step {name!r}: {exc}") from None
            record.outcome = outcome
            record.seconds = time.perf_counter() - started
            conclusion = (
                "success"
                if outcome == "success" or to_string(continue_on_error) == "true"
                else "failure"
            )
            record.conclusion = conclusion
            steps_context[step_id] = {"outputs": outputs, "outcome": outcome,
                                      "conclusion": conclusion}  # fmt: skip
            if conclusion == "failure":
                status = "failure"
                failure = failure or f"step {name!r} failed:\n{record.log[-3000:]}"
        return status, steps_context, failure

    def job_env(self, state: JobState, contexts: dict[str, Any]) -> dict[str, str]:
        return {**(contexts.get("env") or {}), **state.env}

    # -- actions -------------------------------------------------------------------------------

    def resolve(self, uses: str) -> Path:
        if uses.startswith("./"):
            return (self.workspace / uses).resolve()
        if uses.startswith("docker://"):
            raise ActionError(f"{uses}: docker actions cannot run here")
        if "@" not in uses:
            raise ActionError(f"{uses}: a remote action needs @ref")
        if uses.lower() in self.stubs:
            return self.stubs[uses.lower()]
        raise ActionError(f"{uses}: cannot be downloaded here and has no stub")

    def run_action(
        self,
        uses: str,
        with_values: Mapping[str, str],
        *,
        state: JobState,
        contexts: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        depth: int = 0,
    ) -> ActionResult:
        """Run the action ``uses`` (./path or a stubbed owner/repo@ref) with its inputs."""
        folder = self.resolve(uses)
        action = load_action(folder)
        if action["runs"].get("using") != "composite":
            raise ActionError(f"{uses}: only composite actions run here (stub it)")
        declared = action.get("inputs") or {}
        unknown = set(with_values) - set(declared)
        if unknown:
            raise ActionError(f"{uses}: unexpected inputs {sorted(unknown)}")
        outer_env = {**(contexts.get("env") or {}), **state.env, **(env or {})}
        base = {
            "github": self.github_context(folder),
            "runner": self.runner_context(),
            "job": {"status": "success"},
            "strategy": {},
            "matrix": {},
            "needs": contexts.get("needs", {}),
            "vars": self.vars,
            "env": outer_env,
        }
        inputs: dict[str, str] = {}
        for name, spec in declared.items():
            if name in with_values:
                inputs[name] = with_values[name]
                continue
            if spec.get("required") and "default" not in spec:
                return ActionResult("failure", {}, [], f"{uses}: required input '{name}' not given")
            default = spec.get("default", "")
            scope = Scope({**base, "inputs": {}}, ACTION_DEFAULT_CONTEXTS, workspace=self.workspace)
            try:
                inputs[name] = to_string(interpolate(default, scope))
            except ExpressionError as exc:
                raise ActionError(f"{uses}: input {name}: {exc}") from None
        contexts_inside = {**base, "inputs": inputs}
        first = len(state.records)
        status, steps_context, failure = self.run_steps(
            action["runs"]["steps"],
            state=state,
            contexts=contexts_inside,
            allowed=ACTION_STEP_CONTEXTS,
            action_path=folder,
            composite=True,
            depth=depth,
        )
        outputs: dict[str, Any] = {}
        scope = Scope(
            {**contexts_inside, "steps": steps_context},
            ACTION_STEP_CONTEXTS,
            workspace=self.workspace,
        )
        try:
            for name, spec in (action.get("outputs") or {}).items():
                outputs[name] = to_string(interpolate(spec.get("value"), scope))
        except ExpressionError as exc:
            raise ActionError(f"{uses}: outputs: {exc}") from None
        return ActionResult(status, outputs, state.records[first:], failure)

    def run_single(
        self, uses: str, with_values: Mapping[str, str], env: Mapping[str, str] | None = None
    ) -> tuple[ActionResult, JobState]:
        """Run one action as the only step of a job."""
        state = JobState(env=dict(env or {}))
        base = {"github": self.github_context(), "env": dict(env or {})}
        return self.run_action(uses, with_values, state=state, contexts=base), state

    # -- jobs ----------------------------------------------------------------------------------

    def run_job(
        self,
        workflow: Mapping[str, Any],
        job_id: str,
        needs: Mapping[str, JobResult],
    ) -> JobResult:
        job = workflow["jobs"][job_id]
        unknown = set(job) - JOB_KEYS
        if unknown:
            raise ActionError(f"job {job_id}: unknown keys {sorted(unknown)}")
        if job.get("strategy") or job.get("container"):
            raise ActionError(f"job {job_id}: matrices and containers do not run here")
        self.job_id = job_id
        needs_context = {
            name: {"result": result.result, "outputs": result.outputs}
            for name, result in needs.items()
        }
        required = job.get("needs") or []
        required = [required] if isinstance(required, str) else list(required)
        base = {
            "github": self.github_context(),
            "needs": needs_context,
            "vars": self.vars,
            "secrets": self.secrets,
            "inputs": {},
            "strategy": {},
            "matrix": {},
            "runner": self.runner_context(),
            "job": {"status": "success"},
        }
        status = "success"
        if any(needs[name].result != "success" for name in required):
            status = "failure"
        state = JobState()
        try:
            if not condition(job.get("if"), Scope(base, JOB_IF_CONTEXTS, status=status)):
                return JobResult("skipped", {}, state)
            workflow_env = {
                str(k): to_string(interpolate(v, Scope(base, WORKFLOW_ENV_CONTEXTS)))
                for k, v in (workflow.get("env") or {}).items()
            }
            job_env = {
                str(k): to_string(interpolate(v, Scope(base, JOB_ENV_CONTEXTS)))
                for k, v in (job.get("env") or {}).items()
            }
        except ExpressionError as exc:
            raise ActionError(f"job {job_id}: {exc}") from None
        env = {**workflow_env, **job_env}
        state.env.update(env)
        defaults = {**(workflow.get("defaults") or {}).get("run", {}),
                    **(job.get("defaults") or {}).get("run", {})}  # fmt: skip
        shell = SHELLS[defaults["shell"]] if "shell" in defaults else None
        step_status, steps_context, failure = self.run_steps(
            list(job.get("steps") or []),
            state=state,
            contexts={**base, "env": env},
            allowed=JOB_STEP_CONTEXTS,
            action_path=None,
            composite=False,
            default_shell=shell,
            default_workdir=defaults.get("working-directory"),
        )
        scope = Scope({**base, "env": {**env, **state.env}, "steps": steps_context},
                      JOB_OUTPUT_CONTEXTS, workspace=self.workspace)  # fmt: skip
        outputs = {
            k: to_string(interpolate(v, scope)) for k, v in (job.get("outputs") or {}).items()
        }
        result = step_status
        if result == "failure" and to_string(job.get("continue-on-error", False)) == "true":
            result = "success"
        return JobResult(result, outputs, state, failure)

    def run_workflow(self, path: Path, jobs: list[str] | None = None) -> dict[str, JobResult]:
        """Run the workflow's jobs (or ``jobs`` and what they need) in dependency order."""
        workflow = load_yaml(path)
        self.workflow = str(workflow.get("name") or path.name)
        all_jobs = workflow["jobs"]
        wanted = list(jobs or all_jobs)
        order: list[str] = []

        def visit(name: str, seen: tuple[str, ...] = ()) -> None:
            if name in seen:
                raise ActionError(f"jobs depend on each other in a cycle: {seen}")
            if name not in all_jobs:
                raise ActionError(f"no job {name!r}")
            needs = all_jobs[name].get("needs") or []
            for need in [needs] if isinstance(needs, str) else needs:
                visit(need, (*seen, name))
            if name not in order:
                order.append(name)

        for name in wanted:
            visit(name)
        results: dict[str, JobResult] = {}
        for name in order:
            needs = all_jobs[name].get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if self.fresh_jobs is not None:
                reset_workspace(self.workspace, self.fresh_jobs)
            results[name] = self.run_job(workflow, name, {n: results[n] for n in needs})
        return results


def parse_file_commands(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT or GITHUB_ENV file as the runner does (``name=value`` or heredoc)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line == "":
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if heredoc >= 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not name or not delimiter:
                raise ValueError(f"invalid line {line!r}")
            body: list[str] = []
            while index < len(lines) and lines[index] != delimiter:
                body.append(lines[index])
                index += 1
            if index >= len(lines):
                raise ValueError(f"matching delimiter not found {delimiter!r}")
            index += 1
            values[name] = "\n".join(body)
        elif equals > 0:
            values[line[:equals]] = line[equals + 1 :]
        else:
            raise ValueError(f"invalid line {line!r}")
    return values


def copy_workspace(source: Path, target: Path) -> Path:
    """A clean checkout of ``source``'s working tree: a git clone, then its uncommitted edits.

    Ignored files (virtual environments, caches, build outputs) are not copied, so nothing the
    developer's machine has beyond the tree can make a test pass.
    """
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(target)],
                   check=True)  # fmt: skip
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    present = {name for name in listing if name}
    for name in present:
        origin = source / name
        if origin.is_file() and not origin.is_symlink():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists() or destination.read_bytes() != origin.read_bytes():
                shutil.copy2(origin, destination)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=target, check=True,
                             capture_output=True).stdout.decode().split("\0")  # fmt: skip
    for name in tracked:
        if name and name not in present and (target / name).exists():
            (target / name).unlink()  # deleted in the working tree, not yet committed
    # Commit the edits in the copy, so that every job can start again from its HEAD.
    git = ["git", "-c", "user.name=local", "-c", "user.email=local@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "--quiet", "--allow-empty", "-m", "the tree under test"],
                   cwd=target, check=True)  # fmt: skip
    return target


def reset_workspace(workspace: Path, keep: Sequence[str] = ()) -> None:
    """Back to the checkout's HEAD, as a new job's checkout would be, keeping ``keep``."""
    excludes = [arg for path in keep for arg in ("-e", path)]
    subprocess.run(["git", "clean", "-ffdxq", *excludes], cwd=workspace, check=True)
    subprocess.run(["git", "checkout", "--quiet", "--force", "HEAD", "--", "."], cwd=workspace,
                   check=True)  # fmt: skip
