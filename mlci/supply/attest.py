"""in-toto statements, DSSE envelopes and Sigstore bundles (v0.3), as plain JSON.

An image signature is what cosign 3 writes: a DSSE envelope around an in-toto Statement v1
whose subject is the image manifest digest and whose predicate type is
``https://sigstore.dev/cosign/sign/v1``. Attestations are the same envelope with another
predicate: the CycloneDX SBOM (``https://cyclonedx.org/bom``) and the mlci evaluation
(``https://mlci.dev/attestation/evaluation/v1``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlci.errors import InputError

if TYPE_CHECKING:
    from mlci.results import Results

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"

SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SBOM_PREDICATE = "https://cyclonedx.org/bom"
EVALUATION_PREDICATE = "https://mlci.dev/attestation/evaluation/v1"

KIND_OF_PREDICATE = {
    SIGN_PREDICATE: "signature",
    SBOM_PREDICATE: "sbom",
    EVALUATION_PREDICATE: "evaluation",
}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(
    subject_name: str, digest: str, predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1 about one artifact named by its sha256 digest."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise InputError(f"'{digest}' is not a sha256 digest")
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": subject_name, "digest": {"sha256": hexdigest}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def statement_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise InputError(f"{what} is not valid base64") from None


def key_bundle(
    *,
    payload: bytes,
    signature: bytes,
    key_hint: str,
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
) -> dict[str, Any]:
    """A Sigstore bundle v0.3 for a DSSE envelope signed with a long-lived key.

    Like cosign's ``--key`` bundles made without a transparency log: the verification
    material names the key by a hint, and the verifier must be given the public key.
    """
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature), "keyid": key_hint}],
        },
    }


def key_message_bundle(*, digest_hex: str, signature: bytes, key_hint: str) -> dict[str, Any]:
    """A Sigstore bundle v0.3 holding a plain signature over a file's sha256 digest."""
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(bytes.fromhex(digest_hex))},
            "signature": b64(signature),
        },
    }


@dataclass(frozen=True)
class Envelope:
    """The DSSE envelope of a bundle, decoded."""

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    def statement(self) -> dict[str, Any]:
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise InputError(f"the envelope holds '{self.payload_type}', not an in-toto statement")
        try:
            data = json.loads(self.payload)
        except ValueError:
            raise InputError("the envelope's payload is not JSON") from None
        if not isinstance(data, dict) or data.get("_type") not in (
            STATEMENT_V1,
            "https://in-toto.io/Statement/v0.1",
        ):
            raise InputError("the envelope's payload is not an in-toto statement")
        return data


def parse_bundle(raw: bytes | str, what: str = "bundle") -> dict[str, Any]:
    """Read a Sigstore bundle and check its media type."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InputError(f"{what} is not JSON (or is nested too deeply)") from None
    if not isinstance(data, dict) or data.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise InputError(
            f"{what} is not a Sigstore bundle (media type {data.get('mediaType') if isinstance(data, dict) else None!r})"
        )
    return data


def envelope_of(bundle: dict[str, Any], what: str = "bundle") -> Envelope:
    dsse = bundle.get("dsseEnvelope")
    if not isinstance(dsse, dict):
        raise InputError(f"{what} holds no DSSE envelope")
    signatures = tuple(
        unb64(str(s.get("sig", "")), f"{what}'s signature") for s in dsse.get("signatures") or []
    )
    return Envelope(
        payload_type=str(dsse.get("payloadType", "")),
        payload=unb64(str(dsse.get("payload", "")), f"{what}'s payload"),
        signatures=signatures,
    )


def subject_digests(data: dict[str, Any]) -> list[str]:
    """``sha256:<hex>`` of every subject of a statement."""
    found = []
    for subject in data.get("subject") or []:
        value = (subject.get("digest") or {}).get("sha256")
        if value:
            found.append(f"sha256:{value}")
    return found


def evaluation_predicate(
    *, image_digest: str, image_name: str, document: Results
) -> dict[str, Any]:
    """Bind the image digest and the model's sha256 to the gate decision and headline metrics."""
    gate = document.gate
    evaluation = document.evaluation
    metrics: dict[str, Any] = {}
    if evaluation is not None:
        metrics = {
            name: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high}
            for name, e in evaluation.metrics.candidate.items()
        }
    return {
        "image": {"name": image_name, "digest": image_digest},
        "model": {
            "name": document.model.name,
            "sha256": document.model.sha256,
            "format": document.model.format,
        },
        "gate": {
            "decision": None if gate is None else gate.decision,
            "reason": None if gate is None else gate.reason,
            "digest": None if gate is None else gate.digest,
        },
        "primaryMetric": None if evaluation is None else evaluation.primary_metric,
        "metrics": metrics,
        "mlciVersion": document.mlci_version,
        "resultsCreated": document.created,
    }
