"""A shadow replay between two serving images that mlci starts through the Docker Engine API
(Podman's socket), bound to the image digest of the results it judges. Needs
scripts/setup-podman (these tests fail, never skip, without it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services_podman import Podman, base_image, podman  # noqa: F401
from test_build import run_cli

from project import Project

NAMES = {
    "primary": "localhost/mlci-canary-test/primary:1",
    "canary": "localhost/mlci-canary-test/candidate:1",
}


def pull_layout(podman: Podman, layout: Path, name: str) -> tuple[str, str]:  # noqa: F811
    """Load an OCI layout into Podman under ``name``: the layout's manifest digest and the
    image's id."""
    index = json.loads((layout / "index.json").read_text())
    manifest = index["manifests"][0]
    ref = manifest.get("annotations", {}).get("org.opencontainers.image.ref.name")
    pulled = podman.run("pull", "-q", f"oci:{layout}" + (f":{ref}" if ref else ""))
    image_id = pulled.strip().splitlines()[-1]
    podman.run("tag", image_id, name)
    return str(manifest["digest"]), image_id


@pytest.fixture(scope="module")
def images(
    built_project: Project,
    base_image: Path,  # noqa: F811
    podman: Podman,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """The candidate built and evaluated by mlci check, the baseline built by mlci build,
    both loaded into Podman."""
    project = built_project.copy(tmp_path_factory.mktemp("canary-images") / "project")
    config = project.config.read_text() + "image:\n  sbom: false\n  sign: {method: none}\n"
    project.config.write_text(config)
    out = project.root / "out"
    code, _, stderr = run_cli(["check", "-q", "-c", str(project.config), "--only",
                               "evaluate,image", "--image-base", str(base_image), "-o", str(out)])  # fmt: skip
    assert code == 0, stderr
    results = json.loads((out / "results.json").read_text())
    code, stdout, stderr = run_cli(
        ["build", "-q", "--model", str(project.root / "models" / "baseline.onnx"), "--name",
         "demo", "--base", str(base_image), "--output", f"oci:{project.root / 'primary'}"]
    )  # fmt: skip
    assert code == 0, stderr
    ids = []
    digests = {}
    try:
        for role, layout in (("primary", project.root / "primary"), ("canary", out / "image")):
            digests[role], image_id = pull_layout(podman, layout, NAMES[role])
            ids.append(image_id)
        assert digests["primary"] == stdout.strip()
        assert digests["canary"] == results["image"]["digest"]
        yield {"project": project, "results": out / "results.json", "digests": digests}
    finally:
        if ids:
            podman.run("rmi", "-f", *ids, check=False)


def canary_config(project: Project) -> Path:
    """mlci.yaml with a shadow replay between the two images, and a canary gate."""
    config = project.root / "canary.yaml"
    config.write_text(
        project.config.read_text()
        + f"canary:\n  primary: {{image: {NAMES['primary']}}}\n"
        + f"  canary: {{image: {NAMES['canary']}}}\n"
        + "  shadow: {requests: 500, latency: {tolerance: 1.0}}\n"
        + "gate:\n  rules:\n    - kind: canary\n"
    )
    return config


def leftover_containers(podman: Podman) -> list[str]:  # noqa: F811
    listed = podman.run("ps", "-a", "--format", "{{.Names}}")
    return [n for n in listed.split() if n.startswith("mlci-canary-")]


def test_shadow_replay_between_two_images_binds_to_the_built_digest(
    images: dict[str, Any],
    podman: Podman,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
    config = canary_config(images["project"])
    before = json.loads(images["results"].read_text())
    code, stdout, stderr = run_cli(
        ["canary", "-q", "-c", str(config), "--results", str(images["results"])]
    )
    document = json.loads(images["results"].read_text())
    canary = document["canary"]
    # the baseline ignores the region, the candidate does not: their predictions differ
    assert code == 1, stdout + stderr
    assert canary["decision"] == "rollback"
    assert canary["canary"]["digest"] == images["digests"]["canary"] == before["image"]["digest"]
    assert canary["primary"]["digest"] == images["digests"]["primary"]
    assert canary["canary"]["model_sha256"] == before["model"]["sha256"]
    assert canary["primary"]["model_sha256"] == before["baseline"]["sha256"]
    assert canary["canary"]["url"].startswith("http://127.0.0.1:")
    assert canary["shadow"]["requests"] == 500 and canary["shadow"]["errors_status"] == "pass"
    # the gate accepted the evidence as being about its image, and acted on it
    rule = document["gate"]["rules"][0]
    assert rule["status"] == "fail" and document["gate"]["decision"] == "block"
    assert document["gate"]["image_digest"] == canary["canary"]["digest"]
    assert leftover_containers(podman) == []


def test_another_image_than_the_results_describe_is_refused(
    images: dict[str, Any],
    podman: Podman,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
    config = canary_config(images["project"])
    before = images["results"].read_bytes()
    code, stdout, stderr = run_cli(
        ["canary", "-q", "-c", str(config), "--results", str(images["results"]),
         "--canary-image", NAMES["primary"]]
    )  # fmt: skip
    assert code == 2, stdout + stderr
    assert stderr.startswith(
        "mlci: error: canary.canary: image localhost/mlci-canary-test/primary:1 is "
    )
    assert "not the image the results describe" in stderr and len(stderr.splitlines()) == 1
    assert images["results"].read_bytes() == before
    assert leftover_containers(podman) == []
