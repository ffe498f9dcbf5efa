"""The promotion workflow template and the promote action: linted, and the action's script run
for real against a git repository."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from services_sources import commit_all, gated_results, git, init_repo, make_key, onnx_model

from mlci.github.workflow import parse_file_commands

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "actions" / "promote" / "action.yml"
WORKFLOW = ROOT / "workflows" / "promote.yml"
BIN = Path(sys.executable).parent


def load(path: Path) -> dict[Any, Any]:
    return dict(yaml.safe_load(path.read_text()))


def test_actionlint_with_the_action_in_use(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "actions", tmp_path / "actions")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    shutil.copy(WORKFLOW, tmp_path / ".github" / "workflows" / "promote.yml")
    selftest = {
        "name": "selftest",
        "on": {"workflow_dispatch": None},
        "permissions": {},
        "jobs": {
            "promote": {
                "runs-on": "ubuntu-latest",
                "permissions": {"contents": "read", "id-token": "write"},
                "steps": [
                    {
                        "uses": "actions/checkout@1af3b93b6815bc44a9784bd300feb67ff0d1eeb3",
                        "with": {"persist-credentials": False},
                    },
                    {
                        "id": "promote",
                        "uses": "./actions/promote",
                        "with": {"pointer": "oci://ghcr.io/o/m:prod", "action": "rollback"},
                    },
                    {
                        "env": {"TARGET": "${{ steps.promote.outputs.target }}"},
                        "run": 'echo "${TARGET}"',
                    },
                ],
            }
        },
    }
    (tmp_path / ".github" / "workflows" / "selftest.yml").write_text(yaml.safe_dump(selftest))
    actionlint = BIN / "actionlint"
    if not actionlint.exists():
        pytest.fail("actionlint is not installed: pip install the test extra", pytrace=False)
    done = subprocess.run(
        [str(actionlint), "-no-color"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_pedantic_finds_nothing() -> None:
    zizmor = BIN / "zizmor"
    done = subprocess.run(
        [
            str(zizmor),
            "--offline",
            "--no-progress",
            "--persona=pedantic",
            str(WORKFLOW),
            str(ACTION),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "No findings" in done.stdout + done.stderr, done.stdout


def test_workflow_promotes_after_the_merge_and_rolls_back_on_demand() -> None:
    document = load(WORKFLOW)
    triggers = document[True]  # YAML 1.1 reads `on` as True
    assert triggers["push"] == {"branches": ["main"]}
    assert triggers["workflow_dispatch"]["inputs"]["action"]["options"] == ["rollback", "promote"]
    jobs = document["jobs"]
    assert "push" in jobs["promote"]["if"] and "'promote'" in jobs["promote"]["if"]
    assert "workflow_dispatch" in jobs["rollback"]["if"] and "'rollback'" in jobs["rollback"]["if"]
    assert jobs["rollback"]["permissions"] == {"packages": "write", "id-token": "write"}
    steps = {s.get("id"): s for s in jobs["promote"]["steps"]}
    # mlci comes from the pinned action, never from a package index
    assert not any("pip install" in s.get("run", "") for s in jobs["promote"]["steps"])
    # promotion only after the gate said so, and to exactly the published digest
    for step in ("setup", "publish", "move"):
        assert steps[step]["if"] == "steps.check.outputs.decision == 'promote'"
    assert steps["move"]["uses"].startswith("YOUR_ORG/mlci/actions/promote@")
    assert steps["move"]["with"]["model"] == "${{ steps.publish.outputs.model }}"
    assert steps["move"]["with"]["results"] == "${{ steps.check.outputs.results-path }}"
    assert "push-model" in steps["publish"]["run"]
    (rollback,) = jobs["rollback"]["steps"]
    assert rollback["with"]["action"] == "rollback"
    assert document["concurrency"]["cancel-in-progress"] is False


def fake_mlci(folder: Path) -> Path:
    script = folder / "bin" / "mlci"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom mlci.commands import main\nsys.exit(main())\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def run_move(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ACTION.parent / "move.sh")], env=env, cwd=cwd, capture_output=True, text=True
    )


def test_the_action_promotes_and_rolls_back_once_per_run(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    versions = []
    for i in range(2):
        sha = onnx_model(repo / "models" / "m.onnx", scale=1.0 + i)
        commit_all(repo, f"model {i}")
        versions.append(
            (git(repo, "rev-parse", "HEAD"), gated_results(tmp_path / f"r{i}.json", sha))
        )
    key = make_key(tmp_path / "keys")
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "COSIGN_PASSWORD": key.password,
        "MLCI_CACHE_DIR": str(tmp_path / "cache"),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_RUN_ID": "1001",
        "GITHUB_ACTOR": "octocat",
        "MLCI_BIN": str(fake_mlci(tmp_path)),
        "MLCI_INPUT_POINTER": "git:production:models/m.onnx",
        "MLCI_INPUT_SIGN_KEY": str(key.private),
        "MLCI_INPUT_REASON": "--keyless is just words here",
    }
    for commit, results in versions:
        done = run_move(
            {
                **env,
                "MLCI_INPUT_ACTION": "promote",
                "MLCI_INPUT_RESULTS": str(results),
                "MLCI_INPUT_MODEL": f"git:{commit}:models/m.onnx",
            },
            repo,
        )
        assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "production^{commit}") == versions[1][0]
    for _ in range(2):  # a re-run of the same workflow run rolls back once
        done = run_move({**env, "MLCI_INPUT_ACTION": "rollback"}, repo)
        assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "production^{commit}") == versions[0][0]
    assert done.stdout.startswith("unchanged")
    last = parse_file_commands(outputs.read_text())
    assert last["target"] == versions[0][0] and last["changed"] == "false"
    listing = subprocess.run(
        [env["MLCI_BIN"], "promotions", "--json", "git:production:models/m.onnx"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    entries = json.loads(listing.stdout)["entries"]
    assert [e["action"] for e in entries] == ["promote", "promote", "rollback"]
    assert {e["actor"] for e in entries} == {"octocat"}
    assert entries[-1]["request"] == "1001"
    assert entries[-1]["reason"] == "--keyless is just words here"  # an input is never an option
    done = run_move({**env, "MLCI_INPUT_ACTION": "deploy"}, repo)
    assert done.returncode == 2 and "::error::" in done.stdout + done.stderr
