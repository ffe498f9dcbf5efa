"""Production pointers: the interface every store implements, and how to open one.

A pointer is written like a source, so that what ``mlci promote`` moves is what a baseline
reads: ``oci://HOST/REPO:TAG`` (a registry tag), ``models:/NAME@ALIAS`` (an MLflow alias),
``git:TAG:PATH`` (a git tag; PATH is the model file in the tagged commit).

Each store keeps the pointer's history beside the pointer and writes in two steps: it
*claims* the next history entry (compare-and-swap where the store has one: git's
``update-ref`` with the old value; otherwise write, wait ``MLCI_PROMOTE_SETTLE_S`` seconds
(default 1) and read back, so that of two runs racing within that window both see the same
winner), then *moves* the pointer, checking it still holds what was read and reading it back.
The run that loses is told so (:class:`Lost`) and changes nothing.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError, UsageError

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.sources.history import Entry, State

ENV_SETTLE = "MLCI_PROMOTE_SETTLE_S"


class Lost(MlciError):
    """Another run moved the pointer or claimed the history entry first; nothing changed."""

    exit_code = 1


@dataclass(frozen=True)
class Candidate:
    """The version a promotion would point at, and the sha256 of its model file."""

    target: str
    model_sha256: str
    shown: str


def settle(env: Mapping[str, str] | None = None) -> None:
    """Wait long enough for a racing writer's request to land before reading back."""
    environ = os.environ if env is None else env
    try:
        seconds = float(environ.get(ENV_SETTLE, "1"))
    except ValueError:
        raise UsageError(f"{ENV_SETTLE} must be a number of seconds") from None
    time.sleep(max(0.0, seconds))


class Target(ABC):
    """A production pointer in its store."""

    kind: str

    @property
    @abstractmethod
    def name(self) -> str:
        """The pointer as the user writes it."""

    @abstractmethod
    def read(self) -> State:
        """Where the pointer is, and its history."""

    @abstractmethod
    def candidate(self, model: str | None, document: Results | None) -> Candidate:
        """The version ``model`` names (default: the one the results were evaluated from)."""

    @abstractmethod
    def model_sha256(self, target: str) -> str:
        """The sha256 of the model file of a version (fetched and checked)."""

    @abstractmethod
    def subjects(self, target: str, model_sha256: str) -> list[tuple[str, str]]:
        """``(name, hex sha256)`` of what a promotion attestation is about."""

    @abstractmethod
    def commit(
        self, state: State, entry: Entry, bundle: dict[str, Any] | None, *, write: bool
    ) -> Entry:
        """Claim ``entry`` in the history (when ``write``) with its signed ``bundle``, then move
        the pointer to ``entry.target``. Returns the entry as stored; Lost on a race."""


def open_target(text: str, base_dir: Path, *, push: str | None = None) -> Target:
    """The pointer ``text`` names; ``push`` is a git remote to publish git tags to."""
    from mlci.sources import reference as refs

    try:
        ref = refs.parse_source(text)
    except refs.SourceSyntaxError as exc:
        raise UsageError(f"--to: {exc}") from None
    if push is not None and not isinstance(ref, refs.GitSource):
        raise UsageError("--push goes with a git:TAG:PATH pointer")
    if isinstance(ref, refs.OciSource):
        if ref.tag is None:
            raise UsageError(f"--to {text}: a pointer is a tag (oci://HOST/REPO:TAG), not a digest")
        from mlci.sources.target_oci import OciTarget

        return OciTarget(ref)
    if isinstance(ref, refs.MlflowSource):
        if ref.alias is None:
            raise UsageError(f"--to {text}: a pointer is an alias (models:/NAME@ALIAS)")
        from mlci.sources.target_mlflow import MlflowTarget

        return MlflowTarget(ref)
    if isinstance(ref, refs.GitSource):
        from mlci.sources.target_git import GitTarget

        return GitTarget(ref, base_dir, push=push)
    raise UsageError(
        f"--to {text}: a production pointer is oci://HOST/REPO:TAG, models:/NAME@ALIAS or "
        "git:TAG:PATH"
    )
