"""A real Prometheus server for tests, started by the test itself (scripts/setup-prometheus
installs it). It FAILS, never skips, when Prometheus is missing or does not come up."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from services_podman import free_port, stop_group


@contextmanager
def prometheus(targets: Sequence[str], folder: Path, scrape: str = "1s") -> Iterator[str]:
    """Prometheus scraping ``targets`` (host:port) every ``scrape``; yields its URL once
    every target is up."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed; run scripts/setup-prometheus", pytrace=False)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    listed = ", ".join(f'"{t}"' for t in targets)
    config.write_text(
        f"global:\n  scrape_interval: {scrape}\n  evaluation_interval: {scrape}\n"
        f"scrape_configs:\n  - job_name: serving\n    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )
    port = free_port()
    log = open(folder / "prometheus.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while up(url) < len(targets):  # about 6 s after start: poll, never sleep blindly
            if process.poll() is not None or time.monotonic() > deadline:
                text = (folder / "prometheus.log").read_text(errors="replace")[-1500:]
                pytest.fail(f"Prometheus did not scrape every target: {text}", pytrace=False)
            time.sleep(0.25)
        yield url
    finally:
        stop_group(process, timeout=20)
        log.close()


def up(url: str) -> int:
    """How many targets Prometheus sees up (0 while it is not answering)."""
    query = urllib.parse.urlencode({"query": "sum(up)"})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=2) as response:
            result = json.loads(response.read())["data"]["result"]
    except OSError:
        return 0
    return int(float(result[0]["value"][1])) if result else 0
