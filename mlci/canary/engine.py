"""Serving images started through the Docker Engine API (Docker, or Podman's socket).

For a shadow replay against images rather than running endpoints, mlci starts each image on a
loopback port the engine chooses, waits until the Open Inference Protocol server is ready, and
removes the container afterwards. The image's manifest digest comes from the reference
(``name@sha256:...``) or the engine's record of where it was pulled from; the model's sha256
from the ``dev.mlci.model.sha256`` label that mlci's builders stamp.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlci.stages import StageFailed

Progress = Callable[[str], None]
LABEL_MODEL_SHA256 = "dev.mlci.model.sha256"


def image_digest(reference: str, attrs: dict[str, Any]) -> str | None:
    """The manifest digest of an image: from the reference, else from the engine's
    ``RepoDigests`` (preferring the reference's own repository)."""
    if "@sha256:" in reference:
        return "sha256:" + reference.rsplit("@sha256:", 1)[1][:64]
    repository = reference.rsplit(":", 1)[0] if ":" in reference.rsplit("/", 1)[-1] else reference
    found = [d for d in attrs.get("RepoDigests") or [] if "@sha256:" in d]
    mine = [d for d in found if d.split("@", 1)[0].endswith(repository)]
    chosen = (mine or found or [None])[0]
    return None if chosen is None else "sha256:" + chosen.rsplit("@sha256:", 1)[1][:64]


def _labels(attrs: dict[str, Any]) -> dict[str, str]:
    config = attrs.get("Config") or {}
    return dict(config.get("Labels") or attrs.get("Labels") or {})


def wait_ready(url: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait until ``url/v2/health/ready`` answers 200; StageFailed after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = exc.__class__.__name__
        if not alive():
            raise StageFailed(f"{url}: the server exited before it was ready")
        time.sleep(0.2)
    raise StageFailed(f"{url}: not ready after {timeout:g}s ({last})")


@dataclass(frozen=True)
class Inspected:
    """What the engine knows of an image before it runs."""

    image: str
    digest: str | None
    model_sha256: str | None


def inspect(image: str, role: str, progress: Progress) -> Inspected:
    """Find ``image`` in the engine at DOCKER_HOST (pulling it when absent)."""
    import docker.errors

    from mlci.supply.docker_build import client_from_env

    client = client_from_env(timeout=120)
    try:
        try:
            found = client.images.get(image)
        except docker.errors.ImageNotFound:
            progress(f"pulling {image}")
            found = client.images.pull(image)
    except docker.errors.APIError as exc:
        raise StageFailed(f"canary.{role}.image: {image}: {_reason(exc)}") from None
    finally:
        client.close()
    attrs = found.attrs
    return Inspected(image, image_digest(image, attrs), _labels(attrs).get(LABEL_MODEL_SHA256))


@contextmanager
def started(
    image: str, port: int, role: str, progress: Progress, ready_timeout: float = 120.0
) -> Iterator[str]:
    """Run ``image`` for the duration of the block and yield its URL on loopback; the
    container is removed afterwards. StageFailed when it cannot serve."""
    import docker.errors

    from mlci.supply.docker_build import client_from_env

    client = client_from_env(timeout=120)
    name = f"mlci-canary-{role}-{secrets.token_hex(4)}"
    progress(f"starting {image} as {name}")
    try:
        container = client.containers.run(
            image, detach=True, name=name, ports={f"{port}/tcp": ("127.0.0.1", None)}
        )
    except docker.errors.APIError as exc:
        client.close()
        raise StageFailed(f"canary.{role}.image: cannot start {image} ({_reason(exc)})") from None
    try:
        url = f"http://127.0.0.1:{_host_port(container, port)}"

        def alive() -> bool:
            container.reload()
            return bool(container.status in ("created", "running"))

        try:
            wait_ready(url, ready_timeout, alive)
        except StageFailed as exc:
            logs = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            raise StageFailed(
                f"canary.{role}.image: {image}: {exc.message}; logs: {logs}"
            ) from None
        yield url
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass
        client.close()


def _host_port(container: Any, port: int) -> int:
    for _ in range(50):
        container.reload()
        bindings = (container.ports or {}).get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
        time.sleep(0.1)
    raise StageFailed(f"the engine published no port for {port}/tcp")


def _reason(exc: Any) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0][:200] if text else exc.__class__.__name__
