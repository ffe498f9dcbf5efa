"""What the tests that run mlci's actions share: a clean checkout, the stand-ins, an event."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from actions_runner import Runner, copy_workspace
from github_fake import OWNER, REPO

ROOT = Path(__file__).resolve().parent.parent
STUBS_DIR = Path(__file__).resolve().parent / "action_stubs"
PINS = {  # the actions mlci's actions and workflows use, and their stand-ins
    "actions/checkout@1af3b93b6815bc44a9784bd300feb67ff0d1eeb3": "checkout",
    "actions/cache@caa296126883cff596d87d8935842f9db880ef25": "cache",
    "actions/upload-artifact@b7c566a772e6b6bfb58ed0dc250532a479d7789f": "upload-artifact",
    "actions/download-artifact@018cc2cf5baa6db3ef3c5f8a56943fffe632ef53": "download-artifact",
}
STUBS = {uses: STUBS_DIR / folder for uses, folder in PINS.items()}
HEAD_SHA = "c0ffee" + "0" * 34
PULL = 7
# pip's downloads, kept between test runs like the actions cache keeps them between workflow runs
PIP_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlci" / "actions-cache"
)


def clean_checkout(target: Path) -> Path:
    """A git clone of this tree with its uncommitted edits: what actions/checkout would give."""
    return copy_workspace(ROOT, target)


def pull_request_event(head_repository: str = f"{OWNER}/{REPO}") -> dict[str, Any]:
    return {
        "action": "synchronize",
        "number": PULL,
        "pull_request": {
            "number": PULL,
            "head": {"sha": HEAD_SHA, "ref": "feature", "repo": {"full_name": head_repository}},
            "base": {"sha": "b" * 40, "ref": "main", "repo": {"full_name": f"{OWNER}/{REPO}"}},
        },
        "repository": {"full_name": f"{OWNER}/{REPO}"},
    }


def base_image() -> str:
    """The offline Debian base image with Python (built once, cached in ~/.cache/mlci)."""
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-base-image")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def runner(
    workspace: Path,
    temp: Path,
    api_url: str,
    *,
    event_name: str = "pull_request",
    event: dict[str, Any] | None = None,
    vars: dict[str, str] | None = None,
) -> Runner:
    artifacts = temp / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    return Runner(
        workspace,
        event_name=event_name,
        event=pull_request_event() if event is None else event,
        repository=f"{OWNER}/{REPO}",
        api_url=api_url,
        sha="d" * 40,
        ref=f"refs/pull/{PULL}/merge",
        stubs=STUBS,
        vars=vars,
        extra_env={"MLCI_TEST_ARTIFACTS": str(artifacts), "MLCI_TEST_CACHE": str(PIP_CACHE)},
        temp=temp / "runner",
        # each job starts from a clean checkout; mlci's environment in the action's folder is
        # kept, as a self-hosted runner keeps a downloaded action (the first job installs it)
        fresh_jobs=[".mlci-venv", ".mlci-bin", "mlci.egg-info", "build"],
    )


def stub_calls(temp: Path) -> list[dict[str, Any]]:
    path = temp / "artifacts" / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
