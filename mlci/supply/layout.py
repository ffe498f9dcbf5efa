"""OCI images on disk: image layout folders and docker-archive tars.

An OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)::

    DIR/oci-layout            {"imageLayoutVersion": "1.0.0"}
    DIR/index.json            the image manifest, and any artifacts that refer to it
    DIR/blobs/sha256/<hex>    manifest, config and layer blobs, named by their digest

The layout is the seam between mlci's image builders and everything that ships an image:
``mlci build`` writes one, the SBOM reads it, signatures and attestations can be attached to
it as referrers (entries of index.json with an ``artifactType``), and ``mlci push`` sends the
image and its referrers to a registry.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mlci.errors import InputError
from mlci.files import temp_dir, temp_file
from mlci.supply.oci import (
    ANNOTATION_REF_NAME,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    Blob,
    Descriptor,
    Layer,
    canonical_json,
    sha256_digest,
)

# --------------------------------------------------------------------------- layouts


def write_layout(
    path: Path,
    manifest: Blob,
    config: Blob,
    layers: Iterable[Layer],
    *,
    ref_name: str | None = None,
) -> Path:
    """Write an OCI image layout directory at ``path`` holding one image.

    The layout is assembled in a temporary sibling folder and moved into place, so ``path``
    holds either its old content or the whole new layout. An existing ``path`` is replaced
    only when it is an OCI layout or empty. ``ref_name`` becomes the index entry's
    ``org.opencontainers.image.ref.name`` annotation (a tag such as ``1.2``).
    """
    path = Path(path)
    if path.exists() and not _replaceable(path):
        raise InputError(
            f"{path}: exists and is not an OCI image layout; not overwriting it",
            tip="choose an empty or new folder",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(temp_dir(path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for blob in [config, *(layer.blob for layer in layers), manifest]:
            _store_blob(blob, blobs / blob.descriptor.hex)
        annotations = {ANNOTATION_REF_NAME: ref_name} if ref_name else {}
        entry = Descriptor(
            manifest.descriptor.media_type,
            manifest.descriptor.digest,
            manifest.descriptor.size,
            annotations,
        )
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry.to_json()]}
        (tmp / "index.json").write_bytes(canonical_json(index))
        (tmp / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replaceable(path: Path) -> bool:
    if not path.is_dir():
        return False
    return not any(path.iterdir()) or (path / "oci-layout").is_file()


def _store_blob(blob: Blob, target: Path) -> None:
    if target.exists():  # content-addressed: a layer repeated in the image is stored once
        return
    if blob.path is not None:
        try:
            os.link(blob.path, target)  # same file system: no copy
            return
        except OSError:
            shutil.copyfile(blob.path, target)
            return
    target.write_bytes(blob.read())


def is_layout(path: Path) -> bool:
    """True when ``path`` is a folder with an ``oci-layout`` file and an ``index.json``."""
    return (path / "oci-layout").is_file() and (path / "index.json").is_file()


def read_layout(
    path: Path, *, ref_name: str | None = None, platform: str = "linux/amd64"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Layer]]:
    """Read the image an OCI layout holds: ``(index, manifest, config, layers)``.

    ``index`` is ``index.json``; the manifest is the index entry whose ref name is
    ``ref_name`` (or its only entry), following nested indexes to the ``platform`` image.
    Layers are file-backed blobs inside the layout, with their diff_ids from the config.
    Every blob read is checked against its digest; InputError names what is wrong.
    """
    path = Path(path)
    where = str(path)
    if not path.is_dir():
        raise InputError(f"{where}: no such OCI layout folder")
    if not is_layout(path):
        raise InputError(
            f"{where}: not an OCI image layout (no oci-layout or index.json)",
            tip="give a folder written by 'mlci build --output oci:DIR' or 'skopeo copy ... oci:DIR'",
        )
    index = _load_json(path / "index.json", where)
    entries = image_entries(Descriptor.from_json(m) for m in index.get("manifests") or [])
    if ref_name is not None:
        entries = [e for e in entries if e.annotations.get(ANNOTATION_REF_NAME) == ref_name]
        if not entries:
            raise InputError(f"{where}: no image tagged {ref_name!r} in index.json")
    if not entries:
        raise InputError(f"{where}: index.json lists no manifests")
    if len(entries) > 1:
        names = [e.annotations.get(ANNOTATION_REF_NAME, e.digest[:19]) for e in entries]
        raise InputError(
            f"{where}: index.json lists {len(entries)} images ({', '.join(names)})",
            tip="pick one with a ref name: oci:DIR:TAG",
        )
    manifest = _resolve_manifest(path, entries[0], platform, where)
    config_desc = Descriptor.from_json(manifest.get("config") or {})
    config = json.loads(read_blob(path, config_desc.digest, where))
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    layer_descs = [Descriptor.from_json(d) for d in manifest.get("layers") or []]
    if len(diff_ids) != len(layer_descs):
        raise InputError(
            f"{where}: the config lists {len(diff_ids)} diff_ids for {len(layer_descs)} layers"
        )
    layers = []
    history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
    for i, (desc, diff_id) in enumerate(zip(layer_descs, diff_ids, strict=True)):
        blob_path = path / "blobs" / "sha256" / desc.hex
        if not blob_path.is_file():
            raise InputError(f"{where}: layer blob {desc.digest} is missing")
        if blob_path.stat().st_size != desc.size:
            raise InputError(f"{where}: layer blob {desc.digest} has the wrong size")
        created_by = history[i].get("created_by", "") if i < len(history) else ""
        layers.append(Layer(Blob(desc, path=blob_path), diff_id, created_by))
    return index, manifest, config, layers


def _resolve_manifest(
    path: Path, entry: Descriptor, platform: str, where: str, depth: int = 0
) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(read_blob(path, entry.digest, where))
    media = data.get("mediaType") or entry.media_type
    if media in (MEDIA_MANIFEST, DOCKER_MANIFEST) or "config" in data:
        return data
    if media in (MEDIA_INDEX, DOCKER_MANIFEST_LIST) and depth < 4:
        wanted_os, _, wanted_arch = platform.partition("/")
        for child in data.get("manifests") or []:
            plat = child.get("platform") or {}
            if plat.get("os") == wanted_os and plat.get("architecture") == wanted_arch:
                return _resolve_manifest(
                    path, Descriptor.from_json(child), platform, where, depth + 1
                )
        raise InputError(f"{where}: no image for platform {platform}")
    raise InputError(f"{where}: unsupported manifest media type {media!r}")


def _load_json(file: Path, where: str) -> dict[str, Any]:
    try:
        data = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{where}: cannot read {file.name} ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: {file.name} is not a JSON object")
    return data


# --------------------------------------------------------------------------- docker archives


def write_docker_archive(
    path: Path, config: Blob, layers: Iterable[Layer], *, tags: Iterable[str] = (), mtime: int = 0
) -> Path:
    """Write a docker-archive tar (what ``docker save`` writes) that ``docker load`` and
    ``podman load`` accept. Layers are stored uncompressed, as ``docker save`` does; the file
    is written under a temporary name and renamed, so nothing partial is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path.parent, prefix=f".{path.name}.")
    os.close(fd)
    layer_names = []
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:

            def entry(name: str, size: int) -> tarfile.TarInfo:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = size, mtime, 0o644
                info.uname = info.gname = ""
                return info

            raw = config.read()
            config_name = f"blobs/sha256/{config.descriptor.hex}"
            dirinfo = tarfile.TarInfo("blobs/")
            dirinfo.type, dirinfo.mode, dirinfo.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(dirinfo)
            dirinfo = tarfile.TarInfo("blobs/sha256/")
            dirinfo.type, dirinfo.mode, dirinfo.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(dirinfo)
            tar.addfile(entry(config_name, len(raw)), io.BytesIO(raw))
            for layer in layers:
                name = f"blobs/sha256/{layer.diff_id.split(':', 1)[1]}"
                if name not in layer_names:  # a repeated layer is stored once, listed twice
                    with _uncompressed(layer) as (handle, size):
                        tar.addfile(entry(name, size), handle)
                layer_names.append(name)
            manifest = [{"Config": config_name, "RepoTags": list(tags), "Layers": layer_names}]
            data = json.dumps(manifest).encode()
            tar.addfile(entry("manifest.json", len(data)), io.BytesIO(data))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _uncompressed:
    """Context manager giving (reader, size) of a layer's uncompressed tar."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self._spool: Any = None

    def __enter__(self) -> tuple[BinaryIO, int]:
        blob = self.layer.blob
        if not self.layer.compressed:
            self._spool = blob.open()
            return self._spool, blob.descriptor.size
        self._spool = tempfile.TemporaryFile()
        with blob.open() as src:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while chunk := src.read(1 << 20):
                self._spool.write(decompressor.decompress(chunk))
            self._spool.write(decompressor.flush())
        size = self._spool.tell()
        self._spool.seek(0)
        return self._spool, size

    def __exit__(self, *exc: object) -> None:
        if self._spool is not None:
            self._spool.close()


# --------------------------------------------------------------------------- images in a layout


def image_entries(entries: Iterable[Descriptor]) -> list[Descriptor]:
    """The images among index.json's entries (referrers carry an ``artifactType``)."""
    return [e for e in entries if e.artifact_type is None]


@dataclass(frozen=True)
class LayoutImage:
    """One image of an OCI image layout: its top manifest and where its blobs are."""

    root: Path
    descriptor: Descriptor
    manifest: dict[str, Any]

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def read_blob(self, digest: str) -> bytes:
        return read_blob(self.root, digest, str(self.root))

    @property
    def manifest_bytes(self) -> bytes:
        return self.read_blob(self.descriptor.digest)

    def manifests(self) -> Iterator[tuple[Descriptor, dict[str, Any]]]:
        """Every manifest reachable from the top one, children first."""
        if self.descriptor.media_type in INDEX_TYPES:
            for child in self.manifest.get("manifests", []):
                desc = Descriptor.from_json(child)
                yield desc, json.loads(self.read_blob(desc.digest))
        yield self.descriptor, self.manifest

    def image_manifests(self) -> list[dict[str, Any]]:
        return [m for d, m in self.manifests() if d.media_type not in INDEX_TYPES]


def read_image_layout(path: str | Path, tag: str | None = None) -> LayoutImage:
    """The image of an OCI layout (the one tagged ``tag`` when it holds several)."""
    root = Path(path)
    where = str(root)
    index = _index(root)
    entries = image_entries(Descriptor.from_json(e) for e in index.get("manifests") or [])
    if tag is not None:
        entries = [e for e in entries if e.annotations.get(ANNOTATION_REF_NAME) == tag]
        if not entries:
            raise InputError(f"{where}: no image tagged '{tag}' in the layout")
    if not entries:
        raise InputError(f"{where}/index.json: the layout holds no image")
    if len(entries) > 1:
        names = [e.annotations.get(ANNOTATION_REF_NAME, e.digest[:19]) for e in entries]
        raise InputError(
            f"{where}: the layout holds {len(entries)} images ({', '.join(names)})",
            tip="name one with LAYOUT:TAG",
        )
    descriptor = entries[0]
    try:
        manifest = json.loads(read_blob(root, descriptor.digest, where))
    except ValueError:
        raise InputError(f"{where}: manifest {descriptor.digest} is not JSON") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{where}: manifest {descriptor.digest} is not a JSON object")
    return LayoutImage(root, descriptor, manifest)


def split_layout_argument(text: str) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR:TAG`` (the tag names one image of a layout that holds several);
    an ``oci:`` prefix is allowed."""
    if text.startswith("oci:"):
        text = text[len("oci:") :]
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, _, tag = text.rpartition(":")
    return Path(path), tag or None


def read_blob(root: Path, digest: str, where: str) -> bytes:
    """A blob of the layout, checked against its digest."""
    algorithm, _, hexdigest = digest.partition(":")
    try:
        data = (root / "blobs" / algorithm / hexdigest).read_bytes()
    except OSError:
        raise InputError(f"{where}: blob {digest} is missing from the layout") from None
    if sha256_digest(data) != digest:
        raise InputError(f"{where}: blob {digest} does not match its digest (corrupt)")
    return data


def write_blob(root: Path, data: bytes) -> str:
    """Store ``data`` in the layout (once: blobs are content-addressed); return its digest."""
    digest = sha256_digest(data)
    target = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    if not target.exists():
        from mlci.files import write_atomic

        write_atomic(target, data)
    return digest


def add_to_index(root: Path, descriptor: Descriptor) -> None:
    """List ``descriptor`` in index.json (replacing an entry with the same digest)."""
    from mlci.files import write_atomic

    index = _index(root)
    entries = [e for e in index.get("manifests") or [] if e.get("digest") != descriptor.digest]
    index["manifests"] = [*entries, descriptor.to_json()]
    write_atomic(root / "index.json", canonical_json(index))


def index_entries(root: Path) -> list[dict[str, Any]]:
    """The entries of the layout's index.json."""
    return list(_index(root).get("manifests") or [])


def _index(root: Path) -> dict[str, Any]:
    where = str(root)
    if not root.is_dir():
        raise InputError(f"{where}: no such OCI image layout folder")
    if not is_layout(root):
        raise InputError(
            f"{where}: not an OCI image layout (no oci-layout or index.json)",
            tip="build one with 'mlci build --output oci:DIR' or 'skopeo copy ... oci:DIR'",
        )
    return _load_json(root / "index.json", where)
