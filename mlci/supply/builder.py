"""What every image builder shares: the result of a build, where it goes, its labels.

Two builders implement :class:`ImageBuilder`: the daemonless builder (:mod:`mlci.supply.build`,
a serving image from a base image, wheels and the model) and the Docker SDK builder
(:mod:`mlci.supply.docker_build`, the user's own Dockerfile through Docker or Podman).
"""

from __future__ import annotations

import abc
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlci.errors import MlciError, UsageError
from mlci.supply import oci

LABEL_MODEL_SHA256 = "dev.mlci.model.sha256"
LABEL_MODEL_NAME = "dev.mlci.model.name"
Progress = Callable[[str], None]


class BuildError(MlciError):
    """An image could not be built (the engine refused it, a step failed)."""


class ImageBuilder(abc.ABC):
    """Builds one image and writes it where its request says."""

    @abc.abstractmethod
    def build(self, progress: Progress = lambda _m: None) -> BuildResult:
        """Build the image; BuildError (or InputError for bad inputs) when it cannot."""


def source_date_epoch(explicit: int | None, near: Path | None = None) -> int:
    """The build's timestamp: ``explicit``, else ``SOURCE_DATE_EPOCH``, else the last commit
    time of the repository holding ``near``, else 0 (1970-01-01)."""
    if explicit is not None:
        return int(explicit)
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if env:
        if not env.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={env!r} is not a Unix time in seconds")
        return int(env)
    commit = _git(["log", "-1", "--format=%ct"], near)
    return int(commit) if commit and commit.isdigit() else 0


def _git(args: list[str], near: Path | None) -> str | None:
    if near is None or shutil.which("git") is None:
        return None
    cwd = near if near.is_dir() else near.parent
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def oci_labels(
    *,
    created: int,
    source: str | None = None,
    revision: str | None = None,
    title: str | None = None,
    version: str | None = None,
    model_sha256: str | None = None,
    model_name: str | None = None,
    near: Path | None = None,
) -> dict[str, str]:
    """The OCI annotation labels every mlci image carries, plus the model's identity.

    ``source`` and ``revision`` default to GitHub Actions' ``GITHUB_SERVER_URL`` /
    ``GITHUB_REPOSITORY`` and ``GITHUB_SHA``, then to the git repository holding ``near``.
    """
    if source is None and os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        source = f"{server}/{os.environ['GITHUB_REPOSITORY']}"
    if revision is None:
        revision = os.environ.get("GITHUB_SHA") or _git(["rev-parse", "HEAD"], near)
    labels = {"org.opencontainers.image.created": oci.rfc3339(created)}
    if source:
        labels["org.opencontainers.image.source"] = source
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if title:
        labels["org.opencontainers.image.title"] = title
    if version:
        labels["org.opencontainers.image.version"] = version
    labels["org.opencontainers.image.vendor"] = "mlci"
    if model_sha256:
        labels[LABEL_MODEL_SHA256] = model_sha256
    if model_name:
        labels[LABEL_MODEL_NAME] = model_name
    return labels


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Output:
    """Where an image goes: ``oci:DIR`` or ``docker-archive:FILE``."""

    kind: str  # "oci" or "docker-archive"
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"

    @classmethod
    def parse(cls, spec: str) -> Output:
        """Read an ``--output`` value; UsageError for anything else."""
        kind, sep, rest = spec.partition(":")
        if not sep or kind not in ("oci", "docker-archive") or not rest:
            raise UsageError(
                f"--output {spec}: expected oci:DIR or docker-archive:FILE",
                tip="for example --output oci:build/image or --output docker-archive:image.tar",
            )
        return cls(kind, Path(rest))


@dataclass(frozen=True)
class LayerSummary:
    """One layer of a built image, as reported."""

    role: str  # "base", "dependencies", "runtime" or "model"
    digest: str
    diff_id: str
    size: int
    media_type: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """A built image: its digests, layers and labels, and where it was written."""

    digest: str  # the OCI manifest's digest (what a registry will call the image)
    config_digest: str  # the image ID docker/podman show after loading it
    output: str
    layers: tuple[LayerSummary, ...]
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Total bytes of the image's layers as stored (compressed where gzip)."""
        return sum(layer.size for layer in self.layers)


def tag_version(tag: str | None) -> str | None:
    """The part after the last ':' of an image reference's last path segment, if any."""
    if not tag or ":" not in tag.rsplit("/", 1)[-1]:
        return None
    return tag.rpartition(":")[2]


def _full_tag(tag: str) -> str:
    name, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    if "/" not in name or "." not in name.split("/")[0] and ":" not in name.split("/")[0]:
        if name.split("/")[0] != "localhost":
            name = f"localhost/{name}"
    return f"{name}:{version or 'latest'}"
