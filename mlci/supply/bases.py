"""Where a base image comes from: an OCI layout folder, a tar (docker-archive or oci-archive),
or a registry (``docker://HOST/REPOSITORY[:TAG|@DIGEST]``). Every source checks every blob it
reads against its digest, so a corrupt or truncated base is refused by name.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.errors import InputError, UsageError
from mlci.supply import layout, oci

# --------------------------------------------------------------------------- base images


@dataclass(frozen=True)
class BaseImage:
    """A base image ready to build on: its config and file-backed layers."""

    reference: str
    config: dict[str, Any]
    layers: tuple[oci.Layer, ...]
    # Digest of the base's manifest when known (OCI layouts, registries).
    digest: str | None = None


class BaseSource(abc.ABC):
    """Where a base image comes from: a layout folder, a tar, or a registry.

    ``fetch`` puts whatever blobs it needs into ``workdir`` (or points at existing files)
    and returns the base image.
    """

    reference: str

    @abc.abstractmethod
    def fetch(self, workdir: Path) -> BaseImage:
        """Return the base image; raise InputError when it cannot be read."""


class LayoutBase(BaseSource):
    """A base image in an OCI image layout folder (``oci:DIR`` or ``oci:DIR:TAG``)."""

    def __init__(self, path: Path, ref_name: str | None = None) -> None:
        self.path = Path(path)
        self.ref_name = ref_name
        self.reference = f"oci:{self.path}" + (f":{ref_name}" if ref_name else "")

    def fetch(self, workdir: Path) -> BaseImage:
        """Read the layout; its blobs are used where they are."""
        try:
            index, _, config, layers = layout.read_layout(self.path, ref_name=self.ref_name)
        except InputError as exc:
            raise InputError(f"base image {exc.message}", tip=exc.tip) from None
        digest = None
        for entry in index.get("manifests") or []:
            ref = (entry.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME)
            if self.ref_name is None or ref == self.ref_name:
                if entry.get("mediaType") in (oci.MEDIA_MANIFEST, oci.DOCKER_MANIFEST):
                    digest = entry.get("digest")
        return BaseImage(self.reference, config, tuple(layers), digest)


class ArchiveBase(BaseSource):
    """A base image in a tar: docker-archive (``docker save``) or oci-archive."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.reference = f"docker-archive:{self.path}"

    def fetch(self, workdir: Path) -> BaseImage:
        """Unpack the archive's layers into ``workdir``, checking every digest."""
        where = f"base image {self.path}"
        if not self.path.is_file():
            raise InputError(
                f"{where}: no such file",
                tip="build one with scripts/build-base-image or 'docker save IMAGE -o FILE'",
            )
        try:
            with tarfile.open(self.path, "r:*") as tar:
                members = tar.getmembers()
                size = self.path.stat().st_size
                if not oci.is_gzip(self.path):
                    cut = next((m for m in members if m.offset_data + m.size > size), None)
                    if cut is not None or not _ends_with_zero_blocks(self.path):
                        inside = f" inside {cut.name}" if cut is not None else ""
                        raise InputError(
                            f"{where}: not a readable image archive (cut short{inside})",
                            tip="rebuild it, or check that the download or copy was complete",
                        )
                names = {m.name for m in members}
                if "manifest.json" in names:
                    return self._docker(tar, workdir, where)
                if "oci-layout" in names and "index.json" in names:
                    root = workdir / "base-layout"
                    tar.extractall(root, filter="data")
                    return LayoutBase(root).fetch(workdir)
        except tarfile.ReadError:
            raise InputError(
                f"{where}: not a readable image archive (not a tar file, or cut short)",
                tip="rebuild it, or check that the download or copy was complete",
            ) from None
        except (tarfile.TarError, EOFError, OSError, zlib_error()) as exc:
            raise InputError(
                f"{where}: not a readable image archive ({exc.__class__.__name__}: "
                f"{str(exc)[:80] or 'truncated or corrupt'})",
                tip="rebuild it, or check that the download or copy was complete",
            ) from None
        raise InputError(
            f"{where}: not an image archive (no manifest.json or oci-layout inside)",
            tip="give a 'docker save' / 'podman save' tar or an OCI layout folder",
        )

    def _docker(self, tar: tarfile.TarFile, workdir: Path, where: str) -> BaseImage:
        manifest = json.loads(_member(tar, "manifest.json", where))
        if not isinstance(manifest, list) or not manifest:
            raise InputError(f"{where}: manifest.json lists no image")
        if len(manifest) > 1:
            raise InputError(f"{where}: the archive holds {len(manifest)} images; give one")
        entry = manifest[0]
        config_raw = _member(tar, entry["Config"], where)
        config = json.loads(config_raw)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(entry.get("Layers") or []):
            raise InputError(f"{where}: config and manifest.json disagree on the layers")
        blobs = workdir / "base-blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        layers = []
        history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
        for i, (name, diff_id) in enumerate(zip(entry["Layers"], diff_ids, strict=True)):
            member = tar.extractfile(name)
            if member is None:
                raise InputError(f"{where}: layer {name} is missing")
            tmp = blobs / f"layer-{i}"
            digest = hashlib.sha256()
            with open(tmp, "wb") as out:
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            blob_digest = "sha256:" + digest.hexdigest()
            if oci.is_gzip(tmp):
                media = oci.MEDIA_LAYER_GZIP
                actual = oci.gunzip_digest(tmp)
            else:
                media, actual = oci.MEDIA_LAYER, blob_digest
            if actual != diff_id:
                raise InputError(
                    f"{where}: layer {name} does not match its diff_id (corrupt or truncated)",
                    tip="rebuild or re-save the base image",
                )
            final = blobs / blob_digest.split(":", 1)[1]
            os.replace(tmp, final)
            desc = oci.Descriptor(media, blob_digest, final.stat().st_size)
            created_by = history[i].get("created_by", "") if i < len(history) else ""
            layers.append(oci.Layer(oci.Blob(desc, path=final), diff_id, created_by))
        tags = entry.get("RepoTags") or []
        reference = tags[0] if tags else self.reference
        return BaseImage(reference, config, tuple(layers), None)


def _ends_with_zero_blocks(path: Path) -> bool:
    """True when a tar file ends with the two zero blocks that close every complete tar."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() < 1024:
            return False
        handle.seek(-1024, os.SEEK_END)
        return handle.read(1024) == bytes(1024)


def zlib_error() -> type[BaseException]:
    """The exception zlib raises on corrupt data (gzip-compressed archives)."""
    import zlib

    return zlib.error


def _member(tar: tarfile.TarFile, name: str, where: str) -> bytes:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise InputError(f"{where}: {name} is missing from the archive")
    return handle.read()


class RegistryBase(BaseSource):
    """A base image pulled from a registry (``docker://HOST/REPOSITORY[:TAG|@DIGEST]``):
    the linux/amd64 manifest, its config and layers, each checked against its digest."""

    def __init__(self, reference: str, platform: str = "linux/amd64") -> None:
        from mlci.supply.registry import Reference

        self.ref = Reference.parse(reference)
        self.platform = platform
        self.reference = f"docker://{self.ref}"

    def fetch(self, workdir: Path) -> BaseImage:
        from mlci.supply.registry import RegistryClient

        client = RegistryClient(self.ref)
        data, media_type, digest = client.get_manifest(self.ref.digest or self.ref.tag or "latest")
        manifest = json.loads(data)
        if media_type in oci.INDEX_TYPES:
            wanted_os, _, wanted_arch = self.platform.partition("/")
            child = next(
                (
                    m
                    for m in manifest.get("manifests") or []
                    if (m.get("platform") or {}).get("os") == wanted_os
                    and (m.get("platform") or {}).get("architecture") == wanted_arch
                ),
                None,
            )
            if child is None:
                raise InputError(f"base image {self.ref}: no image for {self.platform}")
            data, media_type, digest = client.get_manifest(str(child["digest"]))
            manifest = json.loads(data)
        config = json.loads(client.get_blob(str(manifest["config"]["digest"])))
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        descriptors = [oci.Descriptor.from_json(d) for d in manifest.get("layers") or []]
        if len(diff_ids) != len(descriptors):
            raise InputError(f"base image {self.ref}: config and manifest disagree on the layers")
        blobs = workdir / "base-blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
        layers = []
        for i, (desc, diff_id) in enumerate(zip(descriptors, diff_ids, strict=True)):
            path = blobs / desc.hex
            path.write_bytes(client.get_blob(desc.digest))
            created_by = history[i].get("created_by", "") if i < len(history) else ""
            layers.append(oci.Layer(oci.Blob(desc, path=path), diff_id, created_by))
        return BaseImage(str(self.ref), config, tuple(layers), digest)


BASE_SCHEMES: dict[str, Callable[[str], BaseSource]] = {
    "oci": lambda rest: LayoutBase(*_split_ref(rest)),
    "docker-archive": lambda rest: ArchiveBase(Path(rest)),
    "oci-archive": lambda rest: ArchiveBase(Path(rest)),
    "docker": RegistryBase,
}


def _split_ref(rest: str) -> tuple[Path, str | None]:
    path, sep, ref = rest.rpartition(":")
    if sep and path and not Path(rest).exists() and "/" not in ref:
        return Path(path), ref
    return Path(rest), None


def base_source(spec: str) -> BaseSource:
    """The base source a ``--base`` value names: ``oci:DIR[:TAG]``, ``docker-archive:FILE``,
    a registered scheme (``docker://REF``), or a plain path (folder: layout; file: tar)."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in BASE_SCHEMES and not Path(spec).exists():
        return BASE_SCHEMES[scheme](rest[2:] if rest.startswith("//") else rest)
    if sep and rest.startswith("//"):
        raise UsageError(
            f"--base {spec}: unknown image source '{scheme}://'",
            tip="use docker://HOST/REPO[:TAG], oci:DIR[:TAG] or docker-archive:FILE",
        )
    path = Path(spec)
    if path.is_dir():
        return LayoutBase(path)
    return ArchiveBase(path)
