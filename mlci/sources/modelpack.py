"""Models as OCI artifacts following the CNCF ModelPack specification (modelpack/model-spec).

An artifact is an OCI image manifest with ``artifactType
application/vnd.cncf.model.manifest.v1+json``, a model config
(``application/vnd.cncf.model.config.v1+json``: descriptor, config, modelfs) and one layer per
file. mlci writes every file as a ``.raw`` layer (uncompressed, not archived, as the
specification recommends for weights) annotated with ``org.cncf.model.filepath``, so the
weight layer's digest *is* the model file's sha256: the digest the gate decided on. Reading
also accepts weights in ``.tar`` and ``.tar+gzip`` layers holding a single file.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.errors import InputError, ModelError
from mlci.supply.oci import MEDIA_MANIFEST, Descriptor, canonical_json, sha256_digest

ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.cncf.model.config.v1+json"
_PREFIX = "application/vnd.cncf.model."
WEIGHT_RAW = _PREFIX + "weight.v1.raw"
WEIGHT_TAR = _PREFIX + "weight.v1.tar"
WEIGHT_TAR_GZIP = _PREFIX + "weight.v1.tar+gzip"
WEIGHT_TAR_ZSTD = _PREFIX + "weight.v1.tar+zstd"
WEIGHT_CONFIG_RAW = _PREFIX + "weight.config.v1.raw"
DOC_RAW = _PREFIX + "doc.v1.raw"
WEIGHT_TYPES = (WEIGHT_RAW, WEIGHT_TAR, WEIGHT_TAR_GZIP, WEIGHT_TAR_ZSTD)
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class PackFile:
    """A file to put in an artifact: where it is, its path inside, and its layer type."""

    source: Path
    name: str
    media_type: str


@dataclass(frozen=True)
class Built:
    """An artifact ready to push: its blobs (descriptor and bytes or file) and manifest."""

    manifest: bytes
    config: bytes
    layers: list[tuple[Descriptor, Path]]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(
            MEDIA_MANIFEST, self.digest, len(self.manifest), artifact_type=ARTIFACT_TYPE
        )


def build(
    files: Sequence[PackFile],
    *,
    name: str,
    model_format: str,
    created: str,
    version: str | None = None,
    revision: str | None = None,
    source_url: str | None = None,
) -> Built:
    """A ModelPack artifact holding ``files`` (the weights first)."""
    from mlci.hashing import sha256_file

    layers: list[tuple[Descriptor, Path]] = []
    seen: set[str] = set()
    for item in files:
        if item.name in seen:
            raise InputError(f"two files would be '{item.name}' in the artifact")
        seen.add(item.name)
        try:
            size = item.source.stat().st_size
            digest = "sha256:" + sha256_file(item.source)
        except OSError:
            raise InputError(f"{item.source}: no such file to put in the artifact") from None
        layers.append(
            (
                Descriptor(
                    item.media_type,
                    digest,
                    size,
                    annotations={ANNOTATION_FILEPATH: item.name, ANNOTATION_TITLE: item.name},
                ),
                item.source,
            )
        )
    descriptor: dict[str, Any] = {"name": name, "createdAt": created}
    if version:
        descriptor["version"] = version
    if revision:
        descriptor["revision"] = revision
    if source_url:
        descriptor["sourceURL"] = source_url
    config = canonical_json(
        {
            "descriptor": descriptor,
            "config": {"format": model_format},
            # Raw layers are not archives: their content hash is the blob's digest.
            "modelfs": {"type": "layers", "diffIds": [d.digest for d, _ in layers]},
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": MEDIA_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [d.to_json() for d, _ in layers],
        "annotations": {ANNOTATION_CREATED: created},
    }
    return Built(canonical_json(manifest), config, layers)


def parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    """A ModelPack manifest; ModelError when ``raw`` is some other artifact or image."""
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ModelError(f"{where}: the manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{where}: the manifest is not a JSON object")
    config_type = (manifest.get("config") or {}).get("mediaType")
    if manifest.get("artifactType") != ARTIFACT_TYPE and config_type != MEDIA_CONFIG:
        found = manifest.get("artifactType") or config_type or manifest.get("mediaType")
        raise ModelError(
            f"{where}: not a ModelPack model artifact (it is {found})",
            tip=f"push models with mlci push-model (artifact type {ARTIFACT_TYPE})",
        )
    return manifest


def weight_layer(manifest: Mapping[str, Any], where: str) -> Descriptor:
    """The one weights layer of a ModelPack manifest."""
    weights = [
        Descriptor.from_json(layer)
        for layer in manifest.get("layers") or []
        if isinstance(layer, dict) and layer.get("mediaType") in WEIGHT_TYPES
    ]
    if not weights:
        raise ModelError(f"{where}: the artifact holds no weight layer")
    if len(weights) > 1:
        names = ", ".join(w.annotations.get(ANNOTATION_FILEPATH, w.digest[:19]) for w in weights)
        raise ModelError(
            f"{where}: the artifact holds {len(weights)} weight files ({names}); mlci evaluates "
            "one model file",
            tip="push the model as its own artifact",
        )
    if weights[0].media_type == WEIGHT_TAR_ZSTD:
        raise ModelError(f"{where}: zstd-compressed weight layers are not supported")
    return weights[0]


def file_name(layer: Descriptor) -> str:
    """The file name a layer stands for (its filepath annotation, else its digest)."""
    name = layer.annotations.get(ANNOTATION_FILEPATH) or layer.annotations.get(ANNOTATION_TITLE)
    return name.rsplit("/", 1)[-1] if name else layer.hex


def unpack(layer: Descriptor, blob: bytes, where: str) -> tuple[str, Iterator[bytes]]:
    """The model file in a weights layer: its name and bytes."""
    if layer.media_type == WEIGHT_RAW:
        return file_name(layer), iter([blob])
    mode = "r:gz" if layer.media_type == WEIGHT_TAR_GZIP else "r:"
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode=mode) as tar:  # type: ignore[call-overload]
            members = [m for m in tar.getmembers() if m.isreg()]
            if len(members) != 1:
                raise ModelError(
                    f"{where}: the weight layer holds {len(members)} files; mlci needs exactly one"
                )
            handle = tar.extractfile(members[0])
            assert handle is not None
            data = handle.read()
            return members[0].name.rsplit("/", 1)[-1], iter([data])
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"{where}: the weight layer is not a readable tar ({exc})") from None
