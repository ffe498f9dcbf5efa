"""The Docker SDK builder: a user's own Dockerfile, built by Docker or Podman.

It talks to whatever engine ``DOCKER_HOST`` names (Docker's socket, or Podman's
Docker-compatible one from ``podman system service``) through the ``docker`` package, passes
build arguments, and stamps the same OCI labels as the daemonless builder. ``docker`` is
imported only when this builder runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlci.errors import InputError, UsageError
from mlci.supply.builder import (
    LABEL_MODEL_NAME,
    BuildError,
    BuildResult,
    ImageBuilder,
    LayerSummary,
    Output,
    Progress,
    oci_labels,
    source_date_epoch,
    tag_version,
)


class EngineError(BuildError):
    """The container engine is unreachable or refused the build."""


@dataclass(frozen=True)
class DockerBuildRequest:
    """A Dockerfile build through the Docker Engine API."""

    context: Path
    dockerfile: str = "Dockerfile"
    tag: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    model: Path | None = None
    name: str | None = None
    source_date_epoch: int | None = None
    source: str | None = None
    revision: str | None = None
    output: Output | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)


class DockerBuilder(ImageBuilder):
    """The user's own Dockerfile, built by the engine at DOCKER_HOST (Docker or Podman)."""

    def __init__(self, request: DockerBuildRequest, client: Any = None) -> None:
        self.request = request
        self.client = client

    def build(self, progress: Progress = lambda _m: None) -> BuildResult:
        return docker_build(self.request, progress, self.client)


def parse_build_args(values: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` strings as a dict; UsageError for anything else."""
    args: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"--build-arg {value!r}: expected KEY=VALUE")
        args[key] = rest
    return args


def client_from_env(timeout: int = 600) -> Any:
    """A docker client for ``DOCKER_HOST``; EngineError when none answers."""
    try:
        import docker
    except ImportError:
        raise UsageError(
            "the Docker builder needs the 'docker' package",
            tip="pip install 'mlci[image]' (or pip install docker)",
        ) from None
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise EngineError(
            f"no container engine answers at {host} ({_reason(exc)})",
            tip="start Docker, or run 'podman system service --time 0 unix:///PATH/podman.sock' "
            "and set DOCKER_HOST=unix:///PATH/podman.sock",
        ) from None
    return client


def _build(
    client: Any,
    context: Path,
    request: DockerBuildRequest,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    *,
    nocache: bool,
) -> Any:
    image, _logs = client.images.build(
        path=str(context),
        dockerfile=request.dockerfile,
        tag=request.tag,
        buildargs=dict(build_args),
        labels=dict(labels),
        rm=True,
        forcerm=True,
        nocache=nocache,
    )
    return image


def _has_labels(image: Any, labels: Mapping[str, str]) -> bool:
    actual = ((image.attrs or {}).get("Config") or {}).get("Labels") or {}
    return all(actual.get(k) == v for k, v in labels.items())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:160]


def docker_build(
    request: DockerBuildRequest,
    progress: Callable[[str], None] = lambda _m: None,
    client: Any = None,
) -> BuildResult:
    """Build ``request.dockerfile`` in ``request.context``; optionally save the image as a
    docker-archive. Returns the image ID as both digests (an engine-built image has no
    manifest digest until it is pushed)."""
    context = Path(request.context)
    if not context.is_dir():
        raise InputError(f"{context}: no such build context folder")
    dockerfile = context / request.dockerfile
    if not Path(request.dockerfile).is_absolute() and not dockerfile.is_file():
        raise InputError(
            f"{dockerfile}: no such Dockerfile", tip="pass --dockerfile relative to --context"
        )
    if request.output is not None and request.output.kind != "docker-archive":
        raise UsageError(
            f"--output {request.output}: the Docker builder writes docker-archive:FILE only",
            tip="omit --output to keep the image in the engine",
        )
    model_sha = None
    near = context.resolve()
    if request.model is not None:
        from mlci.hashing import sha256_file

        if not Path(request.model).is_file():
            raise InputError(f"{request.model}: no such model file")
        model_sha = sha256_file(request.model)
        near = Path(request.model).resolve()
    created = source_date_epoch(request.source_date_epoch, near)
    labels = oci_labels(
        created=created,
        source=request.source,
        revision=request.revision,
        title=request.name,
        version=tag_version(request.tag),
        model_sha256=model_sha,
        model_name=request.name if model_sha else None,
        near=near,
    )
    if request.name and not model_sha:
        labels.pop(LABEL_MODEL_NAME, None)
    labels.update(request.extra_labels)
    build_args = dict(request.build_args)
    build_args.setdefault("SOURCE_DATE_EPOCH", str(created))

    if client is None:
        client = client_from_env()
    import docker.errors

    progress(f"building {dockerfile} with the engine at {os.environ.get('DOCKER_HOST', 'default')}")
    try:
        image = _build(client, context, request, build_args, labels, nocache=False)
        if not _has_labels(image, labels):
            # Some engines (Podman) reuse a cached final image without applying new labels.
            progress("the engine's cached image has stale labels; rebuilding without cache")
            image = _build(client, context, request, build_args, labels, nocache=True)
    except docker.errors.BuildError as exc:
        last = next(
            (
                str(line.get("stream") or line.get("error") or "").strip()
                for line in reversed(list(exc.build_log or []))
                if str(line.get("stream") or line.get("error") or "").strip()
            ),
            exc.msg,
        )
        raise EngineError(f"the Dockerfile build failed: {_reason(Exception(last))}") from None
    except docker.errors.APIError as exc:
        raise EngineError(f"the engine refused the build ({_reason(exc)})") from None

    image_id = str(image.id)
    output = f"engine:{request.tag or image_id}"
    if request.output is not None:
        path = request.output.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                for chunk in image.save(named=bool(request.tag)):
                    handle.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        output = str(request.output)
    attrs = image.attrs or {}
    diff_ids = ((attrs.get("RootFS") or {}).get("Layers")) or []
    layers = tuple(LayerSummary("dockerfile", d, d, 0) for d in diff_ids)
    actual_labels = ((attrs.get("Config") or {}).get("Labels")) or labels
    return BuildResult(image_id, image_id, output, layers, dict(actual_labels))
