"""Serving images end to end with a real engine: built daemonlessly from the Debian base
image, loaded into Podman, run, and asked for predictions; and a Dockerfile built through
Podman's Docker API. Needs scripts/setup-podman (these tests fail, never skip, without it)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from serve_client import check, exchange, get, inputs_for, post, request_for
from services_podman import Podman, base_image, free_port, podman, wait_http  # noqa: F401
from test_build import run_cli

from mlci.models.onnx import OnnxModel
from mlci.supply import layout
from project import FEATURES, Project, make_frame

EPOCH = "1700000000"


@pytest.fixture(scope="module")
def images(
    base_image: Path,  # noqa: F811
    built_project: Project,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The candidate built three times (two layouts, one archive) and the baseline once."""
    out = tmp_path_factory.mktemp("images")
    models = built_project.root / "models"
    digests = {}
    for key, model, dest in [
        ("a", "candidate", f"oci:{out / 'a'}"),
        ("b", "candidate", f"oci:{out / 'b'}"),
        ("tar", "candidate", f"docker-archive:{out / 'demo.tar'}"),
        ("baseline", "baseline", f"oci:{out / 'baseline'}"),
    ]:
        code, stdout, stderr = run_cli(
            ["build", "--model", str(models / f"{model}.onnx"), "--name", "demo", "--base",
             str(base_image), "--output", dest, "--tag", "mlci-test/demo:1",
             "--source-date-epoch", EPOCH, "-q"],
        )  # fmt: skip
        assert code == 0, stderr
        digests[key] = stdout.strip()
    return {"dir": out, "digests": digests, "models": models}


def test_two_builds_give_the_same_digest(images: dict[str, Any]) -> None:
    a, b = images["dir"] / "a", images["dir"] / "b"
    _, manifest_a, _, _ = layout.read_layout(a)
    index_a = json.loads((a / "index.json").read_text())
    index_b = json.loads((b / "index.json").read_text())
    assert index_a == index_b
    assert (a / "index.json").read_bytes() == (b / "index.json").read_bytes()
    assert len(manifest_a["layers"]) == 4  # base, dependencies, runtime, model


def test_a_new_model_changes_only_the_model_layer(images: dict[str, Any]) -> None:
    _, first, _, _ = layout.read_layout(images["dir"] / "a")
    _, second, _, _ = layout.read_layout(images["dir"] / "baseline")
    pairs = list(zip(first["layers"], second["layers"], strict=True))
    changed = [i for i, (x, y) in enumerate(pairs) if x["digest"] != y["digest"]]
    assert changed == [3]
    changed_bytes = sum(y["size"] for x, y in pairs if x["digest"] != y["digest"])
    total = sum(y["size"] for y in second["layers"])
    assert changed_bytes < 10_000 and changed_bytes / total < 1e-4  # a few KB of ~190 MB


def test_image_runs_in_podman_and_predicts_like_mlci(
    images: dict[str, Any],
    podman: Podman,  # noqa: F811
) -> None:
    archive = images["dir"] / "demo.tar"
    loaded = podman.run("load", "-i", str(archive))
    assert "localhost/mlci-test/demo:1" in loaded
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    config_digest = "sha256:" + manifest[0]["Config"].rsplit("/", 1)[-1]
    inspect = json.loads(podman.run("image", "inspect", "localhost/mlci-test/demo:1"))[0]
    assert "sha256:" + inspect["Id"].removeprefix("sha256:") == config_digest
    labels = inspect["Config"]["Labels"] or inspect["Labels"]
    model = images["models"] / "candidate.onnx"
    assert labels["dev.mlci.model.sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"

    port = free_port()
    name = f"mlci-test-serve-{port}"
    podman.run("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
               "localhost/mlci-test/demo:1")  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=60)
        frame = make_frame(200, seed=21)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/demo/infer",
            data=json.dumps(request_for(frame)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        expected = OnnxModel(model).predict({k: frame[k] for k in FEATURES})
        outputs = {o["name"]: o for o in answer["outputs"]}
        np.testing.assert_array_equal(np.array(outputs["label"]["data"]), expected.labels)
        np.testing.assert_allclose(
            np.array(outputs["probabilities"]["data"]).reshape(200, 2),
            expected.proba,
            rtol=0,
            atol=1e-6,
        )
        # A stock Open Inference Protocol client, with its binary defaults and with JSON.
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready() and client.is_model_ready("demo", "1")
        assert [i["name"] for i in client.get_model_metadata("demo")["inputs"]] == FEATURES
        for binary in (None, False):
            frame = make_frame(120, seed=22)
            wanted = None
            if binary is False:
                wanted = [triton.InferRequestedOutput(n, binary_data=False)
                          for n in ("label", "probabilities")]  # fmt: skip
            result = client.infer("demo", inputs_for(client, frame, binary), outputs=wanted)
            check(result, OnnxModel(model).predict({k: frame[k] for k in FEATURES}))
        client.close()
        # A body the server does not read is still consumed: the next request is answered.
        got = exchange(port, [post("/nowhere", get("/metrics")) + get("/v2/health/live")])
        assert got.statuses == [404, 200] and got.leftover == b""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'mlci_serve_inference_requests_total{model="demo",version="1",code="200"} 3' in (
            metrics
        )
        podman.run("stop", "-t", "20", name)
        state = json.loads(podman.run("inspect", name))[0]["State"]
        assert state["ExitCode"] == 0  # SIGTERM: drained and exited cleanly
        logs = subprocess.run(
            ["podman", "logs", name], env=podman.env, capture_output=True, text=True
        )
        assert "mlci.serve: stopped" in logs.stdout + logs.stderr
    finally:
        podman.run("rm", "-f", name, check=False)
        podman.run("rmi", "-f", "localhost/mlci-test/demo:1", check=False)


@pytest.fixture
def dockerfile_context(tmp_path: Path) -> Iterator[Path]:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM localhost/mlci-base:bookworm-python\n"
        "ARG GREETING=unset\n"
        "COPY app.py /app/app.py\n"
        'RUN echo "$GREETING" > /app/greeting\n'
        'CMD ["python3", "/app/app.py"]\n'
    )
    (context / "app.py").write_text("print(open('/app/greeting').read().strip())\n")
    yield context


def test_docker_sdk_builder_builds_a_dockerfile_through_podman(
    dockerfile_context: Path,
    base_image: Path,  # noqa: F811
    podman: Podman,  # noqa: F811
    built_project: Project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    podman.run("load", "-i", str(base_image))
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
    # A name of its own: other runs on the same engine remove their images when they finish.
    tag = f"localhost/mlci-test/custom-{os.getpid()}:1"
    model = built_project.root / "models" / "candidate.onnx"
    try:
        code, stdout, stderr = run_cli(
            ["build", "--dockerfile", "Dockerfile", "--context", str(dockerfile_context),
             "--build-arg", "GREETING=hello from mlci", "--tag", tag, "--model", str(model),
             "--name", "demo", "--source-date-epoch", EPOCH, "--revision", "abc123", "-q"],
        )  # fmt: skip
        assert code == 0, stderr
        image_id = stdout.strip()
        assert image_id.startswith("sha256:")
        inspect = json.loads(podman.run("image", "inspect", tag))[0]
        assert inspect["Id"] in image_id
        labels = inspect["Config"]["Labels"]
        assert labels["dev.mlci.model.sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert labels["org.opencontainers.image.revision"] == "abc123"
        assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
        assert podman.run("run", "--rm", tag).strip() == "hello from mlci"
        # new labels on an otherwise unchanged build are not lost to the engine's cache
        code, stdout, stderr = run_cli(
            ["build", "--dockerfile", "Dockerfile", "--context", str(dockerfile_context),
             "--build-arg", "GREETING=hello from mlci", "--tag", tag, "--revision", "def456",
             "--source-date-epoch", EPOCH, "-q"],
        )  # fmt: skip
        assert code == 0, stderr
        labels = json.loads(podman.run("image", "inspect", tag))[0]["Config"]["Labels"]
        assert labels["org.opencontainers.image.revision"] == "def456"
        assert "dev.mlci.model.sha256" not in labels
    finally:
        podman.run("rmi", "-f", tag, check=False)


def test_docker_builder_reports_a_failing_dockerfile(
    dockerfile_context: Path,
    podman: Podman,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (dockerfile_context / "Dockerfile").write_text("FROM localhost/mlci-base:bookworm-python\n"
                                                   "RUN exit 3\n")  # fmt: skip
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
    code, stdout, stderr = run_cli(
        ["build", "--dockerfile", "Dockerfile", "--context", str(dockerfile_context), "-q"]
    )
    assert code == 1 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlci: error: the Dockerfile build failed")


def test_docker_builder_without_an_engine(
    dockerfile_context: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nothing.sock'}")
    code, _, stderr = run_cli(
        ["build", "--dockerfile", "Dockerfile", "--context", str(dockerfile_context), "-q"]
    )
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "no container engine answers at unix://" in lines[0]
