"""OCI 1.1 referrers: attach Sigstore bundles to an image and read them back, in any store.

Each bundle is stored as cosign 3 stores it: an image manifest with
``artifactType: application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config
(``application/vnd.oci.empty.v1+json``), one layer holding the bundle JSON, ``subject`` naming
the signed image manifest, and annotations ``dev.sigstore.bundle.content`` (``dsse-envelope``
or ``message-signature``) and ``dev.sigstore.bundle.predicateType``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mlci.supply import attest
from mlci.supply.oci import (
    EMPTY_DIGEST,
    MEDIA_EMPTY,
    MEDIA_MANIFEST,
    Descriptor,
    canonical_json,
    sha256_digest,
)
from mlci.supply.store import Store, StoreError

ANNOTATION_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE = "dev.sigstore.bundle.predicateType"
ANNOTATION_CREATED = "org.opencontainers.image.created"


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
        "mediaType": MEDIA_MANIFEST,
        "artifactType": attest.BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": MEDIA_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
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


def attach_bundle(store: Store, subject: Descriptor, bundle: dict[str, Any]) -> Descriptor:
    """Store a bundle as a referrer of ``subject``."""
    blob, manifest, annotations = bundle_manifest(bundle, subject)
    store.put_blob(b"{}")
    store.put_blob(blob)
    descriptor = Descriptor(
        media_type=MEDIA_MANIFEST,
        digest=sha256_digest(manifest),
        size=len(manifest),
        annotations=annotations,
        artifact_type=attest.BUNDLE_MEDIA_TYPE,
    )
    store.put_referrer(manifest, descriptor, subject.digest)
    return descriptor


def list_referrers(store: Store, digest: str, artifact_type: str | None = None) -> list[Referrer]:
    """Referrers of ``digest`` (of one artifact type when given)."""
    referrers = [Referrer(d) for d in store.referrers(digest)]
    if artifact_type:
        referrers = [r for r in referrers if r.artifact_type == artifact_type]
    return referrers


def fetch_bundle(store: Store, referrer: Referrer, subject_digest: str) -> dict[str, Any]:
    """Read a referrer's manifest and its bundle layer, checking it names ``subject_digest``."""
    manifest = json.loads(store.get_manifest(referrer.descriptor.digest))
    if (manifest.get("subject") or {}).get("digest") != subject_digest:
        raise StoreError(
            f"referrer {referrer.descriptor.digest[:19]} does not name {subject_digest[:19]} "
            "as its subject"
        )
    layers = [
        layer
        for layer in manifest.get("layers") or []
        if layer.get("mediaType") in attest.BUNDLE_MEDIA_TYPES
    ]
    if len(layers) != 1:
        raise StoreError(f"referrer {referrer.descriptor.digest[:19]} holds no bundle layer")
    raw = store.get_blob(str(layers[0]["digest"]))
    return attest.parse_bundle(raw, f"bundle of referrer {referrer.descriptor.digest[:19]}")
