"""The daemonless OCI builder: a serving image from a base image, wheels and a model.

Like Jib or ko, it needs no container engine: it reads the base image from an OCI layout or
a docker-archive tar, appends three layers and writes an OCI layout or a docker-archive::

    base layers            carried over; uncompressed ones (docker-archive) gzip-compressed
                           once and cached by diff_id
    dependencies           /opt/mlci/site-packages: numpy, onnxruntime, uvicorn, httptools,
                           uvloop, orjson and their dependencies, wheels chosen for the
                           base's Python and platform, unpacked directly
    serving runtime        /opt/mlci/runtime/mlci/serve (the Open Inference Protocol server)
    model                  /model/model.onnx and /model/model.json, in a layer of its own

Builds are reproducible: every layer is written by ``oci.LayerBuilder`` (sorted entries, one
timestamp, 0:0 ownership, gzip without name or mtime) and the only time in the image is the
source date (``SOURCE_DATE_EPOCH``, else the commit time, else 0). A new model changes only
the model layer, the config and the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci import __version__
from mlci.errors import InputError, UsageError
from mlci.files import temp_file
from mlci.supply import layout, oci
from mlci.supply.bases import BaseImage, BaseSource
from mlci.supply.builder import (
    BuildError,
    BuildResult,
    ImageBuilder,
    LayerSummary,
    Output,
    Progress,
    _full_tag,
    oci_labels,
    source_date_epoch,
    tag_version,
)

SITE_PACKAGES = "/opt/mlci/site-packages"
RUNTIME = "/opt/mlci/runtime"
MODEL_DIR = "/model"
MODEL_FILE = f"{MODEL_DIR}/model.onnx"
PORT = 8080
# The serving runtime's needs (mlci.serve: ONNX Runtime and numpy; uvicorn with its
# dependencies click and h11, httptools and uvloop; orjson), pinned to the versions mlci
# itself runs with, so the image predicts exactly what mlci evaluated and serves as tested.
SERVE_PACKAGES = (
    "numpy",
    "onnxruntime",
    "uvicorn",
    "click",
    "h11",
    "httptools",
    "uvloop",
    "orjson",
)


# --------------------------------------------------------------------------- target platform


@dataclass(frozen=True)
class TargetPython:
    """The Python a base image runs and the wheel tags it accepts."""

    version: str  # "3.11"
    machine: str  # "x86_64"
    glibc: tuple[int, int] | None

    @property
    def platforms(self) -> list[str]:
        """pip ``--platform`` values: every manylinux the base's glibc can run."""
        if self.glibc is None:
            return [f"manylinux2014_{self.machine}"]
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}"]

    @property
    def abi(self) -> str:
        """The CPython ABI tag (``cp311``)."""
        return "cp" + self.version.replace(".", "")


_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}
_PYTHON_DIR = re.compile(r"^(?:\./)?usr/(?:local/)?lib/python(3\.\d+)/os\.py$")
_GLIBC_FILE = re.compile(r"^(?:\./)?(?:usr/)?lib(?:64)?/(?:[\w-]+/)?libc-(\d+)\.(\d+)\.so$")


def detect_python(base: BaseImage) -> TargetPython:
    """Find the base's Python version and glibc by reading its layers' file lists."""
    arch = str(base.config.get("architecture") or "amd64")
    machine = _ARCH.get(arch, arch)
    versions: set[str] = set()
    glibc: tuple[int, int] | None = None
    for layer in base.layers:
        with (
            layer.blob.open() as handle,
            tarfile.open(fileobj=handle, mode="r:gz" if layer.compressed else "r:") as tar,
        ):
            for member in tar:
                name = member.name
                if (match := _PYTHON_DIR.match(name)) is not None:
                    versions.add(match.group(1))
                elif (found := _GLIBC_FILE.match(name)) is not None:
                    glibc = (int(found.group(1)), int(found.group(2)))
                elif name.lstrip("./") == "var/lib/dpkg/status" and member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        glibc = _dpkg_glibc(extracted.read().decode("utf-8", "replace")) or glibc
    if not versions:
        raise InputError(
            f"base image {base.reference}: no Python 3 found (no usr/lib/python3.X/os.py)",
            tip="use a base image with Python, e.g. one built by scripts/build-base-image",
        )
    version = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    return TargetPython(version, machine, glibc)


def _dpkg_glibc(status: str) -> tuple[int, int] | None:
    for block in status.split("\n\n"):
        if re.search(r"^Package: libc6$", block, re.M):
            match = re.search(r"^Version: (\d+)\.(\d+)", block, re.M)
            if match:
                return int(match.group(1)), int(match.group(2))
    return None


# --------------------------------------------------------------------------- dependencies


def default_requirements() -> list[str]:
    """The serving runtime's packages pinned to the versions installed with mlci."""
    return [_pin(name) for name in SERVE_PACKAGES]


def _pin(name: str) -> str:
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def cache_dir() -> Path:
    """Where mlci keeps downloaded wheels and built dependency layers: ``MLCI_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/mlci``, else ``~/.cache/mlci``."""
    if os.environ.get("MLCI_CACHE_DIR"):
        return Path(os.environ["MLCI_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "mlci"
    return Path.home() / ".cache" / "mlci"


def download_wheels(requirements: Sequence[str], target: TargetPython, cache: Path) -> Path:
    """Wheels for ``requirements`` and their dependencies, for the target's Python and
    platform, downloaded with pip once and kept in ``cache``."""
    key = hashlib.sha256(
        json.dumps([sorted(requirements), target.version, target.platforms]).encode()
    ).hexdigest()[:20]
    folder = cache / "wheels" / key
    if (folder / ".complete").is_file():
        return folder
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".wheels-"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target.version,
        "--abi",
        target.abi,
        "--dest",
        str(tmp),
    ]
    for platform in target.platforms:
        command += ["--platform", platform]
    command += list(requirements)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            reason = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "")
            raise BuildError(
                f"pip could not download wheels for Python {target.version} on "
                f"{target.machine} ({reason.strip()[:200]})",
                tip="check the network or the package index, or pass --wheels DIR",
            )
        (tmp / ".complete").write_text("\n".join(requirements) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def wheel_files(folder: Path) -> list[Path]:
    """The .whl files in a folder, sorted by name; InputError when there are none."""
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise InputError(f"{folder}: no wheels (.whl files) in this folder")
    return wheels


def add_wheels(layer: oci.LayerBuilder, wheels: Sequence[Path], prefix: str) -> None:
    """Unpack wheels into ``prefix`` the way an installer would (purelib and platlib into
    the prefix, scripts into ``prefix/../bin``; headers and data are left out)."""
    for wheel in sorted(wheels, key=lambda p: p.name):
        try:
            archive = zipfile.ZipFile(wheel)
        except zipfile.BadZipFile:
            raise InputError(f"{wheel}: not a wheel (bad zip file)") from None
        with archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                name = info.filename
                executable = bool((info.external_attr >> 16) & 0o111)
                parts = name.split("/")
                if parts[0].endswith(".data") and len(parts) > 2:
                    kind, rest = parts[1], "/".join(parts[2:])
                    if kind in ("purelib", "platlib"):
                        dest = f"{prefix}/{rest}"
                    elif kind == "scripts":
                        dest, executable = f"{os.path.dirname(prefix)}/bin/{rest}", True
                    else:
                        continue
                else:
                    dest = f"{prefix}/{name}"
                layer.add_bytes(dest, archive.read(info), executable=executable)


def dependency_layer(wheels: Sequence[Path], mtime: int, cache: Path, staging: Path) -> oci.Layer:
    """The dependencies layer, built once per set of wheels and timestamp and then cached."""
    key_data: list[Any] = [SITE_PACKAGES, mtime]
    key_data += [[w.name, oci.sha256_of_file(w)] for w in sorted(wheels, key=lambda p: p.name)]
    key = hashlib.sha256(json.dumps(key_data).encode()).hexdigest()[:32]
    cached = cache / "layers" / f"deps-{key}.json"
    if cached.is_file():
        meta = json.loads(cached.read_text())
        blob = cache / "layers" / meta["digest"].split(":", 1)[1]
        if blob.is_file() and blob.stat().st_size == meta["size"]:
            desc = oci.Descriptor(oci.MEDIA_LAYER_GZIP, meta["digest"], meta["size"])
            return oci.Layer(oci.Blob(desc, path=blob), meta["diff_id"], meta["created_by"])
    builder = oci.LayerBuilder(mtime)
    add_wheels(builder, wheels, SITE_PACKAGES)
    names = ", ".join(w.name.split("-")[0] + "-" + w.name.split("-")[1] for w in wheels)
    layer = builder.build(cache / "layers", created_by=f"mlci: dependencies ({names})")
    meta = {
        "digest": layer.descriptor.digest,
        "size": layer.descriptor.size,
        "diff_id": layer.diff_id,
        "created_by": layer.created_by,
    }
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, cached)
    return layer


def compressed_base_layer(layer: oci.Layer, cache: Path) -> oci.Layer:
    """An uncompressed base layer (as ``docker save`` writes them) gzip-compressed the same
    deterministic way as mlci's own layers, once per diff_id and then cached."""
    if layer.compressed:
        return layer
    hex_id = layer.diff_id.split(":", 1)[1]
    meta_file = cache / "layers" / f"base-{hex_id}.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        blob = cache / "layers" / meta["digest"].split(":", 1)[1]
        if blob.is_file() and blob.stat().st_size == meta["size"]:
            desc = oci.Descriptor(oci.MEDIA_LAYER_GZIP, meta["digest"], meta["size"])
            return oci.Layer(oci.Blob(desc, path=blob), layer.diff_id, layer.created_by)
    folder = cache / "layers"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(folder, prefix=".base-")
    os.close(fd)
    try:
        digest = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as raw:

            class _Sink:
                def write(self, data: bytes) -> int:
                    nonlocal size
                    digest.update(data)
                    size += len(data)
                    return raw.write(data)

                def flush(self) -> None:
                    raw.flush()

            with oci.deterministic_gzip(_Sink()) as zipped, layer.blob.open() as source:
                while chunk := source.read(1 << 20):
                    zipped.write(chunk)
        blob_digest = "sha256:" + digest.hexdigest()
        final = folder / blob_digest.split(":", 1)[1]
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta_tmp = meta_file.with_suffix(".tmp")
    meta_tmp.write_text(json.dumps({"digest": blob_digest, "size": size}))
    os.replace(meta_tmp, meta_file)
    desc = oci.Descriptor(oci.MEDIA_LAYER_GZIP, blob_digest, size)
    return oci.Layer(oci.Blob(desc, path=final), layer.diff_id, layer.created_by)


def runtime_layer(mtime: int, staging: Path) -> oci.Layer:
    """The serving runtime: the ``mlci`` package's ``__init__``, the module it loads (numpy's
    kernels, chosen as in mlci) and ``mlci.serve``."""
    import mlci
    import mlci.serve

    builder = oci.LayerBuilder(mtime)
    package = Path(mlci.__file__).parent
    for name in ("__init__.py", "numpy_dispatch.py"):
        builder.add_file(f"{RUNTIME}/mlci/{name}", package / name, executable=False)
    serve = Path(mlci.serve.__file__).parent
    for source in sorted(serve.glob("*.py")):
        builder.add_file(f"{RUNTIME}/mlci/serve/{source.name}", source, executable=False)
    return builder.build(staging, created_by=f"mlci: serving runtime (mlci {__version__})")


def model_layer(model: Path, metadata: Mapping[str, Any], mtime: int, staging: Path) -> oci.Layer:
    """The model and its metadata, alone in their layer."""
    builder = oci.LayerBuilder(mtime)
    builder.add_file(MODEL_FILE, model, executable=False)
    builder.add_bytes(
        f"{MODEL_DIR}/model.json", json.dumps(dict(metadata), indent=2, sort_keys=True).encode()
    )
    return builder.build(staging, created_by=f"mlci: model {metadata.get('name', '')}".strip())


# --------------------------------------------------------------------------- the builder


@dataclass(frozen=True)
class BuildRequest:
    """Everything a daemonless build reads."""

    model: Path
    base: BaseSource
    output: Output
    name: str | None = None
    tag: str | None = None
    source_date_epoch: int | None = None
    requirements: tuple[str, ...] | None = None
    wheels: Path | None = None
    source: str | None = None
    revision: str | None = None
    # gzip base layers that came uncompressed (docker-archive), cached by diff_id; off keeps
    # them byte for byte (and their digests the base's).
    compress_base: bool = True


class DaemonlessBuilder(ImageBuilder):
    """The serving image from a base image, wheels and the model, with no container engine."""

    def __init__(self, request: BuildRequest) -> None:
        self.request = request

    def build(self, progress: Progress = lambda _m: None) -> BuildResult:
        return build_image(self.request, progress)


def build_image(request: BuildRequest, progress: Progress = lambda _m: None) -> BuildResult:
    """Build the serving image and write it to ``request.output``; nothing is written when
    any step fails."""
    from mlci.models.onnx import OnnxModel

    model_path = Path(request.model)
    if not model_path.is_file():
        raise InputError(f"{model_path}: no such model file", tip="check --model or mlci.yaml")
    model = OnnxModel(model_path, name=request.name)
    name = request.name or model.info.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UsageError(f"model name {name!r}: use letters, digits, '.', '_' and '-'")
    mtime = source_date_epoch(request.source_date_epoch, model_path.resolve())
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out = request.output
    out.path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.path.parent, prefix=f".{out.path.name}.build-"))
    try:
        progress(f"reading base image {request.base.reference}")
        base = request.base.fetch(staging)
        target = detect_python(base)
        if request.compress_base:
            base = dataclasses.replace(
                base, layers=tuple(compressed_base_layer(x, cache) for x in base.layers)
            )
        progress(f"base runs Python {target.version} on {target.machine}")
        if request.wheels is not None:
            wheels = wheel_files(request.wheels)
        else:
            reqs = list(request.requirements or default_requirements())
            progress(f"resolving wheels for {', '.join(reqs)}")
            wheels = wheel_files(download_wheels(reqs, target, cache))
        deps = dependency_layer(wheels, mtime, cache, staging)
        runtime = runtime_layer(mtime, staging)
        metadata = {
            "name": name,
            "format": "onnx",
            "sha256": model.info.sha256,
            "size_bytes": model.info.size_bytes,
            "file": MODEL_FILE,
        }
        model_l = model_layer(model_path, metadata, mtime, staging)
        added = [deps, runtime, model_l]
        labels = oci_labels(
            created=mtime,
            source=request.source,
            revision=request.revision,
            title=name,
            version=tag_version(request.tag),
            model_sha256=model.info.sha256,
            model_name=name,
            near=model_path.resolve(),
        )
        labels["org.opencontainers.image.description"] = (
            f"Model {name} served with the Open Inference Protocol (v2) by mlci"
        )
        labels["org.opencontainers.image.base.name"] = base.reference
        if base.digest:
            labels["org.opencontainers.image.base.digest"] = base.digest
        config = oci.image_config(
            base.config,
            added,
            created=mtime,
            env={
                "PYTHONPATH": f"{RUNTIME}:{SITE_PACKAGES}",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "MLCI_MODEL_NAME": name,
                "HOME": "/tmp",
            },
            entrypoint=["python3", "-m", "mlci.serve"],
            cmd=["--model", MODEL_FILE, "--name", name, "--host", "0.0.0.0", "--port", str(PORT)],
            labels=labels,
            exposed_ports=[f"{PORT}/tcp"],
            working_dir="/",
            user="65532:65532",
            stop_signal="SIGTERM",
        )
        config_blob = oci.json_blob(config, oci.MEDIA_CONFIG)
        layers = [*base.layers, *added]
        annotations = {
            "org.opencontainers.image.created": labels["org.opencontainers.image.created"],
            "org.opencontainers.image.base.name": base.reference,
        }
        if base.digest:
            annotations["org.opencontainers.image.base.digest"] = base.digest
        manifest = oci.manifest_for(config_blob, layers, annotations)
        manifest_blob = oci.json_blob(manifest, oci.MEDIA_MANIFEST)
        progress(f"writing {out}")
        if out.kind == "oci":
            ref = tag_version(request.tag)
            layout.write_layout(out.path, manifest_blob, config_blob, layers, ref_name=ref)
        else:
            tags = [_full_tag(request.tag or f"mlci/{name.lower()}:latest")]
            layout.write_docker_archive(out.path, config_blob, layers, tags=tags, mtime=mtime)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    roles = ["base"] * len(base.layers) + ["dependencies", "runtime", "model"]
    summaries = tuple(
        LayerSummary(
            role,
            layer.descriptor.digest,
            layer.diff_id,
            layer.descriptor.size,
            layer.descriptor.media_type,
        )
        for role, layer in zip(roles, layers, strict=True)
    )
    return BuildResult(
        manifest_blob.descriptor.digest,
        config_blob.descriptor.digest,
        str(out),
        summaries,
        labels,
    )
