"""The OCI core: media types, descriptors, canonical JSON, blobs, reproducible layers, image
configs and manifests. The image builders, the registry client, the layout store, the SBOM
and signing all use these, so an image has one set of digests wherever it goes.

Layers are built by ``LayerBuilder`` so that the same files give the same bytes: entries
sorted, one fixed timestamp, uid/gid 0, normalised modes, and gzip with mtime 0 and no file
name. Layouts on disk are in :mod:`mlci.supply.layout`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from mlci.errors import InputError
from mlci.files import temp_file

# Media types (image-spec v1.1).
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (MEDIA_MANIFEST, MEDIA_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_TYPES = (MEDIA_INDEX, DOCKER_MANIFEST_LIST)
# The empty config of artifacts (OCI 1.1): the two bytes "{}".
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
GZIP_LAYERS = {MEDIA_LAYER_GZIP, DOCKER_LAYER_GZIP}
TAR_LAYERS = {MEDIA_LAYER, DOCKER_LAYER}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and its size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as it appears in a manifest or index."""
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.platform:
            data["platform"] = dict(self.platform)
        if self.annotations:
            data["annotations"] = dict(sorted(self.annotations.items()))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        """Read a descriptor; InputError when a field is missing or of the wrong type."""
        try:
            media_type, digest, size = data["mediaType"], data["digest"], data["size"]
        except (KeyError, TypeError) as exc:
            raise InputError(f"descriptor without {exc}: {json.dumps(data)[:120]}") from None
        if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
            raise InputError(f"descriptor with an unsupported digest {digest!r}")
        if not isinstance(size, int) or size < 0:
            raise InputError(f"descriptor {digest} with an invalid size {size!r}")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InputError(f"descriptor {digest} with annotations that are not a mapping")
        artifact_type = data.get("artifactType")
        return cls(
            str(media_type),
            digest,
            size,
            {str(k): str(v) for k, v in annotations.items()},
            dict(data["platform"]) if data.get("platform") else None,
            str(artifact_type) if artifact_type else None,
        )

    @property
    def hex(self) -> str:
        """The digest without its ``sha256:`` prefix (the blob's file name)."""
        return self.digest.split(":", 1)[1]


def canonical_json(data: Any) -> bytes:
    """Stable JSON bytes: sorted keys, no whitespace, UTF-8 (the same data, the same digest)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_of_file(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


# --------------------------------------------------------------------------- blobs and layers


@dataclass(frozen=True)
class Blob:
    """A blob held in memory or in a file, with its descriptor."""

    descriptor: Descriptor
    data: bytes | None = None
    path: Path | None = None

    def open(self) -> BinaryIO:
        """A binary reader of the blob's bytes."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    def read(self) -> bytes:
        """All of the blob's bytes (only for small blobs: configs and manifests)."""
        with self.open() as handle:
            return handle.read()


def json_blob(data: Any, media_type: str, **kwargs: Any) -> Blob:
    """A blob holding ``data`` as canonical JSON."""
    raw = canonical_json(data)
    return Blob(Descriptor(media_type, sha256_digest(raw), len(raw), **kwargs), data=raw)


@dataclass(frozen=True)
class Layer:
    """A layer blob and the digest of its uncompressed tar (the config's ``diff_id``)."""

    blob: Blob
    diff_id: str
    # What the history entry says made this layer (e.g. "mlci: model").
    created_by: str = ""

    @property
    def descriptor(self) -> Descriptor:
        """The layer's descriptor in the manifest."""
        return self.blob.descriptor

    @property
    def compressed(self) -> bool:
        """True for gzip layers."""
        return self.blob.descriptor.media_type in GZIP_LAYERS


def _clean_name(name: str) -> str:
    path = PurePosixPath("/" + name.lstrip("/"))
    parts = [p for p in path.parts[1:] if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        raise ValueError(f"invalid path in layer: {name!r}")
    return "/".join(parts)


class LayerBuilder:
    """Collects files for one layer and writes it as a reproducible tar and gzip.

    Entries are written in sorted order with every parent directory, all owned by 0:0 with
    empty owner names, all stamped with ``mtime``, with mode 0755 for directories and
    executables and 0644 for other files.
    """

    def __init__(self, mtime: int) -> None:
        self.mtime = int(mtime)
        self._files: dict[str, tuple[bytes | Path, bool]] = {}
        self._symlinks: dict[str, str] = {}

    def add_bytes(self, name: str, data: bytes, *, executable: bool = False) -> None:
        """Add a file with the given content at ``name`` (a path inside the image)."""
        self._files[_clean_name(name)] = (data, executable)

    def add_file(self, name: str, source: Path, *, executable: bool | None = None) -> None:
        """Add a file from disk; executable follows the source's mode unless given."""
        if executable is None:
            executable = bool(source.stat().st_mode & 0o111)
        self._files[_clean_name(name)] = (Path(source), executable)

    def add_tree(self, prefix: str, root: Path) -> None:
        """Add every file and symlink under ``root`` at ``prefix`` (``__pycache__`` skipped)."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in filenames:
                source = Path(dirpath) / name
                rel = source.relative_to(root).as_posix()
                if source.is_symlink():
                    self.add_symlink(f"{prefix}/{rel}", os.readlink(source))
                elif name.endswith((".pyc", ".pyo")):
                    continue
                else:
                    self.add_file(f"{prefix}/{rel}", source)

    def add_symlink(self, name: str, target: str) -> None:
        """Add a symbolic link at ``name`` pointing at ``target``."""
        self._symlinks[_clean_name(name)] = target

    def __len__(self) -> int:
        return len(self._files) + len(self._symlinks)

    def _directories(self) -> list[str]:
        dirs: set[str] = set()
        for name in list(self._files) + list(self._symlinks):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return sorted(dirs)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def write_tar(self, out: BinaryIO) -> None:
        """Write the uncompressed tar to ``out``."""
        entries: list[tuple[str, str]] = [(d, "dir") for d in self._directories()]
        entries += [(n, "file") for n in self._files]
        entries += [(n, "link") for n in self._symlinks]
        # Sorting on path components puts "a/b" right after "a", before "a-c".
        entries.sort(key=lambda e: e[0].split("/"))
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, kind in entries:
                if kind == "dir":
                    tar.addfile(self._info(name + "/", tarfile.DIRTYPE, 0o755))
                elif kind == "link":
                    info = self._info(name, tarfile.SYMTYPE, 0o777)
                    info.linkname = self._symlinks[name]
                    tar.addfile(info)
                else:
                    content, executable = self._files[name]
                    info = self._info(name, tarfile.REGTYPE, 0o755 if executable else 0o644)
                    if isinstance(content, Path):
                        info.size = content.stat().st_size
                        with open(content, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        info.size = len(content)
                        tar.addfile(info, io.BytesIO(content))

    def build(self, directory: Path, *, created_by: str = "", level: int = 6) -> Layer:
        """Write the layer as a gzip blob into ``directory``; return it with its diff_id."""
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file(directory, prefix=".layer-")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            with open(tmp_path, "wb") as raw:
                hashing = _HashingWriter(raw)
                with deterministic_gzip(hashing, level) as zipped:
                    diff = _HashingWriter(zipped)
                    self.write_tar(diff)  # type: ignore[arg-type]
            digest = "sha256:" + hashing.sha.hexdigest()
            final = directory / digest.split(":", 1)[1]
            os.replace(tmp_path, final)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        descriptor = Descriptor(MEDIA_LAYER_GZIP, digest, hashing.size)
        return Layer(Blob(descriptor, path=final), "sha256:" + diff.sha.hexdigest(), created_by)


class _HashingWriter:
    """A writable stream that hashes and counts what passes through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    def tell(self) -> int:
        return self.size


def deterministic_gzip(out: Any, level: int = 6) -> gzip.GzipFile:
    """A gzip writer whose header holds no file name and mtime 0, so output depends on input."""
    return gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=level, mtime=0)


def gunzip_digest(path: Path) -> str:
    """``sha256:<hex>`` of a gzip file's uncompressed content (a gzip layer's diff_id)."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


# --------------------------------------------------------------------------- image config


def rfc3339(epoch: int) -> str:
    """A Unix time as the RFC 3339 UTC timestamp OCI configs use."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def image_config(
    base: Mapping[str, Any],
    layers: Iterable[Layer],
    *,
    created: int,
    env: Mapping[str, str] | None = None,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    exposed_ports: Iterable[str] = (),
    working_dir: str | None = None,
    user: str | None = None,
    stop_signal: str | None = None,
) -> dict[str, Any]:
    """The base image's config with ``layers`` appended and the runtime settings replaced.

    ``env`` entries override the base's variables of the same name; labels are merged over
    the base's. The result has no field that depends on the build machine or the time.
    """
    config: dict[str, Any] = json.loads(json.dumps(dict(base)))
    runtime = dict(config.get("config") or {})
    current = dict(e.split("=", 1) for e in runtime.get("Env") or [] if "=" in e)
    current.update(env or {})
    runtime["Env"] = [f"{k}={v}" for k, v in current.items()]
    if entrypoint is not None:
        runtime["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        runtime["Cmd"] = list(cmd)
    if labels:
        runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    if exposed_ports:
        ports = dict(runtime.get("ExposedPorts") or {})
        ports.update({p: {} for p in exposed_ports})
        runtime["ExposedPorts"] = ports
    if working_dir is not None:
        runtime["WorkingDir"] = working_dir
    if user is not None:
        runtime["User"] = user
    if stop_signal is not None:
        runtime["StopSignal"] = stop_signal
    config["config"] = runtime
    stamp = rfc3339(created)
    config["created"] = stamp
    config.setdefault("architecture", "amd64")
    config.setdefault("os", "linux")
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    history = list(config.get("history") or [])
    diff_ids = list(rootfs.get("diff_ids") or [])
    for layer in layers:
        diff_ids.append(layer.diff_id)
        history.append({"created": stamp, "created_by": layer.created_by or "mlci build"})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = diff_ids
    config["rootfs"] = rootfs
    config["history"] = history
    for key in ("container", "container_config", "docker_version", "id", "parent"):
        config.pop(key, None)
    return config


def manifest_for(
    config: Blob, layers: Iterable[Layer], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OCI image manifest for a config blob and its layers."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return manifest
