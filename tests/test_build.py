"""The daemonless builder without an engine: layouts, reproducible layers, bad inputs."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlci.commands import main
from mlci.errors import InputError
from mlci.supply import layout, oci
from mlci.supply.bases import base_source
from mlci.supply.build import BuildRequest, TargetPython, build_image, detect_python
from mlci.supply.builder import Output
from project import Project

EPOCH = 1_700_000_000


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``mlci ARGV`` run in-process: the exit code, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_base(path: Path) -> Path:
    """A tiny docker-archive with the files the builder looks for (no real Python)."""
    layer = _tar(
        {
            "usr/lib/python3.11/os.py": b"# os\n",
            "var/lib/dpkg/status": b"Package: libc6\nStatus: install ok installed\n"
            b"Version: 2.36-9\n\nPackage: zlib1g\nVersion: 1:1.2\n",
        }
    )
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Labels": {"base": "yes"}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = [{"Config": "config.json", "RepoTags": ["fake/base:1"], "Layers": ["l/layer.tar"]}]
    path.write_bytes(
        _tar(
            {
                "config.json": config,
                "l/layer.tar": layer,
                "manifest.json": json.dumps(manifest).encode(),
            }
        )
    )
    return path


def fake_wheels(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "tiny-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("tiny/__init__.py", "VALUE = 1\n")
        whl.writestr("tiny-1.0.data/scripts/tiny-cli", "#!python\n")
        whl.writestr("tiny-1.0.data/headers/tiny.h", "/* left out */\n")
        whl.writestr("tiny-1.0.dist-info/METADATA", "Name: tiny\nVersion: 1.0\n")
    return folder


@pytest.fixture
def inputs(
    tmp_path: Path, built_project: Project, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    return {
        "base": fake_base(tmp_path / "base.tar"),
        "wheels": fake_wheels(tmp_path / "wheels"),
        "model": built_project.root / "models" / "candidate.onnx",
        "baseline": built_project.root / "models" / "baseline.onnx",
    }


def _build(inputs: dict[str, Path], out: str, model: str = "model", **kw: object) -> object:
    return build_image(
        BuildRequest(
            model=inputs[model],
            base=base_source(str(inputs["base"])),
            output=Output.parse(out),
            name="demo",
            wheels=inputs["wheels"],
            source_date_epoch=EPOCH,
            **kw,  # type: ignore[arg-type]
        )
    )


def test_layer_builder_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "b.txt").write_text("b")
    (tmp_path / "src" / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "src" / "run.sh").chmod(0o700)
    digests = set()
    for i, order in enumerate((["x", "a/z", "a/b"], ["a/b", "x", "a/z"])):
        layer = oci.LayerBuilder(EPOCH)
        for name in order:
            layer.add_bytes(name, name.encode())
        layer.add_tree("opt/src", tmp_path / "src")
        built = layer.build(tmp_path / f"out{i}")
        digests.add((built.descriptor.digest, built.diff_id))
        assert built.blob.path is not None
        raw = built.blob.path.read_bytes()
        assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # gzip: mtime 0, no file name
        with tarfile.open(built.blob.path) as tar:
            members = tar.getmembers()
    assert len(digests) == 1
    names = [m.name for m in members]
    assert names == ["a", "a/b", "a/z", "opt", "opt/src", "opt/src/b.txt", "opt/src/run.sh", "x"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", EPOCH)}
    modes = {m.name: m.mode for m in members}
    assert modes["a"] == 0o755 and modes["opt/src/run.sh"] == 0o755 and modes["x"] == 0o644


def test_layout_round_trip(tmp_path: Path) -> None:
    layer = oci.LayerBuilder(0)
    layer.add_bytes("hello.txt", b"hi")
    built = layer.build(tmp_path / "blobs")
    config = oci.json_blob(
        oci.image_config({}, [built], created=0, labels={"a": "b"}), oci.MEDIA_CONFIG
    )
    manifest = oci.json_blob(oci.manifest_for(config, [built]), oci.MEDIA_MANIFEST)
    layout.write_layout(tmp_path / "layout", manifest, config, [built], ref_name="v1")
    index, read_manifest, read_config, layers = layout.read_layout(tmp_path / "layout")
    assert index["manifests"][0]["digest"] == manifest.descriptor.digest
    assert index["manifests"][0]["annotations"] == {oci.ANNOTATION_REF_NAME: "v1"}
    assert read_manifest == json.loads(manifest.read())
    assert read_config["config"]["Labels"] == {"a": "b"}
    assert read_config["rootfs"]["diff_ids"] == [built.diff_id]
    assert [x.descriptor.digest for x in layers] == [built.descriptor.digest]
    assert gzip.decompress(layers[0].blob.read())[:9] == b"hello.txt"
    layout.read_layout(tmp_path / "layout", ref_name="v1")
    with pytest.raises(InputError, match="no image tagged 'v2'"):
        layout.read_layout(tmp_path / "layout", ref_name="v2")
    # a corrupt config blob is named
    (tmp_path / "layout" / "blobs" / "sha256" / config.descriptor.hex).write_bytes(b"{}")
    with pytest.raises(InputError, match="does not match its digest"):
        layout.read_layout(tmp_path / "layout")


def test_detects_python_and_glibc(inputs: dict[str, Path], tmp_path: Path) -> None:
    base = base_source(str(inputs["base"])).fetch(tmp_path)
    target = detect_python(base)
    assert target == TargetPython("3.11", "x86_64", (2, 36))
    assert target.platforms[0] == "manylinux_2_36_x86_64"
    assert target.platforms[-1] == "manylinux2014_x86_64" and target.abi == "cp311"


def test_same_inputs_same_digest(inputs: dict[str, Path], tmp_path: Path) -> None:
    first = _build(inputs, f"oci:{tmp_path / 'a'}")
    second = _build(inputs, f"oci:{tmp_path / 'b'}")
    assert first.digest == second.digest  # type: ignore[attr-defined]
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    assert files_a == files_b
    for rel in files_a:
        if (tmp_path / "a" / rel).is_file():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_layers_config_and_labels(inputs: dict[str, Path], tmp_path: Path) -> None:
    result = _build(
        inputs, f"oci:{tmp_path / 'img'}", tag="demo:1.2", source="https://example.com/r",
        revision="abc123",
    )  # fmt: skip
    _, manifest, config, layers = layout.read_layout(tmp_path / "img", ref_name="1.2")
    assert [x.role for x in result.layers] == ["base", "dependencies", "runtime", "model"]  # type: ignore[attr-defined]
    assert {m["mediaType"] for m in manifest["layers"]} == {oci.MEDIA_LAYER_GZIP}
    assert config["rootfs"]["diff_ids"][0] == result.layers[0].diff_id  # type: ignore[attr-defined]

    def names(layer: oci.Layer) -> list[str]:
        with layer.blob.open() as handle, tarfile.open(fileobj=handle, mode="r:gz") as tar:
            return [m.name for m in tar.getmembers() if m.isfile()]

    assert names(layers[1]) == [
        "opt/mlci/bin/tiny-cli",
        "opt/mlci/site-packages/tiny/__init__.py",
        "opt/mlci/site-packages/tiny-1.0.dist-info/METADATA",
    ]
    assert "opt/mlci/runtime/mlci/serve/server.py" in names(layers[2])
    # What mlci's __init__ imports comes along, or the server cannot start.
    assert "opt/mlci/runtime/mlci/numpy_dispatch.py" in names(layers[2])
    assert names(layers[3]) == ["model/model.json", "model/model.onnx"]
    labels = config["config"]["Labels"]
    sha = hashlib.sha256(inputs["model"].read_bytes()).hexdigest()
    assert labels["dev.mlci.model.sha256"] == sha
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert labels["org.opencontainers.image.source"] == "https://example.com/r"
    assert labels["org.opencontainers.image.revision"] == "abc123"
    assert labels["org.opencontainers.image.version"] == "1.2"
    assert labels["base"] == "yes"  # the base's labels are kept
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["config"]["Entrypoint"] == ["python3", "-m", "mlci.serve"]
    assert "--name" in config["config"]["Cmd"] and "demo" in config["config"]["Cmd"]
    assert "8080/tcp" in config["config"]["ExposedPorts"]
    assert "PATH=/usr/bin" in config["config"]["Env"]


def test_new_model_changes_only_the_model_layer(inputs: dict[str, Path], tmp_path: Path) -> None:
    _build(inputs, f"oci:{tmp_path / 'a'}")
    _build(inputs, f"oci:{tmp_path / 'b'}", model="baseline")
    _, first, _, _ = layout.read_layout(tmp_path / "a")
    _, second, _, _ = layout.read_layout(tmp_path / "b")
    changed = [
        i for i, (x, y) in enumerate(zip(first["layers"], second["layers"], strict=True)) if x != y
    ]
    assert changed == [len(first["layers"]) - 1]
    assert first["config"]["digest"] != second["config"]["digest"]


def test_source_date_epoch_from_the_environment(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    result = build_image(
        BuildRequest(
            model=inputs["model"],
            base=base_source(str(inputs["base"])),
            output=Output.parse(f"oci:{tmp_path / 'img'}"),
            wheels=inputs["wheels"],
        )
    )
    assert result.labels["org.opencontainers.image.created"] == "1970-01-02T00:00:00Z"
    assert result.labels["dev.mlci.model.name"] == "candidate"


def test_docker_archive_output(inputs: dict[str, Path], tmp_path: Path) -> None:
    result = _build(inputs, f"docker-archive:{tmp_path / 'img.tar'}", tag="mlci/demo:2")
    with tarfile.open(tmp_path / "img.tar") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == ["localhost/mlci/demo:2"]
        config_raw = tar.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
        assert "sha256:" + hashlib.sha256(config_raw).hexdigest() == result.config_digest  # type: ignore[attr-defined]
        diff_ids = json.loads(config_raw)["rootfs"]["diff_ids"]
        for name, diff_id in zip(manifest[0]["Layers"], diff_ids, strict=True):
            data = tar.extractfile(name).read()  # type: ignore[union-attr]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id


def test_cli_prints_the_digest(
    inputs: dict[str, Path],
    tmp_path: Path,
) -> None:
    out = tmp_path / "img"
    code, stdout, stderr = run_cli(
        ["build", "--model", str(inputs["model"]), "--base", str(inputs["base"]), "--output",
         f"oci:{out}", "--wheels", str(inputs["wheels"]), "--source-date-epoch", "0", "-q"],
    )  # fmt: skip
    assert code == 0, stderr
    digest = stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == digest
    assert "built oci:" in stderr


def test_cli_takes_the_model_from_mlci_yaml(
    inputs: dict[str, Path],
    project: Project,
    tmp_path: Path,
) -> None:
    out = tmp_path / "img"
    code, stdout, stderr = run_cli(
        ["build", "--config", str(project.config), "--base", str(inputs["base"]), "--output",
         f"oci:{out}", "--wheels", str(inputs["wheels"]), "-q"],
    )  # fmt: skip
    assert code == 0, stderr
    _, _, config, _ = layout.read_layout(out)
    assert config["config"]["Labels"]["dev.mlci.model.name"] == "demo"


def _garbage(path: Path) -> Path:
    path.write_bytes(b"\x00garbage" * 100)
    return path


def _truncated(path: Path, base: Path) -> Path:
    path.write_bytes(base.read_bytes()[:1500])
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-base", "base.tar: no such file (tip: build one with scripts/build-base-image"),
        ("garbage-base", "base.tar: not a readable image archive (not a tar file, or cut short)"),
        ("truncated-base", "not a readable image archive"),
        ("missing-model", "nope.onnx: no such model file"),
        ("corrupt-model", "not a valid ONNX model"),
        ("bad-output", "--output out: expected oci:DIR or docker-archive:FILE"),
        ("no-base", "give a base image with --base"),
        ("missing-layout", "no such OCI layout folder"),
    ],
)
def test_bad_inputs_one_line_and_nothing_written(
    case: str,
    message: str,
    inputs: dict[str, Path],
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    base, model, output = str(inputs["base"]), str(inputs["model"]), f"oci:{work / 'img'}"
    if case == "missing-base":
        base = str(work / "base.tar")
    elif case == "garbage-base":
        base = str(_garbage(work / "base.tar"))
    elif case == "truncated-base":
        base = str(_truncated(work / "base.tar", inputs["base"]))
    elif case == "missing-model":
        model = str(work / "nope.onnx")
    elif case == "corrupt-model":
        model = str(_garbage(work / "bad.onnx"))
    elif case == "bad-output":
        output = "out"
    elif case == "missing-layout":
        base = f"oci:{work / 'layout'}"
    before = sorted(p.name for p in work.iterdir())
    argv = ["build", "--model", model, "--output", output, "--wheels", str(inputs["wheels"]), "-q"]
    if case != "no-base":
        argv += ["--base", base]
    code, stdout, stderr = run_cli(argv)
    assert code == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlci: error: "), stderr
    assert message in lines[0]
    assert sorted(p.name for p in work.iterdir()) == before  # nothing partial left behind


def test_an_oci_layout_as_base(inputs: dict[str, Path], tmp_path: Path) -> None:
    first = _build(inputs, f"oci:{tmp_path / 'first'}", tag="demo:1")
    on_top = build_image(
        BuildRequest(
            model=inputs["baseline"],
            base=base_source(f"oci:{tmp_path / 'first'}:1"),
            output=Output.parse(f"oci:{tmp_path / 'second'}"),
            wheels=inputs["wheels"],
            source_date_epoch=EPOCH,
        )
    )
    assert [x.digest for x in on_top.layers[:4]] == [x.digest for x in first.layers]  # type: ignore[attr-defined]
    assert on_top.labels["org.opencontainers.image.base.digest"] == first.digest  # type: ignore[attr-defined]
    _, manifest, _, _ = layout.read_layout(tmp_path / "second")
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == first.digest  # type: ignore[attr-defined]
