"""OCI 1.1 referrers: attach Sigstore bundles to an image and list them again.

Each bundle is stored as cosign 3 stores it: an image manifest with
``artifactType: application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config
(``application/vnd.oci.empty.v1+json``), one layer holding the bundle JSON, ``subject`` naming
the signed image manifest, and annotations ``dev.sigstore.bundle.content`` (``dsse-envelope``
or ``message-signature``) and ``dev.sigstore.bundle.predicateType``.

Registries with the referrers API (``GET /v2/<name>/referrers/<digest>``) index these by
themselves (they answer the PUT with an ``OCI-Subject`` header). For the others the client
keeps the fallback index of the spec's referrers tag scheme: the tag ``sha256-<hex>`` holds an
image index listing every referrer of ``sha256:<hex>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mlci.supply import attest
from mlci.supply.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    RegistryClient,
    RegistryError,
    canonical_json,
    sha256_digest,
)

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = sha256_digest(b"{}")
ANNOTATION_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE = "dev.sigstore.bundle.predicateType"
ANNOTATION_CREATED = "org.opencontainers.image.created"


def fallback_tag(digest: str) -> str:
    """The referrers tag scheme's tag for a subject digest: ``sha256-<hex>``."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"


@dataclass(frozen=True)
class Referrer:
    """One artifact that refers to an image."""

    descriptor: Descriptor

    @property
    def artifact_type(self) -> str | None:
        return self.descriptor.artifact_type

    @property
    def predicate_type(self) -> str | None:
        return self.descriptor.annotations.get(ANNOTATION_PREDICATE)


def bundle_manifest(
    bundle: dict[str, Any], subject: Descriptor, *, created: str | None = None
) -> tuple[bytes, bytes, dict[str, str]]:
    """The bundle's blob, the referrer manifest's bytes and its annotations."""
    blob = json.dumps(bundle, separators=(",", ":")).encode("utf-8")
    content = "dsse-envelope" if "dsseEnvelope" in bundle else "message-signature"
    annotations = {
        ANNOTATION_CONTENT: content,
        ANNOTATION_CREATED: created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if content == "dsse-envelope":
        predicate = attest.envelope_of(bundle).statement().get("predicateType")
        if predicate:
            annotations[ANNOTATION_PREDICATE] = str(predicate)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": attest.BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [
            {
                "mediaType": attest.BUNDLE_MEDIA_TYPE,
                "digest": sha256_digest(blob),
                "size": len(blob),
            }
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": annotations,
    }
    return blob, canonical_json(manifest), annotations


def attach_bundle(
    client: RegistryClient, subject: Descriptor, bundle: dict[str, Any]
) -> Descriptor:
    """Push a bundle as a referrer of ``subject``; keep the fallback index where needed."""
    blob, manifest, annotations = bundle_manifest(bundle, subject)
    client.push_blob(b"{}", EMPTY_DIGEST)
    client.push_blob(blob)
    digest, response = client.put_manifest(manifest, OCI_MANIFEST, sha256_digest(manifest))
    descriptor = Descriptor(
        media_type=OCI_MANIFEST,
        digest=digest,
        size=len(manifest),
        annotations=annotations,
        artifact_type=attest.BUNDLE_MEDIA_TYPE,
    )
    if response.headers.get("OCI-Subject") != subject.digest:
        _add_to_fallback_index(client, subject.digest, descriptor)
    return descriptor


def _read_fallback_index(client: RegistryClient, digest: str) -> list[dict[str, Any]]:
    found = client.head_manifest(fallback_tag(digest))
    if found is None:
        return []
    data, media_type, _ = client.get_manifest(fallback_tag(digest))
    if media_type != OCI_INDEX:
        raise RegistryError(
            f"{client.reference.name}:{fallback_tag(digest)} is not a referrers index "
            f"({media_type})"
        )
    return list(json.loads(data).get("manifests") or [])


def _add_to_fallback_index(client: RegistryClient, digest: str, descriptor: Descriptor) -> None:
    entries = [
        e for e in _read_fallback_index(client, digest) if e.get("digest") != descriptor.digest
    ]
    entries.append(descriptor.to_json())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    client.put_manifest(canonical_json(index), OCI_INDEX, fallback_tag(digest))


def list_referrers(
    client: RegistryClient, digest: str, artifact_type: str | None = None
) -> list[Referrer]:
    """Referrers of ``digest``: from the referrers API, else from the fallback tag."""
    response = client.request(
        "GET",
        f"/{client.reference.repository}/referrers/{digest}"
        + (f"?artifactType={artifact_type}" if artifact_type else ""),
        headers={"Accept": OCI_INDEX},
        allow_missing=True,
        ok=(200, 400, 405),
    )
    entries: list[dict[str, Any]]
    if response.status_code == 200 and response.headers.get("Content-Type", "").startswith(
        OCI_INDEX
    ):
        entries = list(response.json().get("manifests") or [])
    else:
        entries = _read_fallback_index(client, digest)
    referrers = [Referrer(Descriptor.from_json(e)) for e in entries]
    if artifact_type:
        referrers = [r for r in referrers if r.artifact_type == artifact_type]
    return referrers


def fetch_bundle(client: RegistryClient, referrer: Referrer, subject_digest: str) -> dict[str, Any]:
    """Read a referrer's manifest and its bundle layer, checking it names ``subject_digest``."""
    data, _, _ = client.get_manifest(referrer.descriptor.digest)
    manifest = json.loads(data)
    if (manifest.get("subject") or {}).get("digest") != subject_digest:
        raise RegistryError(
            f"referrer {referrer.descriptor.digest[:19]} does not name {subject_digest[:19]} "
            "as its subject"
        )
    layers = [
        layer
        for layer in manifest.get("layers") or []
        if layer.get("mediaType") in attest.BUNDLE_MEDIA_TYPES
    ]
    if len(layers) != 1:
        raise RegistryError(f"referrer {referrer.descriptor.digest[:19]} holds no bundle layer")
    raw = client.get_blob(str(layers[0]["digest"]))
    return attest.parse_bundle(raw, f"bundle of referrer {referrer.descriptor.digest[:19]}")
