"""Where an image and the artifacts that refer to it live: a registry repository, or an OCI
image layout on disk. Signing, attaching SBOMs and verification work on either, so an image
can be signed before it is pushed (and ``mlci push`` then carries its signatures along).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import MlciError
from mlci.supply import layout
from mlci.supply.oci import INDEX_TYPES, MEDIA_INDEX, Descriptor, canonical_json

if TYPE_CHECKING:
    from mlci.supply.registry import Reference, RegistryClient


class StoreError(MlciError):
    """An artifact store that cannot hold or give what was asked."""

    exit_code = 1


class Store(ABC):
    """A place that holds one image and its referrers."""

    @property
    @abstractmethod
    def name(self) -> str:
        """How statements and messages name the image's repository."""

    @abstractmethod
    def resolve(self) -> Descriptor:
        """The image's top manifest."""

    @abstractmethod
    def get_manifest(self, digest: str) -> bytes:
        """A manifest's bytes, checked against ``digest``."""

    @abstractmethod
    def get_blob(self, digest: str) -> bytes:
        """A blob's bytes, checked against ``digest``."""

    @abstractmethod
    def put_blob(self, data: bytes) -> str:
        """Store a blob; return its digest."""

    @abstractmethod
    def put_referrer(self, manifest: bytes, descriptor: Descriptor, subject: str) -> None:
        """Store a manifest that refers to ``subject`` and make it findable from there."""

    @abstractmethod
    def referrers(self, subject: str) -> list[Descriptor]:
        """The descriptors of every manifest that refers to ``subject``."""


class LayoutStore(Store):
    """An OCI image layout folder: referrers are index.json entries with an artifactType."""

    def __init__(self, root: Path, tag: str | None = None) -> None:
        self.root = Path(root)
        self.tag = tag

    @property
    def name(self) -> str:
        return f"oci:{self.root.name}"

    def resolve(self) -> Descriptor:
        return layout.read_image_layout(self.root, self.tag).descriptor

    def get_manifest(self, digest: str) -> bytes:
        return layout.read_blob(self.root, digest, str(self.root))

    def get_blob(self, digest: str) -> bytes:
        return layout.read_blob(self.root, digest, str(self.root))

    def put_blob(self, data: bytes) -> str:
        return layout.write_blob(self.root, data)

    def put_referrer(self, manifest: bytes, descriptor: Descriptor, subject: str) -> None:
        layout.write_blob(self.root, manifest)
        layout.add_to_index(self.root, descriptor)

    def referrers(self, subject: str) -> list[Descriptor]:
        found = []
        for entry in layout.index_entries(self.root):
            descriptor = Descriptor.from_json(entry)
            if descriptor.artifact_type is None:
                continue
            manifest = json.loads(self.get_manifest(descriptor.digest))
            if (manifest.get("subject") or {}).get("digest") == subject:
                found.append(descriptor)
        return found


def fallback_tag(digest: str) -> str:
    """The referrers tag scheme's tag for a subject digest: ``sha256-<hex>``."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"


class RegistryStore(Store):
    """A repository in an OCI registry.

    Registries with the referrers API (``GET /v2/<name>/referrers/<digest>``) index referrers
    by themselves (they answer the PUT with an ``OCI-Subject`` header); for the others the
    store keeps the fallback index of the spec's referrers tag scheme: the tag
    ``sha256-<hex>`` holds an image index listing every referrer of ``sha256:<hex>``.
    """

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    @classmethod
    def open(cls, reference: Reference, *, insecure: bool | None = None) -> RegistryStore:
        from mlci.supply.registry import RegistryClient

        return cls(RegistryClient(reference, insecure=insecure))

    @property
    def name(self) -> str:
        return self.client.reference.name

    def resolve(self) -> Descriptor:
        return self.client.resolve()

    def get_manifest(self, digest: str) -> bytes:
        return self.client.get_manifest(digest)[0]

    def get_blob(self, digest: str) -> bytes:
        return self.client.get_blob(digest)

    def put_blob(self, data: bytes) -> str:
        digest, _ = self.client.push_blob(data)
        return digest

    def put_referrer(self, manifest: bytes, descriptor: Descriptor, subject: str) -> None:
        _, response = self.client.put_manifest(manifest, descriptor.media_type, descriptor.digest)
        if response.headers.get("OCI-Subject") != subject:
            entries = [
                e for e in self._fallback_index(subject) if e.get("digest") != descriptor.digest
            ]
            entries.append(descriptor.to_json())
            index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
            self.client.put_manifest(canonical_json(index), MEDIA_INDEX, fallback_tag(subject))

    def referrers(self, subject: str) -> list[Descriptor]:
        response = self.client.request(
            "GET",
            f"/{self.client.reference.repository}/referrers/{subject}",
            headers={"Accept": MEDIA_INDEX},
            allow_missing=True,
            ok=(200, 400, 405),
        )
        if response.status_code == 200 and response.headers.get("Content-Type", "").startswith(
            MEDIA_INDEX
        ):
            entries = list(response.json().get("manifests") or [])
        else:
            entries = self._fallback_index(subject)
        return [Descriptor.from_json(e) for e in entries]

    def _fallback_index(self, subject: str) -> list[dict[str, object]]:
        tag = fallback_tag(subject)
        if self.client.head_manifest(tag) is None:
            return []
        data, media_type, _ = self.client.get_manifest(tag)
        if media_type not in INDEX_TYPES:
            raise StoreError(
                f"{self.client.reference.name}:{tag} is not a referrers index ({media_type})"
            )
        return list(json.loads(data).get("manifests") or [])


def open_store(target: str, *, insecure: bool | None = None) -> Store:
    """The store a command-line target names: ``oci:DIR[:TAG]`` or an existing layout
    folder, else a registry reference ``host/repository[:tag|@digest]``."""
    if target.startswith("oci:") or layout.is_layout(Path(target)):
        root, tag = layout.split_layout_argument(target)
        return LayoutStore(root, tag)
    from mlci.supply.registry import Reference

    return RegistryStore.open(Reference.parse(target), insecure=insecure)
