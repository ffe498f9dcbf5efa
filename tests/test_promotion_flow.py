"""The whole loop with real components: evaluate and gate a candidate, publish it as a ModelPack
artifact, promote it, and evaluate the next candidate against what is now in production."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from services_registry import Registry, run_cli
from services_sources import make_key, sha256

from mlci.sources import modelpack
from project import Project

GATE = """
gate:
  rules:
    - kind: metric
      metric: roc_auc
      min: 0.5
"""


def skopeo_raw(reference: str) -> dict[str, Any]:
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_push_model_writes_a_modelpack_artifact(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services_sources import gated_results, onnx_model

    model = tmp_path / "credit.onnx"
    digest = onnx_model(model, scale=2.0)
    card = tmp_path / "card.md"
    card.write_text("# Model card: credit\n")
    tokenizer = tmp_path / "labels.json"
    tokenizer.write_text('{"0": "good", "1": "bad"}')
    results = gated_results(tmp_path / "results.json", digest)
    reference = registry.ref("packs/credit", "v1")
    argv = ["push-model", str(model), reference, "--card", str(card), "--results", str(results)]
    code, out, err = run_cli([*argv, "--file", str(tokenizer), "-q"], capsys)
    assert code == 0, err
    pinned = out.strip()
    # what the registry holds, as another OCI client (skopeo) sees it
    manifest = skopeo_raw(reference)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    layers = {
        layer["annotations"]["org.cncf.model.filepath"]: layer for layer in manifest["layers"]
    }
    assert layers["credit.onnx"]["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert layers["credit.onnx"]["digest"] == f"sha256:{digest}"  # the evaluated file itself
    assert layers["labels.json"]["mediaType"] == "application/vnd.cncf.model.weight.config.v1.raw"
    assert layers["card.md"]["mediaType"] == "application/vnd.cncf.model.doc.v1.raw"
    assert layers["results.json"]["digest"] == f"sha256:{sha256(results)}"
    # the model config follows the specification's schema (descriptor, config, modelfs)
    config = json.loads(
        subprocess.run(
            [
                "skopeo",
                "inspect",
                "--config",
                "--raw",
                "--tls-verify=false",
                f"docker://{reference}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert set(config) == {"descriptor", "config", "modelfs"}
    assert config["descriptor"]["name"] == "credit" and config["descriptor"]["createdAt"]
    assert config["config"] == {"format": "onnx"}
    assert config["modelfs"] == {
        "type": "layers",
        "diffIds": [layer["digest"] for layer in manifest["layers"]],
    }
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        check=True,
    ).stdout
    assert pinned.endswith("@sha256:" + hashlib.sha256(raw).hexdigest())
    # the same inputs at the same time give the same artifact
    again = modelpack.build(
        [modelpack.PackFile(model, model.name, modelpack.WEIGHT_RAW)],
        name="credit",
        model_format="onnx",
        created="2026-01-01T00:00:00Z",
    )
    assert (
        again.digest
        == modelpack.build(
            [modelpack.PackFile(model, model.name, modelpack.WEIGHT_RAW)],
            name="credit",
            model_format="onnx",
            created="2026-01-01T00:00:00Z",
        ).digest
    )


def test_push_model_refuses_results_of_another_model(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services_sources import gated_results, onnx_model

    onnx_model(tmp_path / "m.onnx", scale=1.0)
    results = gated_results(tmp_path / "results.json", "0" * 64)
    code, _, err = run_cli(
        [
            "push-model",
            str(tmp_path / "m.onnx"),
            registry.ref("packs/other", "v1"),
            "--results",
            str(results),
        ],
        capsys,
    )
    assert code == 2 and "push the model file that was evaluated" in err
    done = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.ref('packs/other', 'v1')}",
        ],
        capture_output=True,
    )
    assert done.returncode != 0  # nothing was pushed


def test_evaluate_publish_promote_then_compare_with_production(
    project: Project,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project.root
    key = make_key(root / "keys")  # paths in mlci.yaml stay in its folder
    monkeypatch.setenv("COSIGN_PASSWORD", key.password)
    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    (root / "mlci.yaml").write_text((root / "mlci.yaml").read_text() + GATE)
    out = tmp_path / "first"
    code, _, err = run_cli(
        ["check", "-c", str(root), "-o", str(out), "--only", "evaluate,gate"], capsys
    )
    assert code == 0, err
    results = out / "results.json"
    first = json.loads(results.read_text())
    assert first["gate"]["decision"] == "promote"

    # publish the evaluated file, signed, with its results
    image = registry.ref("flow/credit", "candidate")
    argv = ["push-model", str(root / "models" / "candidate.onnx"), image, "--results", str(results)]
    code, out_text, err = run_cli([*argv, "--key", str(key.private), "-q"], capsys)
    assert code == 0, err
    pinned = out_text.strip()

    # promote exactly that digest
    pointer = f"oci://{registry.ref('flow/credit', 'prod')}"
    code, out_text, err = run_cli(
        ["promote", str(results), "--to", pointer, "--model", pinned, "--key", str(key.private)],
        capsys,
    )
    assert code == 0, err
    promoted = json.loads(results.read_text())["promotion"]
    assert promoted["pointer"] == pointer and promoted["target"] == pinned.rsplit("@", 1)[1]
    assert promoted["model_sha256"] == first["model"]["sha256"]

    # the comment and the card now say what is in production
    code, comment, err = run_cli(["report", str(results), "-f", "comment"], capsys)
    assert code == 0, err
    assert "In production" in comment and pinned.rsplit("@", 1)[1][:19] in comment
    code, card, err = run_cli(["card", str(results)], capsys)
    assert code == 0, err
    assert "production" in card and pointer in card

    # the next pull request compares with production, fetched from the registry and verified
    config = (
        (root / "mlci.yaml")
        .read_text()
        .replace(
            "baseline:\n      path: models/baseline.onnx",
            f"baseline:\n      source: {pointer}\n      verify:\n        key: {key.public}",
        )
    )
    (root / "mlci.yaml").write_text(config)
    second = tmp_path / "second"
    code, _, err = run_cli(
        ["check", "-c", str(root), "-o", str(second), "--only", "evaluate"], capsys
    )
    assert code == 0, err
    baseline = json.loads((second / "results.json").read_text())["baseline"]
    assert baseline["sha256"] == first["model"]["sha256"]
    assert baseline["source"]["scheme"] == "oci"
    assert baseline["source"]["resolved"] == pinned.removeprefix("oci://")
    assert baseline["source"]["verified_by"].startswith("key:sha256:")
