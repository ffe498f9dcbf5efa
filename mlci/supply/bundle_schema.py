"""The shape of a Sigstore bundle, checked field by field before any signature is.

The table below is the protobuf-specs schema (``sigstore_bundle.proto``, ``sigstore_common.proto``,
``sigstore_rekor.proto``, ``envelope.proto``) in its proto3 JSON form, as sigstore-python's
models read it: every message lists its fields, unknown fields are refused (as proto3 JSON
parsers do by default), bytes are strict base64 and 64-bit integers are decimal strings. A
bundle that does not fit is refused whole, so no field can be changed, dropped or added and
still be silently ignored by the signature checks that follow.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MEDIA_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
MEDIA_V03 = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)

# Which verification material each bundle version may carry (sigstore-python's rules: a v0.3
# bundle names its signing certificate alone, older ones a chain starting with it).
MATERIALS: dict[str, tuple[str, ...]] = {
    MEDIA_V02: ("publicKey", "x509CertificateChain"),
    **dict.fromkeys(MEDIA_V03, ("publicKey", "certificate")),
}

_INT64 = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class BundleFormatError(ValueError):
    """A bundle that does not follow the schema; the message names the field."""


@dataclass(frozen=True)
class Field:
    """One field: its JSON kind, whether it must be present, and for messages their name."""

    kind: str  # "string", "bytes", "int64", "enum", "message", or "list:<kind>"
    required: bool = False
    message: str | None = None  # for "message" and "list:message"
    choices: tuple[str, ...] = ()  # for "enum"
    non_empty: bool = False  # for lists


def _m(name: str, **kwargs: Any) -> Field:
    return Field("message", message=name, **kwargs)


# message -> (fields, groups of which exactly one must be present)
SCHEMA: dict[str, tuple[dict[str, Field], tuple[tuple[str, ...], ...]]] = {
    "Bundle": (
        {
            "mediaType": Field("string", required=True),
            "verificationMaterial": _m("VerificationMaterial", required=True),
            "messageSignature": _m("MessageSignature"),
            "dsseEnvelope": _m("Envelope"),
        },
        (("messageSignature", "dsseEnvelope"),),
    ),
    "VerificationMaterial": (
        {
            "publicKey": _m("PublicKeyIdentifier"),
            "x509CertificateChain": _m("X509CertificateChain"),
            "certificate": _m("X509Certificate"),
            # Required, as sigstore-python reads it (empty for a key-signed bundle).
            "tlogEntries": Field("list:message", True, "TransparencyLogEntry"),
            "timestampVerificationData": _m("TimestampVerificationData"),
        },
        (("publicKey", "x509CertificateChain", "certificate"),),
    ),
    "PublicKeyIdentifier": ({"hint": Field("string", required=True)}, ()),
    "X509CertificateChain": (
        {"certificates": Field("list:message", True, "X509Certificate", non_empty=True)},
        (),
    ),
    "X509Certificate": ({"rawBytes": Field("bytes", required=True)}, ()),
    "TransparencyLogEntry": (
        {
            "logIndex": Field("int64", required=True),
            "logId": _m("LogId", required=True),
            "kindVersion": _m("KindVersion", required=True),
            # Absent in Rekor v2 entries, whose time comes from signed timestamps instead.
            "integratedTime": Field("int64"),
            "inclusionPromise": _m("InclusionPromise"),
            "inclusionProof": _m("InclusionProof", required=True),
            "canonicalizedBody": Field("bytes", required=True),
        },
        (),
    ),
    "LogId": ({"keyId": Field("bytes", required=True)}, ()),
    "KindVersion": (
        {"kind": Field("string", required=True), "version": Field("string", required=True)},
        (),
    ),
    "InclusionPromise": ({"signedEntryTimestamp": Field("bytes", required=True)}, ()),
    "InclusionProof": (
        {
            "logIndex": Field("int64", required=True),
            "rootHash": Field("bytes", required=True),
            "treeSize": Field("int64", required=True),
            "hashes": Field("list:bytes", required=True),
            "checkpoint": _m("Checkpoint", required=True),
        },
        (),
    ),
    "Checkpoint": ({"envelope": Field("string", required=True)}, ()),
    "TimestampVerificationData": (
        {"rfc3161Timestamps": Field("list:message", message="RFC3161SignedTimestamp")},
        (),
    ),
    "RFC3161SignedTimestamp": ({"signedTimestamp": Field("bytes", required=True)}, ()),
    "MessageSignature": (
        {
            # Optional in the schema; mlci requires it so that the digest and its algorithm
            # are checked against the file rather than trusted or ignored.
            "messageDigest": _m("HashOutput", required=True),
            "signature": Field("bytes", required=True),
        },
        (),
    ),
    "HashOutput": (
        {
            "algorithm": Field("enum", required=True, choices=("SHA2_256",)),
            "digest": Field("bytes", required=True),
        },
        (),
    ),
    "Envelope": (
        {
            "payload": Field("bytes", required=True),
            "payloadType": Field("string", required=True),
            "signatures": Field("list:message", True, "Signature", non_empty=True),
        },
        (),
    ),
    "Signature": ({"sig": Field("bytes", required=True), "keyid": Field("string")}, ()),
}


def check_bundle(bundle: Any) -> str:
    """Raise BundleFormatError unless ``bundle`` follows the schema; return its media type."""
    _message(bundle, "Bundle", "")
    media = bundle["mediaType"]
    if media not in MATERIALS:
        raise BundleFormatError(
            f"mediaType: unsupported bundle version {media!r} (mlci reads v0.2 and v0.3)"
        )
    material = bundle["verificationMaterial"]
    kind = next(k for k in ("publicKey", "x509CertificateChain", "certificate") if k in material)
    if kind not in MATERIALS[media]:
        raise BundleFormatError(
            f"verificationMaterial.{kind}: not allowed in a bundle of version {media!r}"
        )
    chain = material.get("x509CertificateChain", {}).get("certificates", [None])
    if len(chain) != 1:
        # The chain up from the signing certificate comes from the trust root; certificates
        # the bundle adds would go unchecked.
        raise BundleFormatError(
            "verificationMaterial.x509CertificateChain.certificates: must hold only the "
            f"signing certificate, found {len(chain)}"
        )
    if "dsseEnvelope" in bundle and len(bundle["dsseEnvelope"]["signatures"]) != 1:
        # sigstore-python's rule: one signer, one signature.
        raise BundleFormatError("dsseEnvelope.signatures: must hold exactly one signature")
    return str(media)


def _message(value: Any, name: str, path: str) -> None:
    fields, oneofs = SCHEMA[name]
    if not isinstance(value, Mapping):
        raise BundleFormatError(f"{path or '(top level)'}: expected an object ({name})")
    for key in value:
        if key not in fields:
            raise BundleFormatError(f"{_join(path, str(key))}: unknown field in {name}")
    for key, field in fields.items():
        where = _join(path, key)
        if key not in value:
            if field.required:
                raise BundleFormatError(f"{where}: required field is missing")
            continue
        _value(value[key], field, where)
    for group in oneofs:
        present = [k for k in group if k in value]
        if len(present) != 1:
            listed = ", ".join(group)
            raise BundleFormatError(
                f"{path or '(top level)'}: needs exactly one of {listed}"
                + (f", found {', '.join(present)}" if present else "")
            )


def _value(value: Any, field: Field, where: str) -> None:
    kind = field.kind
    if kind.startswith("list:"):
        if not isinstance(value, list):
            raise BundleFormatError(f"{where}: expected a list")
        if field.non_empty and not value:
            raise BundleFormatError(f"{where}: must not be empty")
        item = Field(kind[len("list:") :], True, field.message)
        for i, element in enumerate(value):
            _value(element, item, f"{where}[{i}]")
        return
    if kind == "message":
        assert field.message is not None
        _message(value, field.message, where)
        return
    if not isinstance(value, str):
        raise BundleFormatError(f"{where}: expected a string, found {type(value).__name__}")
    if kind == "string":
        if field.required and not value:
            raise BundleFormatError(f"{where}: must not be empty")
    elif kind == "bytes":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BundleFormatError(f"{where}: not valid base64") from None
        if not decoded and field.required:
            raise BundleFormatError(f"{where}: must not be empty")
    elif kind == "int64":
        if not _INT64.match(value) or int(value) >= 2**63:
            raise BundleFormatError(f"{where}: expected a non-negative integer as a string")
    elif kind == "enum" and value not in field.choices:
        raise BundleFormatError(
            f"{where}: {value!r} is not supported (expected {', '.join(field.choices)})"
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
