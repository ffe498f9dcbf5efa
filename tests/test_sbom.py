"""The CycloneDX 1.6 SBOM of an image layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from documents import plain, typed
from services_registry import (
    DPKG_STATUS,
    make_layout,
    results_document,
    run_cli,
    write_results,
)

from mlci.errors import InputError, MlciError
from mlci.results import load
from mlci.supply.sbom import (
    build_sbom,
    parse_dpkg_status,
    parse_metadata,
    sbom_image_digest,
    sbom_models,
    validate_sbom,
)


def _by_name(document: dict) -> dict[str, dict]:
    return {c["name"]: c for c in document["components"]}


def test_dpkg_status_keeps_installed_packages_only() -> None:
    packages = parse_dpkg_status(DPKG_STATUS, "/var/lib/dpkg/status")
    assert [(p.name, p.version, p.source) for p in packages] == [
        ("base-files", "12.4+deb12u5", None),
        ("libc6", "2.36-9+deb12u4", "glibc"),
        ("python3-minimal", "3.11.2-1+b1", "python3-defaults"),
    ]


def test_core_metadata_license_falls_back_to_classifier() -> None:
    text = (
        "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0\n"
        "Classifier: License :: OSI Approved :: BSD License\n\n"
    )
    package = parse_metadata(text, "/x")
    assert package and (package.name, package.license) == ("Foo_Bar", "BSD License")
    assert parse_metadata("Name: x\n\n", "/x") is None


def test_sbom_of_a_layout(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout")
    results = results_document(layout.model_sha256)
    results["evaluation"] = {
        "task": "binary",
        "primary_metric": "accuracy",
        "confidence": 0.95,
        "interval_method": "poisson-bootstrap",
        "bootstrap": 1000,
        "seed": 0,
        "metrics": {
            "candidate": {"accuracy": {"value": 0.93, "ci_low": 0.9, "ci_high": 0.95}},
            "baseline": None,
            "delta": None,
        },
        "slices": [],
    }
    sbom = build_sbom(layout.path, results=typed(results))
    document = sbom.document
    assert document["specVersion"] == "1.6"
    assert sbom_image_digest(document) == layout.digest
    assert document["metadata"]["component"]["type"] == "container"
    components = _by_name(document)
    assert components["libc6"]["purl"].startswith(
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
    )
    assert "distro=debian-12" in components["libc6"]["purl"]
    assert "removed-thing" not in components
    assert components["debian"]["type"] == "operating-system"
    assert components["numpy"]["purl"] == "pkg:pypi/numpy@2.4.6"
    assert components["numpy"]["licenses"] == [{"expression": "BSD-3-Clause"}]
    runtime = components["mlci"]
    assert runtime["type"] == "application"
    assert {"name": "mlci:role", "value": "serving-runtime"} in runtime["properties"]
    model = components["iris"]
    assert model["type"] == "machine-learning-model"
    assert model["hashes"] == [{"alg": "SHA-256", "content": layout.model_sha256}]
    assert model["modelCard"]["modelParameters"]["task"] == "classification"
    metric = model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0]
    assert metric["type"] == "accuracy" and metric["confidenceInterval"]["lowerBound"] == "0.9"
    assert sbom_models(document) == [layout.model_sha256]
    deps = {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}
    assert len(deps[layout.digest]) == len(document["components"])
    validate_sbom(document)  # strict CycloneDX 1.6


def test_later_layers_and_whiteouts_win(tmp_path: Path) -> None:
    from mlci.supply import layout, oci

    base = oci.LayerBuilder(mtime=0)
    base.add_bytes("var/lib/dpkg/status", DPKG_STATUS.encode())
    base.add_bytes("app/old-model.onnx", b"old")
    base.add_bytes(
        "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
        b"Name: six\nVersion: 1.16.0\n\n",
    )
    top = oci.LayerBuilder(mtime=0)
    top.add_bytes("app/.wh.old-model.onnx", b"")
    top.add_bytes("app/new-model.onnx", b"new")
    top.add_bytes("usr/lib/python3/dist-packages/.wh..wh..opq", b"")
    work = tmp_path / "blobs"
    layers = [base.build(work), top.build(work)]
    config = oci.json_blob(oci.image_config({}, layers, created=0), oci.MEDIA_CONFIG)
    manifest = oci.json_blob(oci.manifest_for(config, layers), oci.MEDIA_MANIFEST)
    layout.write_layout(tmp_path / "layout", manifest, config, layers)
    sbom = build_sbom(tmp_path / "layout")
    names = _by_name(sbom.document)
    assert "new-model.onnx" in names and "old-model.onnx" not in names
    assert "six" not in names and "libc6" in names


def test_model_card_file_and_model_path(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", extra={"srv/model/other.onnx": b"second"})
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"modelCard": {"considerations": {"useCases": ["triage"]}}}))
    from mlci.supply.sbom import load_model_card

    sbom = build_sbom(
        layout.path, model_card=load_model_card(card), model_path="/srv/model/model.onnx"
    )
    models = [c for c in sbom.document["components"] if c["type"] == "machine-learning-model"]
    assert len(models) == 1
    assert models[0]["modelCard"] == {"considerations": {"useCases": ["triage"]}}
    with pytest.raises(InputError, match="no model file at /nope.onnx"):
        build_sbom(layout.path, model_path="nope.onnx")


def test_invalid_sbom_is_rejected() -> None:
    with pytest.raises(MlciError, match="not valid CycloneDX 1.6"):
        validate_sbom({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": "one"})


def test_sbom_command_writes_file_and_results(tmp_path: Path, capsys) -> None:
    layout = make_layout(tmp_path / "layout")
    results = write_results(tmp_path / "results.json", results_document(layout.model_sha256))
    out = tmp_path / "sbom.cdx.json"
    code, stdout, err = run_cli(
        ["sbom", str(layout.path), "-o", str(out), "--results", str(results)], capsys
    )
    assert code == 0, err
    assert "CycloneDX 1.6" in stdout and layout.digest in stdout
    document = json.loads(out.read_text())
    validate_sbom(document)
    image = plain(load(results))["image"]
    assert image["digest"] == layout.digest
    assert image["sbom"]["attached"] is False
    assert image["sbom"]["components"] == len(document["components"])


def test_sbom_command_bad_inputs(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["sbom", str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such OCI" in err and err.count("\n") == 1
    layout = make_layout(tmp_path / "layout")
    (tmp_path / "card.json").write_text("[1, 2]")
    code, _, err = run_cli(
        [
            "sbom",
            str(layout.path),
            "--card",
            str(tmp_path / "card.json"),
            "-o",
            str(tmp_path / "s.json"),
        ],
        capsys,
    )
    assert code == 2 and "model card must be a JSON object" in err
    assert not (tmp_path / "s.json").exists()
    # a corrupt layer is named, and nothing is written
    manifest = json.loads((layout.path / "blobs" / "sha256" / layout.digest[7:]).read_bytes())
    layer = layout.path / "blobs" / "sha256" / manifest["layers"][1]["digest"][7:]
    layer.write_bytes(b"\x1f\x8b" + b"0" * (layer.stat().st_size - 2))
    code, _, err = run_cli(["sbom", str(layout.path), "-o", str(tmp_path / "s.json")], capsys)
    assert code == 2 and "layer" in err
    assert not (tmp_path / "s.json").exists()


def test_layout_as_the_image_builder_writes_it(tmp_path: Path) -> None:
    """Runtime files without dist-info, the model named by the builder's labels."""
    import hashlib

    from mlci.supply import layout, oci

    layer = oci.LayerBuilder(mtime=0)
    layer.add_bytes("var/lib/dpkg/status", DPKG_STATUS.encode())
    layer.add_bytes("opt/mlci/runtime/mlci/__init__.py", b"")
    layer.add_bytes("opt/mlci/runtime/mlci/serve/__init__.py", b"")
    layer.add_bytes(
        "opt/mlci/site-packages/numpy-2.4.6.dist-info/METADATA", b"Name: numpy\nVersion: 2.4.6\n\n"
    )
    layer.add_bytes("model/model.onnx", b"the model")
    layer.add_bytes("model/spare.onnx", b"not the model")
    layers = [layer.build(tmp_path / "blobs", created_by="mlci: serving runtime (mlci 0.1.0)")]
    sha = hashlib.sha256(b"the model").hexdigest()
    config = oci.json_blob(
        oci.image_config(
            {},
            layers,
            created=0,
            entrypoint=["/usr/bin/python3", "-m", "mlci.serve"],
            labels={"dev.mlci.model.sha256": sha, "dev.mlci.model.name": "credit"},
        ),
        oci.MEDIA_CONFIG,
    )
    manifest = oci.json_blob(oci.manifest_for(config, layers), oci.MEDIA_MANIFEST)
    layout.write_layout(tmp_path / "layout", manifest, config, layers, ref_name="1.0")
    document = build_sbom(tmp_path / "layout", tag="1.0").document
    components = _by_name(document)
    runtime = components["mlci"]
    assert (runtime["type"], runtime["version"], runtime["purl"]) == (
        "application",
        "0.1.0",
        "pkg:pypi/mlci@0.1.0",
    )
    assert {"name": "mlci:path", "value": "/opt/mlci/runtime/mlci"} in runtime["properties"]
    assert components["credit"]["hashes"][0]["content"] == sha
    assert "spare.onnx" not in components
    assert components["numpy"]["version"] == "2.4.6"
    validate_sbom(document)
