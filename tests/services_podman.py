"""A real container engine for tests: Podman, with its Docker-compatible API on a socket.

Import the fixtures into a test module::

    from services_podman import base_image, podman  # noqa: F401

``podman`` starts ``podman system service`` on a unix socket in a temporary folder for the
session and stops it afterwards; ``base_image`` builds (once, cached) the Debian base image
with Python through ``scripts/build-base-image``. Both FAIL, never skip, when Podman or the
base image cannot be had: run ``scripts/setup-podman`` first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = Path(os.environ.get("MLCI_PODMAN_CONF", Path.home() / ".config" / "mlci-podman"))
BASE_IMAGE = Path(
    os.environ.get("MLCI_BASE_IMAGE", Path.home() / ".cache" / "mlci" / "base-bookworm-python.tar")
)


@dataclass(frozen=True)
class Podman:
    """A running Podman API service and the environment that reaches it."""

    socket: Path
    env: dict[str, str]

    @property
    def docker_host(self) -> str:
        """``DOCKER_HOST`` for the Docker SDK."""
        return f"unix://{self.socket}"

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        """Run the podman CLI with this service's storage and configuration."""
        done = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout


def _podman_env() -> dict[str, str]:
    env = dict(os.environ)
    conf, storage = CONF_DIR / "containers.conf", CONF_DIR / "storage.conf"
    if not conf.is_file() or not storage.is_file():
        pytest.fail(
            f"no Podman configuration in {CONF_DIR}; run scripts/setup-podman first", pytrace=False
        )
    env.setdefault("CONTAINERS_CONF", str(conf))
    env.setdefault("CONTAINERS_STORAGE_CONF", str(storage))
    return env


def _ping(sock: Path) -> bool:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(2)
    try:
        client.connect(str(sock))
        client.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
        return client.recv(64).startswith(b"HTTP/1.") and True
    except OSError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """``podman system service`` on a private socket for the whole session."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed; run scripts/setup-podman", pytrace=False)
    env = _podman_env()
    folder = Path(tempfile.mkdtemp(prefix="mlci-podman-"))
    sock = folder / "podman.sock"
    log = open(folder / "service.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        ["podman", "system", "service", "--time", "0", f"unix://{sock}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (sock.exists() and _ping(sock)):
            if process.poll() is not None or time.monotonic() > deadline:
                text = (folder / "service.log").read_text(errors="replace")[-1500:]
                pytest.fail(f"podman system service did not start: {text}", pytrace=False)
            time.sleep(0.1)
        yield Podman(sock, {**env, "DOCKER_HOST": f"unix://{sock}"})
    finally:
        stop_group(process, timeout=15)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def base_image() -> Path:
    """The cached Debian base image with Python (built on first use, ~20 s)."""
    script = ROOT / "scripts" / "build-base-image"
    done = subprocess.run(
        [str(script), str(BASE_IMAGE)], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0 or not BASE_IMAGE.is_file():
        pytest.fail(
            f"scripts/build-base-image failed: {done.stderr.strip()[-1500:]}", pytrace=False
        )
    return BASE_IMAGE


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s ({last})")


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a server started in a session of its own, with everything it started: politely,
    then by force after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
